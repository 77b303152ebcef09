//! Shared by the adapters' tests: a local fake vendor that records every
//! request and can be told to refuse, the checks every adapter's failures
//! must pass, and a [`Delivery`] to start from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use crate::adapter::{Adapter, CallInfo, Delivery, DeliveryError};

/// One request the fake vendor received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST` …
    pub method: Method,
    /// The path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// A header as text, or "".
    pub fn header(&self, name: &str) -> &str {
        header(&self.headers, name)
    }

    /// The query as pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.query).unwrap_or_default()
    }

    /// One query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as a form.
    pub fn form(&self) -> BTreeMap<String, String> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }
}

/// A header as text, or "".
pub fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// An answer the fake gives instead of doing its job.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Only requests with this method are refused (so a search can pass
    /// and the create be refused).
    pub method: Method,
    /// The status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// A `Retry-After` header.
    pub retry_after: Option<&'static str>,
}

impl Refusal {
    fn response(&self) -> Response {
        let mut r = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            self.body.to_string(),
        )
            .into_response();
        if let Some(after) = self.retry_after {
            r.headers_mut()
                .insert("retry-after", after.parse().expect("header value"));
        }
        r
    }
}

/// The state of a fake vendor: what it received, what it holds, and
/// whether it refuses.
#[derive(Clone, Default)]
pub struct Fake {
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// What the vendor made (bookings, contacts …).
    pub store: Arc<Mutex<Vec<Value>>>,
    /// Set to refuse.
    pub refusal: Arc<Mutex<Option<Refusal>>>,
}

impl Fake {
    /// Records a request; the refusal to answer with, if one applies.
    pub fn record(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        self.requests.lock().expect("lock").push(Recorded {
            method: method.clone(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers: headers.clone(),
            body: body.clone(),
        });
        self.refusal
            .lock()
            .expect("lock")
            .as_ref()
            .filter(|r| r.method == method)
            .map(Refusal::response)
    }

    /// The requests made with `method`.
    pub fn seen(&self, method: Method) -> Vec<Recorded> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    /// Makes the fake refuse `method` requests.
    pub fn refuse(
        &self,
        method: Method,
        status: u16,
        body: Value,
        retry_after: Option<&'static str>,
    ) {
        *self.refusal.lock().expect("lock") = Some(Refusal {
            method,
            status,
            body,
            retry_after,
        });
    }

    /// What the vendor holds.
    pub fn stored(&self) -> Vec<Value> {
        self.store.lock().expect("lock").clone()
    }
}

/// A JSON answer.
pub fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Serves `app` on a free loopback port; its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A job of `action` with `params`, from a call with a caller, a called
/// number, an outcome and a slot.
pub fn delivery(action: WorkflowAction, params: &[(&str, &str)]) -> Delivery {
    Delivery {
        job_id: 7,
        idempotency_key: "call-1/notify/callCompleted".into(),
        tenant: "acme".into(),
        workflow: "notify".into(),
        trigger: "callCompleted".into(),
        action,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        missing: vec![],
        call: CallInfo {
            call_id: "call-1".into(),
            caller: Some("+61400111222".into()),
            callee: Some("+61290001234".into()),
            outcome: Some("booked".into()),
            agent: "reception".into(),
            slots: BTreeMap::from([("name".to_owned(), "Sam Lee".to_owned())]),
        },
        event: json!({}),
    }
}

/// Asserts no secret appears in `text`.
pub fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a secret leaked into {text:?}");
    }
}

/// What a vendor's error body looks like, for a status and a message.
pub type ErrorBody = fn(u16, &str) -> Value;

/// Runs the failures every adapter must classify the same way against
/// `fake` refusing `method`: a validation refusal whose message echoes the
/// secret (permanent, the vendor's words kept, the secret not), 429 with
/// `Retry-After` (retryable, waiting as told) and 500 (retryable). The
/// refusal is cleared afterwards.
pub async fn check_refusals(
    adapter: &dyn Adapter,
    d: &Delivery,
    fake: &Fake,
    method: Method,
    validation_status: u16,
    error_body: ErrorBody,
    secrets: &[&str],
) {
    let said = format!("The request is invalid (key {})", secrets.join(" "));
    fake.refuse(
        method.clone(),
        validation_status,
        error_body(validation_status, &said),
        None,
    );
    let err = adapter.deliver(d).await.expect_err("refused");
    assert!(
        matches!(err, DeliveryError::Permanent { status: Some(s), .. } if s == validation_status),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("The request is invalid"),
        "the vendor's message is kept: {err}"
    );
    assert!(err.to_string().contains("[redacted]"), "{err}");
    assert_no_secret(&err.to_string(), secrets);

    fake.refuse(
        method.clone(),
        429,
        error_body(429, "Too many requests"),
        Some("7"),
    );
    let err = adapter.deliver(d).await.expect_err("rate limited");
    assert!(
        matches!(
            err,
            DeliveryError::Retryable { status: Some(429), retry_after: Some(after), .. }
                if after == Duration::from_secs(7)
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("Too many requests"), "{err}");

    fake.refuse(method, 500, error_body(500, "Internal error"), None);
    let err = adapter.deliver(d).await.expect_err("vendor down");
    assert!(
        matches!(
            err,
            DeliveryError::Retryable {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&format!("{err:?}"), secrets);
    *fake.refusal.lock().expect("lock") = None;
}

/// A vendor that does not answer at all: a retryable error without a
/// status, and no secret in it.
pub async fn check_unreachable(adapter: &dyn Adapter, d: &Delivery, secrets: &[&str]) {
    let err = adapter.deliver(d).await.expect_err("unreachable");
    assert!(
        matches!(err, DeliveryError::Retryable { status: None, .. }),
        "{err:?}"
    );
    assert_no_secret(&format!("{err:?}"), secrets);
}

/// A base URL where nothing listens (a port bound then released).
pub async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}
