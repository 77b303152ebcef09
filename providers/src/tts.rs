//! Streaming text to speech. Every adapter produces µ-law at 8 kHz, ready
//! for Twilio Media Streams, in chunks as they are synthesised.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::audio;
use crate::error::ProviderError;

mod elevenlabs;

pub use elevenlabs::ElevenLabs;

/// A text to speech provider.
#[async_trait]
pub trait TextToSpeech: Send + Sync {
    /// Starts synthesising `text`. The receiver yields µ-law 8 kHz chunks
    /// in order and ends when the audio is complete; an `Err` item means
    /// the stream broke and nothing follows it.
    async fn synthesize(
        &self,
        text: &str,
    ) -> Result<mpsc::Receiver<Result<Bytes, ProviderError>>, ProviderError>;
}

/// Bytes per chunk of the builtin adapter: 200 ms.
const BUILTIN_CHUNK: usize = 1_600;

/// The offline provider: `espeak-ng` when it is installed, else
/// [`audio::tone`], which is deterministic so tests can check what was said.
#[derive(Clone, Debug)]
pub struct Builtin {
    espeak: Option<PathBuf>,
    voice: Option<String>,
    words_per_minute: Option<u32>,
    timeout: Duration,
    /// Phrases already rendered. One `Builtin` serves one config version,
    /// so its fixed lines (greeting, confirmations, apologies) are rendered
    /// once and later calls' first audio leaves at once.
    phrases: Arc<Mutex<PhraseCache>>,
}

/// Phrases kept per provider, and the audio they may hold in total (a
/// minute of telephone audio is 480 KB).
const CACHED_PHRASES: usize = 256;
const CACHED_BYTES: usize = 8 * 1024 * 1024;

/// Rendered phrases, the oldest forgotten first once either bound is hit.
#[derive(Debug, Default)]
struct PhraseCache {
    audio: HashMap<String, Arc<[u8]>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl PhraseCache {
    fn get(&self, text: &str) -> Option<Arc<[u8]>> {
        self.audio.get(text).cloned()
    }

    fn put(&mut self, text: &str, ulaw: Arc<[u8]>) {
        if ulaw.len() > CACHED_BYTES || self.audio.contains_key(text) {
            return;
        }
        self.bytes += ulaw.len();
        self.audio.insert(text.to_owned(), ulaw);
        self.order.push_back(text.to_owned());
        while self.order.len() > CACHED_PHRASES || self.bytes > CACHED_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.audio.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
    }
}

impl Builtin {
    /// Uses `espeak-ng` from `PATH` when there is one. `language` (e.g.
    /// `en-AU`) picks the espeak voice by its primary subtag (`en`), which
    /// every espeak-ng install has.
    pub fn new(language: Option<&str>) -> Self {
        let espeak = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("espeak-ng"))
                .find(|candidate| candidate.is_file())
        });
        Builtin::with_program(espeak, language)
    }

    /// Uses `program` as espeak-ng (`None`: the tone only).
    pub fn with_program(program: Option<PathBuf>, language: Option<&str>) -> Self {
        let voice = language
            .and_then(|l| l.split(['-', '_']).next())
            .filter(|primary| !primary.is_empty())
            .map(str::to_ascii_lowercase);
        Builtin {
            espeak: program,
            voice,
            words_per_minute: None,
            timeout: Duration::from_secs(10),
            phrases: Arc::default(),
        }
    }

    /// Speaks with the espeak-ng voice `voice` (e.g. `en-gb`, `en-us+f3`)
    /// at `words_per_minute` (espeak's default is 175): simulated callers
    /// sound different from each other and from the agent.
    pub fn with_voice(mut self, voice: &str, words_per_minute: u32) -> Self {
        self.voice = Some(voice.to_owned());
        self.words_per_minute = Some(words_per_minute);
        self.phrases = Arc::default();
        self
    }

    /// The espeak-ng program in use, if any.
    pub fn espeak(&self) -> Option<&Path> {
        self.espeak.as_deref()
    }

    async fn espeak_audio(&self, program: &Path, text: &str) -> Result<Vec<u8>, String> {
        let mut command = tokio::process::Command::new(program);
        command.arg("--stdout");
        if let Some(voice) = &self.voice {
            command.args(["-v", voice]);
        }
        if let Some(speed) = self.words_per_minute {
            command.args(["-s", &speed.to_string()]);
        }
        // Text on stdin, so text starting with '-' is not an option.
        command
            .arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let stdin = child.stdin.take();
        let write = async move {
            if let Some(mut stdin) = stdin {
                // Dropping stdin at the end closes it: the end of the text.
                stdin.write_all(text.as_bytes()).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        // Written while the output is read, so neither pipe can fill up and
        // stall the other.
        let run = async move {
            let (written, output) = tokio::join!(write, child.wait_with_output());
            written.map_err(|e| format!("cannot write text: {e}"))?;
            output.map_err(|e| format!("failed: {e}"))
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| format!("no result within {:?}", self.timeout))??;
        if !output.status.success() {
            return Err(format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let wav = audio::parse_wav(&output.stdout).map_err(|e| e.to_string())?;
        let pcm = audio::resample(&wav.samples, wav.sample_rate, audio::SAMPLE_RATE);
        Ok(audio::encode(&pcm))
    }
}

#[async_trait]
impl TextToSpeech for Builtin {
    async fn synthesize(
        &self,
        text: &str,
    ) -> Result<mpsc::Receiver<Result<Bytes, ProviderError>>, ProviderError> {
        let cached = self
            .phrases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(text);
        let ulaw: Arc<[u8]> = match (&self.espeak, cached) {
            (_, Some(ulaw)) => ulaw,
            (Some(program), None) if !text.trim().is_empty() => {
                match self.espeak_audio(program, text).await {
                    Ok(ulaw) => {
                        let ulaw: Arc<[u8]> = ulaw.into();
                        self.phrases
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .put(text, Arc::clone(&ulaw));
                        ulaw
                    }
                    Err(reason) => {
                        // The offline provider keeps calls going: a tone is
                        // better than silence in a demo.
                        tracing::warn!(program = %program.display(), %reason, "espeak-ng failed; using the tone");
                        audio::tone(text).into()
                    }
                }
            }
            _ => audio::tone(text).into(),
        };
        let chunks: Vec<Bytes> = ulaw
            .chunks(BUILTIN_CHUNK)
            .map(Bytes::copy_from_slice)
            .collect();
        let (tx, rx) = mpsc::channel(chunks.len().max(1));
        for chunk in chunks {
            // The channel holds every chunk, so this never waits or fails.
            let _ = tx.try_send(Ok(chunk));
        }
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phrase_cache_forgets_the_oldest_past_either_bound() {
        let mut cache = PhraseCache::default();
        for i in 0..CACHED_PHRASES + 10 {
            cache.put(&format!("phrase {i}"), vec![0u8; 100].into());
        }
        assert_eq!(cache.audio.len(), CACHED_PHRASES);
        assert!(cache.get("phrase 0").is_none());
        assert!(
            cache
                .get(&format!("phrase {}", CACHED_PHRASES + 9))
                .is_some()
        );
        cache.put("long", vec![0u8; CACHED_BYTES / 2].into());
        cache.put("longer", vec![0u8; CACHED_BYTES / 2].into());
        assert!(cache.bytes <= CACHED_BYTES, "{}", cache.bytes);
        assert!(cache.get("longer").is_some());
        cache.put("too long", vec![0u8; CACHED_BYTES + 1].into());
        assert!(cache.get("too long").is_none());
    }

    async fn collect(mut rx: mpsc::Receiver<Result<Bytes, ProviderError>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn without_espeak_the_tone_is_spoken_in_chunks() {
        let tts = Builtin::with_program(None, Some("en-AU"));
        assert!(tts.espeak().is_none());
        let text = "Thanks for calling Rapid Plumbing, how can I help?";
        let mut rx = tts.synthesize(text).await.unwrap();
        let first = rx.recv().await.unwrap().unwrap();
        assert_eq!(first.len(), BUILTIN_CHUNK);
        let mut all = first.to_vec();
        all.extend(collect(rx).await);
        assert_eq!(all, audio::tone(text));
        assert!(collect(tts.synthesize("").await.unwrap()).await.is_empty());
    }

    #[test]
    fn the_espeak_voice_is_the_primary_language_subtag() {
        assert_eq!(
            Builtin::with_program(None, Some("en-AU")).voice.as_deref(),
            Some("en")
        );
        assert_eq!(
            Builtin::with_program(None, Some("PT_br")).voice.as_deref(),
            Some("pt")
        );
        assert_eq!(Builtin::with_program(None, None).voice, None);
    }
}
