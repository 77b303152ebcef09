//! HTTP plumbing shared by the adapters: clients, endpoint URLs, deadlines
//! and the mapping of vendor error answers to [`ProviderError`].

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::error::ProviderError;

/// How long establishing a TCP/TLS connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Vendor messages are cut to this many characters: enough to say what is
/// wrong, short enough for a status condition.
const MAX_MESSAGE_CHARS: usize = 300;

/// A client for one adapter. Timeouts are applied per request (streams need
/// their own), so only the connect timeout is set here.
pub(crate) fn client(vendor: &'static str) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| transport(vendor, &e))
}

/// `base` with `segments` appended as path segments (each percent-encoded),
/// keeping any path prefix of `base` (for proxies).
pub(crate) fn endpoint(
    vendor: &'static str,
    base: &str,
    segments: &[&str],
) -> Result<Url, ProviderError> {
    let mut url = Url::parse(base).map_err(|e| ProviderError::Config {
        vendor,
        message: format!("baseUrl {base:?} is not a URL: {e}"),
    })?;
    url.path_segments_mut()
        .map_err(|()| ProviderError::Config {
            vendor,
            message: format!("baseUrl {base:?} cannot have a path"),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Runs `fut`, failing with [`ProviderError::Timeout`] after `limit`.
pub(crate) async fn within<T>(
    vendor: &'static str,
    during: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(ProviderError::Timeout {
            vendor,
            during,
            after: limit,
        }))
}

/// Sends a request; a non-success status becomes the matching error, with
/// the vendor's message read from the body and `secrets` removed from it.
pub(crate) async fn send(
    vendor: &'static str,
    request: reqwest::RequestBuilder,
    secrets: &[&str],
) -> Result<reqwest::Response, ProviderError> {
    let response = request.send().await.map_err(|e| transport(vendor, &e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(response.headers());
    // A failing body read still leaves the status to report.
    let body = response.bytes().await.unwrap_or_default();
    Err(status_error(
        vendor,
        status.as_u16(),
        retry_after,
        &body,
        secrets,
    ))
}

/// Reads a JSON body.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    vendor: &'static str,
    response: reqwest::Response,
) -> Result<T, ProviderError> {
    let body = response.bytes().await.map_err(|e| transport(vendor, &e))?;
    serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
        vendor,
        message: format!("body is not the expected JSON: {e}"),
    })
}

/// A transport error, described by its source chain but without the URL
/// (URLs can carry phone numbers and query parameters).
pub(crate) fn transport(vendor: &'static str, e: &reqwest::Error) -> ProviderError {
    let mut message = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        // reqwest repeats the URL in its own Display; strip it by taking
        // the part before " for url (".
        let text = text.split(" for url (").next().unwrap_or_default();
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(text);
        source = err.source();
    }
    ProviderError::Transport { vendor, message }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The error for a non-success HTTP answer. The vendor's code and message
/// are taken from the usual places in JSON error bodies (`message`,
/// `error.message`, `detail.message`, `err_msg` …); other bodies are used
/// as text.
pub(crate) fn status_error(
    vendor: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> ProviderError {
    let (code, message) = error_parts(body);
    let message = match message {
        Some(m) if !m.trim().is_empty() => m,
        _ => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned(),
    };
    let message = truncate(&redact(&message, secrets));
    let code = code.map(|c| truncate(&redact(&c, secrets)));
    match status {
        401 | 403 => ProviderError::Unauthorized {
            vendor,
            status,
            code,
            message,
        },
        404 => ProviderError::NotFound {
            vendor,
            code,
            message,
        },
        429 => ProviderError::RateLimited {
            vendor,
            code,
            message,
            retry_after,
        },
        500..=599 => ProviderError::Server {
            vendor,
            status,
            code,
            message,
        },
        _ => ProviderError::Rejected {
            vendor,
            status,
            code,
            message,
        },
    }
}

fn error_parts(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        return (None, (!text.is_empty()).then_some(text));
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let first = |paths: &[&[&str]]| {
        paths.iter().find_map(|path| {
            let mut v = &json;
            for key in *path {
                v = v.get(key)?;
            }
            text(v)
        })
    };
    let message = first(&[
        &["message"],
        &["error", "message"],
        &["error"],
        &["detail", "message"],
        &["detail"],
        &["err_msg"],
        &["description"],
    ]);
    let code = first(&[
        &["code"],
        &["error", "code"],
        &["error", "type"],
        &["detail", "status"],
        &["err_code"],
    ]);
    (code, message)
}

/// `text` with every occurrence of a secret replaced, in case a vendor
/// echoes what it was sent.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s, "[redacted]"))
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_encoded_segments_after_any_prefix() {
        let u = endpoint("twilio", "https://api.twilio.com", &["2010-04-01", "a b"]).unwrap();
        assert_eq!(u.as_str(), "https://api.twilio.com/2010-04-01/a%20b");
        let u = endpoint("twilio", "http://proxy:8080/twilio/", &["x.json"]).unwrap();
        assert_eq!(u.as_str(), "http://proxy:8080/twilio/x.json");
        assert!(matches!(
            endpoint("twilio", "not a url", &[]),
            Err(ProviderError::Config { .. })
        ));
    }

    #[test]
    fn vendor_error_bodies_give_code_and_message() {
        let twilio = br#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        match status_error("twilio", 401, None, twilio, &[]) {
            ProviderError::Unauthorized { code, message, .. } => {
                assert_eq!(code.as_deref(), Some("20003"));
                assert_eq!(message, "Authenticate");
            }
            other => panic!("{other:?}"),
        }
        let openai = br#"{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}"#;
        match status_error("openai", 429, Some(Duration::from_secs(3)), openai, &[]) {
            ProviderError::RateLimited {
                code,
                message,
                retry_after,
                ..
            } => {
                assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
                assert_eq!(message, "Rate limit reached");
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
            }
            other => panic!("{other:?}"),
        }
        let eleven = br#"{"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}"#;
        match status_error("elevenlabs", 401, None, eleven, &[]) {
            ProviderError::Unauthorized { code, message, .. } => {
                assert_eq!(code.as_deref(), Some("invalid_api_key"));
                assert_eq!(message, "Invalid API key");
            }
            other => panic!("{other:?}"),
        }
        let deepgram = br#"{"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "x"}"#;
        match status_error("deepgram", 401, None, deepgram, &[]) {
            ProviderError::Unauthorized { code, message, .. } => {
                assert_eq!(code.as_deref(), Some("INVALID_AUTH"));
                assert_eq!(message, "Invalid credentials.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_map_to_kinds_and_empty_bodies_to_the_reason_phrase() {
        assert!(matches!(
            status_error("x", 503, None, b"", &[]),
            ProviderError::Server { status: 503, ref message, .. } if message == "Service Unavailable"
        ));
        assert!(matches!(
            status_error("x", 404, None, b"gone", &[]),
            ProviderError::NotFound { ref message, .. } if message == "gone"
        ));
        assert!(matches!(
            status_error("x", 422, None, b"{}", &[]),
            ProviderError::Rejected { status: 422, .. }
        ));
        assert!(matches!(
            status_error("x", 403, None, b"", &[]),
            ProviderError::Unauthorized { status: 403, .. }
        ));
    }

    #[test]
    fn echoed_secrets_are_redacted_and_long_messages_cut() {
        let body = br#"{"message": "token s3cr3t-token is wrong"}"#;
        let e = status_error("twilio", 400, None, body, &["s3cr3t-token", ""]);
        let text = e.to_string();
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(text.contains("token [redacted] is wrong"), "{text}");
        let long = "é".repeat(1000);
        match status_error("x", 500, None, long.as_bytes(), &[]) {
            ProviderError::Server { message, .. } => {
                assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
