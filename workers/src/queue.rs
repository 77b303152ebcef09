//! The job queue in `workflow_jobs`: fair claims with leases, and the
//! record of every attempt in `workflow_attempts`.
//!
//! * [`claim`] walks the tenants that have pending jobs (a skip scan of the
//!   `(tenant, next_attempt_at)` index) and takes at most `per_tenant` due
//!   jobs from each, oldest first, `FOR UPDATE SKIP LOCKED`: replicas never
//!   take one job twice, and a tenant with 100,000 queued jobs fills at most
//!   `per_tenant` places of a batch, so another tenant's job is in the
//!   first batch claimed after it is due.
//! * A claim is a lease: [`expire_leases`] hands the jobs of a worker that
//!   stopped answering to the next claim, as a `lost` attempt.
//! * Every state change checks the lease (`lease_owner`), so a worker that
//!   lost its lease cannot overwrite what the next owner did.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::retry::Next;

/// A claimed job.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// `<call id>/<workflow>/<trigger>`.
    pub idempotency_key: String,
    /// The tenant.
    pub tenant: String,
    /// The call.
    pub call_id: Option<Uuid>,
    /// The Agent's namespace.
    pub namespace: String,
    /// The workflow.
    pub workflow: String,
    /// Its trigger.
    pub trigger: String,
    /// Its action.
    pub action: String,
    /// The vendor account: `<namespace>/<name>`, `_cluster/<name>`, `builtin`.
    pub provider: String,
    /// The vendor.
    pub vendor: String,
    /// The provider's config (no credentials).
    pub provider_config: Option<Value>,
    /// Rendered params, call facts, trigger event.
    pub payload: Value,
    /// This attempt, from 1.
    pub attempts: i32,
    /// The most attempts.
    pub max_attempts: i32,
    /// First retry delay.
    pub backoff_seconds: i32,
    /// Requests of this provider in flight at once.
    pub max_concurrent: Option<i32>,
    /// Requests of this provider per second.
    pub per_second: Option<i32>,
    /// What the daily cap counts.
    pub cap_scope: Option<String>,
    /// The daily cap.
    pub daily_cap: Option<i32>,
    /// The Tenant's timezone.
    pub timezone: String,
    /// Whether the cap has counted this job already.
    pub cap_counted: bool,
    /// When the trigger event happened.
    pub event_at: DateTime<Utc>,
}

const JOB_COLUMNS: &str = "j.id, j.idempotency_key, j.tenant, j.call_id, j.namespace, j.workflow, \
    j.trigger, j.action, j.provider, j.vendor, j.provider_config, j.payload, j.attempts, \
    j.max_attempts, j.backoff_seconds, j.max_concurrent, j.per_second, j.cap_scope, j.daily_cap, \
    j.timezone, j.cap_counted, j.event_at";

/// Which tenants' jobs a worker takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant but these (the shared workers skip dedicated tenants).
    #[default]
    Shared,
    /// The shared workers, leaving out tenants with their own workers.
    SharedExcept(Vec<String>),
    /// Only these tenants (a dedicated Tenant's own workers).
    Tenants(Vec<String>),
}

/// How a worker claims.
#[derive(Clone, Debug)]
pub struct ClaimOptions {
    /// The worker's name, recorded as the lease owner.
    pub worker: String,
    /// Most jobs per claim.
    pub batch: i64,
    /// Most jobs of one tenant per claim.
    pub per_tenant: i64,
    /// How long a claim lasts without an answer.
    pub lease_seconds: f64,
    /// Which tenants.
    pub scope: Scope,
}

/// Claims due jobs fairly across tenants; each comes back running, leased
/// to `opts.worker`, its attempt counted.
pub async fn claim(pool: &PgPool, opts: &ClaimOptions) -> Result<Vec<Job>, sqlx::Error> {
    let (only, except): (&[String], &[String]) = match &opts.scope {
        Scope::Shared => (&[], &[]),
        Scope::SharedExcept(list) => (&[], list),
        Scope::Tenants(list) => (list, &[]),
    };
    let sql = format!(
        "WITH RECURSIVE tenants AS ( \
             (SELECT tenant FROM workflow_jobs \
              WHERE status = 'pending' AND (cardinality($4::text[]) = 0 OR tenant = ANY($4)) \
              ORDER BY tenant LIMIT 1) \
             UNION ALL \
             SELECT (SELECT j.tenant FROM workflow_jobs j \
                     WHERE j.status = 'pending' AND j.tenant > t.tenant \
                       AND (cardinality($4::text[]) = 0 OR j.tenant = ANY($4)) \
                     ORDER BY j.tenant LIMIT 1) \
             FROM tenants t WHERE t.tenant IS NOT NULL \
         ), candidates AS ( \
             SELECT c.id FROM tenants t CROSS JOIN LATERAL ( \
                 SELECT j.id, j.next_attempt_at FROM workflow_jobs j \
                 WHERE j.tenant = t.tenant AND j.status = 'pending' AND j.next_attempt_at <= now() \
                 ORDER BY j.next_attempt_at LIMIT $2 \
                 FOR UPDATE SKIP LOCKED \
             ) c \
             WHERE t.tenant IS NOT NULL AND NOT (t.tenant = ANY($5)) \
             ORDER BY c.next_attempt_at LIMIT $1 \
         ) \
         UPDATE workflow_jobs j SET status = 'running', attempts = j.attempts + 1, \
             lease_owner = $3, lease_until = now() + make_interval(secs => $6), \
             waiting_reason = NULL, updated_at = now() \
         FROM candidates c WHERE j.id = c.id \
         RETURNING {JOB_COLUMNS}"
    );
    // Only the fixed column list is formatted in; every value is bound.
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(opts.batch)
        .bind(opts.per_tenant)
        .bind(&opts.worker)
        .bind(only)
        .bind(except)
        .bind(opts.lease_seconds)
        .fetch_all(pool)
        .await
}

/// Whether the job is among the first `max` running jobs of its provider
/// (by id): the provider's concurrency limit, across replicas, without a
/// lock and without two replicas both backing off.
pub async fn within_concurrency(pool: &PgPool, job: &Job, max: i32) -> Result<bool, sqlx::Error> {
    let (ahead,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM workflow_jobs \
         WHERE provider = $1 AND status = 'running' AND id < $2",
    )
    .bind(&job.provider)
    .bind(job.id)
    .fetch_one(pool)
    .await?;
    Ok(ahead < i64::from(max))
}

/// Hands a claimed job back without counting the attempt: it runs at `at`,
/// and `reason` says why it waits.
pub async fn release(
    pool: &PgPool,
    job: &Job,
    worker: &str,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE workflow_jobs SET status = 'pending', attempts = attempts - 1, \
             next_attempt_at = $3, waiting_reason = $4, lease_owner = NULL, lease_until = NULL, \
             updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(job.id)
    .bind(worker)
    .bind(at)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the daily cap counted the job (so a retry is not counted
/// twice).
pub async fn mark_cap_counted(pool: &PgPool, job: &Job) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workflow_jobs SET cap_counted = true WHERE id = $1")
        .bind(job.id)
        .execute(pool)
        .await?;
    Ok(())
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Finish<'a> {
    /// Delivered; what the vendor returned.
    Succeeded(&'a Value),
    /// Failed: the error, its HTTP status, and what happens next.
    Failed {
        /// The reason.
        error: &'a str,
        /// The vendor's HTTP status.
        status: Option<u16>,
        /// Retry or dead.
        next: &'a Next,
    },
}

/// Records the attempt and moves the job on, if `worker` still holds its
/// lease. Returns `false` when the lease was lost (the attempt is still
/// recorded: the vendor may have seen it).
pub async fn finish(
    pool: &PgPool,
    job: &Job,
    worker: &str,
    started_at: DateTime<Utc>,
    how: Finish<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (outcome, error, status, retry_at) = match &how {
        Finish::Succeeded(_) => ("succeeded", None, None, None),
        Finish::Failed {
            error,
            status,
            next: Next::Retry(at),
        } => ("failed", Some(*error), *status, Some(*at)),
        Finish::Failed {
            error,
            status,
            next: Next::Dead,
        } => ("dead", Some(*error), *status, None),
    };
    let updated = match &how {
        Finish::Succeeded(result) => sqlx::query(
            "UPDATE workflow_jobs SET status = 'succeeded', result = $3, last_error = NULL, \
                 finished_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job.id)
        .bind(worker)
        .bind(*result),
        Finish::Failed { .. } => sqlx::query(
            "UPDATE workflow_jobs SET status = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END, \
                 next_attempt_at = COALESCE($4, next_attempt_at), last_error = $3, \
                 finished_at = CASE WHEN $4::timestamptz IS NULL THEN now() END, \
                 lease_owner = NULL, lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job.id)
        .bind(worker)
        .bind(error)
        .bind(retry_at),
    }
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "INSERT INTO workflow_attempts \
             (job_id, attempt, worker, started_at, outcome, http_status, error, retry_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job_id, attempt) DO NOTHING",
    )
    .bind(job.id)
    .bind(job.attempts)
    .bind(worker)
    .bind(started_at)
    .bind(outcome)
    .bind(status.map(i32::from))
    .bind(error)
    .bind(retry_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Hands the jobs of workers whose lease ran out to the next claim (or to
/// the dead letters, when that was their last attempt), each recorded as a
/// `lost` attempt. Returns how many.
pub async fn expire_leases(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "WITH lost AS ( \
             UPDATE workflow_jobs SET \
                 status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END, \
                 next_attempt_at = now(), \
                 last_error = 'worker ' || coalesce(lease_owner, '?') || \
                     ' stopped answering during attempt ' || attempts, \
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() END, \
                 lease_owner = NULL, lease_until = NULL, updated_at = now() \
             WHERE status = 'running' AND lease_until < now() \
             RETURNING id, attempts, status, last_error \
         ) \
         INSERT INTO workflow_attempts (job_id, attempt, worker, started_at, outcome, error) \
         SELECT id, attempts, 'lease expired', now(), \
             CASE WHEN status = 'dead' THEN 'dead' ELSE 'lost' END, last_error FROM lost \
         ON CONFLICT (job_id, attempt) DO NOTHING",
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Queue figures for metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Pending jobs that are due.
    pub due: i64,
    /// Pending jobs in all (due or waiting).
    pub pending: i64,
    /// Running jobs.
    pub running: i64,
    /// Seconds since the oldest due job became due.
    pub oldest_due_seconds: f64,
    /// Dead-lettered jobs, by tenant.
    pub dead: Vec<(String, i64)>,
}

/// Reads the queue figures.
pub async fn stats(pool: &PgPool) -> Result<QueueStats, sqlx::Error> {
    let (due, pending, running, oldest): (i64, i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()), \
             count(*) FILTER (WHERE status = 'pending'), \
             count(*) FILTER (WHERE status = 'running'), \
             extract(epoch FROM now() - min(next_attempt_at) \
                 FILTER (WHERE status = 'pending' AND next_attempt_at <= now()))::float8 \
         FROM workflow_jobs WHERE status IN ('pending', 'running')",
    )
    .fetch_one(pool)
    .await?;
    let dead = sqlx::query_as(
        "SELECT tenant, count(*) FROM workflow_jobs WHERE status = 'dead' GROUP BY tenant",
    )
    .fetch_all(pool)
    .await?;
    Ok(QueueStats {
        due,
        pending,
        running,
        oldest_due_seconds: oldest.unwrap_or(0.0),
        dead,
    })
}

/// Puts dead-lettered (or discarded) jobs back in the queue, due now, with
/// a fresh set of attempts and the same idempotency key, so a vendor that
/// saw an earlier attempt recognises it. Returns the ids requeued.
pub async fn requeue(pool: &PgPool, ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE workflow_jobs SET status = 'pending', attempts = 0, next_attempt_at = now(), \
             waiting_reason = 'retried by hand after: ' || coalesce(last_error, status), \
             finished_at = NULL, updated_at = now() \
         WHERE id = ANY($1) AND status IN ('dead', 'discarded') RETURNING id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Gives up on pending or dead-lettered jobs for good (they stay in the
/// table, `discarded`, for the record). Returns the ids discarded.
pub async fn discard(pool: &PgPool, ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE workflow_jobs SET status = 'discarded', finished_at = now(), updated_at = now() \
         WHERE id = ANY($1) AND status IN ('pending', 'dead') RETURNING id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
