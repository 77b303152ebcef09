//! The Dialtone operator: Tenant, Provider, ClusterProvider, Objective and
//! Agent controllers behind leader election, with `/metrics`, `/healthz` and
//! `/readyz`. The Agent controller needs PostgreSQL (`DATABASE_URL`); without
//! it the other controllers run and Agents are left alone.

mod leader;
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use dialtone_controllers::agent::build::{PoolSettings, VoiceSettings};
use dialtone_controllers::tenant::build::NetworkSettings;
use dialtone_controllers::tenant::pull_secrets::PullSecrets;
use dialtone_controllers::{
    Leadership, Metrics, Shared, agent, campaign, objective, provider, runtime, tenant,
};
use dialtone_spine::schema;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Command line and environment of the operator.
#[derive(Parser, Debug)]
#[command(
    name = "dialtone-operator",
    version,
    about = "The Dialtone Kubernetes operator"
)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "DIALTONE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "dialtone-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "DIALTONE_LEASE_NAME", default_value = "dialtone-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and on Events; defaults to
    /// POD_NAME, else hostname-pid.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "DIALTONE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds between renewals by the leader (and retries by standbys).
    #[arg(long, env = "DIALTONE_RENEW_SECONDS", default_value_t = 5)]
    renew_seconds: u64,
    /// Namespace of the platform's telephony ingress (may reach voice pods).
    #[arg(
        long,
        env = "DIALTONE_INGRESS_NAMESPACE",
        default_value = "dialtone-system"
    )]
    ingress_namespace: String,
    /// Namespace of the Prometheus that scrapes voice pods' metrics port
    /// (9090); without it, tenants' NetworkPolicies let nothing reach it.
    #[arg(long, env = "DIALTONE_MONITORING_NAMESPACE")]
    monitoring_namespace: Option<String>,
    /// Namespace of the platform's PostgreSQL (voice pods may reach it).
    #[arg(
        long,
        env = "DIALTONE_PLATFORM_NAMESPACE",
        default_value = "dialtone-system"
    )]
    platform_namespace: String,
    /// Port voice pods listen on.
    #[arg(long, env = "DIALTONE_VOICE_PORT", default_value_t = 8080)]
    voice_port: i32,
    /// PostgreSQL port.
    #[arg(long, env = "DIALTONE_POSTGRES_PORT", default_value_t = 5432)]
    postgres_port: i32,
    /// Only manage Tenants, Providers, ClusterProviders, Objectives and Agents
    /// matching this label selector (default: all). For canaries and
    /// end-to-end tests; give each installation its own --voice-pool-name.
    #[arg(long, env = "DIALTONE_SELECTOR")]
    selector: Option<String>,
    /// Objects each controller reconciles at once.
    #[arg(long, env = "DIALTONE_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// PostgreSQL of the event spine (config versions, phone routes). The
    /// Agent controller runs only with it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections the operator keeps to PostgreSQL.
    #[arg(long, env = "DIALTONE_DATABASE_CONNECTIONS", default_value_t = 5)]
    database_connections: u32,
    /// The dialtone-voice image of voice pods.
    #[arg(long, env = "DIALTONE_VOICE_IMAGE", default_value = concat!("ghcr.io/dialtone/dialtone-voice:", env!("CARGO_PKG_VERSION")))]
    voice_image: String,
    /// The public base URL of the voice pods (e.g. https://voice.example.com):
    /// Twilio numbers get `<url>/twilio/voice` as their voice webhook. Unset,
    /// webhooks are not managed.
    #[arg(long, env = "DIALTONE_PUBLIC_VOICE_URL", value_parser = http_url)]
    public_voice_url: Option<String>,
    /// Seconds calls get to finish when a voice pod stops (its
    /// --drain-seconds; the pod's grace period adds 15).
    #[arg(long, env = "DIALTONE_VOICE_DRAIN_SECONDS", default_value_t = 300)]
    voice_drain_seconds: u32,
    /// The Secret (keys database-url and stream-secret) voice pods read in
    /// their namespace: each dedicated tenant's and the pool's.
    #[arg(long, env = "DIALTONE_VOICE_SECRET", default_value = "dialtone-voice")]
    voice_secret: String,
    /// Image pull Secrets voice pods pull with (repeatable), from the voice
    /// pool's namespace; copied into every tenant namespace.
    #[arg(
        long = "voice-image-pull-secret",
        env = "DIALTONE_VOICE_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    voice_image_pull_secrets: Vec<String>,
    /// Namespace of the shared voice pool; defaults to the Lease namespace
    /// (the operator's own).
    #[arg(long, env = "DIALTONE_VOICE_POOL_NAMESPACE")]
    voice_pool_namespace: Option<String>,
    /// Name of the shared voice pool's Deployment, Service,
    /// PodDisruptionBudget and ServiceAccount.
    #[arg(
        long,
        env = "DIALTONE_VOICE_POOL_NAME",
        default_value = "dialtone-voice-pool"
    )]
    voice_pool_name: String,
    /// Fewest shared pool replicas.
    #[arg(long, env = "DIALTONE_VOICE_POOL_MIN_REPLICAS", default_value_t = 2)]
    voice_pool_min_replicas: i32,
    /// Most shared pool replicas.
    #[arg(long, env = "DIALTONE_VOICE_POOL_MAX_REPLICAS", default_value_t = 20)]
    voice_pool_max_replicas: i32,
    /// Concurrent calls one shared pool pod carries.
    #[arg(long, env = "DIALTONE_VOICE_POOL_CALLS_PER_POD", default_value_t = 50)]
    voice_pool_calls_per_pod: i32,
    /// CPU request of a shared pool pod.
    #[arg(long, env = "DIALTONE_VOICE_POOL_CPU", default_value = "500m")]
    voice_pool_cpu: String,
    /// Memory request and limit of a shared pool pod.
    #[arg(long, env = "DIALTONE_VOICE_POOL_MEMORY", default_value = "512Mi")]
    voice_pool_memory: String,
}

fn http_url(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(trimmed.to_owned())
        }
        _ => Err(format!("{s:?} is not an http(s) URL")),
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dialtone-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();
}

/// glibc's malloc gives threads their own arenas and keeps freed pages in
/// them: with thousands of Agents churning through the caches its RSS was
/// several times the live heap. mimalloc returns freed pages to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the start waits for PostgreSQL to answer the schema check.
const SCHEMA_WAIT: Duration = Duration::from_secs(10);

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
        .worker_threads(2)
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
            tracing::error!(error = %err, "operator stopped");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("serving metrics: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("DATABASE_URL: {0}")]
    Database(#[source] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

async fn run(args: Args) -> Result<(), RunError> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    tracing::info!(identity, lease = %args.lease_name, namespace = %args.lease_namespace, "starting");
    let client = kube::Client::try_default().await?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(registry.sub_registry_with_prefix("dialtone"));
    registry.register_collector(Box::new(dialtone_process_metrics::ProcessCollector));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(false);
    let leadership = Leadership::new(leader_rx);

    let shared = Shared {
        client: client.clone(),
        metrics: Arc::new(metrics.clone()),
        leadership: leadership.clone(),
        shutdown: shutdown_rx.clone(),
        instance: identity.clone(),
        concurrency: args.concurrency.max(1),
        selector: args.selector.clone(),
    };
    let net = NetworkSettings {
        ingress_namespace: args.ingress_namespace.clone(),
        platform_namespace: args.platform_namespace.clone(),
        voice_port: args.voice_port,
        postgres_port: args.postgres_port,
        monitoring_namespace: args.monitoring_namespace.clone(),
    };
    let tenants_synced = Arc::new(AtomicBool::new(false));
    let providers_synced = Arc::new(AtomicBool::new(false));
    let cluster_synced = Arc::new(AtomicBool::new(false));
    let objectives_synced = Arc::new(AtomicBool::new(false));

    // Controllers start at once on every replica so the caches are warm;
    // reconcilers return early unless this replica leads.
    // Lazy: the operator starts (and its other controllers run) while
    // PostgreSQL is down; reconciles that need it fail and back off.
    let db = args
        .database_url
        .as_deref()
        .map(|url| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(args.database_connections.max(1))
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy(url)
        })
        .transpose()
        .map_err(RunError::Database)?;
    if let Some(pool) = &db {
        if schema::check(pool, SCHEMA_WAIT).await? {
            tracing::info!("the database schema is this release's");
        } else {
            tracing::warn!(
                "PostgreSQL did not answer within {SCHEMA_WAIT:?}; starting without checking its schema"
            );
        }
    }
    let pool_namespace = args
        .voice_pool_namespace
        .clone()
        .unwrap_or_else(|| args.lease_namespace.clone());
    let pull = PullSecrets {
        namespace: pool_namespace.clone(),
        names: args.voice_image_pull_secrets.clone(),
    };
    let tenant_task = tokio::spawn(tenant::run(
        shared.clone(),
        net,
        pull,
        db.clone(),
        tenants_synced.clone(),
    ));
    let provider_task = tokio::spawn(provider::run(
        shared.clone(),
        providers_synced.clone(),
        cluster_synced.clone(),
    ));
    let objective_task = tokio::spawn(objective::run(shared.clone(), objectives_synced.clone()));
    let mut synced = vec![
        ("tenants", tenants_synced),
        ("providers", providers_synced),
        ("clusterproviders", cluster_synced),
        ("objectives", objectives_synced),
    ];
    let campaign_task = db.clone().map(|db| {
        let campaigns_synced = Arc::new(AtomicBool::new(false));
        synced.push(("campaigns", campaigns_synced.clone()));
        tokio::spawn(campaign::run(shared.clone(), db, campaigns_synced))
    });
    let agent_task = match db {
        Some(db) => {
            let agents_synced = Arc::new(AtomicBool::new(false));
            synced.push(("agents", agents_synced.clone()));
            let settings = agent::Settings {
                voice: VoiceSettings {
                    image: args.voice_image.clone(),
                    port: args.voice_port,
                    drain_seconds: i64::from(args.voice_drain_seconds),
                    public_url: args.public_voice_url.clone(),
                    secret: args.voice_secret.clone(),
                    image_pull_secrets: args.voice_image_pull_secrets.clone(),
                },
                pool: PoolSettings {
                    namespace: pool_namespace,
                    name: args.voice_pool_name.clone(),
                    min_replicas: args.voice_pool_min_replicas,
                    max_replicas: args.voice_pool_max_replicas,
                    calls_per_pod: args.voice_pool_calls_per_pod,
                    cpu: args.voice_pool_cpu.clone(),
                    memory: args.voice_pool_memory.clone(),
                },
            };
            Some(tokio::spawn(agent::run(
                shared.clone(),
                settings,
                db,
                agents_synced,
            )))
        }
        None => {
            tracing::warn!(
                "no DATABASE_URL: the Agent controller does not run (config versions and phone routes live in PostgreSQL)"
            );
            None
        }
    };
    let controllers_stopped = async move {
        let drained = async {
            let _ = tenant_task.await;
            let _ = provider_task.await;
            let _ = objective_task.await;
            if let Some(task) = agent_task {
                let _ = task.await;
            }
            if let Some(task) = campaign_task {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .is_err()
        {
            tracing::warn!("controllers did not stop within 10 s");
        }
    };

    let state = server::AppState {
        registry: Arc::new(registry),
        synced,
        leadership,
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    let server = tokio::spawn(server::serve(
        listener,
        state,
        runtime::shutdown_future(&shutdown_rx),
    ));

    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
        // Keep the sender alive so receivers see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });

    let lease = leader::LeaseConfig {
        namespace: args.lease_namespace,
        name: args.lease_name,
        identity,
        duration: Duration::from_secs(args.lease_duration_seconds.max(2)),
        renew: Duration::from_secs(args.renew_seconds.max(1)),
    };
    let elected = leader::run(
        client,
        lease,
        leader_tx,
        metrics,
        shutdown_rx,
        controllers_stopped,
    )
    .await;
    if let Err(err) = elected {
        // Stop writing immediately: in-flight reconciles die with the process.
        tracing::error!(error = %err, "exiting so that the new leader is the only writer");
        std::process::exit(1);
    }
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::warn!(error = %join, "metrics server task failed"),
        Err(_) => tracing::warn!("metrics server did not stop within 5 s"),
    }
    tracing::info!("stopped");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_voice_url_must_be_http_and_loses_a_trailing_slash() {
        assert_eq!(
            http_url("https://voice.example.com/"),
            Ok("https://voice.example.com".to_owned())
        );
        assert_eq!(
            http_url("http://127.0.0.1:8080"),
            Ok("http://127.0.0.1:8080".to_owned())
        );
        assert!(http_url("voice.example.com").is_err());
        assert!(http_url("https://").is_err());
        assert!(http_url("https://voice example").is_err());
    }

    #[test]
    fn agent_flags_parse_with_their_defaults() {
        let args = Args::try_parse_from([
            "dialtone-operator",
            "--database-url",
            "postgres://x@localhost/db",
            "--public-voice-url",
            "https://voice.example.com/",
        ])
        .expect("parses");
        assert_eq!(
            args.public_voice_url.as_deref(),
            Some("https://voice.example.com")
        );
        assert_eq!(args.voice_drain_seconds, 300);
        assert_eq!(args.voice_secret, "dialtone-voice");
        assert_eq!(args.voice_pool_name, "dialtone-voice-pool");
        assert_eq!(args.voice_pool_namespace, None);
        assert!(
            args.voice_image
                .starts_with("ghcr.io/dialtone/dialtone-voice:")
        );
    }
}
