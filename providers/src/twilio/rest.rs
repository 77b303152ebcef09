//! The Twilio REST calls Dialtone makes: pointing an incoming phone
//! number's voice webhook at the voice pods (the operator), and placing an
//! outbound call (the campaign dialer).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ProviderError;
use crate::http;

/// Twilio's public API.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

const VENDOR: &str = "twilio";

/// Each REST request must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Twilio account's REST API. `Debug` does not show the auth token.
#[derive(Clone)]
pub struct TwilioRest {
    /// API root, [`DEFAULT_BASE_URL`] unless a proxy or test server is used.
    pub base_url: String,
    /// The account (`AC…`).
    pub account_sid: String,
    /// The account's auth token (secret).
    pub auth_token: String,
}

/// What [`TwilioRest::set_voice_url`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// The number already posted to the URL; nothing was changed.
    AlreadyBound {
        /// The number's `PN…` sid.
        sid: String,
    },
    /// The number's voice URL (and method POST) were set.
    Updated {
        /// The number's `PN…` sid.
        sid: String,
    },
}

#[derive(Deserialize)]
struct NumberList {
    #[serde(default)]
    incoming_phone_numbers: Vec<IncomingNumber>,
}

#[derive(Deserialize)]
struct IncomingNumber {
    sid: String,
    phone_number: String,
    #[serde(default)]
    voice_url: Option<String>,
    #[serde(default)]
    voice_method: Option<String>,
}

/// An outbound call to place (`POST /2010-04-01/Accounts/{sid}/Calls.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundCall<'a> {
    /// The callee, E.164.
    pub to: &'a str,
    /// The caller id presented, E.164 (a number of the account).
    pub from: &'a str,
    /// Twilio fetches the call's TwiML from here when it is answered.
    pub url: &'a str,
    /// Twilio posts the call's progress here.
    pub status_callback: &'a str,
    /// `Enable` or `DetectMessageEnd` (answering-machine detection), or
    /// `None` for no detection.
    pub machine_detection: Option<&'a str>,
    /// Seconds to let it ring.
    pub ring_timeout_seconds: u32,
}

#[derive(Deserialize)]
struct CreatedCall {
    sid: String,
}

impl OutboundCall<'_> {
    /// The form Twilio's Calls API takes.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", self.to.to_owned()),
            ("From", self.from.to_owned()),
            ("Url", self.url.to_owned()),
            ("Method", "POST".to_owned()),
            ("StatusCallback", self.status_callback.to_owned()),
            ("StatusCallbackMethod", "POST".to_owned()),
            ("Timeout", self.ring_timeout_seconds.to_string()),
        ];
        // Repeated parameter: Twilio reports each of these events.
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", event.to_owned()));
        }
        if let Some(detection) = self.machine_detection {
            form.push(("MachineDetection", detection.to_owned()));
        }
        form
    }
}

impl TwilioRest {
    /// Places `call`; returns its `CA…` sid. A refusal (a number not in the
    /// account, an invalid `To`, bad credentials) is an HTTP 4xx error that
    /// will not succeed on retry; see [`ProviderError::is_transient`].
    pub async fn create_call(&self, call: &OutboundCall<'_>) -> Result<String, ProviderError> {
        let client = http::client(VENDOR)?;
        let secrets = [self.auth_token.as_str()];
        let url = http::endpoint(
            VENDOR,
            &self.base_url,
            &[
                "2010-04-01",
                "Accounts",
                self.account_sid.as_str(),
                "Calls.json",
            ],
        )?;
        let request = client
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&call.form());
        let created: CreatedCall =
            http::within(VENDOR, "placing the call", REQUEST_TIMEOUT, async {
                http::json(VENDOR, http::send(VENDOR, request, &secrets).await?).await
            })
            .await?;
        Ok(created.sid)
    }

    /// The account at Twilio's public API.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        TwilioRest {
            base_url: DEFAULT_BASE_URL.to_owned(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
        }
    }

    /// Makes `phone_number_e164` (an incoming number of the account) send
    /// its calls to `voice_url` with POST. Does nothing when it already
    /// does, so reconciling repeatedly costs one GET.
    pub async fn set_voice_url(
        &self,
        phone_number_e164: &str,
        voice_url: &str,
    ) -> Result<BindOutcome, ProviderError> {
        let client = http::client(VENDOR)?;
        let secrets = [self.auth_token.as_str()];
        let account = ["2010-04-01", "Accounts", self.account_sid.as_str()];

        let list_url = http::endpoint(
            VENDOR,
            &self.base_url,
            &[&account[..], &["IncomingPhoneNumbers.json"]].concat(),
        )?;
        let request = client
            .get(list_url)
            .query(&[("PhoneNumber", phone_number_e164)])
            .basic_auth(&self.account_sid, Some(&self.auth_token));
        let list: NumberList =
            http::within(VENDOR, "looking up the number", REQUEST_TIMEOUT, async {
                http::json(VENDOR, http::send(VENDOR, request, &secrets).await?).await
            })
            .await?;
        // The PhoneNumber filter also matches partial numbers, so only an
        // exact match counts.
        let number = list
            .incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == phone_number_e164)
            .ok_or_else(|| ProviderError::NumberNotInAccount {
                number: phone_number_e164.to_owned(),
            })?;
        let posts_there = number.voice_url.as_deref() == Some(voice_url)
            && number
                .voice_method
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("POST"));
        if posts_there {
            return Ok(BindOutcome::AlreadyBound { sid: number.sid });
        }

        let number_file = format!("{}.json", number.sid);
        let update_url = http::endpoint(
            VENDOR,
            &self.base_url,
            &[
                &account[..],
                &["IncomingPhoneNumbers", number_file.as_str()],
            ]
            .concat(),
        )?;
        let request = client
            .post(update_url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&[("VoiceUrl", voice_url), ("VoiceMethod", "POST")]);
        http::within(VENDOR, "updating the number", REQUEST_TIMEOUT, async {
            http::send(VENDOR, request, &secrets).await.map(drop)
        })
        .await?;
        Ok(BindOutcome::Updated { sid: number.sid })
    }
}

impl fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioRest")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_token() {
        let rest = TwilioRest::new("AC123", "very-secret-token");
        let shown = format!("{rest:?}");
        assert!(shown.contains("AC123"), "{shown}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert_eq!(rest.base_url, DEFAULT_BASE_URL);
    }
}
