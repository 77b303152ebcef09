//! `Tenant`: a customer business, cluster-scoped.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Locale, Weekday};

/// A customer business of the platform. The operator gives each Tenant its
/// own namespace with quota, limits, a default-deny network policy and RBAC.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "Tenant",
    status = "TenantStatus",
    shortname = "tn",
    category = "dialtone",
    printcolumn = r#"{"name":"Namespace","type":"string","description":"The tenant's namespace","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Isolation","type":"string","description":"shared or dedicated voice pods","jsonPath":".spec.isolation"}"#,
    printcolumn = r#"{"name":"Health","type":"integer","description":"Health score from 0 to 100","jsonPath":".status.healthScore"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the tenant is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the tenant is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "A customer business of the Dialtone platform: its profile, limits, escalation contacts and isolation.",
    validation = Rule::new("has(self.spec.__namespace__) == has(oldSelf.spec.__namespace__)").message("spec.namespace cannot be added or removed after creation"),
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The business's name as callers know it, e.g. "Harbour Dental".
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 120").message("displayName must be 1 to 120 characters"))]
    pub display_name: String,
    /// The namespace that holds the tenant's Agents, Objectives, Providers and
    /// Campaigns. Defaults to `tenant-<name>`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("spec.namespace is immutable"),
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 63").message("spec.namespace must be a DNS label")
    )]
    pub namespace: Option<String>,
    /// Where and when the business operates.
    pub profile: TenantProfile,
    /// Capacity and spend limits.
    #[serde(default)]
    pub limits: TenantLimits,
    /// People calls are escalated to (warm or cold transfers, alerts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub escalation_contacts: Vec<EscalationContact>,
    /// Phone numbers the platform has granted the business, E.164. The
    /// tenant's Agents route only these; an Agent listing another number
    /// reports it `NotGranted`. Tenants are cluster-scoped, so only the
    /// platform team can grant a number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(max = 16)))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^\\\\+[1-9][0-9]{6,14}$'))").message("phoneNumbers must be E.164, e.g. +61291234567"))]
    pub phone_numbers: Vec<String>,
    /// `shared`: the tenant's Agents run in the platform's shared voice pool.
    /// `dedicated`: they get voice pods of their own in the tenant namespace.
    #[serde(default)]
    pub isolation: Isolation,
    /// Suspends the tenant: no new calls are answered or placed; calls to its
    /// numbers hear that the service is unavailable, and the numbers stay
    /// the tenant's. Calls in flight finish.
    #[serde(default)]
    pub suspend: bool,
}

/// Where and when the business operates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantProfile {
    /// IANA time zone of the business, e.g. `Australia/Sydney`. Schedules,
    /// business hours and spoken dates are in this zone.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$')").message("timezone must be an IANA zone name such as Australia/Sydney"))]
    pub timezone: String,
    /// Locale of the Voice Core's phrasing and capture rules.
    #[serde(default)]
    pub locale: Locale,
    /// Opening hours; outside them Objectives can route differently (for
    /// example, an after-hours transfer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 21))]
    pub business_hours: Vec<BusinessHours>,
    /// Days the business is closed regardless of business hours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub holidays: Vec<Holiday>,
}

/// Opening hours on some days of the week.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.open < self.close").message("open must be before close"))]
pub struct BusinessHours {
    /// Days these hours apply to.
    #[x_kube(validation = Rule::new("size(self) > 0").message("days must not be empty"))]
    #[schemars(length(max = 7))]
    pub days: Vec<Weekday>,
    /// Opening time, 24-hour `HH:MM`, in the tenant's time zone.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("open must be HH:MM"))]
    #[schemars(length(max = 5))]
    pub open: String,
    /// Closing time, 24-hour `HH:MM`, after `open`.
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$')").message("close must be HH:MM"))]
    #[schemars(length(max = 5))]
    pub close: String,
}

/// A day the business is closed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Holiday {
    /// The date, `YYYY-MM-DD`.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')").message("date must be YYYY-MM-DD"))]
    #[schemars(length(max = 10))]
    pub date: String,
    /// What the holiday is, e.g. "Christmas Day".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Capacity and spend limits of a tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantLimits {
    /// Calls in flight at once, inbound and outbound together.
    #[serde(default = "default_concurrent_calls")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("maxConcurrentCalls must be between 0 and 10000"))]
    pub max_concurrent_calls: i32,
    /// Spend ceiling per day, in USD. Outbound dialing stops before it is
    /// exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("dailyBudgetUsd must not be negative"))]
    pub daily_budget_usd: Option<f64>,
    /// Spend ceiling per calendar month, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("monthlyBudgetUsd must not be negative"))]
    pub monthly_budget_usd: Option<f64>,
    /// The most a call may cost per minute, in USD, across all providers.
    /// Compiling an Agent whose providers exceed it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("maxCostPerMinuteUsd must not be negative"))]
    pub max_cost_per_minute_usd: Option<f64>,
    /// CPU the tenant namespace may request in total (ResourceQuota), as a
    /// Kubernetes quantity.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory the tenant namespace may request in total (ResourceQuota), as a
    /// Kubernetes quantity.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// Pods the tenant namespace may run at once (ResourceQuota).
    #[serde(default = "default_pods")]
    #[x_kube(validation = Rule::new("self >= 0").message("pods must not be negative"))]
    pub pods: i32,
}

fn default_concurrent_calls() -> i32 {
    10
}
fn default_cpu() -> String {
    "4".to_owned()
}
fn default_memory() -> String {
    "8Gi".to_owned()
}
fn default_pods() -> i32 {
    20
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_concurrent_calls: default_concurrent_calls(),
            daily_budget_usd: None,
            monthly_budget_usd: None,
            max_cost_per_minute_usd: None,
            cpu: default_cpu(),
            memory: default_memory(),
            pods: default_pods(),
        }
    }
}

/// Someone calls can be escalated to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EscalationContact {
    /// Name as the agent says it, e.g. "the practice manager".
    pub name: String,
    /// Phone number in E.164 form, e.g. `+61291234567`.
    #[x_kube(validation = Rule::new("self.matches('^\\\\+[1-9][0-9]{6,14}$')").message("phone must be E.164, e.g. +61291234567"))]
    #[schemars(length(max = 16))]
    pub phone: String,
    /// Email for escalation notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The contact's role, e.g. `on-call`, `manager`; Objectives may name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// How a tenant's voice pods are isolated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Isolation {
    /// The platform's shared voice pool.
    #[default]
    Shared,
    /// Voice pods of the tenant's own, in its namespace.
    Dedicated,
}

/// What the operator observed and made of a Tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` summarises them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The namespace the tenant's resources live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// 0 to 100: 100 when every part of the tenant is ready and within limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_score: Option<i32>,
    /// Spend so far, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<TenantSpend>,
    /// Workflow jobs of the tenant that gave up (dead letters), as of the
    /// last reconcile: `dialtone workflows list --tenant=<name>
    /// --status=dead` shows them, `retry` or `discard` settles them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_jobs: Option<i64>,
}

/// Spend of a tenant, in USD.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpend {
    /// Spend today, in the tenant's time zone.
    pub today_usd: f64,
    /// Spend this calendar month.
    pub month_usd: f64,
}

impl Tenant {
    /// Whether `namespace` is this Tenant's (see [`Self::namespace_name`]),
    /// without allocating: mappers ask it for every cached Agent.
    pub fn owns_namespace(&self, namespace: &str) -> bool {
        match &self.spec.namespace {
            Some(own) => own == namespace,
            None => namespace
                .strip_prefix("tenant-")
                .is_some_and(|name| Some(name) == self.metadata.name.as_deref()),
        }
    }

    /// The namespace of the tenant: `spec.namespace`, else `tenant-<name>`.
    pub fn namespace_name(&self) -> String {
        use kube::ResourceExt;
        self.spec
            .namespace
            .clone()
            .unwrap_or_else(|| format!("tenant-{}", self.name_any()))
    }
}
