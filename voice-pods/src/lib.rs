//! The Voice Core runtime: Twilio's voice webhook and Media Streams, the
//! `/v1/calls` text socket, the objective engine at each call's pinned
//! config version, provider adapters, call events and cost.
//!
//! [`start`] builds a [`Pod`] (database pool, event writer, metrics);
//! [`serve`] answers calls until its shutdown future resolves, then drains:
//! no new calls, calls in progress get the grace period, the rest are
//! closed as `drained`, and every event is flushed before it returns.

#[cfg(feature = "caller")]
pub mod audio_caller;
pub mod drain;
pub mod listener;
pub mod media;
pub mod media_call;
pub mod metrics;
pub mod outbound;
pub mod pod;
pub mod server;
pub mod session;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text_call;
pub mod textproto;
pub mod token;
pub mod twiml;
pub mod vendors;
pub mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dialtone_spine::writer::{EventWriter, WriterConfig, WriterError, WriterTask};
use prometheus_client::registry::Registry;
use sqlx::postgres::PgPoolOptions;

pub use drain::DrainReport;
pub use pod::{Pod, Settings};

use crate::drain::Drain;
use crate::listener::{BoundedListener, FIRST_BYTE_DEADLINE};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::token::SpentTickets;
use crate::vendors::VendorCache;

/// Connections to PostgreSQL per pod: routes, versions and the event
/// writer's batches; calls never hold one.
const POOL_SIZE: u32 = 8;

/// How often readiness retries PostgreSQL until it first answers.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Why the pod cannot start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The database URL does not parse.
    #[error("database URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
    /// The event writer could not make every event durable.
    #[error("event writer: {0}")]
    Writer(#[from] WriterError),
}

/// Builds a pod: a lazy pool (the pod starts while PostgreSQL is down and
/// reports not ready), the event writer with its spill file, the metrics.
pub fn start(
    settings: Settings,
    database_url: &str,
    spill_path: PathBuf,
) -> Result<(Arc<Pod>, WriterTask), PodError> {
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(database_url)
        .map_err(PodError::DatabaseUrl)?;
    let (events, writer) = EventWriter::start(pool.clone(), WriterConfig::new(spill_path));
    let mut registry = Registry::default();
    let metrics = Metrics::register(registry.sub_registry_with_prefix("dialtone_voice"));
    registry.register_collector(Box::new(dialtone_process_metrics::ProcessCollector));
    let pod = Pod {
        vendors: VendorCache::new(settings.credentials_dir.clone()),
        store: Store::new(pool),
        events,
        metrics,
        registry,
        drain: Arc::new(Drain::new(settings.max_calls)),
        spent_tickets: SpentTickets::default(),
        settings,
    };
    Ok((Arc::new(pod), writer))
}

/// Serves `/metrics` on `listener` for as long as the process runs.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    pod: Arc<Pod>,
) -> Result<(), PodError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "metrics serving");
    axum::serve(listener, server::metrics_router(pod)).await?;
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves, then drains the calls,
/// stops the server and flushes the event writer.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pod: Arc<Pod>,
    writer: WriterTask,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<DrainReport, PodError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "voice pod serving");
    let pinger = {
        let pod = pod.clone();
        tokio::spawn(async move {
            while let Err(err) = pod.store.ping().await {
                tracing::warn!(error = %err, "PostgreSQL not reachable yet");
                tokio::time::sleep(PING_INTERVAL).await;
            }
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = BoundedListener::new(
        listener,
        pod.settings.max_connections,
        FIRST_BYTE_DEADLINE,
        pod.metrics.connections_shed(),
    );
    let server = tokio::spawn(
        axum::serve(listener, server::router(pod.clone()))
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    shutdown.await;
    tracing::info!(
        active = pod.drain.active(),
        grace_seconds = pod.settings.drain.as_secs(),
        "draining: no new calls"
    );
    pod.metrics.draining();
    let report = pod.drain.drain(pod.settings.drain).await;
    tracing::info!(forced = report.forced, "calls drained");
    pinger.abort();
    let _ = stop_tx.send(());
    // Upgraded sockets are no longer the server's, and every call has
    // closed; what is left is idle keep-alive connections.
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::warn!(error = %join, "server task failed"),
        Err(_) => tracing::warn!("server did not stop within 5 s"),
    }
    writer.shutdown().await?;
    tracing::info!("events flushed; stopped");
    Ok(report)
}
