//! The engine's one error type: what went wrong and at which byte of the input.

use std::fmt;

/// What kind of problem stopped the reader; lets callers tell damage from misuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a Go execution trace at all (bad header).
    NotATrace,
    /// A Go trace, but a version gopark cannot read.
    Unsupported,
    /// The input ends in the middle of something.
    Truncated,
    /// Bytes that do not follow the format (bad lengths, unknown types, bad varints, ...).
    Malformed,
    /// Well-formed bytes whose events contradict each other (the ordering failed).
    Inconsistent,
    /// Reading the input failed (I/O).
    Io,
}

impl ErrorKind {
    /// A stable lowercase name, used by the Python layer and tests.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotATrace => "not-a-trace",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Inconsistent => "inconsistent",
            ErrorKind::Io => "io",
        }
    }
}

/// An error at a byte offset of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    pub kind: ErrorKind,
    /// Byte offset in the input where the problem was found.
    pub offset: u64,
    pub message: String,
}

impl TraceError {
    pub fn new(kind: ErrorKind, offset: u64, message: impl Into<String>) -> Self {
        TraceError {
            kind,
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for TraceError {}

pub type Result<T> = std::result::Result<T, TraceError>;
