//! What every workflow adapter receives and answers: one [`Delivery`] in, a
//! [`Receipt`] or a [`DeliveryError`] that says whether trying again can
//! help.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use dialtone_crds::agent::WorkflowAction;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The call a job came from, as the event writer saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    /// The call's id.
    pub call_id: String,
    /// The caller's number (E.164).
    #[serde(default)]
    pub caller: Option<String>,
    /// The called number.
    #[serde(default)]
    pub callee: Option<String>,
    /// The outcome label so far.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The Agent.
    #[serde(default)]
    pub agent: String,
    /// Captured slots, canonical values (dates as RFC 3339).
    #[serde(default)]
    pub slots: BTreeMap<String, String>,
}

/// One job, as an adapter sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The job's row id.
    pub job_id: i64,
    /// `<call id>/<workflow>/<trigger>`: the same on every attempt, so
    /// vendors that deduplicate by key see one request, and adapters that
    /// search before they create can find what an earlier attempt made.
    pub idempotency_key: String,
    /// The tenant.
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// `callCompleted`, `appointmentRequested` …
    pub trigger: String,
    /// What to do.
    pub action: WorkflowAction,
    /// The workflow's parameters, rendered.
    pub params: BTreeMap<String, String>,
    /// `param: placeholder` of every placeholder that had no value.
    pub missing: Vec<String>,
    /// The call.
    pub call: CallInfo,
    /// The trigger event's payload (for `appointmentRequested`: `service`,
    /// `slots`, `durationMinutes`).
    pub event: Value,
}

impl Delivery {
    /// A parameter, or a permanent error naming it (and the placeholder
    /// that left it empty, when one did).
    pub fn require(&self, param: &str) -> Result<&str, DeliveryError> {
        match self.params.get(param).map(String::as_str) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => {
                let why = self
                    .missing
                    .iter()
                    .find(|m| m.split(':').next() == Some(param))
                    .map(|m| {
                        format!(
                            " ({} had no value on this call)",
                            m[param.len() + 1..].trim()
                        )
                    })
                    .unwrap_or_default();
                Err(DeliveryError::Permanent {
                    message: format!("parameter {param:?} is required{why}"),
                    status: None,
                })
            }
        }
    }

    /// A parameter that may be absent or empty.
    pub fn param(&self, param: &str) -> Option<&str> {
        self.params
            .get(param)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// What the vendor made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The vendor's id of it (booking uid, message SID, contact id …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Anything else worth keeping in the job's `result` (never a secret).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// Why a delivery failed. Messages carry the vendor's reason with secret
/// values removed; they go into the job row, events and logs as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Transient: a timeout, a connection failure, HTTP 408/425/429/5xx.
    #[error("{message}")]
    Retryable {
        /// What happened.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The vendor's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: bad credentials, a validation error, a
    /// slot already taken. The job is dead-lettered at once.
    #[error("{message}")]
    Permanent {
        /// What happened.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
}

impl DeliveryError {
    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Retryable { status, .. } | DeliveryError::Permanent { status, .. } => {
                *status
            }
        }
    }
}

/// One vendor's way of delivering jobs.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// Delivers the job once. Called again with the same `Delivery` after
    /// a failure or a crash, so it must make one effect however often it
    /// runs (a vendor idempotency key, or search before create).
    async fn deliver(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError>;
}
