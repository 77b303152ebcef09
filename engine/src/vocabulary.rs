//! The words the engine, its validation and its tests share: the event
//! type names and `{{slots.name}}` references.

/// Every event type name, as written in test expectations.
pub const EVENT_TYPES: &[&str] = &[
    "appointmentRequested",
    "bargeIn",
    "callStarted",
    "captureFailed",
    "escalation",
    "objectiveCompleted",
    "objectiveFailed",
    "repairAttempted",
    "silenceReprompted",
    "slotCaptured",
    "slotConfirmed",
    "slotRejected",
    "slotSkipped",
    "workflowResult",
];

/// The slot names referenced as `{{slots.name}}` in a parameter value.
pub fn slot_refs(value: &str) -> impl Iterator<Item = &str> {
    value.split("{{").skip(1).filter_map(|part| {
        let inner = part.split("}}").next()?.trim();
        inner.strip_prefix("slots.")
    })
}
