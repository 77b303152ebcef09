//! HTTP plumbing of the workflow adapters: one request with a deadline, and
//! the vendor's answer mapped to a [`DeliveryError`] that says whether
//! trying again can help, with the vendor's own message (secret values
//! removed, cut short).
//!
//! * 2xx: the answer, for the adapter to read;
//! * 408, 425, 429, 5xx, a connection failure or no answer within
//!   [`REQUEST_TIMEOUT`]: [`DeliveryError::Retryable`], with the vendor's
//!   `Retry-After` (seconds or an HTTP date);
//! * any other status: [`DeliveryError::Permanent`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::adapter::DeliveryError;

/// How long one vendor request may take, connecting included. Workflow
/// requests are small; a vendor slower than this is treated as down and
/// the job is retried with backoff rather than holding a worker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Vendor messages are cut to this many characters: enough to say what is
/// wrong, short enough for a job row, an event and a log line.
const MAX_MESSAGE_CHARS: usize = 300;

/// Secrets shorter than this are not searched for in messages: replacing a
/// two-letter "secret" everywhere would garble messages and protect
/// nothing.
const MIN_SECRET_CHARS: usize = 4;

/// A vendor API's base URL: `settings.baseUrl`, or the vendor's public
/// endpoint. Checked once, when the adapter is built, so a bad setting
/// dead-letters the job with a message naming it instead of failing in
/// the HTTP client on every attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base(Url);

impl Base {
    /// `configured`, else `default`; an http(s) URL that can take a path.
    pub fn parse(
        vendor: &str,
        configured: Option<&str>,
        default: &str,
    ) -> Result<Base, DeliveryError> {
        let raw = configured.unwrap_or(default);
        let url = Url::parse(raw).map_err(|e| DeliveryError::Permanent {
            message: format!("{vendor}: baseUrl {raw:?} is not a URL: {e}"),
            status: None,
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(DeliveryError::Permanent {
                message: format!("{vendor}: baseUrl {raw:?} must be an http(s) URL"),
                status: None,
            });
        }
        Ok(Base(url))
    }

    /// The base with `segments` appended, each percent-encoded (calendar
    /// ids hold `@`, keys hold `/`), keeping any path prefix of the base
    /// (proxies, the demo's `/calcom`).
    pub fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.0.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// A vendor's 2xx answer.
#[derive(Debug)]
pub struct Answer {
    /// The status (2xx).
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as received.
    pub body: Bytes,
}

impl Answer {
    /// A response header, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, for answers the adapter decides on (searches). A
    /// body that is not JSON is retried, never read as "nothing found":
    /// that would make a second effect.
    pub fn json(&self, vendor: &str) -> Result<Value, DeliveryError> {
        serde_json::from_slice(&self.body).map_err(|e| DeliveryError::Retryable {
            message: format!(
                "{vendor} answered HTTP {} with a body that is not JSON: {e}",
                self.status
            ),
            status: Some(self.status),
            retry_after: None,
        })
    }

    /// The body as JSON, or `Null`: for the answer to a create that has
    /// happened, of which only ids are read for the receipt.
    pub fn json_or_null(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `request` with [`REQUEST_TIMEOUT`]; a 2xx answer comes back,
/// anything else becomes the matching error. `secrets` are removed from
/// every message.
pub async fn send(
    vendor: &str,
    request: reqwest::RequestBuilder,
    secrets: &[&str],
) -> Result<Answer, DeliveryError> {
    let response = request
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| transport(vendor, &e, secrets))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        // The status is known but not what the vendor said; for a 2xx the
        // adapter's search finds the effect on the next attempt.
        Err(e) if (200..300).contains(&status) => return Err(transport(vendor, &e, secrets)),
        Err(_) => Bytes::new(),
    };
    if (200..300).contains(&status) {
        return Ok(Answer {
            status,
            headers,
            body,
        });
    }
    Err(status_error(vendor, status, &headers, &body, secrets))
}

/// A request that got no HTTP answer: retryable, saying why (the error's
/// causes included, since reqwest's own message is only "error sending
/// request for url …").
fn transport(vendor: &str, e: &reqwest::Error, secrets: &[&str]) -> DeliveryError {
    let why = if e.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else {
        let mut why = e.to_string();
        // Search URLs carry phone numbers and emails in their query; the
        // path says enough.
        if let Some(url) = e.url() {
            let mut bare = url.clone();
            bare.set_query(None);
            why = why.replace(url.as_str(), bare.as_str());
        }
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            why.push_str(": ");
            why.push_str(&cause.to_string());
            source = cause.source();
        }
        why
    };
    DeliveryError::Retryable {
        message: cut(&scrub(&format!("{vendor}: {why}"), secrets)),
        status: None,
        retry_after: None,
    }
}

/// The error for a non-2xx answer.
pub fn status_error(
    vendor: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> DeliveryError {
    let message = format!(
        "{vendor} answered HTTP {status}: {}",
        vendor_message(body, secrets)
    );
    if matches!(status, 408 | 425 | 429) || status >= 500 {
        DeliveryError::Retryable {
            message,
            status: Some(status),
            retry_after: retry_after(headers),
        }
    } else {
        DeliveryError::Permanent {
            message,
            status: Some(status),
        }
    }
}

/// For vendors whose credential is an OAuth access token refreshed outside
/// Dialtone (Google, DocuSign): a 401 usually means the token expired
/// before the broker rewrote the Secret, which is read again on the next
/// attempt, so it is retried instead of dead-lettered.
pub fn retry_unauthorised(e: DeliveryError) -> DeliveryError {
    match e {
        DeliveryError::Permanent {
            message,
            status: Some(401),
        } => DeliveryError::Retryable {
            message: format!(
                "{message} (the access token was refused; it is read again from its Secret on the next attempt)"
            ),
            status: Some(401),
            retry_after: None,
        },
        other => other,
    }
}

/// `Retry-After` as seconds or an HTTP date (a date already past means
/// "now").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The human part of a vendor's error body, secrets removed, cut short.
///
/// Vendors put it in different places; this reads the documented ones:
/// `message` with `code` (Twilio), `Message` with `ErrorCode` (Postmark),
/// `errors[].message` with `field` (SendGrid), `message` with `category`
/// (HubSpot), `error.message` with `error.status` (Google) or
/// `error.code` (Stripe, Cal.com), `message` with `errorCode` (DocuSign),
/// `error_description` with `error` (OAuth). A body that is not JSON is
/// used as text.
pub fn vendor_message(body: &[u8], secrets: &[&str]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => describe(&v).unwrap_or_else(|| v.to_string()),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let text = if text.is_empty() {
        "(no body)".to_owned()
    } else {
        text
    };
    // Scrub before cutting, so a cut cannot leave part of a secret.
    cut(&scrub(&text, secrets))
}

fn describe(v: &Value) -> Option<String> {
    let as_text = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    // Google, Stripe and Cal.com nest the error in an object.
    let o = match v.get("error") {
        Some(inner @ Value::Object(_)) => inner,
        _ => v,
    };
    let listed = |errors: &Value| {
        let parts: Vec<String> = errors
            .as_array()?
            .iter()
            .filter_map(|e| {
                let m = as_text(e.get("message")?)?;
                Some(match e.get("field").and_then(as_text) {
                    Some(field) => format!("{field}: {m}"),
                    None => m,
                })
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    let message = ["message", "Message", "error_description", "detail"]
        .iter()
        .find_map(|k| o.get(*k).and_then(as_text))
        .or_else(|| o.get("errors").and_then(listed))
        .or_else(|| v.get("errors").and_then(listed));
    let code = [
        o.get("ErrorCode"),
        o.get("errorCode"),
        o.get("category"),
        // `status` is Google's code name; Twilio's and HubSpot's are
        // numbers or "error", which say nothing the HTTP status does not.
        o.get("status").filter(|s| s.is_string() && *s != "error"),
        o.get("code"),
        o.get("type"),
        // OAuth: {"error": "invalid_token", "error_description": …}.
        v.get("error").filter(|e| e.is_string()),
    ]
    .into_iter()
    .flatten()
    .find_map(as_text);
    match (message, code) {
        (Some(m), Some(c)) if !m.contains(&c) => Some(format!("{m} ({c})")),
        (Some(m), _) => Some(m),
        (None, Some(c)) => Some(c),
        (None, None) => None,
    }
}

fn cut(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// `message` with every secret value replaced, as given and as it appears
/// percent-encoded in a URL or form.
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
        .fold(message.to_owned(), |m, s| {
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            m.replace(*s, "[redacted]").replace(&encoded, "[redacted]")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn vendor_messages_are_read_from_where_each_vendor_puts_them() {
        let m = |body: &str| vendor_message(body.as_bytes(), &[]);
        assert_eq!(m(r#"{"message":"bad date"}"#), "bad date");
        // Twilio
        assert_eq!(
            m(
                r#"{"code":21211,"message":"The 'To' number 123 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#
            ),
            "The 'To' number 123 is not a valid phone number. (21211)"
        );
        // Postmark
        assert_eq!(
            m(r#"{"ErrorCode":300,"Message":"Invalid 'From' address: 'x'."}"#),
            "Invalid 'From' address: 'x'. (300)"
        );
        // SendGrid
        assert_eq!(
            m(
                r#"{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":null}]}"#
            ),
            "from: The from address does not match a verified Sender Identity."
        );
        // HubSpot
        assert_eq!(
            m(
                r#"{"status":"error","message":"Property values were not valid","correlationId":"x","category":"VALIDATION_ERROR"}"#
            ),
            "Property values were not valid (VALIDATION_ERROR)"
        );
        // Google
        assert_eq!(
            m(
                r#"{"error":{"code":409,"message":"The requested identifier already exists.","errors":[{"domain":"global","reason":"duplicate","message":"The requested identifier already exists."}],"status":"ALREADY_EXISTS"}}"#
            ),
            "The requested identifier already exists. (ALREADY_EXISTS)"
        );
        // Stripe
        assert_eq!(
            m(
                r#"{"error":{"code":"resource_missing","message":"No such price: 'price_x'","param":"line_items[0][price]","type":"invalid_request_error"}}"#
            ),
            "No such price: 'price_x' (resource_missing)"
        );
        // Cal.com
        assert_eq!(
            m(
                r#"{"status":"error","timestamp":"t","path":"/v2/bookings","error":{"code":"BadRequestException","message":"User either already has booking at this time or is not available"}}"#
            ),
            "User either already has booking at this time or is not available (BadRequestException)"
        );
        // DocuSign
        assert_eq!(
            m(r#"{"errorCode":"TEMPLATE_ID_INVALID","message":"Invalid template ID."}"#),
            "Invalid template ID. (TEMPLATE_ID_INVALID)"
        );
        // OAuth
        assert_eq!(
            m(r#"{"error":"invalid_token","error_description":"The access token expired"}"#),
            "The access token expired (invalid_token)"
        );
        assert_eq!(m("plain text"), "plain text");
        assert_eq!(m(""), "(no body)");
    }

    #[test]
    fn secrets_are_removed_before_a_message_is_cut() {
        assert_eq!(
            scrub("key sk_live_123 leaked", &["sk_live_123"]),
            "key [redacted] leaked"
        );
        assert_eq!(
            scrub("url ?token=a%2Fb%2Bc%3D", &["a/b+c="]),
            "url ?token=[redacted]"
        );
        assert_eq!(scrub("ab stays", &["ab"]), "ab stays");
        // A secret straddling the cut is removed whole, not half kept.
        let secret = "s".repeat(40);
        let body = format!(r#"{{"message":"{}{secret}"}}"#, "x".repeat(290));
        let m = vendor_message(body.as_bytes(), &[&secret]);
        assert!(!m.contains("ssss"), "{m}");
        assert!(m.chars().count() <= MAX_MESSAGE_CHARS + 1, "{m}");
    }

    #[test]
    fn statuses_map_to_retryable_or_permanent_with_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        for status in [408, 425, 429, 500, 502, 503] {
            assert!(
                matches!(
                    status_error("v", status, &h, b"{}", &[]),
                    DeliveryError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7)
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(
                matches!(
                    status_error("v", status, &h, b"{}", &[]),
                    DeliveryError::Permanent { status: Some(s), .. } if s == status
                ),
                "{status}"
            );
        }
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(
            "retry-after",
            HeaderValue::from_str(&later).expect("header"),
        );
        let d = retry_after(&h).expect("an HTTP date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn a_base_keeps_its_prefix_and_encodes_segments() {
        let b = Base::parse("v", Some("http://127.0.0.1:1/calcom/"), "https://x").expect("base");
        assert_eq!(
            b.join(&["v2", "bookings"]).as_str(),
            "http://127.0.0.1:1/calcom/v2/bookings"
        );
        let g = Base::parse("v", None, "https://www.googleapis.com").expect("base");
        assert_eq!(
            g.join(&[
                "calendar",
                "v3",
                "calendars",
                "a@group.calendar.google.com/x"
            ])
            .as_str(),
            "https://www.googleapis.com/calendar/v3/calendars/a@group.calendar.google.com%2Fx"
        );
        assert!(matches!(
            Base::parse("v", Some("ftp://x"), "https://x"),
            Err(DeliveryError::Permanent { .. })
        ));
        assert!(matches!(
            Base::parse("v", Some("not a url"), "https://x"),
            Err(DeliveryError::Permanent { .. })
        ));
    }

    #[test]
    fn an_expired_access_token_is_retried() {
        let e = retry_unauthorised(DeliveryError::Permanent {
            message: "google answered HTTP 401: Invalid Credentials".into(),
            status: Some(401),
        });
        assert!(
            matches!(
                e,
                DeliveryError::Retryable {
                    status: Some(401),
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
