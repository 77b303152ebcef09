//! `webhook`: POSTs the job as JSON to the Provider's `webhookUrl`, signed,
//! for any action (the receiver does the work).
//!
//! The body is `{workflow, trigger, action, tenant, idempotencyKey, params,
//! missing, call, event}`. Headers:
//!
//! * `Content-Type: application/json`;
//! * `X-Dialtone-Timestamp`: Unix seconds when it was signed;
//! * `X-Dialtone-Signature: v1=<hex HMAC-SHA256(signingSecret,
//!   "<timestamp>.<body>")>`;
//! * `X-Dialtone-Idempotency-Key`: the same on every attempt.
//!
//! A receiver verifies it in four steps:
//!
//! 1. read the raw body before parsing it (re-serialised JSON does not
//!    verify);
//! 2. refuse a timestamp more than [`REPLAY_WINDOW_SECONDS`] from its own
//!    clock, so a captured request cannot be replayed later;
//! 3. compute the HMAC over `<timestamp>.<body>` with the shared secret
//!    and compare it with the header's in constant time
//!    ([`verify_signature`] does steps 2 and 3);
//! 4. treat an idempotency key it has seen as done: answer 2xx and make no
//!    second effect, since a job is retried until it gets a 2xx.
//!
//! The receiver's 2xx answer may carry JSON with an `id`; it becomes the
//! receipt's reference. 408, 425, 429 and 5xx answers are retried (with
//! `Retry-After`), any other status dead-letters the job.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use url::Url;

use super::http;
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Default replay window of [`verify_signature`], in seconds.
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

/// The signed-webhook adapter.
pub struct Webhook {
    url: Url,
    secret: String,
    http: reqwest::Client,
}

impl Webhook {
    /// An adapter posting to `url`, signing with `secret`. A `url` that is
    /// not http(s) is a permanent error: no attempt could succeed.
    pub fn new(url: &str, secret: String, http: reqwest::Client) -> Result<Self, DeliveryError> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| DeliveryError::Permanent {
                message: format!("webhook: webhookUrl {url:?} is not an http(s) URL"),
                status: None,
            })?;
        Ok(Self {
            url: parsed,
            secret,
            http,
        })
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The MAC keyed with `secret`. HMAC takes keys of any length (long ones
/// are hashed), so `new_from_slice` cannot fail; the fallback only keeps
/// this free of panics.
fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// `v1=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"), as sent in
/// `X-Dialtone-Signature`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let hex = mac(secret, &timestamp.to_string(), body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("v1={hex}")
}

/// Why a received webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp header is missing or not a number.
    #[error("X-Dialtone-Timestamp is missing or not Unix seconds")]
    BadTimestamp,
    /// The timestamp is outside the replay window (seconds it is behind
    /// the receiver's clock; negative when ahead).
    #[error("X-Dialtone-Timestamp is {0} s from now, outside the replay window")]
    Stale(i64),
    /// The signature header is missing or malformed.
    #[error("X-Dialtone-Signature is missing or not v1=<hex>")]
    BadSignature,
    /// The signature does not match the body.
    #[error("X-Dialtone-Signature does not match the body")]
    Mismatch,
}

/// Verifies a received webhook as its receiver should: the timestamp
/// within `tolerance_secs` of `now_unix` (use [`REPLAY_WINDOW_SECONDS`]),
/// then the signature over `<timestamp>.<body>` compared in constant time.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp_header.trim();
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now_unix.saturating_sub(ts);
    if skew.saturating_abs() > tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let sig = signature_header
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::BadSignature)?;
    // `verify_slice` compares in constant time.
    mac(secret, timestamp, body)
        .ok_or(SignatureError::Mismatch)?
        .verify_slice(&sig)
        .map_err(|_| SignatureError::Mismatch)
}

fn body(d: &Delivery) -> Value {
    json!({
        "workflow": d.workflow,
        "trigger": d.trigger,
        "action": dialtone_engine::workflow::action_name(d.action),
        "tenant": d.tenant,
        "idempotencyKey": d.idempotency_key,
        "params": d.params,
        "missing": d.missing,
        "call": d.call,
        "event": d.event,
    })
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[async_trait]
impl Adapter for Webhook {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        let payload = serde_json::to_vec(&body(d)).map_err(|e| DeliveryError::Permanent {
            message: format!("webhook: the job cannot be written as JSON: {e}"),
            status: None,
        })?;
        // Signed afresh on every attempt, so a retry hours later is still
        // inside the receiver's replay window.
        let now = now_unix();
        let request = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-dialtone-timestamp", now.to_string())
            .header(
                "x-dialtone-signature",
                sign(self.secret.as_bytes(), now, &payload),
            )
            .header("x-dialtone-idempotency-key", &d.idempotency_key)
            .body(payload);
        let answer = http::send("webhook", request, &[&self.secret]).await?;
        let reference = answer.json_or_null().get("id").and_then(|id| match id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Receipt {
            reference,
            detail: json!({"status": answer.status}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::testing::{self, Fake, answer, check_refusals, delivery, header};
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::Response;
    use axum::routing::post;
    use dialtone_crds::agent::WorkflowAction;

    const SECRET: &str = "whsec_0123456789abcdef";

    /// A receiver as the module doc tells one to be: verifies, then
    /// deduplicates by key.
    async fn receive(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(refusal) = f.record(&method, &uri, &h, &body) {
            return refusal;
        }
        if header(&h, "content-type") != "application/json" {
            return answer(415, json!({"error": "JSON only"}));
        }
        if let Err(e) = verify_signature(
            SECRET.as_bytes(),
            header(&h, "x-dialtone-timestamp"),
            &body,
            header(&h, "x-dialtone-signature"),
            now_unix(),
            REPLAY_WINDOW_SECONDS,
        ) {
            return answer(401, json!({"error": e.to_string()}));
        }
        let key = header(&h, "x-dialtone-idempotency-key").to_owned();
        let mut store = f.store.lock().expect("lock");
        if !store.iter().any(|s| s["key"] == key.as_str()) {
            store.push(json!({"key": key, "body": serde_json::from_slice::<Value>(&body).ok()}));
        }
        answer(
            200,
            json!({"id": format!("evt_{}", store.len()), "received": true}),
        )
    }

    async fn vendor() -> (Fake, String) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/hooks/dialtone", post(receive))
                .with_state(fake.clone()),
        )
        .await;
        (fake, format!("{url}/hooks/dialtone"))
    }

    fn job() -> Delivery {
        let mut d = delivery(WorkflowAction::CrmUpsert, &[("list", "leads")]);
        d.event = json!({"service": "consult"});
        d
    }

    #[tokio::test]
    async fn posts_the_job_signed_and_the_receiver_verifies_it() {
        let (fake, url) = vendor().await;
        let hook = Webhook::new(&url, SECRET.into(), reqwest::Client::new()).expect("url");
        let r = hook.deliver(&job()).await.expect("delivered");
        assert_eq!(r.reference.as_deref(), Some("evt_1"));
        let again = hook.deliver(&job()).await.expect("delivered again");
        assert_eq!(again.reference.as_deref(), Some("evt_1"));

        let posts = fake.seen(Method::POST);
        assert_eq!(posts.len(), 2);
        assert_eq!(
            posts[0].header("x-dialtone-idempotency-key"),
            posts[1].header("x-dialtone-idempotency-key"),
            "the same key on every attempt"
        );
        assert_eq!(
            posts[0].header("x-dialtone-idempotency-key"),
            "call-1/notify/callCompleted"
        );
        let b = posts[0].json();
        assert_eq!(b["workflow"], "notify");
        assert_eq!(b["trigger"], "callCompleted");
        assert_eq!(b["action"], "crmUpsert");
        assert_eq!(b["tenant"], "acme");
        assert_eq!(b["idempotencyKey"], "call-1/notify/callCompleted");
        assert_eq!(b["params"]["list"], "leads");
        assert_eq!(b["call"]["callId"], "call-1");
        assert_eq!(b["call"]["caller"], "+61400111222");
        assert_eq!(b["event"]["service"], "consult");
        assert_eq!(fake.stored().len(), 1, "the receiver made one effect");
        // Nothing secret travels but the signature.
        assert_no_secret_in(&posts[0]);
    }

    fn assert_no_secret_in(r: &testing::Recorded) {
        let all = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        testing::assert_no_secret(&all, &[SECRET]);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_the_receiver_and_dead_letters() {
        let (_fake, url) = vendor().await;
        let hook =
            Webhook::new(&url, "not-the-secret".into(), reqwest::Client::new()).expect("url");
        let err = hook.deliver(&job()).await.expect_err("refused");
        assert!(
            matches!(
                err,
                DeliveryError::Permanent {
                    status: Some(401),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("does not match the body"), "{err}");
        testing::assert_no_secret(&err.to_string(), &["not-the-secret"]);
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, url) = vendor().await;
        let hook = Webhook::new(&url, SECRET.into(), reqwest::Client::new()).expect("url");
        check_refusals(
            &hook,
            &job(),
            &fake,
            Method::POST,
            400,
            |_, m| json!({"error": {"message": m}}),
            &[SECRET],
        )
        .await;
        let down = Webhook::new(
            &testing::unreachable_url().await,
            SECRET.into(),
            reqwest::Client::new(),
        )
        .expect("url");
        testing::check_unreachable(&down, &job(), &[SECRET]).await;
        assert!(Webhook::new("ftp://x", SECRET.into(), reqwest::Client::new()).is_err());
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // Computed independently: Python's
        // hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest()
        assert_eq!(
            sign(SECRET.as_bytes(), 1_700_000_000, br#"{"workflow":"w"}"#),
            "v1=aa5a016522bda8cb89aab56fd6a4895aff625ef5627ccbc7044600211a4828e7"
        );
    }

    #[test]
    fn a_signature_verifies_and_a_tampered_or_stale_one_does_not() {
        let body = br#"{"workflow":"w"}"#;
        let sig = sign(b"secret", 1_700_000_000, body);
        assert_eq!(
            verify_signature(b"secret", "1700000000", body, &sig, 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature(
                b"secret",
                "1700000000",
                br#"{"workflow":"x"}"#,
                &sig,
                1_700_000_100,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", "1700000000", body, &sig, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            verify_signature(b"secret", "1700000001", body, &sig, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"secret", "1700000000", body, &sig, 1_700_000_301, 300),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify_signature(b"secret", "1700000000", body, &sig, 1_699_999_600, 300),
            Err(SignatureError::Stale(-400)),
            "a timestamp from the future is refused too"
        );
        assert_eq!(
            verify_signature(b"secret", "soon", body, &sig, 0, 300),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify_signature(
                b"secret",
                "1700000000",
                body,
                "deadbeef",
                1_700_000_000,
                300
            ),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify_signature(b"secret", "1700000000", body, "v1=zz", 1_700_000_000, 300),
            Err(SignatureError::BadSignature)
        );
    }
}
