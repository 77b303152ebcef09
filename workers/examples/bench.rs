//! `cargo xtask bench` — the workers against PostgreSQL and a local vendor
//! that answers every request after 50 ms:
//!
//! 1. throughput: 20,000 queued webhook jobs through one worker; jobs/s
//!    and jobs per CPU-second of the process (the worker, plus the local
//!    vendor server sharing it, so the figure is conservative);
//! 2. latency: calls closing at 500/s through the real event writer, whose
//!    outbox enqueues one webhook job per call; p50/p99 from the event
//!    append to the vendor receiving the request;
//! 3. outbox cost: the event writer's ingest of the same calls with and
//!    without a workflow in their config version.
//!
//! Needs `DATABASE_URL` (`eval "$(cargo xtask testenv env)"`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::Utc;
use dialtone_engine::ConfigVersion;
use dialtone_spine::event::{CallEvent, Channel, CloseReason, Direction, EventBody, RuntimeEvent};
use dialtone_spine::versions;
use dialtone_spine::writer::{EventWriter, WriterConfig};
use dialtone_workers::metrics::Metrics;
use dialtone_workers::queue::{ClaimOptions, Scope};
use dialtone_workers::worker::{self, WorkerConfig};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

#[path = "shared/one_step.rs"]
mod one_step;
use one_step::one_step_version;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn hook(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
    let key = headers
        .get("x-dialtone-idempotency-key")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.lock()
        .expect("lock")
        .entry(key)
        .or_insert_with(Instant::now);
    tokio::time::sleep(Duration::from_millis(50)).await;
    r#"{"id":"ok"}"#
}

async fn vendor() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn worker_config(tenant: &str, credentials: std::path::PathBuf) -> WorkerConfig {
    WorkerConfig {
        claim: ClaimOptions {
            worker: format!("bench-{tenant}"),
            batch: 256,
            per_tenant: 256,
            lease_seconds: 60.0,
            scope: Scope::Tenants(vec![tenant.to_owned()]),
        },
        concurrency: 1024,
        idle_poll: Duration::from_millis(10),
        credentials_dir: credentials,
        request_timeout: Duration::from_secs(10),
    }
}

fn credentials(namespace: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dialtone-bench-{}", Uuid::new_v4().simple()));
    let at = dir.join(namespace).join("hook");
    std::fs::create_dir_all(&at).expect("credentials dir");
    std::fs::write(at.join("signingSecret"), "bench-secret").expect("secret");
    dir
}

async fn until(seen: &Seen, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while seen.lock().expect("lock").len() < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn throughput(pool: &PgPool) {
    const JOBS: i64 = 20_000;
    let (url, seen) = vendor().await;
    let tenant = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let config = json!({
        "name": "hook", "kind": "Provider", "type": "webhook", "vendor": "webhook",
        "settings": {"webhookUrl": url}, "pricing": {},
    });
    sqlx::query(
        "INSERT INTO workflow_jobs (idempotency_key, tenant, namespace, workflow, trigger, action, \
             provider, vendor, provider_config, payload) \
         SELECT $1 || '-' || i, $1, $1, 'hook', 'callCompleted', 'webhook', $1 || '/hook', 'webhook', $2, \
             jsonb_build_object('params', '{}'::jsonb, 'missing', '[]'::jsonb, 'call', '{}'::jsonb, 'event', '{}'::jsonb) \
         FROM generate_series(1, $3::bigint) AS i",
    )
    .bind(&tenant)
    .bind(&config)
    .bind(JOBS)
    .execute(pool)
    .await
    .expect("seed");
    let cfg = worker_config(&tenant, credentials(&tenant));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let stop = {
        let seen = Arc::clone(&seen);
        async move {
            until(&seen, JOBS as usize, Duration::from_secs(300)).await;
        }
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let report = worker::run(pool.clone(), cfg, Metrics::register(&mut registry), stop).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "throughput: {JOBS} jobs against a 50 ms vendor in {wall:.2} s = {:.0} jobs/s; \
         {cpu:.2} CPU-s in this process = {:.0} jobs per CPU-second (succeeded {})",
        JOBS as f64 / wall,
        JOBS as f64 / cpu.max(0.001),
        report.succeeded
    );
    sqlx::query("DELETE FROM workflow_jobs WHERE tenant = $1")
        .bind(&tenant)
        .execute(pool)
        .await
        .expect("clean up");
}

/// A config version whose Agent posts a webhook when a call completes (or
/// has no workflow at all).
fn version(namespace: &str, url: &str, with_workflow: bool) -> ConfigVersion {
    let workflows = if with_workflow {
        json!([{"name": "hook", "trigger": "callCompleted", "action": "webhook",
                "provider": {"name": "hook"}, "params": {"caller": "{{caller}}"}}])
    } else {
        json!([])
    };
    one_step_version(
        namespace,
        "hook",
        json!({"type": "webhook", "vendor": "webhook", "credentialsSecretRef": {"name": "s"},
               "settings": {"webhookUrl": url}}),
        json!({"workflows": workflows}),
    )
}

/// A call of `events` events: opened, turns, closed.
fn call(tenant: &str, namespace: &str, hash: &str, events_in_call: i32) -> (Uuid, Vec<CallEvent>) {
    let id = Uuid::new_v4();
    let now = Utc::now();
    let event = |seq, body| CallEvent {
        call_id: id,
        seq,
        tenant: tenant.to_owned(),
        occurred_at: now,
        body: EventBody::Runtime(body),
    };
    let mut events = vec![event(
        0,
        RuntimeEvent::CallOpened {
            namespace: namespace.to_owned(),
            agent: "a".into(),
            config_version: hash.to_owned(),
            core_version: "bench".into(),
            direction: Direction::Inbound,
            caller: Some("+61400000000".into()),
            callee: Some("+61290000000".into()),
            channel: Channel::Text,
            external_id: None,
            started_at: now,
        },
    )];
    let last = events_in_call - 1;
    for seq in 1..last {
        events.push(event(
            seq,
            RuntimeEvent::TurnMeasured {
                latency_micros: 1000,
            },
        ));
    }
    events.push(event(
        last,
        RuntimeEvent::CallClosed {
            reason: CloseReason::Ended,
            ended_at: now,
            duration_millis: 1000,
        },
    ));
    (id, events)
}

async fn latency(pool: &PgPool) {
    const RATE: usize = 500;
    const SECONDS: usize = 10;
    let (url, seen) = vendor().await;
    let namespace = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let v = version(&namespace, &url, true);
    versions::put(pool, &v, &namespace, &namespace, "a")
        .await
        .expect("put");
    let spill = std::env::temp_dir().join(format!("bench-{namespace}.spill"));
    let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
    let cfg = worker_config(&namespace, credentials(&namespace));
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = RATE * SECONDS;
    let stop = {
        let seen = Arc::clone(&seen);
        async move {
            until(&seen, total, Duration::from_secs(120)).await;
        }
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let worker = tokio::spawn(worker::run(
        pool.clone(),
        cfg,
        Metrics::register(&mut registry),
        stop,
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..(SECONDS * 100) {
        tick.tick().await;
        for _ in 0..(RATE / 100) {
            let (id, events) = call(&namespace, &namespace, &v.hash, 10);
            sent.lock()
                .expect("lock")
                .insert(format!("{id}/hook/callCompleted"), Instant::now());
            for e in events {
                sink.send(e).await.expect("send");
            }
        }
    }
    let _ = worker.await;
    task.shutdown().await.expect("writer");
    let mut ms: Vec<f64> = {
        let (sent, seen) = (sent.lock().expect("lock"), seen.lock().expect("lock"));
        sent.iter()
            .filter_map(|(k, at)| {
                seen.get(k)
                    .map(|got| got.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 * p) as usize).min(ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "latency at {RATE} calls/s for {SECONDS} s: {} of {total} delivered; event append → vendor received p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        pct(0.50),
        pct(0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    sqlx::query("DELETE FROM workflow_jobs WHERE tenant = $1")
        .bind(&namespace)
        .execute(pool)
        .await
        .expect("clean up");
}

async fn ingest(pool: &PgPool, with_workflow: bool, calls: usize) -> f64 {
    let namespace = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let v = version(&namespace, "http://127.0.0.1:9/hook", with_workflow);
    versions::put(pool, &v, &namespace, &namespace, "a")
        .await
        .expect("put");
    let spill = std::env::temp_dir().join(format!("bench-{namespace}.spill"));
    let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
    // 40 events: the size of the demo's booked dental calls.
    let batches: Vec<Vec<CallEvent>> = (0..calls)
        .map(|_| call(&namespace, &namespace, &v.hash, 40).1)
        .collect();
    let events: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    for e in batches.into_iter().flatten() {
        sink.send(e).await.expect("send");
    }
    sink.flush().await.expect("flush");
    let rate = events as f64 / started.elapsed().as_secs_f64();
    task.shutdown().await.expect("writer");
    sqlx::query("DELETE FROM workflow_jobs WHERE tenant = $1")
        .bind(&namespace)
        .execute(pool)
        .await
        .expect("clean up");
    rate
}

/// p50 and p99 of a call's event flushes (5 events each, 200 times): what
/// a turn waits for at most from the spine (turns only queue events).
async fn flushes(pool: &PgPool, namespace: &str, hash: &str) -> (f64, f64) {
    let spill = std::env::temp_dir().join(format!("bench-flush-{}.spill", Uuid::new_v4().simple()));
    let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
    let mut ms = Vec::with_capacity(200);
    for _ in 0..40 {
        let (_, events) = call(namespace, namespace, hash, 25);
        for chunk in events.chunks(5) {
            let started = Instant::now();
            for e in chunk {
                sink.send(e.clone()).await.expect("send");
            }
            sink.flush().await.expect("flush");
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    task.shutdown().await.expect("writer");
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 99 / 100])
}

/// A call's event writes while 2,000 jobs fail against a target that is
/// down (connection refused) and are retried every second or two.
async fn target_down(pool: &PgPool) {
    let namespace = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let v = version(&namespace, "http://127.0.0.1:9/hook", false);
    versions::put(pool, &v, &namespace, &namespace, "a")
        .await
        .expect("put");
    let idle = flushes(pool, &namespace, &v.hash).await;
    let config = json!({
        "name": "hook", "kind": "Provider", "type": "webhook", "vendor": "webhook",
        "settings": {"webhookUrl": "http://127.0.0.1:9/hook"}, "pricing": {},
    });
    sqlx::query(
        "INSERT INTO workflow_jobs (idempotency_key, tenant, namespace, workflow, trigger, action, \
             provider, vendor, provider_config, payload, max_attempts, backoff_seconds) \
         SELECT $1 || '-' || i, $1, $1, 'hook', 'callCompleted', 'webhook', $1 || '/hook', 'webhook', $2, \
             jsonb_build_object('params', '{}'::jsonb, 'missing', '[]'::jsonb, 'call', '{}'::jsonb, 'event', '{}'::jsonb), \
             50, 1 \
         FROM generate_series(1, 2000) AS i",
    )
    .bind(&namespace)
    .bind(&config)
    .execute(pool)
    .await
    .expect("seed");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cfg = worker_config(&namespace, credentials(&namespace));
    let mut registry = prometheus_client::registry::Registry::default();
    let worker = tokio::spawn(worker::run(
        pool.clone(),
        cfg,
        Metrics::register(&mut registry),
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = flushes(pool, &namespace, &v.hash).await;
    let _ = stop.send(());
    let report = worker.await.unwrap_or_default();
    println!(
        "target down: a call's event flush p50/p99 {:.1}/{:.1} ms idle, {:.1}/{:.1} ms while 2,000 jobs fail and retry ({} failed attempts meanwhile)",
        idle.0, idle.1, busy.0, busy.1, report.failed
    );
    sqlx::query("DELETE FROM workflow_jobs WHERE tenant = $1")
        .bind(&namespace)
        .execute(pool)
        .await
        .expect("clean up");
}

#[tokio::main]
async fn main() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("a rustls crypto provider was already installed");
    }
    let url =
        std::env::var("DATABASE_URL").expect("DATABASE_URL (eval \"$(cargo xtask testenv env)\")");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("connect");
    throughput(&pool).await;
    latency(&pool).await;
    target_down(&pool).await;
    // Alternate the two, three rounds each, and compare the best of each.
    let (mut without, mut with) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        without = without.max(ingest(&pool, false, 5_000).await);
        with = with.max(ingest(&pool, true, 5_000).await);
        println!("  ingest round: best so far {without:.0} / {with:.0} events/s");
    }
    println!(
        "outbox cost: event writer ingest of 40-event calls {without:.0} events/s without workflows, {with:.0} with one job per call ({:+.1} %)",
        (with / without - 1.0) * 100.0
    );
}
