//! `Agent`: who answers or places calls, and how they are run.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Locale};
use crate::tenant::Isolation;

/// Who answers or places calls. The operator compiles an Agent with its
/// Objectives and Providers into an immutable config version, smoke-tests it,
/// routes its phone numbers to it and runs its voice pods.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "Agent",
    namespaced,
    status = "AgentStatus",
    shortname = "ag",
    category = "dialtone",
    printcolumn = r#"{"name":"Persona","type":"string","description":"Tone preset of the Voice Core","jsonPath":".spec.persona"}"#,
    printcolumn = r#"{"name":"Active","type":"string","description":"The config version serving new calls","jsonPath":".status.activeVersion"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","description":"Ready voice pod replicas","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the agent is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the agent is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "Who answers or places calls: persona, locale, objectives, providers, phone numbers, workflows, runtime sizing and rollout policy."
)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The name the agent introduces itself with, e.g. "Mia from Harbour
    /// Dental". Defaults to the tenant's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Tone preset of the Voice Core. Personas change wording, never what
    /// the objective engine does.
    #[serde(default)]
    pub persona: Persona,
    /// Locale of phrasing and capture rules; defaults to the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// The Objectives the agent pursues, by name in the same namespace. The
    /// first is where every call starts.
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("an Agent needs at least one objective"))]
    pub objectives: Vec<ObjectiveRef>,
    /// The vendor accounts the agent uses, by role.
    #[serde(default)]
    pub providers: AgentProviders,
    /// Phone numbers routed to the agent. Each must be granted to the Tenant
    /// (`Tenant.spec.phoneNumbers`); a number belongs to one Agent at a time
    /// across the whole platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["number"]))]
    pub phone_numbers: Vec<PhoneNumber>,
    /// Business automation triggered by call events (CRM upsert, calendar
    /// booking, notifications, webhooks). At-least-once, idempotent, never
    /// blocks a call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub workflows: Vec<Workflow>,
    /// Voice pod sizing.
    #[serde(default)]
    pub runtime: AgentRuntime,
    /// How new config versions are rolled out and kept.
    #[serde(default)]
    pub rollout: Rollout,
    /// Stops answering and placing new calls; calls in flight finish.
    #[serde(default)]
    pub suspend: bool,
}

/// A tone preset of the Voice Core.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Persona {
    /// Clear, courteous, efficient.
    #[default]
    Professional,
    /// Warm and reassuring, for stressful calls.
    Empath,
    /// Polished hospitality.
    Concierge,
    /// Brisk and direct.
    Shark,
    /// Persuasive, for outbound sales.
    Closer,
}

impl Persona {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Professional => "professional",
            Persona::Empath => "empath",
            Persona::Concierge => "concierge",
            Persona::Shark => "shark",
            Persona::Closer => "closer",
        }
    }
}

/// A reference to an Objective in the agent's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveRef {
    /// Name of the Objective.
    pub name: String,
}

/// A reference to a Provider in the agent's namespace or a ClusterProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Name of the Provider or ClusterProvider.
    pub name: String,
    /// `Provider` (same namespace, the default) or `ClusterProvider`.
    #[serde(default)]
    pub kind: ProviderKind,
}

/// Which kind a provider reference names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ProviderKind {
    /// A Provider in the agent's namespace.
    #[default]
    Provider,
    /// A platform-wide ClusterProvider.
    ClusterProvider,
}

/// The vendor accounts an agent uses, by role. Unset roles use the
/// offline `builtin` implementation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentProviders {
    /// Phone numbers and call control (type telephony).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephony: Option<ProviderRef>,
    /// Speech to text (type stt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt: Option<ProviderRef>,
    /// Text to speech (type tts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<ProviderRef>,
    /// Language model for intent classification only (type llm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<ProviderRef>,
}

/// A phone number routed to the agent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    /// The number in E.164 form, e.g. `+61290001234`.
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\+[1-9][0-9]{6,14}$')").message("number must be E.164, e.g. +61290001234"))]
    pub number: String,
    /// Whether the number answers calls, places them (as caller id), or both.
    #[serde(default)]
    pub direction: Direction,
}

/// The direction a number is used in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Answers calls and is used as caller id.
    #[default]
    Both,
    /// Answers calls only.
    Inbound,
    /// Caller id for outbound calls only.
    Outbound,
}

/// Business automation run when a call event happens.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.action == 'webhook' ? has(self.provider) : true").message("a webhook workflow needs a provider"))]
pub struct Workflow {
    /// Unique name within the agent; part of every job's idempotency key.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a DNS label"))]
    pub name: String,
    /// The call event that triggers it. (Not named `on`: YAML 1.1 parsers,
    /// kubectl's among them, read a bare `on` as `true`.)
    pub trigger: WorkflowTrigger,
    /// What it does.
    pub action: WorkflowAction,
    /// The vendor account it uses; unset uses `builtin`, which records the
    /// request without sending it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
    /// Action parameters, e.g. `to`, `subject`, `template`. Values are
    /// templates: `{{slots.<slot>}}` (a slot an objective of the Agent
    /// captures), `{{caller}}`, `{{callee}}`, `{{callId}}`, `{{outcome}}`,
    /// `{{agent}}`, `{{tenant}}`, `{{trigger}}`; anything else is refused
    /// when the Agent is compiled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Retries before the job is dead-lettered.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// A call event workflows can react to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WorkflowTrigger {
    /// The call ended, whatever its outcome.
    CallCompleted,
    /// The objective was achieved.
    ObjectiveCompleted,
    /// The objective could not be achieved.
    ObjectiveFailed,
    /// A `book` step asked for an appointment.
    AppointmentRequested,
    /// The call was transferred or escalated.
    Escalated,
}

/// What a workflow does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WorkflowAction {
    /// Create or update the caller's record in the CRM.
    CrmUpsert,
    /// Book the requested appointment.
    CalendarBook,
    /// Send an email.
    Email,
    /// Send an SMS.
    Sms,
    /// POST the event to a signed webhook.
    Webhook,
    /// Create a payment link and hand it to the call's record.
    PaymentLink,
    /// Send a document for electronic signature from a template.
    Esign,
}

/// Retries of a workflow job with exponential backoff.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all before the job is dead-lettered.
    #[serde(default = "default_attempts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 50").message("maxAttempts must be between 1 and 50"))]
    pub max_attempts: i32,
    /// Delay before the first retry, doubling each time.
    #[serde(default = "default_backoff")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("backoffSeconds must be between 1 and 3600"))]
    pub backoff_seconds: i32,
}

fn default_attempts() -> i32 {
    5
}
fn default_backoff() -> i32 {
    10
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff_seconds: default_backoff(),
        }
    }
}

/// Voice pod sizing for the agent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct AgentRuntime {
    /// Fewest voice pods (dedicated isolation) or the agent's share of the
    /// shared pool.
    #[serde(default = "default_min_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("minReplicas must not be negative"))]
    pub min_replicas: i32,
    /// Most voice pods when autoscaling on active calls.
    #[serde(default = "default_max_replicas")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("maxReplicas must be between 1 and 100"))]
    pub max_replicas: i32,
    /// Calls one voice pod carries before autoscaling adds another.
    #[serde(default = "default_calls_per_pod")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("callsPerPod must be between 1 and 1000"))]
    pub calls_per_pod: i32,
    /// CPU request of a voice pod, as a Kubernetes quantity.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory request and limit of a voice pod, as a Kubernetes quantity.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// Overrides the Tenant's isolation for this agent: `dedicated` gives it
    /// voice pods of its own, `shared` puts it in the platform's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    3
}
fn default_calls_per_pod() -> i32 {
    20
}
fn default_cpu() -> String {
    "250m".to_owned()
}
fn default_memory() -> String {
    "256Mi".to_owned()
}

impl Default for AgentRuntime {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            calls_per_pod: default_calls_per_pod(),
            cpu: default_cpu(),
            memory: default_memory(),
            isolation: None,
        }
    }
}

/// How config versions are rolled out and kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Serve this config version (a hash from `status.history`) instead of
    /// the newest: rollback is pinning an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 80))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]+(-[a-f0-9]+)?$|^sha256:[a-f0-9]{8,64}$')").message("pinnedVersion must be a config version hash from status.history"))]
    pub pinned_version: Option<String>,
    /// Config versions kept for rollback; older ones are removed once no call
    /// in flight uses them.
    #[serde(default = "default_history")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("revisionHistoryLimit must be between 1 and 100"))]
    pub revision_history_limit: i32,
}

fn default_history() -> i32 {
    5
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            pinned_version: None,
            revision_history_limit: default_history(),
        }
    }
}

/// What the operator made of an Agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Validated, Compiled, SmokeTested, Routed, Provisioned, and `Ready`
    /// summarising them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The config version new calls use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,
    /// The newest compiled version, while it is not (yet) active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_version: Option<String>,
    /// Config versions kept for rollback, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<VersionRecord>,
    /// Each phone number and whether it is routed to the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<PhoneNumberStatus>,
    /// Ready voice pod replicas serving the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}

/// One compiled config version of an agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    /// The content hash naming the version.
    pub hash: String,
    /// When it was compiled (RFC 3339).
    pub created: String,
    /// When it last became active (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<String>,
    /// `Passed` or `Failed: <test> turn <n>: <why>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke_test: Option<String>,
}

/// Routing state of one phone number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberStatus {
    /// The number, E.164.
    pub number: String,
    /// `Pending` (no active version yet), `Routed` (routed to the active
    /// version; the vendor is not called: sip, builtin, outbound-only, or no
    /// public voice URL configured), `Bound` (routed, and the telephony
    /// vendor sends the number's calls to the platform's voice webhook),
    /// `BindingFailed` (routed, but the vendor could not be updated),
    /// `Conflict` (another Agent holds the number), `NotGranted` (the
    /// number is not in the Tenant's `spec.phoneNumbers`) or `Suspended`
    /// (calls hear that the service is unavailable; the number stays).
    pub state: String,
    /// Details, e.g. which Agent already holds a conflicting number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The voice webhook the telephony vendor was pointed at, once `Bound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_url: Option<String>,
    /// The provider and the resourceVersion of its credentials Secret that
    /// bound the number (`Provider/twilio@12345`); a change of either binds
    /// it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_with: Option<String>,
}
