//! `Campaign`: an outbound calling run.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Weekday};

/// An outbound calling run: who to call, when, how fast, and within what
/// budget. Leads are loaded into the database and dialled by the workers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "Campaign",
    namespaced,
    status = "CampaignStatus",
    shortname = "camp",
    category = "dialtone",
    printcolumn = r#"{"name":"Agent","type":"string","description":"The agent placing the calls","jsonPath":".spec.agent"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","description":"Where the campaign is","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Done","type":"integer","description":"Leads finished","jsonPath":".status.leads.completed"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","description":"Leads in all","jsonPath":".status.leads.total"}"#,
    printcolumn = r#"{"name":"Spend","type":"number","description":"Spend in USD","jsonPath":".status.spendUsd"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the campaign is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the campaign is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "An outbound calling run: agent, audience, schedule windows, pacing, retries, suppression and budget."
)]
#[serde(rename_all = "camelCase")]
pub struct CampaignSpec {
    /// The Agent placing the calls, in the same namespace.
    pub agent: String,
    /// Who to call.
    pub audience: Audience,
    /// Caller ids to place calls from (E.164), rotated; each must be one of
    /// the agent's outbound numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub caller_ids: Vec<CallerId>,
    /// When calls may be placed, in the tenant's time zone.
    pub schedule: Schedule,
    /// How fast calls are placed.
    #[serde(default)]
    pub pacing: Pacing,
    /// Retries of unanswered or failed calls.
    #[serde(default)]
    pub retries: CampaignRetries,
    /// Do-not-call and suppression rules.
    #[serde(default)]
    pub compliance: Compliance,
    /// Spend ceiling for the whole campaign, in USD; dialing stops before it
    /// is exceeded (the tenant's budgets apply too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("budgetUsd must not be negative"))]
    pub budget_usd: Option<f64>,
    /// Why the calls are made: it decides the legal calling hours that
    /// apply on top of the schedule (the platform's floor for the purpose)
    /// and whether a fresh do-not-call register wash is required.
    #[serde(default)]
    pub purpose: CampaignPurpose,
    /// What happens when a machine answers.
    #[serde(default)]
    pub voicemail: VoicemailPolicy,
    /// Pauses dialing; calls in flight finish.
    #[serde(default)]
    pub suspend: bool,
}

/// Why a campaign calls.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CampaignPurpose {
    /// Selling or promoting: the telemarketing hours apply and the
    /// do-not-call register must have been washed within 30 days.
    #[default]
    Telemarketing,
    /// Surveys and opinion research: the research hours apply.
    Research,
    /// Reminders and notices to existing customers (appointments, bills):
    /// the telemarketing hours apply; numbers on the register loaded are
    /// still skipped when `respectDoNotCall` is set.
    Informational,
}

/// What to do when answering-machine detection says a machine answered.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VoicemailPolicy {
    /// `hangup` (the default: a person wrongly detected as a machine hears
    /// nothing rather than a recording), `leaveMessage` or `retryLater`.
    #[serde(default)]
    pub policy: VoicemailAction,
    /// The message left with `leaveMessage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub message: Option<String>,
}

/// What to do with a machine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VoicemailAction {
    /// Hang up; the lead counts as reached by voicemail.
    #[default]
    Hangup,
    /// Wait for the beep, say the message, hang up.
    LeaveMessage,
    /// Hang up and try again later (an attempt is used).
    RetryLater,
}

/// A caller id.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallerId {
    /// The number, E.164.
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\+[1-9][0-9]{6,14}$')").message("caller id must be E.164, e.g. +61290001234"))]
    pub number: String,
}

/// Who to call: inline leads, or a CSV in a ConfigMap or Secret (a header
/// row naming `phone` and optionally `name`, `timezone` and further fields).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(size(self.leads) > 0 ? 1 : 0) + (has(self.configMapRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1").message("give exactly one of leads, configMapRef or secretRef"))]
pub struct Audience {
    /// Leads listed in the spec (small campaigns).
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub leads: Vec<Lead>,
    /// A CSV in a ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<CsvRef>,
    /// A CSV in a Secret key (for personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<CsvRef>,
}

/// A key holding a CSV of leads.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CsvRef {
    /// Name of the ConfigMap or Secret in the campaign's namespace.
    pub name: String,
    /// Key holding the CSV.
    pub key: String,
}

/// One person to call.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    /// Phone number, E.164.
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\+[1-9][0-9]{6,14}$')").message("lead phone must be E.164, e.g. +61412345678"))]
    pub phone: String,
    /// Name, used in greetings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The lead's IANA timezone (e.g. `Australia/Perth`); without it, the
    /// number's region decides, else the tenant's timezone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub timezone: Option<String>,
    /// Further fields available to the agent's objectives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// When calls may be placed, in each recipient's local time, within the
/// platform's legal hours for the campaign's purpose and never on the
/// tenant's holidays.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.startDate) || !has(self.endDate) || self.startDate <= self.endDate").message("startDate must not be after endDate"))]
pub struct Schedule {
    /// Weekly windows in each recipient's local time.
    #[schemars(length(min = 1, max = 50))]
    pub windows: Vec<ScheduleWindow>,
    /// First day of dialing, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')").message("startDate must be YYYY-MM-DD"))]
    #[schemars(length(max = 10))]
    pub start_date: Option<String>,
    /// Last day of dialing, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')").message("endDate must be YYYY-MM-DD"))]
    #[schemars(length(max = 10))]
    pub end_date: Option<String>,
}

/// A weekly dialing window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start < self.end").message("a window's start must be before its end"))]
pub struct ScheduleWindow {
    /// Days the window applies to.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Start, 24-hour `HH:MM`.
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("start must be HH:MM"))]
    pub start: String,
    /// End, 24-hour `HH:MM`, after start.
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$')").message("end must be HH:MM"))]
    pub end: String,
}

/// How fast calls are placed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pacing {
    /// Calls in flight at once (the tenant's limit applies too).
    #[serde(default = "default_concurrency")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("maxConcurrentCalls must be between 1 and 1000"))]
    pub max_concurrent_calls: i32,
    /// Calls started per minute.
    #[serde(default = "default_cpm")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 6000").message("callsPerMinute must be between 1 and 6000"))]
    pub calls_per_minute: i32,
    /// Calls per caller id per day, to protect its reputation.
    #[serde(default = "default_cap")]
    #[x_kube(validation = Rule::new("self >= 1").message("perCallerIdDailyCap must be positive"))]
    pub per_caller_id_daily_cap: i32,
}

fn default_concurrency() -> i32 {
    5
}
fn default_cpm() -> i32 {
    10
}
fn default_cap() -> i32 {
    50
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            max_concurrent_calls: default_concurrency(),
            calls_per_minute: default_cpm(),
            per_caller_id_daily_cap: default_cap(),
        }
    }
}

/// Retries of unanswered or failed calls.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CampaignRetries {
    /// Attempts per lead in all.
    #[serde(default = "default_lead_attempts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10").message("maxAttempts must be between 1 and 10"))]
    pub max_attempts: i32,
    /// Minutes between attempts at one lead.
    #[serde(default = "default_retry_minutes")]
    #[x_kube(validation = Rule::new("self >= 1").message("backoffMinutes must be positive"))]
    pub backoff_minutes: i32,
}

fn default_lead_attempts() -> i32 {
    3
}
fn default_retry_minutes() -> i32 {
    60
}

impl Default for CampaignRetries {
    fn default() -> Self {
        Self {
            max_attempts: default_lead_attempts(),
            backoff_minutes: default_retry_minutes(),
        }
    }
}

/// Do-not-call and suppression.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Compliance {
    /// Skip numbers on the tenant's suppression list (callers who asked not
    /// to be called, and the national do-not-call register when loaded).
    #[serde(default = "default_true")]
    pub respect_do_not_call: bool,
    /// Further numbers never to call, E.164.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub suppress: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl Default for Compliance {
    fn default() -> Self {
        Self {
            respect_do_not_call: true,
            suppress: Vec::new(),
        }
    }
}

/// Where a campaign is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CampaignPhase {
    /// Not loaded yet, or its Agent is not ready.
    #[default]
    Pending,
    /// Loaded; its start date is still ahead.
    Scheduled,
    /// Placing calls.
    Dialing,
    /// Suspended by the spec, or stopped by the failure breaker or a stale
    /// do-not-call register (see the `Dialing` condition).
    Paused,
    /// No lead is inside its window now.
    OutsideWindow,
    /// Stopped by its budget or the tenant's daily budget.
    BudgetExhausted,
    /// Every lead is finished.
    Completed,
    /// Cannot run (its end date passed with leads left, or its spec cannot
    /// be dialed).
    Failed,
}

/// Progress of a campaign.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` summarises them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the campaign is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CampaignPhase>,
    /// Lead counts by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leads: Option<LeadCounts>,
    /// Spend so far, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
    /// Answered by a person, of the calls that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_rate: Option<f64>,
    /// When the next lead's window opens, while outside every window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window_start: Option<String>,
    /// The last dialing error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Lead counts by state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadCounts {
    /// Leads in all.
    pub total: i64,
    /// Not yet called, or waiting for a retry.
    pub pending: i64,
    /// Calls in flight.
    pub dialing: i64,
    /// Finished with a call outcome.
    pub completed: i64,
    /// Gave up after the last attempt.
    pub failed: i64,
    /// Skipped by do-not-call or suppression.
    pub suppressed: i64,
    /// Reached a machine (and, by policy, are done).
    #[serde(default)]
    pub voicemail: i64,
}
