//! The local vendor server of `cargo xtask demo`: stands in for Cal.com
//! (`/calcom`), Twilio Messages and Calls (`/twilio`, see
//! [`twilio_voice`]) and the plumber's job board (`/hooks/rapid-plumbing`),
//! checks each request as the vendor documents it (method, path, auth,
//! headers, body; the webhook's signature), and prints one `vendor …` line
//! per request for the demo to show.
//!
//! `demo_vendors --port 18090`; the webhook's signing secret comes from
//! `DEMO_WEBHOOK_SECRET`, the Twilio account's auth token (to sign call
//! callbacks) from `DEMO_TWILIO_TOKEN`, and the numbers a machine answers
//! from `DEMO_MACHINE_NUMBERS` (comma-separated).

mod twilio_voice;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Vendors {
    bookings: Arc<Mutex<Vec<Value>>>,
    messages: Arc<Mutex<Vec<Value>>>,
    hooks: Arc<Mutex<HashMap<String, u32>>>,
    webhook_secret: String,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn refuse(status: StatusCode, why: &str) -> axum::response::Response {
    println!("vendor REFUSED {why}");
    (
        status,
        Json(json!({"status": "error", "error": {"message": why}})),
    )
        .into_response()
}

async fn calcom_create(
    State(v): State<Vendors>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !header(&headers, "authorization").starts_with("Bearer ") {
        return refuse(StatusCode::UNAUTHORIZED, "cal.com: no Bearer API key");
    }
    if header(&headers, "cal-api-version").is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "cal.com: no cal-api-version header",
        );
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "cal.com: body is not JSON");
    };
    let (Some(start), Some(_)) = (
        b["start"].as_str(),
        b["eventTypeId"]
            .as_i64()
            .or_else(|| b["eventTypeId"].as_str().and_then(|s| s.parse().ok())),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "cal.com: start and eventTypeId are required",
        );
    };
    let mut bookings = v.bookings.lock().unwrap_or_else(|e| e.into_inner());
    if bookings.iter().any(|x| x["start"] == start) {
        println!("vendor cal.com   REFUSED {start}: slot already booked");
        return (StatusCode::BAD_REQUEST, Json(json!({"status": "error", "error": {"message": format!("User either already has booking at this time or is not available: {start}")}}))).into_response();
    }
    let uid = format!("bk_{:04}", bookings.len() + 1);
    let booking = json!({
        "id": bookings.len() + 1, "uid": uid, "status": "accepted", "start": start,
        "eventTypeId": b["eventTypeId"], "attendees": [b["attendee"]], "metadata": b["metadata"],
    });
    println!(
        "vendor cal.com   booking {uid} at {start} for {} ({})",
        b["attendee"]["name"].as_str().unwrap_or("?"),
        b["attendee"]["phoneNumber"].as_str().unwrap_or("no phone")
    );
    bookings.push(booking.clone());
    (
        StatusCode::CREATED,
        Json(json!({"status": "success", "data": booking})),
    )
        .into_response()
}

async fn calcom_list(State(v): State<Vendors>, headers: HeaderMap) -> axum::response::Response {
    if !header(&headers, "authorization").starts_with("Bearer ") {
        return refuse(StatusCode::UNAUTHORIZED, "cal.com: no Bearer API key");
    }
    let bookings = v.bookings.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Json(json!({"status": "success", "data": bookings})).into_response()
}

fn basic_ok(headers: &HeaderMap, sid: &str) -> bool {
    let Some(encoded) = header(headers, "authorization").strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .is_some_and(|pair| {
            pair.split_once(':')
                .is_some_and(|(user, pass)| user == sid && !pass.is_empty())
        })
}

async fn twilio_send(
    State(v): State<Vendors>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !basic_ok(&headers, &sid) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "twilio: basic auth must be AccountSid:AuthToken",
        );
    }
    if !header(&headers, "content-type").starts_with("application/x-www-form-urlencoded") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "twilio: Messages takes a form-encoded body",
        );
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (Some(to), Some(from), Some(text)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        return (StatusCode::BAD_REQUEST, Json(json!({"code": 21604, "message": "A 'To', 'From' and 'Body' are required", "status": 400}))).into_response();
    };
    let mut messages = v.messages.lock().unwrap_or_else(|e| e.into_inner());
    let msid = format!("SM{:032}", messages.len() + 1);
    println!("vendor twilio    SMS {msid} to {to} from {from}: {text}");
    let message = json!({"sid": msid, "to": to, "from": from, "body": text, "status": "queued", "account_sid": sid});
    messages.push(message.clone());
    (StatusCode::CREATED, Json(message)).into_response()
}

async fn twilio_list(
    State(v): State<Vendors>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if !basic_ok(&headers, &sid) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "twilio: basic auth must be AccountSid:AuthToken",
        );
    }
    let messages: Vec<Value> = v
        .messages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|m| {
            q.get("To").is_none_or(|to| m["to"] == to.as_str())
                && q.get("From").is_none_or(|f| m["from"] == f.as_str())
        })
        .cloned()
        .collect();
    Json(json!({"messages": messages, "next_page_uri": null})).into_response()
}

async fn hook(
    State(v): State<Vendors>,
    Path(board): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let ts = header(&headers, "x-dialtone-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() <= 300);
    let signed = header(&headers, "x-dialtone-signature")
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .is_some_and(|sig| {
            Hmac::<sha2::Sha256>::new_from_slice(v.webhook_secret.as_bytes())
                .map(|mut mac| {
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                    mac.update(&body);
                    mac.verify_slice(&sig).is_ok()
                })
                .unwrap_or(false)
        });
    if !fresh || !signed {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "webhook: signature or timestamp does not verify",
        );
    }
    let key = header(&headers, "x-dialtone-idempotency-key").to_owned();
    let mut hooks = v.hooks.lock().unwrap_or_else(|e| e.into_inner());
    let seen = hooks.entry(key.clone()).or_insert(0);
    *seen += 1;
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if *seen == 1 {
        println!(
            "vendor webhook   {board}: signature verified; {} {} of call {} (key {key})",
            b["trigger"].as_str().unwrap_or("?"),
            b["workflow"].as_str().unwrap_or("?"),
            b["call"]["callId"].as_str().unwrap_or("?")
        );
    } else {
        println!("vendor webhook   {board}: repeated key {key}, no second effect");
    }
    Json(json!({"id": format!("hook-{}", hooks.len())})).into_response()
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .find_map(|a| a.strip_prefix("--port=").and_then(|p| p.parse().ok()))
        .unwrap_or(18090);
    let vendors = Vendors {
        webhook_secret: std::env::var("DEMO_WEBHOOK_SECRET").unwrap_or_default(),
        ..Vendors::default()
    };
    let app = Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .route("/calcom/v2/bookings", post(calcom_create).get(calcom_list))
        .route(
            "/twilio/2010-04-01/Accounts/{sid}/Messages.json",
            post(twilio_send).get(twilio_list),
        )
        .route("/hooks/{board}", post(hook))
        .with_state(vendors)
        .merge(
            Router::new()
                .route(
                    "/twilio/2010-04-01/Accounts/{sid}/Calls.json",
                    post(twilio_voice::create),
                )
                .with_state(twilio_voice::Voice {
                    auth_token: std::env::var("DEMO_TWILIO_TOKEN").unwrap_or_default(),
                    machines: Arc::new(
                        std::env::var("DEMO_MACHINE_NUMBERS")
                            .unwrap_or_default()
                            .split(',')
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                    ..twilio_voice::Voice::default()
                }),
        );
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo vendors on 127.0.0.1:{port}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("serving: {e}");
    }
}
