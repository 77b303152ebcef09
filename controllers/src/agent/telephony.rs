//! Telephony binding: pointing each routed number's voice webhook at the
//! platform. Twilio numbers are updated through Twilio's REST API
//! (IncomingPhoneNumbers) with the Provider's credentials; SIP trunks and
//! the builtin vendor only have their route recorded.

use std::collections::BTreeMap;

use dialtone_crds::agent::{Direction, PhoneNumber, PhoneNumberStatus};
use dialtone_crds::provider::Vendor;
use dialtone_providers::twilio::rest::{DEFAULT_BASE_URL, TwilioRest};
use k8s_openapi::ByteString;

use super::resolve::Resolved;
use super::status::{number, state};

/// The path of the voice pods' Twilio webhook.
pub const WEBHOOK_PATH: &str = "/twilio/voice";

/// The voice webhook URL under the platform's public voice URL.
pub fn voice_url(public: &str) -> String {
    format!("{}{WEBHOOK_PATH}", public.trim_end_matches('/'))
}

/// What to do with one routed number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to call: record the route with this note.
    RouteOnly(Option<String>),
    /// Already bound with the same URL and credentials.
    Keep,
    /// Call the vendor.
    Bind,
}

/// The binding plan of a routed number. `with` identifies the provider and
/// its credentials' version (`Provider/twilio@<resourceVersion>`).
pub fn plan(
    phone: &PhoneNumber,
    telephony: Option<&Resolved<'_>>,
    url: Option<&str>,
    with: &str,
    previous: Option<&PhoneNumberStatus>,
) -> Plan {
    let Some(provider) = telephony else {
        return Plan::RouteOnly(None);
    };
    match provider.spec.vendor {
        Vendor::Twilio => {}
        Vendor::Sip => {
            return Plan::RouteOnly(Some("SIP trunk: the route is recorded".to_owned()));
        }
        _ => return Plan::RouteOnly(None),
    }
    if phone.direction == Direction::Outbound {
        return Plan::RouteOnly(Some("outbound caller id only; no webhook".to_owned()));
    }
    let Some(url) = url else {
        return Plan::RouteOnly(Some(
            "no public voice URL is configured (--public-voice-url); the webhook is not managed"
                .to_owned(),
        ));
    };
    let bound = previous.is_some_and(|p| {
        p.state == state::BOUND
            && p.voice_url.as_deref() == Some(url)
            && p.bound_with.as_deref() == Some(with)
    });
    if bound { Plan::Keep } else { Plan::Bind }
}

/// A Bound number's status.
pub fn bound(phone: &str, url: &str, with: &str) -> PhoneNumberStatus {
    PhoneNumberStatus {
        voice_url: Some(url.to_owned()),
        bound_with: Some(with.to_owned()),
        ..number(phone, state::BOUND, Some(format!("voice webhook is {url}")))
    }
}

/// Why a number could not be bound. Never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The credentials Secret does not exist.
    #[error("Secret {0} not found")]
    SecretNotFound(String),
    /// A key the vendor needs is missing or not UTF-8.
    #[error("Secret {secret} has no usable key {key:?}")]
    KeyMissing {
        /// `namespace/name`.
        secret: String,
        /// The Secret key.
        key: String,
    },
    /// Twilio refused or could not be reached.
    #[error("{0}")]
    Vendor(String),
}

/// The Twilio client for a Provider, from its Secret's data.
pub fn twilio_client(
    provider: &Resolved<'_>,
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<TwilioRest, BindError> {
    let value = |wanted: &str| -> Result<String, BindError> {
        let key = provider
            .spec
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.key_for(wanted))
            .unwrap_or(wanted);
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BindError::KeyMissing {
                secret: secret.to_owned(),
                key: key.to_owned(),
            })
    };
    Ok(TwilioRest {
        base_url: provider
            .spec
            .settings
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        account_sid: value("accountSid")?,
        auth_token: value("authToken")?,
    })
}

/// Points `phone` at `url` through `client`.
pub async fn bind(client: &TwilioRest, phone: &str, url: &str) -> Result<(), BindError> {
    client
        .set_voice_url(phone, url)
        .await
        .map(drop)
        .map_err(|e| BindError::Vendor(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::ProviderSpec;
    use dialtone_crds::agent::ProviderKind;

    fn spec(yaml: &str) -> ProviderSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    fn phone(direction: Direction) -> PhoneNumber {
        PhoneNumber {
            number: "+61290001234".into(),
            direction,
        }
    }

    const TWILIO: &str = "type: telephony\nvendor: twilio\ncredentialsSecretRef: {name: creds, keys: {authToken: token}}\nsettings: {baseUrl: 'http://127.0.0.1:9'}\n";

    #[test]
    fn only_inbound_twilio_numbers_with_a_public_url_are_bound() {
        let twilio = spec(TWILIO);
        let t = Resolved {
            kind: ProviderKind::Provider,
            name: "twilio",
            spec: &twilio,
        };
        let url = voice_url("https://voice.example.com/");
        assert_eq!(url, "https://voice.example.com/twilio/voice");
        let with = "Provider/twilio@7";
        assert_eq!(
            plan(&phone(Direction::Both), Some(&t), Some(&url), with, None),
            Plan::Bind
        );
        assert_eq!(
            plan(&phone(Direction::Inbound), Some(&t), Some(&url), with, None),
            Plan::Bind
        );
        assert!(matches!(
            plan(
                &phone(Direction::Outbound),
                Some(&t),
                Some(&url),
                with,
                None
            ),
            Plan::RouteOnly(Some(_))
        ));
        assert!(matches!(
            plan(&phone(Direction::Both), Some(&t), None, with, None),
            Plan::RouteOnly(Some(_))
        ));
        assert_eq!(
            plan(&phone(Direction::Both), None, Some(&url), with, None),
            Plan::RouteOnly(None)
        );
        let sip =
            spec("type: telephony\nvendor: sip\nsettings: {sipTrunk: 'sip:trunk.example.net'}\n");
        let s = Resolved {
            kind: ProviderKind::Provider,
            name: "trunk",
            spec: &sip,
        };
        assert!(matches!(
            plan(&phone(Direction::Both), Some(&s), Some(&url), with, None),
            Plan::RouteOnly(Some(note)) if note.contains("SIP")
        ));
    }

    #[test]
    fn a_bound_number_is_bound_again_only_when_url_or_credentials_change() {
        let twilio = spec(TWILIO);
        let t = Resolved {
            kind: ProviderKind::Provider,
            name: "twilio",
            spec: &twilio,
        };
        let url = voice_url("https://voice.example.com");
        let was = bound("+61290001234", &url, "Provider/twilio@7");
        let p = phone(Direction::Both);
        assert_eq!(
            plan(&p, Some(&t), Some(&url), "Provider/twilio@7", Some(&was)),
            Plan::Keep
        );
        assert_eq!(
            plan(&p, Some(&t), Some(&url), "Provider/twilio@8", Some(&was)),
            Plan::Bind
        );
        assert_eq!(
            plan(
                &p,
                Some(&t),
                Some("https://other/twilio/voice"),
                "Provider/twilio@7",
                Some(&was)
            ),
            Plan::Bind
        );
        let failed = number("+61290001234", state::BINDING_FAILED, Some("401".into()));
        assert_eq!(
            plan(&p, Some(&t), Some(&url), "Provider/twilio@7", Some(&failed)),
            Plan::Bind
        );
    }

    #[test]
    fn the_client_reads_renamed_keys_and_never_shows_the_token() {
        let twilio = spec(TWILIO);
        let t = Resolved {
            kind: ProviderKind::Provider,
            name: "twilio",
            spec: &twilio,
        };
        let data = BTreeMap::from([
            ("accountSid".to_owned(), ByteString(b"ACabc\n".to_vec())),
            ("token".to_owned(), ByteString(b"s3cret".to_vec())),
        ]);
        let c = twilio_client(&t, "ns/creds", &data).expect("client");
        assert_eq!(c.account_sid, "ACabc");
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert!(!format!("{c:?}").contains("s3cret"));
        let missing = BTreeMap::from([("accountSid".to_owned(), ByteString(b"AC".to_vec()))]);
        let err = twilio_client(&t, "ns/creds", &missing).expect_err("no token");
        assert_eq!(
            err.to_string(),
            "Secret ns/creds has no usable key \"token\""
        );
    }
}
