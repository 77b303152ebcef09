//! A pool of decoders shared by every call of the process. A decoder with
//! the en-us model is about 100 MB and takes a quarter of a second to load,
//! so calls borrow one per utterance; an utterance waits (its audio queued)
//! while every decoder is busy, and the pool never grows past its size.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::pcm::Upsampler;
use crate::sphinx::{DICTATION, Decoder, Hypothesis, Model};
use crate::{SpeechError, Vocabulary};

/// Confidence given to a grammar match: PocketSphinx computes no posterior
/// for a grammar search, and a phrase inside the grammar is what the step
/// expects (the engine still confirms what it books).
const GRAMMAR_CONFIDENCE: f32 = 0.9;

/// A decoder and the grammars already added to it.
struct Loaded {
    decoder: Decoder,
    /// Whether it has decoded speech: its cepstral mean (which it adapts
    /// as it listens) then fits telephone audio rather than the model's
    /// wideband starting point, which loses a fresh decoder's first words.
    adapted: bool,
    searches: HashSet<String>,
    refused: HashSet<String>,
}

impl Loaded {
    fn new(model: &Model) -> Result<Loaded, SpeechError> {
        Ok(Loaded {
            decoder: Decoder::new(model)?,
            adapted: false,
            searches: HashSet::new(),
            refused: HashSet::new(),
        })
    }

    /// Selects the vocabulary's grammar, adding it on first use; a grammar
    /// PocketSphinx refuses falls back to dictation (once logged).
    fn select(&mut self, vocabulary: &Vocabulary) -> Result<bool, SpeechError> {
        let name = vocabulary.search_name();
        let grammar = match vocabulary.grammar() {
            Some(g) if !self.refused.contains(&name) => g,
            _ => {
                self.decoder.use_search(DICTATION)?;
                return Ok(false);
            }
        };
        if !self.searches.contains(&name) {
            if let Err(err) = self.decoder.add_grammar(&name, &grammar) {
                tracing::warn!(error = %err, ?vocabulary, "grammar refused; dictation instead");
                self.refused.insert(name);
                self.decoder.use_search(DICTATION)?;
                return Ok(false);
            }
            self.searches.insert(name.clone());
        }
        self.decoder.use_search(&name)?;
        Ok(true)
    }

    fn decode(
        &mut self,
        vocabulary: &Vocabulary,
        mut audio: mpsc::UnboundedReceiver<Vec<i16>>,
    ) -> Result<Option<Hypothesis>, SpeechError> {
        let grammar = self.select(vocabulary)?;
        self.decoder.start()?;
        let mut heard = Vec::new();
        while let Some(chunk) = audio.blocking_recv() {
            self.decoder.feed(&chunk)?;
            if !self.adapted {
                heard.extend_from_slice(&chunk);
            }
        }
        if !self.adapted {
            // The first pass adapted the mean to this line; the second
            // decodes with it.
            self.decoder.finish()?;
            self.decoder.start()?;
            self.decoder.feed(&heard)?;
            self.adapted = true;
        }
        Ok(self.decoder.finish()?.map(|h| Hypothesis {
            text: Vocabulary::tidy(&h.text),
            confidence: if grammar {
                GRAMMAR_CONFIDENCE
            } else {
                h.confidence
            },
        }))
    }
}

/// The process's recogniser.
pub struct Recognizer {
    model: Model,
    idle: Mutex<Vec<Loaded>>,
    decoders: Arc<Semaphore>,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("model", &self.model)
            .field("free", &self.decoders.available_permits())
            .finish()
    }
}

impl Recognizer {
    /// A pool of at most `decoders` decoders of `model`, loaded on demand.
    pub fn new(model: Model, decoders: usize) -> Recognizer {
        Recognizer {
            model,
            idle: Mutex::new(Vec::new()),
            decoders: Arc::new(Semaphore::new(decoders.max(1))),
        }
    }

    /// Starts recognising one utterance in `vocabulary`; push its audio,
    /// then [`Utterance::finish`].
    pub fn utterance(self: &Arc<Self>, vocabulary: Vocabulary) -> Utterance {
        let (audio, queued) = mpsc::unbounded_channel();
        let (done, result) = oneshot::channel();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // The caller may have hung up; nobody wants the result then.
            let _ = done.send(this.decode(vocabulary, queued).await);
        });
        Utterance {
            audio,
            upsampler: Upsampler::default(),
            result,
        }
    }

    async fn decode(
        self: Arc<Self>,
        vocabulary: Vocabulary,
        audio: mpsc::UnboundedReceiver<Vec<i16>>,
    ) -> Result<Option<Hypothesis>, SpeechError> {
        let _permit = Arc::clone(&self.decoders)
            .acquire_owned()
            .await
            .map_err(|_| SpeechError::Stopped)?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let model = self.model.clone();
        let (loaded, result) = tokio::task::spawn_blocking(move || {
            let mut loaded = match idle {
                Some(loaded) => loaded,
                None => Loaded::new(&model)?,
            };
            let result = loaded.decode(&vocabulary, audio);
            Ok::<_, SpeechError>((loaded, result))
        })
        .await
        .map_err(|_| SpeechError::Stopped)??;
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(loaded);
        result
    }
}

/// One utterance being recognised. Its audio queue is unbounded because the
/// endpointer bounds an utterance's length (15 s by default).
pub struct Utterance {
    audio: mpsc::UnboundedSender<Vec<i16>>,
    upsampler: Upsampler,
    result: oneshot::Receiver<Result<Option<Hypothesis>, SpeechError>>,
}

impl Utterance {
    /// Adds 8 kHz telephone audio.
    pub fn push(&mut self, samples: &[i16]) {
        // A decoder that failed has dropped its queue; `finish` reports why.
        let _ = self.audio.send(self.upsampler.push(samples));
    }

    /// Ends the utterance and waits for what was heard.
    pub async fn finish(self) -> Result<Option<Hypothesis>, SpeechError> {
        drop(self.audio);
        self.result.await.map_err(|_| SpeechError::Stopped)?
    }
}
