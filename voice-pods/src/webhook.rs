//! `POST /twilio/voice`: Twilio's voice webhook. A request is answered only
//! when its `X-Twilio-Signature` verifies; a known number gets a
//! `<Connect><Stream>` to this pod pool's media socket with the call's
//! pinned config version and a stream token, an unknown one a fixed message
//! and a hang-up.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dialtone_crds::provider::Vendor;
use dialtone_engine::CompiledConfig;
use dialtone_providers::Credentials;
use dialtone_providers::twilio::{self, SIGNATURE_HEADER};

use crate::pod::Pod;
use crate::token::StreamClaims;
use crate::twiml;

/// The credential key of a Twilio account's auth token.
pub const AUTH_TOKEN_KEY: &str = "authToken";

/// The URL Twilio signed: the public base URL, the path and the query.
pub fn signed_url(public_url: &str, uri: &Uri) -> String {
    let mut url = public_url.trim_end_matches('/').to_owned();
    url.push_str(uri.path());
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// The auth token of the config's Twilio telephony provider, if it has one
/// and its credentials can be read.
pub fn telephony_token(config: &CompiledConfig, credentials_dir: &Path) -> Option<String> {
    let provider = config.providers.get("telephony")?;
    if provider.vendor != Vendor::Twilio {
        return None;
    }
    match Credentials::load(credentials_dir, provider, &config.agent.namespace) {
        Ok(creds) => creds.get(AUTH_TOKEN_KEY).map(str::to_owned),
        Err(err) => {
            tracing::warn!(provider = %provider.name, error = %err, "cannot read the telephony provider's credentials");
            None
        }
    }
}

/// A TwiML answer.
pub(crate) fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn reject(pod: &Pod, reason: &'static str, to: Option<&str>) -> Response {
    pod.metrics.rejected(reason);
    tracing::warn!(
        reason,
        to = to.unwrap_or(""),
        "refused a Twilio webhook: signature {reason}"
    );
    StatusCode::FORBIDDEN.into_response()
}

/// The value of form field `name`.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The handler.
pub async fn voice(
    State(pod): State<Arc<Pod>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if pod.drain.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    let Some(signature) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return reject(&pod, "missing", None);
    };
    // A body that is not a form cannot have been signed by Twilio.
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return reject(&pod, "invalid", None);
    };
    let to = param(&params, "To").unwrap_or_default();
    let route = match pod.store.route(to).await {
        Ok(r) => r,
        Err(err) => {
            tracing::error!(error = %err, "cannot read phone routes");
            return (StatusCode::SERVICE_UNAVAILABLE, "routing unavailable\n").into_response();
        }
    };
    let config = match &route {
        Some(r) => match pod.store.version(&r.active_version).await {
            Ok(c) => Some(c),
            Err(err) => {
                tracing::error!(version = %r.active_version, error = %err, "cannot load the routed config version");
                return (StatusCode::SERVICE_UNAVAILABLE, "config unavailable\n").into_response();
            }
        },
        None => None,
    };
    // The routed Agent's telephony Provider holds the account's token; a
    // number that routes nowhere can only be checked against the platform's
    // default account (decision 0020). The platform's token never vouches
    // for a number that routes to a tenant: a tenant whose Agent has no
    // Twilio provider would otherwise answer calls from any account.
    let token = match config.as_deref() {
        Some(c) => telephony_token(c, &pod.settings.credentials_dir),
        None => pod.settings.default_twilio_token.clone(),
    };
    let Some(token) = token else {
        return reject(&pod, "no-token", Some(to));
    };
    let url = signed_url(&pod.settings.public_url, &uri);
    if !twilio::verify(&token, &url, &params, signature) {
        return reject(&pod, "invalid", Some(to));
    }
    let Some(route) = route else {
        tracing::info!(to, "call to a number that routes nowhere");
        return xml(twiml::say_and_hang_up());
    };
    if route.suspended {
        tracing::info!(to, tenant = %route.tenant, "call to a suspended number");
        return xml(twiml::say_then_hang_up(twiml::SUSPENDED_MESSAGE));
    }
    let call_sid = param(&params, "CallSid").unwrap_or_default();
    let caller = param(&params, "From").unwrap_or_default();
    let claims = StreamClaims {
        call_sid: call_sid.to_owned(),
        config_version: route.active_version.clone(),
        caller: caller.to_owned(),
        callee: to.to_owned(),
        attempt: String::new(),
    };
    let ticket = pod
        .settings
        .stream_secret
        .issue(&claims, chrono::Utc::now().timestamp());
    tracing::info!(call_sid, to, version = %route.active_version, "call answered with a media stream");
    xml(twiml::connect_stream(&twiml::media_url(
        &pod.settings.public_url,
        &ticket,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_the_public_url_with_path_and_query() {
        let uri: Uri = "/twilio/voice?tenant=a&x=1".parse().unwrap();
        assert_eq!(
            signed_url("https://voice.example/", &uri),
            "https://voice.example/twilio/voice?tenant=a&x=1"
        );
        let uri: Uri = "/twilio/voice".parse().unwrap();
        assert_eq!(
            signed_url("https://voice.example", &uri),
            "https://voice.example/twilio/voice"
        );
    }
}
