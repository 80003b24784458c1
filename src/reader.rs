//! The engine's front door: read a trace generation by generation into the ordered
//! event model, keeping the per-goroutine summary up to date on the way.
//!
//! Memory stays bounded by the largest generation: a generation's batches are freed
//! once it is ordered, and callers may drop each generation's events after use.
//! A v1 trace (Go 1.11–1.21) has no generations: it is read whole, then handed out as
//! one generation; its memory grows with the file (its events are ordered globally,
//! see `v1::parse`). A damaged v1 trace gives the events known before the damage, then
//! the error.

use std::io::{Chain, Cursor, Read};

use crate::catalog::Catalog;
use crate::error::{Result, TraceError};
use crate::event::Event;
use crate::generation::{ClockSnapshot, GenerationReader};
use crate::merge::Orderer;
use crate::spec::{V1_VERSIONS, Version};
use crate::summary::Summarizer;
use crate::v1::{Converter, V1Trace};
use crate::wire::{HEADER_LEN, header_version, io_error, read_full};

/// Facts about one generation that was read.
#[derive(Debug, Clone, Default)]
pub struct GenerationInfo {
    pub genno: u64,
    pub start_offset: u64,
    pub end_offset: u64,
    /// Trace time (ns) of the generation's Sync event.
    pub start_time: i64,
    /// Nanoseconds per trace tick; 0.0 when the frequency is unknown (a v1 trace cut
    /// before the frequency it keeps at its end): event times are then clock ticks.
    pub ns_per_tick: f64,
    pub clock: Option<ClockSnapshot>,
    pub events: usize,
    pub experimental_bytes: u64,
}

/// A v1 trace, read whole, waiting to be handed out.
struct V1Source {
    trace: V1Trace,
    conv: Converter,
    started: bool,
}

/// Reads a trace one generation at a time.
pub struct TraceReader<R: Read> {
    /// The v2 reader (the header already read is put back in front of the input).
    gens: Option<GenerationReader<Chain<Cursor<Vec<u8>>, R>>>,
    v1: Option<Box<V1Source>>,
    version: Version,
    /// False while `drain` feeds the summary from another thread.
    feed_summary: bool,
    pub catalog: Catalog,
    orderer: Orderer,
    pub summary: Summarizer,
    /// Generations read so far.
    pub generations: Vec<GenerationInfo>,
    /// The error that stopped reading, if any.
    pub error: Option<TraceError>,
    done: bool,
}

impl<R: Read> TraceReader<R> {
    /// Check the header and get ready to read.
    pub fn new(mut src: R) -> Result<Self> {
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut src, &mut h, 0)?;
        let version = header_version(&h[..n])?;
        let mut catalog = Catalog::new();
        let (gens, v1) = if V1_VERSIONS.contains(&version) {
            let mut data = h.to_vec();
            src.read_to_end(&mut data)
                .map_err(|e| io_error(e, data.len() as u64))?;
            let trace = crate::v1::parse(data, version)?;
            let conv = Converter::new(&trace, &mut catalog);
            let v1 = V1Source {
                trace,
                conv,
                started: false,
            };
            (None, Some(Box::new(v1)))
        } else {
            let src = Cursor::new(h[..n].to_vec()).chain(src);
            (Some(GenerationReader::new(src)?), None)
        };
        let orderer = Orderer::new(version, &mut catalog);
        Ok(TraceReader {
            gens,
            v1,
            version,
            feed_summary: true,
            catalog,
            orderer,
            summary: Summarizer::new(),
            generations: Vec::new(),
            error: None,
            done: false,
        })
    }

    /// Whether the whole trace has been read (or reading stopped at damage).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The trace format version (the N of "go 1.N trace").
    pub fn version(&self) -> Version {
        self.version
    }

    /// Bytes of the input read so far.
    pub fn offset(&self) -> u64 {
        match (&self.gens, &self.v1) {
            (Some(g), _) => g.offset(),
            (None, Some(v1)) => v1.trace.size,
            (None, None) => 0,
        }
    }

    /// End offset of the last generation read without error (the readable prefix).
    pub fn good_bytes(&self) -> u64 {
        self.generations
            .last()
            .map(|g| g.end_offset)
            .unwrap_or(crate::wire::HEADER_LEN as u64)
    }

    /// Append the next generation's ordered events to `out` (and feed the summary).
    /// Returns Ok(false) once the trace is done (the closing Sync is appended then).
    /// At damage, the events ordered before it are kept and the error is returned;
    /// after that the reader stays stopped.
    pub fn next_generation(&mut self, out: &mut Vec<Event>) -> Result<bool> {
        self.next_generation_with(&mut |e: &Event| out.push(*e))
    }

    /// Like `next_generation`, but hands each event to `sink` instead of keeping it.
    pub fn next_generation_with(&mut self, sink: &mut impl FnMut(&Event)) -> Result<bool> {
        if self.done {
            return match &self.error {
                Some(e) => Err(e.clone()),
                None => Ok(false),
            };
        }
        match self.read_one(sink) {
            Ok(more) => Ok(more),
            Err(e) => {
                self.done = true;
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn read_one(&mut self, sink: &mut impl FnMut(&Event)) -> Result<bool> {
        let summary = &mut self.summary;
        let feed = self.feed_summary;
        let mut count = 0usize;
        let mut first_time = 0i64;
        let mut out = |e: &Event| {
            if count == 0 {
                first_time = e.time;
            }
            count += 1;
            if feed {
                summary.event(e);
            }
            sink(e);
        };
        if let Some(v1) = self.v1.as_deref_mut() {
            if v1.started {
                // A damaged v1 trace: its events came first, the damage now.
                if let Some(e) = v1.trace.damage.take() {
                    return Err(e);
                }
                self.done = true;
                v1.conv.finish(&mut out);
                return Ok(false);
            }
            v1.started = true;
            v1.conv.run(&v1.trace, &mut self.catalog, &mut out);
            let tr = &mut v1.trace;
            tr.events = Vec::new();
            tr.order = Vec::new();
            self.generations.push(GenerationInfo {
                genno: 1,
                start_offset: HEADER_LEN as u64,
                end_offset: tr.good_bytes,
                start_time: first_time,
                ns_per_tick: if tr.ticks_per_sec > 0 {
                    tr.ns_per_tick()
                } else {
                    0.0
                },
                clock: None,
                events: count,
                experimental_bytes: 0,
            });
            return Ok(true);
        }
        let Some(gens) = self.gens.as_mut() else {
            self.done = true;
            return Ok(false);
        };
        let g = match gens.next_generation(&mut self.catalog)? {
            Some(g) => g,
            None => {
                self.done = true;
                self.orderer.finish(&mut out);
                return Ok(false);
            }
        };
        self.orderer.generation(&g, &mut self.catalog, &mut out)?;
        self.generations.push(GenerationInfo {
            genno: g.genno,
            start_offset: g.start_offset,
            end_offset: g.end_offset,
            start_time: first_time,
            ns_per_tick: g.freq,
            clock: g.clock,
            events: count,
            experimental_bytes: g.experimental_bytes,
        });
        Ok(true)
    }

    /// Read everything left, keeping only the summary. Stops at the first error
    /// (recorded in `self.error`); returns the number of events read.
    ///
    /// The summary is computed on a second thread while this one decodes and orders
    /// (events cross in chunks, in order).
    pub fn drain(&mut self) -> u64 {
        const CHUNK: usize = 16 << 10;
        let mut summary = std::mem::take(&mut self.summary);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(4);
        let mut n = 0u64;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                for chunk in rx {
                    for e in &chunk {
                        summary.event(e);
                    }
                }
                summary
            });
            self.feed_summary = false;
            let mut buf = Vec::with_capacity(CHUNK);
            loop {
                let more = self.next_generation_with(&mut |e: &Event| {
                    n += 1;
                    buf.push(*e);
                    if buf.len() == CHUNK {
                        // A send fails only if the worker is gone (it panicked); the
                        // join below reports that.
                        let _ = tx.send(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK)));
                    }
                });
                if !matches!(more, Ok(true)) {
                    break;
                }
            }
            let _ = tx.send(buf);
            drop(tx);
            self.feed_summary = true;
            self.summary = match worker.join() {
                Ok(s) => s,
                Err(panic) => std::panic::resume_unwind(panic),
            };
        });
        n
    }
}

/// Read a whole trace held in memory into events (for tests and small traces).
pub fn read_all(bytes: &[u8]) -> (Vec<Event>, Catalog, Option<TraceError>) {
    let mut r = match TraceReader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Catalog::new(), Some(e)),
    };
    let mut out = Vec::new();
    while let Ok(true) = r.next_generation(&mut out) {}
    (out, r.catalog, r.error)
}
