//! The Dialtone operator: Tenant, Provider, ClusterProvider and Objective controllers
//! behind leader election, with `/metrics`, `/healthz` and `/readyz`.

mod leader;
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use dialtone_controllers::tenant::build::NetworkSettings;
use dialtone_controllers::{Leadership, Metrics, Shared, objective, provider, runtime, tenant};
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
    /// Only manage Tenants, Providers, ClusterProviders and Objectives matching this
    /// label selector (default: all). For canaries and end-to-end tests.
    #[arg(long, env = "DIALTONE_SELECTOR")]
    selector: Option<String>,
    /// Objects each controller reconciles at once.
    #[arg(long, env = "DIALTONE_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
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
}

async fn run(args: Args) -> Result<(), RunError> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    tracing::info!(identity, lease = %args.lease_name, namespace = %args.lease_namespace, "starting");
    let client = kube::Client::try_default().await?;

    let mut registry = Registry::with_prefix("dialtone");
    let metrics = Metrics::register(&mut registry);
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
    };
    let tenants_synced = Arc::new(AtomicBool::new(false));
    let providers_synced = Arc::new(AtomicBool::new(false));
    let cluster_synced = Arc::new(AtomicBool::new(false));
    let objectives_synced = Arc::new(AtomicBool::new(false));

    // Controllers start at once on every replica so the caches are warm;
    // reconcilers return early unless this replica leads.
    let tenant_task = tokio::spawn(tenant::run(shared.clone(), net, tenants_synced.clone()));
    let provider_task = tokio::spawn(provider::run(
        shared.clone(),
        providers_synced.clone(),
        cluster_synced.clone(),
    ));
    let objective_task = tokio::spawn(objective::run(shared.clone(), objectives_synced.clone()));
    let controllers_stopped = async move {
        let drained = async {
            let _ = tenant_task.await;
            let _ = provider_task.await;
            let _ = objective_task.await;
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
        synced: vec![
            ("tenants", tenants_synced),
            ("providers", providers_synced),
            ("clusterproviders", cluster_synced),
            ("objectives", objectives_synced),
        ],
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
