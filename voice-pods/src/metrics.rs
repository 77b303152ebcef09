//! The voice pod's Prometheus metrics. Label sets are bounded: close
//! reasons, objective and agent names from deployed configs, tenants, core
//! versions and fixed rejection reasons — never a call id or a phone number.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of `dialtone_voice_outbound_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboundLabels {
    /// The tenant.
    pub tenant: String,
    /// Twilio's final status: completed, busy, no-answer, failed, canceled.
    pub status: String,
}

/// Labels of `dialtone_voice_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The Tenant.
    pub tenant: String,
    /// Why the call closed: `ended`, `transferred`, `hangup`, `drained`,
    /// `error`.
    pub outcome: String,
}

/// Labels of `dialtone_voice_objective_completions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectiveLabels {
    /// The Tenant.
    pub tenant: String,
    /// The objective's name.
    pub objective: String,
    /// `completed` or `failed`.
    pub result: String,
}

/// Labels of the per-tenant histograms (turn latency, call duration).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The Tenant.
    pub tenant: String,
}

/// Labels of `dialtone_voice_cost_usd_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// The Tenant.
    pub tenant: String,
    /// The Agent.
    pub agent: String,
    /// The objective the call started in.
    pub objective: String,
    /// The Voice Core version of the config.
    pub core_version: String,
}

/// Labels of `dialtone_voice_signature_rejections_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `missing`, `invalid`, `no-token` (no auth token for the number),
    /// `stream-token` (a media stream without a valid ticket) or
    /// `stream-replay` (a ticket used a second time).
    pub reason: String,
}

/// Labels of `dialtone_voice_calls_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `draining`, `pod-full` or `tenant-full`.
    pub reason: String,
    /// The tenant whose call it was.
    pub tenant: String,
}

/// Labels of `dialtone_voice_provider_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// `stt`, `tts` or `llm`.
    pub role: String,
    /// The vendor (`builtin`, `deepgram`, `elevenlabs`, `openai` …): a
    /// fixed set, where Provider names would be tenant-chosen.
    pub vendor: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of `dialtone_voice_provider_latency_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderRoleLabels {
    /// `stt`, `tts` or `llm`.
    pub role: String,
    /// The vendor.
    pub vendor: String,
}

/// Every metric of the voice pod.
#[derive(Clone)]
pub struct Metrics {
    outbound_calls: Family<OutboundLabels, Counter>,
    active_calls: Family<TenantLabels, Gauge>,
    /// The sum of `active_calls` (a family cannot be summed), for the drain.
    active_total: Gauge,
    calls: Family<OutcomeLabels, Counter>,
    turn_latency: Family<TenantLabels, Histogram>,
    call_duration: Family<TenantLabels, Histogram>,
    objectives: Family<ObjectiveLabels, Counter>,
    events_buffered: Gauge,
    events_spilled: Gauge,
    workflow_jobs: Counter,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    rejections: Family<RejectionLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    connections_shed: Counter,
    draining: Gauge,
    provider_requests: Family<ProviderLabels, Counter>,
    provider_latency: Family<ProviderRoleLabels, Histogram>,
}

impl Metrics {
    /// Creates the metrics and registers them under `registry` (prefix it
    /// with `dialtone_voice`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            outbound_calls: Family::default(),
            active_calls: Family::default(),
            active_total: Gauge::default(),
            calls: Family::default(),
            // 0.5 ms .. ~16 s: the overhead of the runtime itself sits in
            // the first buckets, vendor round trips in the later ones.
            turn_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            // 5 s .. ~85 min.
            call_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(5.0, 2.0, 11))
            }),
            objectives: Family::default(),
            events_buffered: Gauge::default(),
            events_spilled: Gauge::default(),
            workflow_jobs: Counter::default(),
            cost: Family::default(),
            rejections: Family::default(),
            refusals: Family::default(),
            connections_shed: Counter::default(),
            draining: Gauge::default(),
            provider_requests: Family::default(),
            // 1 ms .. ~33 s: a builtin answer in the first buckets, a
            // vendor's round trip (or its timeout) in the later ones.
            provider_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
        };
        registry.register(
            "active_calls",
            "Calls in progress on this pod",
            m.active_calls.clone(),
        );
        registry.register("calls", "Closed calls by outcome", m.calls.clone());
        registry.register_with_unit(
            "turn_latency",
            "From the caller's end of turn to the agent's first audio or text",
            Unit::Seconds,
            m.turn_latency.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Length of closed calls (with cost_usd, the cost per minute)",
            Unit::Seconds,
            m.call_duration.clone(),
        );
        registry.register(
            "objective_completions",
            "Objectives finished, by objective and result",
            m.objectives.clone(),
        );
        registry.register(
            "events_buffered",
            "Call events waiting in memory for PostgreSQL",
            m.events_buffered.clone(),
        );
        registry.register(
            "events_spilled",
            "Call events in the local spill file, not yet in PostgreSQL",
            m.events_spilled.clone(),
        );
        registry.register(
            "workflow_jobs_created",
            "Workflow jobs the event writer enqueued with their trigger events",
            m.workflow_jobs.clone(),
        );
        registry.register("cost_usd", "Accrued provider cost in USD", m.cost.clone());
        registry.register(
            "signature_rejections",
            "Requests refused for a missing or wrong Twilio signature or stream token",
            m.rejections.clone(),
        );
        registry.register(
            "calls_refused",
            "Calls not admitted: the pod draining or full, or the tenant at its limit",
            m.refusals.clone(),
        );
        registry.register(
            "connections_shed",
            "Connections closed on arrival because the pod held its maximum",
            m.connections_shed.clone(),
        );
        registry.register(
            "outbound_calls",
            "Campaign calls finished, by tenant and Twilio's final status",
            m.outbound_calls.clone(),
        );
        registry.register(
            "draining",
            "1 while the pod drains: it admits no new calls and waits for its calls to close",
            m.draining.clone(),
        );
        registry.register(
            "provider_requests",
            "Requests to speech and language providers, by role, vendor and result",
            m.provider_requests.clone(),
        );
        registry.register_with_unit(
            "provider_latency",
            "From a request to a speech or language provider to its answer (for a stream, until it is open)",
            Unit::Seconds,
            m.provider_latency.clone(),
        );
        m
    }

    /// The pod began to drain.
    pub fn draining(&self) {
        self.draining.set(1);
    }

    /// One request to the `role` provider of `vendor` took `seconds`.
    pub fn provider(&self, role: &str, vendor: &str, seconds: f64, ok: bool) {
        self.provider_latency
            .get_or_create(&ProviderRoleLabels {
                role: role.to_owned(),
                vendor: vendor.to_owned(),
            })
            .observe(seconds);
        self.provider_requests
            .get_or_create(&ProviderLabels {
                role: role.to_owned(),
                vendor: vendor.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }

    /// Requests to the `role` provider of `vendor` with `result` (`ok` or
    /// `error`) so far.
    pub fn provider_requests(&self, role: &str, vendor: &str, result: &str) -> u64 {
        self.provider_requests
            .get(&ProviderLabels {
                role: role.to_owned(),
                vendor: vendor.to_owned(),
                result: result.to_owned(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// A campaign call of `tenant` finished with Twilio's `status`.
    pub fn outbound_call(&self, tenant: &str, status: &str) {
        self.outbound_calls
            .get_or_create(&OutboundLabels {
                tenant: tenant.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// A call of `tenant` started.
    pub fn call_started(&self, tenant: &str) {
        self.active_total.inc();
        self.active_calls
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// A call of `tenant` closed for `reason` after `seconds`.
    pub fn call_closed(&self, tenant: &str, reason: &str, seconds: f64) {
        let labels = TenantLabels {
            tenant: tenant.to_owned(),
        };
        self.active_calls.get_or_create(&labels).dec();
        self.active_total.dec();
        self.call_duration.get_or_create(&labels).observe(seconds);
        self.calls
            .get_or_create(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome: reason.to_owned(),
            })
            .inc();
    }

    /// Calls in progress, across tenants.
    pub fn active_calls(&self) -> i64 {
        self.active_total.get()
    }

    /// Calls of `tenant` closed for `reason` so far.
    pub fn calls_closed(&self, tenant: &str, reason: &str) -> u64 {
        self.calls
            .get(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome: reason.to_owned(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// One turn's latency.
    pub fn turn(&self, tenant: &str, seconds: f64) {
        self.turn_latency
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .observe(seconds);
    }

    /// An objective of a `tenant`'s call finished.
    pub fn objective(&self, tenant: &str, objective: &str, completed: bool) {
        self.objectives
            .get_or_create(&ObjectiveLabels {
                tenant: tenant.to_owned(),
                objective: objective.to_owned(),
                result: if completed { "completed" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Cost accrued by a call.
    pub fn cost(&self, labels: &CostLabels, usd: f64) {
        self.cost.get_or_create(labels).inc_by(usd);
    }

    /// A request refused for `reason`.
    pub fn rejected(&self, reason: &str) {
        self.rejections
            .get_or_create(&RejectionLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A call of `tenant` not admitted, for `reason`.
    pub fn refused(&self, reason: &str, tenant: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// Calls of `tenant` not admitted for `reason` so far.
    pub fn refusals(&self, reason: &str, tenant: &str) -> u64 {
        self.refusals
            .get(&RefusalLabels {
                reason: reason.to_owned(),
                tenant: tenant.to_owned(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// The counter of connections shed (the listener increments it).
    pub fn connections_shed(&self) -> Counter {
        self.connections_shed.clone()
    }

    /// Requests refused for `reason` so far.
    pub fn rejections(&self, reason: &str) -> u64 {
        self.rejections
            .get(&RejectionLabels {
                reason: reason.to_owned(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// The event writer's count of enqueued workflow jobs (a counter kept
    /// by the writer; this catches the metric up to it).
    pub fn workflow_jobs(&self, created: u64) {
        self.workflow_jobs
            .inc_by(created.saturating_sub(self.workflow_jobs.get()));
    }

    /// The event writer's backlog, as last observed.
    pub fn events(&self, buffered: u64, spilled: u64) {
        self.events_buffered
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
        self.events_spilled
            .set(i64::try_from(spilled).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exposes_the_documented_names() {
        let mut registry = Registry::with_prefix("dialtone_voice");
        let m = Metrics::register(&mut registry);
        m.call_started("harbour-dental");
        m.call_started("harbour-dental");
        m.call_closed("harbour-dental", "ended", 42.0);
        m.turn("harbour-dental", 0.002);
        m.objective("harbour-dental", "book-appointment", true);
        m.cost(
            &CostLabels {
                tenant: "harbour-dental".to_owned(),
                agent: "reception".to_owned(),
                objective: "book-appointment".to_owned(),
                core_version: "0.1.0".to_owned(),
            },
            0.25,
        );
        m.rejected("invalid");
        m.refused("tenant-full", "harbour-dental");
        m.connections_shed().inc();
        m.events(3, 1);
        m.workflow_jobs(4);
        m.workflow_jobs(6);
        m.draining();
        m.provider("tts", "builtin", 0.003, true);
        m.provider("stt", "deepgram", 0.2, false);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            r#"dialtone_voice_active_calls{tenant="harbour-dental"} 1"#,
            r#"dialtone_voice_calls_total{tenant="harbour-dental",outcome="ended"} 1"#,
            r#"dialtone_voice_turn_latency_seconds_bucket{le="0.002",tenant="harbour-dental"} 1"#,
            r#"dialtone_voice_call_duration_seconds_sum{tenant="harbour-dental"} 42.0"#,
            r#"dialtone_voice_objective_completions_total{tenant="harbour-dental",objective="book-appointment",result="completed"} 1"#,
            r#"dialtone_voice_cost_usd_total{tenant="harbour-dental",agent="reception",objective="book-appointment",core_version="0.1.0"} 0.25"#,
            r#"dialtone_voice_signature_rejections_total{reason="invalid"} 1"#,
            r#"dialtone_voice_calls_refused_total{reason="tenant-full",tenant="harbour-dental"} 1"#,
            "dialtone_voice_connections_shed_total 1",
            "dialtone_voice_events_buffered 3",
            "dialtone_voice_events_spilled 1",
            "dialtone_voice_workflow_jobs_created_total 6",
            "dialtone_voice_draining 1",
            r#"dialtone_voice_provider_requests_total{role="tts",vendor="builtin",result="ok"} 1"#,
            r#"dialtone_voice_provider_requests_total{role="stt",vendor="deepgram",result="error"} 1"#,
            r#"dialtone_voice_provider_latency_seconds_bucket{le="0.004",role="tts",vendor="builtin"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.active_calls(), 1);
        assert_eq!(m.calls_closed("harbour-dental", "ended"), 1);
        assert_eq!(m.rejections("invalid"), 1);
    }
}
