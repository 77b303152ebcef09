//! `twilio` SMS: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded `To`, `From`, `Body` (and `StatusCallback` when given), HTTP
//! basic auth with the account SID and auth token. The receipt's reference
//! is the message `sid`. Twilio's refusals carry `{code, message}`; the
//! code is kept in the error (e.g. 21211, an invalid `To`).
//!
//! Parameters: `to` (required), `from` (default: the number the call came
//! in on), `body` (else `template` and the call's captured values, as a
//! short line), `statusCallback`.
//!
//! Twilio's Messages API takes no idempotency key, so this is search then
//! create: a job first lists the most recent messages with the same `To`
//! and `From` and sends nothing when one created in the last
//! [`DEDUP_WINDOW_HOURS`] hours has exactly the same `Body`. The list is not
//! filtered by `DateSent`, because a message still queued has no date sent
//! yet and is exactly the one a retry after a lost answer must find.
//!
//! What that leaves: SMS through Twilio is at least once when more than
//! [`PAGE_SIZE`] messages passed between the pair since the first attempt,
//! and an identical text to the same number within the window (say a
//! second call's "thanks for calling") is taken as already sent.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use super::common::{expect_action, permanent};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Twilio's public API.
pub const DEFAULT_BASE: &str = "https://api.twilio.com";

/// How far back a message with the same body counts as this job's.
pub const DEDUP_WINDOW_HOURS: i64 = 24;

/// How many recent messages between the pair are searched (Twilio lists
/// the newest first; it allows up to 1000 a page).
pub const PAGE_SIZE: u32 = 100;

/// The SMS adapter.
pub struct TwilioSms {
    base: Base,
    account_sid: String,
    auth_token: String,
    http: reqwest::Client,
}

impl TwilioSms {
    /// An adapter for one Twilio account.
    pub fn new(base: Base, account_sid: String, auth_token: String, http: reqwest::Client) -> Self {
        Self {
            base,
            account_sid,
            auth_token,
            http,
        }
    }

    fn messages(&self) -> url::Url {
        self.base
            .join(&["2010-04-01", "Accounts", &self.account_sid, "Messages.json"])
    }

    fn request(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        r.basic_auth(&self.account_sid, Some(&self.auth_token))
    }
}

/// The text to send: `body`, else a short line naming the template and the
/// call's captured values (the caller's own number left out).
fn text(d: &Delivery) -> String {
    if let Some(body) = d.param("body") {
        return body.to_owned();
    }
    let values: Vec<String> = d
        .call
        .slots
        .iter()
        .filter(|(k, _)| k.as_str() != "phone")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!(
        "{}{}{}",
        d.param("template").unwrap_or("Thanks for your call"),
        if values.is_empty() { "" } else { " — " },
        values.join(", ")
    )
}

/// An earlier attempt's message among `listed`: the same body, created
/// within the window.
fn earlier<'a>(listed: &'a Value, body: &str, now: DateTime<Utc>) -> Option<&'a Value> {
    let since = now - chrono::Duration::hours(DEDUP_WINDOW_HOURS);
    listed["messages"].as_array()?.iter().find(|m| {
        m["body"].as_str() == Some(body)
            && m["date_created"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
                // A message without a readable date is counted as recent:
                // sending twice is the worse mistake.
                .is_none_or(|t| t.with_timezone(&Utc) >= since)
    })
}

#[async_trait]
impl Adapter for TwilioSms {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("twilio", d, WorkflowAction::Sms)?;
        let to = d.require("to")?.to_owned();
        let from = d
            .param("from")
            .or(d.call.callee.as_deref())
            .ok_or_else(|| {
                permanent(
                    "parameter \"from\" is required (the call has no called number to send from)",
                )
            })?
            .to_owned();
        let body = text(d);
        let secrets = [self.auth_token.as_str(), self.account_sid.as_str()];

        let page_size = PAGE_SIZE.to_string();
        let listed = http::send(
            "twilio",
            self.request(self.http.get(self.messages())).query(&[
                ("To", to.as_str()),
                ("From", from.as_str()),
                ("PageSize", page_size.as_str()),
            ]),
            &secrets,
        )
        .await?
        .json("twilio")?;
        if let Some(sent) = earlier(&listed, &body, Utc::now()) {
            return Ok(Receipt {
                reference: sent["sid"].as_str().map(str::to_owned),
                detail: json!({"found": "an earlier attempt sent it", "status": sent["status"]}),
            });
        }

        let mut form = vec![
            ("To", to.as_str()),
            ("From", from.as_str()),
            ("Body", body.as_str()),
        ];
        if let Some(callback) = d.param("statusCallback") {
            form.push(("StatusCallback", callback));
        }
        let created = http::send(
            "twilio",
            self.request(self.http.post(self.messages())).form(&form),
            &secrets,
        )
        .await?
        .json_or_null();
        Ok(Receipt {
            reference: created["sid"].as_str().map(str::to_owned),
            detail: json!({"status": created["status"]}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::testing::{self, Fake, answer, check_refusals, delivery, header};
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::Response;
    use axum::routing::get;
    use std::collections::BTreeMap;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "twilio-auth-token-secret";

    fn error(status: u16, m: &str) -> Value {
        let code = match status {
            429 => 20429,
            500 => 20500,
            _ => 21211,
        };
        json!({"code": code, "message": m, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
    }

    fn authorised(sid: &str, h: &HeaderMap) -> Option<Response> {
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
        (sid != SID || header(h, "authorization") != format!("Basic {expected}")).then(|| {
            answer(
                401,
                json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
            )
        })
    }

    async fn list(
        State(f): State<Fake>,
        Path(sid): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| authorised(&sid, &h))
        {
            return r;
        }
        let q: BTreeMap<String, String> =
            serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
        // Newest first, as Twilio lists them.
        let messages: Vec<Value> = f
            .stored()
            .into_iter()
            .rev()
            .filter(|m| {
                q.get("To").is_none_or(|to| m["to"] == to.as_str())
                    && q.get("From").is_none_or(|from| m["from"] == from.as_str())
            })
            .collect();
        answer(
            200,
            json!({"messages": messages, "page": 0, "page_size": q.get("PageSize"), "next_page_uri": null}),
        )
    }

    async fn create(
        State(f): State<Fake>,
        Path(sid): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| authorised(&sid, &h))
        {
            return r;
        }
        if header(&h, "content-type") != "application/x-www-form-urlencoded" {
            return answer(415, error(415, "Unsupported Media Type"));
        }
        let form: BTreeMap<String, String> =
            serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let (Some(to), Some(from), Some(text)) =
            (form.get("To"), form.get("From"), form.get("Body"))
        else {
            return answer(
                400,
                json!({"code": 21604, "message": "A 'To' phone number is required.", "status": 400}),
            );
        };
        if !to.starts_with('+') {
            return answer(
                400,
                error(
                    400,
                    &format!("The 'To' number {to} is not a valid phone number."),
                ),
            );
        }
        let mut store = f.store.lock().expect("lock");
        let message = json!({
            "sid": format!("SM{:032}", store.len() + 1),
            "account_sid": sid, "to": to, "from": from, "body": text,
            "status": "queued", "date_sent": null,
            "date_created": Utc::now().to_rfc2822(),
            "status_callback": form.get("StatusCallback"),
        });
        store.push(message.clone());
        answer(201, message)
    }

    async fn vendor() -> (Fake, TwilioSms) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route(
                    "/2010-04-01/Accounts/{sid}/Messages.json",
                    get(list).post(create),
                )
                .with_state(fake.clone()),
        )
        .await;
        let sms = TwilioSms::new(
            Base::parse("twilio", Some(&url), DEFAULT_BASE).expect("base"),
            SID.into(),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        (fake, sms)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::Sms,
            &[("to", "+61400111222"), ("body", "Booked for Thursday 3 pm")],
        )
    }

    #[tokio::test]
    async fn sends_a_form_encoded_message_once_even_when_retried() {
        let (fake, sms) = vendor().await;
        let mut d = job();
        d.params.insert(
            "statusCallback".into(),
            "https://example.com/sms-status".into(),
        );
        let first = sms.deliver(&d).await.expect("sent");
        assert_eq!(
            first.reference.as_deref(),
            Some("SM00000000000000000000000000000001")
        );
        let again = sms.deliver(&d).await.expect("found");
        assert_eq!(again.reference, first.reference);
        let posts = fake.seen(Method::POST);
        assert_eq!(posts.len(), 1, "one message for two attempts");
        let form = posts[0].form();
        assert_eq!(form["To"], "+61400111222");
        assert_eq!(
            form["From"], "+61290001234",
            "from the number the call came in on"
        );
        assert_eq!(form["Body"], "Booked for Thursday 3 pm");
        assert_eq!(form["StatusCallback"], "https://example.com/sms-status");
        let list = &fake.seen(Method::GET)[0];
        assert_eq!(list.query_param("To").as_deref(), Some("+61400111222"));
        assert_eq!(list.query_param("From").as_deref(), Some("+61290001234"));
        assert_eq!(
            list.query_param("DateSent>"),
            None,
            "queued messages have no date sent"
        );
    }

    #[tokio::test]
    async fn a_different_text_or_an_old_one_is_sent() {
        let (fake, sms) = vendor().await;
        sms.deliver(&job()).await.expect("sent");
        let mut other = job();
        other.params.insert("body".into(), "Moved to Friday".into());
        sms.deliver(&other).await.expect("sent");
        assert_eq!(fake.seen(Method::POST).len(), 2);
        let old = json!({"messages": [{"sid": "SM1", "body": "Moved to Friday",
            "date_created": (Utc::now() - chrono::Duration::hours(30)).to_rfc2822()}]});
        assert!(earlier(&old, "Moved to Friday", Utc::now()).is_none());
        assert!(
            earlier(
                &old,
                "Moved to Friday",
                Utc::now() - chrono::Duration::hours(8)
            )
            .is_some()
        );
    }

    #[tokio::test]
    async fn the_template_and_slots_make_the_text_without_a_body() {
        let (fake, sms) = vendor().await;
        let mut d = job();
        d.params.remove("body");
        d.params.insert("template".into(), "Your booking".into());
        d.params.insert("from".into(), "+61299990000".into());
        sms.deliver(&d).await.expect("sent");
        let form = fake.seen(Method::POST)[0].form();
        assert_eq!(form["Body"], "Your booking — name: Sam Lee");
        assert_eq!(form["From"], "+61299990000");
    }

    #[tokio::test]
    async fn an_invalid_number_dead_letters_with_twilios_message_and_code() {
        let (_fake, sms) = vendor().await;
        let mut d = job();
        d.params.insert("to".into(), "0400111222".into());
        let err = sms.deliver(&d).await.expect_err("refused");
        assert!(
            matches!(
                err,
                DeliveryError::Permanent {
                    status: Some(400),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "twilio answered HTTP 400: The 'To' number 0400111222 is not a valid phone number. (21211)"
        );
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, sms) = vendor().await;
        check_refusals(&sms, &job(), &fake, Method::POST, 400, error, &[TOKEN]).await;
        check_refusals(&sms, &job(), &fake, Method::GET, 400, error, &[TOKEN]).await;
        let (_, mut wrong) = vendor().await;
        wrong.auth_token = "not-the-token-0000".into();
        let err = wrong.deliver(&job()).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "twilio answered HTTP 401: Authenticate (20003)"
        );
        let down = TwilioSms::new(
            Base::parse(
                "twilio",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            SID.into(),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[TOKEN, SID]).await;
        let err = down.deliver(&job()).await.expect_err("unreachable");
        assert!(err.to_string().contains("Messages.json"), "{err}");
        assert!(
            !err.to_string().contains("61400111222"),
            "no caller number: {err}"
        );
    }

    #[tokio::test]
    async fn a_missing_recipient_names_the_empty_placeholder() {
        let (_fake, sms) = vendor().await;
        let mut d = job();
        d.params.insert("to".into(), String::new());
        d.missing = vec!["to: {{slots.phone}}".into()];
        let err = sms.deliver(&d).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "parameter \"to\" is required ({{slots.phone}} had no value on this call)"
        );
    }
}
