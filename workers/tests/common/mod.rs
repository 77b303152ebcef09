//! Shared by the workers' tests: the database (as the spine's tests find
//! it), seeded jobs, workers run in-process, and a local webhook receiver
//! that checks signatures and counts effects by idempotency key.
#![allow(dead_code)] // Each test binary uses part of it.

pub mod campaign;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dialtone_workers::metrics::Metrics;
use dialtone_workers::queue::{ClaimOptions, Scope};
use dialtone_workers::worker::{self, Report, WorkerConfig};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
}

pub fn database_url() -> Option<String> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A pool, or `None` to skip the test (panics when the environment is
/// required).
pub async fn pool() -> Option<PgPool> {
    let why = match database_url() {
        None => {
            "no DATABASE_URL and no .testenv/database-url (run `cargo xtask testenv up`)".to_owned()
        }
        Some(url) => match sqlx::postgres::PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
        {
            Ok(pool) => return Some(pool),
            Err(e) => format!("cannot connect to the test database: {e}"),
        },
    };
    assert!(!required(), "the database is required but {why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// A tenant name no other test (or earlier run) uses: tests share the
/// database and scope their workers to their own tenants.
pub fn tenant() -> String {
    format!("wt-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A job to seed.
pub struct Seed {
    pub tenant: String,
    pub action: &'static str,
    pub vendor: &'static str,
    pub provider: String,
    pub provider_config: Option<Value>,
    pub params: Value,
    pub max_attempts: i32,
    pub backoff_seconds: i32,
    pub cap: Option<(String, i32)>,
    pub timezone: &'static str,
}

impl Seed {
    pub fn builtin(tenant: &str, action: &'static str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            action,
            vendor: "builtin",
            provider: "builtin".into(),
            provider_config: None,
            params: json!({}),
            max_attempts: 5,
            backoff_seconds: 1,
            cap: None,
            timezone: "UTC",
        }
    }

    /// A webhook job to `url`, signed with the provider `<tenant>/hook`'s
    /// secret.
    pub fn webhook(tenant: &str, url: &str) -> Self {
        Self {
            vendor: "webhook",
            provider: format!("{tenant}/hook"),
            provider_config: Some(json!({
                "name": "hook", "kind": "Provider", "type": "webhook", "vendor": "webhook",
                "settings": {"webhookUrl": url}, "pricing": {},
            })),
            ..Self::builtin(tenant, "webhook")
        }
    }
}

/// Inserts `n` copies of `seed` (keys `<prefix>-<i>`); returns their ids.
pub async fn seed(pool: &PgPool, s: &Seed, prefix: &str, n: i64) -> Vec<i64> {
    let (scope, cap) = s
        .cap
        .clone()
        .map_or((None, None), |(a, b)| (Some(a), Some(b)));
    sqlx::query_scalar(
        "INSERT INTO workflow_jobs (idempotency_key, tenant, call_id, namespace, workflow, \
             trigger, action, provider, vendor, provider_config, payload, max_attempts, \
             backoff_seconds, cap_scope, daily_cap, timezone) \
         SELECT $2 || '/' || $1 || '-' || i, $2, NULL, $2, 'w', 'callCompleted', $3, $4, $5, $6, \
             jsonb_build_object('params', $7::jsonb, 'missing', '[]'::jsonb, 'call', '{}'::jsonb, 'event', '{}'::jsonb), \
             $8, $9, $10, $11, $12 \
         FROM generate_series(1, $13::bigint) AS i ORDER BY i RETURNING id",
    )
    .bind(prefix)
    .bind(&s.tenant)
    .bind(s.action)
    .bind(&s.provider)
    .bind(s.vendor)
    .bind(&s.provider_config)
    .bind(&s.params)
    .bind(s.max_attempts)
    .bind(s.backoff_seconds)
    .bind(scope)
    .bind(cap)
    .bind(s.timezone)
    .bind(n)
    .fetch_all(pool)
    .await
    .expect("seed jobs")
}

/// Jobs of `tenant` by status.
pub async fn statuses(pool: &PgPool, tenant: &str) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM workflow_jobs WHERE tenant = $1 GROUP BY status",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("statuses");
    rows.into_iter().collect()
}

/// A credentials directory holding `<tenant>/hook/signingSecret`.
pub fn credentials(tenant: &str, secret: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dialtone-workers-{}", Uuid::new_v4().simple()));
    let hook = dir.join(tenant).join("hook");
    std::fs::create_dir_all(&hook).expect("credentials dir");
    std::fs::write(hook.join("signingSecret"), secret).expect("secret file");
    dir
}

pub fn config(name: &str, tenants: &[&str], credentials_dir: PathBuf) -> WorkerConfig {
    WorkerConfig {
        claim: ClaimOptions {
            worker: name.to_owned(),
            batch: 32,
            per_tenant: 32,
            lease_seconds: 30.0,
            scope: Scope::Tenants(tenants.iter().map(|t| (*t).to_owned()).collect()),
        },
        concurrency: 64,
        idle_poll: Duration::from_millis(50),
        credentials_dir,
        request_timeout: Duration::from_secs(5),
    }
}

/// Runs a worker until `done` says the tenant's jobs are where the test
/// wants them (checked every 100 ms), or `limit` passes.
pub async fn run_until<F>(pool: &PgPool, cfg: WorkerConfig, limit: Duration, done: F) -> Report
where
    F: Fn(HashMap<String, i64>) -> bool + Send + 'static,
{
    let tenants = match &cfg.claim.scope {
        Scope::Tenants(t) => t.clone(),
        _ => Vec::new(),
    };
    let check = pool.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut all = HashMap::new();
            for t in &tenants {
                for (k, v) in statuses(&check, t).await {
                    *all.entry(k).or_insert(0) += v;
                }
            }
            if done(all) || tokio::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut registry = prometheus_client::registry::Registry::default();
    worker::run(pool.clone(), cfg, Metrics::register(&mut registry), stop).await
}

/// What the local webhook receiver saw.
#[derive(Default)]
pub struct Received {
    /// Requests by idempotency key.
    pub requests: HashMap<String, u32>,
    /// Bodies of accepted first deliveries.
    pub bodies: Vec<Value>,
    /// Requests whose signature did not verify.
    pub bad_signatures: u32,
}

/// How the receiver answers.
#[derive(Clone)]
pub enum Answer {
    /// 200 (a repeated key is answered 200 again, with no second effect).
    Ok,
    /// This status, with a JSON error body.
    Status(u16, &'static str),
}

#[derive(Clone)]
struct Receiver {
    secret: String,
    answer: Answer,
    delay: Duration,
    seen: Arc<Mutex<Received>>,
}

/// A webhook receiver on loopback; returns its URL and what it saw.
pub async fn receiver(
    secret: &str,
    answer: Answer,
    delay: Duration,
) -> (String, Arc<Mutex<Received>>) {
    let seen = Arc::new(Mutex::new(Received::default()));
    let state = Receiver {
        secret: secret.to_owned(),
        answer,
        delay,
        seen: Arc::clone(&seen),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Verified as docs/workflows.md tells a receiver to, independently of
    // the adapter's own code.
    let verified = verify(
        &r.secret,
        &header("x-dialtone-timestamp"),
        &body,
        &header("x-dialtone-signature"),
        now,
    );
    if !verified {
        r.seen.lock().expect("lock").bad_signatures += 1;
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"bad signature"}"#.into(),
        );
    }
    tokio::time::sleep(r.delay).await;
    let key = header("x-dialtone-idempotency-key");
    let mut seen = r.seen.lock().expect("lock");
    let count = seen.requests.entry(key).or_insert(0);
    *count += 1;
    let first = *count == 1;
    match r.answer {
        Answer::Ok => {
            if first {
                seen.bodies
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            (StatusCode::OK, r#"{"id":"evt_1"}"#.into())
        }
        Answer::Status(code, message) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error": message}).to_string(),
        ),
    }
}

/// `X-Dialtone-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
/// with the timestamp within five minutes of now.
pub fn verify(secret: &str, timestamp: &str, body: &[u8], signature: &str, now: i64) -> bool {
    use hmac::{Hmac, Mac};
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > 300 {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}
