//! Compilation: an Agent with its Objectives, Providers and Tenant profile
//! becomes one canonical JSON config version, named by its content hash.
//!
//! Canonical means: every default is written out (so writing a default or
//! leaving it out gives the same bytes), object keys are sorted, there is no
//! whitespace, and lists whose order carries no meaning (steps, phone
//! numbers, workflows) are sorted. Anything that changes behaviour changes
//! the bytes and so the hash. Provider credentials are never part of it:
//! only the provider reference, type, vendor, settings and pricing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use dialtone_crds::agent::{Persona, PhoneNumber, ProviderKind, ProviderRef, Workflow};
use dialtone_crds::common::Locale;
use dialtone_crds::objective::{
    ObjectiveSummary, SilencePolicy, Step, StepKind, Template, TransferMode, TransferStep,
};
use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType, RateLimits, Vendor};
use dialtone_crds::tenant::{BusinessHours, EscalationContact};
use dialtone_crds::{Agent, ClusterProvider, Objective, Provider, Tenant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hours::Hours;
use crate::phrasebook;
use crate::validate::{ErrorKind, ValidationError, is_e164, validate_objective};
use crate::workflow;

/// The name and namespace of any object, without depending on `kube` here.
fn meta(m: &ObjectMeta) -> (String, Option<String>) {
    (m.name.clone().unwrap_or_default(), m.namespace.clone())
}

/// Version of the config document layout; bumped on incompatible changes so
/// voice pods can refuse documents they do not understand.
pub const SCHEMA_VERSION: u32 = 1;

/// The Voice Core version that compiled the config.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a voice pod needs to run an Agent's calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledConfig {
    /// [`SCHEMA_VERSION`] at compile time.
    pub schema_version: u32,
    /// [`CORE_VERSION`] at compile time.
    pub core_version: String,
    /// Who answers.
    pub agent: AgentConfig,
    /// The business.
    pub tenant: TenantConfig,
    /// Vendor accounts by role (`telephony`, `stt`, `tts`, `llm`); roles
    /// left out use the builtin implementation.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The objectives; calls start in the first.
    pub objectives: Vec<CompiledObjective>,
    /// The vendor account of each workflow that names one, by workflow
    /// name; workflows left out use `builtin`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflow_providers: BTreeMap<String, ProviderConfig>,
}

/// The Agent part of a config.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// Namespace of the Agent (the tenant's namespace).
    pub namespace: String,
    /// Name of the Agent.
    pub name: String,
    /// How the agent introduces itself.
    pub display_name: String,
    /// Tone preset.
    pub persona: Persona,
    /// Phrasing and capture locale (the Agent's, else the tenant's).
    pub locale: Locale,
    /// Phone numbers, sorted by number.
    pub phone_numbers: Vec<PhoneNumber>,
    /// Workflows, sorted by name.
    pub workflows: Vec<Workflow>,
}

/// The Tenant part of a config.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantConfig {
    /// Name of the Tenant.
    pub name: String,
    /// The business's name as callers know it.
    pub display_name: String,
    /// IANA time zone.
    pub timezone: String,
    /// Opening hours.
    pub business_hours: Vec<BusinessHours>,
    /// Closed days, `YYYY-MM-DD`, sorted.
    pub holidays: Vec<String>,
    /// Escalation contacts in the tenant's order (the first is the default).
    pub escalation_contacts: Vec<EscalationContact>,
    /// `limits.maxConcurrentCalls`: calls of the tenant a voice pod carries
    /// at once. Absent in versions compiled before it was recorded (no
    /// cap but the pod's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<i32>,
}

/// A provider as the voice pods see it: no credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// Name of the Provider or ClusterProvider; voice pods resolve its
    /// credentials through it.
    pub name: String,
    /// Which kind the name refers to.
    pub kind: ProviderKind,
    /// What it does.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Who provides it.
    pub vendor: Vendor,
    /// Non-secret settings.
    pub settings: ProviderSettings,
    /// Prices for cost tracking.
    pub pricing: Pricing,
    /// How hard the account may be used (the workers enforce these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// An objective with its template applied and every default resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledObjective {
    /// Name of the Objective.
    pub name: String,
    /// The template it started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// The first step.
    pub start: String,
    /// Steps sorted by id; transfer targets resolved to numbers, prompts
    /// and closing phrases filled in.
    pub steps: Vec<Step>,
    /// Silence handling.
    pub silence: SilencePolicy,
    /// Where failed captures and silence are transferred, when anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<TransferStep>,
}

/// One immutable config version.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigVersion {
    /// `sha256:` followed by the 64 lower-case hex digits of the SHA-256 of
    /// `canonical_json`. Use [`ConfigVersion::short`] where a Kubernetes
    /// name is needed (a colon is not allowed there).
    pub hash: String,
    /// The canonical bytes, as stored in `config_versions` and the ConfigMap.
    pub canonical_json: String,
    /// The parsed config.
    pub config: CompiledConfig,
    /// Per-objective summaries for Objective status, by objective name.
    pub summaries: BTreeMap<String, ObjectiveSummary>,
}

impl ConfigVersion {
    /// The first 16 hex digits of the hash, for object names such as
    /// `<agent>-<short>`.
    pub fn short(&self) -> &str {
        let hex = self.hash.strip_prefix("sha256:").unwrap_or(&self.hash);
        &hex[..hex.len().min(16)]
    }
}

/// Borrowed inputs of a compile: the Agent and everything it may reference.
/// Objects it does not reference are ignored, so callers can pass a whole
/// namespace.
#[derive(Clone, Debug)]
pub struct CompileInput<'a> {
    /// The Agent to compile.
    pub agent: &'a Agent,
    /// The Tenant owning the Agent's namespace.
    pub tenant: &'a Tenant,
    /// Objectives in the Agent's namespace.
    pub objectives: Vec<&'a Objective>,
    /// Providers in the Agent's namespace.
    pub providers: Vec<&'a Provider>,
    /// ClusterProviders.
    pub cluster_providers: Vec<&'a ClusterProvider>,
}

/// What kind of compile error; [`reason`](Self::reason) is the condition
/// reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompileErrorKind {
    /// A referenced Objective is not in the input.
    ObjectiveNotFound,
    /// A referenced Provider or ClusterProvider is not in the input.
    ProviderNotFound,
    /// A provider is used in a role of another type.
    ProviderTypeMismatch,
    /// The Agent spec itself is invalid.
    InvalidAgent,
    /// The Tenant profile cannot be used.
    InvalidTenant,
    /// An Objective failed validation.
    InvalidObjective(ErrorKind),
}

impl CompileErrorKind {
    /// The CamelCase reason for conditions and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            CompileErrorKind::ObjectiveNotFound => "ObjectiveNotFound",
            CompileErrorKind::ProviderNotFound => "ProviderNotFound",
            CompileErrorKind::ProviderTypeMismatch => "ProviderTypeMismatch",
            CompileErrorKind::InvalidAgent => "InvalidAgent",
            CompileErrorKind::InvalidTenant => "InvalidTenant",
            CompileErrorKind::InvalidObjective(k) => k.reason(),
        }
    }
}

/// One reason a compile failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource} {path}: {message}")]
pub struct CompileError {
    /// What kind of problem.
    pub kind: CompileErrorKind,
    /// The resource at fault, e.g. `Objective/tenant-harbour-dental/booking`.
    pub resource: String,
    /// Field path within it.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every reason a compile failed, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_all(.0))]
pub struct CompileErrors(pub Vec<CompileError>);

fn display_all(errors: &[CompileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl CompileErrors {
    /// The condition reason of the first error (errors about references come
    /// first, as they are the likeliest fix).
    pub fn reason(&self) -> &'static str {
        self.0
            .first()
            .map(|e| e.kind.reason())
            .unwrap_or("CompileFailed")
    }
}

fn resource(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Compiles an Agent into a config version, or returns every error.
pub fn compile(input: &CompileInput<'_>) -> Result<ConfigVersion, CompileErrors> {
    let agent = input.agent;
    let namespace = meta(&agent.metadata).1.unwrap_or_default();
    let agent_name = meta(&agent.metadata).0;
    let agent_res = resource("Agent", Some(&namespace), &agent_name);
    let tenant_res = resource("Tenant", None, &meta(&input.tenant.metadata).0);
    let mut errors = Vec::new();
    let mut err = |kind, res: &str, path: &str, message: String| {
        errors.push(CompileError {
            kind,
            resource: res.to_owned(),
            path: path.to_owned(),
            message,
        });
    };

    let tenant = &input.tenant.spec;
    if input.tenant.namespace_name() != namespace {
        err(
            CompileErrorKind::InvalidTenant,
            &agent_res,
            "metadata.namespace",
            format!(
                "the Agent is in namespace {namespace:?} but tenant {} owns {:?}",
                meta(&input.tenant.metadata).0,
                input.tenant.namespace_name()
            ),
        );
    }
    if tenant.profile.timezone.parse::<chrono_tz::Tz>().is_err() {
        err(
            CompileErrorKind::InvalidTenant,
            &tenant_res,
            "spec.profile.timezone",
            format!("{:?} is not an IANA time zone", tenant.profile.timezone),
        );
    }
    let holidays: Vec<String> = tenant
        .profile
        .holidays
        .iter()
        .map(|h| h.date.clone())
        .collect();
    if let Err(e) = Hours::parse(&tenant.profile.business_hours, &holidays) {
        err(
            CompileErrorKind::InvalidTenant,
            &tenant_res,
            &e.field,
            format!("{:?} is not {}", e.value, e.expected),
        );
    }

    // Objectives.
    if agent.spec.objectives.is_empty() {
        err(
            CompileErrorKind::InvalidAgent,
            &agent_res,
            "spec.objectives",
            "an Agent needs at least one objective".to_owned(),
        );
    }
    let mut objectives = Vec::new();
    let mut summaries = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (i, r) in agent.spec.objectives.iter().enumerate() {
        let path = format!("spec.objectives[{i}].name");
        if !seen.insert(r.name.as_str()) {
            err(
                CompileErrorKind::InvalidAgent,
                &agent_res,
                &path,
                format!("objective {:?} is listed twice", r.name),
            );
            continue;
        }
        let Some(obj) = input
            .objectives
            .iter()
            .find(|o| meta(&o.metadata) == (r.name.clone(), Some(namespace.clone())))
        else {
            err(
                CompileErrorKind::ObjectiveNotFound,
                &agent_res,
                &path,
                format!(
                    "Objective {:?} not found in namespace {namespace:?}",
                    r.name
                ),
            );
            continue;
        };
        let obj_res = resource("Objective", Some(&namespace), &r.name);
        match validate_objective(&obj.spec, Some(tenant)) {
            Err(problems) => {
                for ValidationError {
                    kind,
                    path,
                    message,
                } in problems
                {
                    err(
                        CompileErrorKind::InvalidObjective(kind),
                        &obj_res,
                        &path,
                        message,
                    );
                }
            }
            Ok(valid) => {
                summaries.insert(r.name.clone(), valid.summary.clone());
                match resolve_objective(&r.name, obj, valid, tenant) {
                    Ok(c) => objectives.push(c),
                    Err((path, message)) => err(
                        CompileErrorKind::InvalidObjective(ErrorKind::NoTransferTarget),
                        &obj_res,
                        &path,
                        message,
                    ),
                }
            }
        }
    }

    // Providers, by role.
    let mut providers = BTreeMap::new();
    let roles: [(&str, &Option<ProviderRef>, ProviderType); 4] = [
        (
            "telephony",
            &agent.spec.providers.telephony,
            ProviderType::Telephony,
        ),
        ("stt", &agent.spec.providers.stt, ProviderType::Stt),
        ("tts", &agent.spec.providers.tts, ProviderType::Tts),
        ("llm", &agent.spec.providers.llm, ProviderType::Llm),
    ];
    for (role, r, wanted) in roles {
        let Some(r) = r else { continue };
        let path = format!("spec.providers.{role}");
        match find_provider(input, &namespace, r) {
            None => err(
                CompileErrorKind::ProviderNotFound,
                &agent_res,
                &path,
                missing_provider(r, &namespace),
            ),
            Some(p) if p.type_ != wanted => err(
                CompileErrorKind::ProviderTypeMismatch,
                &agent_res,
                &path,
                format!(
                    "{} {:?} has type {}, but the {role} role needs type {}",
                    kind_name(r.kind),
                    r.name,
                    p.type_.as_str(),
                    wanted.as_str()
                ),
            ),
            Some(p) => {
                providers.insert(role.to_owned(), p);
            }
        }
    }
    let captured: BTreeSet<&str> = objectives
        .iter()
        .flat_map(|o| &o.steps)
        .filter_map(|s| s.capture.as_ref().map(|c| c.slot.as_str()))
        .collect();
    // Which slots exist is only known when every objective resolved; a
    // broken objective reports its own error, not one per workflow slot.
    let objectives_resolved = objectives.len() == agent.spec.objectives.len();
    let mut workflow_providers = BTreeMap::new();
    let mut workflow_names = BTreeSet::new();
    for (i, w) in agent.spec.workflows.iter().enumerate() {
        let path = format!("spec.workflows[{i}]");
        if !workflow_names.insert(w.name.as_str()) {
            err(
                CompileErrorKind::InvalidAgent,
                &agent_res,
                &format!("{path}.name"),
                format!("workflow {:?} is listed twice", w.name),
            );
        }
        let known = objectives_resolved.then_some(&captured);
        for (param, message) in workflow::check_params(&w.params, known) {
            err(
                CompileErrorKind::InvalidAgent,
                &agent_res,
                &format!("{path}.params.{param}"),
                message,
            );
        }
        let Some(r) = &w.provider else { continue };
        let wanted = workflow::provider_type(w.action);
        match find_provider(input, &namespace, r) {
            None => err(
                CompileErrorKind::ProviderNotFound,
                &agent_res,
                &format!("{path}.provider"),
                missing_provider(r, &namespace),
            ),
            // A webhook provider can stand in for any business system.
            Some(p) if p.type_ != wanted && p.type_ != ProviderType::Webhook => err(
                CompileErrorKind::ProviderTypeMismatch,
                &agent_res,
                &format!("{path}.provider"),
                format!(
                    "{} {:?} has type {}, but a {} workflow needs type {} (or webhook)",
                    kind_name(r.kind),
                    r.name,
                    p.type_.as_str(),
                    workflow::action_name(w.action),
                    wanted.as_str()
                ),
            ),
            Some(p) => {
                workflow_providers.insert(w.name.clone(), p);
            }
        }
    }

    // Phone numbers.
    let mut numbers = BTreeSet::new();
    for (i, n) in agent.spec.phone_numbers.iter().enumerate() {
        let path = format!("spec.phoneNumbers[{i}].number");
        if !is_e164(&n.number) {
            err(
                CompileErrorKind::InvalidAgent,
                &agent_res,
                &path,
                format!("{:?} is not an E.164 number such as +61290001234", n.number),
            );
        } else if !numbers.insert(n.number.as_str()) {
            err(
                CompileErrorKind::InvalidAgent,
                &agent_res,
                &path,
                format!("{} is listed twice", n.number),
            );
        }
    }

    if !errors.is_empty() {
        errors.sort_by(|a, b| (a.kind, &a.resource, &a.path).cmp(&(b.kind, &b.resource, &b.path)));
        return Err(CompileErrors(errors));
    }

    let mut phone_numbers = agent.spec.phone_numbers.clone();
    phone_numbers.sort_by(|a, b| a.number.cmp(&b.number));
    let mut workflows = agent.spec.workflows.clone();
    workflows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut holidays = holidays;
    holidays.sort();
    holidays.dedup();
    let config = CompiledConfig {
        schema_version: SCHEMA_VERSION,
        core_version: CORE_VERSION.to_owned(),
        agent: AgentConfig {
            namespace,
            name: agent_name,
            display_name: agent
                .spec
                .display_name
                .clone()
                .unwrap_or_else(|| tenant.display_name.clone()),
            persona: agent.spec.persona,
            locale: agent.spec.locale.unwrap_or(tenant.profile.locale),
            phone_numbers,
            workflows,
        },
        tenant: TenantConfig {
            name: meta(&input.tenant.metadata).0,
            display_name: tenant.display_name.clone(),
            timezone: tenant.profile.timezone.clone(),
            business_hours: tenant.profile.business_hours.clone(),
            holidays,
            escalation_contacts: tenant.escalation_contacts.clone(),
            max_concurrent_calls: Some(tenant.limits.max_concurrent_calls),
        },
        providers,
        objectives,
        workflow_providers,
    };
    version_of(config, summaries).map_err(|message| {
        CompileErrors(vec![CompileError {
            kind: CompileErrorKind::InvalidAgent,
            resource: agent_res,
            path: String::new(),
            message,
        }])
    })
}

fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Provider => "Provider",
        ProviderKind::ClusterProvider => "ClusterProvider",
    }
}

fn missing_provider(r: &ProviderRef, namespace: &str) -> String {
    match r.kind {
        ProviderKind::Provider => {
            format!("Provider {:?} not found in namespace {namespace:?}", r.name)
        }
        ProviderKind::ClusterProvider => format!("ClusterProvider {:?} not found", r.name),
    }
}

fn find_provider(
    input: &CompileInput<'_>,
    namespace: &str,
    r: &ProviderRef,
) -> Option<ProviderConfig> {
    let spec = match r.kind {
        ProviderKind::Provider => input
            .providers
            .iter()
            .find(|p| meta(&p.metadata) == (r.name.clone(), Some(namespace.to_owned())))
            .map(|p| &p.spec),
        ProviderKind::ClusterProvider => input
            .cluster_providers
            .iter()
            .find(|p| meta(&p.metadata).0 == r.name)
            .map(|p| &p.spec.provider),
    }?;
    // Deliberately field by field: credentialsSecretRef must never reach a
    // config version.
    Some(ProviderConfig {
        name: r.name.clone(),
        kind: r.kind,
        type_: spec.type_,
        vendor: spec.vendor,
        settings: spec.settings.clone(),
        pricing: spec.pricing.clone(),
        rate_limits: spec.rate_limits.clone(),
    })
}

/// Resolves defaults so that writing a default and leaving it out compile to
/// the same bytes.
fn resolve_objective(
    name: &str,
    obj: &Objective,
    valid: crate::validate::ValidObjective,
    tenant: &dialtone_crds::TenantSpec,
) -> Result<CompiledObjective, (String, String)> {
    let resolve = |t: &TransferStep, path: &str| -> Result<TransferStep, (String, String)> {
        let contact = match (&t.to, &t.contact) {
            (Some(_), _) => None,
            (None, Some(c)) => tenant
                .escalation_contacts
                .iter()
                .find(|e| &e.name == c || e.role.as_ref() == Some(c)),
            (None, None) => tenant.escalation_contacts.first(),
        };
        let to =
            match (&t.to, contact) {
                (Some(to), _) => to.clone(),
                (None, Some(c)) => c.phone.clone(),
                (None, None) => return Err((
                    path.to_owned(),
                    "the transfer has no number and the tenant has no matching escalation contact"
                        .to_owned(),
                )),
            };
        Ok(TransferStep {
            to: Some(to),
            contact: contact
                .map(|c| c.name.clone())
                .or_else(|| t.contact.clone()),
            mode: t.mode,
            reason: t.reason.clone(),
            outcome: Some(
                t.outcome
                    .clone()
                    .unwrap_or_else(|| "transferred".to_owned()),
            ),
        })
    };
    let mut steps = valid.steps;
    for step in &mut steps {
        match step.kind {
            StepKind::Capture => {
                if let Some(c) = &mut step.capture {
                    if c.prompt.is_none() {
                        c.prompt = Some(phrasebook::ask_id(c.primitive));
                    }
                    if c.validation
                        .as_ref()
                        .is_some_and(|v| *v == Default::default())
                    {
                        c.validation = None;
                    }
                }
            }
            StepKind::Transfer => {
                if let Some(t) = &step.transfer {
                    step.transfer = Some(resolve(t, &format!("steps[{}].transfer", step.id))?);
                }
            }
            StepKind::End => {
                if let Some(e) = &mut step.end
                    && e.phrase.is_none()
                {
                    e.phrase = Some("goodbye".to_owned());
                }
            }
            StepKind::Say | StepKind::Route | StepKind::Book => {}
        }
    }
    let escalation = match &obj.spec.escalation {
        Some(e) => Some(resolve(e, "spec.escalation")?),
        None => tenant.escalation_contacts.first().map(|c| TransferStep {
            to: Some(c.phone.clone()),
            contact: Some(c.name.clone()),
            mode: TransferMode::Cold,
            reason: None,
            outcome: Some("transferred".to_owned()),
        }),
    };
    Ok(CompiledObjective {
        name: name.to_owned(),
        template: obj.spec.template,
        start: valid.start,
        steps,
        silence: obj.spec.silence.clone().unwrap_or_default(),
        escalation,
    })
}

/// Serialises `config` canonically and names it by its hash.
pub fn version_of(
    config: CompiledConfig,
    summaries: BTreeMap<String, ObjectiveSummary>,
) -> Result<ConfigVersion, String> {
    let value =
        serde_json::to_value(&config).map_err(|e| format!("config does not serialise: {e}"))?;
    let mut canonical_json = String::with_capacity(4096);
    write_canonical(&value, &mut canonical_json);
    let hash = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical_json.as_bytes()))
    );
    Ok(ConfigVersion {
        hash,
        canonical_json,
        config,
        summaries,
    })
}

/// Parses a stored config version and checks that its bytes match its hash
/// (so a corrupted or hand-edited ConfigMap is refused, not run).
pub fn load_version(hash: &str, canonical_json: &str) -> Result<CompiledConfig, LoadError> {
    let actual = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical_json.as_bytes()))
    );
    if actual != hash {
        return Err(LoadError::HashMismatch {
            expected: hash.to_owned(),
            actual,
        });
    }
    let config: CompiledConfig = serde_json::from_str(canonical_json).map_err(LoadError::Parse)?;
    if config.schema_version != SCHEMA_VERSION {
        return Err(LoadError::Schema(config.schema_version));
    }
    Ok(config)
}

/// Why a stored config version cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes do not hash to the version's name.
    #[error("config bytes hash to {actual}, not {expected}")]
    HashMismatch {
        /// The name the version was stored under.
        expected: String,
        /// The hash of the bytes found.
        actual: String,
    },
    /// The bytes are not a config document.
    #[error("config version does not parse: {0}")]
    Parse(#[source] serde_json::Error),
    /// A layout this build does not understand.
    #[error("config schema version {0} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema(u32),
}

/// Sorted keys, no whitespace; numbers and strings as serde_json writes them
/// (deterministic: ryu for floats, minimal escapes for strings).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
    }
}
