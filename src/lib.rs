//! gopark's execution-trace engine.
//!
//! The pure-Rust engine (no Python) lives in the modules below and is tested with
//! `cargo test`; the PyO3 bindings in `python.rs` are compiled only with the
//! `python` feature, which maturin turns on when it builds the wheel.

/// The crate version, reported by `gopark --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "python")]
mod python;
