//! The Deepgram adapter against a local WebSocket server that checks the
//! documented `/v1/listen` request and answers with documented messages.

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dialtone_crds::agent::ProviderKind;
use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType, Vendor};
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::build::stt_for;
use dialtone_providers::stt::{Deepgram, SpeechToText, SttConfig, SttEvent, SttInput, SttSession};
use dialtone_providers::{Credentials, ProviderError};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KEY: &str = "dg-test-key";

/// What the fake Deepgram saw.
#[derive(Debug, Default)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    audio_bytes: usize,
    keepalives: usize,
    closed_by_client: bool,
}

/// How the fake ends a stream.
#[derive(Clone, Copy)]
enum Ending {
    /// Last results, UtteranceEnd, Metadata, normal close (on CloseStream).
    Documented,
    /// Closes with 1011 after the first audio, as Deepgram does on errors.
    Abnormal,
}

fn results(transcript: &str, is_final: bool, speech_final: bool) -> Message {
    Message::text(
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.5,
            "start": 0.0,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {"alternatives": [{
                "transcript": transcript,
                "confidence": 0.93,
                "words": []
            }]},
            "metadata": {
                "request_id": "8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
                "model_info": {"name": "general-nova-3", "version": "2024-01-01", "arch": "nova-3"},
                "model_uuid": "1dbdfb4d-85b2-4659-9f0f-7a6d2b9e1c5d"
            },
            "from_finalize": false
        })
        .to_string(),
    )
}

async fn serve(ending: Ending) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = state.clone();
            tokio::spawn(async move {
                // The signature is tungstenite's handshake Callback.
                #[allow(clippy::result_large_err)]
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    if auth != Some(&format!("Token {KEY}")) {
                        let mut reject = ErrorResponse::new(Some(
                            json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                                   "request_id": "1e5ad3bc"})
                            .to_string(),
                        ));
                        *reject.status_mut() = StatusCode::UNAUTHORIZED;
                        return Err(reject);
                    }
                    let mut s = seen.lock().unwrap();
                    s.path = req.uri().path().to_owned();
                    s.query =
                        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                            .into_owned()
                            .collect();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
                    return;
                };
                let mut first_audio = true;
                while let Some(Ok(message)) = ws.next().await {
                    match message {
                        Message::Binary(audio) => {
                            seen.lock().unwrap().audio_bytes += audio.len();
                            if first_audio {
                                first_audio = false;
                                if let Ending::Abnormal = ending {
                                    let frame = CloseFrame {
                                        code: CloseCode::Error,
                                        reason: "NET-0001".into(),
                                    };
                                    let _ = ws.close(Some(frame)).await;
                                    return;
                                }
                                let started = json!({"type": "SpeechStarted", "channel": [0], "timestamp": 0.26});
                                ws.send(Message::text(started.to_string())).await.unwrap();
                                ws.send(results("hello", false, false)).await.unwrap();
                            }
                        }
                        Message::Text(text) => {
                            let kind: serde_json::Value =
                                serde_json::from_str(text.as_str()).unwrap();
                            match kind["type"].as_str() {
                                Some("KeepAlive") => seen.lock().unwrap().keepalives += 1,
                                Some("CloseStream") => {
                                    seen.lock().unwrap().closed_by_client = true;
                                    ws.send(results("hello world", true, false)).await.unwrap();
                                    let end = json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.32});
                                    ws.send(Message::text(end.to_string())).await.unwrap();
                                    let metadata = json!({
                                        "type": "Metadata",
                                        "transaction_key": "deprecated",
                                        "request_id": "8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
                                        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                        "created": "2024-08-29T22:37:55.202Z",
                                        "duration": 7.5,
                                        "channels": 1
                                    });
                                    ws.send(Message::text(metadata.to_string())).await.unwrap();
                                    let _ = ws.close(None).await;
                                    return;
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn config(base_url: &str) -> ProviderConfig {
    ProviderConfig {
        name: "deepgram".into(),
        kind: ProviderKind::Provider,
        type_: ProviderType::Stt,
        vendor: Vendor::Deepgram,
        settings: ProviderSettings {
            base_url: Some(base_url.into()),
            model: Some("nova-3".into()),
            ..ProviderSettings::default()
        },
        pricing: Pricing::default(),
        rate_limits: None,
    }
}

fn call_config() -> SttConfig {
    SttConfig {
        language: Some("en-AU".into()),
        ..SttConfig::default()
    }
}

async fn next(session: &mut SttSession) -> SttEvent {
    tokio::time::timeout(Duration::from_secs(2), session.events.recv())
        .await
        .expect("an event within 2 s")
        .expect("the session still open")
}

#[tokio::test]
async fn a_stream_yields_the_documented_events_and_bills_deepgrams_duration() {
    let (base, seen) = serve(Ending::Documented).await;
    let stt = stt_for(
        Some(&config(&base)),
        &Credentials::from_values("deepgram", [("apiKey", KEY)]),
    )
    .unwrap();
    let mut session = stt.open(&call_config()).await.unwrap();
    for _ in 0..10 {
        session
            .audio
            .send(SttInput::Audio(Bytes::from(vec![0xFF; 160])))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut session).await, SttEvent::SpeechStarted);
    assert_eq!(
        next(&mut session).await,
        SttEvent::Transcript {
            text: "hello".into(),
            confidence: 0.93,
            is_final: false,
            speech_final: false
        }
    );
    session.audio.send(SttInput::Finish).await.unwrap();
    assert_eq!(
        next(&mut session).await,
        SttEvent::Transcript {
            text: "hello world".into(),
            confidence: 0.93,
            is_final: true,
            speech_final: false
        }
    );
    // UtteranceEnd closes the open final.
    assert_eq!(
        next(&mut session).await,
        SttEvent::Transcript {
            text: String::new(),
            confidence: 0.0,
            is_final: true,
            speech_final: true
        }
    );
    assert_eq!(
        next(&mut session).await,
        SttEvent::Closed { audio_seconds: 7.5 }
    );
    assert_eq!(session.events.recv().await, None);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.path, "/v1/listen");
    let query: Vec<(&str, &str)> = seen
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for expected in [
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("model", "nova-3"),
        ("language", "en-AU"),
        ("interim_results", "true"),
        ("vad_events", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
    ] {
        assert!(query.contains(&expected), "{expected:?} not in {query:?}");
    }
    assert_eq!(seen.audio_bytes, 1_600);
    assert!(seen.closed_by_client);
}

#[tokio::test]
async fn keepalives_flow_while_no_audio_does() {
    let (base, seen) = serve(Ending::Documented).await;
    let stt = Deepgram::new(KEY)
        .with_base_url(&base)
        .with_keepalive(Duration::from_millis(100));
    let mut session = stt.open(&SttConfig::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    drop(session.audio);
    let mut last = None;
    while let Some(event) = session.events.recv().await {
        last = Some(event);
    }
    assert_eq!(last, Some(SttEvent::Closed { audio_seconds: 7.5 }));
    let seen = seen.lock().unwrap();
    assert!(seen.keepalives >= 2, "{seen:?}");
    assert!(seen.closed_by_client);
    // Neither the provider nor the call sets a language: none is sent.
    assert!(
        !seen.query.iter().any(|(k, _)| k == "language"),
        "{:?}",
        seen.query
    );
}

#[tokio::test]
async fn an_abnormal_close_is_an_error_then_closed_with_the_audio_sent() {
    let (base, _) = serve(Ending::Abnormal).await;
    let mut session = Deepgram::new(KEY)
        .with_base_url(&base)
        .open(&SttConfig::default())
        .await
        .unwrap();
    session
        .audio
        .send(SttInput::Audio(Bytes::from(vec![0xFF; 4_000])))
        .await
        .unwrap();
    match next(&mut session).await {
        SttEvent::Error(message) => {
            assert!(
                message.contains("1011") && message.contains("NET-0001"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&mut session).await,
        SttEvent::Closed { audio_seconds: 0.5 }
    );
}

#[tokio::test]
async fn a_rejected_key_fails_open_with_deepgrams_error() {
    let (base, _) = serve(Ending::Documented).await;
    let err = Deepgram::new("wrong-key")
        .with_base_url(&base)
        .open(&SttConfig::default())
        .await
        .unwrap_err();
    match &err {
        ProviderError::Unauthorized {
            vendor,
            status,
            code,
            message,
        } => {
            assert_eq!((*vendor, *status), ("deepgram", 401));
            assert_eq!(code.as_deref(), Some("INVALID_AUTH"));
            assert_eq!(message, "Invalid credentials.");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("wrong-key"));
}

/// `wss://` needs a TLS crypto provider at run time; a build that enabled
/// none (or two) would panic here instead of failing the handshake.
#[tokio::test]
async fn wss_reaches_the_tls_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            // Not TLS: answer garbage and hang up.
            let _ =
                tokio::io::AsyncWriteExt::write_all(&mut tcp, b"HTTP/1.1 400 Bad\r\n\r\n").await;
        }
    });
    let err = Deepgram::new(KEY)
        .with_base_url(format!("wss://{addr}"))
        .with_timeouts(Duration::from_secs(1), Duration::from_secs(1))
        .open(&SttConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Transport {
                vendor: "deepgram",
                ..
            }
        ),
        "{err:?}"
    );
}
