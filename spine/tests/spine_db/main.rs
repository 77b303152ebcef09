//! The event writer and the `calls` projection against real PostgreSQL.
//!
//! The shared database is `DATABASE_URL`, else the one in
//! `.testenv/database-url` (`cargo xtask testenv up`); without either the
//! tests fail under `CI=true`/`1` or `DIALTONE_REQUIRE_ENV=1` and are
//! skipped otherwise. Every test writes under its own random tenant and
//! never truncates a table. The outage test runs a private PostgreSQL.

mod calls;
mod outage;
mod poison;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use dialtone_spine::event::CallEvent;
use dialtone_spine::projection::{self, Scope};
use dialtone_spine::writer::{EventWriter, SendError, WriterConfig};
use sqlx::postgres::PgPoolOptions;
use std::sync::atomic::Ordering;
use uuid::Uuid;

use calls::{Ending, call};
use support::{config, folded, pool, stored, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_many_concurrent_calls_are_stored_once_and_in_order() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let (sink, task) = EventWriter::start(pool.clone(), config("order"));
    let sent: BTreeMap<Uuid, Vec<CallEvent>> = (0..120)
        .map(|i| {
            let id = Uuid::new_v4();
            (id, call(id, &tenant, 4 + i % 5, Ending::nth(i)))
        })
        .collect();
    let total: usize = sent.values().map(Vec::len).sum();
    // One task per call, as the voice runtime runs them, interleaving.
    let mut callers = Vec::new();
    for events in sent.values().cloned() {
        let sink = sink.clone();
        callers.push(tokio::spawn(async move {
            for e in events {
                sink.send(e).await.expect("the writer accepts");
                tokio::task::yield_now().await;
            }
        }));
    }
    for c in callers {
        c.await.expect("caller finishes");
    }
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops cleanly");

    assert_eq!(stats.written.load(Ordering::Relaxed), total as u64);
    assert_eq!(stats.spilled.load(Ordering::Relaxed), 0);
    assert_eq!(stats.buffered.load(Ordering::Relaxed), 0);
    assert!(stats.batches.load(Ordering::Relaxed) > 1);
    // Every event back, equal to what was sent (JSONB round trip included).
    assert_eq!(stored(&pool, &tenant).await, sent);

    // A later seq never committed in an earlier transaction than an
    // earlier seq of the same call.
    let xids: Vec<(Uuid, i32, i64)> = sqlx::query_as(
        "SELECT call_id, seq, xmin::text::int8 FROM call_events \
         WHERE tenant = $1 ORDER BY call_id, seq",
    )
    .bind(&tenant)
    .fetch_all(&pool)
    .await
    .expect("reads xmin");
    for pair in xids.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(
                pair[0].2 <= pair[1].2,
                "call {} seq {} committed after seq {}",
                pair[0].0,
                pair[0].1,
                pair[1].1
            );
        }
    }

    // The live projection is the fold of each call.
    let live = projection::load_calls(&pool, Scope::Tenant(tenant.clone()))
        .await
        .expect("loads calls");
    assert_eq!(live, folded(sent.values()));
    assert_eq!(live.len(), 120);
}

#[tokio::test]
async fn a_duplicate_is_stored_once_and_counted_once() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let (sink, task) = EventWriter::start(pool.clone(), config("dup"));
    let first = call(Uuid::new_v4(), &tenant, 3, Ending::Booked);
    let second = call(Uuid::new_v4(), &tenant, 3, Ending::Hangup);
    for e in first.iter().cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    // Again, in a later batch; and the second call twice within one batch.
    for e in first.iter().cloned() {
        sink.send(e).await.expect("sends");
    }
    for e in second.iter().chain(second.iter()).cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");

    let unique = first.len() + second.len();
    assert_eq!(stats.written.load(Ordering::Relaxed), unique as u64);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), unique as u64);
    let stored = stored(&pool, &tenant).await;
    assert_eq!(stored.values().map(Vec::len).sum::<usize>(), unique);
    // Costs are summed once, not per delivery.
    let live = projection::load_calls(&pool, Scope::Tenant(tenant))
        .await
        .expect("loads calls");
    assert_eq!(live, folded([&first, &second]));
    assert!(live.iter().all(|r| r.cost_micro_usd > 0));
}

#[tokio::test]
async fn a_full_buffer_makes_send_wait() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let events = call(Uuid::new_v4(), &tenant, 1, Ending::Booked);
    // Hold the writer: an uncommitted row with the first event's key makes
    // its insert wait.
    let mut blocker = pool.begin().await.expect("begins");
    sqlx::query(
        "INSERT INTO call_events (call_id, seq, tenant, event_type, occurred_at, payload) \
         VALUES ($1, 0, $2, 'callOpened', now(), '{}')",
    )
    .bind(events[0].call_id)
    .bind(&tenant)
    .execute(&mut *blocker)
    .await
    .expect("inserts the blocking row");

    let cfg = WriterConfig {
        buffer: 2,
        max_batch: 1,
        ..config("pressure")
    };
    let (sink, task) = EventWriter::start(pool.clone(), cfg);
    sink.send(events[0].clone()).await.expect("sends");
    // The writer takes the first event and waits on the lock; two fit in
    // the buffer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.send(events[1].clone()).await.expect("sends");
    sink.send(events[2].clone()).await.expect("sends");
    let waited = tokio::time::timeout(Duration::from_millis(300), sink.send(events[3].clone()))
        .await
        .is_err();
    assert!(waited, "send returned while the buffer was full");
    match sink.try_send(events[3].clone()) {
        Err(SendError::Full(e)) => assert_eq!(e.seq, 3),
        other => panic!("expected a full buffer, got {other:?}"),
    }
    assert_eq!(sink.stats().buffered.load(Ordering::Relaxed), 3);

    blocker.rollback().await.expect("releases the writer");
    for e in events.iter().skip(3).cloned() {
        sink.send(e).await.expect("sends once there is room");
    }
    sink.flush().await.expect("flushes");
    task.shutdown().await.expect("stops");
    let stored = stored(&pool, &tenant).await;
    assert_eq!(stored.get(&events[0].call_id), Some(&events));
}

#[tokio::test]
async fn a_refused_event_is_kept_as_a_dead_letter_and_the_rest_is_written() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let cfg = config("dead-letter");
    let rejected = cfg.spill_path.with_file_name("events.spill.rejected");
    let (sink, task) = EventWriter::start(pool.clone(), cfg);
    let events = call(Uuid::new_v4(), &tenant, 2, Ending::Booked);
    // seq must be >= 0: the CHECK constraint refuses this one, every time.
    let mut bad = events[3].clone();
    bad.seq = -1;
    for e in events.iter().take(3).cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.send(bad).await.expect("sends");
    for e in events.iter().skip(3).cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");

    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
    let stored = stored(&pool, &tenant).await;
    assert_eq!(stored.get(&events[0].call_id), Some(&events));
    let text = std::fs::read_to_string(&rejected).expect("dead-letter file written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letters are JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["row"]["seq"], -1);
    assert_eq!(lines[0]["row"]["callId"], events[0].call_id.to_string());
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("check")),
        "{text}"
    );
}

#[tokio::test]
async fn a_spill_file_left_behind_is_delivered_on_the_next_start() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let cfg = config("leftover");
    let spill = cfg.spill_path.clone();
    let events = call(Uuid::new_v4(), &tenant, 3, Ending::Transferred);

    // A writer whose database is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let nowhere = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/none"))
        .expect("a lazy pool");
    let (sink, task) = EventWriter::start(nowhere, cfg.clone());
    for e in events.iter().cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("durable in the spill file");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");
    assert_eq!(stats.spilled.load(Ordering::Relaxed), events.len() as u64);
    assert_eq!(
        stats.spill_pending.load(Ordering::Relaxed),
        events.len() as u64
    );
    assert_eq!(stats.written.load(Ordering::Relaxed), 0);
    let lines = std::fs::read_to_string(&spill)
        .expect("spill file")
        .lines()
        .count();
    assert_eq!(lines, events.len());

    // The next writer, with the database, delivers it first.
    let (sink, task) = EventWriter::start(pool.clone(), cfg);
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");
    assert_eq!(stats.written.load(Ordering::Relaxed), events.len() as u64);
    assert_eq!(stats.spill_pending.load(Ordering::Relaxed), 0);
    assert_eq!(std::fs::metadata(&spill).expect("spill file").len(), 0);
    let stored = stored(&pool, &tenant).await;
    assert_eq!(stored.get(&events[0].call_id), Some(&events));
    let live = projection::load_calls(&pool, Scope::Tenant(tenant))
        .await
        .expect("loads calls");
    assert_eq!(live, folded([&events]));
}

#[tokio::test]
async fn a_rebuilt_projection_equals_the_live_one() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let sent: Vec<Vec<CallEvent>> = (0..30)
        .map(|i| call(Uuid::new_v4(), &tenant, 2 + i % 4, Ending::nth(i)))
        .collect();
    // The first writer sees the first half of every call; a second one
    // (a restarted pod) the rest, so it folds calls it never saw opened
    // from the database.
    let (sink, task) = EventWriter::start(pool.clone(), config("rebuild-1"));
    for events in &sent {
        for e in events.iter().take(events.len() / 2).cloned() {
            sink.send(e).await.expect("sends");
        }
    }
    task.shutdown().await.expect("stops");
    let (sink2, task2) = EventWriter::start(pool.clone(), config("rebuild-2"));
    for events in &sent {
        for e in events.iter().skip(events.len() / 2).cloned() {
            sink2.send(e).await.expect("sends");
        }
    }
    task2.shutdown().await.expect("stops");
    drop(sink);

    let scope = Scope::Tenant(tenant.clone());
    let live = projection::load_calls(&pool, scope.clone())
        .await
        .expect("loads calls");
    assert_eq!(live, folded(&sent));
    assert!(live.iter().any(|r| r.ended_at.is_none()), "some calls open");
    assert!(
        live.iter()
            .any(|r| r.outcome.as_deref() == Some("emergency-transferred"))
    );

    let report = projection::rebuild(&pool, scope.clone())
        .await
        .expect("rebuilds");
    assert_eq!(report.calls, 30);
    assert_eq!(
        report.events,
        sent.iter().map(Vec::len).sum::<usize>() as u64
    );
    let rebuilt = projection::load_calls(&pool, scope)
        .await
        .expect("loads calls");
    assert_eq!(rebuilt, live);
}

#[tokio::test]
async fn a_missing_projection_row_is_written_again() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let events = call(Uuid::new_v4(), &tenant, 4, Ending::Hangup);
    let (sink, task) = EventWriter::start(pool.clone(), config("missing-row"));
    let half = events.len() / 2;
    for e in events.iter().take(half).cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    // The writer holds the row; someone removes it from the table (as a
    // concurrent rebuild does before writing it again).
    sqlx::query("DELETE FROM calls WHERE call_id = $1")
        .bind(events[0].call_id)
        .execute(&pool)
        .await
        .expect("deletes the row");
    for e in events.iter().skip(half).cloned() {
        sink.send(e).await.expect("sends");
    }
    task.shutdown().await.expect("stops");
    let live = projection::load_calls(&pool, Scope::Tenant(tenant))
        .await
        .expect("loads calls");
    assert_eq!(live, folded([&events]));
}
