//! The OpenAI-compatible classifier against a local server that checks the
//! documented request shape and answers documented completions.

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dialtone_crds::agent::ProviderKind;
use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType, Vendor};
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::build::classifier_for;
use dialtone_providers::llm::{Classification, Classifier, OpenAiCompatible};
use dialtone_providers::{Credentials, ProviderError};
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789";

type Seen = Arc<Mutex<Vec<Value>>>;

/// Answers like the chat completions API; what the caller "said" picks the
/// answer. Requests that break the documented shape get a 400 naming why.
async fn completions(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {KEY}") {
        // OpenAI echoes (a mask of) the key it was given.
        let given = auth.trim_start_matches("Bearer ");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {
                "message": format!("Incorrect API key provided: {given}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        )
            .into_response();
    }
    let problem = check_shape(&body);
    seen.lock().unwrap().push(body.clone());
    if let Some(problem) = problem {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": problem, "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    let utterance = body["messages"][1]["content"].as_str().unwrap_or_default();
    let reply = match utterance {
        u if u.contains("buy") => "Sales",
        u if u.contains("slow") => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "Sales"
        }
        u if u.contains("busy") => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                Json(
                    json!({"error": {"message": "Rate limit reached for requests",
                    "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
                ),
            )
                .into_response();
        }
        _ => "none",
    };
    Json(json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_677_652_288,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 52, "completion_tokens": 1, "total_tokens": 53}
    }))
    .into_response()
}

fn check_shape(body: &Value) -> Option<String> {
    if body["model"] != "gpt-4o-mini" {
        return Some(format!("model is {}", body["model"]));
    }
    if body["temperature"] != 0 {
        return Some(format!("temperature is {}", body["temperature"]));
    }
    let Some(messages) = body["messages"].as_array() else {
        return Some("messages is not a list".into());
    };
    if messages.len() != 2 || messages[0]["role"] != "system" || messages[1]["role"] != "user" {
        return Some("messages must be [system, user]".into());
    }
    let prompt = messages[0]["content"].as_str().unwrap_or_default();
    if !prompt.contains("- Sales\n- Support\n- none") {
        return Some(format!(
            "the system prompt does not list the options: {prompt}"
        ));
    }
    None
}

async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn config(base_url: &str) -> ProviderConfig {
    ProviderConfig {
        name: "openai-main".into(),
        kind: ProviderKind::Provider,
        type_: ProviderType::Llm,
        vendor: Vendor::Openai,
        settings: ProviderSettings {
            base_url: Some(base_url.into()),
            model: Some("gpt-4o-mini".into()),
            ..ProviderSettings::default()
        },
        pricing: Pricing::default(),
        rate_limits: None,
    }
}

fn options() -> Vec<String> {
    vec!["Sales".into(), "Support".into()]
}

fn classifier(base: &str, key: &str) -> Arc<dyn Classifier> {
    classifier_for(
        Some(&config(base)),
        &Credentials::from_values("openai-main", [("apiKey", key)]),
    )
    .unwrap()
}

#[tokio::test]
async fn classifies_with_the_documented_request_and_counts_tokens() {
    let (base, seen) = serve().await;
    let got = classifier(&base, KEY)
        .classify("I'd like to buy a new water heater", &options())
        .await
        .unwrap();
    assert_eq!(
        got,
        Classification {
            choice: Some("Sales".into()),
            input_tokens: 52,
            output_tokens: 1
        }
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]["messages"][1],
        json!({"role": "user", "content": "I'd like to buy a new water heater"})
    );
}

#[tokio::test]
async fn a_none_reply_is_no_choice_but_still_costs_tokens() {
    let (base, _) = serve().await;
    let got = classifier(&base, KEY)
        .classify("what's the weather like", &options())
        .await
        .unwrap();
    assert_eq!(got.choice, None);
    assert_eq!((got.input_tokens, got.output_tokens), (52, 1));
}

#[tokio::test]
async fn nothing_to_choose_from_asks_nothing() {
    let (base, seen) = serve().await;
    let got = classifier(&base, KEY).classify("buy", &[]).await.unwrap();
    assert_eq!(got, Classification::default());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_repeated() {
    let (base, _) = serve().await;
    let wrong = "sk-wrong-key-abcdef";
    let err = classifier(&base, wrong)
        .classify("buy", &options())
        .await
        .unwrap_err();
    match &err {
        ProviderError::Unauthorized {
            vendor,
            status,
            code,
            message,
        } => {
            assert_eq!((*vendor, *status), ("openai", 401));
            assert_eq!(code.as_deref(), Some("invalid_api_key"));
            assert!(
                message.starts_with("Incorrect API key provided"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains(wrong), "{err}");
}

#[tokio::test]
async fn rate_limits_are_typed_with_retry_after() {
    let (base, _) = serve().await;
    let err = classifier(&base, KEY)
        .classify("the line is busy", &options())
        .await
        .unwrap_err();
    match err {
        ProviderError::RateLimited {
            code, retry_after, ..
        } => {
            assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let (base, _) = serve().await;
    let llm = OpenAiCompatible::new(KEY, "gpt-4o-mini")
        .unwrap()
        .with_base_url(base)
        .with_timeout(Duration::from_millis(200));
    let err = llm.classify("slow down", &options()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Timeout {
                vendor: "openai",
                ..
            }
        ),
        "{err:?}"
    );
}
