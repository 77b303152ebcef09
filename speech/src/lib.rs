//! Offline speech recognition for the builtin speech to text provider:
//! PocketSphinx (Debian's `libpocketsphinx-dev` and `pocketsphinx-en-us`)
//! behind a safe [`sphinx::Decoder`], shared by calls through a
//! [`Recognizer`] pool, with a grammar for what the engine expects
//! ([`Vocabulary`]) and an energy endpointer ([`vad::Endpointer`]) that
//! finds where each utterance starts and ends.

pub mod pcm;
mod recognizer;
pub mod sphinx;
pub mod vad;
mod vocabulary;

pub use recognizer::{Recognizer, Utterance};
pub use sphinx::{Hypothesis, Model};
pub use vocabulary::Vocabulary;

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The model files are not installed.
    #[error(
        "the PocketSphinx model is not at {0}: install Debian's pocketsphinx-en-us (`cargo xtask` does it when run as root)"
    )]
    ModelMissing(String),
    /// PocketSphinx would not start.
    #[error("PocketSphinx did not start: {0}")]
    Init(&'static str),
    /// A grammar did not compile (usually a word the dictionary lacks).
    #[error("the grammar {0} did not compile (a word missing from the dictionary?)")]
    Grammar(String),
    /// A search that was never added.
    #[error("no search named {0}")]
    UnknownSearch(String),
    /// A decoding call failed.
    #[error("PocketSphinx failed in {0}")]
    Decode(&'static str),
    /// A string for C had a NUL byte in it.
    #[error("{0:?} has a NUL byte")]
    Nul(String),
    /// The recogniser was shut down, or its decoding thread panicked.
    #[error("the recogniser stopped")]
    Stopped,
}
