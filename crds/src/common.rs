//! Types shared by several kinds, and the condition bookkeeping every
//! controller uses.

use jiff::Timestamp;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The summary condition every kind carries.
pub const READY: &str = "Ready";

/// A language and region of the Voice Core's phrasebook and capture rules.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Locale {
    /// Australian English (the first supported locale).
    #[default]
    #[serde(rename = "en-AU")]
    EnAu,
    /// American English.
    #[serde(rename = "en-US")]
    EnUs,
}

impl Locale {
    /// The BCP 47 tag, as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::EnAu => "en-AU",
            Locale::EnUs => "en-US",
        }
    }
}

/// A day of the week, as used in business hours and schedule windows.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "PascalCase")]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl Weekday {
    /// The week, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
}

/// A key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// A condition to record, before bookkeeping fills in the time and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// The condition type, e.g. `Ready`.
    pub type_: String,
    /// Whether the condition holds.
    pub status: bool,
    /// A CamelCase machine-readable reason.
    pub reason: String,
    /// A human-readable message; never contains secret values.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition of `type_` that holds.
    pub fn truthy(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_owned(),
            status: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A condition of `type_` that does not hold.
    pub fn falsy(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_owned(),
            status: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

fn status_word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merges `update` into `conditions`, keeping `lastTransitionTime` unless the
/// status really flips, so that a reconcile that changes nothing writes
/// nothing. Returns the resulting list, sorted by type for stable output.
pub fn merge_condition(
    conditions: &[Condition],
    update: &ConditionUpdate,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = conditions
        .iter()
        .filter(|c| c.type_ != update.type_)
        .cloned()
        .collect();
    let previous = conditions.iter().find(|c| c.type_ == update.type_);
    let status = status_word(update.status);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(now),
    };
    merged.push(Condition {
        type_: update.type_.clone(),
        status: status.to_owned(),
        reason: update.reason.clone(),
        message: update.message.clone(),
        last_transition_time,
        observed_generation,
    });
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    merged
}

/// Applies several updates in order; see [`merge_condition`].
pub fn merge_conditions(
    conditions: &[Condition],
    updates: &[ConditionUpdate],
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    updates.iter().fold(conditions.to_vec(), |acc, u| {
        merge_condition(&acc, u, observed_generation, now)
    })
}

/// Whether the condition of `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The printer column for the `Ready` condition's status.
pub const READY_COLUMN: &str = r#"{"name":"Ready","type":"string","description":"Whether the resource is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#;
/// The printer column for the `Ready` condition's reason.
pub const REASON_COLUMN: &str = r#"{"name":"Reason","type":"string","description":"Why the resource is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#;
/// The printer column for the age of the resource.
pub const AGE_COLUMN: &str =
    r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid time")
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let first = merge_condition(
            &[],
            &ConditionUpdate::truthy(READY, "Reconciled", "ok"),
            Some(1),
            at(100),
        );
        let second = merge_condition(
            &first,
            &ConditionUpdate::truthy(READY, "Reconciled", "still ok"),
            Some(2),
            at(200),
        );
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].message, "still ok");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let first = merge_condition(
            &[],
            &ConditionUpdate::truthy(READY, "Reconciled", "ok"),
            Some(1),
            at(100),
        );
        let second = merge_condition(
            &first,
            &ConditionUpdate::falsy(READY, "SecretNotFound", "gone"),
            Some(1),
            at(200),
        );
        assert_eq!(second[0].status, "False");
        assert_eq!(second[0].last_transition_time, Time(at(200)));
    }

    #[test]
    fn identical_update_produces_identical_list() {
        let updates = [
            ConditionUpdate::truthy("Validated", "Valid", "ok"),
            ConditionUpdate::truthy(READY, "Reconciled", "ok"),
        ];
        let first = merge_conditions(&[], &updates, Some(3), at(100));
        let second = merge_conditions(&first, &updates, Some(3), at(500));
        assert_eq!(first, second);
        assert_eq!(
            first.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Validated"]
        );
        assert!(is_true(&second, READY));
    }
}
