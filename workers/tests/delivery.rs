//! The workers against a real PostgreSQL and local vendor servers: fair
//! claims, daily caps, retries and dead letters, exactly one effect with
//! two replicas. (The SIGKILL test is in `crash.rs`.)

mod common;

/// `(attempt, outcome, HTTP status, error, finished at, retry at)`.
type Attempt = (
    i32,
    String,
    Option<i32>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Answer, Seed};
use dialtone_workers::limits;
use dialtone_workers::queue::{self, ClaimOptions, Scope};
use serde_json::json;

#[tokio::test]
async fn a_flooding_tenant_cannot_delay_another_tenants_job_past_one_batch() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let (flood, quiet) = (common::tenant(), common::tenant());
    // 100,000 jobs due before the quiet tenant's single one.
    common::seed(&pool, &Seed::builtin(&flood, "email"), "flood", 100_000).await;
    let quiet_job = common::seed(&pool, &Seed::builtin(&quiet, "sms"), "quiet", 1).await[0];
    let opts = ClaimOptions {
        worker: "fairness".into(),
        batch: 32,
        per_tenant: 4,
        lease_seconds: 30.0,
        scope: Scope::Tenants(vec![flood.clone(), quiet.clone()]),
    };
    let started = std::time::Instant::now();
    let first = queue::claim(&pool, &opts).await.expect("claim");
    let took = started.elapsed();
    let ids: Vec<i64> = first.iter().map(|j| j.id).collect();
    println!(
        "first claim: {} jobs in {took:?} with 100,000 queued",
        first.len()
    );
    assert!(
        ids.contains(&quiet_job),
        "the quiet tenant's job is in the first batch"
    );
    assert_eq!(
        first.iter().filter(|j| j.tenant == flood).count(),
        4,
        "the flood takes per_tenant places"
    );
    sqlx::query("DELETE FROM workflow_jobs WHERE tenant = ANY($1)")
        .bind(vec![flood, quiet])
        .execute(&pool)
        .await
        .expect("clean up");
}

#[tokio::test]
async fn the_51st_email_of_the_day_waits_for_the_tenants_next_midnight() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let tenant = common::tenant();
    let mut seed = Seed::builtin(&tenant, "email");
    seed.cap = Some((format!("{tenant}/email/harbourdental.example"), 50));
    seed.timezone = "Australia/Sydney";
    common::seed(&pool, &seed, "cap", 51).await;
    let cfg = common::config("cap", &[&tenant], std::env::temp_dir());
    let report = common::run_until(&pool, cfg, Duration::from_secs(30), |s| {
        s.get("succeeded").copied() == Some(50)
    })
    .await;
    assert_eq!(report.succeeded, 50);
    let (status, next, reason, attempts): (String, DateTime<Utc>, Option<String>, i32) =
        sqlx::query_as(
            "SELECT status, next_attempt_at, waiting_reason, attempts FROM workflow_jobs \
         WHERE tenant = $1 AND status <> 'succeeded'",
        )
        .bind(&tenant)
        .fetch_one(&pool)
        .await
        .expect("the 51st");
    assert_eq!(status, "pending");
    assert_eq!(attempts, 0, "waiting for a cap is not an attempt");
    let midnight = limits::next_local_midnight(Utc::now(), limits::zone("Australia/Sydney"));
    assert_eq!(next, midnight);
    let reason = reason.expect("the job says why it waits");
    assert!(reason.contains("daily cap of 50 reached"), "{reason}");
    assert!(reason.contains("Australia/Sydney"), "{reason}");
    println!("51st email: {reason}");
}

#[tokio::test]
async fn a_target_that_is_down_is_retried_with_growing_delays_then_dead_lettered() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let tenant = common::tenant();
    let secret = "whsec-down-test-secret";
    let (url, seen) =
        common::receiver(secret, Answer::Status(503, "maintenance"), Duration::ZERO).await;
    let mut seed = Seed::webhook(&tenant, &url);
    seed.max_attempts = 4;
    seed.backoff_seconds = 1;
    let id = common::seed(&pool, &seed, "down", 1).await[0];
    let cfg = common::config("down", &[&tenant], common::credentials(&tenant, secret));
    let report = common::run_until(&pool, cfg, Duration::from_secs(40), |s| {
        s.contains_key("dead")
    })
    .await;
    assert_eq!((report.failed, report.dead), (3, 1));
    let attempts: Vec<Attempt> = sqlx::query_as(
        "SELECT attempt, outcome, http_status, error, finished_at, retry_at FROM workflow_attempts \
             WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("attempts");
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "dead"]);
    assert!(attempts.iter().all(|a| a.2 == Some(503)));
    // Backoff 1 s doubling with equal jitter: delays in [0.5, 1], [1, 2], [2, 4] s.
    let delays: Vec<f64> = attempts
        .iter()
        .filter_map(|a| a.5.map(|at| (at - a.4).num_milliseconds() as f64 / 1000.0))
        .collect();
    println!("retry delays: {delays:?}");
    for (i, d) in delays.iter().enumerate() {
        let full = f64::from(1u32 << i);
        assert!(
            *d >= full / 2.0 - 0.05 && *d <= full + 0.05,
            "delay {i}: {d}"
        );
    }
    let (status, last_error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM workflow_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("job");
    assert_eq!(status, "dead");
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("maintenance")),
        "{last_error:?}"
    );
    assert_eq!(seen.lock().expect("lock").requests.values().sum::<u32>(), 4);
}

#[tokio::test]
async fn a_vendor_400_dead_letters_at_once_with_its_message_and_no_secret() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let tenant = common::tenant();
    let secret = "whsec-very-secret-value-0042";
    let (url, seen) = common::receiver(
        secret,
        Answer::Status(400, "field 'date' is not a date"),
        Duration::ZERO,
    )
    .await;
    let id = common::seed(&pool, &Seed::webhook(&tenant, &url), "bad", 1).await[0];
    let cfg = common::config("bad", &[&tenant], common::credentials(&tenant, secret));
    let report = common::run_until(&pool, cfg, Duration::from_secs(20), |s| {
        s.contains_key("dead")
    })
    .await;
    assert_eq!((report.failed, report.dead), (0, 1));
    assert_eq!(seen.lock().expect("lock").requests.values().sum::<u32>(), 1);
    let row: serde_json::Value = sqlx::query_scalar(
        "SELECT to_jsonb(j) || jsonb_build_object('attempts_rows', \
             (SELECT jsonb_agg(a) FROM workflow_attempts a WHERE a.job_id = j.id)) \
         FROM workflow_jobs j WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert_eq!(row["status"], "dead");
    let text = row.to_string();
    assert!(text.contains("field 'date' is not a date"), "{text}");
    assert!(
        !text.contains(secret),
        "the secret is in the job row: {text}"
    );
}

#[tokio::test]
async fn two_replicas_deliver_10000_jobs_each_exactly_once() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let tenant = common::tenant();
    let secret = "whsec-two-replicas";
    let (url, seen) = common::receiver(secret, Answer::Ok, Duration::from_millis(5)).await;
    common::seed(&pool, &Seed::webhook(&tenant, &url), "pair", 10_000).await;
    let dir = common::credentials(&tenant, secret);
    let started = std::time::Instant::now();
    let done =
        |s: std::collections::HashMap<String, i64>| s.get("succeeded").copied() == Some(10_000);
    let (a, b) = tokio::join!(
        common::run_until(
            &pool,
            common::config("replica-a", &[&tenant], dir.clone()),
            Duration::from_secs(120),
            done
        ),
        common::run_until(
            &pool,
            common::config("replica-b", &[&tenant], dir),
            Duration::from_secs(120),
            done
        ),
    );
    println!(
        "10,000 jobs through two replicas in {:?} ({} + {})",
        started.elapsed(),
        a.succeeded,
        b.succeeded
    );
    assert_eq!(a.succeeded + b.succeeded, 10_000);
    assert!(a.succeeded > 0 && b.succeeded > 0, "both replicas worked");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.requests.len(), 10_000, "every job reached the vendor");
    let twice: Vec<_> = seen.requests.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.bad_signatures, 0);
    let body = &seen.bodies[0];
    assert_eq!(body["tenant"], json!(tenant));
}
