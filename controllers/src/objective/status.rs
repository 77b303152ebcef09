//! Pure status computation of an Objective: spec and tenant in, status out.

use dialtone_crds::common::{Condition, ConditionUpdate, READY, merge_conditions};
use dialtone_crds::objective::{Objective, ObjectiveStatus};
use dialtone_crds::tenant::TenantSpec;
use dialtone_engine::{ValidObjective, ValidationError, validate_objective};
use jiff::Timestamp;

/// The objective passed validation.
pub const VALIDATED: &str = "Validated";
/// The longest status message, in bytes.
pub const MAX_MESSAGE: usize = 1000;

/// What validating an Objective gave.
pub type Outcome = Result<ValidObjective, Vec<ValidationError>>;

/// Validates `objective` against its tenant's spec (if the namespace
/// belongs to a Tenant).
pub fn validate(objective: &Objective, tenant: Option<&TenantSpec>) -> Outcome {
    validate_objective(&objective.spec, tenant)
}

/// Every error as `path: message`, joined with `"; "`, at most
/// [`MAX_MESSAGE`] bytes.
pub fn error_message(errors: &[ValidationError]) -> String {
    let joined = errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    truncate(joined, MAX_MESSAGE)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let ellipsis = "…";
        let mut cut = max - ellipsis.len();
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(ellipsis);
    }
    s
}

/// The status the controller owns. An invalid objective keeps the last good
/// `summary`: the last good version keeps serving.
pub fn desired(objective: &Objective, outcome: &Outcome, now: Timestamp) -> ObjectiveStatus {
    let current = objective.status.as_ref();
    let generation = objective.metadata.generation;
    let (updates, summary) = match outcome {
        Ok(valid) => {
            let s = &valid.summary;
            let message = format!(
                "{} steps, {} required slots, {} test calls",
                s.steps,
                s.required_slots.len(),
                s.test_calls
            );
            (
                [
                    ConditionUpdate::truthy(VALIDATED, "Valid", message.clone()),
                    ConditionUpdate::truthy(READY, "Validated", message),
                ],
                Some(valid.summary.clone()),
            )
        }
        Err(errors) => {
            let reason = errors
                .first()
                .map_or("InvalidObjective", |e| e.kind.reason());
            let message = error_message(errors);
            (
                [
                    ConditionUpdate::falsy(VALIDATED, reason, message.clone()),
                    ConditionUpdate::falsy(READY, reason, message),
                ],
                current.and_then(|s| s.summary.clone()),
            )
        }
    };
    ObjectiveStatus {
        observed_generation: generation,
        conditions: merge_conditions(
            current.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &updates,
            generation,
            now,
        ),
        summary,
    }
}

/// Whether writing `desired` would change anything.
pub fn needs_write(current: Option<&ObjectiveStatus>, desired: &ObjectiveStatus) -> bool {
    current != Some(desired)
}

/// The `Validated` condition of `after` when its status or reason differs
/// from `before` (an Event is due).
pub fn validated_change<'a>(
    before: Option<&ObjectiveStatus>,
    after: &'a ObjectiveStatus,
) -> Option<&'a Condition> {
    let find = |s: &ObjectiveStatus| s.conditions.iter().find(|c| c.type_ == VALIDATED).cloned();
    let now = after.conditions.iter().find(|c| c.type_ == VALIDATED)?;
    let was = before.and_then(find);
    match was {
        Some(w) if w.status == now.status && w.reason == now.reason => None,
        _ => Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::common::is_true;
    use dialtone_crds::objective::ObjectiveSpec;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    fn objective(yaml: &str, generation: i64) -> Objective {
        let spec: ObjectiveSpec = serde_yaml::from_str(yaml).expect("spec");
        let mut o = Objective::new("lead", spec);
        o.metadata.namespace = Some("tenant-acme".into());
        o.metadata.generation = Some(generation);
        o
    }

    const VALID: &str = r#"
start: ask-phone
steps:
  - id: ask-phone
    kind: capture
    capture: {slot: phone, primitive: phone, onFailure: end}
    next: done
  - id: done
    kind: end
    end: {outcome: lead-captured}
"#;

    const CYCLIC: &str = r#"
start: ask-name
steps:
  - {id: ask-name, kind: capture, capture: {slot: name, primitive: name, onFailure: end}, next: ask-phone}
  - {id: ask-phone, kind: capture, capture: {slot: phone, primitive: phone, onFailure: end}, next: ask-name}
"#;

    fn cond<'a>(s: &'a ObjectiveStatus, t: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    fn tenant() -> TenantSpec {
        serde_yaml::from_str(
            "displayName: Acme\nprofile: { timezone: Australia/Sydney }\nescalationContacts: [{name: manager, phone: '+61291234567'}]\n",
        )
        .expect("tenant")
    }

    #[test]
    fn valid_objective_is_ready_with_summary() {
        let o = objective(VALID, 2);
        let t = tenant();
        let s = desired(&o, &validate(&o, Some(&t)), at(10));
        assert!(is_true(&s.conditions, VALIDATED));
        assert!(is_true(&s.conditions, READY));
        assert_eq!(cond(&s, VALIDATED).reason, "Valid");
        assert_eq!(cond(&s, READY).reason, "Validated");
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.summary.as_ref().map(|s| s.steps), Some(2));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
    }

    #[test]
    fn cycle_is_reported_and_last_summary_kept() {
        let mut o = objective(VALID, 1);
        let good = desired(&o, &validate(&o, None), at(10));
        o.status = Some(good.clone());
        o.spec = objective(CYCLIC, 2).spec;
        o.metadata.generation = Some(2);
        let s = desired(&o, &validate(&o, None), at(20));
        let v = cond(&s, VALIDATED);
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("False", "CycleDetected")
        );
        assert!(v.message.contains('→'), "{}", v.message);
        assert!(v.message.contains("spec."), "{}", v.message);
        let r = cond(&s, READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "CycleDetected")
        );
        assert_eq!(r.last_transition_time.0, at(20));
        assert_eq!(s.summary, good.summary, "last good summary kept");
        assert_eq!(s.observed_generation, Some(2));
        assert!(validated_change(o.status.as_ref(), &s).is_some());
    }

    #[test]
    fn first_error_gives_reason_and_every_error_is_listed() {
        let errors = vec![
            ValidationError {
                kind: dialtone_engine::ErrorKind::Cycle,
                path: "spec.steps[0].next".into(),
                message: "a → b → a".into(),
            },
            ValidationError {
                kind: dialtone_engine::ErrorKind::UnknownStep,
                path: "spec.steps[1].next".into(),
                message: "no step x".into(),
            },
        ];
        let o = objective(VALID, 1);
        let s = desired(&o, &Err(errors), at(5));
        let v = cond(&s, VALIDATED);
        assert_eq!(v.reason, "CycleDetected");
        assert_eq!(
            v.message,
            "spec.steps[0].next: a → b → a; spec.steps[1].next: no step x"
        );
        assert_eq!(s.summary, None);
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let errors: Vec<_> = (0..200)
            .map(|i| ValidationError {
                kind: dialtone_engine::ErrorKind::Cycle,
                path: format!("spec.steps[{i}]"),
                message: "x → y".into(),
            })
            .collect();
        let m = error_message(&errors);
        assert!(m.len() <= MAX_MESSAGE);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn second_identical_reconcile_writes_nothing() {
        let mut o = objective(VALID, 1);
        let first = desired(&o, &validate(&o, None), at(10));
        o.status = Some(first.clone());
        let second = desired(&o, &validate(&o, None), at(99));
        assert!(!needs_write(o.status.as_ref(), &second));
        assert!(validated_change(o.status.as_ref(), &second).is_none());
        assert!(needs_write(None, &first));
    }
}
