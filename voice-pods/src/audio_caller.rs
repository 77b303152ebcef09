//! A caller that talks in audio: it rings a voice pod through the signed
//! Twilio voice webhook, opens the Media Streams socket it is given and, as
//! Twilio does, streams 20 ms µ-law frames in real time for the whole call
//! (silence between its lines). Each line of its script is spoken with
//! espeak-ng (the builtin TTS, in the caller's own voice and speed) or
//! keyed as DTMF, once the agent has finished speaking. For the audio
//! tests, the demo and `dialtone loadtest --audio`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use dialtone_providers::tts::{self, TextToSpeech};
use dialtone_providers::twilio::signature;

/// One Twilio media frame: 20 ms at 8 kHz.
const FRAME: usize = 160;
/// µ-law silence.
const SILENCE: u8 = 0xFF;
/// The agent has finished its turn once its last phrase has played and
/// nothing more came for this long.
const AGENT_QUIET: Duration = Duration::from_millis(800);
/// Longest the caller waits for the agent to speak.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How far into the agent's audio an interruption starts.
const INTERRUPT_AFTER: Duration = Duration::from_millis(300);
/// Agent turns the caller stays silent through once its script is over.
const UNSCRIPTED_TURNS: usize = 5;
/// Between key presses.
const KEY_GAP: Duration = Duration::from_millis(150);

/// One line of the caller's script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Say this.
    Say(String),
    /// Say this over the agent's next turn, starting 300 ms into its
    /// audio (barge-in).
    Interrupt(String),
    /// Key these digits (and `#`, `*`).
    Keys(String),
}

/// Who calls whom, how they sound and what they say.
#[derive(Clone, Debug)]
pub struct AudioCall {
    /// The pod, `http://host:port`.
    pub pod: String,
    /// The Twilio auth token the pod checks webhooks with.
    pub auth_token: String,
    /// The caller's number.
    pub from: String,
    /// The number called.
    pub to: String,
    /// Twilio's id of the call.
    pub call_sid: String,
    /// The espeak-ng voice and words per minute of the caller.
    pub voice: (String, u32),
    /// What the caller says, a line per agent turn.
    pub script: Vec<Line>,
}

/// One exchange: what the agent played, then what the caller answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// Seconds of agent audio received.
    pub agent_seconds: f64,
    /// From the end of the caller's previous line (its last frame of
    /// speech or its last key) to the agent's first audio: what the caller
    /// waits, the endpointer's silence included. `None` for the greeting.
    pub reply_ms: Option<u64>,
    /// From the first voiced frame of an interruption to the agent's
    /// `clear`, when the caller talked over this turn.
    pub barge_in_ms: Option<u64>,
    /// The caller's line (none after the agent's last turn).
    pub caller: Option<Line>,
}

/// How the call went, from the caller's side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AudioReport {
    /// Each agent turn and the answer to it.
    pub exchanges: Vec<Exchange>,
    /// `clear` messages received (the agent stopped talking over us).
    pub clears: usize,
    /// Whether the agent closed the stream (rather than the caller).
    pub agent_hung_up: bool,
}

/// Why a call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum AudioCallError {
    /// The voice webhook failed.
    #[error("voice webhook: {0}")]
    Webhook(String),
    /// The answer had no `<Stream url>`.
    #[error("the pod answered without a media stream: {0}")]
    NoStream(String),
    /// The media socket failed.
    #[error("media stream: {0}")]
    Socket(String),
    /// The caller's voice could not be rendered.
    #[error("text to speech: {0}")]
    Speech(String),
    /// The agent said nothing for too long.
    #[error("the agent was silent for {after:?}, after {exchanges:?}")]
    AgentSilent {
        /// How long the caller waited.
        after: Duration,
        /// The exchanges before.
        exchanges: Vec<Exchange>,
    },
}

/// The `<Stream url="…">` of a TwiML answer.
fn stream_url(twiml: &str) -> Option<String> {
    let start = twiml.find("<Stream url=\"")? + "<Stream url=\"".len();
    let len = twiml[start..].find('"')?;
    Some(twiml[start..start + len].replace("&amp;", "&"))
}

/// Whether a µ-law frame has voice in it (above -45 dBFS, the endpointer's
/// floor).
fn audible(frame: &[u8]) -> bool {
    let pcm = dialtone_providers::audio::decode(frame);
    let energy: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / pcm.len().max(1) as f64).sqrt();
    rms > f64::from(i16::MAX) * 10f64.powf(-45.0 / 20.0)
}

/// What the pacer sends.
enum Outgoing {
    Audio(Vec<u8>),
    Json(Value),
}

/// Places `call` and plays its script to the end.
pub async fn place(call: &AudioCall) -> Result<AudioReport, AudioCallError> {
    let webhook = format!("{}/twilio/voice", call.pod.trim_end_matches('/'));
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACaudio"),
        ("CallSid", call.call_sid.as_str()),
        ("From", call.from.as_str()),
        ("To", call.to.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let body =
        serde_urlencoded::to_string(&params).map_err(|e| AudioCallError::Webhook(e.to_string()))?;
    let response = reqwest::Client::new()
        .post(&webhook)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "X-Twilio-Signature",
            signature(&call.auth_token, &webhook, &params),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| AudioCallError::Webhook(e.to_string()))?;
    let status = response.status();
    let twiml = response
        .text()
        .await
        .map_err(|e| AudioCallError::Webhook(e.to_string()))?;
    if !status.is_success() {
        return Err(AudioCallError::Webhook(format!("{status}: {twiml}")));
    }
    let url = stream_url(&twiml).ok_or_else(|| AudioCallError::NoStream(twiml.clone()))?;
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| AudioCallError::Socket(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    let stream_sid = format!("MZ{}", call.call_sid);

    // The pacer owns the sending half: a frame every 20 ms, the caller's
    // speech when there is some, else silence; JSON (marks, keys) between.
    let (outgoing, mut queue) = mpsc::unbounded_channel::<Outgoing>();
    let sid = stream_sid.clone();
    // When the caller last finished a line, for the agent's reply time.
    let finished: Arc<Mutex<Option<Instant>>> = Arc::default();
    let spoke = Arc::clone(&finished);
    // When the caller's current line first had voice in it (barge-in).
    let started_voice: Arc<Mutex<Option<Instant>>> = Arc::default();
    let voiced = Arc::clone(&started_voice);
    let pacer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut speech: std::collections::VecDeque<u8> = Default::default();
        let mut last_voiced = None;
        let mut chunk = 0u64;
        loop {
            tick.tick().await;
            loop {
                match queue.try_recv() {
                    Ok(Outgoing::Audio(audio)) => speech.extend(audio),
                    Ok(Outgoing::Json(value)) => {
                        if sink
                            .send(Message::Text(value.to_string().into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        let _ = sink.close().await;
                        return;
                    }
                }
            }
            let speaking = !speech.is_empty();
            let frame: Vec<u8> = (0..FRAME)
                .map(|_| speech.pop_front().unwrap_or(SILENCE))
                .collect();
            // The end of speech is the last frame with voice in it: TTS
            // audio ends in silence of its own.
            if speaking && audible(&frame) {
                if last_voiced.is_none() {
                    *voiced.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                }
                last_voiced = Some(Instant::now());
            }
            if speaking && speech.is_empty() {
                *spoke.lock().unwrap_or_else(PoisonError::into_inner) = last_voiced.take();
            }
            chunk += 1;
            let media = json!({"event": "media", "streamSid": sid, "media": {
                "track": "inbound", "chunk": chunk.to_string(),
                "timestamp": (chunk * 20).to_string(), "payload": STANDARD.encode(&frame)}});
            if sink
                .send(Message::Text(media.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let send = |value: Value| {
        // The pacer ends only when the socket does; reading finds out.
        let _ = outgoing.send(Outgoing::Json(value));
    };
    send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
    send(
        json!({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "accountSid": "ACaudio", "streamSid": stream_sid, "callSid": call.call_sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    );

    let voice = tts::Builtin::new(Some("en-US")).with_voice(&call.voice.0, call.voice.1);
    let render = |text: String| {
        let voice = &voice;
        async move {
            let mut rx = voice
                .synthesize(&text)
                .await
                .map_err(|e| AudioCallError::Speech(e.to_string()))?;
            let mut audio = Vec::new();
            while let Some(part) = rx.recv().await {
                audio.extend_from_slice(&part.map_err(|e| AudioCallError::Speech(e.to_string()))?);
            }
            Ok::<_, AudioCallError>(audio)
        }
    };
    let speak = |audio: Vec<u8>| {
        let _ = outgoing.send(Outgoing::Audio(audio));
    };
    let mut report = AudioReport::default();
    let mut script = call.script.iter().peekable();
    let mut unscripted = 0;
    loop {
        // An interruption is spoken over the turn about to play.
        let interruption = match script.peek() {
            Some(Line::Interrupt(text)) => {
                Some((script.next().cloned(), render(text.clone()).await?))
            }
            _ => None,
        };
        let (interrupt_line, interrupt_audio) = interruption.unzip();
        let turn = agent_turn(&mut stream, &send, &speak, &mut report, interrupt_audio).await?;
        let open = turn.open;
        let caller_finished = finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let voice_started = started_voice
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let reply_ms = caller_finished
            .zip(turn.first_audio)
            .map(|(end, first)| first.saturating_duration_since(end).as_millis() as u64);
        let barge_in_ms = voice_started
            .zip(turn.cleared)
            .filter(|_| interrupt_line.is_some())
            .map(|(start, clear)| clear.saturating_duration_since(start).as_millis() as u64);
        let line = match interrupt_line.flatten() {
            // The interrupted turn's reply came in the same turn.
            Some(line) => Some(line),
            None if open => script.next().cloned(),
            None => None,
        };
        report.exchanges.push(Exchange {
            agent_seconds: turn.frames as f64 * 0.02,
            reply_ms,
            barge_in_ms,
            caller: line.clone(),
        });
        match line {
            None if !open => {
                report.agent_hung_up = true;
                break;
            }
            // Out of lines: stay on the line in silence while the agent
            // reprompts and closes, as a caller who said nothing would.
            None if unscripted < UNSCRIPTED_TURNS => unscripted += 1,
            None => break,
            Some(Line::Interrupt(_)) => {}
            Some(Line::Say(text)) => speak(render(text).await?),
            Some(Line::Keys(digits)) => {
                for (i, digit) in digits.chars().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(KEY_GAP).await;
                    }
                    send(json!({"event": "dtmf", "streamSid": stream_sid,
                        "dtmf": {"track": "inbound_track", "digit": digit.to_string()}}));
                }
                *finished.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            }
        }
        if !open {
            report.agent_hung_up = true;
            break;
        }
    }
    if !report.agent_hung_up {
        send(json!({"event": "stop", "streamSid": stream_sid,
            "stop": {"accountSid": "ACaudio", "callSid": call.call_sid}}));
    }
    drop(outgoing);
    let _ = pacer.await;
    Ok(report)
}

/// What the caller heard of one agent turn.
struct AgentTurn {
    frames: usize,
    first_audio: Option<Instant>,
    /// When the agent's audio was cleared (it stopped for the caller).
    cleared: Option<Instant>,
    /// `false`: the stream closed.
    open: bool,
}

/// Listens to one agent turn as Twilio plays it: the agent's audio plays
/// out in real time and each mark is echoed once the audio before it has
/// played (at once after a `clear`, which drops what was not played). The
/// turn ends when the last mark has been echoed and nothing more came for
/// [`AGENT_QUIET`]. `interrupt` is spoken [`INTERRUPT_AFTER`] into the
/// agent's audio.
async fn agent_turn<S>(
    stream: &mut S,
    send: &impl Fn(Value),
    speak: &impl Fn(Vec<u8>),
    report: &mut AudioReport,
    mut interrupt: Option<Vec<u8>>,
) -> Result<AgentTurn, AudioCallError>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut turn = AgentTurn {
        frames: 0,
        first_audio: None,
        cleared: None,
        open: true,
    };
    let mut played_until = Instant::now();
    let mut marks: std::collections::VecDeque<(Instant, Value)> = Default::default();
    let mut heard_at = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let mut interrupt_at: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(3_600);
    loop {
        let mark_due = marks.front().map_or_else(far, |m| m.0);
        let quiet_at = quiet_since.map_or_else(far, |q| q + AGENT_QUIET);
        let silent_at = heard_at + AGENT_TIMEOUT;
        let message = tokio::select! {
            message = stream.next() => message,
            () = tokio::time::sleep_until(mark_due) => {
                if let Some((_, mark)) = marks.pop_front() {
                    send(mark);
                }
                if marks.is_empty() {
                    quiet_since = Some(Instant::now());
                }
                continue;
            }
            () = tokio::time::sleep_until(interrupt_at.unwrap_or_else(far)) => {
                interrupt_at = None;
                if let Some(audio) = interrupt.take() {
                    speak(audio);
                }
                continue;
            }
            () = tokio::time::sleep_until(quiet_at) => return Ok(turn),
            () = tokio::time::sleep_until(silent_at) => {
                return Err(AudioCallError::AgentSilent {
                    after: AGENT_TIMEOUT,
                    exchanges: report.exchanges.clone(),
                });
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                turn.open = false;
                return Ok(turn);
            }
            Some(Ok(_)) => continue,
        };
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        heard_at = Instant::now();
        match value["event"].as_str() {
            Some("media") => {
                turn.frames += 1;
                let now = Instant::now();
                if turn.first_audio.is_none() {
                    turn.first_audio = Some(now);
                    if interrupt.is_some() {
                        interrupt_at = Some(now + INTERRUPT_AFTER);
                    }
                }
                played_until = played_until.max(now) + Duration::from_millis(20);
                quiet_since = None;
            }
            Some("mark") => {
                let echo = json!({"event": "mark", "streamSid": value["streamSid"], "mark": value["mark"]});
                marks.push_back((played_until.max(Instant::now()), echo));
            }
            Some("clear") => {
                report.clears += 1;
                turn.cleared.get_or_insert_with(Instant::now);
                played_until = Instant::now();
                for (_, mark) in marks.drain(..) {
                    send(mark);
                }
                quiet_since = Some(Instant::now());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_not_audible_and_a_tone_is() {
        assert!(!audible(&[SILENCE; FRAME]));
        let tone: Vec<i16> = (0..FRAME)
            .map(|i| (8_000.0 * (i as f64 * 0.3).sin()) as i16)
            .collect();
        assert!(audible(&dialtone_providers::audio::encode(&tone)));
    }

    #[test]
    fn the_stream_url_is_read_from_twiml() {
        let twiml = r#"<Response><Connect><Stream url="ws://h/twilio/media/a.b?x=1&amp;y=2"/></Connect></Response>"#;
        assert_eq!(
            stream_url(twiml).as_deref(),
            Some("ws://h/twilio/media/a.b?x=1&y=2")
        );
        assert_eq!(stream_url("<Response/>"), None);
    }
}
