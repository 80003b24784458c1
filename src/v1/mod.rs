//! The Go 1.11–1.21 ("v1") trace format: `parse` reads, orders and checks a whole
//! trace; `convert` turns it into the same events the v2 engine produces.

pub mod convert;
pub mod parse;

#[cfg(test)]
mod tests;

pub use convert::Converter;
pub use parse::{V1Trace, parse};
