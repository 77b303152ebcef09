//! The workflow adapters, one module per vendor, and [`build`], which picks
//! the one for a job's provider.
//!
//! | vendor | action | one effect by |
//! |---|---|---|
//! | `webhook` | any | `X-Dialtone-Idempotency-Key`; the receiver deduplicates |
//! | `sendgrid` | email | none offered: at least once (key in `custom_args`) |
//! | `postmark` | email | outbound messages searched by metadata first |
//! | `twilio` | sms | the day's messages To/From searched for the same body first |
//! | `hubspot` | crmUpsert | contact searched by email or phone, then updated or created |
//! | `calcom` | calendarBook | bookings around the slot searched for the key in metadata |
//! | `googleCalendar` | calendarBook | an event id derived from the key (409 = already made) |
//! | `stripe` | paymentLink | `Idempotency-Key` |
//! | `docusign` | esign | envelopes searched by a custom field holding the key |
//!
//! Every adapter sends through [`http`], which sets the deadline, maps
//! statuses to retryable or permanent errors and removes secret values
//! from messages.

mod builtin;
mod calcom;
mod common;
mod docusign;
mod google_calendar;
mod http;
mod hubspot;
mod postmark;
mod sendgrid;
mod stripe;
#[cfg(test)]
mod testing;
mod twilio_sms;
pub mod webhook;

use dialtone_crds::provider::Vendor;
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::Credentials;

use crate::adapter::{Adapter, DeliveryError};

pub use builtin::Builtin;

/// The adapter for a job's vendor. `config` is the job's provider (absent
/// for `builtin`), `credentials` its Secret's values.
///
/// A missing credential is retryable (the Secret may not be mounted yet,
/// or is being rotated); a missing or malformed setting is permanent.
pub fn build(
    vendor: Vendor,
    config: Option<&ProviderConfig>,
    credentials: &Credentials,
    http: &reqwest::Client,
) -> Result<Box<dyn Adapter>, DeliveryError> {
    let settings = config.map(|c| &c.settings);
    let setting = |value: Option<&String>, name: &str| {
        value.cloned().ok_or_else(|| DeliveryError::Permanent {
            message: format!("the {} provider has no settings.{name}", vendor.as_str()),
            status: None,
        })
    };
    let secret = |key: &str| {
        credentials
            .require(key)
            .map(str::to_owned)
            .map_err(|e| DeliveryError::Retryable {
                message: e.to_string(),
                status: None,
                retry_after: None,
            })
    };
    let base = |default: &str| {
        http::Base::parse(
            vendor.as_str(),
            settings.and_then(|s| s.base_url.as_deref()),
            default,
        )
    };
    let client = http.clone();
    Ok(match vendor {
        Vendor::Builtin => Box::new(Builtin),
        Vendor::Webhook => Box::new(webhook::Webhook::new(
            &setting(settings.and_then(|s| s.webhook_url.as_ref()), "webhookUrl")?,
            secret("signingSecret")?,
            client,
        )?),
        Vendor::Sendgrid => Box::new(sendgrid::Sendgrid::new(
            base(sendgrid::DEFAULT_BASE)?,
            secret("apiKey")?,
            settings.and_then(|s| s.from_address.clone()),
            client,
        )),
        Vendor::Postmark => Box::new(postmark::Postmark::new(
            base(postmark::DEFAULT_BASE)?,
            secret("apiKey")?,
            settings.and_then(|s| s.from_address.clone()),
            client,
        )),
        Vendor::Twilio => Box::new(twilio_sms::TwilioSms::new(
            base(twilio_sms::DEFAULT_BASE)?,
            secret("accountSid")?,
            secret("authToken")?,
            client,
        )),
        Vendor::Hubspot => Box::new(hubspot::Hubspot::new(
            base(hubspot::DEFAULT_BASE)?,
            secret("apiKey")?,
            client,
        )),
        Vendor::Calcom => Box::new(calcom::Calcom::new(
            base(calcom::DEFAULT_BASE)?,
            secret("apiKey")?,
            client,
        )),
        Vendor::GoogleCalendar => Box::new(google_calendar::GoogleCalendar::new(
            base(google_calendar::DEFAULT_BASE)?,
            secret("accessToken")?,
            client,
        )),
        Vendor::Stripe => Box::new(stripe::Stripe::new(
            base(stripe::DEFAULT_BASE)?,
            secret("apiKey")?,
            client,
        )),
        Vendor::Docusign => Box::new(docusign::Docusign::new(
            base(docusign::DEFAULT_BASE)?,
            secret("accessToken")?,
            client,
        )),
        other @ (Vendor::Sip
        | Vendor::Deepgram
        | Vendor::Elevenlabs
        | Vendor::Cartesia
        | Vendor::Openai) => {
            return Err(DeliveryError::Permanent {
                message: format!("vendor {} has no workflow adapter", other.as_str()),
                status: None,
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::agent::ProviderKind;
    use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType};

    fn config(vendor: Vendor, settings: ProviderSettings) -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind: ProviderKind::Provider,
            type_: ProviderType::Webhook,
            vendor,
            settings,
            pricing: Pricing::default(),
            rate_limits: None,
        }
    }

    #[test]
    fn every_workflow_vendor_has_an_adapter_given_its_credentials() {
        let http = reqwest::Client::new();
        for vendor in [
            Vendor::Webhook,
            Vendor::Sendgrid,
            Vendor::Postmark,
            Vendor::Twilio,
            Vendor::Hubspot,
            Vendor::Calcom,
            Vendor::GoogleCalendar,
            Vendor::Stripe,
            Vendor::Docusign,
        ] {
            let creds = Credentials::from_values(
                "p",
                vendor
                    .required_secret_keys()
                    .iter()
                    .map(|k| (*k, "value-of-the-secret")),
            );
            let cfg = config(
                vendor,
                ProviderSettings {
                    webhook_url: Some("https://hooks.example.com/x".into()),
                    ..ProviderSettings::default()
                },
            );
            assert!(
                build(vendor, Some(&cfg), &creds, &http).is_ok(),
                "{}",
                vendor.as_str()
            );
            // Without its Secret the job waits for it.
            let err = build(vendor, Some(&cfg), &Credentials::default(), &http)
                .err()
                .expect("no credentials");
            assert!(
                matches!(err, DeliveryError::Retryable { .. }),
                "{}: {err:?}",
                vendor.as_str()
            );
        }
        assert!(build(Vendor::Builtin, None, &Credentials::default(), &http).is_ok());
        assert!(matches!(
            build(Vendor::Deepgram, None, &Credentials::default(), &http).err(),
            Some(DeliveryError::Permanent { .. })
        ));
    }

    #[test]
    fn bad_settings_dead_letter_at_once() {
        let http = reqwest::Client::new();
        let creds = Credentials::from_values("p", [("signingSecret", "s3cret-value")]);
        let no_url = config(Vendor::Webhook, ProviderSettings::default());
        let err = build(Vendor::Webhook, Some(&no_url), &creds, &http)
            .err()
            .expect("no url");
        assert_eq!(
            err.to_string(),
            "the webhook provider has no settings.webhookUrl"
        );
        let creds = Credentials::from_values("p", [("apiKey", "k-123456")]);
        let bad_base = config(
            Vendor::Stripe,
            ProviderSettings {
                base_url: Some("not a url".into()),
                ..ProviderSettings::default()
            },
        );
        assert!(matches!(
            build(Vendor::Stripe, Some(&bad_base), &creds, &http).err(),
            Some(DeliveryError::Permanent { .. })
        ));
    }
}
