//! The v2 wire format's framing: the file header, varints and batches.
//!
//! A trace is a 16-byte header ("go 1.N trace\0\0\0") followed by batches. Every batch
//! starts with EventBatch (or ExperimentalBatch) and its generation, thread, timestamp
//! and byte length; Go 1.26+ ends each generation with a lone EndOfGeneration byte.
//! Nothing here allocates more than one batch (at most 64 KiB) at a time.

use std::io::{BufRead, BufReader, ErrorKind as IoKind, Read};

use crate::error::{ErrorKind, Result, TraceError};
use crate::spec::{V1_VERSIONS, V2_VERSIONS, Version, ev};

/// Length of every trace header.
pub const HEADER_LEN: usize = 16;
/// Largest batch the runtime writes; longer lengths are damage.
pub const MAX_BATCH_SIZE: u64 = 64 << 10;

/// Parse the header of a v2 trace; returns the version N of "go 1.N trace".
pub fn parse_header(h: &[u8]) -> Result<Version> {
    let v = header_version(h)?;
    if V1_VERSIONS.contains(&v) {
        return Err(TraceError::new(
            ErrorKind::Unsupported,
            0,
            format!("Go 1.{v} trace: a pre-1.22 (v1) trace, read by the v1 reader, not this one"),
        ));
    }
    Ok(v)
}

/// Parse the header of a trace of any supported format (v1 or v2); returns the N of
/// "go 1.N trace".
pub fn header_version(h: &[u8]) -> Result<Version> {
    let bad = || {
        TraceError::new(
            ErrorKind::NotATrace,
            0,
            "bad file format: not a Go execution trace (expected header \"go 1.N trace\")",
        )
    };
    if h.len() < HEADER_LEN {
        if b"go 1.".starts_with(&h[..h.len().min(5)]) && !h.is_empty() {
            return Err(TraceError::new(
                ErrorKind::Truncated,
                h.len() as u64,
                "file ends inside the trace header",
            ));
        }
        return Err(bad());
    }
    let h = &h[..HEADER_LEN];
    if !h.starts_with(b"go 1.") || !h.ends_with(b"\0") {
        return Err(bad());
    }
    let rest = &h[5..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || !rest[digits..].starts_with(b" trace\0") {
        return Err(bad());
    }
    if rest[digits + 7..].iter().any(|&b| b != 0) {
        return Err(bad());
    }
    let v: Version = std::str::from_utf8(&rest[..digits])
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    if V2_VERSIONS.contains(&v) || V1_VERSIONS.contains(&v) {
        return Ok(v);
    }
    Err(TraceError::new(
        ErrorKind::Unsupported,
        0,
        format!("unknown or unsupported trace version go 1.{v}"),
    ))
}

/// Decode an unsigned LEB128 varint from `b`; returns (value, bytes used) or None if
/// `b` ends first or the varint is longer than 10 bytes / overflows 64 bits.
#[inline]
pub fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    // Most arguments (time deltas, small IDs) fit in one byte.
    if let Some(&b0) = b.first().filter(|&&b0| b0 < 0x80) {
        return Some((b0 as u64, 1));
    }
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate() {
        if i == 10 {
            return None;
        }
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return None;
            }
            return Some((x | (byte as u64) << shift, i + 1));
        }
        x |= ((byte & 0x7f) as u64) << shift;
        shift += 7;
    }
    None
}

/// One batch as read from the file.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The thread (M) that wrote it; u64::MAX for the runtime's own tables.
    pub m: u64,
    /// Timestamp (in trace ticks) the batch's deltas start from.
    pub time: u64,
    /// Experiment ID for ExperimentalBatch, 0 otherwise.
    pub exp: u8,
    /// Generation the batch belongs to.
    pub genno: u64,
    /// The batch's bytes (after its header).
    pub data: Vec<u8>,
    /// File offset of the first byte of `data`.
    pub data_offset: u64,
    /// File offset of the batch header.
    pub offset: u64,
}

/// What the next thing in the file is.
pub enum Item {
    Batch(Batch),
    /// Go 1.26+: the generation ends here.
    EndOfGeneration,
    /// Clean end of file.
    Eof,
}

/// Reads batches from a byte stream, counting the offset.
pub struct BatchReader<R: Read> {
    src: BufReader<R>,
    offset: u64,
    version: Version,
}

impl<R: Read> BatchReader<R> {
    /// Read and check the header; the reader is then positioned at the first batch.
    pub fn new(src: R) -> Result<Self> {
        let mut src = BufReader::with_capacity(256 << 10, src);
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut src, &mut h, 0)?;
        let version = parse_header(&h[..n])?;
        Ok(BatchReader {
            src,
            offset: HEADER_LEN as u64,
            version,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Byte offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn byte(&mut self) -> Result<Option<u8>> {
        let buf = self.src.fill_buf().map_err(|e| io_error(e, self.offset))?;
        if buf.is_empty() {
            return Ok(None);
        }
        let b = buf[0];
        self.src.consume(1);
        self.offset += 1;
        Ok(Some(b))
    }

    fn varint(&mut self, what: &str) -> Result<u64> {
        let start = self.offset;
        let mut x: u64 = 0;
        for i in 0..10u32 {
            let b = match self.byte()? {
                Some(b) => b,
                None => {
                    return Err(TraceError::new(
                        ErrorKind::Truncated,
                        start,
                        format!("file ends inside the batch header ({what})"),
                    ));
                }
            };
            if i == 9 && b > 1 {
                break;
            }
            x |= ((b & 0x7f) as u64) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(TraceError::new(
            ErrorKind::Malformed,
            start,
            format!("invalid varint for batch {what}"),
        ))
    }

    /// The next batch, end-of-generation marker, or end of file.
    pub fn next_item(&mut self) -> Result<Item> {
        let start = self.offset;
        let typ = match self.byte()? {
            None => return Ok(Item::Eof),
            Some(t) => t,
        };
        if typ == ev::END_OF_GENERATION && self.version >= 26 {
            return Ok(Item::EndOfGeneration);
        }
        let experimental = typ == ev::EXPERIMENTAL_BATCH && self.version >= 23;
        if typ != ev::EVENT_BATCH && !experimental {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                start,
                format!("expected a batch header (EventBatch), got event type {typ}"),
            ));
        }
        let exp = if experimental {
            match self.byte()? {
                Some(e) => e,
                None => {
                    return Err(TraceError::new(
                        ErrorKind::Truncated,
                        self.offset,
                        "file ends inside the batch header (experiment)",
                    ));
                }
            }
        } else {
            0
        };
        let genno = self.varint("generation")?;
        let m = self.varint("thread ID")?;
        let time = self.varint("timestamp")?;
        let size_at = self.offset;
        let size = self.varint("length")?;
        if size > MAX_BATCH_SIZE {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                size_at,
                format!("invalid batch length {size}, maximum is {MAX_BATCH_SIZE}"),
            ));
        }
        let data_offset = self.offset;
        let mut data = vec![0u8; size as usize];
        let n = read_full(&mut self.src, &mut data, data_offset)?;
        self.offset += n as u64;
        if n < data.len() {
            return Err(TraceError::new(
                ErrorKind::Truncated,
                self.offset,
                format!("file ends inside a batch: read {n} of its {size} bytes"),
            ));
        }
        Ok(Item::Batch(Batch {
            m,
            time,
            exp,
            genno,
            data,
            data_offset,
            offset: start,
        }))
    }
}

pub(crate) fn io_error(e: std::io::Error, offset: u64) -> TraceError {
    TraceError::new(ErrorKind::Io, offset, format!("read error: {e}"))
}

/// Read until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(src: &mut R, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) => return Err(io_error(e, offset + n as u64)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_versions() {
        let refused = |header: &[u8]| parse_header(header).unwrap_err().kind;
        assert_eq!(parse_header(b"go 1.22 trace\0\0\0").unwrap(), 22);
        assert_eq!(parse_header(b"go 1.26 trace\0\0\0").unwrap(), 26);
        assert_eq!(refused(b"go 1.24 trace\0\0\0"), ErrorKind::Unsupported);
        assert_eq!(refused(b"go 1.21 trace\0\0\0"), ErrorKind::Unsupported);
        assert_eq!(header_version(b"go 1.21 trace\0\0\0").unwrap(), 21);
        assert_eq!(header_version(b"go 1.11 trace\0\0\0").unwrap(), 11);
        assert_eq!(
            header_version(b"go 1.20 trace\0\0\0").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(refused(b"goroutine 1 [ru"), ErrorKind::NotATrace);
        assert_eq!(refused(b"go 1.2"), ErrorKind::Truncated);
        assert_eq!(refused(b""), ErrorKind::NotATrace);
    }

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x96]), None);
        assert_eq!(
            uvarint(&[0xff; 9].iter().copied().chain([1]).collect::<Vec<_>>()),
            Some((u64::MAX, 10))
        );
        assert_eq!(
            uvarint(&[0xff; 9].iter().copied().chain([2]).collect::<Vec<_>>()),
            None
        );
        assert_eq!(uvarint(&[0xff; 11]), None);
    }

    #[test]
    fn absurd_batch_length_is_an_error_not_an_allocation() {
        let mut t = b"go 1.26 trace\0\0\0".to_vec();
        t.extend([ev::EVENT_BATCH, 1, 0, 0]);
        t.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let mut r = BatchReader::new(&t[..]).unwrap();
        let err = r.next_item().err().unwrap();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert_eq!(err.offset, 20);
    }
}
