//! `hubspot` CRM upsert (CRM API v3, contacts) with a private app's access
//! token as `Authorization: Bearer <apiKey>`.
//!
//! Search then write, which makes a retried job update the contact its
//! first attempt made instead of creating a second:
//!
//! 1. `POST /crm/v3/objects/contacts/search` with one filter group per
//!    identifier (`email` EQ, `phone` EQ; HubSpot ORs groups);
//! 2. found: `PATCH /crm/v3/objects/contacts/{id}` with the properties;
//! 3. not found: `POST /crm/v3/objects/contacts`. HubSpot refuses a second
//!    contact with the same email with 409 "Contact already exists.
//!    Existing ID: …"; that contact is updated instead.
//!
//! Parameters: `email` and/or `phone` (default: the caller's number), and
//! the properties `firstname`, `lastname` (or `name`, split at the first
//! space), any `property.<internal name>`, and `outcomeProperty`: the name
//! of a custom property to receive the call's outcome (only when given:
//! HubSpot refuses properties a portal does not define).
//!
//! Limits: HubSpot's search index trails writes by a few seconds, so two
//! attempts of a phone-only job that close together can both create (email
//! is protected by the 409); and `phone` is matched exactly as stored.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use super::common::{self, expect_action, permanent};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// HubSpot's public API.
pub const DEFAULT_BASE: &str = "https://api.hubapi.com";

/// The HubSpot adapter.
pub struct Hubspot {
    base: Base,
    token: String,
    http: reqwest::Client,
}

impl Hubspot {
    /// An adapter for one HubSpot portal's private app token.
    pub fn new(base: Base, token: String, http: reqwest::Client) -> Self {
        Self { base, token, http }
    }

    fn contacts(&self, rest: &[&str]) -> url::Url {
        let mut segments = vec!["crm", "v3", "objects", "contacts"];
        segments.extend_from_slice(rest);
        self.base.join(&segments)
    }

    async fn update(
        &self,
        id: &str,
        properties: &BTreeMap<String, String>,
        how: &str,
    ) -> Result<Receipt, DeliveryError> {
        let updated = http::send(
            "hubspot",
            self.http
                .patch(self.contacts(&[id]))
                .bearer_auth(&self.token)
                .json(&json!({"properties": properties})),
            &[&self.token],
        )
        .await?
        .json_or_null();
        Ok(Receipt {
            reference: Some(updated["id"].as_str().unwrap_or(id).to_owned()),
            detail: json!({"contact": how}),
        })
    }
}

/// The contact's properties from the parameters.
fn properties(d: &Delivery, email: Option<&str>, phone: Option<&str>) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let (first, last) = match (d.param("firstname"), d.param("lastname"), d.param("name")) {
        (None, None, Some(name)) => match name.trim().split_once(' ') {
            Some((f, l)) => (Some(f.trim()), Some(l.trim())),
            None => (Some(name.trim()), None),
        },
        (f, l, _) => (f, l),
    };
    for (k, v) in [
        ("firstname", first),
        ("lastname", last),
        ("email", email),
        ("phone", phone),
    ] {
        if let Some(v) = v {
            p.insert(k.to_owned(), v.to_owned());
        }
    }
    for (k, v) in &d.params {
        if let Some(name) = k.strip_prefix("property.")
            && !name.is_empty()
            && !v.trim().is_empty()
        {
            p.insert(name.to_owned(), v.clone());
        }
    }
    if let (Some(prop), Some(outcome)) = (d.param("outcomeProperty"), &d.call.outcome) {
        p.insert(prop.to_owned(), outcome.clone());
    }
    p
}

/// The id in HubSpot's 409 "Contact already exists. Existing ID: 123".
fn existing_id(message: &str) -> Option<&str> {
    let rest = &message[message.find("Existing ID:")? + "Existing ID:".len()..];
    let id = rest.trim_start();
    let end = id.find(|c: char| !c.is_ascii_digit()).unwrap_or(id.len());
    (end > 0).then(|| &id[..end])
}

#[async_trait]
impl Adapter for Hubspot {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("hubspot", d, WorkflowAction::CrmUpsert)?;
        let email = d.param("email");
        let phone = common::phone(d);
        if email.is_none() && phone.is_none() {
            return Err(permanent(
                "hubspot: an \"email\" or \"phone\" parameter is required (the call has no caller number)",
            ));
        }
        let secrets = [self.token.as_str()];
        let groups: Vec<Value> = [("email", email), ("phone", phone)]
            .into_iter()
            .filter_map(|(prop, v)| {
                Some(json!({"filters": [{"propertyName": prop, "operator": "EQ", "value": v?}]}))
            })
            .collect();
        let found = http::send(
            "hubspot",
            self.http
                .post(self.contacts(&["search"]))
                .bearer_auth(&self.token)
                .json(&json!({
                    "filterGroups": groups,
                    "properties": ["email", "phone", "firstname", "lastname"],
                    "limit": 10,
                })),
            &secrets,
        )
        .await?
        .json("hubspot")?;
        let results = found["results"].as_array().cloned().unwrap_or_default();
        // Email identifies a person better than a shared phone number.
        let existing = email
            .and_then(|e| {
                results.iter().find(|r| {
                    r["properties"]["email"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(e))
                })
            })
            .or_else(|| results.first())
            .and_then(|r| r["id"].as_str());
        let props = properties(d, email, phone);
        if let Some(id) = existing {
            return self.update(id, &props, "updated").await;
        }
        match http::send(
            "hubspot",
            self.http
                .post(self.contacts(&[]))
                .bearer_auth(&self.token)
                .json(&json!({"properties": props})),
            &secrets,
        )
        .await
        {
            Ok(created) => Ok(Receipt {
                reference: created.json_or_null()["id"].as_str().map(str::to_owned),
                detail: json!({"contact": "created"}),
            }),
            Err(DeliveryError::Permanent {
                message,
                status: Some(409),
            }) if existing_id(&message).is_some() => {
                let id = existing_id(&message).unwrap_or_default().to_owned();
                self.update(&id, &props, "updated (it existed by email)")
                    .await
            }
            Err(e) => Err(e),
        }
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
    use axum::routing::{patch, post};

    const TOKEN: &str = "pat-na1-00000000-1111-2222-3333-444444444444";

    fn error(status: u16, m: &str) -> Value {
        let category = match status {
            429 => "RATE_LIMITS",
            s if s >= 500 => "INTERNAL_ERROR",
            _ => "VALIDATION_ERROR",
        };
        json!({"status": "error", "message": m, "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf", "category": category})
    }

    fn check(h: &HeaderMap, b: &Value) -> Option<Response> {
        if header(h, "authorization") != format!("Bearer {TOKEN}") {
            return Some(answer(
                401,
                json!({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}),
            ));
        }
        if !header(h, "content-type").starts_with("application/json") || b.is_null() {
            return Some(answer(415, error(415, "Unsupported media type")));
        }
        None
    }

    fn matches(contact: &Value, filters: &Value) -> bool {
        filters.as_array().is_some_and(|fs| {
            fs.iter().all(|f| {
                f["operator"] == "EQ"
                    && contact["properties"][f["propertyName"].as_str().unwrap_or_default()]
                        .as_str()
                        .is_some_and(|v| Some(v) == f["value"].as_str())
            })
        })
    }

    async fn search(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h, &b)) {
            return r;
        }
        let Some(groups) = b["filterGroups"]
            .as_array()
            .filter(|g| !g.is_empty() && g.len() <= 5)
        else {
            return answer(400, error(400, "filterGroups must hold 1 to 5 groups"));
        };
        let results: Vec<Value> = f
            .stored()
            .into_iter()
            .filter(|c| c["indexed"] != false && groups.iter().any(|g| matches(c, &g["filters"])))
            .collect();
        answer(200, json!({"total": results.len(), "results": results}))
    }

    async fn create(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h, &b)) {
            return r;
        }
        let Some(props) = b["properties"].as_object() else {
            return answer(400, error(400, "properties is required"));
        };
        if let Some(unknown) = props.keys().find(|k| k.starts_with("unknown")) {
            return answer(
                400,
                error(
                    400,
                    &format!(
                        "Property values were not valid: Property \"{unknown}\" does not exist"
                    ),
                ),
            );
        }
        let mut store = f.store.lock().expect("lock");
        if let Some(same) = store
            .iter()
            .find(|c| props.get("email").is_some() && c["properties"]["email"] == props["email"])
        {
            return answer(
                409,
                json!({"status": "error", "message": format!("Contact already exists. Existing ID: {}", same["id"].as_str().unwrap_or_default()), "category": "CONFLICT"}),
            );
        }
        let contact =
            json!({"id": format!("{}", 501 + store.len()), "properties": props, "archived": false});
        store.push(contact.clone());
        answer(201, contact)
    }

    async fn update(
        State(f): State<Fake>,
        Path(id): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h, &b)) {
            return r;
        }
        let mut store = f.store.lock().expect("lock");
        let Some(c) = store.iter_mut().find(|c| c["id"] == id.as_str()) else {
            return answer(404, error(404, "resource not found"));
        };
        if let (Some(old), Some(new)) =
            (c["properties"].as_object_mut(), b["properties"].as_object())
        {
            old.extend(new.clone());
        }
        answer(200, c.clone())
    }

    async fn vendor() -> (Fake, Hubspot) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/crm/v3/objects/contacts/search", post(search))
                .route("/crm/v3/objects/contacts", post(create))
                .route("/crm/v3/objects/contacts/{id}", patch(update))
                .with_state(fake.clone()),
        )
        .await;
        let adapter = Hubspot::new(
            Base::parse("hubspot", Some(&url), DEFAULT_BASE).expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        (fake, adapter)
    }

    fn job() -> Delivery {
        delivery(
            WorkflowAction::CrmUpsert,
            &[
                ("name", "Sam Lee"),
                ("property.lifecyclestage", "lead"),
                ("outcomeProperty", "dialtone_outcome"),
            ],
        )
    }

    #[tokio::test]
    async fn not_found_creates_and_a_retry_updates_the_same_contact() {
        let (fake, hubspot) = vendor().await;
        let first = hubspot.deliver(&job()).await.expect("created");
        assert_eq!(first.reference.as_deref(), Some("501"));
        assert_eq!(first.detail["contact"], "created");
        let again = hubspot.deliver(&job()).await.expect("updated");
        assert_eq!(again.reference.as_deref(), Some("501"));
        assert_eq!(again.detail["contact"], "updated");
        assert_eq!(fake.stored().len(), 1, "one contact for two attempts");
        let posts = fake.seen(Method::POST);
        let searched = posts[0].json();
        assert_eq!(
            searched["filterGroups"],
            json!([{"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+61400111222"}]}]),
            "the caller's number when no phone is given"
        );
        let created = posts[1].json();
        assert_eq!(created["properties"]["firstname"], "Sam");
        assert_eq!(created["properties"]["lastname"], "Lee");
        assert_eq!(created["properties"]["phone"], "+61400111222");
        assert_eq!(created["properties"]["lifecyclestage"], "lead");
        assert_eq!(created["properties"]["dialtone_outcome"], "booked");
        let patches = fake.seen(Method::PATCH);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].path, "/crm/v3/objects/contacts/501");
    }

    #[tokio::test]
    async fn found_by_email_is_patched_in_place() {
        let (fake, hubspot) = vendor().await;
        fake.store.lock().expect("lock").push(json!({"id": "77", "properties": {"email": "sam@example.com", "phone": "+61499999999"}}));
        let mut d = job();
        d.params.insert("email".into(), "sam@example.com".into());
        d.params.remove("outcomeProperty");
        let r = hubspot.deliver(&d).await.expect("updated");
        assert_eq!(r.reference.as_deref(), Some("77"));
        assert_eq!(fake.seen(Method::POST).len(), 1, "a search, no create");
        let patch = fake.seen(Method::PATCH)[0].json();
        assert_eq!(patch["properties"]["email"], "sam@example.com");
        assert_eq!(
            patch["properties"].get("dialtone_outcome"),
            None,
            "only when asked for"
        );
        let groups = fake.seen(Method::POST)[0].json()["filterGroups"].clone();
        assert_eq!(groups.as_array().map(Vec::len), Some(2), "email OR phone");
    }

    #[tokio::test]
    async fn an_email_not_yet_searchable_is_updated_after_hubspots_409() {
        let (fake, hubspot) = vendor().await;
        // Made moments ago: HubSpot's search index does not show it yet.
        fake.store.lock().expect("lock").push(
            json!({"id": "88", "indexed": false, "properties": {"email": "sam@example.com"}}),
        );
        let mut d = job();
        d.params.insert("email".into(), "sam@example.com".into());
        let r = hubspot.deliver(&d).await.expect("updated");
        assert_eq!(r.reference.as_deref(), Some("88"));
        assert_eq!(r.detail["contact"], "updated (it existed by email)");
        assert_eq!(fake.stored().len(), 1, "no second contact");
        assert_eq!(
            fake.seen(Method::PATCH)[0].path,
            "/crm/v3/objects/contacts/88"
        );
        assert_eq!(
            existing_id("Contact already exists. Existing ID: 1234"),
            Some("1234")
        );
        assert_eq!(existing_id("Contact already exists."), None);
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, hubspot) = vendor().await;
        check_refusals(&hubspot, &job(), &fake, Method::POST, 400, error, &[TOKEN]).await;
        let mut d = job();
        d.params.insert("property.unknown_prop".into(), "x".into());
        let err = hubspot.deliver(&d).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "hubspot answered HTTP 400: Property values were not valid: Property \"unknown_prop\" does not exist (VALIDATION_ERROR)"
        );
        let down = Hubspot::new(
            Base::parse(
                "hubspot",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job(), &[TOKEN]).await;
        let mut nobody = job();
        nobody.call.caller = None;
        let err = hubspot.deliver(&nobody).await.expect_err("no identifier");
        assert!(err.to_string().contains("\"email\" or \"phone\""), "{err}");
    }
}
