//! The ElevenLabs adapter against a local server that checks the documented
//! streaming request and streams audio back in pieces.

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dialtone_crds::agent::ProviderKind;
use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType, Vendor};
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::build::tts_for;
use dialtone_providers::tts::{ElevenLabs, TextToSpeech};
use dialtone_providers::{Credentials, ProviderError};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const KEY: &str = "xi-test-key";
const VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";

/// The audio the fake vendor "synthesises": three pieces.
fn pieces() -> Vec<Vec<u8>> {
    vec![vec![0xFF; 800], vec![0x7E; 400], vec![0x10; 123]]
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

/// The query parameters and JSON body of one request.
type Request = (HashMap<String, String>, Value);

async fn stream(
    State(seen): State<Seen>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("xi-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}),
            ),
        )
            .into_response();
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    seen.0.lock().unwrap().push((query.clone(), json.clone()));
    let problem = if voice_id != VOICE {
        Some(format!("unknown voice {voice_id}"))
    } else if query.get("output_format").map(String::as_str) != Some("ulaw_8000") {
        Some(format!("output_format is {:?}", query.get("output_format")))
    } else if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
    {
        Some("content-type is not JSON".to_owned())
    } else if !json["text"].is_string() || !json["model_id"].is_string() {
        Some(format!("body lacks text or model_id: {json}"))
    } else {
        None
    };
    if let Some(problem) = problem {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": {"status": "invalid_request", "message": problem}})),
        )
            .into_response();
    }
    match json["text"].as_str().unwrap_or_default() {
        t if t.contains("busy") => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"detail": {"status": "too_many_concurrent_requests",
                "message": "Too many concurrent requests."}})),
        )
            .into_response(),
        t => {
            // A stall after the first piece when asked to.
            let stall = t.contains("stall");
            let chunks = futures::stream::iter(pieces().into_iter().enumerate()).then(
                move |(i, piece)| async move {
                    let pause = if stall && i == 1 { 2_000 } else { 20 };
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    Ok::<_, std::io::Error>(Bytes::from(piece))
                },
            );
            ([("content-type", "audio/basic")], Body::from_stream(chunks)).into_response()
        }
    }
}

async fn serve() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/text-to-speech/{voice_id}/stream", post(stream))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn config(base_url: &str) -> ProviderConfig {
    ProviderConfig {
        name: "voices".into(),
        kind: ProviderKind::ClusterProvider,
        type_: ProviderType::Tts,
        vendor: Vendor::Elevenlabs,
        settings: ProviderSettings {
            base_url: Some(base_url.into()),
            voice_id: Some(VOICE.into()),
            language: Some("en-AU".into()),
            ..ProviderSettings::default()
        },
        pricing: Pricing::default(),
        rate_limits: None,
    }
}

async fn drain(
    mut rx: mpsc::Receiver<Result<Bytes, ProviderError>>,
) -> Vec<Result<Bytes, ProviderError>> {
    let mut items = Vec::new();
    while let Some(item) = rx.recv().await {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn streams_the_audio_in_order_from_the_documented_request() {
    let (base, seen) = serve().await;
    let tts = tts_for(
        Some(&config(&base)),
        &Credentials::from_values("voices", [("apiKey", KEY)]),
    )
    .unwrap();
    let items = drain(
        tts.synthesize("G'day, you've reached Rapid Plumbing.")
            .await
            .unwrap(),
    )
    .await;
    let audio: Vec<u8> = items
        .into_iter()
        .flat_map(|item| item.unwrap().to_vec())
        .collect();
    assert_eq!(audio, pieces().concat());
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (query, body) = &seen[0];
    assert_eq!(
        query.get("output_format").map(String::as_str),
        Some("ulaw_8000")
    );
    assert_eq!(
        body,
        &json!({
            "text": "G'day, you've reached Rapid Plumbing.",
            "model_id": "eleven_flash_v2_5",
            "language_code": "en"
        })
    );
}

#[tokio::test]
async fn the_first_piece_arrives_before_the_stream_ends() {
    let (base, _) = serve().await;
    let tts = ElevenLabs::new(KEY, VOICE)
        .unwrap()
        .with_base_url(&base)
        .with_model("eleven_turbo_v2_5");
    let mut rx = tts.synthesize("hello").await.unwrap();
    let first = rx.recv().await.unwrap().unwrap();
    // The server sends its first piece alone and pauses before the next.
    assert_eq!(first.to_vec(), pieces()[0]);
    assert!(drain(rx).await.into_iter().all(|item| item.is_ok()));
}

#[tokio::test]
async fn a_stalled_stream_ends_with_a_timeout() {
    let (base, _) = serve().await;
    let tts = ElevenLabs::new(KEY, VOICE)
        .unwrap()
        .with_base_url(&base)
        .with_timeouts(Duration::from_secs(1), Duration::from_millis(200));
    let items = drain(tts.synthesize("please stall").await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().to_vec(), pieces()[0]);
    assert!(
        matches!(
            items[1],
            Err(ProviderError::Timeout {
                vendor: "elevenlabs",
                during: "streaming audio",
                ..
            })
        ),
        "{:?}",
        items[1]
    );
}

#[tokio::test]
async fn vendor_errors_are_typed() {
    let (base, _) = serve().await;
    let wrong = ElevenLabs::new("not-the-key", VOICE)
        .unwrap()
        .with_base_url(&base);
    match wrong.synthesize("hello").await {
        Err(ProviderError::Unauthorized { code, message, .. }) => {
            assert_eq!(code.as_deref(), Some("invalid_api_key"));
            assert_eq!(message, "Invalid API key");
        }
        other => panic!("{other:?}"),
    }
    let right = ElevenLabs::new(KEY, VOICE).unwrap().with_base_url(&base);
    match right.synthesize("the line is busy").await {
        Err(ProviderError::RateLimited { code, .. }) => {
            assert_eq!(code.as_deref(), Some("too_many_concurrent_requests"));
        }
        other => panic!("{other:?}"),
    }
    let unknown_voice = ElevenLabs::new(KEY, "nobody").unwrap().with_base_url(&base);
    match unknown_voice.synthesize("hello").await {
        Err(ProviderError::Rejected {
            status: 422,
            message,
            ..
        }) => {
            assert_eq!(message, "unknown voice nobody");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn empty_text_is_not_sent() {
    let (base, seen) = serve().await;
    let tts = ElevenLabs::new(KEY, VOICE).unwrap().with_base_url(&base);
    assert!(drain(tts.synthesize("  ").await.unwrap()).await.is_empty());
    assert!(seen.0.lock().unwrap().is_empty());
}
