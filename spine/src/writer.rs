//! The event writer of the voice pods: a bounded buffer, batched inserts,
//! the live `calls` projection, and a local spill file while PostgreSQL is
//! unreachable.
//!
//! * [`EventSink::send`] waits while the buffer is full (back-pressure).
//! * One task writes batches, one transaction each: one `INSERT … SELECT
//!   FROM UNNEST(…)` of the events, then the `calls` rows of the calls the
//!   batch touched, folded with [`projection::apply`] from the events
//!   actually inserted: one `UPDATE … FROM UNNEST` for calls the writer
//!   holds, one upsert for calls it opens or has not seen since it started
//!   (those are folded from all of their stored events).
//! * Events sent for the first time are inserted plainly; a unique
//!   violation means some were stored already, and the batch is written
//!   again with `ON CONFLICT (call_id, seq) DO NOTHING RETURNING`, which is
//!   also how the spill file is delivered. Each (call id, seq) is stored
//!   exactly once and folded once.
//! * Events are written in the order they were sent, so a call's events
//!   (sent in seq order by the one task running the call) stay in order.
//! * When PostgreSQL fails (connection, I/O, shutdown, timeout), the batch
//!   and every later one go to the spill file, in order, until a retry
//!   succeeds; the file is then delivered in order and truncated. An
//!   existing spill file is delivered first on start.
//! * Text PostgreSQL cannot store (NUL) is replaced before a batch is
//!   built (see [`storable`](crate::storable)), so no event fails a batch
//!   for it; the event is folded as stored.
//! * What PostgreSQL refuses for good (a trigger, a constraint) is isolated
//!   by halving the failing batch (about 2·log2(n) statements per refused
//!   event, not n), and kept in `<spill>.rejected` with the error. The rest
//!   of the refused event's call follows it there rather than into
//!   PostgreSQL, so a call's stored events never have a hole in their seq.
//!
//! Give the pool a short `acquire_timeout` (a second or two): while the
//! server is down, every write waits that long before it spills.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::db::{EventRow, is_retryable, parse_row};
use crate::event::{CallEvent, EventBody, RuntimeEvent};
use crate::outbox::{self, PlanCache, Triggered};
use crate::projection::{self, CallRow};
use crate::spill::{self, Spill};

/// How the writer buffers, batches and retries.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Events the buffer holds before `send` waits.
    pub buffer: usize,
    /// Most events per insert.
    pub max_batch: usize,
    /// Longest an event waits for its batch to fill.
    pub max_delay: Duration,
    /// The spill file; `<spill_path>.rejected` holds dead letters.
    pub spill_path: PathBuf,
    /// Pause between attempts to deliver the spill file.
    pub retry_interval: Duration,
    /// Longest one database write may take before it counts as failed (a
    /// pool waiting for an unreachable server would otherwise hold the
    /// writer for its whole acquire timeout).
    pub write_timeout: Duration,
}

impl WriterConfig {
    /// Defaults for a voice pod: 20,000 buffered events, batches of up to
    /// 5,000 events or 10 ms, retries every second, 10 s per write. Under
    /// load batches fill up, and a large one folds several events of a
    /// call into one `calls` update (see the ingest benchmark).
    pub fn new(spill_path: impl Into<PathBuf>) -> Self {
        Self {
            buffer: 20_000,
            max_batch: 5_000,
            max_delay: Duration::from_millis(10),
            spill_path: spill_path.into(),
            retry_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters and gauges for metrics, updated by the writer as it goes.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Gauge: events sent and not yet durable.
    pub buffered: AtomicU64,
    /// Counter: events inserted into PostgreSQL.
    pub written: AtomicU64,
    /// Counter: events PostgreSQL already had (re-deliveries).
    pub duplicates: AtomicU64,
    /// Counter: events appended to the spill file.
    pub spilled: AtomicU64,
    /// Gauge: events in the spill file not yet in PostgreSQL.
    pub spill_pending: AtomicU64,
    /// Counter: batches committed.
    pub batches: AtomicU64,
    /// Counter: failed database attempts (writes and retry probes) and
    /// spill appends.
    pub failures: AtomicU64,
    /// Counter: events kept in the dead-letter file.
    pub rejected: AtomicU64,
    /// Counter: events whose text PostgreSQL cannot store was replaced.
    pub text_replaced: AtomicU64,
    /// Counter: workflow jobs inserted with their trigger events.
    pub jobs: AtomicU64,
}

impl WriterStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn sub(gauge: &AtomicU64, n: usize) {
        // Saturating: a gauge never wraps below zero.
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n as u64))
        });
    }
}

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The writer has stopped.
    #[error("the event writer has stopped")]
    Closed(Box<CallEvent>),
    /// The buffer is full (only from [`EventSink::try_send`]).
    #[error("the event buffer is full")]
    Full(Box<CallEvent>),
}

/// Why the writer stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The spill file cannot be opened, so nothing could be made durable
    /// while PostgreSQL is unreachable.
    #[error("spill file {path}: {source}")]
    Spill {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer task panicked or was cancelled.
    #[error("event writer task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The writer had stopped before the flush.
    #[error("the event writer has stopped")]
    Closed,
}

// Nearly every command is an event: boxing it would cost an allocation per
// event to save space in flush markers.
#[allow(clippy::large_enum_variant)]
enum Command {
    Event(CallEvent),
    Flush(oneshot::Sender<()>),
}

/// Where the voice runtime sends events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
}

impl EventSink {
    /// Queues an event, waiting while the buffer is full.
    pub async fn send(&self, event: CallEvent) -> Result<(), SendError> {
        // Reserving first keeps the event out of the channel's error path.
        match self.tx.reserve().await {
            Ok(permit) => {
                self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                permit.send(Command::Event(event));
                Ok(())
            }
            Err(_) => Err(SendError::Closed(Box::new(event))),
        }
    }

    /// Queues an event if the buffer has room.
    pub fn try_send(&self, event: CallEvent) -> Result<(), SendError> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                self.stats.buffered.fetch_add(1, Ordering::Relaxed);
                permit.send(Command::Event(event));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(SendError::Full(Box::new(event))),
            Err(mpsc::error::TrySendError::Closed(())) => Err(SendError::Closed(Box::new(event))),
        }
    }

    /// Resolves once every event sent before the call is durable: in
    /// PostgreSQL, in the spill file, or (refused for good) in the
    /// dead-letter file.
    pub async fn flush(&self) -> Result<(), WriterError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Flush(done))
            .await
            .map_err(|_| WriterError::Closed)?;
        wait.await.map_err(|_| WriterError::Closed)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

/// The running writer; [`shutdown`](Self::shutdown) flushes and stops it.
/// Dropping it leaves the writer running until every sink is dropped.
#[derive(Debug)]
pub struct WriterTask {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), WriterError>>,
    stats: Arc<WriterStats>,
}

impl WriterTask {
    /// Stops accepting events, makes everything sent durable, tries once
    /// more to deliver the spill file, and stops.
    pub async fn shutdown(self) -> Result<(), WriterError> {
        let _ = self.stop.send(());
        self.handle.await?
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

/// Starts the event writer on the current Tokio runtime.
pub struct EventWriter;

impl EventWriter {
    /// Spawns the writer task. It first delivers an existing spill file;
    /// events sent meanwhile wait in the buffer.
    pub fn start(pool: PgPool, cfg: WriterConfig) -> (EventSink, WriterTask) {
        let (tx, rx) = mpsc::channel(cfg.buffer.max(1));
        let (stop, stopped) = oneshot::channel();
        let stats = Arc::new(WriterStats::default());
        let task_stats = Arc::clone(&stats);
        let handle = tokio::spawn(async move {
            let spill =
                Spill::open(&cfg.spill_path)
                    .await
                    .map_err(|source| WriterError::Spill {
                        path: cfg.spill_path.clone(),
                        source,
                    })?;
            task_stats
                .spill_pending
                .store(spill.pending(), Ordering::Relaxed);
            let writer = Writer {
                rejected_path: spill::rejected_path(&cfg.spill_path),
                max_batch: cfg.max_batch.max(1),
                pool,
                cfg,
                stats: task_stats,
                open: HashMap::new(),
                plans: PlanCache::default(),
                quarantined: HashSet::new(),
                spill,
                retry_at: None,
            };
            writer.run(rx, stopped).await;
            Ok(())
        });
        let sink = EventSink {
            tx,
            stats: Arc::clone(&stats),
        };
        (
            sink,
            WriterTask {
                stop,
                handle,
                stats,
            },
        )
    }
}

/// Why one database write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl WriteError {
    fn retryable(&self) -> bool {
        match self {
            WriteError::Db(e) => is_retryable(e),
            WriteError::Timeout(_) => true,
        }
    }
}

/// What the writer woke up for.
enum Wake {
    /// Commands arrived.
    Work,
    /// Time to try the spill file again.
    Retry,
    /// Shutdown was asked for, or every sink is gone.
    Stop,
}

struct Writer {
    pool: PgPool,
    cfg: WriterConfig,
    max_batch: usize,
    stats: Arc<WriterStats>,
    /// `calls` rows of calls in flight, as last committed.
    open: HashMap<Uuid, CallRow>,
    /// Workflow plans of the config versions seen.
    plans: PlanCache,
    /// Calls with an event PostgreSQL refused for good: their later events
    /// go to the dead-letter file too (this process's memory: a restart
    /// forgets them).
    quarantined: HashSet<Uuid>,
    spill: Spill,
    rejected_path: PathBuf,
    /// When to try the spill file again; `None` while it is empty.
    retry_at: Option<Instant>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut stop: oneshot::Receiver<()>) {
        if self.spill.pending() > 0 {
            tracing::info!(
                events = self.spill.pending(),
                "delivering the spill file left by a previous run"
            );
            self.drain_spill().await;
        }
        let mut commands = Vec::with_capacity(self.max_batch);
        let mut stop_armed = true;
        loop {
            commands.clear();
            match self
                .collect(&mut rx, &mut stop, &mut stop_armed, &mut commands)
                .await
            {
                Wake::Work => self.execute(&mut commands).await,
                Wake::Retry => self.drain_spill().await,
                Wake::Stop => break,
            }
        }
        // Whatever was sent before the channel closed is still written.
        rx.close();
        loop {
            commands.clear();
            if rx.recv_many(&mut commands, self.max_batch).await == 0 {
                break;
            }
            self.execute(&mut commands).await;
        }
        if self.spill.pending() > 0 {
            self.drain_spill().await;
        }
        if self.spill.pending() > 0 {
            tracing::warn!(
                events = self.spill.pending(),
                path = %self.cfg.spill_path.display(),
                "stopping with events in the spill file; the next start delivers them"
            );
        }
    }

    /// Waits for the first command (or a retry, or a stop), then gathers
    /// more until the batch is full, `max_delay` has passed, or a flush is
    /// waiting.
    async fn collect(
        &self,
        rx: &mut mpsc::Receiver<Command>,
        stop: &mut oneshot::Receiver<()>,
        stop_armed: &mut bool,
        commands: &mut Vec<Command>,
    ) -> Wake {
        let retry_at = self.retry_at;
        tokio::select! {
            n = rx.recv_many(commands, self.max_batch) => {
                if n == 0 {
                    return Wake::Stop;
                }
            }
            result = &mut *stop, if *stop_armed => {
                // A dropped WriterTask is not a shutdown: the sinks still
                // write.
                *stop_armed = false;
                return if result.is_ok() { Wake::Stop } else { Wake::Work };
            }
            () = sleep_until_some(retry_at), if retry_at.is_some() => return Wake::Retry,
        }
        let is_flush = |c: &Command| matches!(c, Command::Flush(_));
        let mut flush = commands.iter().any(is_flush);
        let deadline = Instant::now() + self.cfg.max_delay;
        while commands.len() < self.max_batch && !flush {
            let before = commands.len();
            tokio::select! {
                n = rx.recv_many(commands, self.max_batch - before) => {
                    if n == 0 {
                        break;
                    }
                    flush = commands[before..].iter().any(is_flush);
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        Wake::Work
    }

    /// Makes the commands' events durable, then answers their flushes.
    async fn execute(&mut self, commands: &mut Vec<Command>) {
        let mut events = Vec::with_capacity(commands.len());
        let mut flushes = Vec::new();
        for c in commands.drain(..) {
            match c {
                Command::Event(e) => events.push(e),
                Command::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            let n = events.len();
            self.persist(events).await;
            WriterStats::sub(&self.stats.buffered, n);
        }
        if self.retry_at.is_some_and(|at| at <= Instant::now()) {
            self.drain_spill().await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    /// Writes a batch to PostgreSQL, or to the spill file while it is in
    /// use or PostgreSQL fails.
    async fn persist(&mut self, mut events: Vec<CallEvent>) {
        let rows: Vec<EventRow> = events.iter_mut().map(|e| self.storable_row(e)).collect();
        let from = if self.spill.pending() > 0 {
            // Earlier events wait in the spill file: keep the order.
            0
        } else {
            match self.deliver(&events, &rows, Insert::New).await {
                Ok(()) => return,
                Err(first_undelivered) => first_undelivered,
            }
        };
        self.spill_or_hold(&events[from..], &rows[from..]).await;
    }

    /// The row that stores `event`. When text in it had to be replaced,
    /// `event` becomes what the row stores, so the `calls` fold and the
    /// outbox see what PostgreSQL holds.
    fn storable_row(&self, event: &mut CallEvent) -> EventRow {
        let (row, replaced) = EventRow::storable_from(event);
        if replaced {
            self.stats.text_replaced.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(call_id = %row.call_id, seq = row.seq, event_type = %row.event_type, "event text PostgreSQL cannot store replaced with U+FFFD");
            match row.clone().into_event() {
                Ok(stored) => *event = stored,
                // Replacing characters inside strings keeps every field's
                // type, so this does not happen; the event is still written.
                Err(e) => {
                    tracing::error!(error = %e, call_id = %row.call_id, seq = row.seq, "the storable event does not read back")
                }
            }
        }
        row
    }

    /// Appends to the spill file. If even that fails, holds the batch
    /// (and, through the full buffer, the senders) and keeps trying both
    /// the database and the file: nothing is acknowledged before it is
    /// durable.
    async fn spill_or_hold(&mut self, events: &[CallEvent], rows: &[EventRow]) {
        let mut from = 0;
        loop {
            match self.spill.append(&rows[from..]).await {
                Ok(()) => {
                    let n = rows.len() - from;
                    WriterStats::add(&self.stats.spilled, n);
                    WriterStats::add(&self.stats.spill_pending, n);
                    if self.retry_at.is_none() {
                        self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                    }
                    return;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = %e,
                        path = %self.cfg.spill_path.display(),
                        events = rows.len() - from,
                        "cannot append to the spill file; holding the batch"
                    );
                    tokio::time::sleep(self.cfg.retry_interval).await;
                    if self.spill.pending() > 0 {
                        self.drain_spill().await;
                    }
                    if self.spill.pending() == 0 {
                        match self
                            .deliver(&events[from..], &rows[from..], Insert::New)
                            .await
                        {
                            Ok(()) => return,
                            Err(i) => from += i,
                        }
                    }
                }
            }
        }
    }

    /// Delivers the spill file in order, batch by batch, and empties it.
    /// Stops at the first retryable failure and schedules the next try.
    async fn drain_spill(&mut self) {
        // A pool keeps retrying an unreachable server until its acquire
        // timeout; probe briefly instead of holding up the senders.
        let probe = self.cfg.retry_interval.min(self.cfg.write_timeout);
        if !matches!(
            tokio::time::timeout(probe, self.pool.acquire()).await,
            Ok(Ok(_))
        ) {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
            return;
        }
        loop {
            let lines = match self.spill.read(self.max_batch).await {
                Ok(lines) => lines,
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, path = %self.cfg.spill_path.display(), "cannot read the spill file");
                    self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                    return;
                }
            };
            let Some(chunk_end) = lines.last().map(|l| l.end) else {
                match self.spill.clear().await {
                    Ok(()) => {
                        self.retry_at = None;
                        self.stats.spill_pending.store(0, Ordering::Relaxed);
                        tracing::info!("spill file delivered");
                    }
                    Err(e) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "cannot truncate the delivered spill file");
                        self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                    }
                }
                return;
            };
            let total = lines.len();
            let mut events = Vec::with_capacity(total);
            let mut rows = Vec::with_capacity(total);
            // For each deliverable event: where its line starts and its
            // index among the lines read.
            let mut origin = Vec::with_capacity(total);
            let mut unreadable = Vec::new();
            for (index, line) in lines.into_iter().enumerate() {
                match line.parsed {
                    Ok((event, row)) => {
                        events.push(event);
                        rows.push(row);
                        origin.push((line.start, index));
                    }
                    Err(bad) => unreadable.push((index, bad)),
                }
            }
            let (advance_to, done, result) =
                match self.deliver(&events, &rows, Insert::Redelivery).await {
                    Ok(()) => (chunk_end, total, Ok(())),
                    Err(i) => {
                        let (start, index) = origin[i];
                        (start, index, Err(()))
                    }
                };
            // Unreadable lines are dead-lettered once, when passed.
            for (index, bad) in unreadable {
                if index < done {
                    self.reject(serde_json::json!({"error": bad.error, "line": bad.line, "lineBytes": bad.bytes}))
                        .await;
                }
            }
            self.spill.advance(advance_to, done as u64);
            WriterStats::sub(&self.stats.spill_pending, done);
            if result.is_err() {
                self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                return;
            }
        }
    }

    /// Writes events to PostgreSQL. On a retryable failure returns the
    /// index of the first event not written (every event before it is
    /// written or dead-lettered); a batch refused for good is isolated (see
    /// [`isolate`](Self::isolate)).
    async fn deliver(
        &mut self,
        events: &[CallEvent],
        rows: &[EventRow],
        mode: Insert,
    ) -> Result<(), usize> {
        if events.is_empty() {
            return Ok(());
        }
        if events.iter().any(|e| self.quarantined.contains(&e.call_id)) {
            return self.isolate(events, rows, mode, None).await;
        }
        let batch: Vec<(&CallEvent, &EventRow)> = events.iter().zip(rows).collect();
        let err = match self.write(&batch, mode).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        if err.retryable() {
            tracing::warn!(error = %err, events = events.len(), "PostgreSQL unavailable; spilling");
            return Err(0);
        }
        tracing::warn!(error = %err, events = events.len(), "batch refused; isolating the events PostgreSQL refuses");
        self.isolate(events, rows, mode, Some(err)).await
    }

    /// Writes `events` around the ones PostgreSQL refuses for good: a range
    /// that fails is halved until the refused event is alone, so one poison
    /// event costs a batch of n about 2·log2(n) statements (some 25 for
    /// 5,000) instead of n, and everyone else's events still go in large
    /// statements. A refused event goes to the dead-letter file, and so
    /// does the rest of its call. `failed` is how the whole batch failed,
    /// if it was tried. Ranges are written in order, so each call's events
    /// stay in seq order.
    async fn isolate(
        &mut self,
        events: &[CallEvent],
        rows: &[EventRow],
        mode: Insert,
        failed: Option<WriteError>,
    ) -> Result<(), usize> {
        // Ranges still to write, the next one last, with how each failed
        // whole if that is known.
        let mut todo = vec![(0..events.len(), failed)];
        while let Some((range, failed)) = todo.pop() {
            let (kept, held): (Vec<usize>, Vec<usize>) = range
                .clone()
                .partition(|&i| !self.quarantined.contains(&events[i].call_id));
            if kept.is_empty() {
                self.hold_back(events, rows, &held).await;
                continue;
            }
            let failure = match failed {
                Some(e) => e,
                None => {
                    let batch: Vec<(&CallEvent, &EventRow)> =
                        kept.iter().map(|&i| (&events[i], &rows[i])).collect();
                    match self.write(&batch, mode).await {
                        Ok(()) => {
                            self.hold_back(events, rows, &held).await;
                            continue;
                        }
                        Err(e) => {
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                            if e.retryable() {
                                tracing::warn!(error = %e, events = events.len() - range.start, "PostgreSQL unavailable; spilling");
                                return Err(range.start);
                            }
                            e
                        }
                    }
                }
            };
            if let [only] = kept[..] {
                self.refuse(&events[only], &rows[only], &failure).await;
                self.hold_back(events, rows, &held).await;
                continue;
            }
            let mid = range.start + range.len() / 2;
            todo.push((mid..range.end, None));
            todo.push((range.start..mid, None));
        }
        Ok(())
    }

    /// Dead-letters an event PostgreSQL refused for good, and quarantines
    /// its call: writing its later events would leave a hole where this
    /// one belongs. (An event without a place in the sequence, seq < 0,
    /// or the call's last event, leaves no hole.)
    async fn refuse(&mut self, event: &CallEvent, row: &EventRow, err: &WriteError) {
        tracing::error!(error = %err, call_id = %row.call_id, seq = row.seq, "event refused; kept as a dead letter");
        let closes = matches!(
            event.body,
            EventBody::Runtime(RuntimeEvent::CallClosed { .. })
        );
        if row.seq >= 0 && !closes {
            self.quarantined.insert(event.call_id);
            // Its row gets no more updates from this writer.
            self.open.remove(&event.call_id);
        }
        self.reject(serde_json::json!({
            "error": err.to_string(),
            "row": row,
        }))
        .await;
    }

    /// Dead-letters events of quarantined calls, in order; a call's
    /// `callClosed` ends its quarantine.
    async fn hold_back(&mut self, events: &[CallEvent], rows: &[EventRow], held: &[usize]) {
        for &i in held {
            let event = &events[i];
            self.reject(serde_json::json!({
                "error": "an earlier event of the call was refused; kept to leave no hole in its seq",
                "row": rows[i],
            }))
            .await;
            if matches!(
                event.body,
                EventBody::Runtime(RuntimeEvent::CallClosed { .. })
            ) {
                self.quarantined.remove(&event.call_id);
            }
        }
    }

    /// Appends a dead letter.
    async fn reject(&self, entry: serde_json::Value) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = spill::reject(&self.rejected_path, &entry).await {
            // The last resort: the log keeps the event.
            tracing::error!(error = %e, path = %self.rejected_path.display(), dead_letter = %entry, "cannot write the dead-letter file");
        }
    }

    /// One transaction: insert the events, fold the inserted ones into
    /// their calls' rows, update those rows.
    async fn write(
        &mut self,
        batch: &[(&CallEvent, &EventRow)],
        mode: Insert,
    ) -> Result<(), WriteError> {
        let timeout = self.cfg.write_timeout;
        let (pool, open, plans) = (&self.pool, &mut self.open, &mut self.plans);
        let attempt = async {
            match write_batch(pool, open, plans, batch, mode).await {
                // Someone already has one of these events: the batch is a
                // (partial) re-delivery after all.
                Err(WriteError::Db(e)) if mode == Insert::New && is_duplicate(&e) => {
                    write_batch(pool, open, plans, batch, Insert::Redelivery).await
                }
                other => other,
            }
        };
        let (inserted, jobs) = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| WriteError::Timeout(timeout))??;
        self.stats.jobs.fetch_add(jobs, Ordering::Relaxed);
        WriterStats::add(&self.stats.written, inserted);
        WriterStats::add(&self.stats.duplicates, batch.len() - inserted);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The rows of the calls whose stored events these are (in call and seq
/// order). A call with an event this build cannot read is not projected
/// (and logged): its events are still written, and a rebuild reports it.
fn fold_stored(stored: Vec<EventRow>) -> Vec<CallRow> {
    let mut rows = Vec::new();
    // The call being folded, and its row so far (`Err` once unreadable).
    let mut current: Option<(Uuid, Result<Option<CallRow>, ()>)> = None;
    for row in stored {
        let (call_id, seq) = (row.call_id, row.seq);
        let state = match current.take() {
            Some((id, state)) if id == call_id => state,
            finished => {
                rows.extend(finished.and_then(|(_, state)| state.ok().flatten()));
                Ok(None)
            }
        };
        let state = state.and_then(|so_far| match parse_row(row) {
            Ok(event) => Ok(projection::apply(so_far, &event)),
            Err(e) => {
                tracing::error!(error = %e, %call_id, seq, "cannot project the call");
                Err(())
            }
        });
        current = Some((call_id, state));
    }
    rows.extend(current.and_then(|(_, state)| state.ok().flatten()));
    rows
}

/// How a batch's events are inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Insert {
    /// Events sent for the first time: a plain insert, which costs a third
    /// less than `ON CONFLICT DO NOTHING` (no speculative insertion). A
    /// duplicate fails it with a unique violation, and the batch is written
    /// again as a re-delivery.
    New,
    /// Events that may be stored already (the spill file, a retry):
    /// `ON CONFLICT (call_id, seq) DO NOTHING RETURNING` tells which were
    /// new.
    Redelivery,
}

/// A unique violation while writing a batch: the only unique key its
/// statements can violate is `call_events`' primary key (the projection's
/// statements resolve their own conflicts).
fn is_duplicate(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// A call's row while a batch is folded into it.
enum Fold {
    /// The writer held the row: update it in place.
    Held(Option<CallRow>),
    /// The batch opens the call: insert the row.
    Opened(Option<CallRow>),
    /// The writer has not seen the call since it started: fold all of its
    /// events from the database.
    Unknown,
}

/// The batch's transaction; returns how many events were new and how many
/// workflow jobs they triggered. Rows of calls it touches are taken out of
/// `open` and put back only after the commit, so a failed write leaves
/// those calls to be folded again from the database.
async fn write_batch(
    pool: &PgPool,
    open: &mut HashMap<Uuid, CallRow>,
    plans: &mut PlanCache,
    batch: &[(&CallEvent, &EventRow)],
    mode: Insert,
) -> Result<(usize, u64), WriteError> {
    let n = batch.len();
    let mut call_id = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut schema_version = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    for (_, r) in batch {
        call_id.push(r.call_id);
        seq.push(r.seq);
        tenant.push(r.tenant.as_str());
        event_type.push(r.event_type.as_str());
        schema_version.push(r.schema_version);
        occurred_at.push(r.occurred_at);
        payload.push(r.payload.to_string());
    }

    let mut tx = pool.begin().await?;
    let query = match mode {
        Insert::New => sqlx::query(
            "INSERT INTO call_events \
                 (call_id, seq, tenant, event_type, schema_version, occurred_at, payload) \
             SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, \
                 payload::jsonb \
             FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::int2[], \
                 $6::timestamptz[], $7::text[]) \
                 AS t(call_id, seq, tenant, event_type, schema_version, occurred_at, payload)",
        ),
        Insert::Redelivery => sqlx::query(
            "INSERT INTO call_events \
                 (call_id, seq, tenant, event_type, schema_version, occurred_at, payload) \
             SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, \
                 payload::jsonb \
             FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::int2[], \
                 $6::timestamptz[], $7::text[]) \
                 AS t(call_id, seq, tenant, event_type, schema_version, occurred_at, payload) \
             ON CONFLICT (call_id, seq) DO NOTHING \
             RETURNING call_id, seq",
        ),
    }
    .bind(call_id)
    .bind(seq)
    .bind(tenant)
    .bind(event_type)
    .bind(schema_version)
    .bind(occurred_at)
    .bind(payload);
    // `None`: every event was new.
    let inserted: Option<HashSet<(Uuid, i32)>> = match mode {
        Insert::New => {
            query.execute(&mut *tx).await?;
            None
        }
        Insert::Redelivery => {
            let keys = query.fetch_all(&mut *tx).await?;
            Some(
                keys.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?,
            )
        }
    };
    let count = inserted.as_ref().map_or(n, HashSet::len);

    // Fold the new events, in batch (= seq) order, into their calls' rows.
    let mut folds: HashMap<Uuid, Fold> = HashMap::new();
    let mut inserted = inserted;
    let mut triggered = Vec::new();
    for &(e, row) in batch {
        if let Some(keys) = inserted.as_mut()
            && !keys.remove(&(e.call_id, e.seq))
        {
            continue;
        }
        if let Some(trigger) = outbox::trigger_of(&e.body) {
            triggered.push(Triggered {
                event: e,
                payload: &row.payload,
                trigger,
            });
        }
        let fold = folds
            .entry(e.call_id)
            .or_insert_with(|| match open.remove(&e.call_id) {
                Some(row) => Fold::Held(Some(row)),
                None if matches!(e.body, EventBody::Runtime(RuntimeEvent::CallOpened { .. })) => {
                    Fold::Opened(None)
                }
                None => Fold::Unknown,
            });
        match fold {
            Fold::Held(row) | Fold::Opened(row) => *row = projection::apply(row.take(), e),
            Fold::Unknown => {}
        }
    }
    let mut held: Vec<CallRow> = Vec::with_capacity(folds.len());
    let mut opened: Vec<CallRow> = Vec::new();
    let mut unknown: Vec<Uuid> = Vec::new();
    for (id, fold) in folds {
        match fold {
            Fold::Held(row) => held.extend(row),
            Fold::Opened(row) => opened.extend(row),
            Fold::Unknown => unknown.push(id),
        }
    }
    if !unknown.is_empty() {
        let stored: Vec<EventRow> = sqlx::query_as(
            "SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, payload \
             FROM call_events WHERE call_id = ANY($1) ORDER BY call_id, seq",
        )
        .bind(&unknown)
        .fetch_all(&mut *tx)
        .await?;
        opened.extend(fold_stored(stored));
    }
    let not_updated = projection::update_calls(&mut tx, &held).await?;
    // A held row that was not updated is newer already, or missing (a
    // concurrent rebuild replaced it): the upsert sorts out which.
    let missed = held.iter().filter(|r| not_updated.contains(&r.call_id));
    projection::upsert_calls(&mut tx, opened.iter().chain(missed)).await?;
    let jobs = if triggered.is_empty() {
        0
    } else {
        enqueue(&mut tx, plans, &triggered, held.iter().chain(&opened)).await?
    };
    tx.commit().await?;
    for row in held.into_iter().chain(opened) {
        // A closed call gets no more events.
        if row.ended_at.is_none() {
            open.insert(row.call_id, row);
        }
    }
    Ok((count, jobs))
}

/// The outbox step of a batch: the jobs its trigger events ask for, in the
/// batch's transaction.
async fn enqueue<'r>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    plans: &mut PlanCache,
    triggered: &[Triggered<'_>],
    calls: impl Iterator<Item = &'r CallRow>,
) -> Result<u64, sqlx::Error> {
    let calls: HashMap<Uuid, &CallRow> = calls.map(|r| (r.call_id, r)).collect();
    let mut hashes: Vec<&str> = triggered
        .iter()
        .filter_map(|t| calls.get(&t.event.call_id))
        .map(|r| r.config_version.as_str())
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    outbox::load_plans(tx, plans, hashes.iter().map(|h| (*h).to_owned()).collect()).await?;
    if !outbox::any_workflows(plans, &hashes) {
        return Ok(0);
    }
    let jobs = outbox::plan_jobs(triggered, &calls, plans);
    outbox::insert_jobs(tx, &jobs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, Direction};
    use chrono::{TimeZone, Utc};

    fn opened(call_id: Uuid) -> EventRow {
        EventRow::from_event(&CallEvent {
            call_id,
            seq: 0,
            tenant: "t".into(),
            occurred_at: Utc
                .with_ymd_and_hms(2025, 3, 3, 0, 0, 0)
                .single()
                .expect("a time"),
            body: EventBody::Runtime(RuntimeEvent::CallOpened {
                namespace: "ns".into(),
                agent: "a".into(),
                config_version: "sha256:x".into(),
                core_version: "0.1.0".into(),
                direction: Direction::Inbound,
                caller: None,
                callee: None,
                channel: Channel::Text,
                external_id: None,
                started_at: Utc
                    .with_ymd_and_hms(2025, 3, 3, 0, 0, 0)
                    .single()
                    .expect("a time"),
            }),
        })
    }

    #[test]
    fn a_call_with_an_unreadable_stored_event_is_left_unprojected() {
        let mut ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        ids.sort();
        let mut unreadable = opened(ids[1]);
        unreadable.seq = 1;
        unreadable.event_type = "fromTheFuture".into();
        let stored = vec![opened(ids[0]), opened(ids[1]), unreadable, opened(ids[2])];
        let rows = fold_stored(stored);
        let projected: Vec<Uuid> = rows.iter().map(|r| r.call_id).collect();
        assert_eq!(projected, [ids[0], ids[2]]);
    }
}
