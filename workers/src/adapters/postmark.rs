//! `postmark` email: `POST /email` with `X-Postmark-Server-Token`, JSON
//! `{From, To, Subject, TextBody, MessageStream, Metadata}`; Postmark
//! answers 200 with `MessageID`, and 422 with `ErrorCode` and `Message`
//! for anything it will not send (a permanent failure).
//!
//! Parameters: `to` (required), `subject`, `body` (plain text; a summary of
//! the call when absent), `from` (when the Provider has no
//! `settings.fromAddress`), `messageStream` (default `outbound`).
//!
//! Postmark takes no idempotency key, so the job's key goes into the
//! message's metadata as `dialtoneKey` (Postmark caps metadata names at 20
//! characters and values at 80; longer keys are digested, the same way on
//! every attempt) and a job first searches the outbound messages for it
//! (`GET /messages/outbound?metadata_dialtoneKey=…`), sending nothing when
//! an earlier attempt's message is there. Postmark indexes a message for
//! search shortly after accepting it, so an attempt retried within that
//! moment can still send a second copy: at least once, nearly always
//! once.

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde_json::json;

use super::common::{expect_action, fitted_key, permanent, summary};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Postmark's public API.
pub const DEFAULT_BASE: &str = "https://api.postmarkapp.com";

/// The metadata field holding the job's key (Postmark: at most 20
/// characters).
pub const KEY_FIELD: &str = "dialtoneKey";

/// Postmark's limit on metadata values.
const MAX_METADATA_VALUE: usize = 80;

/// The Postmark adapter.
pub struct Postmark {
    base: Base,
    server_token: String,
    from_address: Option<String>,
    http: reqwest::Client,
}

impl Postmark {
    /// An adapter for one Postmark server sending as `from_address` (the
    /// Provider's `settings.fromAddress`).
    pub fn new(
        base: Base,
        server_token: String,
        from_address: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            base,
            server_token,
            from_address,
            http,
        }
    }

    fn request(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        r.header("accept", "application/json")
            .header("x-postmark-server-token", &self.server_token)
    }
}

#[async_trait]
impl Adapter for Postmark {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("postmark", d, WorkflowAction::Email)?;
        let to = d.require("to")?;
        let from = self
            .from_address
            .as_deref()
            .or_else(|| d.param("from"))
            .ok_or_else(|| {
                permanent("postmark: the Provider has no settings.fromAddress and the workflow no \"from\" parameter")
            })?;
        let key = fitted_key(&d.idempotency_key, MAX_METADATA_VALUE);
        let secrets = [self.server_token.as_str()];

        let search = self
            .request(self.http.get(self.base.join(&["messages", "outbound"])))
            .query(&[
                ("count", "1"),
                ("offset", "0"),
                (&format!("metadata_{KEY_FIELD}"), key.as_str()),
            ]);
        let found = http::send("postmark", search, &secrets)
            .await?
            .json("postmark")?;
        if let Some(sent) = found["Messages"].as_array().and_then(|m| {
            m.iter()
                .find(|m| m["Metadata"][KEY_FIELD].as_str() == Some(key.as_str()))
        }) {
            return Ok(Receipt {
                reference: sent["MessageID"].as_str().map(str::to_owned),
                detail: json!({"found": "an earlier attempt sent it", "status": sent["Status"]}),
            });
        }

        let body = json!({
            "From": from,
            "To": to,
            "Subject": d.param("subject").map_or_else(
                || format!("Call {} ({})", d.call.call_id, d.trigger),
                str::to_owned,
            ),
            "TextBody": d.param("body").map_or_else(|| summary(d), str::to_owned),
            "MessageStream": d.param("messageStream").unwrap_or("outbound"),
            "Metadata": {KEY_FIELD: key},
        });
        let answer = http::send(
            "postmark",
            self.request(self.http.post(self.base.join(&["email"])))
                .json(&body),
            &secrets,
        )
        .await?;
        let sent = answer.json_or_null();
        // Postmark reports refusals with 422; a 200 carrying an error code
        // is treated the same way rather than recorded as sent.
        if sent["ErrorCode"].as_i64().is_some_and(|c| c != 0) {
            return Err(DeliveryError::Permanent {
                message: format!(
                    "postmark answered HTTP {}: {}",
                    answer.status,
                    http::vendor_message(&answer.body, &secrets)
                ),
                status: Some(answer.status),
            });
        }
        Ok(Receipt {
            reference: sent["MessageID"].as_str().map(str::to_owned),
            detail: json!({"submittedAt": sent["SubmittedAt"], "to": sent["To"]}),
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
    use axum::routing::{get, post};
    use serde_json::Value;

    const TOKEN: &str = "pm-server-token-0123456789";

    /// What Postmark refuses with 422, as its documentation lists.
    fn documented_problem(b: &Value) -> Option<(i64, &'static str)> {
        if !b["From"].is_string() {
            return Some((300, "Invalid 'From' address: ''."));
        }
        if !b["To"].is_string() {
            return Some((300, "Zero recipients specified"));
        }
        if !b["TextBody"].is_string() && !b["HtmlBody"].is_string() {
            return Some((300, "Provide either email TextBody or HtmlBody or both."));
        }
        if b["MessageStream"] != "outbound" {
            return Some((
                1235,
                "The 'MessageStream' provided does not exist on this server.",
            ));
        }
        if b["Metadata"].as_object().is_some_and(|m| {
            m.iter()
                .any(|(k, v)| k.len() > 20 || v.as_str().is_none_or(|v| v.len() > 80))
        }) {
            return Some((
                300,
                "Metadata field names are limited to 20 characters and values to 80.",
            ));
        }
        None
    }

    fn error(status: u16, m: &str) -> Value {
        json!({"ErrorCode": if status == 422 { 300 } else { 100 }, "Message": m})
    }

    fn authorised(h: &HeaderMap) -> Option<Response> {
        if header(h, "x-postmark-server-token") != TOKEN {
            return Some(answer(
                401,
                json!({"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid."}),
            ));
        }
        if header(h, "accept") != "application/json" {
            return Some(answer(
                406,
                json!({"ErrorCode": 0, "Message": "Accept application/json"}),
            ));
        }
        None
    }

    async fn send(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| authorised(&h))
        {
            return r;
        }
        if !header(&h, "content-type").starts_with("application/json") {
            return answer(415, error(415, "Content-Type must be application/json"));
        }
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return answer(
                400,
                json!({"ErrorCode": 402, "Message": "Received invalid JSON input."}),
            );
        };
        if let Some((code, m)) = documented_problem(&b) {
            return answer(422, json!({"ErrorCode": code, "Message": m}));
        }
        let mut store = f.store.lock().expect("lock");
        let id = format!("b7bc2f4a-e38e-4336-af7d-e6c39256{:04}", store.len() + 1);
        store
            .push(json!({"MessageID": id, "Status": "Sent", "Metadata": b["Metadata"], "sent": b}));
        answer(
            200,
            json!({"To": b["To"], "SubmittedAt": "2026-12-06T10:00:00.0000000-05:00", "MessageID": id, "ErrorCode": 0, "Message": "OK"}),
        )
    }

    async fn search(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| authorised(&h))
        {
            return r;
        }
        let q: Vec<(String, String)> =
            serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
        if !q.iter().any(|(k, _)| k == "count") || !q.iter().any(|(k, _)| k == "offset") {
            return answer(
                422,
                json!({"ErrorCode": 600, "Message": "Count and offset are required"}),
            );
        }
        let messages: Vec<Value> = f
            .stored()
            .into_iter()
            .filter(|m| {
                q.iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("metadata_")?, v)))
                    .all(|(field, value)| m["Metadata"][field].as_str() == Some(value.as_str()))
            })
            .map(|mut m| {
                m.as_object_mut().map(|o| o.remove("sent"));
                m
            })
            .collect();
        answer(
            200,
            json!({"TotalCount": messages.len(), "Messages": messages}),
        )
    }

    async fn vendor() -> (Fake, Postmark) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/email", post(send))
                .route("/messages/outbound", get(search))
                .with_state(fake.clone()),
        )
        .await;
        let adapter = Postmark::new(
            Base::parse("postmark", Some(&url), DEFAULT_BASE).expect("base"),
            TOKEN.into(),
            Some("bookings@example.com".into()),
            reqwest::Client::new(),
        );
        (fake, adapter)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::Email,
            &[("to", "owner@example.com"), ("subject", "New booking")],
        )
    }

    #[tokio::test]
    async fn sends_once_and_a_retry_finds_the_message_it_sent() {
        let (fake, postmark) = vendor().await;
        let first = postmark.deliver(&job()).await.expect("sent");
        let id = first.reference.clone().expect("MessageID");
        assert!(id.starts_with("b7bc2f4a-"), "{id}");
        let again = postmark.deliver(&job()).await.expect("found");
        assert_eq!(again.reference, first.reference);
        assert_eq!(
            fake.seen(Method::POST).len(),
            1,
            "one email for two attempts"
        );
        let sent = &fake.stored()[0]["sent"];
        assert_eq!(sent["From"], "bookings@example.com");
        assert_eq!(sent["To"], "owner@example.com");
        assert_eq!(sent["Subject"], "New booking");
        assert_eq!(sent["MessageStream"], "outbound");
        assert_eq!(sent["Metadata"][KEY_FIELD], "call-1/notify/callCompleted");
        assert!(
            sent["TextBody"]
                .as_str()
                .is_some_and(|t| t.contains("Caller: +61400111222"))
        );
        let searched = &fake.seen(Method::GET)[0];
        assert_eq!(
            searched.query_param("metadata_dialtoneKey").as_deref(),
            Some("call-1/notify/callCompleted")
        );
        // Another job's key does not match this message.
        let mut other = job();
        other.idempotency_key = "call-2/notify/callCompleted".into();
        postmark.deliver(&other).await.expect("sent");
        assert_eq!(fake.seen(Method::POST).len(), 2);
    }

    #[tokio::test]
    async fn a_long_key_is_fitted_to_postmarks_metadata_limits() {
        let (fake, postmark) = vendor().await;
        let mut d = job();
        d.idempotency_key = format!("{}/notify/callCompleted", "c".repeat(90));
        postmark.deliver(&d).await.expect("sent");
        postmark.deliver(&d).await.expect("found");
        assert_eq!(fake.seen(Method::POST).len(), 1);
    }

    #[tokio::test]
    async fn a_validation_refusal_is_permanent_with_postmarks_message_and_code() {
        let (fake, postmark) = vendor().await;
        let mut d = job();
        d.params
            .insert("messageStream".into(), "broadcasts-x".into());
        let err = postmark.deliver(&d).await.expect_err("refused");
        assert!(
            matches!(
                err,
                DeliveryError::Permanent {
                    status: Some(422),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "postmark answered HTTP 422: The 'MessageStream' provided does not exist on this server. (1235)"
        );
        assert!(fake.stored().is_empty());
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, postmark) = vendor().await;
        check_refusals(&postmark, &job(), &fake, Method::POST, 422, error, &[TOKEN]).await;
        // A failing search stops the send: it could have found the message.
        check_refusals(&postmark, &job(), &fake, Method::GET, 422, error, &[TOKEN]).await;
        let down = Postmark::new(
            Base::parse(
                "postmark",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            TOKEN.into(),
            Some("a@example.com".into()),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[TOKEN]).await;
        let (_, mut wrong) = vendor().await;
        wrong.server_token = "pm-wrong-token-000000".into();
        let err = wrong.deliver(&job()).await.expect_err("refused");
        assert!(
            err.to_string().contains("Server Token you provided"),
            "{err}"
        );
    }
}
