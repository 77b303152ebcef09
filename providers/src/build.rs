//! Picks the adapter for a role from the compiled provider config. A role
//! without a provider, or with the `builtin` vendor, gets the offline
//! adapter.
//!
//! Adapters hold their HTTP client; build them once per config version and
//! share the `Arc`, not once per call.

use std::sync::Arc;

use dialtone_crds::provider::{ProviderType, Vendor};
use dialtone_engine::config::ProviderConfig;

use crate::credentials::Credentials;
use crate::error::ProviderError;
use crate::llm::{self, Classifier, OpenAiCompatible};
use crate::stt::{self, Deepgram, SpeechToText};
use crate::tts::{self, ElevenLabs, TextToSpeech};

/// The credential key every API-key vendor uses.
const API_KEY: &str = "apiKey";

/// The speech to text adapter for `cfg`.
pub fn stt_for(
    cfg: Option<&ProviderConfig>,
    creds: &Credentials,
) -> Result<Arc<dyn SpeechToText>, ProviderError> {
    let Some(cfg) = vendor_config(cfg, ProviderType::Stt)? else {
        return Ok(Arc::new(stt::Builtin::shared()));
    };
    match cfg.vendor {
        Vendor::Deepgram => {
            let s = &cfg.settings;
            let mut dg = Deepgram::new(creds.require(API_KEY)?);
            if let Some(url) = &s.base_url {
                dg = dg.with_base_url(url);
            }
            if let Some(model) = &s.model {
                dg = dg.with_model(model);
            }
            if let Some(language) = &s.language {
                dg = dg.with_language(language);
            }
            Ok(Arc::new(dg))
        }
        other => Err(not_offered(other, "speech to text")),
    }
}

/// The text to speech adapter for `cfg`.
pub fn tts_for(
    cfg: Option<&ProviderConfig>,
    creds: &Credentials,
) -> Result<Arc<dyn TextToSpeech>, ProviderError> {
    let Some(cfg) = vendor_config(cfg, ProviderType::Tts)? else {
        let language = cfg.and_then(|c| c.settings.language.as_deref());
        return Ok(Arc::new(tts::Builtin::new(language)));
    };
    match cfg.vendor {
        Vendor::Elevenlabs => {
            let s = &cfg.settings;
            let voice_id = s.voice_id.as_deref().ok_or(ProviderError::Config {
                vendor: "elevenlabs",
                message: format!("provider {:?} sets no settings.voiceId", cfg.name),
            })?;
            let mut tts = ElevenLabs::new(creds.require(API_KEY)?, voice_id)?;
            if let Some(url) = &s.base_url {
                tts = tts.with_base_url(url);
            }
            if let Some(model) = &s.model {
                tts = tts.with_model(model);
            }
            if let Some(language) = &s.language {
                tts = tts.with_language(language);
            }
            Ok(Arc::new(tts))
        }
        Vendor::Cartesia => Err(ProviderError::Config {
            vendor: "cartesia",
            message: "this Voice Core has no cartesia adapter yet; use elevenlabs or builtin"
                .to_owned(),
        }),
        other => Err(not_offered(other, "text to speech")),
    }
}

/// The classifier for `cfg`.
pub fn classifier_for(
    cfg: Option<&ProviderConfig>,
    creds: &Credentials,
) -> Result<Arc<dyn Classifier>, ProviderError> {
    let Some(cfg) = vendor_config(cfg, ProviderType::Llm)? else {
        return Ok(Arc::new(llm::Builtin));
    };
    match cfg.vendor {
        Vendor::Openai => {
            let s = &cfg.settings;
            let model = s.model.as_deref().ok_or(ProviderError::Config {
                vendor: "openai",
                message: format!("provider {:?} sets no settings.model", cfg.name),
            })?;
            let mut llm = OpenAiCompatible::new(creds.require(API_KEY)?, model)?;
            if let Some(url) = &s.base_url {
                llm = llm.with_base_url(url);
            }
            Ok(Arc::new(llm))
        }
        other => Err(not_offered(other, "classification")),
    }
}

/// `cfg` when it names a vendor other than builtin, after checking it is a
/// provider of the role's type.
fn vendor_config(
    cfg: Option<&ProviderConfig>,
    role: ProviderType,
) -> Result<Option<&ProviderConfig>, ProviderError> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    if cfg.type_ != role {
        return Err(ProviderError::Config {
            vendor: cfg.vendor.as_str(),
            message: format!(
                "provider {:?} is a {} provider, used as {}",
                cfg.name,
                cfg.type_.as_str(),
                role.as_str()
            ),
        });
    }
    Ok((cfg.vendor != Vendor::Builtin).then_some(cfg))
}

fn not_offered(vendor: Vendor, what: &str) -> ProviderError {
    ProviderError::Config {
        vendor: vendor.as_str(),
        message: format!("{} does not offer {what}", vendor.as_str()),
    }
}
