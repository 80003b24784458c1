//! The engine's front door: read a trace generation by generation into the ordered
//! event model, keeping the per-goroutine summary up to date on the way.
//!
//! Memory stays bounded by the largest generation: a generation's batches are freed
//! once it is ordered, and callers may drop each generation's events after use.

use std::io::Read;

use crate::catalog::Catalog;
use crate::error::{Result, TraceError};
use crate::event::Event;
use crate::generation::{ClockSnapshot, GenerationReader};
use crate::merge::Orderer;
use crate::spec::Version;
use crate::summary::Summarizer;

/// Facts about one generation that was read.
#[derive(Debug, Clone, Default)]
pub struct GenerationInfo {
    pub genno: u64,
    pub start_offset: u64,
    pub end_offset: u64,
    /// Trace time (ns) of the generation's Sync event.
    pub start_time: i64,
    /// Nanoseconds per trace tick.
    pub ns_per_tick: f64,
    pub clock: Option<ClockSnapshot>,
    pub events: usize,
    pub experimental_bytes: u64,
}

/// Reads a trace one generation at a time.
pub struct TraceReader<R: Read> {
    gens: GenerationReader<R>,
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
    pub fn new(src: R) -> Result<Self> {
        let gens = GenerationReader::new(src)?;
        let mut catalog = Catalog::new();
        let orderer = Orderer::new(gens.version(), &mut catalog);
        Ok(TraceReader {
            gens,
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
        self.gens.version()
    }

    /// Bytes of the input read so far.
    pub fn offset(&self) -> u64 {
        self.gens.offset()
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
        let g = match self.gens.next_generation(&mut self.catalog)? {
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
