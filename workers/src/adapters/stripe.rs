//! `stripe` Payment Links: form-encoded `POST /v1/payment_links` with
//! `line_items[0][price]`, `line_items[0][quantity]` and metadata, the
//! secret key as `Authorization: Bearer <apiKey>`, and `Idempotency-Key:
//! <job key>`. The receipt's reference is the link's `id`; its detail
//! carries the `url` to hand the caller.
//!
//! Parameters: `price` (required, a Price id `price_…`), `quantity`
//! (default 1).
//!
//! Stripe replays the first answer for a repeated `Idempotency-Key`, so a
//! retried job gets the link its first attempt made. Stripe keeps keys for
//! at least 24 hours; a job retried later than that could make a second
//! link (the jobs' retry policies are far shorter). A 409 (another request
//! with the same key still in flight) is retried; a 400 saying the key was
//! used with other parameters is permanent.

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde_json::json;

use super::common::{expect_action, fitted_key, permanent};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Stripe's public API.
pub const DEFAULT_BASE: &str = "https://api.stripe.com";

/// Stripe's limit on idempotency keys.
const MAX_KEY_CHARS: usize = 255;

/// The Stripe adapter.
pub struct Stripe {
    base: Base,
    api_key: String,
    http: reqwest::Client,
}

impl Stripe {
    /// An adapter for one Stripe account's secret (or restricted) key.
    pub fn new(base: Base, api_key: String, http: reqwest::Client) -> Self {
        Self {
            base,
            api_key,
            http,
        }
    }
}

#[async_trait]
impl Adapter for Stripe {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("stripe", d, WorkflowAction::PaymentLink)?;
        let price = d.require("price")?;
        let quantity = d.param("quantity").unwrap_or("1");
        if !quantity.trim().parse::<u32>().is_ok_and(|q| q >= 1) {
            return Err(permanent(format!(
                "parameter \"quantity\" ({quantity:?}) is not a whole number of at least 1"
            )));
        }
        let key = fitted_key(&d.idempotency_key, MAX_KEY_CHARS);
        let form = [
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", quantity.trim()),
            ("metadata[dialtone_call_id]", d.call.call_id.as_str()),
            ("metadata[dialtone_idempotency_key]", key.as_str()),
            ("metadata[dialtone_tenant]", d.tenant.as_str()),
        ];
        let request = self
            .http
            .post(self.base.join(&["v1", "payment_links"]))
            .bearer_auth(&self.api_key)
            .header("idempotency-key", &key)
            .form(&form);
        let answer = match http::send("stripe", request, &[&self.api_key]).await {
            Ok(a) => a,
            // idempotency_key_in_use: the first attempt is still running.
            Err(DeliveryError::Permanent {
                message,
                status: Some(409),
            }) => {
                return Err(DeliveryError::Retryable {
                    message,
                    status: Some(409),
                    retry_after: None,
                });
            }
            Err(e) => return Err(e),
        };
        let link = answer.json_or_null();
        Ok(Receipt {
            reference: link["id"].as_str().map(str::to_owned),
            detail: json!({
                "url": link["url"],
                "replayed": answer.header("idempotent-replayed") == Some("true"),
            }),
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
    use serde_json::Value;
    use std::collections::BTreeMap;

    const KEY: &str = "sk_test_51H0000000000000000000000";

    fn error(status: u16, m: &str) -> Value {
        let kind = match status {
            429 => "rate_limit_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": m, "type": kind, "code": if status == 400 { Value::from("parameter_invalid_string") } else { Value::Null }}})
    }

    /// Payment Links as documented, with Stripe's idempotency: a key seen
    /// before replays the first answer (`Idempotent-Replayed: true`).
    async fn create(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body) {
            return r;
        }
        if header(&h, "authorization") != format!("Bearer {KEY}") {
            return answer(
                401,
                json!({"error": {"message": format!("Invalid API Key provided: {}", header(&h, "authorization").trim_start_matches("Bearer ")), "type": "invalid_request_error"}}),
            );
        }
        if header(&h, "content-type") != "application/x-www-form-urlencoded" {
            return answer(400, error(400, "Invalid request: unsupported Content-Type"));
        }
        let form: BTreeMap<String, String> =
            serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let key = header(&h, "idempotency-key").to_owned();
        let mut store = f.store.lock().expect("lock");
        if let Some(first) = store.iter().find(|l| l["key"] == key.as_str()) {
            if first["form"] != json!(form) {
                return answer(
                    400,
                    json!({"error": {"message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."), "type": "idempotency_error"}}),
                );
            }
            let mut r = answer(200, first["link"].clone()).into_response();
            r.headers_mut()
                .insert("idempotent-replayed", "true".parse().expect("header"));
            return r;
        }
        let Some(price) = form
            .get("line_items[0][price]")
            .filter(|p| p.starts_with("price_"))
        else {
            return answer(
                400,
                json!({"error": {"code": "resource_missing", "message": format!("No such price: '{}'", form.get("line_items[0][price]").cloned().unwrap_or_default()), "param": "line_items[0][price]", "type": "invalid_request_error"}}),
            );
        };
        let n = store.len() + 1;
        let link = json!({
            "id": format!("plink_1MoC3ULkdIwHu7ix{n:08}"), "object": "payment_link", "active": true,
            "url": format!("https://buy.stripe.com/test_{n:08}"),
            "metadata": {"dialtone_call_id": form.get("metadata[dialtone_call_id]")},
            "line_items_price": price,
        });
        store.push(json!({"key": key, "form": form, "link": link}));
        answer(200, link)
    }

    async fn vendor() -> (Fake, Stripe) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/v1/payment_links", post(create))
                .with_state(fake.clone()),
        )
        .await;
        let s = Stripe::new(
            Base::parse("stripe", Some(&url), DEFAULT_BASE).expect("base"),
            KEY.into(),
            reqwest::Client::new(),
        );
        (fake, s)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::PaymentLink,
            &[("price", "price_1MoBy5LkdIwHu7ixZhnattbh")],
        )
    }

    #[tokio::test]
    async fn creates_a_link_with_the_jobs_idempotency_key() {
        let (fake, stripe) = vendor().await;
        let first = stripe.deliver(&job()).await.expect("created");
        assert_eq!(
            first.reference.as_deref(),
            Some("plink_1MoC3ULkdIwHu7ix00000001")
        );
        assert_eq!(first.detail["url"], "https://buy.stripe.com/test_00000001");
        assert_eq!(first.detail["replayed"], false);
        let again = stripe.deliver(&job()).await.expect("replayed");
        assert_eq!(again.reference, first.reference);
        assert_eq!(again.detail["replayed"], true);
        assert_eq!(fake.stored().len(), 1, "one link for two attempts");
        let posts = fake.seen(Method::POST);
        for p in &posts {
            assert_eq!(p.header("idempotency-key"), "call-1/notify/callCompleted");
        }
        let form = posts[0].form();
        assert_eq!(
            form["line_items[0][price]"],
            "price_1MoBy5LkdIwHu7ixZhnattbh"
        );
        assert_eq!(form["line_items[0][quantity]"], "1");
        assert_eq!(form["metadata[dialtone_call_id]"], "call-1");
    }

    #[tokio::test]
    async fn stripes_refusals_are_permanent_with_its_message() {
        let (_fake, stripe) = vendor().await;
        let mut d = job();
        d.params.insert("price".into(), "prod_wrong".into());
        let err = stripe.deliver(&d).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "stripe answered HTTP 400: No such price: 'prod_wrong' (resource_missing)"
        );
        let (_, mut wrong) = vendor().await;
        wrong.api_key = "sk_test_wrong_key_0000".into();
        let err = wrong.deliver(&job()).await.expect_err("refused");
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
            err.to_string()
                .contains("Invalid API Key provided: [redacted]"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, stripe) = vendor().await;
        check_refusals(&stripe, &job(), &fake, Method::POST, 400, error, &[KEY]).await;
        fake.refuse(
            Method::POST,
            409,
            json!({"error": {"code": "idempotency_key_in_use", "message": "There is currently another in-progress request using this Stripe API Key and this Idempotent Key.", "type": "invalid_request_error"}}),
            None,
        );
        let err = stripe.deliver(&job()).await.expect_err("in flight");
        assert!(
            matches!(
                err,
                DeliveryError::Retryable {
                    status: Some(409),
                    ..
                }
            ),
            "{err:?}"
        );
        let down = Stripe::new(
            Base::parse(
                "stripe",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            KEY.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[KEY]).await;
    }
}
