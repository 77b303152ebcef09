//! PostgreSQL stops in the middle of a load and starts again: nothing is
//! lost, nothing is duplicated, and the projection equals a rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dialtone_spine::event::CallEvent;
use dialtone_spine::projection::{self, Scope};
use dialtone_spine::writer::{EventWriter, WriterConfig};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::calls::{Ending, call};
use crate::support::{PrivatePostgres, config, folded};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgres_under_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let Some(pg) = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("starts PostgreSQL")
    else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&pg.url())
        .await
        .expect("connects");
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .expect("applies the migrations");

    let cfg = WriterConfig {
        buffer: 500,
        max_batch: 100,
        retry_interval: Duration::from_millis(250),
        write_timeout: Duration::from_secs(2),
        ..config("outage")
    };
    let (sink, task) = EventWriter::start(pool.clone(), cfg);
    let stats = Arc::clone(sink.stats());

    // 150 calls, each sending an event every 40 ms for about 2.5 s.
    let tenant = "outage".to_owned();
    let sent: BTreeMap<Uuid, Vec<CallEvent>> = (0..150)
        .map(|i| {
            let id = Uuid::new_v4();
            (id, call(id, &tenant, 9, Ending::nth(i)))
        })
        .collect();
    let total: usize = sent.values().map(Vec::len).sum();
    let mut callers = Vec::new();
    for events in sent.values().cloned() {
        let sink = sink.clone();
        callers.push(tokio::spawn(async move {
            for e in events {
                sink.send(e).await.expect("the writer accepts");
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }

    // Stop PostgreSQL mid-load, keep sending, start it again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let written_before = stats.written.load(Ordering::Relaxed);
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .expect("stops PostgreSQL");
    // Long enough for the pool's 1 s acquire timeout to give up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spilled_during = stats.spilled.load(Ordering::Relaxed);
    let pg = tokio::task::spawn_blocking(move || {
        pg.resume();
        pg
    })
    .await
    .expect("starts PostgreSQL again");

    for c in callers {
        c.await.expect("caller finishes");
    }
    sink.flush().await.expect("flushes");
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.spill_pending.load(Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "the spill file is not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.shutdown().await.expect("stops");

    assert!(written_before > 0, "events were written before the outage");
    assert!(spilled_during > 0, "events were spilled during the outage");
    assert!(stats.failures.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);

    // Every (call_id, seq) sent is stored, exactly once, and nothing else.
    let keys: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT call_id, seq FROM call_events ORDER BY call_id, seq")
            .fetch_all(&pool)
            .await
            .expect("reads keys");
    assert_eq!(keys.len(), total);
    let expected: BTreeSet<(Uuid, i32)> = sent
        .values()
        .flatten()
        .map(|e| (e.call_id, e.seq))
        .collect();
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), expected);
    // A commit whose answer was lost is re-delivered and counted as a
    // duplicate, so the writer cannot claim more than was sent.
    let (written, duplicates) = (
        stats.written.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
    );
    eprintln!(
        "outage: {total} events sent, {written} written, {duplicates} re-delivered, {} spilled, \
         {} failed writes, in {:?}",
        stats.spilled.load(Ordering::Relaxed),
        stats.failures.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(written <= total as u64, "written {written} of {total}");
    assert!(written + duplicates >= total as u64);

    // The live projection is the fold of what was sent, and a rebuild.
    let live = projection::load_calls(&pool, Scope::All)
        .await
        .expect("loads calls");
    assert_eq!(live, folded(sent.values()));
    let report = projection::rebuild(&pool, Scope::All)
        .await
        .expect("rebuilds");
    assert_eq!(report.events, total as u64);
    let rebuilt = projection::load_calls(&pool, Scope::All)
        .await
        .expect("loads calls");
    assert_eq!(rebuilt, live);
    pool.close().await;
    drop(pg);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
