//! SIGTERM against the real binary: no new calls, calls in progress finish,
//! the rest close as drained, events are flushed, exit status 0.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use dialtone_voice::testkit::{self, STREAM_SECRET, random_number, random_suffix, seed_dental};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

async fn status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_calls_flushes_events_and_exits_cleanly() {
    let Some(url) = testkit::database_or_skip("SIGTERM drain") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let number = random_number();
    let agent = format!("voice-drain-{}", random_suffix());
    let seeded = seed_dental(&pool, &agent, &number, "Mia").await.unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("127.0.0.1:{port}");
    let dir = testkit::scratch_dir().unwrap();
    let log = std::fs::File::create(dir.join("pod.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dialtone-voice"))
        .args(["--listen", &base, "--public-url", &format!("http://{base}")])
        .arg("--credentials-dir")
        .arg(dir.join("credentials"))
        .arg("--spill-path")
        .arg(dir.join("events.spill"))
        .args(["--drain-seconds", "3"])
        .env("DATABASE_URL", &url)
        .env("DIALTONE_STREAM_SECRET", STREAM_SECRET)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = format!("http://{base}/readyz");
    let mut up = false;
    for _ in 0..200 {
        if status(&ready).await == Some(200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = || std::fs::read_to_string(dir.join("pod.log")).unwrap_or_default();
    assert!(up, "the pod never became ready:\n{}", logs());

    let call_url = testkit::call_url(&base, &number, "+61400000005");
    let mut finishing = connect(&call_url).await;
    let mut lingering = connect(&call_url).await;
    let mut a = Transcript::default();
    let mut b = Transcript::default();
    let listen = until_listen(&mut finishing, &mut a).await.unwrap();
    until_listen(&mut lingering, &mut b).await.unwrap();

    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let mut draining = false;
    for _ in 0..50 {
        if status(&ready).await == Some(503) {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining, "readyz turns 503 on SIGTERM");
    match tokio_tungstenite::connect_async(&call_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a new call while draining must get 503, got {other:?}"),
    }

    // The call in progress finishes normally within the grace period.
    send(
        &mut finishing,
        answer(listen["expect"].as_str().unwrap(), &["filling".to_owned()]),
    )
    .await;
    cooperate(&mut finishing, &mut a).await;
    assert_eq!(a.outcome.as_deref(), Some("booked"));
    // The idle one is closed when the grace period runs out.
    let mut last = None;
    while let Some(m) = next_json(&mut lingering).await {
        last = Some(m);
    }
    assert_eq!(last.unwrap()["outcome"], "drained");

    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the pod exits after the drain")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}\n{}", logs());

    // Flushed before exit: both records are complete now, no waiting.
    for (t, reason) in [(&a, "ended"), (&b, "drained")] {
        let call_id: Uuid = t.call_id.parse().unwrap();
        let last: (String, serde_json::Value) = sqlx::query_as(
            "SELECT event_type, payload FROM call_events WHERE call_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(call_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(last.0, "callClosed");
        assert_eq!(last.1["reason"], reason);
    }
    seeded.unroute(&pool).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
