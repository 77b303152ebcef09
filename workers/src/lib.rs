//! The workers: what a call decided reaches the business's systems.
//!
//! * [`adapter`]: the [`Adapter`](adapter::Adapter) trait every vendor
//!   implements, and what it is given and answers.
//! * [`adapters`]: one adapter per vendor, and the builtin one.
//! * [`retry`]: backoff with jitter, `Retry-After`, dead letters (pure).
//! * [`limits`]: daily caps and per-second rates, counted in PostgreSQL
//!   across replicas; the next local midnight.
//! * [`queue`]: claiming due jobs fairly across tenants with leases, and
//!   recording each attempt.
//! * [`results`]: workflow result events appended to closed calls.
//! * [`worker`]: the loop that ties them together.
//! * [`dialer`]: the campaign dialer, the binary's second loop.
//! * [`metrics`]: the Prometheus registry.

pub mod adapter;
pub mod adapters;
pub mod dialer;
pub mod limits;
pub mod metrics;
pub mod queue;
pub mod results;
pub mod retry;
pub mod worker;
