//! `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use dialtone_controllers::Leadership;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// The metrics registry.
    pub registry: Arc<Registry>,
    /// One flag per cache; ready once all are synced.
    pub synced: Vec<(&'static str, Arc<AtomicBool>)>,
    /// Whether this replica leads (reported by `/readyz`).
    pub leadership: Leadership,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        ),
    }
}

/// Ready once every cache has its first full list — on the leader and on
/// standbys alike (a standby is a warm, healthy replica).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let pending: Vec<&str> = state
        .synced
        .iter()
        .filter(|(_, f)| !f.load(Ordering::SeqCst))
        .map(|(name, _)| *name)
        .collect();
    let role = if state.leadership.is_leader() {
        "leader"
    } else {
        "standby"
    };
    if pending.is_empty() {
        (StatusCode::OK, format!("ok ({role})\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for caches: {}\n", pending.join(", ")),
        )
    }
}

/// Serves on `listener` (bound by the caller, so that a port in use fails
/// the start rather than leaving the operator without probes) until
/// `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
