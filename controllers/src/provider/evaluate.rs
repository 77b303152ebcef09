//! Pure evaluation of a provider: its spec and the Secret it points to in,
//! conditions out. Messages name Secrets and keys, never values.

use dialtone_crds::ProviderSpec;
use dialtone_crds::common::{ConditionUpdate, READY};
use dialtone_crds::provider::{ProviderType, Vendor};
use k8s_openapi::api::core::v1::Secret;

/// The credentials Secret exists and has every key the vendor needs.
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
/// The vendor settings are complete.
pub const SETTINGS_VALID: &str = "SettingsValid";

/// What looking up the credentials Secret found.
#[derive(Clone, Copy, Debug)]
pub enum SecretLookup<'a> {
    /// The vendor needs no credentials.
    NotRequired,
    /// The vendor needs credentials but the spec names no Secret.
    NoReference,
    /// A ClusterProvider's reference names no namespace.
    NoNamespace,
    /// The Secret does not exist.
    NotFound {
        /// Namespace looked in.
        namespace: &'a str,
        /// Secret name.
        name: &'a str,
    },
    /// The Secret.
    Found(&'a Secret),
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Conditions to merge, `Ready` last.
    pub updates: Vec<ConditionUpdate>,
    /// The Secret's resourceVersion, when it was found.
    pub secret_resource_version: Option<String>,
}

#[cfg(test)]
impl Evaluation {
    fn ready(&self) -> bool {
        self.updates.last().is_some_and(|ready| ready.status)
    }
}

/// Evaluates credentials (first) and settings (second); `Ready` carries the
/// first failure's reason.
pub fn evaluate(spec: &ProviderSpec, lookup: SecretLookup<'_>) -> Evaluation {
    let credentials = check_credentials(spec, lookup);
    let settings = match check_settings(spec) {
        Ok(()) => {
            ConditionUpdate::truthy(SETTINGS_VALID, "Valid", "the vendor settings are complete")
        }
        Err(msg) => ConditionUpdate::falsy(SETTINGS_VALID, "InvalidSettings", msg),
    };
    let ready = match [&credentials, &settings].into_iter().find(|c| !c.status) {
        None => ConditionUpdate::truthy(
            READY,
            "Validated",
            format!(
                "{} provider {} is ready",
                spec.type_.as_str(),
                spec.vendor.as_str()
            ),
        ),
        Some(failed) => ConditionUpdate::falsy(READY, &failed.reason, failed.message.clone()),
    };
    let secret_resource_version = match lookup {
        SecretLookup::Found(secret) => secret.metadata.resource_version.clone(),
        _ => None,
    };
    Evaluation {
        updates: vec![credentials, settings, ready],
        secret_resource_version,
    }
}

fn secret_name(secret: &Secret) -> String {
    format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    )
}

fn check_credentials(spec: &ProviderSpec, lookup: SecretLookup<'_>) -> ConditionUpdate {
    let vendor = spec.vendor.as_str();
    let secret = match lookup {
        SecretLookup::NotRequired => {
            return ConditionUpdate::truthy(
                CREDENTIALS_RESOLVED,
                "NotRequired",
                format!("vendor {vendor} needs no credentials"),
            );
        }
        SecretLookup::NoReference => {
            return ConditionUpdate::falsy(
                CREDENTIALS_RESOLVED,
                "SecretNotFound",
                format!("vendor {vendor} needs credentials; set spec.credentialsSecretRef"),
            );
        }
        SecretLookup::NoNamespace => {
            return ConditionUpdate::falsy(
                CREDENTIALS_RESOLVED,
                "SecretNotFound",
                "a ClusterProvider must name its Secret's namespace in spec.credentialsSecretRef.namespace",
            );
        }
        SecretLookup::NotFound { namespace, name } => {
            return ConditionUpdate::falsy(
                CREDENTIALS_RESOLVED,
                "SecretNotFound",
                format!("Secret {namespace}/{name} not found"),
            );
        }
        SecretLookup::Found(secret) => secret,
    };
    let Some(reference) = spec.credentials_secret_ref.as_ref() else {
        return ConditionUpdate::falsy(
            CREDENTIALS_RESOLVED,
            "SecretNotFound",
            "spec.credentialsSecretRef is not set",
        );
    };
    let data = secret.data.as_ref();
    for wanted in spec.vendor.required_secret_keys() {
        let key = reference.key_for(wanted);
        let present = data
            .and_then(|d| d.get(key))
            .is_some_and(|v| !v.0.is_empty());
        if !present {
            let renamed = if key == *wanted {
                String::new()
            } else {
                format!(" (the vendor's {wanted})")
            };
            return ConditionUpdate::falsy(
                CREDENTIALS_RESOLVED,
                "KeyMissing",
                format!(
                    "Secret {} has no non-empty key {key:?}{renamed}",
                    secret_name(secret)
                ),
            );
        }
    }
    if spec.vendor == Vendor::Twilio {
        let key = reference.key_for("accountSid");
        let sid = data
            .and_then(|d| d.get(key))
            .map(|v| v.0.as_slice())
            .unwrap_or_default();
        if !is_twilio_account_sid(sid) {
            // Never echo the value.
            return ConditionUpdate::falsy(
                CREDENTIALS_RESOLVED,
                "InvalidCredentials",
                format!(
                    "key {key:?} of Secret {} is not a Twilio account SID (AC followed by 32 hex digits)",
                    secret_name(secret)
                ),
            );
        }
    }
    ConditionUpdate::truthy(
        CREDENTIALS_RESOLVED,
        "Resolved",
        format!(
            "Secret {} has every key vendor {vendor} needs",
            secret_name(secret)
        ),
    )
}

/// `AC` followed by 32 hexadecimal digits (surrounding whitespace tolerated).
pub fn is_twilio_account_sid(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    value.len() == 34 && value.starts_with(b"AC") && value[2..].iter().all(u8::is_ascii_hexdigit)
}

fn missing(field: &str, vendor: Vendor) -> Result<(), String> {
    Err(format!(
        "settings.{field} is required for vendor {}",
        vendor.as_str()
    ))
}

fn blank(v: Option<&String>) -> bool {
    v.is_none_or(|s| s.trim().is_empty())
}

/// Per-vendor settings rules that admission does not check.
pub fn check_settings(spec: &ProviderSpec) -> Result<(), String> {
    let s = &spec.settings;
    let vendor = spec.vendor;
    if spec.type_ == ProviderType::Llm && vendor != Vendor::Builtin && blank(s.model.as_ref()) {
        return missing("model", vendor);
    }
    match vendor {
        Vendor::Elevenlabs | Vendor::Cartesia if blank(s.voice_id.as_ref()) => {
            missing("voiceId", vendor)
        }
        Vendor::Sendgrid => match s.from_address.as_deref() {
            None => missing("fromAddress", vendor),
            Some(addr) if !addr.contains('@') => Err(format!(
                "settings.fromAddress {addr:?} is not an email address"
            )),
            Some(_) => Ok(()),
        },
        Vendor::Webhook if blank(s.webhook_url.as_ref()) => missing("webhookUrl", vendor),
        Vendor::Sip if blank(s.sip_trunk.as_ref()) => missing("sipTrunk", vendor),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "super-secret-token-value";

    fn spec(yaml: &str) -> ProviderSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("twilio".into()),
                namespace: Some("acme".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    fn twilio() -> ProviderSpec {
        spec("type: telephony\nvendor: twilio\ncredentialsSecretRef: { name: twilio }\n")
    }

    fn ready(e: &Evaluation) -> &ConditionUpdate {
        e.updates.iter().find(|c| c.type_ == READY).expect("ready")
    }

    #[test]
    fn builtin_needs_nothing() {
        let e = evaluate(
            &spec("type: stt\nvendor: builtin\n"),
            SecretLookup::NotRequired,
        );
        assert!(e.ready());
        assert_eq!(ready(&e).reason, "Validated");
        assert_eq!(e.secret_resource_version, None);
    }

    #[test]
    fn missing_secret_is_secret_not_found() {
        let e = evaluate(
            &twilio(),
            SecretLookup::NotFound {
                namespace: "acme",
                name: "twilio",
            },
        );
        assert!(!e.ready());
        assert_eq!(ready(&e).reason, "SecretNotFound");
        assert_eq!(ready(&e).message, "Secret acme/twilio not found");
    }

    #[test]
    fn missing_key_names_key_and_secret_but_no_value() {
        let s = secret(&[("accountSid", SID)]);
        let e = evaluate(&twilio(), SecretLookup::Found(&s));
        let r = ready(&e);
        assert_eq!(r.reason, "KeyMissing");
        assert!(
            r.message.contains("authToken") && r.message.contains("acme/twilio"),
            "{}",
            r.message
        );
        assert!(!r.message.contains(SID));
        assert_eq!(e.secret_resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn renamed_keys_are_followed() {
        let spec = spec(
            "type: telephony\nvendor: twilio\ncredentialsSecretRef: { name: twilio, keys: { authToken: token } }\n",
        );
        let s = secret(&[("accountSid", SID), ("token", TOKEN)]);
        assert!(evaluate(&spec, SecretLookup::Found(&s)).ready());
        let s = secret(&[("accountSid", SID), ("authToken", TOKEN)]);
        let e = evaluate(&spec, SecretLookup::Found(&s));
        assert_eq!(ready(&e).reason, "KeyMissing");
        assert!(
            ready(&e)
                .message
                .contains("\"token\" (the vendor's authToken)")
        );
    }

    #[test]
    fn bad_twilio_sid_is_invalid_credentials_without_echo() {
        let bad = "ACnot-a-real-sid-value-xyz";
        let s = secret(&[("accountSid", bad), ("authToken", TOKEN)]);
        let e = evaluate(&twilio(), SecretLookup::Found(&s));
        assert_eq!(ready(&e).reason, "InvalidCredentials");
        for c in &e.updates {
            assert!(
                !c.message.contains(bad) && !c.message.contains(TOKEN),
                "{}",
                c.message
            );
        }
    }

    #[test]
    fn good_twilio_is_ready() {
        let s = secret(&[("accountSid", SID), ("authToken", TOKEN)]);
        let e = evaluate(&twilio(), SecretLookup::Found(&s));
        assert!(e.ready(), "{:?}", e.updates);
        assert!(e.updates.iter().all(|c| !c.message.contains(TOKEN)));
    }

    #[test]
    fn empty_key_counts_as_missing() {
        let s = secret(&[("accountSid", SID), ("authToken", "")]);
        assert_eq!(
            ready(&evaluate(&twilio(), SecretLookup::Found(&s))).reason,
            "KeyMissing"
        );
    }

    #[test]
    fn per_vendor_settings() {
        let cases = [
            (
                "type: llm\nvendor: openai\ncredentialsSecretRef: { name: k }\n",
                Some("model"),
            ),
            (
                "type: llm\nvendor: openai\ncredentialsSecretRef: { name: k }\nsettings: { model: gpt-4o-mini }\n",
                None,
            ),
            (
                "type: tts\nvendor: elevenlabs\ncredentialsSecretRef: { name: k }\n",
                Some("voiceId"),
            ),
            (
                "type: tts\nvendor: cartesia\ncredentialsSecretRef: { name: k }\nsettings: { voiceId: v1 }\n",
                None,
            ),
            (
                "type: email\nvendor: sendgrid\ncredentialsSecretRef: { name: k }\n",
                Some("fromAddress"),
            ),
            (
                "type: email\nvendor: sendgrid\ncredentialsSecretRef: { name: k }\nsettings: { fromAddress: nope }\n",
                Some("email"),
            ),
            (
                "type: webhook\nvendor: webhook\ncredentialsSecretRef: { name: k }\n",
                Some("webhookUrl"),
            ),
            ("type: telephony\nvendor: sip\n", Some("sipTrunk")),
            ("type: llm\nvendor: builtin\n", None),
        ];
        for (yaml, want) in cases {
            let got = check_settings(&spec(yaml));
            match want {
                None => assert_eq!(got, Ok(()), "{yaml}"),
                Some(word) => assert!(
                    got.as_ref().is_err_and(|m| m.contains(word)),
                    "{yaml}: {got:?}"
                ),
            }
        }
        let e = evaluate(
            &spec("type: telephony\nvendor: sip\n"),
            SecretLookup::NotRequired,
        );
        assert_eq!(ready(&e).reason, "InvalidSettings");
    }

    #[test]
    fn twilio_sid_shape() {
        assert!(is_twilio_account_sid(SID.as_bytes()));
        assert!(is_twilio_account_sid(format!("{SID}\n").as_bytes()));
        assert!(!is_twilio_account_sid(b"AC123"));
        assert!(!is_twilio_account_sid(
            b"XX0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_twilio_account_sid(
            b"AC0123456789abcdef0123456789abcdeg"
        ));
    }
}
