//! Workflow results in the call's own stream: each attempt becomes a
//! `workflowSucceeded`, `workflowFailed` or `workflowDeadLettered` event,
//! appended after `callClosed` (the voice pod numbers a call's events while
//! it runs; afterwards the stream is the workers' to extend). Attempts of a
//! call still in flight wait in `workflow_attempts` until it closes.

use chrono::{DateTime, Utc};
use dialtone_spine::event::RuntimeEvent;
use dialtone_spine::outbox;
use sqlx::PgPool;
use uuid::Uuid;

/// An attempt whose event is not in the call's stream yet.
#[derive(Debug, sqlx::FromRow)]
struct Pending {
    job_id: i64,
    attempt: i32,
    outcome: String,
    error: Option<String>,
    retry_at: Option<DateTime<Utc>>,
    finished_at: DateTime<Utc>,
    call_id: Uuid,
    workflow: String,
    action: String,
    vendor: String,
    reference: Option<String>,
}

/// The event an attempt becomes.
fn event_of(p: &Pending) -> RuntimeEvent {
    let error = p.error.clone().unwrap_or_default();
    match p.outcome.as_str() {
        "succeeded" => RuntimeEvent::WorkflowSucceeded {
            workflow: p.workflow.clone(),
            action: p.action.clone(),
            vendor: p.vendor.clone(),
            attempt: p.attempt,
            reference: p.reference.clone(),
        },
        "dead" => RuntimeEvent::WorkflowDeadLettered {
            workflow: p.workflow.clone(),
            action: p.action.clone(),
            vendor: p.vendor.clone(),
            attempts: p.attempt,
            error,
        },
        // `failed` and `lost` (a worker that stopped answering).
        _ => RuntimeEvent::WorkflowFailed {
            workflow: p.workflow.clone(),
            action: p.action.clone(),
            vendor: p.vendor.clone(),
            attempt: p.attempt,
            error,
            retry_at: p.retry_at,
        },
    }
}

/// Appends up to `limit` pending result events of closed calls, oldest
/// first; returns how many. An append that races another replica's for
/// the same call fails on the call's (call_id, seq) key and is left for
/// the next round.
pub async fn append_pending(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let pending: Vec<Pending> = sqlx::query_as(
        "SELECT a.job_id, a.attempt, a.outcome, a.error, a.retry_at, a.finished_at, \
             j.call_id, j.workflow, j.action, j.vendor, j.result->>'reference' AS reference \
         FROM workflow_attempts a \
         JOIN workflow_jobs j ON j.id = a.job_id \
         JOIN calls c ON c.call_id = j.call_id \
         WHERE a.call_seq IS NULL AND c.ended_at IS NOT NULL \
         ORDER BY a.finished_at, a.job_id, a.attempt \
         LIMIT $1 \
         FOR UPDATE OF a SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut appended = 0;
    for p in &pending {
        let Some(seq) =
            outbox::append_result(&mut tx, p.call_id, p.finished_at, &event_of(p)).await?
        else {
            continue;
        };
        sqlx::query(
            "UPDATE workflow_attempts SET call_seq = $3 WHERE job_id = $1 AND attempt = $2",
        )
        .bind(p.job_id)
        .bind(p.attempt)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        appended += 1;
    }
    tx.commit().await?;
    Ok(appended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(outcome: &str) -> Pending {
        Pending {
            job_id: 1,
            attempt: 3,
            outcome: outcome.into(),
            error: Some("HTTP 503".into()),
            retry_at: None,
            finished_at: Utc::now(),
            call_id: Uuid::nil(),
            workflow: "confirm-by-sms".into(),
            action: "sms".into(),
            vendor: "twilio".into(),
            reference: Some("SM1".into()),
        }
    }

    #[test]
    fn each_outcome_has_its_event() {
        assert_eq!(
            event_of(&pending("succeeded")).type_name(),
            "workflowSucceeded"
        );
        assert_eq!(event_of(&pending("failed")).type_name(), "workflowFailed");
        assert_eq!(event_of(&pending("lost")).type_name(), "workflowFailed");
        let RuntimeEvent::WorkflowDeadLettered {
            attempts, error, ..
        } = event_of(&pending("dead"))
        else {
            panic!("dead letter")
        };
        assert_eq!((attempts, error.as_str()), (3, "HTTP 503"));
    }
}
