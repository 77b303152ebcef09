//! The objective engine of the Voice Core.
//!
//! * [`validate_objective`]: every problem of an Objective at once, with
//!   field paths (cycles named as `a → b → a`).
//! * [`compile`]: an Agent with its Objectives, Providers and Tenant profile
//!   → one canonical JSON [`ConfigVersion`] named by its SHA-256.
//! * [`Engine`]: the pure call state machine, `(state, input) → (state,
//!   outputs)`, deterministic so every call can be replayed.
//! * [`run_test_call`]: an Objective's scripted test call against a config
//!   version; the operator's smoke test.
//!
//! No Kubernetes client, database or clock here: the operator, the voice
//! pods and the CLI all run this same code.

pub mod config;
pub mod dialing;
pub mod hours;
pub mod machine;
pub mod phrasebook;
pub mod template;
pub mod testcall;
pub mod validate;
pub mod vocabulary;
pub mod workflow;

pub use config::{
    CompileError, CompileErrorKind, CompileErrors, CompileInput, CompiledConfig, CompiledObjective,
    ConfigVersion, LoadError, compile, load_version,
};
pub use machine::{CallState, Engine, EngineError, Event, Input, Output, Phase};
pub use testcall::{TestOutcome, TurnRecord, run_test_call};
pub use validate::{ErrorKind, ValidObjective, ValidationError, validate_objective};
