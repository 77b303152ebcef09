//! The worker loop: claim due jobs, hold them to the limits, deliver them
//! through their vendor's adapter, record the attempt, and between claims
//! expire lost leases and append result events to closed calls.
//!
//! On shutdown the worker stops claiming and finishes the jobs it holds
//! (each bounded by the request timeout, which is shorter than the lease);
//! a worker killed outright leaves its leases to expire, and its jobs run
//! again elsewhere with the same idempotency key.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dialtone_crds::agent::WorkflowAction;
use dialtone_crds::provider::Vendor;
use dialtone_engine::config::ProviderConfig;
use dialtone_providers::Credentials;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::adapter::{CallInfo, Delivery, DeliveryError, Receipt};
use crate::adapters;
use crate::limits;
use crate::metrics::Metrics;
use crate::queue::{self, ClaimOptions, Finish, Job};
use crate::results;
use crate::retry::{self, Next};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How it claims (its name, batch size, fairness, lease, tenants).
    pub claim: ClaimOptions,
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// Pause between claims that found nothing.
    pub idle_poll: Duration,
    /// Where provider Secrets are mounted.
    pub credentials_dir: PathBuf,
    /// Longest one vendor request may take; keep it well under the lease.
    pub request_timeout: Duration,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Jobs delivered.
    pub succeeded: u64,
    /// Attempts that failed and will be retried.
    pub failed: u64,
    /// Jobs dead-lettered.
    pub dead: u64,
    /// Jobs put back for a limit.
    pub waited: u64,
}

/// A running worker's shared parts.
struct Shared {
    pool: PgPool,
    cfg: WorkerConfig,
    http: reqwest::Client,
    metrics: Metrics,
}

/// How one job ended, for the report.
enum Ended {
    Succeeded,
    Failed,
    Dead,
    Waited,
}

/// Runs until `shutdown` resolves, then finishes the jobs in flight.
pub async fn run(
    pool: PgPool,
    cfg: WorkerConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Report {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        pool,
        cfg,
        http,
        metrics,
    });
    let permits = Arc::new(Semaphore::new(shared.cfg.concurrency.max(1)));
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    let mut report = Report::default();
    let mut housekeeping = Instant::now();
    let mut sweep = Instant::now();
    tokio::pin!(shutdown);
    loop {
        while let Some(done) = tasks.try_join_next() {
            tally(&mut report, done);
        }
        if housekeeping.elapsed() >= Duration::from_secs(1) {
            housekeeping = Instant::now();
            housekeep(&shared, sweep.elapsed() >= Duration::from_secs(60)).await;
            if sweep.elapsed() >= Duration::from_secs(60) {
                sweep = Instant::now();
            }
        }
        let free = permits.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let opts = ClaimOptions {
                batch: shared.cfg.claim.batch.min(free as i64),
                ..shared.cfg.claim.clone()
            };
            match queue::claim(&shared.pool, &opts).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs");
                    Vec::new()
                }
            }
        };
        let full = claimed.len() as i64 >= shared.cfg.claim.batch.min(free as i64) && free > 0;
        for job in claimed {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                let ended = process(&shared, job).await;
                drop(permit);
                ended
            });
        }
        if full {
            // More may be due: claim again at once, unless asked to stop.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = std::future::ready(()) => continue,
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => tally(&mut report, done),
            () = tokio::time::sleep(shared.cfg.idle_poll) => {}
        }
    }
    tracing::info!(
        in_flight = tasks.len(),
        "stopping: finishing the jobs in flight"
    );
    while let Some(done) = tasks.join_next().await {
        tally(&mut report, done);
    }
    housekeep(&shared, false).await;
    report
}

fn tally(report: &mut Report, done: Result<Ended, tokio::task::JoinError>) {
    match done {
        Ok(Ended::Succeeded) => report.succeeded += 1,
        Ok(Ended::Failed) => report.failed += 1,
        Ok(Ended::Dead) => report.dead += 1,
        Ok(Ended::Waited) => report.waited += 1,
        // The job's lease expires and it runs again.
        Err(e) => tracing::error!(error = %e, "a job task failed"),
    }
}

/// Lost leases, result events, queue metrics, and (now and then) old
/// limit counters.
async fn housekeep(shared: &Shared, sweep: bool) {
    match queue::expire_leases(&shared.pool).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "leases expired; their jobs run again"),
        Err(e) => tracing::warn!(error = %e, "cannot expire leases"),
    }
    if let Err(e) = results::append_pending(&shared.pool, 500).await {
        tracing::debug!(error = %e, "result events not appended this round");
    }
    match queue::stats(&shared.pool).await {
        Ok(s) => shared.metrics.queue(&s),
        Err(e) => tracing::warn!(error = %e, "cannot read queue figures"),
    }
    if sweep && let Err(e) = limits::sweep(&shared.pool, Utc::now()).await {
        tracing::warn!(error = %e, "cannot sweep limit counters");
    }
}

/// Why a job cannot run yet, and until when.
struct Wait {
    until: chrono::DateTime<Utc>,
    reason: String,
}

/// Holds a job to its provider's concurrency, rate and daily cap.
async fn check_limits(shared: &Shared, job: &Job) -> Result<Option<Wait>, sqlx::Error> {
    let now = Utc::now();
    if let Some(max) = job.max_concurrent
        && !queue::within_concurrency(&shared.pool, job, max).await?
    {
        return Ok(Some(Wait {
            until: now + chrono::Duration::milliseconds(200),
            reason: format!(
                "provider {} has {max} requests in flight (maxConcurrent)",
                job.provider
            ),
        }));
    }
    if let Some(rate) = job.per_second
        && !limits::take_rate(&shared.pool, &job.provider, now, rate).await?
    {
        let next_second = now.timestamp() + 1;
        return Ok(Some(Wait {
            until: chrono::DateTime::from_timestamp(next_second, 0).unwrap_or(now),
            reason: format!("provider {} is at {rate} requests per second", job.provider),
        }));
    }
    if let (Some(scope), Some(cap), false) = (&job.cap_scope, job.daily_cap, job.cap_counted) {
        let tz = limits::zone(&job.timezone);
        let day = limits::local_day(now, tz);
        if !limits::take_daily(&shared.pool, scope, day, cap).await? {
            let until = limits::next_local_midnight(now, tz);
            return Ok(Some(Wait {
                until,
                reason: format!(
                    "daily cap of {cap} reached for {scope} on {day}; waits until {} ({})",
                    until.with_timezone(&tz).to_rfc3339(),
                    job.timezone
                ),
            }));
        }
        queue::mark_cap_counted(&shared.pool, job).await?;
    }
    Ok(None)
}

/// Runs one claimed job to its next state.
async fn process(shared: &Shared, job: Job) -> Ended {
    let worker = shared.cfg.claim.worker.as_str();
    match check_limits(shared, &job).await {
        Ok(None) => {}
        Ok(Some(wait)) => {
            shared.metrics.waited();
            if let Err(e) =
                queue::release(&shared.pool, &job, worker, wait.until, Some(&wait.reason)).await
            {
                tracing::warn!(job = job.id, error = %e, "cannot put the job back; its lease will expire");
            }
            return Ended::Waited;
        }
        Err(e) => {
            // The database is failing: leave the job to its lease.
            tracing::warn!(job = job.id, error = %e, "cannot check limits");
            return Ended::Waited;
        }
    }
    let started_at = Utc::now();
    let clock = Instant::now();
    let outcome = match prepare(shared, &job) {
        Ok((delivery, adapter)) => {
            match tokio::time::timeout(shared.cfg.request_timeout, adapter.deliver(&delivery)).await
            {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::Retryable {
                    message: format!(
                        "{} did not answer within {:?}",
                        job.vendor, shared.cfg.request_timeout
                    ),
                    status: None,
                    retry_after: None,
                }),
            }
        }
        Err(e) => Err(e),
    };
    shared
        .metrics
        .vendor_request(&job.vendor, clock.elapsed().as_secs_f64());
    let (ended, result, recorded) = match &outcome {
        Ok(receipt) => {
            let result = receipt_json(receipt);
            let kept = queue::finish(
                &shared.pool,
                &job,
                worker,
                started_at,
                Finish::Succeeded(&result),
            )
            .await;
            let seconds = (Utc::now() - job.event_at).num_milliseconds() as f64 / 1000.0;
            shared.metrics.delivered(&job.action, seconds.max(0.0));
            (Ended::Succeeded, "succeeded", kept)
        }
        Err(error) => {
            let next = retry::decide(
                error,
                job.attempts,
                job.max_attempts,
                job.backoff_seconds,
                retry::seed(job.id, job.attempts),
                Utc::now(),
            );
            let message = error.to_string();
            let kept = queue::finish(
                &shared.pool,
                &job,
                worker,
                started_at,
                Finish::Failed {
                    error: &message,
                    status: error.status(),
                    next: &next,
                },
            )
            .await;
            match next {
                Next::Dead => {
                    tracing::warn!(job = job.id, tenant = %job.tenant, workflow = %job.workflow, attempts = job.attempts, error = %message, "dead-lettered");
                    (Ended::Dead, "dead", kept)
                }
                Next::Retry(at) => {
                    tracing::info!(job = job.id, tenant = %job.tenant, workflow = %job.workflow, attempt = job.attempts, retry_at = %at, error = %message, "attempt failed");
                    (Ended::Failed, "failed", kept)
                }
            }
        }
    };
    shared
        .metrics
        .attempt(&job.tenant, &job.action, &job.vendor, result);
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            job = job.id,
            "the job's lease was lost before its result was recorded; the next owner decides"
        ),
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "cannot record the attempt; the lease will expire and the job runs again")
        }
    }
    ended
}

/// The job as its adapter sees it, and the adapter.
fn prepare(
    shared: &Shared,
    job: &Job,
) -> Result<(Delivery, Box<dyn crate::adapter::Adapter>), DeliveryError> {
    let unreadable = |what: &str, e: &dyn std::fmt::Display| DeliveryError::Permanent {
        message: format!("job {} has an unreadable {what}: {e}", job.id),
        status: None,
    };
    let action: WorkflowAction = serde_json::from_value(Value::String(job.action.clone()))
        .map_err(|e| unreadable("action", &e))?;
    let vendor: Vendor = serde_json::from_value(Value::String(job.vendor.clone()))
        .map_err(|e| unreadable("vendor", &e))?;
    let config: Option<ProviderConfig> = job
        .provider_config
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| unreadable("provider config", &e))?;
    let credentials =
        match &config {
            None => Credentials::default(),
            // A Secret that is not mounted yet (or is being rotated) may be
            // there on the next attempt.
            Some(cfg) => Credentials::load(&shared.cfg.credentials_dir, cfg, &job.namespace)
                .map_err(|e| DeliveryError::Retryable {
                    message: e.to_string(),
                    status: None,
                    retry_after: None,
                })?,
        };
    let p = &job.payload;
    let delivery = Delivery {
        job_id: job.id,
        idempotency_key: job.idempotency_key.clone(),
        tenant: job.tenant.clone(),
        workflow: job.workflow.clone(),
        trigger: job.trigger.clone(),
        action,
        params: serde_json::from_value(p["params"].clone())
            .map_err(|e| unreadable("params", &e))?,
        missing: serde_json::from_value(p["missing"].clone()).unwrap_or_default(),
        call: serde_json::from_value::<CallInfo>(p["call"].clone()).unwrap_or_default(),
        event: p["event"].clone(),
    };
    let adapter = adapters::build(vendor, config.as_ref(), &credentials, &shared.http)?;
    Ok((delivery, adapter))
}

fn receipt_json(r: &Receipt) -> Value {
    json!({ "reference": r.reference, "detail": r.detail })
}
