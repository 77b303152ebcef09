//! The offline provider: PocketSphinx (through `dialtone-speech`) with an
//! energy endpointer, so a call with no vendor account is heard. While the
//! engine waits for a yes/no, digits, a date or an option, the utterance is
//! recognised with a grammar of just that; otherwise with dictation.
//! Without Debian's model installed it hears nothing but still counts the
//! audio, so cost and session handling work the same.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dialtone_crds::objective::Primitive;
use dialtone_speech::vad::{Endpointer, VadEvent, VadSettings};
use dialtone_speech::{Model, Recognizer, SpeechError, Utterance, Vocabulary};
use tokio::sync::mpsc;

use super::{
    CHANNEL_CAPACITY, Expectation, SpeechToText, SttConfig, SttEvent, SttInput, SttSession,
};
use crate::audio;
use crate::error::ProviderError;

/// The builtin speech to text provider.
#[derive(Clone, Debug)]
pub struct Builtin {
    recognizer: Option<Arc<Recognizer>>,
}

/// One recogniser per process: its decoders are large and shared by calls.
static SHARED: OnceLock<Option<Arc<Recognizer>>> = OnceLock::new();

impl Builtin {
    /// The process's recogniser over Debian's `pocketsphinx-en-us`, with
    /// one decoder per core; hears nothing (and says so once) when the
    /// model is not installed.
    pub fn shared() -> Builtin {
        let recognizer = SHARED.get_or_init(|| {
            let model = Model::en_us(std::path::Path::new(Model::DEBIAN_EN_US));
            if !model.installed() {
                tracing::warn!(
                    "{}; builtin speech to text hears only key presses",
                    SpeechError::ModelMissing(model.acoustic)
                );
                return None;
            }
            let decoders = std::thread::available_parallelism().map_or(2, usize::from);
            Some(Arc::new(Recognizer::new(model, decoders)))
        });
        Builtin::with_recognizer(recognizer.clone())
    }

    /// Uses `recognizer` (`None`: hears nothing, counts audio).
    pub fn with_recognizer(recognizer: Option<Arc<Recognizer>>) -> Builtin {
        Builtin { recognizer }
    }

    /// Whether it recognises speech.
    pub fn hears(&self) -> bool {
        self.recognizer.is_some()
    }
}

/// The grammar for what the engine expects.
fn vocabulary(expectation: &Expectation) -> Vocabulary {
    match expectation.expect {
        Primitive::YesNo => Vocabulary::YesNo,
        Primitive::Phone => Vocabulary::Digits,
        Primitive::Number => Vocabulary::Number,
        Primitive::Date | Primitive::Time | Primitive::DateTime => Vocabulary::When,
        Primitive::Choice => Vocabulary::Choice(expectation.options.clone()),
        Primitive::Name => Vocabulary::Name,
        // Open classes (and amounts with their currency words) need the
        // general model.
        Primitive::Email | Primitive::Address | Primitive::Money => Vocabulary::Dictation,
    }
}

/// What the forwarder passes on, in the order it happened.
enum Pending {
    Event(SttEvent),
    Heard(Utterance),
}

#[async_trait]
impl SpeechToText for Builtin {
    async fn open(&self, cfg: &SttConfig) -> Result<SttSession, ProviderError> {
        let (audio_tx, audio_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let settings = VadSettings {
            end_ms: cfg.endpointing_ms.max(VadSettings::default().end_ms),
            ..VadSettings::default()
        };
        tokio::spawn(listen(
            self.recognizer.clone(),
            settings,
            audio_rx,
            events_tx,
        ));
        Ok(SttSession {
            audio: audio_tx,
            events: events_rx,
        })
    }
}

/// Runs one session: endpoints the audio, hands each utterance to the
/// recogniser and reports in order through [`forward`].
async fn listen(
    recognizer: Option<Arc<Recognizer>>,
    settings: VadSettings,
    mut input: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttEvent>,
) {
    let (pending, queue) = mpsc::unbounded_channel();
    let forwarder = tokio::spawn(forward(queue, events));
    let mut endpointer = Endpointer::new(settings);
    let mut expected = Vocabulary::Dictation;
    let mut current: Option<Utterance> = None;
    let mut bytes = 0;
    while let Some(item) = input.recv().await {
        let chunk = match item {
            SttInput::Audio(chunk) => chunk,
            SttInput::Expect(expectation) => {
                expected = vocabulary(&expectation);
                continue;
            }
            SttInput::Finish => break,
        };
        bytes += chunk.len();
        let Some(recognizer) = &recognizer else {
            continue;
        };
        for event in endpointer.push(&audio::decode(&chunk)) {
            match event {
                VadEvent::Started(preroll) => {
                    tracing::debug!(vocabulary = ?expected, "speech started");
                    let mut utterance = recognizer.utterance(expected.clone());
                    utterance.push(&preroll);
                    current = Some(utterance);
                    let _ = pending.send(Pending::Event(SttEvent::SpeechStarted));
                }
                VadEvent::Speech(frame) => {
                    if let Some(utterance) = current.as_mut() {
                        utterance.push(&frame);
                    }
                }
                VadEvent::Ended => {
                    tracing::debug!("speech ended");
                    if let Some(utterance) = current.take() {
                        let _ = pending.send(Pending::Heard(utterance));
                    }
                }
            }
        }
    }
    // The caller's last words count even without the silence after them.
    if let Some(utterance) = current.take() {
        let _ = pending.send(Pending::Heard(utterance));
    }
    let _ = pending.send(Pending::Event(SttEvent::Closed {
        audio_seconds: audio::ulaw_seconds(bytes),
    }));
    drop(pending);
    let _ = forwarder.await;
}

/// Reports events and recognised utterances in the order they happened;
/// `Closed` is always last.
async fn forward(mut queue: mpsc::UnboundedReceiver<Pending>, events: mpsc::Sender<SttEvent>) {
    while let Some(item) = queue.recv().await {
        let event = match item {
            Pending::Event(event) => event,
            Pending::Heard(utterance) => match utterance.finish().await {
                // An utterance with no words still ends the caller's turn.
                Ok(heard) => {
                    tracing::debug!(?heard, "utterance recognised");
                    let (text, confidence) =
                        heard.map_or((String::new(), 0.0), |h| (h.text, h.confidence));
                    SttEvent::Transcript {
                        text,
                        confidence,
                        is_final: true,
                        speech_final: true,
                    }
                }
                Err(err) => SttEvent::Error(err.to_string()),
            },
        };
        // A session whose reader left has nobody to tell.
        if events.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn without_a_model_it_hears_nothing_but_counts_audio_seconds() {
        let stt = Builtin::with_recognizer(None);
        let mut session = stt.open(&SttConfig::default()).await.unwrap();
        for _ in 0..50 {
            session
                .audio
                .send(SttInput::Audio(Bytes::from(vec![0x10; 160])))
                .await
                .unwrap();
        }
        session.audio.send(SttInput::Finish).await.unwrap();
        assert_eq!(
            session.events.recv().await,
            Some(SttEvent::Closed { audio_seconds: 1.0 })
        );
        assert_eq!(session.events.recv().await, None);
    }

    #[tokio::test]
    async fn it_closes_when_the_audio_sender_is_dropped() {
        let SttSession { audio, mut events } = Builtin::with_recognizer(None)
            .open(&SttConfig::default())
            .await
            .unwrap();
        audio
            .send(SttInput::Audio(Bytes::from(vec![0xFF; 4_000])))
            .await
            .unwrap();
        drop(audio);
        assert_eq!(
            events.recv().await,
            Some(SttEvent::Closed { audio_seconds: 0.5 })
        );
    }

    #[test]
    fn each_primitive_listens_with_its_grammar() {
        let expect = |p: Primitive| Expectation {
            expect: p,
            options: vec!["filling".into()],
        };
        assert_eq!(vocabulary(&expect(Primitive::YesNo)), Vocabulary::YesNo);
        assert_eq!(vocabulary(&expect(Primitive::Phone)), Vocabulary::Digits);
        assert_eq!(vocabulary(&expect(Primitive::DateTime)), Vocabulary::When);
        assert_eq!(
            vocabulary(&expect(Primitive::Choice)),
            Vocabulary::Choice(vec!["filling".into()])
        );
        assert_eq!(vocabulary(&expect(Primitive::Name)), Vocabulary::Name);
        assert_eq!(vocabulary(&expect(Primitive::Email)), Vocabulary::Dictation);
    }
}
