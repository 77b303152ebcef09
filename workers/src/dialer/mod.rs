//! The campaign dialer: the second loop of `dialtone-workers`. Leader-free:
//! every replica walks the due campaigns and takes a turn at each one whose
//! row it can lock ([`turn`]), then places the claimed calls through the
//! telephony account of the config version each caller id routes to.

pub mod pace;
pub mod turn;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialtone_engine::CompiledConfig;
use dialtone_engine::dialing::LegalFloor;
use dialtone_providers::Credentials;
use dialtone_providers::twilio::rest::{DEFAULT_BASE_URL, OutboundCall, TwilioRest};
use dialtone_spine::campaigns::{self, CampaignKey, DialOutcome};
use sqlx::PgPool;

use crate::metrics::DialerMetrics;
use turn::{Dial, TurnSettings};

/// How the dialer runs.
#[derive(Clone, Debug)]
pub struct DialerConfig {
    /// The voice pods' public base URL: Twilio fetches the answered call's
    /// TwiML and posts its status there.
    pub voice_url: String,
    /// Where provider Secrets are mounted.
    pub credentials_dir: PathBuf,
    /// The legal floor.
    pub floor: LegalFloor,
    /// Pause between walks of the due campaigns.
    pub tick: Duration,
    /// How long a dial slot lasts without a terminal call status.
    pub dial_timeout: Duration,
    /// Seconds to let a call ring.
    pub ring_timeout_seconds: u32,
}

/// Why a call could not be placed.
#[derive(Debug, thiserror::Error)]
enum PlaceError {
    #[error("config version {0} is missing")]
    NoVersion(String),
    #[error("the Agent's config has no Twilio telephony provider")]
    NoTelephony,
    #[error(transparent)]
    Version(#[from] dialtone_spine::versions::VersionError),
    #[error(transparent)]
    Credentials(#[from] dialtone_providers::credentials::CredentialsError),
    #[error(transparent)]
    Twilio(#[from] dialtone_providers::ProviderError),
}

impl PlaceError {
    /// Whether a retry cannot help: the lead fails at once.
    fn is_permanent(&self) -> bool {
        match self {
            PlaceError::Twilio(err) => !err.is_transient(),
            PlaceError::NoTelephony | PlaceError::Credentials(_) => true,
            PlaceError::NoVersion(_) | PlaceError::Version(_) => false,
        }
    }
}

/// Runs until `shutdown`: calls already placed are Twilio's to finish.
pub async fn run(
    pool: PgPool,
    cfg: DialerConfig,
    metrics: DialerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let settings = TurnSettings {
        floor: cfg.floor.clone(),
        tick: chrono::Duration::from_std(cfg.tick).unwrap_or(chrono::Duration::seconds(1)),
        dial_timeout: chrono::Duration::from_std(cfg.dial_timeout)
            .unwrap_or(chrono::Duration::minutes(30)),
    };
    let cfg = Arc::new(cfg);
    let versions: Arc<tokio::sync::Mutex<HashMap<String, Arc<CompiledConfig>>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let started = Instant::now();
        match walk(&pool, &cfg, &settings, &metrics, &versions).await {
            Ok(()) => {}
            Err(err) => tracing::warn!(error = %err, "dialer turn failed"),
        }
        metrics.walked(started.elapsed());
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(cfg.tick) => {}
        }
    }
    tracing::info!("dialer stopped");
}

async fn walk(
    pool: &PgPool,
    cfg: &Arc<DialerConfig>,
    settings: &TurnSettings,
    metrics: &DialerMetrics,
    versions: &Arc<tokio::sync::Mutex<HashMap<String, Arc<CompiledConfig>>>>,
) -> Result<(), turn::TurnError> {
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT namespace, name FROM campaigns
         WHERE active AND stopped IS NULL AND next_dial_at <= now()
         ORDER BY next_dial_at LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    for (namespace, name) in due {
        let key = CampaignKey { namespace, name };
        let released = turn::release_lost(pool, &key).await?;
        if released > 0 {
            tracing::warn!(campaign = %format!("{}/{}", key.namespace, key.name), released, "released dial slots whose calls never reported an end");
        }
        let started = Instant::now();
        let Some(turn) = turn::run(pool, settings, &key).await? else {
            continue;
        };
        let took = started.elapsed();
        metrics.turn(took);
        tracing::debug!(
            campaign = %format!("{}/{}", key.namespace, key.name),
            dials = turn.dials.len(),
            took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            "dialer turn"
        );
        if let Some(reason) = turn.held {
            tracing::info!(campaign = %format!("{}/{}", key.namespace, key.name), reason, "campaign held");
        }
        let placing = turn.dials.into_iter().map(|dial| {
            let (pool, cfg, metrics, versions) =
                (pool.clone(), cfg.clone(), metrics.clone(), versions.clone());
            async move { place(&pool, &cfg, &metrics, &versions, dial).await }
        });
        futures::future::join_all(placing).await;
    }
    Ok(())
}

async fn place(
    pool: &PgPool,
    cfg: &DialerConfig,
    metrics: &DialerMetrics,
    versions: &tokio::sync::Mutex<HashMap<String, Arc<CompiledConfig>>>,
    dial: Dial,
) {
    let result = create_call(pool, cfg, versions, &dial).await;
    let campaign = format!("{}/{}", dial.key.namespace, dial.key.name);
    let recorded = match result {
        Ok(sid) => {
            metrics.dialed(&dial.tenant, "placed");
            tracing::info!(%campaign, attempt = %dial.attempt_id, call_sid = %sid, "call placed");
            campaigns::placed(pool, dial.attempt_id, &sid).await
        }
        Err(err) if err.is_permanent() => {
            metrics.dialed(&dial.tenant, "refused");
            tracing::warn!(%campaign, attempt = %dial.attempt_id, error = %err, "call refused; the lead fails");
            campaigns::refuse_attempt(pool, dial.attempt_id, &err.to_string()).await
        }
        Err(err) => {
            metrics.dialed(&dial.tenant, "error");
            tracing::warn!(%campaign, attempt = %dial.attempt_id, error = %err, "call not placed; the lead retries");
            campaigns::finish_attempt(
                pool,
                dial.attempt_id,
                DialOutcome::Failed,
                Some(&err.to_string()),
            )
            .await
            .map(drop)
        }
    };
    if let Err(err) = recorded {
        // The slot is released by the dial timeout.
        tracing::error!(%campaign, attempt = %dial.attempt_id, error = %err, "cannot record the dial");
    }
}

async fn create_call(
    pool: &PgPool,
    cfg: &DialerConfig,
    versions: &tokio::sync::Mutex<HashMap<String, Arc<CompiledConfig>>>,
    dial: &Dial,
) -> Result<String, PlaceError> {
    let config = {
        let mut cache = versions.lock().await;
        match cache.get(&dial.config_version) {
            Some(c) => c.clone(),
            None => {
                let loaded = dialtone_spine::versions::load(pool, &dial.config_version)
                    .await?
                    .ok_or_else(|| PlaceError::NoVersion(dial.config_version.clone()))?;
                let loaded = Arc::new(loaded);
                cache.insert(dial.config_version.clone(), loaded.clone());
                loaded
            }
        }
    };
    let provider = config
        .providers
        .get("telephony")
        .filter(|p| p.vendor == dialtone_crds::provider::Vendor::Twilio)
        .ok_or(PlaceError::NoTelephony)?;
    let creds = Credentials::load(&cfg.credentials_dir, provider, &config.agent.namespace)?;
    let rest = TwilioRest {
        base_url: provider
            .settings
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        account_sid: creds.require("accountSid")?.to_owned(),
        auth_token: creds.require("authToken")?.to_owned(),
    };
    let base = cfg.voice_url.trim_end_matches('/');
    let url = format!("{base}/twilio/outbound?attempt={}", dial.attempt_id);
    let status_callback = format!("{base}/twilio/status?attempt={}", dial.attempt_id);
    let call = OutboundCall {
        to: &dial.phone,
        from: &dial.caller_id,
        url: &url,
        status_callback: &status_callback,
        machine_detection: Some(dial.machine_detection),
        ring_timeout_seconds: cfg.ring_timeout_seconds,
    };
    Ok(rest.create_call(&call).await?)
}
