//! Vendor adapters behind traits, shared by the voice pods, the operator and
//! the CLI.
//!
//! - [`audio`]: G.711 µ-law, resampling, WAV reading and a deterministic tone.
//! - [`twilio`]: webhook signatures and the REST call that binds a number.
//! - [`stt`], [`tts`], [`llm`]: the provider traits with a vendor adapter and
//!   an offline `Builtin` adapter each.
//! - [`cost`]: pure pricing arithmetic in micro-USD.
//! - [`credentials`]: secret values read from a mounted Secret volume.
//! - [`build`]: picks the adapter for a compiled provider config.
//!
//! Secret values never appear in `Debug` output, errors or logs.

pub mod audio;
pub mod build;
pub mod cost;
pub mod credentials;
mod error;
mod http;
pub mod llm;
pub mod stt;
pub mod tts;
pub mod twilio;

pub use credentials::{Credentials, CredentialsError};
pub use error::ProviderError;
