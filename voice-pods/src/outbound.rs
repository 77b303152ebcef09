//! Twilio's callbacks for campaign calls the dialer placed:
//!
//! * `POST /twilio/outbound?attempt=<id>`: the callee answered (after
//!   answering-machine detection). A person gets a `<Connect><Stream>` into
//!   the campaign Agent's pinned config version, exactly like an inbound
//!   call but with `direction: outbound`; a machine gets the campaign's
//!   voicemail policy.
//! * `POST /twilio/status?attempt=<id>`: the call's progress; a final
//!   status finishes the attempt and moves its lead on.
//!
//! The attempt id is in the URL Twilio signs, and the signature is checked
//! with the auth token of the attempt's own telephony account (never the
//! platform's), so nobody else can answer for, or finish, a tenant's call.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dialtone_crds::campaign::VoicemailAction;
use dialtone_providers::twilio::{self, SIGNATURE_HEADER};
use dialtone_spine::campaigns::{self, Attempt, DialOutcome};
use uuid::Uuid;

use crate::pod::Pod;
use crate::token::StreamClaims;
use crate::twiml;
use crate::webhook::{param, signed_url, telephony_token, xml};

/// What a machine hears with `leaveMessage` when the campaign gives no
/// message.
pub const DEFAULT_VOICEMAIL_MESSAGE: &str =
    "Hello, this is a courtesy call. We will try you again another time. Goodbye.";

fn forbidden(pod: &Pod, reason: &'static str) -> Response {
    pod.metrics.rejected(reason);
    tracing::warn!(reason, "refused a Twilio campaign callback");
    StatusCode::FORBIDDEN.into_response()
}

fn attempt_id(uri: &Uri) -> Option<Uuid> {
    let query = uri.query()?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs
        .iter()
        .find(|(k, _)| k == "attempt")
        .and_then(|(_, v)| v.parse().ok())
}

/// A verified callback: its attempt and form.
struct Verified {
    attempt: Attempt,
    params: Vec<(String, String)>,
}

/// Checks the callback's signature against the attempt's telephony
/// account; anything unknown or unsigned is refused alike.
async fn verify(
    pod: &Pod,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Verified, Response> {
    let Some(signature) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return Err(forbidden(pod, "missing"));
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return Err(forbidden(pod, "invalid"));
    };
    let Some(id) = attempt_id(uri) else {
        return Err(forbidden(pod, "invalid"));
    };
    let attempt = match campaigns::attempt(pod.store.pool(), id).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(forbidden(pod, "invalid")),
        Err(err) => {
            tracing::error!(error = %err, "cannot read campaign attempts");
            return Err((StatusCode::SERVICE_UNAVAILABLE, "attempts unavailable\n").into_response());
        }
    };
    let config = match pod.store.version(&attempt.config_version).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(version = %attempt.config_version, error = %err, "cannot load the attempt's config version");
            return Err((StatusCode::SERVICE_UNAVAILABLE, "config unavailable\n").into_response());
        }
    };
    let Some(token) = telephony_token(&config, &pod.settings.credentials_dir) else {
        return Err(forbidden(pod, "no-token"));
    };
    let url = signed_url(&pod.settings.public_url, uri);
    if !twilio::verify(&token, &url, &params, signature) {
        return Err(forbidden(pod, "invalid"));
    }
    Ok(Verified { attempt, params })
}

/// `POST /twilio/outbound`.
pub async fn answered(
    State(pod): State<Arc<Pod>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Verified { attempt, params } = match verify(&pod, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let call_sid = param(&params, "CallSid").unwrap_or_default();
    let answered_by = param(&params, "AnsweredBy");
    let amd_ms = param(&params, "MachineDetectionDuration").and_then(|d| d.parse().ok());
    if let Err(err) =
        campaigns::record_answer(pod.store.pool(), attempt.id, call_sid, answered_by, amd_ms).await
    {
        tracing::warn!(attempt = %attempt.id, error = %err, "cannot record what answered");
    }
    let campaign = format!("{}/{}", attempt.namespace, attempt.campaign);
    if campaigns::is_machine(answered_by) {
        let policy = match campaigns::voicemail_policy(
            pod.store.pool(),
            &attempt.namespace,
            &attempt.campaign,
        )
        .await
        {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(%campaign, error = %err, "cannot read the voicemail policy; hanging up");
                Default::default()
            }
        };
        tracing::info!(%campaign, attempt = %attempt.id, answered_by, amd_ms, policy = ?policy.policy, "a machine answered");
        return xml(match policy.policy {
            VoicemailAction::LeaveMessage => twiml::say_then_hang_up(
                policy
                    .message
                    .as_deref()
                    .unwrap_or(DEFAULT_VOICEMAIL_MESSAGE),
            ),
            VoicemailAction::Hangup | VoicemailAction::RetryLater => twiml::hang_up(),
        });
    }
    if pod.drain.draining() {
        // Twilio does not retry a failed TwiML fetch; the call ends and its
        // status callback retries the lead.
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    let claims = StreamClaims {
        call_sid: call_sid.to_owned(),
        config_version: attempt.config_version.clone(),
        caller: attempt.caller_id.clone(),
        callee: attempt.phone.clone(),
        attempt: attempt.id.to_string(),
    };
    let ticket = pod
        .settings
        .stream_secret
        .issue(&claims, chrono::Utc::now().timestamp());
    tracing::info!(%campaign, attempt = %attempt.id, call_sid, answered_by, "campaign call answered with a media stream");
    xml(twiml::connect_stream(&twiml::media_url(
        &pod.settings.public_url,
        &ticket,
    )))
}

/// `POST /twilio/status`.
pub async fn status(
    State(pod): State<Arc<Pod>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Verified { attempt, params } = match verify(&pod, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let call_status = param(&params, "CallStatus").unwrap_or_default();
    let Some(outcome) = DialOutcome::from_call_status(call_status) else {
        // initiated, ringing, in-progress: nothing to record.
        return StatusCode::NO_CONTENT.into_response();
    };
    let error = param(&params, "ErrorMessage")
        .or(param(&params, "SipResponseCode"))
        .map(|e| format!("Twilio: {e}"));
    if let Some(answered_by) = param(&params, "AnsweredBy")
        && let Err(err) = campaigns::record_answer(
            pod.store.pool(),
            attempt.id,
            param(&params, "CallSid").unwrap_or_default(),
            Some(answered_by),
            None,
        )
        .await
    {
        tracing::warn!(attempt = %attempt.id, error = %err, "cannot record what answered");
    }
    match campaigns::finish_attempt(pod.store.pool(), attempt.id, outcome, error.as_deref()).await {
        Ok(next) => {
            pod.metrics.outbound_call(&attempt.tenant, outcome.as_str());
            tracing::info!(campaign = %format!("{}/{}", attempt.namespace, attempt.campaign), attempt = %attempt.id, status = call_status, next = ?next, "campaign call finished");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => {
            tracing::error!(attempt = %attempt.id, error = %err, "cannot finish the attempt");
            // Twilio retries a failed status callback.
            (StatusCode::SERVICE_UNAVAILABLE, "attempts unavailable\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_comes_from_the_signed_query() {
        let id = Uuid::new_v4();
        let uri: Uri = format!("/twilio/outbound?attempt={id}").parse().unwrap();
        assert_eq!(attempt_id(&uri), Some(id));
        let uri: Uri = "/twilio/outbound?attempt=not-a-uuid".parse().unwrap();
        assert_eq!(attempt_id(&uri), None);
        let uri: Uri = "/twilio/outbound".parse().unwrap();
        assert_eq!(attempt_id(&uri), None);
    }
}
