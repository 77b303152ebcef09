//! `dialtone-workers`: delivers the workflow jobs of the outbox, and dials
//! the campaigns (when `--voice-url` is given).
//!
//! Serves `/metrics`, `/healthz` (the process runs) and `/readyz`
//! (PostgreSQL answers) on `--listen`. SIGTERM stops claiming and finishes
//! the jobs in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use dialtone_crds::campaign::CampaignPurpose;
use dialtone_engine::dialing::{DialWindows, LegalFloor};
use dialtone_workers::dialer::{self, DialerConfig};
use dialtone_workers::metrics::{DialerMetrics, Metrics};
use dialtone_workers::queue::{ClaimOptions, Scope};
use dialtone_workers::worker::{self, WorkerConfig};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Delivers workflow jobs: bookings, CRM records, SMS, email, webhooks.
#[derive(Parser, Debug)]
#[command(name = "dialtone-workers", version)]
struct Args {
    /// PostgreSQL, as the operator and voice pods use it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address for /metrics and the probes.
    #[arg(long, env = "DIALTONE_LISTEN", default_value = "0.0.0.0:9090")]
    listen: SocketAddr,
    /// Where provider Secrets are mounted (`<dir>/<namespace>/<provider>/<key>`).
    #[arg(
        long,
        env = "DIALTONE_CREDENTIALS_DIR",
        default_value = "/var/run/dialtone/credentials"
    )]
    credentials_dir: PathBuf,
    /// This worker's name in job leases (the pod name).
    #[arg(long, env = "POD_NAME")]
    worker_id: Option<String>,
    /// Most jobs per claim.
    #[arg(long, default_value_t = 32)]
    batch: i64,
    /// Most jobs of one tenant per claim (fairness).
    #[arg(long, default_value_t = 4)]
    per_tenant: i64,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds a claim lasts; a worker that stops answering loses its jobs
    /// after this long. Must exceed --request-timeout-seconds.
    #[arg(long, default_value_t = 60.0)]
    lease_seconds: f64,
    /// Longest one vendor request may take.
    #[arg(long, default_value_t = 15.0)]
    request_timeout_seconds: f64,
    /// Pause between claims that found nothing, in milliseconds.
    #[arg(long, default_value_t = 200)]
    idle_poll_ms: u64,
    /// Take only this tenant's jobs (a Tenant with `isolation: dedicated`;
    /// repeatable).
    #[arg(long, conflicts_with = "exclude_tenant")]
    tenant: Vec<String>,
    /// Leave this tenant's jobs to its dedicated workers (repeatable).
    #[arg(long)]
    exclude_tenant: Vec<String>,
    /// The voice pods' public base URL, for the Twilio callbacks of
    /// campaign calls; without it this process does not dial.
    #[arg(long, env = "DIALTONE_VOICE_PUBLIC_URL")]
    voice_url: Option<String>,
    /// The platform's legal calling hours and public holidays (JSON, see
    /// docs/campaigns.md); the default is Australia's.
    #[arg(long, env = "DIALTONE_LEGAL_FLOOR")]
    legal_floor: Option<PathBuf>,
    /// Pause between the dialer's walks of the due campaigns, in ms.
    #[arg(long, default_value_t = 250)]
    dialer_tick_ms: u64,
    /// Seconds a dial slot lasts when Twilio never reports the call's end.
    #[arg(long, default_value_t = 1800)]
    dial_timeout_seconds: u64,
    /// Seconds a campaign call may ring.
    #[arg(long, default_value_t = 25)]
    ring_timeout_seconds: u32,
}

/// Why the workers stopped with an error.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("--lease-seconds ({lease}) must exceed --request-timeout-seconds ({timeout})")]
    Lease { lease: f64, timeout: f64 },
    #[error("connecting to PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] dialtone_spine::schema::SchemaError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving {0}")]
    Serve(#[source] std::io::Error),
    #[error("reading the legal floor {path}: {message}")]
    Floor { path: PathBuf, message: String },
}

fn legal_floor(path: Option<&PathBuf>) -> Result<LegalFloor, RunError> {
    let Some(path) = path else {
        return Ok(LegalFloor::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| RunError::Floor {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let floor: LegalFloor = serde_json::from_str(&text).map_err(|e| RunError::Floor {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // Parse every span and date now, not at the first dial.
    let probe = dialtone_crds::campaign::Schedule {
        windows: Vec::new(),
        start_date: None,
        end_date: None,
    };
    for purpose in [CampaignPurpose::Telemarketing, CampaignPurpose::Research] {
        DialWindows::new(&probe, purpose, &floor, &[]).map_err(|e| RunError::Floor {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(floor)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();
}

fn main() -> ExitCode {
    init_logging();
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "workers stopped");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    registry: Arc<Registry>,
}

async fn run(args: Args) -> Result<(), RunError> {
    if args.lease_seconds <= args.request_timeout_seconds {
        return Err(RunError::Lease {
            lease: args.lease_seconds,
            timeout: args.request_timeout_seconds,
        });
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&args.database_url)
        .await?;
    // Connected, so the check gets its answer.
    dialtone_spine::schema::check(&pool, Duration::from_secs(10)).await?;
    let floor = legal_floor(args.legal_floor.as_ref())?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(registry.sub_registry_with_prefix("dialtone_workflow"));
    let dialer_metrics =
        DialerMetrics::register(registry.sub_registry_with_prefix("dialtone_campaign"));
    registry.register_collector(Box::new(dialtone_process_metrics::ProcessCollector));
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let scope = if !args.tenant.is_empty() {
        Scope::Tenants(args.tenant.clone())
    } else if args.exclude_tenant.is_empty() {
        Scope::Shared
    } else {
        Scope::SharedExcept(args.exclude_tenant.clone())
    };
    let cfg = WorkerConfig {
        claim: ClaimOptions {
            worker: worker_id.clone(),
            batch: args.batch.max(1),
            per_tenant: args.per_tenant.max(1),
            lease_seconds: args.lease_seconds,
            scope,
        },
        concurrency: args.concurrency.max(1),
        idle_poll: Duration::from_millis(args.idle_poll_ms.max(1)),
        credentials_dir: args.credentials_dir.clone(),
        request_timeout: Duration::from_secs_f64(args.request_timeout_seconds),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: args.listen,
            source,
        })?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(AppState {
            pool: pool.clone(),
            registry: Arc::new(registry),
        });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });
    tracing::info!(worker = %worker_id, listen = %args.listen, "workers started");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let dialer = match args.voice_url.clone() {
        Some(voice_url) => {
            let dialer_cfg = DialerConfig {
                voice_url,
                credentials_dir: args.credentials_dir.clone(),
                floor,
                tick: Duration::from_millis(args.dialer_tick_ms.max(10)),
                dial_timeout: Duration::from_secs(args.dial_timeout_seconds.max(60)),
                ring_timeout_seconds: args.ring_timeout_seconds.clamp(5, 600),
            };
            tracing::info!("campaign dialer started");
            Some(tokio::spawn(dialer::run(
                pool.clone(),
                dialer_cfg,
                dialer_metrics,
                until_stopped(stopped.clone()),
            )))
        }
        None => {
            tracing::info!("no --voice-url: this process does not dial campaigns");
            None
        }
    };
    let report = worker::run(pool, cfg, metrics, until_stopped(stopped)).await;
    if let Some(dialer) = dialer
        && let Err(err) = dialer.await
    {
        tracing::warn!(error = %err, "the dialer task failed");
    }
    tracing::info!(
        succeeded = report.succeeded,
        failed = report.failed,
        dead = report.dead,
        waited = report.waited,
        "stopped"
    );
    let _ = stop_http.send(());
    match server.await {
        Ok(result) => result.map_err(RunError::Serve),
        Err(e) => {
            tracing::warn!(error = %e, "the HTTP server task failed");
            Ok(())
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned())
}

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("PostgreSQL: {e}")),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
