//! `docusign` envelopes from a template (eSignature REST API v2.1) with an
//! OAuth access token as `Authorization: Bearer <accessToken>` (refreshed
//! outside Dialtone; a refused token is retried, since the Secret is read
//! again each attempt).
//!
//! `POST /restapi/v2.1/accounts/{accountId}/envelopes` with `templateId`,
//! one template role, `status: "sent"` and the job's key in a text custom
//! field `dialtoneIdempotencyKey`. The receipt's reference is the
//! `envelopeId`.
//!
//! Parameters: `accountId` and `templateId` (required), `email` (the
//! signer's, required), `name` (default the `name` slot), `role` (the
//! template's role name, default `signer`), `emailSubject`.
//!
//! DocuSign takes no idempotency key, so this is search then create: a job
//! first lists the account's envelopes of the last 30 days whose custom
//! field holds its key (`GET …/envelopes?from_date=…&custom_field=
//! dialtoneIdempotencyKey=<key>`) and reuses one found.
//!
//! The base URL: DocuSign serves each account from its own host (the
//! `base_uri` of `GET /oauth/userinfo`, e.g. `https://na3.docusign.net`, or
//! `https://demo.docusign.net` for developer accounts), so Providers
//! should set `settings.baseUrl` to it; the default is the original
//! production host.

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use super::common::{expect_action, fitted_key};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// DocuSign's original production host; accounts on other hosts set
/// `settings.baseUrl`.
pub const DEFAULT_BASE: &str = "https://www.docusign.net";

/// The custom field holding the job's key.
pub const KEY_FIELD: &str = "dialtoneIdempotencyKey";

/// Kept well inside DocuSign's limit on custom field values.
const MAX_FIELD_VALUE: usize = 100;

/// How far back the search looks.
const SEARCH_DAYS: i64 = 30;

/// The DocuSign adapter.
pub struct Docusign {
    base: Base,
    token: String,
    http: reqwest::Client,
}

impl Docusign {
    /// An adapter for one DocuSign user's access token.
    pub fn new(base: Base, token: String, http: reqwest::Client) -> Self {
        Self { base, token, http }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<http::Answer, DeliveryError> {
        http::send("docusign", r.bearer_auth(&self.token), &[&self.token])
            .await
            .map_err(http::retry_unauthorised)
    }
}

/// Whether `envelope` carries `key`. Envelopes listed without their custom
/// fields are trusted to match DocuSign's own filter.
fn carries(envelope: &Value, key: &str) -> bool {
    match envelope["customFields"]["textCustomFields"].as_array() {
        Some(fields) => fields
            .iter()
            .any(|f| f["name"] == KEY_FIELD && f["value"].as_str() == Some(key)),
        None => true,
    }
}

#[async_trait]
impl Adapter for Docusign {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("docusign", d, WorkflowAction::Esign)?;
        let account = d.require("accountId")?;
        let template = d.require("templateId")?;
        let email = d.require("email")?;
        let key = fitted_key(&d.idempotency_key, MAX_FIELD_VALUE);
        let envelopes = self
            .base
            .join(&["restapi", "v2.1", "accounts", account, "envelopes"]);

        let since = (chrono::Utc::now() - chrono::Duration::days(SEARCH_DAYS))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let listed = self
            .send(self.http.get(envelopes.clone()).query(&[
                ("from_date", since.as_str()),
                ("custom_field", &format!("{KEY_FIELD}={key}")),
                ("include", "custom_fields"),
            ]))
            .await?
            .json("docusign")?;
        if let Some(existing) = listed["envelopes"]
            .as_array()
            .and_then(|e| e.iter().find(|e| carries(e, &key)))
        {
            return Ok(Receipt {
                reference: existing["envelopeId"].as_str().map(str::to_owned),
                detail: json!({"status": existing["status"], "found": "an earlier attempt sent it"}),
            });
        }

        let mut body = json!({
            "templateId": template,
            "templateRoles": [{
                "email": email,
                "name": d.param("name")
                    .or(d.call.slots.get("name").map(String::as_str))
                    .unwrap_or("Signer"),
                "roleName": d.param("role").unwrap_or("signer"),
            }],
            "status": "sent",
            "customFields": {"textCustomFields": [
                {"name": KEY_FIELD, "value": key, "show": "false", "required": "false"},
            ]},
        });
        if let Some(subject) = d.param("emailSubject") {
            body["emailSubject"] = json!(subject);
        }
        let created = self
            .send(self.http.post(envelopes).json(&body))
            .await?
            .json_or_null();
        Ok(Receipt {
            reference: created["envelopeId"].as_str().map(str::to_owned),
            detail: json!({"status": created["status"], "statusDateTime": created["statusDateTime"]}),
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

    const TOKEN: &str = "eyJ0eXAiOiJNVCIsImFsZyI6IlJTMjU2In0.docusign-token";
    const ACCOUNT: &str = "f0f0f0f0-1111-2222-3333-444444444444";

    fn error(status: u16, m: &str) -> Value {
        let code = match status {
            429 => "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
            s if s >= 500 => "UNSPECIFIED_ERROR",
            _ => "INVALID_REQUEST_PARAMETER",
        };
        json!({"errorCode": code, "message": m})
    }

    fn check(account: &str, h: &HeaderMap) -> Option<Response> {
        if header(h, "authorization") != format!("Bearer {TOKEN}") {
            return Some(answer(
                401,
                json!({"errorCode": "AUTHORIZATION_INVALID_TOKEN", "message": "The access token provided is expired, revoked or malformed."}),
            ));
        }
        (account != ACCOUNT).then(|| {
            answer(
                400,
                json!({"errorCode": "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT", "message": "The specified User is not a member of the specified Account."}),
            )
        })
    }

    async fn list(
        State(f): State<Fake>,
        Path(account): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| check(&account, &h))
        {
            return r;
        }
        let q: BTreeMap<String, String> =
            serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
        if !q.contains_key("from_date") {
            return answer(
                400,
                json!({"errorCode": "INVALID_REQUEST_PARAMETER", "message": "The request contained at least one invalid parameter. A value for 'from_date', 'envelope_ids', 'folder_ids' or 'transaction_ids' must be set."}),
            );
        }
        let wanted = q.get("custom_field").and_then(|c| c.split_once('='));
        let envelopes: Vec<Value> = f
            .stored()
            .into_iter()
            .filter(|e| {
                wanted.is_none_or(|(name, value)| {
                    e["customFields"]["textCustomFields"]
                        .as_array()
                        .is_some_and(|fs| {
                            fs.iter().any(|f| f["name"] == name && f["value"] == value)
                        })
                })
            })
            .collect();
        let n = envelopes.len().to_string();
        let mut out = json!({"resultSetSize": n, "totalSetSize": n, "startPosition": "0"});
        if !envelopes.is_empty() {
            out["envelopes"] = Value::Array(envelopes);
        }
        answer(200, out)
    }

    async fn create(
        State(f): State<Fake>,
        Path(account): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f
            .record(&method, &uri, &h, &body)
            .or_else(|| check(&account, &h))
        {
            return r;
        }
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return answer(
                400,
                error(400, "The request body is missing or improperly formatted."),
            );
        };
        if b["templateId"] != "tmpl-0001" {
            return answer(
                400,
                json!({"errorCode": "TEMPLATE_ID_INVALID", "message": format!("Invalid template ID {}.", b["templateId"])}),
            );
        }
        let role = &b["templateRoles"][0];
        if !role["email"].is_string() || !role["name"].is_string() || role["roleName"] != "signer" {
            return answer(
                400,
                json!({"errorCode": "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT", "message": "The email address for the recipient is invalid. The recipient Id follows."}),
            );
        }
        let mut store = f.store.lock().expect("lock");
        let id = format!("4b728be4-4f4a-4a4c-8c9c-0000000000{:02}", store.len() + 1);
        store.push(json!({"envelopeId": id, "status": b["status"], "customFields": b["customFields"], "sent": b}));
        answer(
            201,
            json!({"envelopeId": id, "uri": format!("/envelopes/{id}"), "statusDateTime": "2026-12-06T10:00:00.0000000Z", "status": "sent"}),
        )
    }

    async fn vendor() -> (Fake, Docusign) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route(
                    "/restapi/v2.1/accounts/{account}/envelopes",
                    get(list).post(create),
                )
                .with_state(fake.clone()),
        )
        .await;
        let ds = Docusign::new(
            Base::parse("docusign", Some(&url), DEFAULT_BASE).expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        (fake, ds)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::Esign,
            &[
                ("accountId", ACCOUNT),
                ("templateId", "tmpl-0001"),
                ("email", "sam@example.com"),
                ("emailSubject", "Please sign your agreement"),
            ],
        )
    }

    #[tokio::test]
    async fn sends_an_envelope_once_and_a_retry_finds_it() {
        let (fake, ds) = vendor().await;
        let first = ds.deliver(&job()).await.expect("sent");
        assert_eq!(
            first.reference.as_deref(),
            Some("4b728be4-4f4a-4a4c-8c9c-000000000001")
        );
        let again = ds.deliver(&job()).await.expect("found");
        assert_eq!(again.reference, first.reference);
        assert_eq!(again.detail["found"], "an earlier attempt sent it");
        assert_eq!(
            fake.seen(Method::POST).len(),
            1,
            "one envelope for two attempts"
        );
        let sent = fake.seen(Method::POST)[0].json();
        assert_eq!(sent["templateId"], "tmpl-0001");
        assert_eq!(sent["status"], "sent");
        assert_eq!(sent["emailSubject"], "Please sign your agreement");
        assert_eq!(
            sent["templateRoles"],
            json!([{"email": "sam@example.com", "name": "Sam Lee", "roleName": "signer"}])
        );
        assert_eq!(
            sent["customFields"]["textCustomFields"][0]["value"],
            "call-1/notify/callCompleted"
        );
        let search = &fake.seen(Method::GET)[0];
        assert_eq!(
            search.query_param("custom_field").as_deref(),
            Some("dialtoneIdempotencyKey=call-1/notify/callCompleted")
        );
        let since = search.query_param("from_date").expect("from_date");
        let since = chrono::DateTime::parse_from_rfc3339(&since).expect("ISO date");
        let days = (chrono::Utc::now() - since.with_timezone(&chrono::Utc)).num_days();
        assert_eq!(days, 30);
        // Another job's key finds nothing and sends its own.
        let mut other = job();
        other.idempotency_key = "call-2/notify/callCompleted".into();
        ds.deliver(&other).await.expect("sent");
        assert_eq!(fake.seen(Method::POST).len(), 2);
    }

    #[tokio::test]
    async fn docusigns_refusals_are_permanent_with_its_code() {
        let (_fake, ds) = vendor().await;
        let mut d = job();
        d.params.insert("templateId".into(), "tmpl-9999".into());
        let err = ds.deliver(&d).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "docusign answered HTTP 400: Invalid template ID \"tmpl-9999\". (TEMPLATE_ID_INVALID)"
        );
        let (_, mut expired) = vendor().await;
        expired.token = "expired-token-0000".into();
        let err = expired.deliver(&job()).await.expect_err("refused");
        assert!(
            matches!(
                err,
                DeliveryError::Retryable {
                    status: Some(401),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, ds) = vendor().await;
        check_refusals(&ds, &job(), &fake, Method::POST, 400, error, &[TOKEN]).await;
        check_refusals(&ds, &job(), &fake, Method::GET, 400, error, &[TOKEN]).await;
        let down = Docusign::new(
            Base::parse(
                "docusign",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[TOKEN]).await;
        let mut d = job();
        d.params.remove("email");
        assert_eq!(
            ds.deliver(&d).await.expect_err("no signer").to_string(),
            "parameter \"email\" is required"
        );
    }
}
