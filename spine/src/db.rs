//! PostgreSQL helpers shared by the writer, the projection and the CLI:
//! the row form of an event, reading a call's events, and which database
//! errors are worth retrying.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::event::{CallEvent, EventBody, EventError, SCHEMA_VERSION};
use crate::storable;

/// An event as stored: the columns of `call_events`. Also the line format
/// of the writer's spill file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// `call_id`.
    pub call_id: Uuid,
    /// `seq`.
    pub seq: i32,
    /// `tenant`.
    pub tenant: String,
    /// `event_type`.
    pub event_type: String,
    /// `schema_version`.
    pub schema_version: i16,
    /// `occurred_at`.
    pub occurred_at: DateTime<Utc>,
    /// `payload`.
    pub payload: Value,
}

impl EventRow {
    /// The row that stores `event`, with text PostgreSQL cannot hold
    /// replaced (see [`storable`](crate::storable)).
    pub fn from_event(event: &CallEvent) -> Self {
        Self::storable_from(event).0
    }

    /// [`from_event`](Self::from_event), and whether any text had to be
    /// replaced (the row then no longer reads back as `event`).
    pub fn storable_from(event: &CallEvent) -> (Self, bool) {
        let (event_type, payload) = event.body.to_parts();
        let mut row = Self {
            call_id: event.call_id,
            seq: event.seq,
            tenant: event.tenant.clone(),
            event_type: event_type.to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: event.occurred_at,
            payload,
        };
        let replaced = row.make_storable();
        (row, replaced)
    }

    /// Replaces text PostgreSQL cannot hold in the row's text columns and
    /// payload; returns whether there was any. (`event_type` needs none:
    /// only this build's type names are delivered.)
    pub fn make_storable(&mut self) -> bool {
        storable::make_storable(&mut self.tenant) | storable::make_value_storable(&mut self.payload)
    }

    /// The event the row stores.
    pub fn into_event(self) -> Result<CallEvent, EventError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(EventError::Schema(self.schema_version));
        }
        Ok(CallEvent {
            call_id: self.call_id,
            seq: self.seq,
            tenant: self.tenant,
            occurred_at: self.occurred_at,
            body: EventBody::from_parts(&self.event_type, self.payload)?,
        })
    }
}

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The query failed.
    #[error("reading call events: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored event does not parse.
    #[error("call {call_id} event {seq}: {source}")]
    Event {
        /// The call.
        call_id: Uuid,
        /// The event.
        seq: i32,
        /// Why.
        #[source]
        source: EventError,
    },
}

/// Parses a stored row, naming the event on failure.
pub(crate) fn parse_row(row: EventRow) -> Result<CallEvent, ReadError> {
    let (call_id, seq) = (row.call_id, row.seq);
    row.into_event().map_err(|source| ReadError::Event {
        call_id,
        seq,
        source,
    })
}

/// Every event of one call, in seq order.
pub async fn load_events(pool: &PgPool, call_id: Uuid) -> Result<Vec<CallEvent>, ReadError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, payload \
         FROM call_events WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(parse_row).collect()
}

/// Whether a failed write may succeed later unchanged: the connection or
/// the server failed, not the statement. Everything else (constraint and
/// trigger rejections, bad data) fails the same way every time.
pub fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| retryable_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs of a server that is unreachable, shutting down, overloaded or
/// read-only (a failover in progress), and of transaction conflicts.
fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "57P05" // idle_session_timeout
                | "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "25006" // read_only_sql_transaction
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_retryable_and_rejections_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_retryable(&io));
        assert!(is_retryable(&sqlx::Error::PoolTimedOut));
        assert!(!is_retryable(&sqlx::Error::RowNotFound));
        assert!(retryable_sqlstate("08006"));
        assert!(retryable_sqlstate("57P01"));
        assert!(retryable_sqlstate("53300"));
        // insufficient_privilege: the append-only trigger.
        assert!(!retryable_sqlstate("42501"));
        // check_violation, unique_violation.
        assert!(!retryable_sqlstate("23514"));
        assert!(!retryable_sqlstate("23505"));
    }
}
