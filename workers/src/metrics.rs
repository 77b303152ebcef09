//! The workers' Prometheus metrics (registered under `dialtone_workflow`).
//! Label sets are bounded: tenants, actions, vendors and fixed results —
//! never a call id, a job id or a phone number.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::queue::QueueStats;

/// Labels of `dialtone_workflow_jobs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The tenant.
    pub tenant: String,
    /// The action, e.g. `calendarBook`.
    pub action: String,
    /// The vendor.
    pub vendor: String,
    /// `succeeded`, `failed` (will be retried) or `dead`.
    pub result: String,
}

/// Labels of the delivery latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action.
    pub action: String,
}

/// Labels of the vendor latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabels {
    /// The vendor.
    pub vendor: String,
}

/// Labels of the dead-letter gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The tenant.
    pub tenant: String,
}

/// Every metric of a worker.
#[derive(Clone)]
pub struct Metrics {
    jobs: Family<JobLabels, Counter>,
    delivery_latency: Family<ActionLabels, Histogram>,
    vendor_latency: Family<VendorLabels, Histogram>,
    waits: Counter,
    due: Gauge,
    pending: Gauge,
    running: Gauge,
    oldest_due: Gauge<f64, std::sync::atomic::AtomicU64>,
    dead: Family<TenantLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics under `registry` (prefix it `dialtone_workflow`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            jobs: Family::default(),
            // 10 ms .. ~5.8 h: a delivery on the first attempt lands in the
            // first buckets, retried ones in the later.
            delivery_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 22))
            }),
            // 5 ms .. ~41 s.
            vendor_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            waits: Counter::default(),
            due: Gauge::default(),
            pending: Gauge::default(),
            running: Gauge::default(),
            oldest_due: Gauge::default(),
            dead: Family::default(),
        };
        registry.register(
            "jobs",
            "Workflow attempts by tenant, action, vendor and result (succeeded, failed and retried, dead)",
            m.jobs.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "From the trigger event to the vendor's acceptance, retries included",
            Unit::Seconds,
            m.delivery_latency.clone(),
        );
        registry.register_with_unit(
            "vendor_request_duration",
            "One request to the vendor",
            Unit::Seconds,
            m.vendor_latency.clone(),
        );
        registry.register(
            "limit_waits",
            "Jobs put back because a rate limit, concurrency limit or daily cap was reached",
            m.waits.clone(),
        );
        registry.register("queue_due_jobs", "Pending jobs that are due", m.due.clone());
        registry.register(
            "queue_pending_jobs",
            "Pending jobs, due or waiting for a retry or a cap",
            m.pending.clone(),
        );
        registry.register(
            "running_jobs",
            "Jobs claimed by a worker",
            m.running.clone(),
        );
        registry.register_with_unit(
            "oldest_due_job_age",
            "How long the oldest due job has waited",
            Unit::Seconds,
            m.oldest_due.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead-lettered jobs waiting for `dialtone workflows retry` or `discard`",
            m.dead.clone(),
        );
        m
    }

    /// An attempt ended with `result`.
    pub fn attempt(&self, tenant: &str, action: &str, vendor: &str, result: &str) {
        self.jobs
            .get_or_create(&JobLabels {
                tenant: tenant.to_owned(),
                action: action.to_owned(),
                vendor: vendor.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// A job was delivered `seconds` after its trigger event.
    pub fn delivered(&self, action: &str, seconds: f64) {
        self.delivery_latency
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
            })
            .observe(seconds);
    }

    /// One vendor request took `seconds`.
    pub fn vendor_request(&self, vendor: &str, seconds: f64) {
        self.vendor_latency
            .get_or_create(&VendorLabels {
                vendor: vendor.to_owned(),
            })
            .observe(seconds);
    }

    /// A job waits for a limit.
    pub fn waited(&self) {
        self.waits.inc();
    }

    /// The queue as last read.
    pub fn queue(&self, s: &QueueStats) {
        self.due.set(s.due);
        self.pending.set(s.pending);
        self.running.set(s.running);
        self.oldest_due.set(s.oldest_due_seconds);
        self.dead.clear();
        for (tenant, n) in &s.dead {
            self.dead
                .get_or_create(&TenantLabels {
                    tenant: tenant.clone(),
                })
                .set(*n);
        }
    }
}

/// Labels of `dialtone_campaign_dials_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DialLabels {
    /// The tenant.
    pub tenant: String,
    /// `placed`, `refused` (Twilio said no for good: the lead fails) or
    /// `error` (the lead retries).
    pub result: String,
}

/// The dialer's metrics (registered under `dialtone_campaign`).
#[derive(Clone)]
pub struct DialerMetrics {
    dials: Family<DialLabels, Counter>,
    turn: Histogram,
    walk: Histogram,
}

impl DialerMetrics {
    /// Creates the metrics under `registry` (prefix it `dialtone_campaign`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            dials: Family::default(),
            // 0.5 ms .. ~4 s.
            turn: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            walk: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        };
        registry.register(
            "dials",
            "Outbound calls the dialer asked Twilio to place, by tenant and result",
            m.dials.clone(),
        );
        registry.register_with_unit(
            "dial_turn_duration",
            "One campaign's dialer turn: checks, pacing and claims, in one transaction",
            Unit::Seconds,
            m.turn.clone(),
        );
        registry.register_with_unit(
            "dialer_walk_duration",
            "One walk of the due campaigns, placing included",
            Unit::Seconds,
            m.walk.clone(),
        );
        m
    }

    /// A dial ended with `result`.
    pub fn dialed(&self, tenant: &str, result: &str) {
        self.dials
            .get_or_create(&DialLabels {
                tenant: tenant.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// One campaign turn took `took`.
    pub fn turn(&self, took: std::time::Duration) {
        self.turn.observe(took.as_secs_f64());
    }

    /// One walk took `took`.
    pub fn walked(&self, took: std::time::Duration) {
        self.walk.observe(took.as_secs_f64());
    }
}
