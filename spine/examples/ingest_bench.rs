//! Event ingest: the `EventWriter` (UNNEST insert + live `calls` upsert in
//! one transaction per batch) against a plain multi-row `INSERT … VALUES`
//! of the same rows in batches of the same size, in the same database and
//! the same run.
//!
//! Both write into scratch tables (`LIKE call_events INCLUDING ALL`, and
//! `calls`) in a schema of their own, dropped at the end. Events are those
//! of `INGEST_CALLS` concurrent calls (default 2,000), interleaved as
//! concurrent calls send them, `INGEST_EVENTS` in all (default 200,000),
//! `INGEST_BATCH` per batch (default: the writer's default `max_batch`;
//! `INGEST_BASELINE_BATCH` sets another for the baseline), and
//! `INGEST_INTERLEAVE=turn|event` says how the calls' events interleave
//! (see below). Each side runs
//! `INGEST_ROUNDS` times (default 3) into emptied tables; the median
//! counts. Both sides include turning events into rows.
//!
//! `DATABASE_URL` (or `.testenv/database-url`) names the database.

#[path = "../tests/spine_db/calls.rs"]
mod calls;

use std::error::Error;
use std::str::FromStr;
use std::time::{Duration, Instant};

use dialtone_spine::db::EventRow;
use dialtone_spine::event::{CallEvent, EventBody, RuntimeEvent};
use dialtone_spine::writer::{EventWriter, WriterConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use calls::{Ending, call};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn env_or<T: FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number").into()),
        Err(_) => Ok(default),
    }
}

fn database_url() -> Result<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(url);
    }
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
    Ok(std::fs::read_to_string(&file)
        .map_err(|e| format!("no DATABASE_URL and {}: {e}", file.display()))?
        .trim()
        .to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let events: usize = env_or("INGEST_EVENTS", 200_000)?;
    let calls: usize = env_or("INGEST_CALLS", 2_000)?;
    let batch: usize = env_or("INGEST_BATCH", WriterConfig::new("").max_batch)?;
    let rounds: usize = env_or("INGEST_ROUNDS", 3)?;
    let interleave = std::env::var("INGEST_INTERLEAVE").unwrap_or_else(|_| "turn".to_owned());
    let baseline_batch: usize = env_or("INGEST_BASELINE_BATCH", batch)?;

    let url = database_url()?;
    let schema = format!(
        "bench_ingest_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    create_scratch(&admin, &schema).await?;
    let shape = Shape {
        events,
        calls,
        batch,
        baseline_batch,
        rounds,
        interleave,
    };
    let result = run(&url, &admin, &schema, &shape).await;
    let dropped = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await;
    result?;
    dropped?;
    Ok(())
}

/// What the benchmark writes.
struct Shape {
    events: usize,
    calls: usize,
    batch: usize,
    baseline_batch: usize,
    rounds: usize,
    interleave: String,
}

/// A call's events split before each caller input: what the runtime
/// sends at once.
fn bursts(events: Vec<CallEvent>) -> Vec<Vec<CallEvent>> {
    let mut out: Vec<Vec<CallEvent>> = Vec::new();
    for e in events {
        let starts = matches!(
            e.body,
            EventBody::Runtime(RuntimeEvent::InputReceived { .. })
        );
        match out.last_mut() {
            Some(last) if !starts => last.push(e),
            _ => out.push(vec![e]),
        }
    }
    out
}

async fn run(url: &str, admin: &PgPool, schema: &str, shape: &Shape) -> Result<()> {
    let Shape {
        events,
        calls,
        batch,
        baseline_batch,
        rounds,
        ref interleave,
    } = *shape;
    // The writer's SQL names `call_events` and `calls` unqualified; the
    // search path points it at the scratch schema.
    let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;

    // 6 events per turn and 4 to 8 around them; a quarter of the calls
    // are still open (shorter), so aim a little high and cut at `events`.
    let per_call = (events / calls.max(1)).max(10);
    let turns = per_call.saturating_sub(4) / 6 + 1;
    let tenant = "bench".to_owned();
    // A mix of endings, a quarter of the calls still in flight.
    let by_call: Vec<Vec<CallEvent>> = (0..calls)
        .map(|i| call(Uuid::new_v4(), &tenant, turns, Ending::nth(i)))
        .collect();
    // Interleaved as concurrent calls produce them. `turn` (the default):
    // a call's events come in bursts (the call opening, then each caller
    // input with the agent's reply, costs and latency), and every call's
    // first burst is followed by every call's second, … `event`: one event
    // of every call in turn, the worst case for the projection (every
    // event of a batch touches another call).
    let bursts: Vec<Vec<Vec<CallEvent>>> = by_call
        .into_iter()
        .map(|events| match interleave.as_str() {
            "event" => events.into_iter().map(|e| vec![e]).collect(),
            _ => bursts(events),
        })
        .collect();
    let longest = bursts.iter().map(Vec::len).max().unwrap_or(0);
    let mut all: Vec<CallEvent> = Vec::with_capacity(events);
    for i in 0..longest {
        for call in &bursts {
            all.extend(call.get(i).into_iter().flatten().cloned());
        }
    }
    all.truncate(events);
    let n = all.len();
    println!(
        "ingest: {n} events of {calls} calls ({} per call, interleaved by {interleave}), \
         batches of {batch} (baseline {baseline_batch}), {rounds} rounds",
        n / calls.max(1)
    );

    let mut writer_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    for round in 1..=rounds {
        empty(admin, schema).await?;
        let baseline = baseline(&pool, all.clone(), baseline_batch).await?;
        empty(admin, schema).await?;
        let writer = writer(&pool, all.clone(), batch).await?;
        let projected: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.calls"
        )))
        .fetch_one(admin)
        .await?;
        let stored: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.call_events"
        )))
        .fetch_one(admin)
        .await?;
        if usize::try_from(stored)? != n {
            return Err(format!("the writer stored {stored} of {n} events").into());
        }
        let (w, b) = (rate(n, writer), rate(n, baseline));
        println!(
            "  round {round}: writer {w:.0} ev/s ({writer:.2?}, {projected} calls rows), \
             baseline {b:.0} ev/s ({baseline:.2?})"
        );
        writer_rates.push(w);
        baseline_rates.push(b);
    }
    let (w, b) = (median(&mut writer_rates), median(&mut baseline_rates));
    println!(
        "ingest: writer {w:.0} ev/s, baseline {b:.0} ev/s, ratio {:.2} (target >= 0.8)",
        w / b
    );
    pool.close().await;
    Ok(())
}

fn rate(n: usize, took: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)] // event counts are far below 2^52
    let n = n as f64;
    n / took.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Every event through an `EventWriter`, until flushed.
async fn writer(pool: &PgPool, events: Vec<CallEvent>, batch: usize) -> Result<Duration> {
    let spill = std::env::temp_dir().join(format!("dialtone-bench-{}.spill", Uuid::new_v4()));
    let cfg = WriterConfig {
        buffer: 4 * batch,
        max_batch: batch,
        max_delay: Duration::from_millis(5),
        ..WriterConfig::new(&spill)
    };
    let (sink, task) = EventWriter::start(pool.clone(), cfg);
    let started = Instant::now();
    for e in events {
        sink.send(e).await?;
    }
    sink.flush().await?;
    let took = started.elapsed();
    let spilled = sink
        .stats()
        .spilled
        .load(std::sync::atomic::Ordering::Relaxed);
    task.shutdown().await?;
    let _ = std::fs::remove_file(&spill);
    if spilled > 0 {
        return Err(format!("the writer spilled {spilled} events: the database failed").into());
    }
    Ok(took)
}

/// The same rows with a plain multi-row INSERT, batch by batch.
async fn baseline(pool: &PgPool, events: Vec<CallEvent>, batch: usize) -> Result<Duration> {
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        let rows: Vec<EventRow> = chunk.iter().map(EventRow::from_event).collect();
        let mut sql = String::from(
            "INSERT INTO baseline_events \
             (call_id, seq, tenant, event_type, schema_version, occurred_at, payload) VALUES ",
        );
        for i in 0..rows.len() {
            let p = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            ));
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for r in rows {
            query = query
                .bind(r.call_id)
                .bind(r.seq)
                .bind(r.tenant)
                .bind(r.event_type)
                .bind(r.schema_version)
                .bind(r.occurred_at)
                .bind(r.payload);
        }
        query.execute(pool).await?;
    }
    Ok(started.elapsed())
}

async fn create_scratch(admin: &PgPool, schema: &str) -> Result<()> {
    for sql in [
        format!("CREATE SCHEMA {schema}"),
        format!("CREATE TABLE {schema}.call_events (LIKE public.call_events INCLUDING ALL)"),
        format!(
            "CREATE TRIGGER call_events_append_only BEFORE UPDATE OR DELETE ON {schema}.call_events \
             FOR EACH ROW EXECUTE FUNCTION public.reject_mutation()"
        ),
        format!("CREATE TABLE {schema}.calls (LIKE public.calls INCLUDING ALL)"),
        format!("CREATE TABLE {schema}.baseline_events (LIKE public.call_events INCLUDING ALL)"),
    ] {
        sqlx::query(AssertSqlSafe(sql)).execute(admin).await?;
    }
    // LIKE copies columns, constraints and indexes but not storage
    // parameters (the projection's fillfactor).
    for table in ["call_events", "calls"] {
        let options: String = sqlx::query_scalar(
            "SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class \
             WHERE oid = to_regclass('public.' || $1)",
        )
        .bind(table)
        .fetch_one(admin)
        .await?;
        if !options.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {schema}.{table} SET ({options})"
            )))
            .execute(admin)
            .await?;
        }
    }
    Ok(())
}

async fn empty(admin: &PgPool, schema: &str) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "TRUNCATE {schema}.call_events, {schema}.calls, {schema}.baseline_events"
    )))
    .execute(admin)
    .await?;
    Ok(())
}
