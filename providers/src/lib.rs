//! Vendor adapters. See the crate description.
