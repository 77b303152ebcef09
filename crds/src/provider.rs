//! `Provider` (namespaced) and `ClusterProvider` (platform-wide defaults):
//! one vendor account of one type.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// One vendor account of one type, usable by Agents in the same namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "ProviderStatus",
    shortname = "prov",
    category = "dialtone",
    printcolumn = r#"{"name":"Type","type":"string","description":"What the provider does","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Vendor","type":"string","description":"Who provides it","jsonPath":".spec.vendor"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the provider is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the provider is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "One vendor account of one type (telephony, stt, tts, llm, messaging, email, crm, calendar, payment, esign, webhook), usable by Agents in the same namespace.",
    validation = Rule::new("!has(self.spec.credentialsSecretRef) || !has(self.spec.credentialsSecretRef.__namespace__)").message("a namespaced Provider reads its Secret from its own namespace; remove credentialsSecretRef.namespace"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.vendor in {'telephony': ['twilio', 'sip', 'builtin'], 'stt': ['deepgram', 'builtin'], 'tts': ['elevenlabs', 'cartesia', 'builtin'], 'llm': ['openai', 'builtin'], 'messaging': ['twilio', 'builtin'], 'email': ['sendgrid', 'postmark', 'builtin'], 'crm': ['hubspot', 'webhook', 'builtin'], 'calendar': ['googleCalendar', 'calcom', 'webhook', 'builtin'], 'payment': ['stripe', 'webhook', 'builtin'], 'esign': ['docusign', 'webhook', 'builtin'], 'webhook': ['webhook', 'builtin']}[self.type]").message("vendor is not offered for this provider type"),
    validation = Rule::new("self.vendor == 'builtin' || self.vendor == 'sip' || has(self.credentialsSecretRef)").message("credentialsSecretRef is required for this vendor")
)]
pub struct ProviderSpec {
    /// What the provider does for calls and workflows.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Who provides it. Each type offers some vendors: telephony twilio|sip,
    /// stt deepgram, tts elevenlabs|cartesia, llm openai (any
    /// OpenAI-compatible API), messaging twilio, email sendgrid|postmark,
    /// crm hubspot, calendar googleCalendar|calcom, payment stripe, esign
    /// docusign; crm, calendar, payment, esign and webhook also through
    /// signed webhooks. `builtin` works offline for every type.
    pub vendor: Vendor,
    /// The Secret holding the account's credentials. Never put credentials
    /// in the spec. Required for every vendor but `builtin` and `sip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
    /// Vendor settings that are not secret.
    #[serde(default)]
    pub settings: ProviderSettings,
    /// What the vendor charges, for per-call cost tracking.
    #[serde(default)]
    pub pricing: Pricing,
    /// How hard the platform may use the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// Platform-wide vendor accounts, usable by Agents of every tenant (like
/// cert-manager's ClusterIssuer). Their Secrets name a namespace explicitly.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dialtone.io",
    version = "v1alpha1",
    kind = "ClusterProvider",
    status = "ProviderStatus",
    shortname = "cprov",
    category = "dialtone",
    printcolumn = r#"{"name":"Type","type":"string","description":"What the provider does","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Vendor","type":"string","description":"Who provides it","jsonPath":".spec.vendor"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the provider is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the provider is or is not ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "A platform-wide vendor account usable by every tenant's Agents; its credentials Secret names its namespace.",
    validation = Rule::new("!has(self.spec.credentialsSecretRef) || has(self.spec.credentialsSecretRef.__namespace__)").message("a ClusterProvider must name the namespace of its Secret in credentialsSecretRef.namespace"),
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProviderSpec {
    /// The provider, as for a namespaced Provider.
    #[serde(flatten)]
    pub provider: ProviderSpec,
}

/// What a provider does.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ProviderType {
    /// Phone numbers and call control.
    Telephony,
    /// Speech to text.
    Stt,
    /// Text to speech.
    Tts,
    /// Language model, used only to classify intent or recognise answers.
    Llm,
    /// SMS.
    Messaging,
    /// Email.
    Email,
    /// Customer records.
    Crm,
    /// Appointments.
    Calendar,
    /// Payments.
    Payment,
    /// Electronic signatures.
    Esign,
    /// Generic signed webhooks.
    Webhook,
}

impl ProviderType {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Telephony => "telephony",
            ProviderType::Stt => "stt",
            ProviderType::Tts => "tts",
            ProviderType::Llm => "llm",
            ProviderType::Messaging => "messaging",
            ProviderType::Email => "email",
            ProviderType::Crm => "crm",
            ProviderType::Calendar => "calendar",
            ProviderType::Payment => "payment",
            ProviderType::Esign => "esign",
            ProviderType::Webhook => "webhook",
        }
    }
}

/// Who provides a service.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Vendor {
    /// Works offline, for development, tests and demos.
    Builtin,
    /// Twilio (voice, Media Streams, SMS).
    Twilio,
    /// A SIP trunk; routes are recorded, no vendor API is called.
    Sip,
    /// Deepgram streaming speech to text.
    Deepgram,
    /// ElevenLabs text to speech.
    Elevenlabs,
    /// Cartesia text to speech.
    Cartesia,
    /// An OpenAI-compatible chat completions API.
    Openai,
    /// SendGrid email.
    Sendgrid,
    /// A signed HTTPS webhook.
    Webhook,
    /// Postmark email.
    Postmark,
    /// HubSpot CRM contacts.
    Hubspot,
    /// Google Calendar events.
    GoogleCalendar,
    /// Cal.com bookings.
    Calcom,
    /// Stripe Payment Links.
    Stripe,
    /// DocuSign envelopes from templates.
    Docusign,
}

impl Vendor {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Builtin => "builtin",
            Vendor::Twilio => "twilio",
            Vendor::Sip => "sip",
            Vendor::Deepgram => "deepgram",
            Vendor::Elevenlabs => "elevenlabs",
            Vendor::Cartesia => "cartesia",
            Vendor::Openai => "openai",
            Vendor::Sendgrid => "sendgrid",
            Vendor::Webhook => "webhook",
            Vendor::Postmark => "postmark",
            Vendor::Hubspot => "hubspot",
            Vendor::GoogleCalendar => "googleCalendar",
            Vendor::Calcom => "calcom",
            Vendor::Stripe => "stripe",
            Vendor::Docusign => "docusign",
        }
    }

    /// The Secret keys the vendor's credentials need.
    pub fn required_secret_keys(self) -> &'static [&'static str] {
        match self {
            Vendor::Builtin | Vendor::Sip => &[],
            Vendor::Twilio => &["accountSid", "authToken"],
            Vendor::Deepgram
            | Vendor::Elevenlabs
            | Vendor::Cartesia
            | Vendor::Openai
            | Vendor::Sendgrid
            | Vendor::Postmark
            | Vendor::Hubspot
            | Vendor::Calcom
            | Vendor::Stripe => &["apiKey"],
            // OAuth access tokens, refreshed outside Dialtone (a token
            // broker or a CronJob rewriting the Secret).
            Vendor::GoogleCalendar | Vendor::Docusign => &["accessToken"],
            Vendor::Webhook => &["signingSecret"],
        }
    }
}

/// Where a provider's credentials are.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("name must be a DNS subdomain"))]
    pub name: String,
    /// Namespace of the Secret: required for a ClusterProvider, not allowed
    /// for a Provider (which reads its own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Renames the keys the vendor needs (`accountSid`, `authToken`,
    /// `apiKey`, `signingSecret`) to the keys actually used in the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
}

impl CredentialsSecretRef {
    /// The Secret key that holds the credential `wanted`.
    pub fn key_for<'a>(&'a self, wanted: &'a str) -> &'a str {
        self.keys.get(wanted).map(String::as_str).unwrap_or(wanted)
    }
}

/// Vendor settings that are not secret. Which apply depends on the vendor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSettings {
    /// The vendor API's base URL; defaults to the vendor's public endpoint.
    /// Set it for regional endpoints, proxies or tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s]+$')").message("baseUrl must be an http(s) URL"))]
    pub base_url: Option<String>,
    /// Model name (stt, tts, llm), e.g. `nova-3`, `eleven_flash_v2_5`,
    /// `gpt-4o-mini`. Required for llm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Voice id (tts). Required for elevenlabs and cartesia.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
    /// Language tag passed to the vendor, e.g. `en-AU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// SIP trunk address (sip), e.g. `sip:trunk.example.net:5061`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('sip:') || self.startsWith('sips:')").message("sipTrunk must be a sip: or sips: URI"))]
    pub sip_trunk: Option<String>,
    /// Sender address (email), e.g. `bookings@example.com`. Required for
    /// sendgrid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_address: Option<String>,
    /// The URL workflows post to (webhook, crm, calendar, payment, esign).
    /// Required for the webhook vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s]+$')").message("webhookUrl must be an http(s) URL"))]
    pub webhook_url: Option<String>,
}

/// What a vendor charges, in USD. Unset prices count as zero.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// Per minute of call (telephony).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_minute_usd: Option<f64>,
    /// Per second of audio transcribed (stt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_second_usd: Option<f64>,
    /// Per thousand characters synthesised (tts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_thousand_characters_usd: Option<f64>,
    /// Per million input tokens (llm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_million_input_tokens_usd: Option<f64>,
    /// Per million output tokens (llm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_million_output_tokens_usd: Option<f64>,
    /// Per message or request (messaging, email, webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("prices must not be negative"))]
    pub per_request_usd: Option<f64>,
}

/// How hard the platform may use a vendor account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Requests per second across the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("requestsPerSecond must be positive"))]
    pub requests_per_second: Option<i32>,
    /// Sessions (calls, streams, workflow requests) open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("maxConcurrent must be positive"))]
    pub max_concurrent: Option<i32>,
    /// Messages one sender may send per day, counted across every worker
    /// replica and reset at midnight in the Tenant's timezone: per sending
    /// domain for email (default 50), per from-number for SMS (default
    /// 100). A job over the cap waits for the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("dailyCap must be positive"))]
    pub daily_cap: Option<i32>,
}

/// What the operator observed of a provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` summarises them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The resourceVersion of the credentials Secret last validated, so a
    /// change of credentials is visible without showing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,
}
