//! Deepgram live transcription over a WebSocket (`/v1/listen`).
//!
//! Protocol: binary frames carry audio; text frames `{"type":"KeepAlive"}`
//! (at least every 10 s without audio, or Deepgram closes the stream) and
//! `{"type":"CloseStream"}` (flush, send the last results and a `Metadata`
//! summary, then close). Deepgram answers `Results`, `SpeechStarted`
//! (with `vad_events=true`), `UtteranceEnd` (with `utterance_end_ms`) and
//! `Metadata` messages.

use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::{CHANNEL_CAPACITY, SpeechToText, SttConfig, SttEvent, SttInput, SttSession};
use crate::audio;
use crate::error::ProviderError;
use crate::http;

const VENDOR: &str = "deepgram";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one frame may take to go out.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Deepgram streaming speech to text. Build it with [`Deepgram::new`] and
/// the `with_*` methods.
#[derive(Clone)]
pub struct Deepgram {
    base_url: String,
    api_key: String,
    model: String,
    language: Option<String>,
    connect_timeout: Duration,
    keepalive_every: Duration,
    close_timeout: Duration,
}

impl Deepgram {
    /// Deepgram's public API.
    pub const DEFAULT_BASE_URL: &'static str = "wss://api.deepgram.com";
    /// The model used when the provider names none.
    pub const DEFAULT_MODEL: &'static str = "nova-3";

    /// An adapter for Deepgram's public API with the default model.
    pub fn new(api_key: impl Into<String>) -> Self {
        Deepgram {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            model: Self::DEFAULT_MODEL.to_owned(),
            language: None,
            connect_timeout: Duration::from_secs(5),
            // Half of Deepgram's 10 s idle limit.
            keepalive_every: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
        }
    }

    /// Another API root; `http(s)://` is taken as `ws(s)://`.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Another model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// A language for every session, over the call's own.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// How often to send `KeepAlive` while no audio flows.
    pub fn with_keepalive(mut self, every: Duration) -> Self {
        self.keepalive_every = every;
        self
    }

    /// How long connecting may take, and how long to wait for the last
    /// results after `CloseStream`.
    pub fn with_timeouts(mut self, connect: Duration, close: Duration) -> Self {
        self.connect_timeout = connect;
        self.close_timeout = close;
        self
    }

    /// The `/v1/listen` URL for a session.
    fn listen_url(&self, cfg: &SttConfig) -> Result<Url, ProviderError> {
        let base = match self.base_url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some(("http", rest)) => format!("ws://{rest}"),
            _ => self.base_url.clone(),
        };
        let mut url = http::endpoint(VENDOR, &base, &["v1", "listen"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("encoding", "mulaw")
                .append_pair("sample_rate", &audio::SAMPLE_RATE.to_string())
                .append_pair("channels", "1")
                .append_pair("model", &self.model);
            if let Some(language) = self.language.as_ref().or(cfg.language.as_ref()) {
                q.append_pair("language", language);
            }
            q.append_pair("interim_results", "true")
                .append_pair("vad_events", "true")
                .append_pair("endpointing", &cfg.endpointing_ms.to_string());
            if let Some(ms) = cfg.utterance_end_ms {
                q.append_pair("utterance_end_ms", &ms.to_string());
            }
        }
        Ok(url)
    }

    async fn connect(&self, cfg: &SttConfig) -> Result<Socket, ProviderError> {
        let url = self.listen_url(cfg)?;
        let mut request =
            url.as_str()
                .into_client_request()
                .map_err(|e| ProviderError::Config {
                    vendor: VENDOR,
                    message: format!("cannot request {url}: {e}"),
                })?;
        let mut auth = HeaderValue::from_str(&format!("Token {}", self.api_key)).map_err(|_| {
            ProviderError::Config {
                vendor: VENDOR,
                message: "the API key contains characters not allowed in a header".to_owned(),
            }
        })?;
        auth.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, auth);
        let secrets = [self.api_key.as_str()];
        http::within(VENDOR, "connecting", self.connect_timeout, async {
            tokio_tungstenite::connect_async(request)
                .await
                .map(|(socket, _)| socket)
                .map_err(|e| handshake_error(e, &secrets))
        })
        .await
    }
}

fn handshake_error(e: tungstenite::Error, secrets: &[&str]) -> ProviderError {
    match e {
        tungstenite::Error::Http(response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs);
            http::status_error(
                VENDOR,
                response.status().as_u16(),
                retry_after,
                response.body().as_deref().unwrap_or_default(),
                secrets,
            )
        }
        other => ProviderError::Transport {
            vendor: VENDOR,
            message: http::redact(&other.to_string(), secrets),
        },
    }
}

#[async_trait]
impl SpeechToText for Deepgram {
    async fn open(&self, cfg: &SttConfig) -> Result<SttSession, ProviderError> {
        let socket = self.connect(cfg).await?;
        let (audio_tx, audio_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(run(
            socket,
            audio_rx,
            events_tx,
            self.keepalive_every,
            self.close_timeout,
        ));
        Ok(SttSession {
            audio: audio_tx,
            events: events_rx,
        })
    }
}

/// Pumps audio out and results in until the stream closes, then reports
/// `Closed`.
async fn run(
    mut socket: Socket,
    mut audio_rx: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttEvent>,
    keepalive_every: Duration,
    close_timeout: Duration,
) {
    let mut sent_bytes = 0usize;
    let mut turn = Turn::default();
    let mut keepalive = tokio::time::interval_at(Instant::now() + keepalive_every, keepalive_every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut finishing = false;
    // Armed by CloseStream; until then the branch waiting on it is off.
    let deadline = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            input = audio_rx.recv(), if !finishing => {
                let outcome = match input {
                    Some(SttInput::Audio(chunk)) => {
                        sent_bytes += chunk.len();
                        keepalive.reset();
                        send(&mut socket, Message::Binary(chunk)).await
                    }
                    // Deepgram's general model needs no hint of what comes.
                    Some(SttInput::Expect(_)) => Ok(()),
                    Some(SttInput::Finish) | None => {
                        finishing = true;
                        deadline.as_mut().reset(Instant::now() + close_timeout);
                        send(&mut socket, Message::text(r#"{"type":"CloseStream"}"#)).await
                    }
                };
                if let Err(e) = outcome {
                    let _ = events.send(SttEvent::Error(format!("sending to deepgram failed: {e}"))).await;
                    break;
                }
            }
            _ = keepalive.tick(), if !finishing => {
                if let Err(e) = send(&mut socket, Message::text(r#"{"type":"KeepAlive"}"#)).await {
                    let _ = events.send(SttEvent::Error(format!("sending to deepgram failed: {e}"))).await;
                    break;
                }
            }
            () = &mut deadline, if finishing => {
                tracing::warn!(vendor = VENDOR, "no close after CloseStream within {close_timeout:?}");
                break;
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(event) = turn.handle(text.as_str())
                        && events.send(event).await.is_err()
                    {
                        // Nobody listens any more.
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(frame) = frame.filter(|f| f.code != CloseCode::Normal) {
                        let _ = events
                            .send(SttEvent::Error(format!(
                                "deepgram closed the stream ({}): {}",
                                u16::from(frame.code),
                                frame.reason
                            )))
                            .await;
                    }
                    break;
                }
                // Pings are answered by tungstenite; nothing else is sent.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = events.send(SttEvent::Error(format!("deepgram connection failed: {e}"))).await;
                    break;
                }
                None => break,
            },
        }
    }
    // Best effort: the stream is over either way.
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    let audio_seconds = turn
        .billed_seconds
        .unwrap_or_else(|| audio::ulaw_seconds(sent_bytes));
    let _ = events.send(SttEvent::Closed { audio_seconds }).await;
}

/// Sends one frame; a socket that cannot take it within [`SEND_TIMEOUT`]
/// is as good as broken.
async fn send(socket: &mut Socket, message: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no progress within {SEND_TIMEOUT:?}")),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Incoming {
    Results(Results),
    SpeechStarted {},
    UtteranceEnd {},
    Metadata {
        #[serde(default)]
        duration: Option<f64>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    channel: Channel,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    confidence: f32,
}

/// What the session remembers between messages.
#[derive(Default)]
struct Turn {
    /// A final transcript arrived that no `speech_final` has closed yet.
    open_final: bool,
    /// The audio duration Deepgram reported in `Metadata`.
    billed_seconds: Option<f64>,
}

impl Turn {
    /// The event for one Deepgram message, if it makes one.
    fn handle(&mut self, text: &str) -> Option<SttEvent> {
        let message = match serde_json::from_str::<Incoming>(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(vendor = VENDOR, error = %e, "unreadable message ignored");
                return None;
            }
        };
        match message {
            Incoming::Results(results) => {
                let best = results.channel.alternatives.into_iter().next()?;
                let text = best.transcript.trim().to_owned();
                if text.is_empty() {
                    // Silence: only an end of speech after words matters.
                    if !(results.is_final && results.speech_final && self.open_final) {
                        return None;
                    }
                }
                if results.is_final {
                    self.open_final = !results.speech_final;
                }
                Some(SttEvent::Transcript {
                    text,
                    confidence: best.confidence,
                    is_final: results.is_final,
                    speech_final: results.speech_final,
                })
            }
            Incoming::SpeechStarted {} => Some(SttEvent::SpeechStarted),
            // Deepgram's advice: an UtteranceEnd without a speech_final
            // before it ends the utterance.
            Incoming::UtteranceEnd {} if self.open_final => {
                self.open_final = false;
                Some(SttEvent::Transcript {
                    text: String::new(),
                    confidence: 0.0,
                    is_final: true,
                    speech_final: true,
                })
            }
            Incoming::UtteranceEnd {} => None,
            Incoming::Metadata { duration } => {
                self.billed_seconds = duration;
                None
            }
            Incoming::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(transcript: &str, is_final: bool, speech_final: bool) -> String {
        serde_json::json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.2,
            "start": 0.0,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.98,
                "words": [{"word": "hello", "start": 0.1, "end": 0.5, "confidence": 0.98}]}]},
            "metadata": {"request_id": "r", "model_info": {"name": "general-nova-3", "version": "x", "arch": "nova-3"}, "model_uuid": "u"},
            "from_finalize": false
        })
        .to_string()
    }

    fn transcript(text: &str, is_final: bool, speech_final: bool) -> Option<SttEvent> {
        Some(SttEvent::Transcript {
            text: text.into(),
            confidence: if text.is_empty() { 0.0 } else { 0.98 },
            is_final,
            speech_final,
        })
    }

    #[test]
    fn documented_messages_become_events() {
        let mut turn = Turn::default();
        assert_eq!(
            turn.handle(r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.5}"#),
            Some(SttEvent::SpeechStarted)
        );
        assert_eq!(
            turn.handle(&results("hello", false, false)),
            transcript("hello", false, false)
        );
        assert_eq!(
            turn.handle(&results("hello there", true, true)),
            transcript("hello there", true, true)
        );
        // Nothing open, so UtteranceEnd adds nothing.
        assert_eq!(
            turn.handle(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.4}"#),
            None
        );
        assert_eq!(
            turn.handle(r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"8c8e","sha256":"e3b0","created":"2024-08-29T22:37:55.202Z","duration":12.5,"channels":1}"#),
            None
        );
        assert_eq!(turn.billed_seconds, Some(12.5));
    }

    #[test]
    fn utterance_end_closes_a_final_without_speech_final() {
        let mut turn = Turn::default();
        assert_eq!(
            turn.handle(&results("my number is", true, false)),
            transcript("my number is", true, false)
        );
        // Silence after words, not yet an end: nothing.
        assert_eq!(turn.handle(&results("", false, false)), None);
        assert_eq!(
            turn.handle(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}"#),
            transcript("", true, true)
        );
        // Once only.
        assert_eq!(
            turn.handle(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}"#),
            None
        );
        // An empty speech_final after words ends the turn, alone it is noise.
        turn.handle(&results("five", true, false));
        assert_eq!(
            turn.handle(&results("", true, true)),
            Some(SttEvent::Transcript {
                text: String::new(),
                confidence: 0.98,
                is_final: true,
                speech_final: true
            })
        );
        assert_eq!(turn.handle(&results("", true, true)), None);
    }

    #[test]
    fn unknown_and_unreadable_messages_are_ignored() {
        let mut turn = Turn::default();
        assert_eq!(turn.handle(r#"{"type":"Warning","description":"x"}"#), None);
        assert_eq!(turn.handle("not json"), None);
        assert_eq!(
            turn.handle(r#"{"type":"Results","channel":{"alternatives":[]}}"#),
            None
        );
    }

    #[test]
    fn listen_url_carries_the_documented_parameters() {
        let dg = Deepgram::new("k").with_base_url("https://dg.example/proxy");
        let cfg = SttConfig {
            language: Some("en-AU".into()),
            endpointing_ms: 250,
            utterance_end_ms: Some(1_000),
        };
        assert_eq!(
            dg.listen_url(&cfg).unwrap().as_str(),
            "wss://dg.example/proxy/v1/listen?encoding=mulaw&sample_rate=8000&channels=1\
             &model=nova-3&language=en-AU&interim_results=true&vad_events=true\
             &endpointing=250&utterance_end_ms=1000"
        );
        let dg = Deepgram::new("k")
            .with_model("nova-2-phonecall")
            .with_language("en-US");
        let url = dg
            .listen_url(&SttConfig {
                utterance_end_ms: None,
                ..cfg
            })
            .unwrap();
        assert_eq!(url.host_str(), Some("api.deepgram.com"));
        assert_eq!(url.scheme(), "wss");
        let query = url.query().unwrap();
        assert!(
            query.contains("model=nova-2-phonecall&language=en-US&"),
            "{query}"
        );
        assert!(!query.contains("utterance_end_ms"), "{query}");
    }
}
