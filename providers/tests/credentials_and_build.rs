//! Credentials read from a Secret volume layout, and adapter selection.

// Helpers outside #[test] fns (fake vendor servers, fixtures) unwrap; a
// panic there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use dialtone_crds::agent::ProviderKind;
use dialtone_crds::provider::{Pricing, ProviderSettings, ProviderType, Vendor};
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::build::{classifier_for, stt_for, tts_for};
use dialtone_providers::stt::{SttConfig, SttEvent, SttInput};
use dialtone_providers::{Credentials, CredentialsError, ProviderError, audio};

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("dialtone-providers-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn provider(name: &str, kind: ProviderKind, type_: ProviderType, vendor: Vendor) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind,
        type_,
        vendor,
        settings: ProviderSettings::default(),
        pricing: Pricing::default(),
        rate_limits: None,
    }
}

#[test]
fn namespaced_and_cluster_providers_read_their_own_directories() {
    let dir = TempDir::new("layout");
    dir.write("plumbing/twilio-main/accountSid", "AC123\n");
    dir.write("plumbing/twilio-main/authToken", "tok-abc\r\n");
    dir.write("_cluster/deepgram/apiKey", "dg-key");
    // Another tenant's provider of the same name must not be read.
    dir.write("other/deepgram/apiKey", "not-ours");

    let twilio = provider(
        "twilio-main",
        ProviderKind::Provider,
        ProviderType::Telephony,
        Vendor::Twilio,
    );
    let creds = Credentials::load(dir.path(), &twilio, "plumbing").unwrap();
    assert_eq!(creds.get("accountSid"), Some("AC123"));
    assert_eq!(creds.get("authToken"), Some("tok-abc"));
    let shown = format!("{creds:?}");
    assert!(
        !shown.contains("tok-abc") && !shown.contains("AC123"),
        "{shown}"
    );

    let deepgram = provider(
        "deepgram",
        ProviderKind::ClusterProvider,
        ProviderType::Stt,
        Vendor::Deepgram,
    );
    let creds = Credentials::load(dir.path(), &deepgram, "other").unwrap();
    assert_eq!(creds.get("apiKey"), Some("dg-key"));

    // A tenant whose namespace is called `cluster` reads its own Provider,
    // never the platform's ClusterProvider of the same name.
    dir.write("cluster/deepgram/apiKey", "tenant-key");
    let tenants = provider(
        "deepgram",
        ProviderKind::Provider,
        ProviderType::Stt,
        Vendor::Deepgram,
    );
    let creds = Credentials::load(dir.path(), &tenants, "cluster").unwrap();
    assert_eq!(creds.get("apiKey"), Some("tenant-key"));
    let creds = Credentials::load(dir.path(), &deepgram, "cluster").unwrap();
    assert_eq!(creds.get("apiKey"), Some("dg-key"));
}

#[test]
fn a_missing_or_empty_file_is_named_without_any_value() {
    let dir = TempDir::new("missing");
    dir.write("plumbing/twilio-main/accountSid", "AC-secretish\n");
    let twilio = provider(
        "twilio-main",
        ProviderKind::Provider,
        ProviderType::Telephony,
        Vendor::Twilio,
    );
    let err = Credentials::load(dir.path(), &twilio, "plumbing").unwrap_err();
    match &err {
        CredentialsError::Missing { provider, path } => {
            assert_eq!(provider, "twilio-main");
            assert_eq!(path, &dir.path().join("plumbing/twilio-main/authToken"));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("authToken") && !text.contains("AC-secretish"),
        "{text}"
    );

    dir.write("plumbing/twilio-main/authToken", "\n");
    assert!(matches!(
        Credentials::load(dir.path(), &twilio, "plumbing"),
        Err(CredentialsError::Empty { .. })
    ));
    assert!(matches!(
        Credentials::load(dir.path(), &twilio, "../plumbing"),
        Err(CredentialsError::InvalidName {
            what: "namespace",
            ..
        })
    ));
}

#[test]
fn builtin_and_sip_need_no_files() {
    let nowhere = Path::new("/nonexistent/dialtone/credentials");
    for vendor in [Vendor::Builtin, Vendor::Sip] {
        let cfg = provider("x", ProviderKind::Provider, ProviderType::Telephony, vendor);
        let creds = Credentials::load(nowhere, &cfg, "ns").unwrap();
        assert_eq!(creds.get("apiKey"), None);
    }
}

#[tokio::test]
async fn no_provider_or_builtin_gets_the_offline_adapters() {
    let none = Credentials::default();
    let builtin_llm = provider(
        "b",
        ProviderKind::Provider,
        ProviderType::Llm,
        Vendor::Builtin,
    );
    for cfg in [None, Some(&builtin_llm)] {
        let choice = classifier_for(cfg, &none)
            .unwrap()
            .classify(
                "put me through to support",
                &["sales".into(), "support".into()],
            )
            .await
            .unwrap();
        assert_eq!(choice.choice.as_deref(), Some("support"));
        assert_eq!((choice.input_tokens, choice.output_tokens), (0, 0));
    }

    let mut session = stt_for(None, &none)
        .unwrap()
        .open(&SttConfig::default())
        .await
        .unwrap();
    session
        .audio
        .send(SttInput::Audio(vec![0xFF; 8_000].into()))
        .await
        .unwrap();
    session.audio.send(SttInput::Finish).await.unwrap();
    assert_eq!(
        session.events.recv().await,
        Some(SttEvent::Closed { audio_seconds: 1.0 })
    );

    let mut rx = tts_for(None, &none)
        .unwrap()
        .synthesize("hi")
        .await
        .unwrap();
    let mut said = Vec::new();
    while let Some(chunk) = rx.recv().await {
        said.extend_from_slice(&chunk.unwrap());
    }
    let espeak_installed = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("espeak-ng").is_file()));
    if espeak_installed {
        assert!(!said.is_empty());
    } else {
        assert_eq!(said, audio::tone("hi"));
    }
}

#[test]
fn unusable_configs_are_config_errors() {
    let creds = Credentials::from_values("p", [("apiKey", "k")]);
    let deepgram_as_llm = provider(
        "p",
        ProviderKind::Provider,
        ProviderType::Stt,
        Vendor::Deepgram,
    );
    let err = classifier_for(Some(&deepgram_as_llm), &creds)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "deepgram provider is not usable: provider \"p\" is a stt provider, used as llm"
    );

    let no_voice = provider(
        "p",
        ProviderKind::Provider,
        ProviderType::Tts,
        Vendor::Elevenlabs,
    );
    assert!(matches!(
        tts_for(Some(&no_voice), &creds).err().unwrap(),
        ProviderError::Config { vendor: "elevenlabs", ref message } if message.contains("voiceId")
    ));
    let cartesia = provider(
        "p",
        ProviderKind::Provider,
        ProviderType::Tts,
        Vendor::Cartesia,
    );
    assert!(matches!(
        tts_for(Some(&cartesia), &creds).err().unwrap(),
        ProviderError::Config {
            vendor: "cartesia",
            ..
        }
    ));
    let no_model = provider(
        "p",
        ProviderKind::Provider,
        ProviderType::Llm,
        Vendor::Openai,
    );
    assert!(matches!(
        classifier_for(Some(&no_model), &creds).err().unwrap(),
        ProviderError::Config { vendor: "openai", ref message } if message.contains("model")
    ));
    let twilio_as_stt = provider(
        "p",
        ProviderKind::Provider,
        ProviderType::Stt,
        Vendor::Twilio,
    );
    assert!(matches!(
        stt_for(Some(&twilio_as_stt), &creds).err().unwrap(),
        ProviderError::Config {
            vendor: "twilio",
            ..
        }
    ));
    // A vendor that needs a key, without one.
    let deepgram = provider(
        "dg",
        ProviderKind::Provider,
        ProviderType::Stt,
        Vendor::Deepgram,
    );
    assert!(matches!(
        stt_for(Some(&deepgram), &Credentials::default()).err().unwrap(),
        ProviderError::Credentials(CredentialsError::NoSuchKey { ref key, .. }) if key == "apiKey"
    ));
}
