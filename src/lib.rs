//! gopark's execution-trace engine.
//!
//! Reads Go execution traces (the v2 format of Go 1.22+, and the v1 format of Go
//! 1.11–1.21, converted by `v1`) into one ordered stream of events and a per-goroutine
//! summary. Layers, each in its own module:
//! `wire` (header, varints, batches) → `generation` (one generation's batches and
//! tables) → `merge` (one consistent order across threads) with `order` (the
//! scheduler's state machine, which also validates) → `summary` (per-goroutine
//! times) with `facts` (step 2's wakes, waits and scheduler latency), driven by `reader`.
//!
//! The pure-Rust engine (no Python) is tested with `cargo test`; the PyO3 bindings in
//! `python.rs` are compiled only with the `python` feature, which maturin turns on.

/// The crate version, reported by `gopark --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod catalog;
pub mod error;
pub mod event;
pub mod facts;
pub mod fasthash;
pub mod generation;
pub mod merge;
pub mod order;
pub mod reader;
pub mod spec;
pub mod summary;
pub mod v1;
pub mod wire;

pub use error::{ErrorKind, TraceError};
pub use reader::TraceReader;

#[cfg(feature = "python")]
mod python;

#[cfg(test)]
mod damage_tests;
