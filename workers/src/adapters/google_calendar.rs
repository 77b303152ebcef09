//! `googleCalendar` bookings (Calendar API v3) with an OAuth access token
//! as `Authorization: Bearer <accessToken>` (refreshed outside Dialtone; a
//! refused token is retried, since the Secret is read again each attempt).
//!
//! Parameters: `calendarId` (default `primary`), `start` (RFC 3339; default
//! the call's `appointment` slot), `durationMinutes` (default the book
//! step's, else 30), `timeZone`, `summary`, `description` (default a
//! summary of the call), `email` and `attendees` (comma-separated) as
//! attendees, `sendUpdates` (`all`, `externalOnly`, `none`), and
//! `checkAvailability: "false"` to skip the free/busy check.
//!
//! One event per job, however often it runs: the event's id is chosen by
//! us, derived from the job's key (lowercase base32hex of its SHA-256, the
//! alphabet and length Google allows), so
//!
//! 1. `GET …/events/{id}` finds what an earlier attempt made;
//! 2. `POST /calendar/v3/freeBusy` over the slot: busy means taken, unless
//!    the events there (`GET …/events?timeMin&timeMax`) include ours;
//! 3. `POST …/events` with the id; Google answers 409 when an event with
//!    that id exists (an attempt racing this one), and that event is the
//!    receipt.
//!
//! Google documents that it cannot guarantee to detect an id collision at
//! creation time in every case, which the first step covers for retries.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_crds::agent::WorkflowAction;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::common::{self, expect_action};
use super::http::{self, Base};
use crate::adapter::{Adapter, Delivery, DeliveryError, Receipt};

/// Google's public API.
pub const DEFAULT_BASE: &str = "https://www.googleapis.com";

/// The Google Calendar adapter.
pub struct GoogleCalendar {
    base: Base,
    token: String,
    http: reqwest::Client,
}

/// The event id of a job: lowercase base32hex (`0-9a-v`) of the key's
/// SHA-256, 52 characters (Google allows 5 to 1024).
pub fn event_id(idempotency_key: &str) -> String {
    common::base32hex(&Sha256::digest(idempotency_key.as_bytes()))
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl GoogleCalendar {
    /// An adapter for one Google account's access token.
    pub fn new(base: Base, token: String, http: reqwest::Client) -> Self {
        Self { base, token, http }
    }

    fn events(&self, calendar: &str, rest: &[&str]) -> url::Url {
        let mut segments = vec!["calendar", "v3", "calendars", calendar, "events"];
        segments.extend_from_slice(rest);
        self.base.join(&segments)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<http::Answer, DeliveryError> {
        http::send("google", r.bearer_auth(&self.token), &[&self.token])
            .await
            .map_err(http::retry_unauthorised)
    }

    /// The event with `id`, if it exists.
    async fn get(&self, calendar: &str, id: &str) -> Result<Option<Value>, DeliveryError> {
        match self.send(self.http.get(self.events(calendar, &[id]))).await {
            Ok(a) => Ok(Some(a.json("google")?)),
            Err(DeliveryError::Permanent {
                status: Some(404 | 410),
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The busy blocks of `calendar` overlapping the slot.
    async fn busy(
        &self,
        calendar: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Value>, DeliveryError> {
        let answer = self
            .send(
                self.http
                    .post(self.base.join(&["calendar", "v3", "freeBusy"]))
                    .json(&json!({
                        "timeMin": at(start),
                        "timeMax": at(end),
                        "items": [{"id": calendar}],
                    })),
            )
            .await?
            .json("google")?;
        let calendars = &answer["calendars"];
        let entry = calendars.get(calendar).or_else(|| {
            // Google keys the answer by the id asked for; with one calendar
            // asked, its only entry is it whatever the key.
            calendars
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.values().next())
        });
        Ok(entry
            .and_then(|e| e["busy"].as_array())
            .cloned()
            .unwrap_or_default())
    }

    /// Our event among the events of the slot (an earlier attempt's, not yet
    /// visible by id).
    async fn ours_in_slot(
        &self,
        calendar: &str,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Option<Value>, DeliveryError> {
        let listed = self
            .send(self.http.get(self.events(calendar, &[])).query(&[
                ("timeMin", at(start)),
                ("timeMax", at(end)),
                ("singleEvents", "true".to_owned()),
                ("maxResults", "250".to_owned()),
            ]))
            .await?
            .json("google")?;
        Ok(listed["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["id"] == id))
            .cloned())
    }
}

fn receipt(event: &Value, how: &str) -> Receipt {
    Receipt {
        reference: event["id"].as_str().map(str::to_owned),
        detail: json!({
            "event": how,
            "status": event["status"],
            "htmlLink": event["htmlLink"],
            "start": event["start"]["dateTime"],
        }),
    }
}

#[async_trait]
impl Adapter for GoogleCalendar {
    async fn deliver(&self, d: &Delivery) -> Result<Receipt, DeliveryError> {
        expect_action("googleCalendar", d, WorkflowAction::CalendarBook)?;
        let calendar = d.param("calendarId").unwrap_or("primary");
        let start = common::appointment_start(d)?;
        let end = start + chrono::Duration::minutes(common::duration_minutes(d)?);
        let id = event_id(&d.idempotency_key);

        if let Some(existing) = self.get(calendar, &id).await? {
            return Ok(receipt(&existing, "found: an earlier attempt made it"));
        }
        if d.param("checkAvailability") != Some("false") {
            let busy = self.busy(calendar, start, end).await?;
            if let Some(block) = busy.first() {
                if let Some(ours) = self.ours_in_slot(calendar, &id, start, end).await? {
                    return Ok(receipt(&ours, "found: an earlier attempt made it"));
                }
                return Err(DeliveryError::Permanent {
                    message: format!(
                        "slot {} is already taken: the calendar is busy from {} to {}",
                        at(start),
                        block["start"].as_str().unwrap_or("?"),
                        block["end"].as_str().unwrap_or("?"),
                    ),
                    status: None,
                });
            }
        }

        let time = |t: DateTime<Utc>| match d.param("timeZone") {
            Some(tz) => json!({"dateTime": at(t), "timeZone": tz}),
            None => json!({"dateTime": at(t)}),
        };
        let attendees: Vec<Value> = d
            .param("email")
            .into_iter()
            .chain(d.param("attendees").into_iter().flat_map(|a| a.split(',')))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|email| json!({"email": email}))
            .collect();
        let name = d
            .param("name")
            .or(d.call.slots.get("name").map(String::as_str));
        let summary = d.param("summary").map_or_else(
            || match (d.event["service"].as_str(), name) {
                (Some(service), Some(name)) => format!("{service}: {name}"),
                (Some(service), None) => service.to_owned(),
                (None, Some(name)) => format!("Appointment: {name}"),
                (None, None) => "Appointment".to_owned(),
            },
            str::to_owned,
        );
        let mut body = json!({
            "id": id,
            "summary": summary,
            "description": d.param("description").map_or_else(|| common::summary(d), str::to_owned),
            "start": time(start),
            "end": time(end),
            "extendedProperties": {"private": {
                "dialtoneIdempotencyKey": d.idempotency_key,
                "dialtoneCallId": d.call.call_id,
            }},
        });
        if !attendees.is_empty() {
            body["attendees"] = Value::Array(attendees);
        }
        let mut insert = self.http.post(self.events(calendar, &[])).json(&body);
        if let Some(updates) = d.param("sendUpdates") {
            insert = insert.query(&[("sendUpdates", updates)]);
        }
        match self.send(insert).await {
            Ok(created) => Ok(receipt(&created.json_or_null(), "created")),
            Err(DeliveryError::Permanent {
                status: Some(409), ..
            }) => match self.get(calendar, &id).await? {
                Some(existing) => Ok(receipt(&existing, "found: it existed (409)")),
                None => Err(DeliveryError::Retryable {
                    message: format!("google answered 409 for event {id} but does not show it yet"),
                    status: Some(409),
                    retry_after: None,
                }),
            },
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
    use axum::routing::{get, post};

    const TOKEN: &str = "ya29.a0AfH6SMBx-access-token";

    fn error(status: u16, m: &str) -> Value {
        let reason = match status {
            429 => "rateLimitExceeded",
            s if s >= 500 => "backendError",
            _ => "invalid",
        };
        json!({"error": {"code": status, "message": m, "errors": [{"domain": "global", "reason": reason, "message": m}]}})
    }

    fn check(h: &HeaderMap) -> Option<Response> {
        (header(h, "authorization") != format!("Bearer {TOKEN}")).then(|| {
            answer(
                401,
                json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
            )
        })
    }

    fn parse(t: &Value) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(t.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn overlaps(e: &Value, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        match (parse(&e["start"]["dateTime"]), parse(&e["end"]["dateTime"])) {
            (Some(s), Some(end)) => s < to && end > from,
            _ => false,
        }
    }

    async fn get_event(
        State(f): State<Fake>,
        Path((cal, id)): Path<(String, String)>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h)) {
            return r;
        }
        f.stored()
            .into_iter()
            .find(|e| {
                e["calendar"] == cal.as_str() && e["id"] == id.as_str() && e["hidden"] != true
            })
            .map_or_else(|| answer(404, error(404, "Not Found")), |e| answer(200, e))
    }

    async fn events(
        State(f): State<Fake>,
        Path(cal): Path<String>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h)) {
            return r;
        }
        if method == Method::GET {
            let q: std::collections::BTreeMap<String, String> =
                serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
            let (Some(from), Some(to)) = (
                q.get("timeMin").and_then(|t| parse(&json!(t))),
                q.get("timeMax").and_then(|t| parse(&json!(t))),
            ) else {
                return answer(400, error(400, "Bad Request"));
            };
            let items: Vec<Value> = f
                .stored()
                .into_iter()
                .filter(|e| e["calendar"] == cal.as_str() && overlaps(e, from, to))
                .collect();
            return answer(200, json!({"kind": "calendar#events", "items": items}));
        }
        let Ok(mut b) = serde_json::from_slice::<Value>(&body) else {
            return answer(400, error(400, "Parse Error"));
        };
        let id = b["id"].as_str().unwrap_or_default().to_owned();
        if !(5..=1024).contains(&id.len())
            || !id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v'))
        {
            return answer(400, error(400, "Invalid resource id value."));
        }
        match (parse(&b["start"]["dateTime"]), parse(&b["end"]["dateTime"])) {
            (Some(s), Some(e)) if e > s => {}
            _ => return answer(400, error(400, "The specified time range is empty.")),
        }
        let mut store = f.store.lock().expect("lock");
        if let Some(e) = store
            .iter_mut()
            .find(|e| e["calendar"] == cal.as_str() && e["id"] == id.as_str())
        {
            e["hidden"] = json!(false);
            return answer(
                409,
                json!({"error": {"code": 409, "message": "The requested identifier already exists.", "errors": [{"domain": "global", "reason": "duplicate", "message": "The requested identifier already exists."}]}}),
            );
        }
        b["calendar"] = json!(cal);
        b["status"] = json!("confirmed");
        b["htmlLink"] = json!(format!("https://www.google.com/calendar/event?eid={id}"));
        store.push(b.clone());
        answer(200, b)
    }

    async fn free_busy(
        State(f): State<Fake>,
        method: Method,
        uri: Uri,
        h: HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(r) = f.record(&method, &uri, &h, &body).or_else(|| check(&h)) {
            return r;
        }
        let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (Some(from), Some(to), Some(cal)) = (
            parse(&b["timeMin"]),
            parse(&b["timeMax"]),
            b["items"][0]["id"].as_str(),
        ) else {
            return answer(400, error(400, "timeMin, timeMax and items are required"));
        };
        let busy: Vec<Value> = f
            .stored()
            .into_iter()
            .filter(|e| e["calendar"] == cal && overlaps(e, from, to))
            .map(|e| json!({"start": e["start"]["dateTime"], "end": e["end"]["dateTime"]}))
            .collect();
        answer(
            200,
            json!({"kind": "calendar#freeBusy", "timeMin": b["timeMin"], "timeMax": b["timeMax"], "calendars": {cal: {"busy": busy}}}),
        )
    }

    async fn vendor() -> (Fake, GoogleCalendar) {
        let fake = Fake::default();
        let url = testing::serve(
            Router::new()
                .route("/calendar/v3/calendars/{cal}/events/{id}", get(get_event))
                .route(
                    "/calendar/v3/calendars/{cal}/events",
                    get(events).post(events),
                )
                .route("/calendar/v3/freeBusy", post(free_busy))
                .with_state(fake.clone()),
        )
        .await;
        let g = GoogleCalendar::new(
            Base::parse("google", Some(&url), DEFAULT_BASE).expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        (fake, g)
    }

    fn job() -> Delivery {
        let mut d = delivery(
            WorkflowAction::CalendarBook,
            &[
                ("start", "2026-12-10T15:00:00+11:00"),
                ("email", "sam@example.com"),
                ("timeZone", "Australia/Sydney"),
            ],
        );
        d.idempotency_key = "call-1/book/appointmentRequested".into();
        d.event = json!({"service": "Consultation", "durationMinutes": 45});
        d
    }

    fn foreign(start: &str, end: &str) -> Value {
        json!({"calendar": "primary", "id": "someoneelse1", "start": {"dateTime": start}, "end": {"dateTime": end}})
    }

    #[test]
    fn event_ids_are_what_google_allows_and_the_same_for_a_key() {
        let id = event_id("call-1/book/appointmentRequested");
        assert_eq!(id, event_id("call-1/book/appointmentRequested"));
        assert_ne!(id, event_id("call-2/book/appointmentRequested"));
        assert_eq!(id.len(), 52);
        assert!(
            id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')),
            "{id}"
        );
    }

    #[tokio::test]
    async fn books_an_event_with_its_own_id_and_a_retry_finds_it() {
        let (fake, g) = vendor().await;
        let first = g.deliver(&job()).await.expect("booked");
        let id = event_id("call-1/book/appointmentRequested");
        assert_eq!(first.reference.as_deref(), Some(id.as_str()));
        assert_eq!(first.detail["event"], "created");
        let again = g.deliver(&job()).await.expect("found");
        assert_eq!(again.reference, first.reference);
        let inserts: Vec<_> = fake
            .seen(Method::POST)
            .into_iter()
            .filter(|r| r.path.ends_with("/events"))
            .collect();
        assert_eq!(inserts.len(), 1, "one event for two attempts");
        let b = inserts[0].json();
        assert_eq!(inserts[0].path, "/calendar/v3/calendars/primary/events");
        assert_eq!(
            b["start"],
            json!({"dateTime": "2026-12-10T04:00:00Z", "timeZone": "Australia/Sydney"})
        );
        assert_eq!(
            b["end"]["dateTime"], "2026-12-10T04:45:00Z",
            "the book step's 45 minutes"
        );
        assert_eq!(b["attendees"], json!([{"email": "sam@example.com"}]));
        assert_eq!(b["summary"], "Consultation: Sam Lee");
        assert_eq!(
            b["extendedProperties"]["private"]["dialtoneIdempotencyKey"],
            "call-1/book/appointmentRequested"
        );
        let fb = fake
            .seen(Method::POST)
            .into_iter()
            .find(|r| r.path.ends_with("freeBusy"))
            .expect("freeBusy");
        assert_eq!(fb.json()["items"], json!([{"id": "primary"}]));
    }

    #[tokio::test]
    async fn a_409_means_an_earlier_attempt_made_it() {
        let (fake, g) = vendor().await;
        let id = event_id("call-1/book/appointmentRequested");
        // Made by an attempt whose answer was lost; not visible by id yet.
        fake.store.lock().expect("lock").push(json!({"calendar": "primary", "id": id, "hidden": true,
            "status": "confirmed", "start": {"dateTime": "2026-12-10T04:00:00Z"}, "end": {"dateTime": "2026-12-10T04:45:00Z"}}));
        let mut d = job();
        d.params.insert("checkAvailability".into(), "false".into());
        let r = g.deliver(&d).await.expect("found after 409");
        assert_eq!(r.reference.as_deref(), Some(id.as_str()));
        assert_eq!(r.detail["event"], "found: it existed (409)");
        assert_eq!(fake.stored().len(), 1);
        assert_eq!(
            fake.seen(Method::GET).len(),
            2,
            "looked, inserted, looked again"
        );
    }

    #[tokio::test]
    async fn a_busy_slot_is_taken_unless_the_event_there_is_ours() {
        let (fake, g) = vendor().await;
        fake.store
            .lock()
            .expect("lock")
            .push(foreign("2026-12-10T04:30:00Z", "2026-12-10T05:00:00Z"));
        let err = g.deliver(&job()).await.expect_err("taken");
        assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "slot 2026-12-10T04:00:00Z is already taken: the calendar is busy from 2026-12-10T04:30:00Z to 2026-12-10T05:00:00Z"
        );
        assert!(
            !fake
                .seen(Method::POST)
                .iter()
                .any(|r| r.path.ends_with("/events"))
        );

        let (fake, g) = vendor().await;
        let id = event_id("call-1/book/appointmentRequested");
        fake.store.lock().expect("lock").push(json!({"calendar": "primary", "id": id, "hidden": true,
            "start": {"dateTime": "2026-12-10T04:00:00Z"}, "end": {"dateTime": "2026-12-10T04:45:00Z"}}));
        let r = g.deliver(&job()).await.expect("ours");
        assert_eq!(r.reference.as_deref(), Some(id.as_str()));
        assert_eq!(fake.stored().len(), 1, "no second event");
    }

    #[tokio::test]
    async fn refusals_and_outages_are_classified() {
        let (fake, g) = vendor().await;
        let mut d = job();
        d.params.insert("checkAvailability".into(), "false".into());
        check_refusals(&g, &d, &fake, Method::POST, 400, error, &[TOKEN]).await;
        check_refusals(&g, &d, &fake, Method::GET, 403, error, &[TOKEN]).await;
        let (_, mut expired) = vendor().await;
        expired.token = "ya29.expired-token-000".into();
        let err = expired.deliver(&d).await.expect_err("refused");
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
        testing::assert_no_secret(&err.to_string(), &["ya29.expired-token-000"]);
        let down = GoogleCalendar::new(
            Base::parse(
                "google",
                Some(&testing::unreachable_url().await),
                DEFAULT_BASE,
            )
            .expect("base"),
            TOKEN.into(),
            reqwest::Client::new(),
        );
        testing::check_unreachable(&down, &d, &[TOKEN]).await;
    }
}
