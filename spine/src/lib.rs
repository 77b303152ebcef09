//! The event spine: PostgreSQL as the system of record of every call.
//!
//! * [`event`]: the call events (`call_events` rows) and their JSON payloads.
//! * [`writer`]: the voice pods' batched event writer, with back-pressure,
//!   the live `calls` projection and a local spill file for outages.
//! * [`projection`]: the `calls` projection as a pure fold, and its rebuild
//!   from `call_events` alone.
//! * [`outbox`]: the workflow jobs a batch triggers, inserted with it.
//! * [`db`]: the row form of events and shared database helpers.
//! * [`storable`]: text PostgreSQL can store (no NUL).
//! * [`versions`], [`routes`]: config versions and phone routing.
//! * [`schema`]: the migrations this build knows, and the check at start.
//! * [`campaigns`]: campaign plans, leads and dial attempts.
//! * [`call_tokens`]: the tokens that open text calls, per tenant.

pub mod call_tokens;
pub mod campaigns;
pub mod db;
pub mod event;
pub mod outbox;
pub mod projection;
pub mod schema;
mod spill;
pub mod storable;
pub mod writer;

pub mod routes;
pub mod versions;
