//! `Objective`: what a call must achieve, as a graph of steps with scripted
//! test calls.
//!
//! Steps are a Kubernetes-style discriminated union (`kind` plus one member
//! named after it) rather than a serde-tagged enum, because internally tagged
//! and mixed enums cannot be turned into a structural CRD schema.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// What a call must achieve: a directed acyclic graph of capture, say, route,
/// transfer, book and end steps (or a built-in template with overrides), plus
/// scripted test calls that must pass before a config version is activated.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "Objective",
    namespaced,
    status = "ObjectiveStatus",
    shortname = "obj",
    category = "dialtone",
    printcolumn = r#"{"name":"Template","type":"string","description":"Built-in template the objective starts from","jsonPath":".spec.template"}"#,
    printcolumn = r#"{"name":"Steps","type":"integer","description":"Steps after applying the template","jsonPath":".status.summary.steps"}"#,
    printcolumn = r#"{"name":"Tests","type":"integer","description":"Scripted test calls","jsonPath":".status.summary.testCalls"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the objective is valid","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the objective is or is not valid","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "What a call must achieve: a graph of capture, say, route, transfer, book and end steps (or a built-in template with overrides) and the scripted test calls that guard it."
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.template) || (has(self.start) && size(self.steps) > 0)").message("an Objective without a template needs start and at least one step")
)]
pub struct ObjectiveSpec {
    /// What the objective is for, for people reading the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A built-in objective to start from: `lead-capture`,
    /// `appointment-booking`, `support-triage` or `route-to-human`. With a
    /// template, `steps` are overrides: a step whose id matches a template
    /// step replaces it whole, any other step is added, `removeSteps` deletes
    /// template steps, and `start` (if set) replaces the template's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// Id of the first step of every call. Required without a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("start must be a step id (lower-case letters, digits and dashes)"))]
    #[schemars(length(max = 63))]
    pub start: Option<String>,
    /// The steps of the graph, or the overrides of the template's steps. Step
    /// ids are unique; the graph must be acyclic and every step reachable
    /// from `start`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub steps: Vec<Step>,
    /// Template step ids to delete. Only meaningful with a template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub remove_steps: Vec<String>,
    /// What happens when the caller stays silent: how often the question is
    /// asked again, then whether the call ends or is transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<SilencePolicy>,
    /// Where calls go when a capture gives up with `onFailure: transfer` or
    /// silence ends in a transfer. Defaults to the tenant's first escalation
    /// contact, cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<TransferStep>,
    /// Scripted test calls. The operator runs them against every new config
    /// version before activating it; one failure blocks activation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tests: Vec<TestCall>,
}

/// A built-in objective of the Voice Core.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// Name, phone, what the job is, then a thank-you.
    LeadCapture,
    /// Name, phone, preferred date and time within business hours, then a
    /// booking request handed to the workflows.
    AppointmentBooking,
    /// Asks what the call is about and routes on the answer.
    SupportTriage,
    /// Transfers the caller to the tenant's escalation contact.
    RouteToHuman,
}

impl Template {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Template::LeadCapture => "lead-capture",
            Template::AppointmentBooking => "appointment-booking",
            Template::SupportTriage => "support-triage",
            Template::RouteToHuman => "route-to-human",
        }
    }
}

/// One step of the objective graph. `kind` names the member that must be
/// set; no other member may be.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.capture) == (self.kind == 'capture') && has(self.say) == (self.kind == 'say') && has(self.route) == (self.kind == 'route') && has(self.transfer) == (self.kind == 'transfer') && has(self.book) == (self.kind == 'book') && has(self.end) == (self.kind == 'end')").message("set exactly the member named by kind (kind: capture needs capture:, and no other member)"),
    validation = Rule::new("!(self.kind in ['capture', 'say', 'book']) || has(self.next)").message("capture, say and book steps need next"),
    validation = Rule::new("!(self.kind in ['route', 'transfer', 'end']) || !has(self.next)").message("route, transfer and end steps decide where the call goes themselves; remove next")
)]
pub struct Step {
    /// Unique id of the step within the objective, e.g. `ask-phone`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("id must be lower-case letters, digits and dashes"))]
    #[schemars(length(max = 63))]
    pub id: String,
    /// What the step does: `capture`, `say`, `route`, `transfer`, `book` or
    /// `end`.
    pub kind: StepKind,
    /// Asks for one piece of data and validates it (kind `capture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStep>,
    /// Says a phrase of the Voice Core's phrasebook (kind `say`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<SayStep>,
    /// Branches on slot values, the caller's stated intent or business hours
    /// (kind `route`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteStep>,
    /// Hands the call to a person (kind `transfer`). Ends the objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStep>,
    /// Hands an appointment request to the workflows without waiting for
    /// them (kind `book`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book: Option<BookStep>,
    /// Ends the call with an outcome label (kind `end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<EndStep>,
    /// The step that follows; required for capture, say and book steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub next: Option<String>,
}

/// The kind of a step.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// Ask for and validate one slot.
    Capture,
    /// Say a phrase.
    Say,
    /// Branch.
    Route,
    /// Transfer to a person.
    Transfer,
    /// Request an appointment through the workflows.
    Book,
    /// End the call.
    End,
}

impl StepKind {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Capture => "capture",
            StepKind::Say => "say",
            StepKind::Route => "route",
            StepKind::Transfer => "transfer",
            StepKind::Book => "book",
            StepKind::End => "end",
        }
    }
}

/// A capture primitive of the Voice Core: how spoken words become a value.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Primitive {
    /// A phone number, normalised to E.164 for the locale.
    Phone,
    /// An email address.
    Email,
    /// A person's given and family name.
    Name,
    /// A street address with suburb, state and postcode.
    Address,
    /// A calendar date, relative to the tenant's time zone.
    Date,
    /// A time of day.
    Time,
    /// A date and a time.
    DateTime,
    /// A number.
    Number,
    /// An amount of money.
    Money,
    /// Yes or no.
    YesNo,
    /// One of the step's `choices`.
    Choice,
}

impl Primitive {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Primitive::Phone => "phone",
            Primitive::Email => "email",
            Primitive::Name => "name",
            Primitive::Address => "address",
            Primitive::Date => "date",
            Primitive::Time => "time",
            Primitive::DateTime => "dateTime",
            Primitive::Number => "number",
            Primitive::Money => "money",
            Primitive::YesNo => "yesNo",
            Primitive::Choice => "choice",
        }
    }
}

/// Asks for one slot, validates it, confirms it if needed, and repairs
/// misunderstandings with different wording.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.primitive != 'choice' || (has(self.choices) && size(self.choices) >= 2)").message("a choice capture needs at least two choices"),
    validation = Rule::new("self.primitive == 'choice' || !has(self.choices) || size(self.choices) == 0").message("choices only apply to the choice primitive")
)]
pub struct CaptureStep {
    /// Name of the slot the value is stored in, e.g. `phone`. Later steps
    /// refer to it by this name.
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z][a-zA-Z0-9_]*$')").message("slot must start with a letter and hold letters, digits and underscores"))]
    #[schemars(length(max = 63))]
    pub slot: String,
    /// The capture primitive that understands the answer.
    pub primitive: Primitive,
    /// Phrase id of the question; defaults to the primitive's question
    /// (`ask.phone`, `ask.date`, ...). Must exist in the phrasebook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Whether the objective needs the slot. An optional slot is skipped when
    /// the caller declines ("no", "I'd rather not").
    #[serde(default = "default_true")]
    pub required: bool,
    /// Rules the value must satisfy; a value that breaks one is repaired
    /// like a misunderstanding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<CaptureRules>,
    /// The options of a `choice` capture, e.g. `[booking, emergency]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub choices: Vec<String>,
    /// When the value is read back for the caller to confirm. Defaults to
    /// `onLowConfidence`.
    #[serde(default)]
    pub confirm: ConfirmPolicy,
    /// Attempts before giving up, including the first.
    #[serde(default = "default_max_attempts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 5").message("maxAttempts must be between 1 and 5"))]
    pub max_attempts: i32,
    /// What happens after the last failed attempt: `skip` to `next`,
    /// `transfer` to the objective's escalation, or `end` the call.
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn default_true() -> bool {
    true
}

fn default_max_attempts() -> i32 {
    3
}

/// Rules a captured value must satisfy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("min must not exceed max"))]
pub struct CaptureRules {
    /// A regular expression the value's canonical text must match, e.g.
    /// `^\+614` for Australian mobiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub pattern: Option<String>,
    /// Smallest accepted value of a number or money capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest accepted value of a number or money capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only accepted canonical values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub allowed_values: Vec<String>,
    /// For date, time and dateTime captures: the value must fall within the
    /// tenant's business hours (and not on a holiday).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub within_business_hours: bool,
}

/// When a captured value is read back for confirmation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConfirmPolicy {
    /// Always read back; for critical data such as phone numbers.
    Always,
    /// Never read back.
    Never,
    /// Read back when speech recognition or parsing is not confident.
    #[default]
    OnLowConfidence,
}

/// What happens when a capture runs out of attempts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Continue to `next` without the slot.
    Skip,
    /// Transfer to the objective's escalation.
    #[default]
    Transfer,
    /// End the call as failed.
    End,
}

/// Says a phrase of the Voice Core's phrasebook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SayStep {
    /// Phrase id, e.g. `greeting`, `business-hours`, `after-hours`. The
    /// wording comes from the phrasebook for the agent's locale and persona.
    #[schemars(length(max = 63))]
    pub phrase: String,
    /// Phrase parameters. Values may name slots as `{{slots.name}}`; those
    /// slots must be captured on every path to this step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// Branches: the first branch whose condition holds decides the next step,
/// else `default`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteStep {
    /// Branches, tried in order.
    #[x_kube(validation = Rule::new("size(self) > 0").message("a route needs at least one branch"))]
    #[schemars(length(max = 50))]
    pub branches: Vec<Branch>,
    /// The step taken when no branch holds.
    #[schemars(length(max = 63))]
    pub default: String,
}

/// One branch of a route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    /// The condition; every field set in it must hold.
    pub when: BranchCondition,
    /// The step taken when it holds.
    #[schemars(length(max = 63))]
    pub next: String,
}

/// A typed condition. Set one subject (`slot`, `intent` or `businessHours`);
/// with `slot`, set exactly one comparison.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.slot), has(self.intent), has(self.businessHours)].filter(x, x).size() == 1").message("set exactly one of slot, intent or businessHours"),
    validation = Rule::new("!has(self.slot) || [has(self.equals), has(self.notEquals), has(self.oneOf), has(self.present), has(self.lessThan), has(self.greaterThan)].filter(x, x).size() == 1").message("a slot condition needs exactly one of equals, notEquals, oneOf, present, lessThan, greaterThan"),
    validation = Rule::new("has(self.slot) || !([has(self.equals), has(self.notEquals), has(self.oneOf), has(self.present), has(self.lessThan), has(self.greaterThan)].exists(x, x))").message("comparisons apply to slot conditions only")
)]
pub struct BranchCondition {
    /// A captured slot to compare. A slot that was skipped or never captured
    /// only satisfies `present: false` and `notEquals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The slot's canonical value equals this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The slot's canonical value differs from this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<String>,
    /// The slot's canonical value is one of these (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    /// Whether the slot was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// A number or money slot is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub less_than: Option<f64>,
    /// A number or money slot is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greater_than: Option<f64>,
    /// The caller's stated intent: holds when the caller's latest utterance
    /// contains any of these words or phrases (case-insensitive, whole
    /// words), e.g. `[burst, flooding, emergency]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Vec<String>>,
    /// `open` or `closed`: whether the call happens within the tenant's
    /// business hours (holidays count as closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHoursState>,
}

/// Whether the business is open.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BusinessHoursState {
    /// Within business hours and not a holiday.
    Open,
    /// Outside business hours or on a holiday.
    Closed,
}

/// Hands the call to a person.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.to) && has(self.contact))").message("set to or contact, not both"))]
pub struct TransferStep {
    /// The number to transfer to, E.164. Unset: the escalation contact named
    /// by `contact`, else the tenant's first escalation contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^\\\\+[1-9][0-9]{6,14}$')").message("to must be E.164, e.g. +61291234567"))]
    #[schemars(length(max = 16))]
    pub to: Option<String>,
    /// Name or role of one of the tenant's escalation contacts, e.g. `on-call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// `warm` (the agent briefs the person first) or `cold` (default).
    #[serde(default)]
    pub mode: TransferMode,
    /// Why the call is transferred; recorded in the escalation event and
    /// given to the person in a warm transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub reason: Option<String>,
    /// Outcome label of the call once transferred. Defaults to `transferred`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// How a call is transferred.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TransferMode {
    /// The agent briefs the person before connecting the caller.
    Warm,
    /// The caller is connected straight away.
    #[default]
    Cold,
}

/// Hands an appointment request to the workflows (event
/// `appointmentRequested`); the call continues without waiting.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BookStep {
    /// What is booked, e.g. `check-up`; passed to the workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Slots sent with the request. Each must be captured on every path to
    /// this step.
    #[x_kube(validation = Rule::new("size(self) > 0").message("a book step sends at least one slot"))]
    #[schemars(length(max = 50))]
    pub slots: Vec<String>,
    /// Appointment length in minutes, passed to the calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 480").message("durationMinutes must be between 5 and 480"))]
    pub duration_minutes: Option<i32>,
}

/// Ends the call.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndStep {
    /// Outcome label, e.g. `booked`, `lead-captured`; reported per call and
    /// in metrics, so keep the set small.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("outcome must be lower-case letters, digits and dashes"))]
    #[schemars(length(max = 63))]
    pub outcome: String,
    /// Whether the outcome achieves the objective (event
    /// `objectiveCompleted`) or not (`objectiveFailed`). Defaults to true.
    #[serde(default = "default_true")]
    pub success: bool,
    /// Phrase id said before hanging up; defaults to `goodbye`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
}

/// What happens when the caller says nothing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SilencePolicy {
    /// How often the question is asked again after a silence timeout.
    #[serde(default = "default_reprompts")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 5").message("reprompts must be between 0 and 5"))]
    pub reprompts: i32,
    /// After the last re-prompt: `end` (default) or `transfer`.
    #[serde(default)]
    pub then: SilenceAction,
}

fn default_reprompts() -> i32 {
    2
}

impl Default for SilencePolicy {
    fn default() -> Self {
        Self {
            reprompts: default_reprompts(),
            then: SilenceAction::default(),
        }
    }
}

/// What the call does when the caller stays silent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SilenceAction {
    /// End the call as `no-response`.
    #[default]
    End,
    /// Transfer to the objective's escalation.
    Transfer,
}

/// A scripted test call, run against every new config version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TestCall {
    /// Unique name, reported when the test fails.
    #[schemars(length(max = 120))]
    pub name: String,
    /// The call's time, RFC 3339, e.g. `2025-03-04T10:00:00+11:00`. Defaults
    /// to Monday 2025-03-03 10:00 in the call's time zone, so results never
    /// depend on the wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// IANA time zone of the call; defaults to the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// What the caller does, in order.
    #[schemars(length(max = 100))]
    pub turns: Vec<TestTurn>,
    /// What must be true when the call ends.
    #[serde(default)]
    pub expect: CallExpectation,
}

/// One caller turn of a test call: set exactly one of `say`, `dtmf`,
/// `silence` or `hangup`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.say), has(self.dtmf), has(self.silence) && self.silence, has(self.hangup) && self.hangup].filter(x, x).size() == 1").message("set exactly one of say, dtmf, silence: true or hangup: true")
)]
pub struct TestTurn {
    /// What the caller says (the final transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// Speech recognition confidence of `say`, 0 to 1; defaults to 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 1.0").message("confidence must be between 0 and 1"))]
    pub confidence: Option<f64>,
    /// Keypad digits the caller presses, e.g. `0412345678#`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9*#]+$')").message("dtmf holds digits, * and #"))]
    #[schemars(length(max = 64))]
    pub dtmf: Option<String>,
    /// The caller says nothing until the silence timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<bool>,
    /// The caller hangs up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup: Option<bool>,
    /// What must be true after this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<TurnExpectation>,
}

/// What must be true after one turn of a test call.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TurnExpectation {
    /// The step the call is waiting in (or ended in) after the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Phrase ids the agent says in reply, in order (a prefix match: the
    /// agent may say more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub says: Vec<String>,
    /// Slots and their canonical values after the turn.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, String>,
    /// Event types emitted in reply, e.g. `repairAttempted` (each must occur).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// What must be true when a test call ends.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallExpectation {
    /// The outcome label, e.g. `booked`, `transferred`, `hangup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Slots and their canonical values at the end of the call; slots not
    /// named are not checked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, String>,
    /// The number the call was transferred to, if it must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<String>,
    /// Event types that must have occurred during the call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// What the operator made of an Objective.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Validated` and `Ready`; a failed validation names every problem with
    /// its field path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the objective compiles to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ObjectiveSummary>,
}

/// A compiled summary of an Objective.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSummary {
    /// Steps after applying the template and overrides.
    pub steps: i32,
    /// Slots the objective needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_slots: Vec<String>,
    /// Slots the caller may decline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_slots: Vec<String>,
    /// Scripted test calls, template tests included.
    pub test_calls: i32,
    /// The template used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_serialises_with_rules_and_list_maps() {
        let crd = Objective::crd();
        let yaml = serde_yaml::to_string(&crd).expect("crd serialises");
        assert!(yaml.contains("x-kubernetes-validations"));
        assert!(yaml.contains("x-kubernetes-list-map-keys"));
        assert!(yaml.contains("set exactly the member named by kind"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["obj".to_owned()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["dialtone".to_owned()]));
    }

    #[test]
    fn spec_round_trips_from_yaml() {
        let yaml = r#"
start: ask-phone
steps:
  - id: ask-phone
    kind: capture
    capture: {slot: phone, primitive: phone, confirm: always}
    next: done
  - id: done
    kind: end
    end: {outcome: lead-captured}
tests:
  - name: happy
    turns:
      - say: "oh four one two three four five six seven eight"
    expect: {outcome: lead-captured}
"#;
        let spec: ObjectiveSpec = serde_yaml::from_str(yaml).expect("parses");
        let capture = spec.steps[0].capture.as_ref().expect("capture member");
        assert_eq!(capture.max_attempts, 3);
        assert!(capture.required);
        assert_eq!(capture.on_failure, OnFailure::Transfer);
        assert_eq!(spec.steps[1].end.as_ref().map(|e| e.success), Some(true));
        let back: ObjectiveSpec =
            serde_json::from_value(serde_json::to_value(&spec).expect("to json"))
                .expect("from json");
        assert_eq!(back, spec);
    }
}
