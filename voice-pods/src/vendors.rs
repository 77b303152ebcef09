//! The providers of one call, chosen by its pinned config: speech to text,
//! text to speech, the optional classifier and the telephony account, each
//! with its name and pricing for cost events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_crds::provider::Pricing;
use dialtone_engine::config::ProviderConfig;
use dialtone_engine::{CompiledConfig, Input, Output};
use dialtone_providers::cost::{Usage, micro_usd};
use dialtone_providers::llm::Classifier;
use dialtone_providers::stt::SpeechToText;
use dialtone_providers::tts::TextToSpeech;
use dialtone_providers::{Credentials, ProviderError, build};
use dialtone_spine::event::{CostComponent, CostUnit};
use dialtone_spine::storable;

use crate::metrics::Metrics;
use crate::session::{CallSession, Pinned};

/// The provider name recorded for a role the config leaves to the builtin
/// implementation.
pub const BUILTIN: &str = "builtin";

/// A provider with what cost events and metrics need to know about it.
pub struct Priced<T: ?Sized> {
    /// The Provider's name (or [`BUILTIN`]).
    pub name: String,
    /// Its vendor, the label of its request metrics.
    pub vendor: &'static str,
    /// Its prices.
    pub pricing: Pricing,
    /// The adapter.
    pub api: Arc<T>,
}

fn priced<T: ?Sized>(cfg: Option<&ProviderConfig>, api: Arc<T>) -> Priced<T> {
    Priced {
        name: cfg.map_or_else(|| BUILTIN.to_owned(), |c| c.name.clone()),
        vendor: cfg.map_or(BUILTIN, |c| c.vendor.as_str()),
        pricing: cfg.map(|c| c.pricing.clone()).unwrap_or_default(),
        api,
    }
}

fn credentials(
    cfg: Option<&ProviderConfig>,
    dir: &Path,
    namespace: &str,
) -> Result<Credentials, ProviderError> {
    match cfg {
        Some(c) => Ok(Credentials::load(dir, c, namespace)?),
        None => Ok(Credentials::default()),
    }
}

/// The cost event fields of a usage.
pub fn cost_parts(usage: Usage) -> (CostComponent, CostUnit) {
    match usage {
        Usage::TelephonyMinutes(_) => (CostComponent::Telephony, CostUnit::Minutes),
        Usage::SttSeconds(_) => (CostComponent::Stt, CostUnit::Seconds),
        Usage::TtsCharacters(_) => (CostComponent::Tts, CostUnit::Characters),
        Usage::LlmInputTokens(_) => (CostComponent::Llm, CostUnit::InputTokens),
        Usage::LlmOutputTokens(_) => (CostComponent::Llm, CostUnit::OutputTokens),
    }
}

impl<T: ?Sized> Priced<T> {
    /// Records one request to this provider, as `role`, that took
    /// `elapsed`.
    pub fn observe<R, E>(
        &self,
        metrics: &Metrics,
        role: &str,
        elapsed: Duration,
        result: &Result<R, E>,
    ) {
        metrics.provider(role, self.vendor, elapsed.as_secs_f64(), result.is_ok());
    }
}

/// Records what `usage` of `provider` cost.
pub fn accrue<T: ?Sized>(session: &mut CallSession<'_>, provider: &Priced<T>, usage: Usage) {
    let (component, unit) = cost_parts(usage);
    let micro = micro_usd(&provider.pricing, usage);
    session.accrue(component, &provider.name, usage.quantity(), unit, micro);
}

/// What every call uses: the optional classifier.
pub struct CallVendors {
    /// The LLM classifier, when the config names one and it can be built.
    pub classifier: Option<Priced<dyn Classifier>>,
}

impl CallVendors {
    /// The classifier of `config`. A classifier that cannot be built (its
    /// credentials missing) is left out with a warning: it is optional, and
    /// the deterministic parsers still run.
    pub fn for_config(config: &CompiledConfig, credentials_dir: &Path) -> Self {
        let Some(cfg) = config.providers.get("llm") else {
            return Self { classifier: None };
        };
        let built = credentials(Some(cfg), credentials_dir, &config.agent.namespace)
            .and_then(|creds| build::classifier_for(Some(cfg), &creds));
        match built {
            Ok(api) => Self {
                classifier: Some(priced(Some(cfg), api)),
            },
            Err(err) => {
                tracing::warn!(provider = %cfg.name, error = %err, "the LLM classifier is unavailable for this call");
                Self { classifier: None }
            }
        }
    }

    /// Feeds a final utterance. When the engine listens for a choice or a
    /// yes/no and the parsers cannot read the words, the classifier (if
    /// any) maps them to one of the options and the engine gets the option,
    /// with the caller's words kept as `original`.
    pub async fn utterance(
        &self,
        session: &mut CallSession<'_>,
        text: String,
        confidence: f32,
    ) -> Vec<Output> {
        let mut mapped = None;
        // The parsers and the classifier read what the engine will be fed
        // (`CallSession::input` makes the text storable).
        let heard = storable::storable(&text);
        if let (Some(classifier), Some(options)) =
            (&self.classifier, session.needs_classifier(&heard))
        {
            let options = options.to_vec();
            let started = Instant::now();
            let classified = classifier.api.classify(&heard, &options).await;
            classifier.observe(session.metrics(), "llm", started.elapsed(), &classified);
            match classified {
                Ok(c) => {
                    accrue(
                        session,
                        classifier,
                        Usage::LlmInputTokens(c.input_tokens.into()),
                    );
                    accrue(
                        session,
                        classifier,
                        Usage::LlmOutputTokens(c.output_tokens.into()),
                    );
                    mapped = c.choice;
                }
                Err(err) => {
                    tracing::warn!(call_id = %session.call_id(), error = %err, "classifier failed; the parsers' answer stands");
                }
            }
        }
        let (input_text, original) = match mapped {
            Some(option) => (option, Some(text)),
            None => (text, None),
        };
        session.input(
            Input::Utterance {
                text: input_text,
                confidence,
                is_final: true,
            },
            original,
        )
    }
}

/// What a telephone call also uses: speech in, speech out, the line.
pub struct AudioVendors {
    /// Speech to text.
    pub stt: Priced<dyn SpeechToText>,
    /// Text to speech.
    pub tts: Priced<dyn TextToSpeech>,
    /// The telephony account, for per-minute cost.
    pub telephony: Priced<()>,
}

impl AudioVendors {
    /// The audio providers of `config`; a telephone call cannot go on
    /// without them.
    pub fn for_config(
        config: &CompiledConfig,
        credentials_dir: &Path,
    ) -> Result<Self, ProviderError> {
        let ns = &config.agent.namespace;
        let stt_cfg = config.providers.get("stt");
        let tts_cfg = config.providers.get("tts");
        let stt = build::stt_for(stt_cfg, &credentials(stt_cfg, credentials_dir, ns)?)?;
        let tts = build::tts_for(tts_cfg, &credentials(tts_cfg, credentials_dir, ns)?)?;
        Ok(Self {
            stt: priced(stt_cfg, stt),
            tts: priced(tts_cfg, tts),
            telephony: priced(config.providers.get("telephony"), Arc::new(())),
        })
    }
}

/// How long built adapters are reused: adapters hold HTTP clients, so they
/// are shared by the calls of a config version, and rebuilt now and then so
/// that rotated credentials (a Secret volume updates in place) are picked
/// up.
pub const REBUILD_AFTER: Duration = Duration::from_secs(60);

type Entries<T> = Mutex<HashMap<String, (Instant, Arc<T>)>>;

/// Adapters by config version.
pub struct VendorCache {
    credentials_dir: PathBuf,
    text: Entries<CallVendors>,
    audio: Entries<AudioVendors>,
}

fn cached<T>(entries: &Entries<T>, hash: &str) -> Option<Arc<T>> {
    let entries = entries.lock().ok()?;
    let (built, found) = entries.get(hash)?;
    (built.elapsed() < REBUILD_AFTER).then(|| found.clone())
}

fn remember<T>(entries: &Entries<T>, hash: &str, value: Arc<T>) {
    if let Ok(mut entries) = entries.lock() {
        entries.insert(hash.to_owned(), (Instant::now(), value));
    }
}

impl VendorCache {
    /// A cache reading credentials under `credentials_dir`.
    pub fn new(credentials_dir: PathBuf) -> Self {
        Self {
            credentials_dir,
            text: Mutex::new(HashMap::new()),
            audio: Mutex::new(HashMap::new()),
        }
    }

    /// The classifier of a pinned version.
    pub fn text(&self, pinned: &Pinned) -> Arc<CallVendors> {
        if let Some(found) = cached(&self.text, &pinned.hash) {
            return found;
        }
        let built = Arc::new(CallVendors::for_config(
            &pinned.config,
            &self.credentials_dir,
        ));
        remember(&self.text, &pinned.hash, built.clone());
        built
    }

    /// The audio providers of a pinned version (failures are not cached:
    /// the next call tries again).
    pub fn audio(&self, pinned: &Pinned) -> Result<Arc<AudioVendors>, ProviderError> {
        if let Some(found) = cached(&self.audio, &pinned.hash) {
            return Ok(found);
        }
        let built = Arc::new(AudioVendors::for_config(
            &pinned.config,
            &self.credentials_dir,
        )?);
        remember(&self.audio, &pinned.hash, built.clone());
        Ok(built)
    }
}
