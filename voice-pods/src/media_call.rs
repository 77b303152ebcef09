//! `/twilio/media`: a telephone call over Twilio Media Streams. Caller audio
//! goes to speech to text, final transcripts and key presses to the call's
//! [`CallSession`]; the agent's phrases go through text to speech and back
//! as 20 ms µ-law frames, each phrase followed by a mark so we know when
//! playback ends (for barge-in and for the silence timer).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use dialtone_crds::objective::Primitive;
use dialtone_engine::{Engine, Input, Output};
use dialtone_providers::ProviderError;
use dialtone_providers::cost::Usage;
use dialtone_providers::stt::{Expectation, SttConfig, SttEvent, SttInput, SttSession};
use dialtone_spine::event::{Channel, CloseReason, Direction};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::drain::{CallGuard, Drain};
use crate::media::{Framer, Inbound, Mark, Outbound, Start, media_message};
use crate::pod::{Pod, Silence};
use crate::session::{CallMeta, CallSession, Pinned};
use crate::token::StreamClaims;
use crate::vendors::{AudioVendors, CallVendors, accrue};

/// How long Twilio may take from opening the socket to `start`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between key presses that ends a multi-digit entry without `#`.
const DTMF_GAP: Duration = Duration::from_secs(3);
/// Longest wait for the closing phrase to play out before the stream ends.
const CLOSING_LIMIT: Duration = Duration::from_secs(30);
/// Longest wait for speech to text to report the audio it billed.
const STT_CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// Whether one key answers what the engine waits for.
fn single_key(expect: Primitive) -> bool {
    matches!(expect, Primitive::Choice | Primitive::YesNo)
}

/// Waits forever when there is no receiver, so a `select!` branch can be
/// idle.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The socket went away.
struct Gone;

/// What happens to the agent's speech.
#[derive(Default)]
struct Speaker {
    queue: VecDeque<String>,
    current: Option<mpsc::Receiver<Result<Bytes, ProviderError>>>,
    framer: Framer,
    outstanding: VecDeque<String>,
    marks: u64,
}

impl Speaker {
    fn playing(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty() || !self.outstanding.is_empty()
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.current = None;
        self.framer.clear();
        self.outstanding.clear();
    }

    /// Twilio echoes marks in the order they were sent; a mark echoed
    /// after a `clear` is no longer outstanding and is ignored.
    fn played(&mut self, name: &str) {
        if let Some(i) = self.outstanding.iter().position(|m| m == name) {
            self.outstanding.drain(..=i);
        }
    }
}

/// One Media Streams call in progress.
struct Line<'v> {
    socket: WebSocket,
    stream_sid: String,
    audio: &'v AudioVendors,
    text: &'v CallVendors,
    speaker: Speaker,
    stt_audio: mpsc::Sender<SttInput>,
    stt_events: Option<mpsc::Receiver<SttEvent>>,
    audio_dropped: u64,
    heard: String,
    heard_confidence: f32,
    digits: String,
    digits_deadline: Option<Instant>,
    silence_deadline: Option<Instant>,
    closing_deadline: Option<Instant>,
    /// A reply's first frame ends the turn's latency clock.
    awaiting_reply: bool,
    /// What speech to text was last told the engine waits for.
    expecting: Option<Expectation>,
    /// How long the caller may stay silent.
    silence: Silence,
}

impl Line<'_> {
    async fn send(&mut self, text: String) -> Result<(), Gone> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| Gone)
    }

    /// Queues the agent's phrases and notes when the call ends.
    async fn play(
        &mut self,
        session: &mut CallSession<'_>,
        outputs: &[Output],
    ) -> Result<(), Gone> {
        for output in outputs {
            match output {
                Output::Speak { text, .. } => self.speaker.queue.push_back(text.clone()),
                Output::Transfer { .. } | Output::End { .. } => {
                    self.closing_deadline = Some(Instant::now() + CLOSING_LIMIT);
                }
                _ => {}
            }
        }
        if self.speaker.current.is_none() {
            self.start_next(session).await;
        }
        self.expect(session);
        self.after_playback(session);
        Ok(())
    }

    /// Tells speech to text what the engine now waits for, so the builtin
    /// recogniser can listen with that primitive's grammar.
    fn expect(&mut self, session: &CallSession<'_>) {
        let Some(listening) = session.listening() else {
            return;
        };
        let expectation = Expectation {
            expect: listening.expect,
            options: listening.options.clone(),
        };
        if self.expecting.as_ref() == Some(&expectation) {
            return;
        }
        // A full queue means recognition is behind on audio already; the
        // next change of step tries again.
        if self
            .stt_audio
            .try_send(SttInput::Expect(expectation.clone()))
            .is_ok()
        {
            self.expecting = Some(expectation);
        }
    }

    /// Starts synthesising the next queued phrase.
    async fn start_next(&mut self, session: &mut CallSession<'_>) {
        while self.speaker.current.is_none() {
            let Some(text) = self.speaker.queue.pop_front() else {
                return;
            };
            accrue(
                session,
                &self.audio.tts,
                Usage::TtsCharacters(text.chars().count() as u64),
            );
            let started = Instant::now();
            let synthesis = self.audio.tts.api.synthesize(&text).await;
            self.audio
                .tts
                .observe(session.metrics(), "tts", started.elapsed(), &synthesis);
            match synthesis {
                Ok(rx) => self.speaker.current = Some(rx),
                Err(err) => {
                    tracing::warn!(call_id = %session.call_id(), error = %err, "text to speech failed; phrase skipped");
                }
            }
        }
    }

    /// Once nothing is playing: start the silence timer if the engine
    /// listens.
    fn after_playback(&mut self, session: &CallSession<'_>) {
        if self.speaker.playing() || self.closing_deadline.is_some() {
            return;
        }
        if self.silence_deadline.is_none()
            && let Some(listening) = session.listening()
        {
            self.silence_deadline = Some(Instant::now() + self.silence.timeout(listening.expect));
        }
    }

    /// Frames one chunk of synthesised audio (or ends the phrase).
    async fn speech_chunk(
        &mut self,
        session: &mut CallSession<'_>,
        chunk: Option<Result<Bytes, ProviderError>>,
    ) -> Result<(), Gone> {
        match chunk {
            Some(Ok(bytes)) => {
                for frame in self.speaker.framer.push(&bytes) {
                    self.send(media_message(&self.stream_sid, &frame)).await?;
                    if self.awaiting_reply {
                        self.awaiting_reply = false;
                        session.replied();
                    }
                }
                Ok(())
            }
            end => {
                if let Some(Err(err)) = end {
                    tracing::warn!(call_id = %session.call_id(), error = %err, "text to speech broke off");
                }
                self.speaker.current = None;
                if let Some(frame) = self.speaker.framer.finish() {
                    self.send(media_message(&self.stream_sid, &frame)).await?;
                }
                self.speaker.marks += 1;
                let name = format!("phrase-{}", self.speaker.marks);
                let mark = Outbound::Mark {
                    stream_sid: &self.stream_sid,
                    mark: Mark { name: name.clone() },
                }
                .to_json();
                self.send(mark).await?;
                self.speaker.outstanding.push_back(name);
                self.start_next(session).await;
                Ok(())
            }
        }
    }

    /// The caller spoke over the agent: drop the queued audio and tell the
    /// engine.
    async fn barge_in(&mut self, session: &mut CallSession<'_>) -> Result<(), Gone> {
        if !self.speaker.playing() || self.closing_deadline.is_some() {
            return Ok(());
        }
        let clear = Outbound::Clear {
            stream_sid: &self.stream_sid,
        }
        .to_json();
        self.send(clear).await?;
        self.speaker.clear();
        let outputs = session.input(Input::BargeIn, None);
        self.play(session, &outputs).await
    }

    /// The caller finished an utterance.
    async fn utterance(&mut self, session: &mut CallSession<'_>) -> Result<(), Gone> {
        let text = std::mem::take(&mut self.heard);
        let confidence = std::mem::replace(&mut self.heard_confidence, 1.0);
        if text.trim().is_empty() {
            return Ok(());
        }
        session.turn_ended(std::time::Instant::now());
        self.awaiting_reply = true;
        let outputs = self.text.utterance(session, text, confidence).await;
        self.play(session, &outputs).await
    }

    /// The caller finished entering keys.
    async fn keys(&mut self, session: &mut CallSession<'_>) -> Result<(), Gone> {
        self.digits_deadline = None;
        let digits = std::mem::take(&mut self.digits);
        if digits.is_empty() {
            return Ok(());
        }
        session.turn_ended(std::time::Instant::now());
        self.awaiting_reply = true;
        let outputs = session.input(Input::Dtmf { digits }, None);
        self.play(session, &outputs).await
    }

    async fn stt_event(
        &mut self,
        session: &mut CallSession<'_>,
        event: Option<SttEvent>,
    ) -> Result<(), Gone> {
        match event {
            Some(SttEvent::SpeechStarted) => {
                self.silence_deadline = None;
                self.barge_in(session).await
            }
            Some(SttEvent::Transcript {
                text,
                confidence,
                is_final,
                speech_final,
            }) => {
                if !text.trim().is_empty() {
                    self.silence_deadline = None;
                    self.barge_in(session).await?;
                }
                if is_final && !text.trim().is_empty() {
                    if !self.heard.is_empty() {
                        self.heard.push(' ');
                    }
                    self.heard.push_str(text.trim());
                    self.heard_confidence = self.heard_confidence.min(confidence);
                }
                if speech_final {
                    self.utterance(session).await?;
                }
                Ok(())
            }
            Some(SttEvent::Closed { audio_seconds }) => {
                accrue(session, &self.audio.stt, Usage::SttSeconds(audio_seconds));
                self.stt_events = None;
                Ok(())
            }
            Some(SttEvent::Error(message)) => {
                tracing::warn!(call_id = %session.call_id(), message, "speech to text reported an error");
                Ok(())
            }
            None => {
                self.stt_events = None;
                Ok(())
            }
        }
    }

    /// A message from Twilio; `Some` when the call is over.
    async fn inbound(
        &mut self,
        session: &mut CallSession<'_>,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<Option<CloseReason>, Gone> {
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Ok(Some(CloseReason::Hangup));
            }
            Some(Ok(_)) => return Ok(None),
        };
        let Ok(event) = serde_json::from_str::<Inbound>(text.as_str()) else {
            tracing::debug!(call_id = %session.call_id(), "ignored a message that is not Media Streams JSON");
            return Ok(None);
        };
        match event {
            Inbound::Media { media } => {
                if let Some(audio) = media.audio()
                    && self
                        .stt_audio
                        .try_send(SttInput::Audio(audio.into()))
                        .is_err()
                {
                    // Speech to text is behind by more than its buffer;
                    // waiting would stall playback and barge-in instead.
                    self.audio_dropped += 1;
                }
            }
            Inbound::Dtmf { dtmf } => {
                self.silence_deadline = None;
                self.barge_in(session).await?;
                self.digits.push_str(&dtmf.digit);
                let one_key = session.listening().is_some_and(|l| single_key(l.expect));
                if one_key || dtmf.digit == "#" {
                    self.keys(session).await?;
                } else {
                    self.digits_deadline = Some(Instant::now() + DTMF_GAP);
                }
            }
            Inbound::Mark { mark } => {
                self.speaker.played(&mark.name);
                self.after_playback(session);
            }
            Inbound::Stop => return Ok(Some(CloseReason::Hangup)),
            Inbound::Connected { .. } | Inbound::Start { .. } | Inbound::Other => {}
        }
        Ok(None)
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.silence_deadline,
            self.digits_deadline,
            self.closing_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A timer ran out; `Some` when the call is over.
    async fn timer(&mut self, session: &mut CallSession<'_>) -> Result<Option<CloseReason>, Gone> {
        let now = Instant::now();
        if self.closing_deadline.is_some_and(|d| d <= now) {
            return Ok(Some(session.engine_close_reason()));
        }
        if self.digits_deadline.is_some_and(|d| d <= now) {
            self.keys(session).await?;
        }
        if self.silence_deadline.is_some_and(|d| d <= now) {
            self.silence_deadline = None;
            let outputs = session.input(Input::SilenceTimeout, None);
            self.play(session, &outputs).await?;
        }
        Ok(None)
    }

    /// Runs the call until it is over; returns why.
    async fn converse(
        &mut self,
        pod: &Pod,
        session: &mut CallSession<'_>,
        opening: &[Output],
    ) -> Result<CloseReason, Gone> {
        self.play(session, opening).await?;
        let mut forced = pod.drain.forced();
        loop {
            // An ended call closes once its last phrase has played.
            if self.closing_deadline.is_some() && !self.speaker.playing() {
                return Ok(session.engine_close_reason());
            }
            let deadline = self.next_deadline();
            let over = tokio::select! {
                message = self.socket.recv() => self.inbound(session, message).await?,
                chunk = recv_opt(&mut self.speaker.current) => {
                    self.speech_chunk(session, chunk).await?;
                    None
                }
                event = recv_opt(&mut self.stt_events) => {
                    self.stt_event(session, event).await?;
                    None
                }
                () = sleep_opt(deadline) => self.timer(session).await?,
                () = Drain::until_forced(&mut forced) => Some(CloseReason::Drained),
            };
            // Recorded after the reply went out (see `CallSession::flush`).
            session.flush().await;
            if let Some(reason) = over {
                return Ok(reason);
            }
        }
    }

    /// Ends speech to text and records what it and the line cost.
    async fn settle(mut self, session: &mut CallSession<'_>) -> WebSocket {
        let _ = self.stt_audio.send(SttInput::Finish).await;
        let until = Instant::now() + STT_CLOSE_LIMIT;
        while let Some(rx) = self.stt_events.as_mut() {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(SttEvent::Closed { audio_seconds })) => {
                    accrue(session, &self.audio.stt, Usage::SttSeconds(audio_seconds));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if self.audio_dropped > 0 {
            tracing::warn!(call_id = %session.call_id(), frames = self.audio_dropped, "caller audio dropped: speech to text fell behind");
        }
        // Twilio bills every started minute.
        let minutes = (session.elapsed().as_secs_f64() / 60.0).ceil().max(1.0);
        accrue(
            session,
            &self.audio.telephony,
            Usage::TelephonyMinutes(minutes),
        );
        self.socket
    }
}

/// Reads up to `start`.
async fn await_start(socket: &mut WebSocket) -> Option<Start> {
    let read = async {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message
                && let Ok(Inbound::Start { start }) = serde_json::from_str::<Inbound>(text.as_str())
            {
                return Some(start);
            }
        }
        None
    };
    tokio::time::timeout(START_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

async fn refuse(mut socket: WebSocket) {
    let _ = socket.send(Message::Close(None)).await;
}

/// Runs one Media Streams call to its end: the stream its ticket (checked
/// before the upgrade) was issued for, at the version the ticket pins.
pub async fn run(
    pod: Arc<Pod>,
    mut socket: WebSocket,
    claims: StreamClaims,
    pinned: Pinned,
    _guard: CallGuard,
) {
    let Some(start) = await_start(&mut socket).await else {
        tracing::warn!("media stream closed or timed out before start");
        return refuse(socket).await;
    };
    // Twilio names the call in `start`; a ticket opens only its own call's
    // stream.
    if start.call_sid != claims.call_sid {
        pod.metrics.rejected("stream-token");
        tracing::warn!(call_sid = %start.call_sid, ticket_call_sid = %claims.call_sid, "refused a media stream for another call's ticket");
        return refuse(socket).await;
    }
    if let Some(format) = &start.media_format
        && !format.is_mulaw_8k()
    {
        tracing::warn!(call_sid = %start.call_sid, encoding = %format.encoding, "media stream is not 8 kHz µ-law");
        return refuse(socket).await;
    }
    let engine = match Engine::new(&pinned.config) {
        Ok(e) => e,
        Err(err) => {
            tracing::error!(version = %pinned.hash, error = %err, "config version cannot run");
            return refuse(socket).await;
        }
    };
    let audio = match pod.vendors.audio(&pinned) {
        Ok(v) => v,
        Err(err) => {
            tracing::error!(call_sid = %start.call_sid, error = %err, "cannot set up the call's speech providers");
            return refuse(socket).await;
        }
    };
    let text = pod.vendors.text(&pinned);
    let stt_config = SttConfig {
        language: Some(pinned.config.agent.locale.as_str().to_owned()),
        ..SttConfig::default()
    };
    let started = Instant::now();
    let opened = audio.stt.api.open(&stt_config).await;
    audio
        .stt
        .observe(&pod.metrics, "stt", started.elapsed(), &opened);
    let SttSession {
        audio: stt_audio,
        events: stt_events,
    } = match opened {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(call_sid = %start.call_sid, error = %err, "cannot open speech to text");
            return refuse(socket).await;
        }
    };
    // The ticket covers the attempt, so a stream names one only when the
    // outbound webhook put it there.
    let attempt: Option<Uuid> = claims.attempt.parse().ok();
    let meta = CallMeta {
        call_id: Uuid::new_v4(),
        channel: Channel::Twilio,
        direction: if attempt.is_some() {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        caller: Some(claims.caller).filter(|c| !c.is_empty()),
        callee: Some(claims.callee).filter(|c| !c.is_empty()),
        external_id: Some(start.call_sid.clone()),
    };
    let (mut session, opening) =
        CallSession::open(&engine, &pinned, meta, pod.call_context()).await;
    if let Some(attempt) = attempt
        && let Err(err) =
            dialtone_spine::campaigns::link_call(pod.store.pool(), attempt, session.call_id()).await
    {
        tracing::warn!(%attempt, error = %err, "cannot tie the campaign attempt to its call");
    }
    tracing::info!(call_id = %session.call_id(), call_sid = %start.call_sid, version = %pinned.hash, "media stream call started");
    let mut line = Line {
        socket,
        stream_sid: start.stream_sid.clone(),
        audio: &audio,
        text: &text,
        speaker: Speaker::default(),
        stt_audio,
        stt_events: Some(stt_events),
        audio_dropped: 0,
        heard: String::new(),
        heard_confidence: 1.0,
        digits: String::new(),
        digits_deadline: None,
        silence_deadline: None,
        closing_deadline: None,
        awaiting_reply: false,
        expecting: None,
        silence: pod.settings.silence,
    };
    let reason = match line.converse(&pod, &mut session, &opening).await {
        Ok(r) => r,
        Err(Gone) => CloseReason::Hangup,
    };
    if reason == CloseReason::Hangup && !session.ended() {
        session.input(Input::Hangup, None);
    }
    let socket = line.settle(&mut session).await;
    refuse(socket).await;
    tracing::info!(call_id = %session.call_id(), reason = reason.as_str(), "media stream call closed");
    session.close(reason).await;
}
