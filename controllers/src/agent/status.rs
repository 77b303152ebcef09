//! Pure status of an Agent: one condition per pipeline stage, `Ready`
//! summarising them, and the Events due when a stage changes.

use dialtone_crds::agent::{Agent, AgentStatus, PhoneNumberStatus, VersionRecord};
use dialtone_crds::common::{Condition, ConditionUpdate, READY, merge_condition, merge_conditions};
use dialtone_engine::CompileErrors;
use jiff::Timestamp;

use super::names::short_version;
use super::rollout::PinError;

/// Every reference resolved and every object valid.
pub const VALIDATED: &str = "Validated";
/// Compiled into a config version, stored in the database and a ConfigMap.
pub const COMPILED: &str = "Compiled";
/// The newest version passed the Objectives' scripted test calls.
pub const SMOKE_TESTED: &str = "SmokeTested";
/// The phone numbers route to the active version (and the telephony vendor
/// sends their calls to the platform).
pub const ROUTED: &str = "Routed";
/// Voice pods are running and ready.
pub const PROVISIONED: &str = "Provisioned";
/// Each workflow's provider resolved and its parameters valid. Not a stage
/// of `Ready`: calls are answered whatever the workflows' state.
pub const WORKFLOWS: &str = "Workflows";
/// The stages in pipeline order; `Ready` reports the first that fails.
pub const STAGES: [&str; 5] = [VALIDATED, COMPILED, SMOKE_TESTED, ROUTED, PROVISIONED];
/// The longest condition message, in bytes.
pub const MAX_MESSAGE: usize = 1000;

/// Phone number states.
pub mod state {
    /// No version has passed its smoke test yet.
    pub const PENDING: &str = "Pending";
    /// Routed; the vendor is not called.
    pub const ROUTED: &str = "Routed";
    /// Routed, and the vendor's webhook points at the platform.
    pub const BOUND: &str = "Bound";
    /// Routed, but the vendor could not be updated.
    pub const BINDING_FAILED: &str = "BindingFailed";
    /// Another Agent holds the number.
    pub const CONFLICT: &str = "Conflict";
    /// The Agent or its Tenant is suspended: calls hear the suspended
    /// message; the number stays with the Agent.
    pub const SUSPENDED: &str = "Suspended";
    /// The Tenant was not granted the number: not routed.
    pub const NOT_GRANTED: &str = "NotGranted";
}

/// Truncates to [`MAX_MESSAGE`] bytes on a character boundary.
pub fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let ellipsis = "…";
        let mut cut = MAX_MESSAGE - ellipsis.len();
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(ellipsis);
    }
    s
}

/// `Validated` and `Compiled` after a failed compile: the first error's
/// reason (e.g. `CycleDetected`, `ObjectiveNotFound`) and every error with
/// its resource and field path.
pub fn compile_failed(errors: &CompileErrors) -> [ConditionUpdate; 2] {
    let reason = errors.reason();
    let message = truncate(errors.to_string());
    [
        ConditionUpdate::falsy(VALIDATED, reason, message.clone()),
        ConditionUpdate::falsy(
            COMPILED,
            reason,
            truncate(format!(
                "not compiled; the active version keeps serving: {message}"
            )),
        ),
    ]
}

/// `Validated` and `Compiled` after compiling `hash`.
pub fn compiled(hash: &str, objectives: usize) -> [ConditionUpdate; 2] {
    [
        ConditionUpdate::truthy(
            VALIDATED,
            "Valid",
            format!("{objectives} objectives and every provider resolved and valid"),
        ),
        ConditionUpdate::truthy(
            COMPILED,
            "Compiled",
            format!("compiled to {hash}, stored in config_versions and a ConfigMap"),
        ),
    ]
}

/// `Workflows` after a compile: what each workflow delivers through which
/// provider, or the workflow errors among `errors`.
pub fn workflows(
    config: Option<&dialtone_engine::CompiledConfig>,
    errors: Option<&CompileErrors>,
) -> ConditionUpdate {
    if let Some(errors) = errors {
        let failing: Vec<String> = errors
            .0
            .iter()
            .filter(|e| e.path.starts_with("spec.workflows"))
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        if !failing.is_empty() {
            let reason = if errors.0.iter().any(|e| {
                e.path.starts_with("spec.workflows")
                    && e.kind == dialtone_engine::CompileErrorKind::ProviderNotFound
            }) {
                "ProviderNotFound"
            } else {
                "InvalidWorkflow"
            };
            return ConditionUpdate::falsy(WORKFLOWS, reason, truncate(failing.join("; ")));
        }
        return ConditionUpdate::falsy(
            WORKFLOWS,
            "NotCompiled",
            "the Agent did not compile; the active version's workflows keep running",
        );
    }
    let Some(config) = config else {
        return ConditionUpdate::falsy(WORKFLOWS, "NotCompiled", "not compiled yet");
    };
    let workflows = &config.agent.workflows;
    if workflows.is_empty() {
        return ConditionUpdate::truthy(WORKFLOWS, "NoWorkflows", "the Agent has no workflows");
    }
    let each: Vec<String> = workflows
        .iter()
        .map(|w| {
            let via = config.workflow_providers.get(&w.name).map_or_else(
                || "builtin (recorded, not sent)".to_owned(),
                |p| format!("{} ({})", p.name, p.vendor.as_str()),
            );
            format!(
                "{} on {} → {} via {via}",
                w.name,
                dialtone_engine::workflow::trigger_name(w.trigger),
                dialtone_engine::workflow::action_name(w.action)
            )
        })
        .collect();
    ConditionUpdate::truthy(WORKFLOWS, "Resolved", truncate(each.join("; ")))
}

/// `SmokeTested` from a version's history record.
pub fn smoke_tested(record: &VersionRecord, tests: usize) -> ConditionUpdate {
    match record.smoke_test.as_deref() {
        Some(super::rollout::PASSED) => ConditionUpdate::truthy(
            SMOKE_TESTED,
            "Passed",
            format!(
                "{tests} scripted test calls passed on {}",
                short_version(&record.hash)
            ),
        ),
        Some(failed) => ConditionUpdate::falsy(
            SMOKE_TESTED,
            "SmokeTestFailed",
            truncate(format!(
                "{} is not activated: {}",
                short_version(&record.hash),
                failed.strip_prefix("Failed: ").unwrap_or(failed)
            )),
        ),
        None => ConditionUpdate::falsy(SMOKE_TESTED, "NotRun", "the smoke test has not run"),
    }
}

/// A phone number's status.
pub fn number(number: &str, state: &str, message: Option<String>) -> PhoneNumberStatus {
    PhoneNumberStatus {
        number: number.to_owned(),
        state: state.to_owned(),
        message,
        voice_url: None,
        bound_with: None,
    }
}

/// `Routed` from the rollout and every number's state.
pub fn routed(
    target: Option<&str>,
    pin_error: Option<&PinError>,
    numbers: &[PhoneNumberStatus],
    suspended: bool,
) -> ConditionUpdate {
    if suspended {
        return ConditionUpdate::falsy(
            ROUTED,
            "Suspended",
            "suspended: calls to the numbers hear that the service is unavailable",
        );
    }
    let Some(target) = target else {
        return ConditionUpdate::falsy(
            ROUTED,
            "NoActiveVersion",
            "no config version has passed its smoke test yet",
        );
    };
    if let Some(e) = pin_error {
        return ConditionUpdate::falsy(
            ROUTED,
            e.reason(),
            format!("{e}; {} keeps serving", short_version(target)),
        );
    }
    let list = |st: &str| -> Vec<String> {
        numbers
            .iter()
            .filter(|n| n.state == st)
            .map(|n| match &n.message {
                Some(m) => format!("{} ({m})", n.number),
                None => n.number.clone(),
            })
            .collect()
    };
    let ungranted = list(state::NOT_GRANTED);
    if !ungranted.is_empty() {
        return ConditionUpdate::falsy(
            ROUTED,
            "PhoneNumberNotGranted",
            truncate(format!(
                "numbers the Tenant was not granted are not routed: {}",
                ungranted.join(", ")
            )),
        );
    }
    let conflicts = list(state::CONFLICT);
    if !conflicts.is_empty() {
        return ConditionUpdate::falsy(
            ROUTED,
            "PhoneNumberConflict",
            truncate(format!(
                "numbers held by another Agent (the earlier claim keeps them): {}",
                conflicts.join(", ")
            )),
        );
    }
    let failed = list(state::BINDING_FAILED);
    if !failed.is_empty() {
        return ConditionUpdate::falsy(
            ROUTED,
            "TelephonyBindingFailed",
            truncate(format!(
                "routed, but the telephony vendor could not be updated: {}",
                failed.join(", ")
            )),
        );
    }
    let message = if numbers.is_empty() {
        format!(
            "{} is active; the Agent has no phone numbers",
            short_version(target)
        )
    } else {
        format!(
            "{} numbers route to {}",
            numbers.len(),
            short_version(target)
        )
    };
    ConditionUpdate::truthy(ROUTED, "Routed", message)
}

/// `Provisioned` from the ready voice pods. While none is ready, a missing
/// voice Secret (`missing_secret`, `namespace/name`) is the likely cause and
/// is named: the pods cannot start without its database URL and stream key.
pub fn provisioned(
    ready: i32,
    wanted: i32,
    place: &str,
    missing_secret: Option<String>,
) -> ConditionUpdate {
    let counted = format!("{ready} of {wanted} voice pods ready ({place})");
    if ready >= 1 {
        return ConditionUpdate::truthy(PROVISIONED, "Provisioned", counted);
    }
    match missing_secret {
        Some(secret) => ConditionUpdate::falsy(
            PROVISIONED,
            "VoiceSecretMissing",
            format!(
                "{counted}: Secret {secret} (keys {}, {}) is missing and voice pods cannot start without it",
                super::build::DATABASE_URL_KEY,
                super::build::STREAM_SECRET_KEY
            ),
        ),
        None => ConditionUpdate::falsy(PROVISIONED, "PodsNotReady", counted),
    }
}

/// What one reconcile found, before bookkeeping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Stage conditions evaluated this time; stages not evaluated keep
    /// their previous condition.
    pub updates: Vec<ConditionUpdate>,
    /// The version new calls use.
    pub active_version: Option<String>,
    /// The newest compiled version, when it is not the active one.
    pub candidate_version: Option<String>,
    /// Kept versions, newest first.
    pub history: Vec<VersionRecord>,
    /// Every phone number of the spec.
    pub phone_numbers: Vec<PhoneNumberStatus>,
    /// Ready voice pods serving the Agent.
    pub ready_replicas: Option<i32>,
    /// The Agent or its Tenant is suspended.
    pub suspended: bool,
}

/// `Ready`: `Suspended` when suspended, else the first stage that does not
/// hold, else `Serving`.
pub fn ready(conditions: &[Condition], report: &Report) -> ConditionUpdate {
    if report.suspended {
        return ConditionUpdate::truthy(
            READY,
            "Suspended",
            "suspended: no new calls are answered or placed; calls in flight finish",
        );
    }
    for stage in STAGES {
        match conditions.iter().find(|c| c.type_ == stage) {
            Some(c) if c.status == "True" => {}
            Some(c) => return ConditionUpdate::falsy(READY, &c.reason, c.message.clone()),
            None => {
                return ConditionUpdate::falsy(
                    READY,
                    "Reconciling",
                    format!("{stage} has not been evaluated yet"),
                );
            }
        }
    }
    let Some(active) = report.active_version.as_deref() else {
        return ConditionUpdate::falsy(READY, "NoActiveVersion", "no version is active");
    };
    ConditionUpdate::truthy(
        READY,
        "Serving",
        format!(
            "{} serves {} phone numbers on {} ready voice pods",
            short_version(active),
            report.phone_numbers.len(),
            report.ready_replicas.unwrap_or(0)
        ),
    )
}

/// The status the controller owns.
pub fn desired(agent: &Agent, report: &Report, now: Timestamp) -> AgentStatus {
    let generation = agent.metadata.generation;
    let current = agent
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let merged = merge_conditions(current, &report.updates, generation, now);
    let summary = ready(&merged, report);
    AgentStatus {
        observed_generation: generation,
        conditions: merge_condition(&merged, &summary, generation, now),
        active_version: report.active_version.clone(),
        candidate_version: report.candidate_version.clone(),
        history: report.history.clone(),
        phone_numbers: report.phone_numbers.clone(),
        ready_replicas: report.ready_replicas,
    }
}

/// Whether writing `desired` would change anything.
pub fn needs_write(current: Option<&AgentStatus>, desired: &AgentStatus) -> bool {
    current != Some(desired)
}

/// An Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Warning rather than Normal.
    pub warning: bool,
    /// The Event reason.
    pub reason: String,
    /// The Event action (the stage).
    pub action: &'static str,
    /// The Event note.
    pub note: String,
}

fn action(stage: &str) -> &'static str {
    match stage {
        VALIDATED => "Validate",
        COMPILED => "Compile",
        SMOKE_TESTED => "SmokeTest",
        ROUTED => "Route",
        PROVISIONED => "Provision",
        _ => "Reconcile",
    }
}

/// The Events due between two statuses: one per stage whose status or
/// reason changed, one per newly compiled version and one when the active
/// version changes.
pub fn announcements(before: Option<&AgentStatus>, after: &AgentStatus) -> Vec<Announcement> {
    let find = |s: Option<&AgentStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let mut out = Vec::new();
    for v in &after.history {
        let known = before.is_some_and(|b| b.history.iter().any(|h| h.hash == v.hash));
        if !known {
            out.push(Announcement {
                warning: false,
                reason: "VersionCompiled".to_owned(),
                action: "Compile",
                note: format!("compiled {}", v.hash),
            });
        }
    }
    for stage in STAGES.into_iter().chain([READY]) {
        let Some(c) = after.conditions.iter().find(|c| c.type_ == stage) else {
            continue;
        };
        if find(before, stage) != Some((c.status.clone(), c.reason.clone())) {
            out.push(Announcement {
                warning: c.status != "True",
                reason: c.reason.clone(),
                action: action(stage),
                note: c.message.clone(),
            });
        }
    }
    let was = before.and_then(|b| b.active_version.as_deref());
    if let Some(now) = after.active_version.as_deref()
        && was != Some(now)
    {
        out.push(Announcement {
            warning: false,
            reason: "VersionActivated".to_owned(),
            action: "Activate",
            note: match was {
                Some(w) => format!("{now} is active (was {w})"),
                None => format!("{now} is active"),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::agent::AgentSpec;
    use dialtone_crds::common::is_true;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    fn agent() -> Agent {
        let spec: AgentSpec = serde_yaml::from_str("objectives: [{name: booking}]").expect("spec");
        let mut a = Agent::new("front", spec);
        a.metadata.namespace = Some("tenant-a".into());
        a.metadata.generation = Some(3);
        a
    }

    const V1: &str = "sha256:1111111111111111aaaa";
    const V2: &str = "sha256:2222222222222222bbbb";

    fn good_report() -> Report {
        let mut updates = compiled(V1, 1).to_vec();
        updates.push(smoke_tested(
            &VersionRecord {
                hash: V1.into(),
                smoke_test: Some("Passed".into()),
                ..VersionRecord::default()
            },
            4,
        ));
        let numbers = vec![number("+61290001234", state::ROUTED, None)];
        updates.push(routed(Some(V1), None, &numbers, false));
        updates.push(provisioned(2, 2, "Deployment tenant-a/front-voice", None));
        Report {
            updates,
            active_version: Some(V1.into()),
            phone_numbers: numbers,
            ready_replicas: Some(2),
            ..Report::default()
        }
    }

    fn cond<'a>(s: &'a AgentStatus, t: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn every_stage_holding_makes_the_agent_ready() {
        let s = desired(&agent(), &good_report(), at(10));
        assert!(is_true(&s.conditions, READY));
        assert_eq!(cond(&s, READY).reason, "Serving");
        assert!(cond(&s, READY).message.contains("1111111111111111"));
        for stage in STAGES {
            assert!(is_true(&s.conditions, stage), "{stage}");
        }
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.ready_replicas, Some(2));
        let events = announcements(None, &s);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "Valid",
                "Compiled",
                "Passed",
                "Routed",
                "Provisioned",
                "Serving",
                "VersionActivated"
            ]
        );
        assert!(events.iter().all(|e| !e.warning));
    }

    #[test]
    fn a_failed_compile_keeps_the_last_version_and_names_the_problem() {
        let mut a = agent();
        a.status = Some(desired(&a, &good_report(), at(10)));
        let errors = CompileErrors(vec![dialtone_engine::CompileError {
            kind: dialtone_engine::CompileErrorKind::InvalidObjective(
                dialtone_engine::ErrorKind::Cycle,
            ),
            resource: "Objective/tenant-a/booking".into(),
            path: "spec.steps[1].next".into(),
            message: "cycle ask-name → ask-phone → ask-name".into(),
        }]);
        // Only Validated and Compiled are evaluated; routing stays.
        let report = Report {
            updates: compile_failed(&errors).to_vec(),
            ..good_report()
        };
        let s = desired(&a, &report, at(20));
        let v = cond(&s, VALIDATED);
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("False", "CycleDetected")
        );
        assert!(
            v.message.contains("ask-name → ask-phone → ask-name"),
            "{}",
            v.message
        );
        assert!(
            v.message
                .contains("Objective/tenant-a/booking spec.steps[1].next")
        );
        let r = cond(&s, READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "CycleDetected")
        );
        assert!(
            is_true(&s.conditions, ROUTED),
            "the old version stays routed"
        );
        assert_eq!(s.active_version.as_deref(), Some(V1));
        let events = announcements(a.status.as_ref(), &s);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["CycleDetected", "CycleDetected", "CycleDetected"]);
        assert!(events.iter().all(|e| e.warning));
    }

    #[test]
    fn conflicts_and_binding_failures_fail_routing() {
        let numbers = vec![
            number("+61290001234", state::ROUTED, None),
            number(
                "+61290005678",
                state::CONFLICT,
                Some("held by Agent tenant-b/other".into()),
            ),
        ];
        let r = routed(Some(V2), None, &numbers, false);
        assert_eq!(
            (r.status, r.reason.as_str()),
            (false, "PhoneNumberConflict")
        );
        assert!(
            r.message
                .contains("+61290005678 (held by Agent tenant-b/other)")
        );
        let failing = vec![number(
            "+61290001234",
            state::BINDING_FAILED,
            Some("401".into()),
        )];
        let r = routed(Some(V2), None, &failing, false);
        assert_eq!(r.reason, "TelephonyBindingFailed");
        let ungranted = vec![
            numbers[1].clone(),
            number(
                "+61290009999",
                state::NOT_GRANTED,
                Some("not in Tenant a's spec.phoneNumbers".into()),
            ),
        ];
        let r = routed(Some(V2), None, &ungranted, false);
        assert_eq!(
            (r.status, r.reason.as_str()),
            (false, "PhoneNumberNotGranted")
        );
        assert!(r.message.contains("+61290009999"), "{}", r.message);
        let r = routed(None, None, &[], false);
        assert_eq!(r.reason, "NoActiveVersion");
        let pin = PinError::NotFound("sha256:deadbeef".into());
        let r = routed(Some(V2), Some(&pin), &[], false);
        assert_eq!(r.reason, "PinnedVersionNotFound");
        assert!(
            r.message.contains("2222222222222222 keeps serving"),
            "{}",
            r.message
        );

        // Ready reports the conflict.
        let mut report = good_report();
        report.updates.push(routed(Some(V1), None, &numbers, false));
        let s = desired(&agent(), &report, at(5));
        assert_eq!(cond(&s, READY).reason, "PhoneNumberConflict");
    }

    #[test]
    fn provisioning_names_a_missing_voice_secret_only_while_no_pod_is_ready() {
        let place = "Deployment tenant-a/front-voice";
        let c = provisioned(0, 1, place, Some("tenant-a/dialtone-voice".into()));
        assert_eq!((c.status, c.reason.as_str()), (false, "VoiceSecretMissing"));
        assert!(
            c.message.contains("tenant-a/dialtone-voice"),
            "{}",
            c.message
        );
        let c = provisioned(0, 1, place, None);
        assert_eq!((c.status, c.reason.as_str()), (false, "PodsNotReady"));
        let c = provisioned(1, 2, place, Some("tenant-a/dialtone-voice".into()));
        assert_eq!((c.status, c.reason.as_str()), (true, "Provisioned"));
        assert_eq!(
            c.message,
            "1 of 2 voice pods ready (Deployment tenant-a/front-voice)"
        );
    }

    #[test]
    fn a_failed_smoke_test_names_test_and_turn() {
        let record = VersionRecord {
            hash: V2.into(),
            smoke_test: Some("Failed: objective booking: test \"books\" turn 3: expected x".into()),
            ..VersionRecord::default()
        };
        let c = smoke_tested(&record, 4);
        assert_eq!((c.status, c.reason.as_str()), (false, "SmokeTestFailed"));
        assert_eq!(
            c.message,
            "2222222222222222 is not activated: objective booking: test \"books\" turn 3: expected x"
        );
    }

    #[test]
    fn suspension_is_ready_and_unchanged_status_writes_nothing() {
        let mut report = good_report();
        report.suspended = true;
        let mut a = agent();
        let s = desired(&a, &report, at(10));
        assert_eq!(cond(&s, READY).reason, "Suspended");
        assert!(is_true(&s.conditions, READY));
        a.status = Some(s.clone());
        let again = desired(&a, &report, at(99));
        assert!(!needs_write(a.status.as_ref(), &again));
        assert!(announcements(a.status.as_ref(), &again).is_empty());
    }

    #[test]
    fn new_versions_and_activation_are_announced() {
        let mut a = agent();
        let first = desired(&a, &good_report(), at(10));
        a.status = Some(first.clone());
        let mut report = good_report();
        report.active_version = Some(V2.into());
        report.history = vec![VersionRecord {
            hash: V2.into(),
            created: "2026-01-01T00:00:00Z".into(),
            ..VersionRecord::default()
        }];
        let s = desired(&a, &report, at(20));
        let events = announcements(Some(&first), &s);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["VersionCompiled", "VersionActivated"]);
        assert!(events[1].note.contains(V1), "{}", events[1].note);
    }

    #[test]
    fn the_workflows_condition_names_the_failing_workflow_field() {
        use dialtone_engine::{CompileError, CompileErrorKind};
        let errors = CompileErrors(vec![CompileError {
            kind: CompileErrorKind::InvalidAgent,
            resource: "Agent/ns/front".into(),
            path: "spec.workflows[1].params.to".into(),
            message: "{{slots.phone}} names slot \"phone\", which no objective of this Agent captures (captured: service)".into(),
        }]);
        let c = workflows(None, Some(&errors));
        assert_eq!(
            (c.type_.as_str(), c.status, c.reason.as_str()),
            (WORKFLOWS, false, "InvalidWorkflow")
        );
        assert!(
            c.message
                .contains("spec.workflows[1].params.to: {{slots.phone}}"),
            "{}",
            c.message
        );
        let other = CompileErrors(vec![CompileError {
            kind: CompileErrorKind::ObjectiveNotFound,
            resource: "Agent/ns/front".into(),
            path: "spec.objectives[0]".into(),
            message: "no such objective".into(),
        }]);
        assert_eq!(workflows(None, Some(&other)).reason, "NotCompiled");
    }
}
