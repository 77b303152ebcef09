//! 1,000 concurrent simulated callers against one voice pod, with builtin
//! providers, against `DATABASE_URL` (or the test environment).
//!
//! The pod runs in this process on its own Tokio runtime whose threads are
//! named `dialtone-voice`; the callers run on another runtime. The pod's
//! CPU is the sum of its threads' user and system time from
//! `/proc/self/task/*/stat`, so the callers' own work is not counted.
//! Turn overhead is the server-side `turnMeasured` latency (caller's end of
//! turn → first agent text): with builtin providers that is the runtime's
//! own cost.
//!
//!     cargo run --release -p dialtone-voice --example call_bench

use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialtone_voice::testkit::{self, TestPod, random_number, random_suffix, seed_dental};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const CALLS: usize = 1_000;
const POD_THREAD: &str = "dialtone-voice";
/// `/proc` reports CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of this process's threads named `name`.
fn thread_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so split after
        // the last parenthesis; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    ticks as f64 / TICKS_PER_SECOND
}

fn answer(expect: &str, options: &[String]) -> String {
    match expect {
        "choice" => options.first().cloned().unwrap_or_default(),
        "name" => "Jane Citizen".to_owned(),
        "phone" => "oh four one two three four five six seven eight".to_owned(),
        "dateTime" => "thursday at three in the afternoon".to_owned(),
        _ => "yes".to_owned(),
    }
}

/// One cooperative call: whether its objective completed, and the
/// client-side latency of each turn (answer sent → first `say`), in µs.
async fn call(url: String) -> Result<(bool, Vec<i64>), String> {
    let (mut socket, _) = connect_async(&url).await.map_err(|e| e.to_string())?;
    let mut sent: Option<Instant> = None;
    let mut latencies = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(60), socket.next())
        .await
        .map_err(|_| "timeout".to_owned())?
    {
        let Message::Text(text) = message.map_err(|e| e.to_string())? else {
            continue;
        };
        let m: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
        match m["type"].as_str() {
            Some("say") => {
                if let Some(at) = sent.take() {
                    latencies.push(i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX));
                }
            }
            Some("listen") => {
                let options: Vec<String> = m["options"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let text = answer(m["expect"].as_str().unwrap_or_default(), &options);
                let turn = json!({"type": "utterance", "text": text, "confidence": 0.95});
                sent = Some(Instant::now());
                socket
                    .send(Message::Text(turn.to_string().into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some("ended") => return Ok((m["completed"].as_bool() == Some(true), latencies)),
            _ => {}
        }
    }
    Err("closed before the end".to_owned())
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() -> ExitCode {
    testkit::install_crypto();
    let Some(url) = testkit::database_url() else {
        eprintln!(
            "call_bench: no DATABASE_URL and no .testenv/database-url (cargo xtask testenv up)"
        );
        return ExitCode::FAILURE;
    };
    let pod_runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(POD_THREAD)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("call_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let callers = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-callers")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("call_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let number = random_number();
    let setup = pod_runtime.block_on(async {
        let pod = TestPod::start(&url, Duration::from_secs(30)).await?;
        let agent = format!("bench-{}", random_suffix());
        let seeded = seed_dental(pod.pool(), &agent, &number, "Mia").await?;
        Ok::<_, testkit::TestkitError>((pod, seeded))
    });
    let (pod, seeded) = match setup {
        Ok(p) => p,
        Err(e) => {
            eprintln!("call_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let call_url = pod.call_url(&number, "+61400000000");
    let cpu_before = thread_cpu(POD_THREAD);
    let started = Instant::now();
    let results: Vec<Result<(bool, Vec<i64>), String>> = callers.block_on(async {
        let handles: Vec<_> = (0..CALLS)
            .map(|_| tokio::spawn(call(call_url.clone())))
            .collect();
        let mut results = Vec::with_capacity(CALLS);
        for h in handles {
            results.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        results
    });
    let wall = started.elapsed();
    let pool = pod.pool().clone();
    // Stopping drains and flushes the event writer, whose work is part of
    // what a call costs.
    if let Err(e) = pod_runtime.block_on(pod.stop()) {
        eprintln!("call_bench: stopping the pod: {e}");
        return ExitCode::FAILURE;
    }
    let cpu = thread_cpu(POD_THREAD) - cpu_before;
    // After the CPU reading, so the cleanup is not counted as call work.
    if let Err(e) = pod_runtime.block_on(seeded.unroute(&pool)) {
        eprintln!("call_bench: removing the bench's route: {e}");
        return ExitCode::FAILURE;
    }
    let latencies = pod_runtime.block_on(async {
        sqlx::query_scalar::<_, i64>(
            "SELECT (e.payload->>'latencyMicros')::bigint FROM call_events e \
             WHERE e.event_type = 'turnMeasured' AND e.call_id IN \
             (SELECT call_id FROM call_events WHERE event_type = 'callOpened' AND payload->>'callee' = $1)",
        )
        .bind(&number)
        .fetch_all(&pool)
        .await
    });
    let mut latencies = match latencies {
        Ok(l) => l,
        Err(e) => {
            eprintln!("call_bench: reading turn latencies: {e}");
            return ExitCode::FAILURE;
        }
    };
    latencies.sort_unstable();
    let completed = results
        .iter()
        .filter(|r| matches!(r, Ok((true, _))))
        .count();
    let mut client: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    client.sort_unstable();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "voice: {CALLS} calls, turn overhead p50 {:.2} ms p99 {:.2} ms (target p99 < 5 ms), CPU per call {:.2} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        cpu * 1000.0 / CALLS as f64,
    );
    println!(
        "voice: client-side turn latency (answer sent → first say, all {CALLS} callers at once) p50 {:.2} ms p95 {:.2} ms p99 {:.2} ms",
        percentile(&client, 50.0),
        percentile(&client, 95.0),
        percentile(&client, 99.0),
    );
    println!(
        "voice: {completed}/{CALLS} completed ({:.1}%), {} turns measured, {:.1} s wall, {} client errors{}",
        100.0 * completed as f64 / CALLS as f64,
        latencies.len(),
        wall.as_secs_f64(),
        failed.len(),
        failed
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if completed == CALLS {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
