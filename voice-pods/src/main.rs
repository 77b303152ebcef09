//! `dialtone-voice`: the Voice Core runtime binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dialtone_voice::pod::Silence;
use dialtone_voice::token::StreamSecret;
use dialtone_voice::{PodError, Settings};

/// Command line and environment of a voice pod.
#[derive(Parser, Debug)]
#[command(
    name = "dialtone-voice",
    version,
    about = "The Dialtone Voice Core runtime"
)]
struct Args {
    /// Address to serve the webhook, the sockets and the probes on.
    #[arg(long, env = "DIALTONE_VOICE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of `/metrics` (kept off the public listener).
    #[arg(
        long,
        env = "DIALTONE_VOICE_METRICS_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    metrics_listen: SocketAddr,
    /// The base URL Twilio reaches this pod pool at, e.g.
    /// https://voice.example.com; webhook signatures are checked against it.
    #[arg(long, env = "DIALTONE_PUBLIC_URL")]
    public_url: String,
    /// PostgreSQL (routes, config versions, call events).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Where provider credentials are mounted:
    /// <dir>/<namespace or "_cluster">/<provider>/<key>.
    #[arg(
        long,
        env = "DIALTONE_CREDENTIALS_DIR",
        default_value = "/var/run/dialtone/credentials"
    )]
    credentials_dir: PathBuf,
    /// The event writer's spill file, used while PostgreSQL is unreachable.
    #[arg(
        long,
        env = "DIALTONE_SPILL_PATH",
        default_value = "/var/lib/dialtone/events.spill"
    )]
    spill_path: PathBuf,
    /// The media stream token key shared by the pods of a pool (at least 16
    /// bytes). Prefer --stream-secret-file.
    #[arg(long, env = "DIALTONE_STREAM_SECRET", hide_env_values = true)]
    stream_secret: Option<String>,
    /// A file holding the media stream token key.
    #[arg(
        long,
        env = "DIALTONE_STREAM_SECRET_FILE",
        conflicts_with = "stream_secret"
    )]
    stream_secret_file: Option<PathBuf>,
    /// Seconds calls may take to finish after SIGTERM before they are
    /// closed as drained.
    #[arg(long, env = "DIALTONE_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// A file holding the platform's Twilio auth token, which verifies
    /// webhooks for numbers that route to no Agent.
    #[arg(long, env = "DIALTONE_DEFAULT_TWILIO_TOKEN_FILE")]
    default_twilio_token_file: Option<PathBuf>,
    /// Calls this pod carries at once, all tenants together; more get 503
    /// (another pod of the pool may take them).
    #[arg(long, env = "DIALTONE_MAX_CALLS", default_value_t = 1_000)]
    max_calls: usize,
    /// TCP connections held open at once; more are closed on arrival.
    #[arg(long, env = "DIALTONE_MAX_CONNECTIONS", default_value_t = 4_096)]
    max_connections: usize,
    /// Seconds a text call may go without a message before it is closed.
    #[arg(long, env = "DIALTONE_TEXT_IDLE_SECONDS", default_value_t = 300)]
    text_idle_seconds: u64,
    /// Seconds a caller may stay silent before the objective's silence
    /// policy applies, for every step; unset: 5 s for yes/no and choices,
    /// 6 s for names, dates and times, 8 s for digits and addresses.
    #[arg(long, env = "DIALTONE_SILENCE_SECONDS")]
    silence_seconds: Option<u64>,
}

/// Why the pod did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{what} {}: {source}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a stream secret is required: --stream-secret-file or DIALTONE_STREAM_SECRET")]
    NoStreamSecret,
    #[error(transparent)]
    Schema(#[from] dialtone_spine::schema::SchemaError),
    #[error(transparent)]
    WeakSecret(#[from] dialtone_voice::token::WeakSecret),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pod(#[from] PodError),
}

fn read(what: &'static str, path: &Path) -> Result<String, RunError> {
    std::fs::read_to_string(path).map_err(|source| RunError::Read {
        what,
        path: path.to_owned(),
        source,
    })
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
            tracing::error!(error = %err, "voice pod stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), RunError> {
    let secret = match (&args.stream_secret, &args.stream_secret_file) {
        (Some(value), _) => value.clone(),
        (None, Some(path)) => read("stream secret file", path)?,
        (None, None) => return Err(RunError::NoStreamSecret),
    };
    let default_twilio_token = args
        .default_twilio_token_file
        .as_deref()
        .map(|p| read("default Twilio token file", p).map(|t| t.trim().to_owned()))
        .transpose()?
        .filter(|t| !t.is_empty());
    let settings = Settings {
        public_url: args.public_url.clone(),
        credentials_dir: args.credentials_dir.clone(),
        stream_secret: StreamSecret::new(secret.as_bytes())?,
        drain: Duration::from_secs(args.drain_seconds),
        default_twilio_token,
        max_calls: args.max_calls,
        max_connections: args.max_connections,
        text_idle: Duration::from_secs(args.text_idle_seconds),
        silence: args.silence_seconds.map_or(Silence::PerPrimitive, |s| {
            Silence::Fixed(Duration::from_secs(s))
        }),
    };
    let (pod, writer) = dialtone_voice::start(settings, &args.database_url, args.spill_path)?;
    // A pod that starts during an outage reports not ready and spills; it
    // checks the schema only if PostgreSQL answers now.
    if !dialtone_spine::schema::check(pod.store.pool(), Duration::from_secs(10)).await? {
        tracing::warn!("PostgreSQL did not answer; starting without checking its schema");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: args.listen,
            source,
        })?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: args.metrics_listen,
            source,
        })?;
    let metrics = tokio::spawn(dialtone_voice::serve_metrics(metrics, pod.clone()));
    let report = dialtone_voice::serve(listener, pod, writer, wait_for_signal()).await?;
    metrics.abort();
    tracing::info!(forced = report.forced, "stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
