//! `calcom` bookings (Cal.com API v2): `POST /v2/bookings` with
//! `Authorization: Bearer <apiKey>` and `cal-api-version: 2024-08-13`. The
//! receipt's reference is the booking's `uid`.
//!
//! Parameters: `eventTypeId` (required), `start` (RFC 3339, usually
//! `{{slots.appointment}}`; default the call's `appointment` slot), `name`
//! (default the `name` slot), `email` (Cal.com requires one; a caller who
//! gave none gets `<digits>@phone.dialtone.invalid`, recognisable and
//! undeliverable), `phone` (default the caller), `timeZone` (default UTC).
//!
//! Cal.com takes no idempotency key, so every booking carries the job's key
//! in `metadata.dialtoneIdempotencyKey`, and a job first lists the event
//! type's bookings around the slot (`GET
//! /v2/bookings?eventTypeId=…&afterStart=…&beforeEnd=…`, every page) for
//! one carrying its key: a retried booking finds the booking it already
//! made and never makes a second. A slot Cal.com says is taken (400 or 409
//! saying the host already has a booking or is not available) is a
//! permanent failure that says so.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};

use super::common::{self, expect_action, permanent};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Cal.com's public API.
pub const DEFAULT_BASE: &str = "https://api.cal.com";
/// The API version the requests are written for.
pub const API_VERSION: &str = "2024-08-13";
/// The metadata key holding the job's key.
pub const KEY_FIELD: &str = "dialtoneIdempotencyKey";

/// Bookings per page of the search (Cal.com's maximum).
const PAGE: usize = 250;
/// Pages searched at most: 1000 bookings of one event type within a day of
/// the slot is far beyond any real calendar.
const MAX_PAGES: usize = 4;

/// The Cal.com adapter.
pub struct Calcom {
    base: Base,
    api_key: String,
    http: reqwest::Client,
}

impl Calcom {
    /// An adapter for one Cal.com account.
    pub fn new(base: Base, api_key: String, http: reqwest::Client) -> Self {
        Self {
            base,
            api_key,
            http,
        }
    }

    fn request(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        r.bearer_auth(&self.api_key)
            .header("cal-api-version", API_VERSION)
    }

    /// The booking an earlier attempt of this job made, if any.
    async fn find(
        &self,
        event_type: i64,
        start: DateTime<Utc>,
        key: &str,
    ) -> Result<Option<Value>, DeliveryError> {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        for page in 0..MAX_PAGES {
            let listed = http::send(
                "calcom",
                self.request(self.http.get(self.base.join(&["v2", "bookings"])))
                    .query(&[
                        ("eventTypeId", event_type.to_string()),
                        ("afterStart", at(start - chrono::Duration::minutes(1))),
                        ("beforeEnd", at(start + chrono::Duration::days(1))),
                        ("take", PAGE.to_string()),
                        ("skip", (page * PAGE).to_string()),
                    ]),
                &[&self.api_key],
            )
            .await?
            .json("calcom")?;
            let bookings = listed["data"]
                .as_array()
                .ok_or_else(|| DeliveryError::Retryable {
                    message: "calcom answered the booking search without a data list".into(),
                    status: None,
                    retry_after: None,
                })?;
            if let Some(b) = bookings
                .iter()
                .find(|b| b["metadata"][KEY_FIELD].as_str() == Some(key))
            {
                return Ok(Some(b.clone()));
            }
            // Versions without pagination info: a full page may have more.
            let more = listed["pagination"]["hasNextPage"]
                .as_bool()
                .unwrap_or(bookings.len() >= PAGE);
            if !more {
                break;
            }
        }
        Ok(None)
    }
}

/// Whether a refusal means the slot is not free. Cal.com says "User either
/// already has booking at this time or is not available", or
/// `no_available_users_found_error`.
fn slot_taken(status: Option<u16>, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == Some(409)
        || [
            "already has booking",
            "already booked",
            "not available",
            "no_available_users_found",
            "no available users",
        ]
        .iter()
        .any(|needle| m.contains(needle))
}

#[async_trait]
impl Adapter for Calcom {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("calcom", d, WorkflowAction::CalendarBook)?;
        let event_type: i64 = d.require("eventTypeId")?.trim().parse().map_err(|_| {
            permanent("parameter \"eventTypeId\" is not a number (Cal.com event type ids are)")
        })?;
        let start = common::appointment_start(d)?;
        let start_text = start.to_rfc3339_opts(SecondsFormat::Secs, true);

        if let Some(existing) = self.find(event_type, start, &d.idempotency_key).await? {
            return Ok(Receipt {
                reference: existing["uid"].as_str().map(str::to_owned),
                detail: json!({
                    "start": existing["start"],
                    "status": existing["status"],
                    "found": "an earlier attempt booked it",
                }),
            });
        }

        let phone = common::phone(d);
        let email = d.param("email").map_or_else(
            || {
                let digits: String = phone
                    .unwrap_or("caller")
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                format!("{digits}@phone.dialtone.invalid")
            },
            str::to_owned,
        );
        let mut attendee = json!({
            "name": d.param("name")
                .or(d.call.slots.get("name").map(String::as_str))
                .unwrap_or("Caller"),
            "email": email,
            "timeZone": d.param("timeZone").unwrap_or("UTC"),
        });
        if let Some(phone) = phone {
            attendee["phoneNumber"] = json!(phone);
        }
        let body = json!({
            "start": start_text,
            "eventTypeId": event_type,
            "attendee": attendee,
            "metadata": {KEY_FIELD: d.idempotency_key, "dialtoneCallId": d.call.call_id},
        });
        match http::send(
            "calcom",
            self.request(self.http.post(self.base.join(&["v2", "bookings"])))
                .json(&body),
            &[&self.api_key],
        )
        .await
        {
            Ok(created) => {
                let created = created.json_or_null();
                Ok(Receipt {
                    reference: created["data"]["uid"].as_str().map(str::to_owned),
                    detail: json!({"start": created["data"]["start"], "status": created["data"]["status"]}),
                })
            }
            Err(DeliveryError::Permanent { message, status })
                if matches!(status, Some(400 | 409)) && slot_taken(status, &message) =>
            {
                Err(DeliveryError::Permanent {
                    message: format!("slot {start_text} is already taken: {message}"),
                    status,
                })
            }
            Err(other) => Err(other),
        }
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
    use axum::routing::get;
    use std::collections::BTreeMap;

    const KEY: &str = "cal_live_secret_key_123";

    fn error(status: u16, m: &str) -> Value {
        let code = match status {
            429 => "ThrottlerException",
            s if s >= 500 => "InternalServerErrorException",
            _ => "BadRequestException",
        };
        json!({"status": "error", "timestamp": "2026-12-06T10:00:00.000Z", "path": "/v2/bookings", "error": {"code": code, "message": m}})
    }

    fn check(h: &HeaderMap) -> Option<Response> {
        if header(h, "authorization") != format!("Bearer {KEY}") {
            return Some(answer(401, error(401, "Invalid Access Token.")));
        }
        (header(h, "cal-api-version") != API_VERSION)
            .then(|| answer(400, error(400, "cal-api-version header must be 2024-08-13")))
    }

    async fn list(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h)) {
            return r;
        }
        let q: BTreeMap<String, String> =
            serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
        let (Some(after), Some(before)) = (
            q.get("afterStart")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
            q.get("beforeEnd")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            return answer(400, error(400, "afterStart and beforeEnd must be ISO 8601"));
        };
        let take: usize = q.get("take").and_then(|t| t.parse().ok()).unwrap_or(100);
        let skip: usize = q.get("skip").and_then(|t| t.parse().ok()).unwrap_or(0);
        if take > 250 {
            return answer(400, error(400, "take must not be greater than 250"));
        }
        let matching: Vec<Value> = f
            .stored()
            .into_iter()
            .filter(|b| {
                q.get("eventTypeId").is_none_or(|id| {
                    b["eventTypeId"].as_i64().map(|n| n.to_string()).as_ref() == Some(id)
                }) && b["start"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .is_some_and(|s| s > after)
                    && b["end"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .is_some_and(|e| e < before)
            })
            .collect();
        let page: Vec<Value> = matching.iter().skip(skip).take(take).cloned().collect();
        answer(
            200,
            json!({
                "status": "success",
                "data": page,
                "pagination": {"totalItems": matching.len(), "returnedItems": page.len(), "itemsPerPage": take,
                    "hasNextPage": skip + take < matching.len()},
            }),
        )
    }

    async fn create(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h)) {
            return r;
        }
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return answer(400, error(400, "Invalid JSON"));
        };
        let Some(start) = b["start"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        else {
            return answer(400, error(400, "start must be a valid ISO 8601 date"));
        };
        if !b["eventTypeId"].is_i64()
            || !b["attendee"]["name"].is_string()
            || !b["attendee"]["email"]
                .as_str()
                .is_some_and(|e| e.contains('@'))
            || !b["attendee"]["timeZone"].is_string()
        {
            return answer(
                400,
                error(
                    400,
                    "eventTypeId, attendee.name, attendee.email and attendee.timeZone are required",
                ),
            );
        }
        let mut store = f.store.lock().expect("lock");
        if store.iter().any(|x| x["start"] == b["start"]) {
            return answer(
                400,
                error(
                    400,
                    "User either already has booking at this time or is not available",
                ),
            );
        }
        let booking = json!({
            "id": store.len() + 1, "uid": format!("bk_{}", store.len() + 1), "status": "accepted",
            "start": b["start"], "end": (start + chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true),
            "eventTypeId": b["eventTypeId"], "attendees": [b["attendee"]], "metadata": b["metadata"],
        });
        store.push(booking.clone());
        answer(201, json!({"status": "success", "data": booking}))
    }

    async fn vendor() -> (Fake, Calcom) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/v2/bookings", get(list).post(create))
                .with_state(fake.clone()),
        )
        .await;
        let cal = Calcom::new(
            Base::parse("calcom", Some(&url), DEFAULT_BASE).expect("base"),
            KEY.into(),
            reqwest::Client::new(),
        );
        (fake, cal)
    }

    fn job(key: &str) -> Delivery {
        let mut d = delivery(
            WorkflowAction::CalendarBook,
            &[
                ("eventTypeId", "1201"),
                ("start", "2026-12-10T15:00:00+11:00"),
                ("timeZone", "Australia/Sydney"),
            ],
        );
        d.idempotency_key = key.into();
        d
    }

    #[tokio::test]
    async fn a_retried_booking_finds_the_one_it_made() {
        let (fake, cal) = vendor().await;
        let first = cal
            .deliver(&job("c1/book/appointmentRequested"))
            .await
            .expect("booked");
        assert_eq!(first.reference.as_deref(), Some("bk_1"));
        let again = cal
            .deliver(&job("c1/book/appointmentRequested"))
            .await
            .expect("found");
        assert_eq!(again.reference.as_deref(), Some("bk_1"));
        assert_eq!(again.detail["found"], "an earlier attempt booked it");
        assert_eq!(
            fake.seen(Method::POST).len(),
            1,
            "one booking for two attempts"
        );

        let sent = fake.seen(Method::POST)[0].json();
        assert_eq!(sent["start"], "2026-12-10T04:00:00Z", "UTC");
        assert_eq!(sent["eventTypeId"], 1201);
        assert_eq!(sent["attendee"]["name"], "Sam Lee", "from the name slot");
        assert_eq!(
            sent["attendee"]["email"],
            "61400111222@phone.dialtone.invalid"
        );
        assert_eq!(sent["attendee"]["timeZone"], "Australia/Sydney");
        assert_eq!(sent["attendee"]["phoneNumber"], "+61400111222");
        assert_eq!(sent["metadata"][KEY_FIELD], "c1/book/appointmentRequested");
        let searched = &fake.seen(Method::GET)[0];
        assert_eq!(searched.query_param("eventTypeId").as_deref(), Some("1201"));
        assert_eq!(
            searched.query_param("afterStart").as_deref(),
            Some("2026-12-10T03:59:00Z")
        );
        assert_eq!(
            searched.query_param("beforeEnd").as_deref(),
            Some("2026-12-11T04:00:00Z")
        );
    }

    #[tokio::test]
    async fn the_search_reads_every_page() {
        let (fake, cal) = vendor().await;
        {
            let mut store = fake.store.lock().expect("lock");
            for i in 0..300 {
                store.push(json!({"uid": format!("other_{i}"), "eventTypeId": 1201,
                    "start": "2026-12-10T05:00:00Z", "end": "2026-12-10T05:30:00Z", "metadata": {}}));
            }
            store.push(json!({"uid": "mine", "eventTypeId": 1201, "start": "2026-12-10T04:00:00Z",
                "end": "2026-12-10T04:30:00Z", "metadata": {KEY_FIELD: "c1/book/appointmentRequested"}}));
        }
        let r = cal
            .deliver(&job("c1/book/appointmentRequested"))
            .await
            .expect("found");
        assert_eq!(r.reference.as_deref(), Some("mine"));
        assert_eq!(fake.seen(Method::GET).len(), 2);
        assert!(fake.seen(Method::POST).is_empty());
    }

    #[tokio::test]
    async fn a_slot_taken_by_someone_else_is_a_clear_permanent_failure() {
        let (_fake, cal) = vendor().await;
        cal.deliver(&job("c1/book/appointmentRequested"))
            .await
            .expect("booked");
        let err = cal
            .deliver(&job("c2/book/appointmentRequested"))
            .await
            .expect_err("taken");
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
        assert!(
            err.to_string().starts_with("slot 2026-12-10T04:00:00Z is already taken: calcom answered HTTP 400: User either already has booking"),
            "{err}"
        );
        testing::assert_no_secret(&err.to_string(), &[KEY]);
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, cal) = vendor().await;
        check_refusals(
            &cal,
            &job("c3/b/t"),
            &fake,
            Method::POST,
            400,
            error,
            &[KEY],
        )
        .await;
        check_refusals(&cal, &job("c3/b/t"), &fake, Method::GET, 400, error, &[KEY]).await;
        let mut d = job("c3/b/t");
        d.params.insert("eventTypeId".into(), "consult".into());
        assert!(
            cal.deliver(&d)
                .await
                .expect_err("bad id")
                .to_string()
                .contains("eventTypeId")
        );
        let down = Calcom::new(
            Base::parse(
                "calcom",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            KEY.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &job("c3/b/t"), &[KEY]).await;
        assert!(!slot_taken(
            Some(400),
            "start must be a valid ISO 8601 date"
        ));
        assert!(slot_taken(Some(409), "Conflict"));
    }
}
