//! The HTTP surface: Twilio's webhook and media socket, the text call
//! socket and probes on the public listener; metrics on a listener of
//! their own, which the Service exposes only inside the cluster.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dialtone_engine::config::CompiledConfig;
use dialtone_spine::call_tokens::{self, Presented};
use dialtone_spine::event::{Channel, Direction};
use serde::Deserialize;
use uuid::Uuid;

use crate::drain::{CallGuard, Refused};
use crate::pod::Pod;
use crate::session::{CallMeta, Pinned};
use crate::store::StoreError;
use crate::{media_call, text_call, twiml, webhook};

/// Largest Media Streams message read: a 20 ms frame is about 400 bytes
/// and `start` a few hundred more; anything near this is not Twilio.
pub const MEDIA_MESSAGE_LIMIT: usize = 64 * 1024;

/// Largest text-call message read: an utterance, never a document.
pub const TEXT_MESSAGE_LIMIT: usize = 16 * 1024;

/// The router.
pub fn router(pod: Arc<Pod>) -> Router {
    Router::new()
        .route("/twilio/voice", post(webhook::voice))
        .route("/twilio/outbound", post(crate::outbound::answered))
        .route("/twilio/status", post(crate::outbound::status))
        .route("/twilio/media/{ticket}", get(media_socket))
        .route("/v1/calls", get(text_socket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(pod)
}

/// The metrics listener's router: tenant names, call counts and spend are
/// nobody's business on the public internet.
pub fn metrics_router(pod: Arc<Pod>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(pod)
}

fn unavailable(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

/// Admits a call of the config's tenant, counting a refusal.
fn admit(pod: &Pod, config: &CompiledConfig) -> Result<CallGuard, Refused> {
    let tenant = &config.tenant;
    let cap = tenant
        .max_concurrent_calls
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
    pod.drain.admit(&tenant.name, cap).inspect_err(|refused| {
        pod.metrics.refused(refused.as_str(), &tenant.name);
    })
}

/// The answer to a call not admitted: 503 with `Retry-After` when the pod
/// is draining or full (another pod may take it), 429 when the tenant is
/// at its limit.
fn refusal(refused: Refused) -> Response {
    let status = match refused {
        Refused::Draining | Refused::PodFull => StatusCode::SERVICE_UNAVAILABLE,
        Refused::TenantFull => StatusCode::TOO_MANY_REQUESTS,
    };
    (status, [(header::RETRY_AFTER, "1")], format!("{refused}\n")).into_response()
}

async fn metrics(State(pod): State<Arc<Pod>>) -> Response {
    let stats = pod.events.stats();
    pod.metrics.events(
        stats.buffered.load(Ordering::Relaxed),
        stats.spill_pending.load(Ordering::Relaxed),
    );
    pod.metrics
        .workflow_jobs(stats.jobs.load(Ordering::Relaxed));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &pod.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Ready while taking calls and once PostgreSQL has answered (routes and
/// versions come from there); not ready while draining.
async fn readyz(State(pod): State<Arc<Pod>>) -> Response {
    if pod.drain.draining() {
        return unavailable("draining");
    }
    if !pod.store.reached() {
        return unavailable("PostgreSQL not reached yet");
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// Query of `/v1/calls`.
#[derive(Debug, Deserialize)]
pub struct CallQuery {
    /// The number called, E.164.
    pub to: String,
    /// The caller's number, E.164.
    pub from: Option<String>,
    /// A widget token, for clients that cannot set `Authorization`
    /// (browsers opening a WebSocket).
    pub token: Option<String>,
}

/// The tenant the request's call token (`Authorization: Bearer`, else the
/// `token` query parameter) opens calls for; `None` when it is missing,
/// malformed, unknown or expired.
async fn authorize(
    pod: &Pod,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer.or(query_token) else {
        return Ok(None);
    };
    match call_tokens::parse(token, chrono::Utc::now().timestamp()) {
        Err(_) => Ok(None),
        // URLs end up in logs and browser history: the long-lived tenant
        // token is taken from the header only.
        Ok(Presented::Tenant(_)) if bearer.is_none() => Ok(None),
        Ok(Presented::Tenant(digest)) => pod.store.token_tenant(&digest).await,
        Ok(Presented::Widget(widget)) => {
            let keys = pod.store.token_keys(&widget.tenant).await?;
            Ok(keys
                .iter()
                .any(|k| widget.signed_with(k))
                .then(|| widget.tenant.clone()))
        }
    }
}

/// A `+` left unescaped in a query string arrives as a space; an E.164
/// number never starts with one, so it is put back.
pub fn e164(raw: &str) -> String {
    match raw.strip_prefix(' ') {
        Some(rest) => format!("+{}", rest.trim()),
        None => raw.trim().to_owned(),
    }
}

async fn text_socket(
    State(pod): State<Arc<Pod>>,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if pod.drain.draining() {
        return unavailable("draining");
    }
    // The token first: an outsider learns nothing, not even which numbers
    // route somewhere.
    let tenant = match authorize(&pod, &headers, query.token.as_deref()).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            pod.metrics.rejected("calls-token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a call token of the number's tenant is required (Authorization: Bearer, or ?token=)\n",
            )
                .into_response();
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot read call tokens");
            return unavailable("authorization unavailable");
        }
    };
    let to = e164(&query.to);
    let route = match pod.store.route(&to).await {
        // Another tenant's number looks exactly like one that routes nowhere.
        Ok(Some(r)) if r.tenant == tenant => r,
        Ok(_) => {
            return (StatusCode::NOT_FOUND, format!("no agent answers {to}\n")).into_response();
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot read phone routes");
            return unavailable("routing unavailable");
        }
    };
    if route.suspended {
        return (
            StatusCode::FORBIDDEN,
            format!("{}\n", twiml::SUSPENDED_MESSAGE),
        )
            .into_response();
    }
    let config = match pod.store.version(&route.active_version).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(version = %route.active_version, error = %err, "cannot load the routed config version");
            return unavailable("config unavailable");
        }
    };
    let guard = match admit(&pod, &config) {
        Ok(g) => g,
        Err(refused) => return refusal(refused),
    };
    let pinned = Pinned {
        hash: route.active_version,
        config,
    };
    let meta = CallMeta {
        call_id: Uuid::new_v4(),
        channel: Channel::Text,
        direction: Direction::Inbound,
        caller: query.from.as_deref().map(e164),
        callee: Some(to),
        external_id: None,
    };
    upgrade
        .max_message_size(TEXT_MESSAGE_LIMIT)
        .max_frame_size(TEXT_MESSAGE_LIMIT)
        .on_upgrade(move |socket| text_call::run(pod, socket, pinned, meta, guard))
}

/// `GET /twilio/media/{ticket}`: the ticket is checked, spent and its
/// call admitted before the connection becomes a WebSocket.
async fn media_socket(
    State(pod): State<Arc<Pod>>,
    Path(ticket): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if pod.drain.draining() {
        return unavailable("draining");
    }
    let now = chrono::Utc::now().timestamp();
    let ticket = match pod.settings.stream_secret.open(&ticket, now) {
        Ok(t) => t,
        Err(err) => {
            pod.metrics.rejected("stream-token");
            tracing::warn!(error = %err, "refused a media stream");
            return StatusCode::UNAUTHORIZED.into_response();
        }
    };
    if !pod.spent_tickets.spend(&ticket, now) {
        pod.metrics.rejected("stream-replay");
        tracing::warn!(call_sid = %ticket.claims.call_sid, "refused a media stream: its ticket was used already");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let hash = ticket.claims.config_version.clone();
    let config = match pod.store.version(&hash).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(call_sid = %ticket.claims.call_sid, version = %hash, error = %err, "cannot load the call's config version");
            return unavailable("config unavailable");
        }
    };
    let guard = match admit(&pod, &config) {
        Ok(g) => g,
        Err(refused) => return refusal(refused),
    };
    let pinned = Pinned { hash, config };
    upgrade
        .max_message_size(MEDIA_MESSAGE_LIMIT)
        .max_frame_size(MEDIA_MESSAGE_LIMIT)
        .on_upgrade(move |socket| media_call::run(pod, socket, ticket.claims, pinned, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unescaped_plus_is_restored() {
        assert_eq!(e164(" 61290001234"), "+61290001234");
        assert_eq!(e164("+61290001234"), "+61290001234");
    }
}
