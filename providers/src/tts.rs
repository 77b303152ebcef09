//! Streaming text to speech. Every adapter produces µ-law at 8 kHz, ready
//! for Twilio Media Streams, in chunks as they are synthesised.

use std::path::{Path, PathBuf};
use std::process::Stdio;
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
        }
    }

    /// Speaks with the espeak-ng voice `voice` (e.g. `en-gb`, `en-us+f3`)
    /// at `words_per_minute` (espeak's default is 175): simulated callers
    /// sound different from each other and from the agent.
    pub fn with_voice(mut self, voice: &str, words_per_minute: u32) -> Self {
        self.voice = Some(voice.to_owned());
        self.words_per_minute = Some(words_per_minute);
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
        let ulaw = match &self.espeak {
            Some(program) if !text.trim().is_empty() => {
                match self.espeak_audio(program, text).await {
                    Ok(ulaw) => ulaw,
                    Err(reason) => {
                        // The offline provider keeps calls going: a tone is
                        // better than silence in a demo.
                        tracing::warn!(program = %program.display(), %reason, "espeak-ng failed; using the tone");
                        audio::tone(text)
                    }
                }
            }
            _ => audio::tone(text),
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
