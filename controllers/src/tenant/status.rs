//! Pure status computation of a Tenant: what was observed in, status out.

use dialtone_crds::common::{ConditionUpdate, READY, merge_conditions};
use dialtone_crds::{Tenant, TenantStatus};
use jiff::Timestamp;

/// The namespace exists, is ours and is active.
pub const NAMESPACE_READY: &str = "NamespaceReady";
/// Quota, LimitRange, NetworkPolicies, ServiceAccount and RBAC are applied.
pub const GUARDRAILS_READY: &str = "GuardrailsReady";
/// `spec.suspend` is set: no new calls are answered or placed.
pub const SUSPENDED: &str = "Suspended";

/// What one reconcile found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The spec cannot be turned into objects; waits for a change.
    Invalid(String),
    /// The namespace exists but belongs to someone else; it is never adopted.
    NamespaceConflict { namespace: String },
    /// The namespace is being deleted (by someone else); it is recreated once gone.
    NamespaceTerminating { namespace: String },
    /// Every child was applied.
    Applied {
        namespace: String,
        namespace_active: bool,
    },
    /// The Tenant is being deleted; its namespace is going.
    Deleting { namespace: String },
}

/// The status the controller owns (never `spend`, which the cost pipeline
/// writes with its own field manager). `dead_letters` is the count of the
/// tenant's dead-lettered workflow jobs, when the database could be asked.
pub fn desired(
    tenant: &Tenant,
    obs: &Observation,
    now: Timestamp,
    dead_letters: Option<i64>,
) -> TenantStatus {
    let current = tenant.status.as_ref();
    let generation = tenant.metadata.generation;
    let suspended = tenant.spec.suspend;
    let suspend_update = if suspended {
        ConditionUpdate::truthy(
            SUSPENDED,
            "Suspended",
            "spec.suspend is set: no new calls are answered or placed",
        )
    } else {
        ConditionUpdate::falsy(SUSPENDED, "Active", "the tenant takes calls")
    };
    let (ns_update, guard_update, ready_update, namespace) = match obs {
        Observation::Invalid(msg) => (
            ConditionUpdate::falsy(NAMESPACE_READY, "InvalidSpec", msg.clone()),
            ConditionUpdate::falsy(
                GUARDRAILS_READY,
                "NamespaceNotReady",
                "waiting for the namespace",
            ),
            ConditionUpdate::falsy(READY, "InvalidSpec", msg.clone()),
            None,
        ),
        Observation::NamespaceConflict { namespace } => {
            let msg = format!(
                "namespace {namespace} exists and does not belong to this tenant (label dialtone.io/tenant); choose another spec.namespace"
            );
            (
                ConditionUpdate::falsy(NAMESPACE_READY, "NamespaceConflict", msg.clone()),
                ConditionUpdate::falsy(
                    GUARDRAILS_READY,
                    "NamespaceNotReady",
                    "waiting for the namespace",
                ),
                ConditionUpdate::falsy(READY, "NamespaceConflict", msg),
                None,
            )
        }
        Observation::NamespaceTerminating { namespace } => {
            let msg =
                format!("namespace {namespace} is being deleted; it is recreated once it is gone");
            (
                ConditionUpdate::falsy(NAMESPACE_READY, "NamespaceTerminating", msg.clone()),
                ConditionUpdate::falsy(
                    GUARDRAILS_READY,
                    "NamespaceNotReady",
                    "waiting for the namespace",
                ),
                ConditionUpdate::falsy(READY, "NamespaceTerminating", msg),
                Some(namespace.clone()),
            )
        }
        Observation::Applied {
            namespace,
            namespace_active,
        } => {
            let guard = ConditionUpdate::truthy(
                GUARDRAILS_READY,
                "Applied",
                "quota, limit range, network policies, service account and RBAC are applied",
            );
            if *namespace_active {
                let ready = if suspended {
                    ConditionUpdate::truthy(
                        READY,
                        "Suspended",
                        "the tenant is reconciled and suspended",
                    )
                } else {
                    ConditionUpdate::truthy(
                        READY,
                        "Reconciled",
                        format!("namespace {namespace} and its guardrails are ready"),
                    )
                };
                (
                    ConditionUpdate::truthy(
                        NAMESPACE_READY,
                        "NamespaceActive",
                        format!("namespace {namespace} is active"),
                    ),
                    guard,
                    ready,
                    Some(namespace.clone()),
                )
            } else {
                let msg = format!("namespace {namespace} is not active yet");
                (
                    ConditionUpdate::falsy(NAMESPACE_READY, "NamespacePending", msg.clone()),
                    guard,
                    ConditionUpdate::falsy(READY, "NamespacePending", msg),
                    Some(namespace.clone()),
                )
            }
        }
        Observation::Deleting { namespace } => {
            let msg = format!(
                "the tenant is being deleted; waiting for namespace {namespace} to be removed"
            );
            (
                ConditionUpdate::falsy(NAMESPACE_READY, "Deleting", msg.clone()),
                ConditionUpdate::falsy(GUARDRAILS_READY, "Deleting", msg.clone()),
                ConditionUpdate::falsy(READY, "Deleting", msg),
                Some(namespace.clone()),
            )
        }
    };
    let conditions = merge_conditions(
        current.map(|s| s.conditions.as_slice()).unwrap_or_default(),
        &[
            ns_update.clone(),
            guard_update.clone(),
            suspend_update,
            ready_update,
        ],
        generation,
        now,
    );
    TenantStatus {
        observed_generation: generation,
        conditions,
        namespace,
        health_score: Some(health_score(ns_update.status, guard_update.status)),
        spend: None,
        // A failed count keeps the last one rather than erasing it.
        dead_letter_jobs: dead_letters.or_else(|| current.and_then(|s| s.dead_letter_jobs)),
    }
}

/// 100 when everything is in place, 50 with the namespace but not its
/// guardrails, 0 without a namespace.
pub fn health_score(namespace_ready: bool, guardrails_ready: bool) -> i32 {
    match (namespace_ready, guardrails_ready) {
        (true, true) => 100,
        (true, false) => 50,
        _ => 0,
    }
}

/// Whether writing `desired` would change anything the controller owns.
pub fn needs_write(current: Option<&TenantStatus>, desired: &TenantStatus) -> bool {
    match current {
        None => true,
        Some(c) => {
            c.observed_generation != desired.observed_generation
                || c.conditions != desired.conditions
                || c.namespace != desired.namespace
                || c.health_score != desired.health_score
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::TenantSpec;
    use dialtone_crds::common::is_true;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    fn tenant(suspend: bool) -> Tenant {
        let spec: TenantSpec = serde_yaml::from_str(&format!(
            "displayName: x\nprofile: {{ timezone: UTC }}\nsuspend: {suspend}\n"
        ))
        .expect("spec");
        let mut t = Tenant::new("acme", spec);
        t.metadata.generation = Some(3);
        t
    }

    fn applied() -> Observation {
        Observation::Applied {
            namespace: "tenant-acme".into(),
            namespace_active: true,
        }
    }

    #[test]
    fn applied_is_ready_with_generation() {
        let t = tenant(false);
        let s = desired(&t, &applied(), at(10), None);
        assert!(is_true(&s.conditions, READY));
        assert!(is_true(&s.conditions, NAMESPACE_READY));
        assert!(!is_true(&s.conditions, SUSPENDED));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.health_score, Some(100));
        assert_eq!(s.namespace.as_deref(), Some("tenant-acme"));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
    }

    #[test]
    fn second_identical_reconcile_writes_nothing() {
        let mut t = tenant(false);
        let first = desired(&t, &applied(), at(10), None);
        t.status = Some(first.clone());
        let second = desired(&t, &applied(), at(99), None);
        assert_eq!(first, second);
        assert!(!needs_write(t.status.as_ref(), &second));
    }

    #[test]
    fn spend_written_by_others_does_not_force_a_write() {
        let mut t = tenant(false);
        let mut current = desired(&t, &applied(), at(10), None);
        current.spend = Some(dialtone_crds::tenant::TenantSpend {
            today_usd: 1.0,
            month_usd: 2.0,
        });
        t.status = Some(current);
        let next = desired(&t, &applied(), at(20), None);
        assert!(!needs_write(t.status.as_ref(), &next));
    }

    #[test]
    fn suspended_is_ready_with_reason_suspended() {
        let t = tenant(true);
        let s = desired(&t, &applied(), at(10), None);
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Suspended")
        );
        assert!(is_true(&s.conditions, SUSPENDED));
    }

    #[test]
    fn conflict_is_not_ready_and_flips_transition_time() {
        let mut t = tenant(false);
        t.status = Some(desired(&t, &applied(), at(10), None));
        let s = desired(
            &t,
            &Observation::NamespaceConflict {
                namespace: "kube-system".into(),
            },
            at(50),
            None,
        );
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "NamespaceConflict");
        assert_eq!(ready.last_transition_time.0, at(50));
        assert_eq!(s.health_score, Some(0));
        assert!(needs_write(t.status.as_ref(), &s));
    }

    #[test]
    fn new_generation_forces_a_write() {
        let mut t = tenant(false);
        t.status = Some(desired(&t, &applied(), at(10), None));
        t.metadata.generation = Some(4);
        let s = desired(&t, &applied(), at(20), None);
        assert!(needs_write(t.status.as_ref(), &s));
        // but transition times stay
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("ready");
        assert_eq!(ready.last_transition_time.0, at(10));
    }

    #[test]
    fn the_dead_letter_count_is_reported_and_kept_when_it_cannot_be_read() {
        let mut t = tenant(false);
        let s = desired(&t, &applied(), at(10), Some(3));
        assert_eq!(s.dead_letter_jobs, Some(3));
        t.status = Some(s);
        assert_eq!(
            desired(&t, &applied(), at(20), None).dead_letter_jobs,
            Some(3)
        );
        assert_eq!(
            desired(&t, &applied(), at(20), Some(0)).dead_letter_jobs,
            Some(0)
        );
    }
}
