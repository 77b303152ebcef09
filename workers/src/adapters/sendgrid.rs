//! `sendgrid` email (Mail Send v3): `POST /v3/mail/send` with
//! `Authorization: Bearer <apiKey>`; SendGrid answers 202 with the message
//! id in `X-Message-Id`.
//!
//! Parameters: `to` (required; several separated by commas), `subject`,
//! `body` (plain text; a summary of the call when absent), `from` (when the
//! Provider has no `settings.fromAddress`).
//!
//! SendGrid takes no idempotency key and its Email Activity search is a
//! paid add-on, so email through SendGrid is at least once: a job retried
//! after SendGrid accepted it but before the answer arrived sends a second
//! copy. The job's key rides in `custom_args.dialtone_idempotency_key`, so
//! SendGrid's event webhook and activity feed show which copies belong to
//! one job.

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use super::common::{expect_action, permanent, summary};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// SendGrid's public API.
pub const DEFAULT_BASE: &str = "https://api.sendgrid.com";

/// The SendGrid adapter.
pub struct Sendgrid {
    base: Base,
    api_key: String,
    from_address: Option<String>,
    http: reqwest::Client,
}

impl Sendgrid {
    /// An adapter for one SendGrid account sending as `from_address` (the
    /// Provider's `settings.fromAddress`).
    pub fn new(
        base: Base,
        api_key: String,
        from_address: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            base,
            api_key,
            from_address,
            http,
        }
    }
}

/// The Mail Send body.
fn mail(d: &Delivery, from: &str) -> Result<Value, DeliveryError> {
    let to: Vec<Value> = d
        .require("to")?
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|email| json!({"email": email}))
        .collect();
    let subject = d.param("subject").map_or_else(
        || format!("Call {} ({})", d.call.call_id, d.trigger),
        str::to_owned,
    );
    let text = d.param("body").map_or_else(|| summary(d), str::to_owned);
    Ok(json!({
        "personalizations": [{
            "to": to,
            "subject": subject,
            "custom_args": {"dialtone_idempotency_key": d.idempotency_key},
        }],
        "from": {"email": from},
        "content": [{"type": "text/plain", "value": text}],
    }))
}

#[async_trait]
impl Adapter for Sendgrid {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("sendgrid", d, WorkflowAction::Email)?;
        let from = self
            .from_address
            .as_deref()
            .or_else(|| d.param("from"))
            .ok_or_else(|| {
                permanent("sendgrid: the Provider has no settings.fromAddress and the workflow no \"from\" parameter")
            })?;
        let body = mail(d, from)?;
        let request = self
            .http
            .post(self.base.join(&["v3", "mail", "send"]))
            .bearer_auth(&self.api_key)
            .json(&body);
        let answer = http::send("sendgrid", request, &[&self.api_key]).await?;
        Ok(Receipt {
            reference: answer.header("x-message-id").map(str::to_owned),
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
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;

    const KEY: &str = "SG.test-key.0123456789";

    fn error(_: u16, m: &str) -> Value {
        json!({"errors": [{"message": m, "field": null, "help": null}]})
    }

    /// Mail Send as documented: Bearer key, JSON, personalizations with
    /// recipients, from, content; 202 with `X-Message-Id` and no body.
    async fn send(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(refusal) = f.record(&method, &uri, &h, &body) {
            return refusal;
        }
        if header(&h, "authorization") != format!("Bearer {KEY}") {
            return answer(
                401,
                error(
                    401,
                    "The provided authorization grant is invalid, expired, or revoked",
                ),
            );
        }
        if !header(&h, "content-type").starts_with("application/json") {
            return answer(400, error(400, "Content-Type must be application/json"));
        }
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return answer(400, error(400, "Bad Request"));
        };
        let to = &b["personalizations"][0]["to"];
        if !to
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|r| r["email"].is_string()))
        {
            return answer(
                400,
                json!({"errors": [{"message": "The to array is required for all personalization objects, and must have at least one email object with a valid email address.", "field": "personalizations.0.to"}]}),
            );
        }
        if !b["from"]["email"].is_string() {
            return answer(
                400,
                json!({"errors": [{"message": "The from object must be provided for every email send.", "field": "from"}]}),
            );
        }
        if b["content"][0]["type"] != "text/plain" || !b["content"][0]["value"].is_string() {
            return answer(
                400,
                json!({"errors": [{"message": "Unless a valid template_id is provided, the content parameter is required.", "field": "content"}]}),
            );
        }
        f.store.lock().expect("lock").push(b);
        (
            axum::http::StatusCode::ACCEPTED,
            [(
                "x-message-id",
                "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            )],
            "",
        )
            .into_response()
    }

    async fn vendor() -> (Fake, Sendgrid) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/v3/mail/send", post(send))
                .with_state(fake.clone()),
        )
        .await;
        let base = Base::parse("sendgrid", Some(&url), DEFAULT_BASE).expect("base");
        let adapter = Sendgrid::new(
            base,
            KEY.into(),
            Some("bookings@example.com".into()),
            reqwest::Client::new(),
        );
        (fake, adapter)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::Email,
            &[
                ("to", "owner@example.com, desk@example.com"),
                ("subject", "New booking"),
            ],
        )
    }

    #[tokio::test]
    async fn sends_a_documented_mail_and_keeps_the_message_id() {
        let (fake, sendgrid) = vendor().await;
        let r = sendgrid.deliver(&job()).await.expect("sent");
        assert_eq!(
            r.reference.as_deref(),
            Some("14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0")
        );
        let sent = &fake.stored()[0];
        let p = &sent["personalizations"][0];
        assert_eq!(
            p["to"],
            json!([{"email": "owner@example.com"}, {"email": "desk@example.com"}])
        );
        assert_eq!(p["subject"], "New booking");
        assert_eq!(
            p["custom_args"]["dialtone_idempotency_key"],
            "call-1/notify/callCompleted"
        );
        assert_eq!(sent["from"]["email"], "bookings@example.com");
        let text = sent["content"][0]["value"].as_str().expect("text");
        assert!(
            text.contains("Call call-1") && text.contains("name: Sam Lee"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_from_parameter_is_used_without_a_from_address() {
        let (fake, mut sendgrid) = vendor().await;
        sendgrid.from_address = None;
        let mut d = job();
        d.params.insert("from".into(), "desk@example.com".into());
        d.params.insert("body".into(), "See you Thursday".into());
        sendgrid.deliver(&d).await.expect("sent");
        let sent = &fake.stored()[0];
        assert_eq!(sent["from"]["email"], "desk@example.com");
        assert_eq!(sent["content"][0]["value"], "See you Thursday");
        d.params.remove("from");
        let err = sendgrid.deliver(&d).await.expect_err("no sender");
        assert!(err.to_string().contains("fromAddress"), "{err}");
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, sendgrid) = vendor().await;
        check_refusals(&sendgrid, &job(), &fake, Method::POST, 400, error, &[KEY]).await;
        let mut d = job();
        d.params.insert("to".into(), String::new());
        d.missing = vec!["to: {{slots.email}}".into()];
        let err = sendgrid.deliver(&d).await.expect_err("no recipient");
        assert!(
            err.to_string().contains("{{slots.email}} had no value"),
            "{err}"
        );
        let down = Sendgrid::new(
            Base::parse(
                "sendgrid",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            KEY.into(),
            Some("a@example.com".into()),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[KEY]).await;
    }

    #[tokio::test]
    async fn a_wrong_key_dead_letters_without_showing_it() {
        let (_fake, mut sendgrid) = vendor().await;
        sendgrid.api_key = "SG.wrong-key.999999".into();
        let err = sendgrid.deliver(&job()).await.expect_err("refused");
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
        assert!(
            err.to_string().contains("authorization grant is invalid"),
            "{err}"
        );
        testing::assert_no_secret(&err.to_string(), &["SG.wrong-key.999999"]);
    }
}
