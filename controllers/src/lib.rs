//! Dialtone's reconcilers.
//!
//! Every controller follows the same shape (see `STYLE.md`): dereference what
//! the spec points to (client), validate (pure), build every child object with
//! pure functions, apply them with server-side apply, then write status last —
//! and only when it changed. Only the leader reconciles; standbys keep their
//! caches warm and resync everything when they gain leadership.

pub mod agent;
pub mod campaign;
pub mod events;
pub mod metrics;
pub mod objective;
pub mod provider;
pub mod quantity;
pub mod runtime;
pub mod tenant;

pub use metrics::Metrics;
pub use runtime::{Leadership, Shared};

/// The label every object the operator creates carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "dialtone";
/// The label naming the Tenant an object belongs to.
pub const TENANT_LABEL: &str = "dialtone.io/tenant";
