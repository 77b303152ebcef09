//! The event spine. See the crate description.
