//! The Twilio REST client against a local server that checks basic auth,
//! the number lookup and the update form, and answers like Twilio.

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use dialtone_providers::ProviderError;
use dialtone_providers::twilio::rest::{BindOutcome, TwilioRest};
use serde_json::json;

const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-auth-token-1234";

#[derive(Clone)]
struct Number {
    sid: String,
    phone: String,
    voice_url: Option<String>,
    voice_method: String,
}

#[derive(Default)]
struct Account {
    numbers: Vec<Number>,
    queries: Vec<String>,
    posts: Vec<(String, HashMap<String, String>)>,
}

type Shared = Arc<Mutex<Account>>;

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16()
        })),
    )
        .into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn resource(n: &Number) -> serde_json::Value {
    json!({
        "account_sid": SID,
        "sid": n.sid,
        "phone_number": n.phone,
        "friendly_name": n.phone,
        "voice_url": n.voice_url,
        "voice_method": n.voice_method,
        "voice_fallback_url": null,
        "status_callback": "",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers/{}.json", n.sid)
    })
}

async fn list(
    State(account): State<Shared>,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if sid != SID || !authorised(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let raw = raw.unwrap_or_default();
    let wanted: HashMap<String, String> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    let mut account = account.lock().unwrap();
    account.queries.push(raw);
    let phone = wanted.get("PhoneNumber").cloned().unwrap_or_default();
    match phone.as_str() {
        "+15550000429" => {
            return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        }
        "+15550000404" => {
            return twilio_error(
                StatusCode::NOT_FOUND,
                20404,
                "The requested resource was not found",
            );
        }
        "+15550000500" => {
            return twilio_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error",
            );
        }
        _ => {}
    }
    // Like Twilio, the filter also matches partial numbers.
    let found: Vec<_> = account
        .numbers
        .iter()
        .filter(|n| n.phone.starts_with(&phone))
        .map(resource)
        .collect();
    Json(json!({
        "first_page_uri": format!("/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json?PhoneNumber={phone}&PageSize=50&Page=0"),
        "end": found.len().saturating_sub(1),
        "incoming_phone_numbers": found,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": format!("/2010-04-01/Accounts/{SID}/IncomingPhoneNumbers.json?PhoneNumber={phone}&PageSize=50&Page=0")
    }))
    .into_response()
}

async fn update(
    State(account): State<Shared>,
    Path((sid, file)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if sid != SID || !authorised(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let mut account = account.lock().unwrap();
    account.posts.push((file.clone(), form.clone()));
    let Some(pn) = file.strip_suffix(".json") else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    let Some(number) = account.numbers.iter_mut().find(|n| n.sid == pn) else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    if let Some(url) = form.get("VoiceUrl") {
        number.voice_url = Some(url.clone());
    }
    if let Some(method) = form.get("VoiceMethod") {
        number.voice_method = method.clone();
    }
    Json(resource(number)).into_response()
}

async fn serve(numbers: Vec<Number>) -> (TwilioRest, Shared) {
    let account = Arc::new(Mutex::new(Account {
        numbers,
        ..Account::default()
    }));
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json",
            get(list),
        )
        .route(
            "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/{file}",
            post(update),
        )
        .with_state(account.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let rest = TwilioRest {
        base_url: format!("http://{addr}"),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
    };
    (rest, account)
}

fn number(voice_url: Option<&str>, method: &str) -> Number {
    Number {
        sid: "PN11111111111111111111111111111111".into(),
        phone: "+61291234567".into(),
        voice_url: voice_url.map(str::to_owned),
        voice_method: method.into(),
    }
}

const HOOK: &str = "https://voice.example.net/twilio/voice";

#[tokio::test]
async fn binds_an_unbound_number_then_leaves_it_alone() {
    let (rest, account) = serve(vec![number(None, "POST")]).await;
    let first = rest.set_voice_url("+61291234567", HOOK).await.unwrap();
    assert_eq!(
        first,
        BindOutcome::Updated {
            sid: "PN11111111111111111111111111111111".into()
        }
    );
    {
        let account = account.lock().unwrap();
        // '+' must travel encoded, or Twilio reads a space.
        assert_eq!(account.queries, ["PhoneNumber=%2B61291234567"]);
        assert_eq!(account.posts.len(), 1);
        let (file, form) = &account.posts[0];
        assert_eq!(file, "PN11111111111111111111111111111111.json");
        assert_eq!(form.get("VoiceUrl").map(String::as_str), Some(HOOK));
        assert_eq!(form.get("VoiceMethod").map(String::as_str), Some("POST"));
        assert_eq!(account.numbers[0].voice_url.as_deref(), Some(HOOK));
    }
    let second = rest.set_voice_url("+61291234567", HOOK).await.unwrap();
    assert_eq!(
        second,
        BindOutcome::AlreadyBound {
            sid: "PN11111111111111111111111111111111".into()
        }
    );
    assert_eq!(account.lock().unwrap().posts.len(), 1, "no second POST");
}

#[tokio::test]
async fn the_same_url_with_get_is_rebound_to_post() {
    let (rest, account) = serve(vec![number(Some(HOOK), "GET")]).await;
    let outcome = rest.set_voice_url("+61291234567", HOOK).await.unwrap();
    assert!(
        matches!(outcome, BindOutcome::Updated { .. }),
        "{outcome:?}"
    );
    assert_eq!(account.lock().unwrap().numbers[0].voice_method, "POST");
}

#[tokio::test]
async fn a_number_outside_the_account_is_a_typed_error() {
    let (rest, account) = serve(vec![number(None, "POST")]).await;
    let err = rest.set_voice_url("+61299999999", HOOK).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::NumberNotInAccount { number } if number == "+61299999999"),
        "{err:?}"
    );
    // A partial match of the filter is not the number.
    let err = rest.set_voice_url("+612912", HOOK).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::NumberNotInAccount { .. }),
        "{err:?}"
    );
    assert!(account.lock().unwrap().posts.is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_the_token_never_shows() {
    let (mut rest, account) = serve(vec![number(None, "POST")]).await;
    rest.auth_token = "not-the-token-9876".into();
    let err = rest.set_voice_url("+61291234567", HOOK).await.unwrap_err();
    match &err {
        ProviderError::Unauthorized {
            vendor,
            status,
            code,
            message,
        } => {
            assert_eq!((*vendor, *status), ("twilio", 401));
            assert_eq!(code.as_deref(), Some("20003"));
            assert_eq!(message, "Authenticate");
        }
        other => panic!("{other:?}"),
    }
    for shown in [err.to_string(), format!("{err:?}"), format!("{rest:?}")] {
        assert!(!shown.contains("not-the-token-9876"), "{shown}");
    }
    assert!(account.lock().unwrap().posts.is_empty());
}

#[tokio::test]
async fn http_errors_are_typed_with_twilios_code() {
    let (rest, _) = serve(vec![]).await;
    match rest.set_voice_url("+15550000404", HOOK).await {
        Err(ProviderError::NotFound { code, message, .. }) => {
            assert_eq!(code.as_deref(), Some("20404"));
            assert_eq!(message, "The requested resource was not found");
        }
        other => panic!("{other:?}"),
    }
    match rest.set_voice_url("+15550000429", HOOK).await {
        Err(e @ ProviderError::RateLimited { .. }) => {
            assert!(e.is_transient());
            assert_eq!(e.status(), Some(429));
            assert!(e.to_string().contains("code 20429"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match rest.set_voice_url("+15550000500", HOOK).await {
        Err(ProviderError::Server {
            status: 500,
            code,
            message,
            ..
        }) => {
            assert_eq!(code.as_deref(), Some("20500"));
            assert_eq!(message, "Internal Server Error");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error() {
    // Bind and drop to find a port nothing listens on.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let rest = TwilioRest {
        base_url: format!("http://127.0.0.1:{port}"),
        ..TwilioRest::new(SID, TOKEN)
    };
    let err = rest.set_voice_url("+61291234567", HOOK).await.unwrap_err();
    match &err {
        ProviderError::Transport { vendor, message } => {
            assert_eq!(*vendor, "twilio");
            assert!(message.contains("error sending request"), "{message}");
            // The URL (with the phone number in its query) stays out of it.
            assert!(!message.contains("61291234567"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
}
