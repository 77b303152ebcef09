//! Streaming speech to text.
//!
//! A call opens one [`SttSession`], pushes the caller's µ-law audio into it
//! and reads [`SttEvent`]s back. Every session ends with exactly one
//! [`SttEvent::Closed`], which carries the audio seconds to bill.

use async_trait::async_trait;
use bytes::Bytes;
use dialtone_crds::objective::Primitive;
use tokio::sync::mpsc;

use crate::error::ProviderError;

mod builtin;
mod deepgram;

pub use deepgram::Deepgram;

/// Buffer of each direction of a session: 64 Twilio media frames of 20 ms
/// is over a second of audio.
const CHANNEL_CAPACITY: usize = 64;

/// What a call asks of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct SttConfig {
    /// The call's language (the Agent's locale, e.g. `en-AU`). The
    /// provider's own `settings.language` wins when set, because a platform
    /// team sets it when the vendor needs another tag than the locale.
    pub language: Option<String>,
    /// Silence, in milliseconds, after which the vendor marks the end of
    /// speech (`speech_final`).
    pub endpointing_ms: u32,
    /// Silence after the last word, in milliseconds, after which the vendor
    /// reports the end of an utterance even when endpointing missed it
    /// (Deepgram needs at least 1000). `None` turns it off.
    pub utterance_end_ms: Option<u32>,
}

impl Default for SttConfig {
    fn default() -> Self {
        SttConfig {
            language: None,
            endpointing_ms: 300,
            utterance_end_ms: Some(1_000),
        }
    }
}

/// What the engine waits for the caller to say.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The capture primitive of the step listening.
    pub expect: Primitive,
    /// The allowed answers, for `choice`.
    pub options: Vec<String>,
}

/// Into a session.
#[derive(Clone, Debug, PartialEq)]
pub enum SttInput {
    /// Caller audio, µ-law at 8 kHz.
    Audio(Bytes),
    /// What the engine now waits for; a recogniser may narrow its
    /// vocabulary to it for the next utterance.
    Expect(Expectation),
    /// No more audio: flush, report what is left and close. Dropping the
    /// sender does the same.
    Finish,
}

/// Out of a session.
#[derive(Clone, Debug, PartialEq)]
pub enum SttEvent {
    /// Recognised speech. Interim results (`is_final` false) may be revised;
    /// final ones are not. `speech_final` marks the end of what the caller
    /// said (the vendor heard a pause): the caller's turn ends here. An
    /// empty final `speech_final` transcript ends the turn with the finals
    /// received so far (Deepgram's `UtteranceEnd` is reported this way).
    Transcript {
        /// What was heard.
        text: String,
        /// The vendor's confidence, 0–1.
        confidence: f32,
        /// Whether this text is final.
        is_final: bool,
        /// Whether the caller finished speaking here.
        speech_final: bool,
    },
    /// The caller started speaking (for barge-in).
    SpeechStarted,
    /// The session is over; always the last event.
    Closed {
        /// Seconds of audio processed, for cost: the vendor's figure when it
        /// reports one, else the audio sent.
        audio_seconds: f64,
    },
    /// The vendor reported a problem or the connection broke; `Closed`
    /// follows.
    Error(String),
}

/// One open recognition stream.
#[derive(Debug)]
pub struct SttSession {
    /// Send caller audio here.
    pub audio: mpsc::Sender<SttInput>,
    /// Read results here.
    pub events: mpsc::Receiver<SttEvent>,
}

/// A speech to text provider.
#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// Opens a recognition stream for one call.
    async fn open(&self, cfg: &SttConfig) -> Result<SttSession, ProviderError>;
}

pub use builtin::Builtin;
