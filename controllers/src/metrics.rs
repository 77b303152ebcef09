//! Reconcile metrics shared by every controller. Labels stay low-cardinality:
//! the controller name, a result word and an error category — never an
//! object name.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of `dialtone_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The controller, e.g. `tenant`.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

/// Labels of `dialtone_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller, e.g. `tenant`.
    pub controller: String,
    /// The error's category, as returned by the controller error's `category()`.
    pub category: String,
}

/// Labels of `dialtone_reconcile_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller, e.g. `tenant`.
    pub controller: String,
}

type HistogramFamily = Family<ControllerLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms .. ~20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The operator's reconcile metrics.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: HistogramFamily,
    leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them (prefix the registry with
    /// `dialtone` to get `dialtone_reconciles_total` and friends).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: HistogramFamily::new_with_constructor(duration_histogram),
            leader: Gauge::default(),
        };
        registry.register(
            "reconciles",
            "Reconciliations by controller and result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciliations by controller and error category",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconciliation",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease, else 0",
            metrics.leader.clone(),
        );
        metrics
    }

    /// Records a finished reconciliation.
    pub fn reconciled(&self, controller: &str, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a failed reconciliation by category.
    pub fn failed(&self, controller: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                category: category.to_owned(),
            })
            .inc();
    }

    /// Sets the `dialtone_leader` gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Reconciles counted so far for `controller` and `result` (tests, diagnostics).
    pub fn reconcile_count(&self, controller: &str, result: &str) -> u64 {
        self.reconciles
            .get(&ResultLabels {
                controller: controller.to_owned(),
                result: result.to_owned(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exposes_the_documented_names() {
        let mut registry = Registry::with_prefix("dialtone");
        let metrics = Metrics::register(&mut registry);
        metrics.reconciled("tenant", true, Duration::from_millis(12));
        metrics.failed("provider", "SecretReadFailed");
        metrics.set_leader(true);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(r#"dialtone_reconciles_total{controller="tenant",result="success"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"dialtone_reconcile_errors_total{controller="provider",category="SecretReadFailed"} 1"#));
        assert!(text.contains("dialtone_reconcile_duration_seconds_bucket"));
        assert!(text.contains("dialtone_leader 1"));
        assert_eq!(metrics.reconcile_count("tenant", "success"), 1);
    }
}
