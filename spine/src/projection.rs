//! The `calls` projection: one row per call, folded from its events alone.
//!
//! [`apply`] is the only place that decides what a row holds; the writer
//! folds live events with it and [`rebuild`] folds `call_events` with it,
//! so a rebuilt table equals the live one by construction.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use dialtone_engine::Event;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::{EventRow, ReadError, parse_row};
use crate::event::{CallEvent, Direction, EventBody, RuntimeEvent};

/// One row of `calls`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRow {
    /// The call.
    pub call_id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// The Agent's namespace.
    pub namespace: String,
    /// The Agent.
    pub agent: String,
    /// The config version the call ran on.
    pub config_version: String,
    /// The Voice Core version that ran it.
    pub core_version: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The caller's number.
    pub caller: Option<String>,
    /// The called number.
    pub callee: Option<String>,
    /// `callOpened.startedAt`.
    pub started_at: DateTime<Utc>,
    /// `callClosed.endedAt`; `None` while the call is in flight.
    pub ended_at: Option<DateTime<Utc>>,
    /// The engine's outcome label (`callEnded`, or the outcome of the last
    /// `objectiveCompleted`/`objectiveFailed`, which is how a transfer's
    /// label is recorded); else the `callClosed` reason.
    pub outcome: Option<String>,
    /// Captured slots, canonical values: the last `slotCaptured` wins and
    /// `slotRejected` removes.
    pub slots: BTreeMap<String, String>,
    /// The sum of `costAccrued`, in millionths of a US dollar (written as
    /// `cost_usd NUMERIC(12, 6)`).
    pub cost_micro_usd: i64,
    /// The seq of the last event folded in.
    pub last_seq: i32,
}

/// Folds one event into a call's row. `callOpened` starts the row; events
/// of a call without one change nothing (there is nothing to project them
/// onto). Events must come in seq order.
pub fn apply(row: Option<CallRow>, event: &CallEvent) -> Option<CallRow> {
    if let EventBody::Runtime(RuntimeEvent::CallOpened {
        namespace,
        agent,
        config_version,
        core_version,
        direction,
        caller,
        callee,
        started_at,
        ..
    }) = &event.body
    {
        return Some(CallRow {
            call_id: event.call_id,
            tenant: event.tenant.clone(),
            namespace: namespace.clone(),
            agent: agent.clone(),
            config_version: config_version.clone(),
            core_version: core_version.clone(),
            direction: *direction,
            caller: caller.clone(),
            callee: callee.clone(),
            started_at: *started_at,
            ended_at: None,
            outcome: None,
            slots: BTreeMap::new(),
            cost_micro_usd: 0,
            last_seq: event.seq,
        });
    }
    let mut row = row?;
    row.last_seq = row.last_seq.max(event.seq);
    match &event.body {
        EventBody::Engine(Event::SlotCaptured { slot, value, .. }) => {
            row.slots.insert(slot.clone(), value.clone());
        }
        EventBody::Engine(Event::SlotRejected { slot, .. }) => {
            row.slots.remove(slot);
        }
        EventBody::Engine(
            Event::ObjectiveCompleted { outcome, .. } | Event::ObjectiveFailed { outcome, .. },
        )
        | EventBody::Runtime(RuntimeEvent::CallEnded { outcome }) => {
            row.outcome = Some(outcome.clone());
        }
        EventBody::Runtime(RuntimeEvent::CostAccrued { micro_usd, .. }) => {
            row.cost_micro_usd = row.cost_micro_usd.saturating_add(*micro_usd);
        }
        EventBody::Runtime(RuntimeEvent::CallClosed {
            reason, ended_at, ..
        }) => {
            row.ended_at = Some(*ended_at);
            if row.outcome.is_none() {
                row.outcome = Some(reason.as_str().to_owned());
            }
        }
        _ => {}
    }
    Some(row)
}

/// Which calls a rebuild or a comparison covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every call.
    All,
    /// The calls of one tenant.
    Tenant(String),
}

impl Scope {
    fn tenant(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// What a rebuild did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildReport {
    /// Rows written to `calls`.
    pub calls: u64,
    /// Events folded.
    pub events: u64,
}

/// Why the projection could not be read or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A query failed.
    #[error("calls projection: {0}")]
    Db(#[from] sqlx::Error),
    /// An event could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A row of `calls` holds something no fold produces.
    #[error("calls row {call_id}: {message}")]
    Row {
        /// The call.
        call_id: Uuid,
        /// What is wrong.
        message: String,
    },
}

/// Events fetched per round trip while rebuilding.
const FETCH: &str = "FETCH 2000 FROM rebuild_events";
/// Rows upserted per statement while rebuilding.
const UPSERT_CHUNK: usize = 1000;

/// Deletes the scope's `calls` rows and writes the fold of the scope's
/// `call_events` instead, in one transaction, streaming the events through
/// a cursor. Safe to run while calls are live: a writer's upsert and the
/// rebuild both keep the row with the higher `last_seq`.
pub async fn rebuild(pool: &PgPool, scope: Scope) -> Result<RebuildReport, ProjectionError> {
    let mut tx = pool.begin().await?;
    match scope.tenant() {
        None => sqlx::query("DELETE FROM calls").execute(&mut *tx).await?,
        Some(t) => {
            sqlx::query("DELETE FROM calls WHERE tenant = $1")
                .bind(t)
                .execute(&mut *tx)
                .await?
        }
    };
    match scope.tenant() {
        None => {
            sqlx::query(
                "DECLARE rebuild_events NO SCROLL CURSOR FOR \
                 SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, payload \
                 FROM call_events ORDER BY call_id, seq",
            )
            .execute(&mut *tx)
            .await?
        }
        Some(t) => {
            sqlx::query(
                "DECLARE rebuild_events NO SCROLL CURSOR FOR \
                 SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, payload \
                 FROM call_events WHERE tenant = $1 ORDER BY call_id, seq",
            )
            .bind(t)
            .execute(&mut *tx)
            .await?
        }
    };

    let mut report = RebuildReport {
        calls: 0,
        events: 0,
    };
    let mut current: Option<(Uuid, Option<CallRow>)> = None;
    let mut done: Vec<CallRow> = Vec::with_capacity(UPSERT_CHUNK);
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(FETCH).fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            report.events += 1;
            let event = parse_row(row)?;
            let state = match current.take() {
                Some((id, state)) if id == event.call_id => state,
                Some((_, finished)) => {
                    done.extend(finished);
                    None
                }
                None => None,
            };
            current = Some((event.call_id, apply(state, &event)));
        }
        if done.len() >= UPSERT_CHUNK {
            report.calls += upsert_calls(&mut tx, &done).await?;
            done.clear();
        }
    }
    done.extend(current.and_then(|(_, row)| row));
    report.calls += upsert_calls(&mut tx, &done).await?;
    sqlx::query("CLOSE rebuild_events")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(report)
}

/// Writes rows to `calls`, one statement for all of them; an existing row
/// is replaced only by one with a higher `last_seq`. Returns the number of
/// rows given. At most one row per call.
pub(crate) async fn upsert_calls<'a>(
    conn: &mut PgConnection,
    rows: impl IntoIterator<Item = &'a CallRow>,
) -> Result<u64, sqlx::Error> {
    let mut c = CallColumns::default();
    for row in rows {
        c.push(row);
    }
    let n = c.call_id.len();
    if n == 0 {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO calls (call_id, tenant, namespace, agent, config_version, core_version, \
             direction, caller, callee, started_at, ended_at, outcome, slots, cost_usd, last_seq) \
         SELECT call_id, tenant, namespace, agent, config_version, core_version, direction, \
             caller, callee, started_at, ended_at, outcome, slots, \
             cost_micro_usd::numeric / 1000000, last_seq \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
             $12::text[], $13::jsonb[], $14::int8[], $15::int4[]) \
             AS t(call_id, tenant, namespace, agent, config_version, core_version, direction, \
             caller, callee, started_at, ended_at, outcome, slots, cost_micro_usd, last_seq) \
         ON CONFLICT (call_id) DO UPDATE SET tenant = EXCLUDED.tenant, \
             namespace = EXCLUDED.namespace, agent = EXCLUDED.agent, \
             config_version = EXCLUDED.config_version, core_version = EXCLUDED.core_version, \
             direction = EXCLUDED.direction, caller = EXCLUDED.caller, callee = EXCLUDED.callee, \
             started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, \
             outcome = EXCLUDED.outcome, slots = EXCLUDED.slots, cost_usd = EXCLUDED.cost_usd, \
             last_seq = EXCLUDED.last_seq \
         WHERE calls.last_seq < EXCLUDED.last_seq",
    )
    .bind(c.call_id)
    .bind(c.tenant)
    .bind(c.namespace)
    .bind(c.agent)
    .bind(c.config_version)
    .bind(c.core_version)
    .bind(c.direction)
    .bind(c.caller)
    .bind(c.callee)
    .bind(c.started_at)
    .bind(c.ended_at)
    .bind(c.outcome)
    .bind(c.slots)
    .bind(c.cost_micro_usd)
    .bind(c.last_seq)
    .execute(conn)
    .await?;
    Ok(n as u64)
}

/// Updates what events change in existing `calls` rows (end, outcome,
/// slots, cost, last seq), one statement for all of them, where the row's
/// `last_seq` is lower. Cheaper than an upsert, which locks each row before
/// updating it. Returns the calls whose row was not updated: missing, or
/// already as new.
pub(crate) async fn update_calls(
    conn: &mut PgConnection,
    rows: &[CallRow],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let n = rows.len();
    let mut call_id = Vec::with_capacity(n);
    let mut ended_at = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut slots = Vec::with_capacity(n);
    let mut cost = Vec::with_capacity(n);
    let mut last_seq = Vec::with_capacity(n);
    for r in rows {
        call_id.push(r.call_id);
        ended_at.push(r.ended_at);
        outcome.push(r.outcome.as_deref());
        slots.push(slots_json(r));
        cost.push(r.cost_micro_usd);
        last_seq.push(r.last_seq);
    }
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE calls SET ended_at = t.ended_at, outcome = t.outcome, slots = t.slots, \
             cost_usd = t.cost_micro_usd::numeric / 1000000, last_seq = t.last_seq \
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::jsonb[], $5::int8[], \
             $6::int4[]) AS t(call_id, ended_at, outcome, slots, cost_micro_usd, last_seq) \
         WHERE calls.call_id = t.call_id AND calls.last_seq < t.last_seq \
         RETURNING calls.call_id",
    )
    .bind(&call_id)
    .bind(ended_at)
    .bind(outcome)
    .bind(slots)
    .bind(cost)
    .bind(last_seq)
    .fetch_all(conn)
    .await?;
    let updated: HashSet<Uuid> = updated.into_iter().collect();
    Ok(call_id
        .into_iter()
        .filter(|id| !updated.contains(id))
        .collect())
}

fn slots_json(row: &CallRow) -> serde_json::Value {
    serde_json::Value::Object(
        row.slots
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// `calls` rows as column arrays, for one `UNNEST`.
#[derive(Default)]
struct CallColumns {
    call_id: Vec<Uuid>,
    tenant: Vec<String>,
    namespace: Vec<String>,
    agent: Vec<String>,
    config_version: Vec<String>,
    core_version: Vec<String>,
    direction: Vec<&'static str>,
    caller: Vec<Option<String>>,
    callee: Vec<Option<String>>,
    started_at: Vec<DateTime<Utc>>,
    ended_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<Option<String>>,
    slots: Vec<serde_json::Value>,
    cost_micro_usd: Vec<i64>,
    last_seq: Vec<i32>,
}

impl CallColumns {
    fn push(&mut self, row: &CallRow) {
        self.call_id.push(row.call_id);
        self.tenant.push(row.tenant.clone());
        self.namespace.push(row.namespace.clone());
        self.agent.push(row.agent.clone());
        self.config_version.push(row.config_version.clone());
        self.core_version.push(row.core_version.clone());
        self.direction.push(row.direction.as_str());
        self.caller.push(row.caller.clone());
        self.callee.push(row.callee.clone());
        self.started_at.push(row.started_at);
        self.ended_at.push(row.ended_at);
        self.outcome.push(row.outcome.clone());
        self.slots.push(slots_json(row));
        self.cost_micro_usd.push(row.cost_micro_usd);
        self.last_seq.push(row.last_seq);
    }
}

/// A `calls` row as selected, before its text columns are checked.
#[derive(sqlx::FromRow)]
struct StoredCall {
    call_id: Uuid,
    tenant: String,
    namespace: String,
    agent: String,
    config_version: String,
    core_version: String,
    direction: String,
    caller: Option<String>,
    callee: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    slots: serde_json::Value,
    cost_micro_usd: i64,
    last_seq: i32,
}

impl TryFrom<StoredCall> for CallRow {
    type Error = ProjectionError;

    fn try_from(s: StoredCall) -> Result<Self, Self::Error> {
        let bad = |message: String| ProjectionError::Row {
            call_id: s.call_id,
            message,
        };
        let direction = Direction::parse(&s.direction)
            .ok_or_else(|| bad(format!("direction {:?}", s.direction)))?;
        let slots: BTreeMap<String, String> = serde_json::from_value(s.slots.clone())
            .map_err(|e| bad(format!("slots are not an object of strings: {e}")))?;
        Ok(CallRow {
            call_id: s.call_id,
            tenant: s.tenant,
            namespace: s.namespace,
            agent: s.agent,
            config_version: s.config_version,
            core_version: s.core_version,
            direction,
            caller: s.caller,
            callee: s.callee,
            started_at: s.started_at,
            ended_at: s.ended_at,
            outcome: s.outcome,
            slots,
            cost_micro_usd: s.cost_micro_usd,
            last_seq: s.last_seq,
        })
    }
}

/// The scope's `calls` rows, ordered by call id (to compare a live table
/// with a rebuilt one).
pub async fn load_calls(pool: &PgPool, scope: Scope) -> Result<Vec<CallRow>, ProjectionError> {
    let rows: Vec<StoredCall> = sqlx::query_as(
        "SELECT call_id, tenant, namespace, agent, config_version, core_version, direction, \
             caller, callee, started_at, ended_at, outcome, slots, \
             (cost_usd * 1000000)::int8 AS cost_micro_usd, last_seq \
         FROM calls WHERE $1::text IS NULL OR tenant = $1 ORDER BY call_id",
    )
    .bind(scope.tenant())
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(CallRow::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, CloseReason, CostComponent, CostUnit};
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 10, 0, s)
            .single()
            .expect("valid time")
    }

    fn events(call_id: Uuid, bodies: Vec<EventBody>) -> Vec<CallEvent> {
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| CallEvent {
                call_id,
                seq: i32::try_from(i).expect("small"),
                tenant: "acme".into(),
                occurred_at: at(u32::try_from(i).expect("small")),
                body,
            })
            .collect()
    }

    fn opened() -> EventBody {
        EventBody::Runtime(RuntimeEvent::CallOpened {
            namespace: "tenant-acme".into(),
            agent: "reception".into(),
            config_version: "sha256:1".into(),
            core_version: "0.1.0".into(),
            direction: Direction::Outbound,
            caller: None,
            callee: Some("+61412345678".into()),
            channel: Channel::Text,
            external_id: None,
            started_at: at(0),
        })
    }

    fn captured(slot: &str, value: &str) -> EventBody {
        EventBody::Engine(Event::SlotCaptured {
            slot: slot.into(),
            value: value.into(),
            confidence: 0.9,
        })
    }

    fn cost(micro_usd: i64) -> EventBody {
        EventBody::Runtime(RuntimeEvent::CostAccrued {
            component: CostComponent::Telephony,
            provider: "twilio".into(),
            quantity: 1.0,
            unit: CostUnit::Minutes,
            micro_usd,
        })
    }

    fn closed(reason: CloseReason) -> EventBody {
        EventBody::Runtime(RuntimeEvent::CallClosed {
            reason,
            ended_at: at(30),
            duration_millis: 30_000,
        })
    }

    fn fold(events: &[CallEvent]) -> Option<CallRow> {
        events.iter().fold(None, apply)
    }

    #[test]
    fn a_call_folds_into_its_row() {
        let id = Uuid::new_v4();
        let row = fold(&events(
            id,
            vec![
                opened(),
                captured("name", "Jane"),
                captured("phone", "+61400000000"),
                cost(13_500),
                EventBody::Engine(Event::SlotRejected {
                    slot: "phone".into(),
                    value: "+61400000000".into(),
                }),
                captured("name", "Jane Citizen"),
                cost(75),
                EventBody::Engine(Event::ObjectiveCompleted {
                    objective: "book".into(),
                    outcome: "booked".into(),
                }),
                EventBody::Runtime(RuntimeEvent::CallEnded {
                    outcome: "booked".into(),
                }),
                closed(CloseReason::Ended),
            ],
        ))
        .expect("a row");
        assert_eq!(row.call_id, id);
        assert_eq!(row.tenant, "acme");
        assert_eq!(row.direction, Direction::Outbound);
        assert_eq!(row.callee.as_deref(), Some("+61412345678"));
        assert_eq!(row.started_at, at(0));
        assert_eq!(row.ended_at, Some(at(30)));
        assert_eq!(row.outcome.as_deref(), Some("booked"));
        assert_eq!(
            row.slots,
            BTreeMap::from([("name".to_owned(), "Jane Citizen".to_owned())])
        );
        assert_eq!(row.cost_micro_usd, 13_575);
        assert_eq!(row.last_seq, 9);
    }

    #[test]
    fn a_transfer_keeps_the_engine_label_and_a_dropped_call_the_close_reason() {
        let transferred = fold(&events(
            Uuid::new_v4(),
            vec![
                opened(),
                EventBody::Engine(Event::ObjectiveCompleted {
                    objective: "triage".into(),
                    outcome: "emergency-transferred".into(),
                }),
                EventBody::Runtime(RuntimeEvent::Transferred {
                    to: "+61290001111".into(),
                    mode: dialtone_crds::objective::TransferMode::Warm,
                    reason: None,
                }),
                closed(CloseReason::Transferred),
            ],
        ))
        .expect("a row");
        assert_eq!(
            transferred.outcome.as_deref(),
            Some("emergency-transferred")
        );
        let drained = fold(&events(
            Uuid::new_v4(),
            vec![opened(), cost(5), closed(CloseReason::Drained)],
        ))
        .expect("a row");
        assert_eq!(drained.outcome.as_deref(), Some("drained"));
        assert_eq!(drained.cost_micro_usd, 5);
    }

    #[test]
    fn an_open_call_has_no_end_and_events_without_an_opening_project_nothing() {
        let open = fold(&events(Uuid::new_v4(), vec![opened(), cost(1)])).expect("a row");
        assert_eq!(open.ended_at, None);
        assert_eq!(open.outcome, None);
        assert_eq!(open.last_seq, 1);
        let mut orphan = events(Uuid::new_v4(), vec![opened(), cost(1)]);
        orphan.remove(0);
        assert_eq!(fold(&orphan), None);
    }
}
