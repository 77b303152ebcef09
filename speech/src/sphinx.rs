//! The PocketSphinx decoder behind a safe type. The only module of the
//! workspace with `unsafe`: each call below is a documented function of
//! `pocketsphinx.h` (Debian's 0.8+5prealpha), used from one thread at a time
//! (a [`Decoder`] is `Send`, not `Sync`), with pointers that live as long as
//! the call.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};

use crate::SpeechError;

/// The search PocketSphinx creates from `-lm`.
pub const DICTATION: &str = "_default";

#[link(name = "pocketsphinx")]
#[link(name = "sphinxbase")]
unsafe extern "C" {
    fn ps_args() -> *const c_void;
    fn cmd_ln_init(inout: *mut c_void, defn: *const c_void, strict: c_int, ...) -> *mut c_void;
    fn cmd_ln_free_r(cmdln: *mut c_void) -> c_int;
    fn ps_init(config: *mut c_void) -> *mut c_void;
    fn ps_free(ps: *mut c_void) -> c_int;
    fn ps_set_jsgf_string(ps: *mut c_void, name: *const c_char, jsgf: *const c_char) -> c_int;
    fn ps_set_search(ps: *mut c_void, name: *const c_char) -> c_int;
    fn ps_start_utt(ps: *mut c_void) -> c_int;
    fn ps_process_raw(
        ps: *mut c_void,
        data: *const i16,
        n_samples: usize,
        no_search: c_int,
        full_utt: c_int,
    ) -> c_int;
    fn ps_end_utt(ps: *mut c_void) -> c_int;
    fn ps_get_hyp(ps: *mut c_void, out_best_score: *mut i32) -> *const c_char;
    fn ps_get_prob(ps: *mut c_void) -> i32;
    fn ps_get_logmath(ps: *mut c_void) -> *mut c_void;
    fn logmath_exp(lmath: *mut c_void, logb_p: c_int) -> f64;
}

/// Where the acoustic model, dictionary and language model are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// The acoustic model directory (`-hmm`).
    pub acoustic: String,
    /// The pronunciation dictionary (`-dict`).
    pub dictionary: String,
    /// The general language model for dictation (`-lm`).
    pub language: String,
}

impl Model {
    /// Debian's `pocketsphinx-en-us`, the US English model at 16 kHz.
    pub const DEBIAN_EN_US: &str = "/usr/share/pocketsphinx/model/en-us";

    /// The model of `pocketsphinx-en-us` under `root`.
    pub fn en_us(root: &Path) -> Model {
        let at = |rel: &str| root.join(rel).to_string_lossy().into_owned();
        Model {
            acoustic: at("en-us"),
            dictionary: at("cmudict-en-us.dict"),
            language: at("en-us.lm.bin"),
        }
    }

    /// Whether the model's files are there.
    pub fn installed(&self) -> bool {
        [&self.acoustic, &self.dictionary, &self.language]
            .iter()
            .all(|p| Path::new(p).exists())
    }
}

/// What the decoder heard in one utterance.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The words, lower case, separated by single spaces.
    pub text: String,
    /// Posterior probability of the hypothesis, 0–1.
    pub confidence: f32,
}

/// One PocketSphinx decoder (about 100 MB with the en-us model: callers
/// share a few through [`crate::Recognizer`]).
pub struct Decoder {
    ps: NonNull<c_void>,
}

// The decoder has no thread affinity; it only must not be used from two
// threads at once, which `&mut self` on every method guarantees.
unsafe impl Send for Decoder {}

fn c_string(value: &str) -> Result<CString, SpeechError> {
    CString::new(value).map_err(|_| SpeechError::Nul(value.to_owned()))
}

impl Decoder {
    /// Loads `model` for 16 kHz audio.
    pub fn new(model: &Model) -> Result<Decoder, SpeechError> {
        if !model.installed() {
            return Err(SpeechError::ModelMissing(model.acoustic.clone()));
        }
        let args: Vec<CString> = [
            "-hmm",
            &model.acoustic,
            "-dict",
            &model.dictionary,
            "-lm",
            &model.language,
            "-samprate",
            "16000",
            "-logfn",
            "/dev/null",
        ]
        .iter()
        .map(|a| c_string(a))
        .collect::<Result<_, _>>()?;
        // SAFETY: cmd_ln_init reads `args` (NUL-terminated, alive until it
        // returns) up to the terminating null pointer and copies them.
        let config = unsafe {
            cmd_ln_init(
                ptr::null_mut(),
                ps_args(),
                1,
                args[0].as_ptr(),
                args[1].as_ptr(),
                args[2].as_ptr(),
                args[3].as_ptr(),
                args[4].as_ptr(),
                args[5].as_ptr(),
                args[6].as_ptr(),
                args[7].as_ptr(),
                args[8].as_ptr(),
                args[9].as_ptr(),
                ptr::null::<c_char>(),
            )
        };
        if config.is_null() {
            return Err(SpeechError::Init("the decoder's arguments were refused"));
        }
        // SAFETY: `config` is a live cmd_ln_t; ps_init takes its own
        // reference, so ours is released right after.
        let ps = unsafe {
            let ps = ps_init(config);
            cmd_ln_free_r(config);
            ps
        };
        NonNull::new(ps)
            .map(|ps| Decoder { ps })
            .ok_or(SpeechError::Init("the model did not load"))
    }

    /// Adds (or replaces) the JSGF grammar `name`.
    pub fn add_grammar(&mut self, name: &str, jsgf: &str) -> Result<(), SpeechError> {
        let (c_name, c_jsgf) = (c_string(name)?, c_string(jsgf)?);
        // SAFETY: both strings outlive the call, which copies what it keeps.
        let rc = unsafe { ps_set_jsgf_string(self.ps.as_ptr(), c_name.as_ptr(), c_jsgf.as_ptr()) };
        if rc < 0 {
            return Err(SpeechError::Grammar(name.to_owned()));
        }
        Ok(())
    }

    /// Makes `name` (a grammar, or [`DICTATION`]) the search of the next
    /// utterance.
    pub fn use_search(&mut self, name: &str) -> Result<(), SpeechError> {
        let c_name = c_string(name)?;
        // SAFETY: as above.
        let rc = unsafe { ps_set_search(self.ps.as_ptr(), c_name.as_ptr()) };
        if rc < 0 {
            return Err(SpeechError::UnknownSearch(name.to_owned()));
        }
        Ok(())
    }

    /// Starts an utterance.
    pub fn start(&mut self) -> Result<(), SpeechError> {
        // SAFETY: a live decoder.
        if unsafe { ps_start_utt(self.ps.as_ptr()) } < 0 {
            return Err(SpeechError::Decode("ps_start_utt"));
        }
        Ok(())
    }

    /// Decodes 16 kHz PCM of the current utterance, as it comes.
    pub fn feed(&mut self, samples: &[i16]) -> Result<(), SpeechError> {
        // SAFETY: the slice is valid for `len` samples during the call.
        let rc = unsafe { ps_process_raw(self.ps.as_ptr(), samples.as_ptr(), samples.len(), 0, 0) };
        if rc < 0 {
            return Err(SpeechError::Decode("ps_process_raw"));
        }
        Ok(())
    }

    /// Ends the utterance; `None` when nothing was recognised.
    pub fn finish(&mut self) -> Result<Option<Hypothesis>, SpeechError> {
        // SAFETY: a live decoder; the hypothesis string belongs to it and is
        // copied before the next call into it.
        unsafe {
            if ps_end_utt(self.ps.as_ptr()) < 0 {
                return Err(SpeechError::Decode("ps_end_utt"));
            }
            let mut score = 0;
            let hyp = ps_get_hyp(self.ps.as_ptr(), &mut score);
            if hyp.is_null() {
                return Ok(None);
            }
            let text = CStr::from_ptr(hyp).to_string_lossy().into_owned();
            let log_prob = ps_get_prob(self.ps.as_ptr());
            let confidence = logmath_exp(ps_get_logmath(self.ps.as_ptr()), log_prob);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if text.is_empty() {
                return Ok(None);
            }
            Ok(Some(Hypothesis {
                text,
                confidence: confidence.clamp(0.0, 1.0) as f32,
            }))
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: we own the only reference.
        unsafe {
            ps_free(self.ps.as_ptr());
        }
    }
}
