//! A worker killed with SIGKILL after the vendor received its request: the
//! lease expires, another worker delivers the job again with the same
//! idempotency key, and the vendor (checking that key) makes one effect.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::Seed;
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Vendor {
    requests: Arc<Mutex<Vec<String>>>,
    effects: Arc<Mutex<Vec<String>>>,
    first_arrived: Arc<Notify>,
}

/// Makes the effect on the first request of a key and then never answers
/// (the worker dies waiting); answers a repeated key 200 with no effect.
async fn hook(State(v): State<Vendor>, headers: HeaderMap) -> (StatusCode, &'static str) {
    let key = headers
        .get("x-dialtone-idempotency-key")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    v.requests.lock().expect("lock").push(key.clone());
    let first = {
        let mut effects = v.effects.lock().expect("lock");
        if effects.contains(&key) {
            false
        } else {
            effects.push(key);
            true
        }
    };
    if first {
        v.first_arrived.notify_one();
        std::future::pending::<()>().await;
    }
    (StatusCode::OK, r#"{"id":"duplicate-of-first"}"#)
}

fn worker(url: &str, dir: &std::path::Path, tenant: &str, name: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_dialtone-workers"))
        .args([
            &format!("--database-url={url}"),
            "--listen=127.0.0.1:0",
            &format!("--credentials-dir={}", dir.display()),
            &format!("--worker-id={name}"),
            &format!("--tenant={tenant}"),
            "--lease-seconds=3",
            "--request-timeout-seconds=2",
            "--idle-poll-ms=50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dialtone-workers")
}

#[tokio::test]
async fn a_worker_killed_mid_request_leaves_exactly_one_effect() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let Some(db_url) = common::database_url() else {
        return;
    };
    let tenant = common::tenant();
    let secret = "whsec-crash";
    let vendor = Vendor::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(vendor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let id = common::seed(&pool, &Seed::webhook(&tenant, &url), "crash", 1).await[0];
    let dir = common::credentials(&tenant, secret);

    let mut first = worker(&db_url, &dir, &tenant, "crash-first");
    tokio::time::timeout(Duration::from_secs(20), vendor.first_arrived.notified())
        .await
        .expect("the vendor received the first attempt");
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let mut second = worker(&db_url, &dir, &tenant, "crash-second");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: String = sqlx::query_scalar("SELECT status FROM workflow_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("job");
        if status == "succeeded" || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    second.kill().expect("stop");
    second.wait().expect("reaped");

    assert_eq!(status, "succeeded");
    let requests = vendor.requests.lock().expect("lock").clone();
    let effects = vendor.effects.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2, "delivered again after the crash");
    assert_eq!(requests[0], requests[1], "with the same idempotency key");
    assert_eq!(effects.len(), 1, "one effect at the vendor");
    let attempts: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT attempt, outcome, worker FROM workflow_attempts WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("attempts");
    assert_eq!(
        attempts,
        [
            (1, "lost".to_owned(), "lease expired".to_owned()),
            (2, "succeeded".to_owned(), "crash-second".to_owned())
        ]
    );
}
