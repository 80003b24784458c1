//! Reading one generation: its batches grouped by thread, its string and stack tables,
//! CPU samples and sync data (frequency, clock snapshot).
//!
//! A generation is self-contained: every ID in its events refers to its own tables.
//! Go 1.26+ marks its end with EndOfGeneration; before that, a generation ends where a
//! batch of the next generation (or the end of the file) begins.

use std::io::Read;

use crate::catalog::{Catalog, Frame};
use crate::error::{ErrorKind, Result, TraceError};
use crate::fasthash::IdMap;
use crate::spec::{Version, ev};
use crate::wire::{Batch, BatchReader, Item, uvarint};

/// Longest string the runtime writes.
pub const MAX_STRING_LEN: u64 = 1 << 10;
/// Most frames the runtime writes per stack.
pub const MAX_FRAMES: u64 = 128;

/// The wall/monotonic clock reading taken at the start of a generation (Go 1.25+).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClockSnapshot {
    /// Trace time of the snapshot (ns, like event times).
    pub trace: i64,
    pub mono: u64,
    pub sec: u64,
    pub nsec: u64,
}

/// A CPU profile sample, already in trace time.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub time: i64,
    pub m: i64,
    pub p: i64,
    pub g: i64,
    /// Local (generation) stack ID.
    pub stack: u64,
}

/// One generation, ready to be ordered.
#[derive(Debug)]
pub struct Generation {
    pub genno: u64,
    /// Per thread, its event batches in file order; threads in order of first batch.
    pub threads: Vec<(i64, Vec<Batch>)>,
    pub cpu_samples: Vec<CpuSample>,
    /// Smallest batch timestamp (ticks).
    pub min_ts: u64,
    /// Nanoseconds per tick.
    pub freq: f64,
    pub clock: Option<ClockSnapshot>,
    /// Local string ID -> catalog string ID.
    pub strings: LocalIds,
    /// Local stack ID -> catalog stack ID.
    pub stacks: LocalIds,
    /// File offsets [start, end) of the generation's bytes.
    pub start_offset: u64,
    pub end_offset: u64,
    /// Bytes of experimental batches skipped.
    pub experimental_bytes: u64,
}

impl Generation {
    /// Trace time (ns) of a tick count, the same way Go computes it.
    #[inline]
    pub fn ticks_to_ns(&self, t: u64) -> i64 {
        ticks_to_ns(self.freq, t)
    }
}

#[inline]
pub fn ticks_to_ns(freq: f64, t: u64) -> i64 {
    (t as f64 * freq) as i64
}

/// A generation's local IDs mapped to catalog IDs: a dense array for the usual small
/// IDs (looked up for every event), a hash map for the odd large one.
#[derive(Debug, Default)]
pub struct LocalIds {
    dense: Vec<u32>,
    sparse: IdMap<u64, u32>,
}

/// IDs below this go in the dense array (4 MiB at most).
const DENSE_IDS: u64 = 1 << 20;
const ABSENT: u32 = u32::MAX;

impl LocalIds {
    pub fn insert(&mut self, id: u64, global: u32) {
        if id < DENSE_IDS {
            let i = id as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, ABSENT);
            }
            self.dense[i] = global;
        } else {
            self.sparse.insert(id, global);
        }
    }

    #[inline]
    pub fn get(&self, id: u64) -> Option<u32> {
        if id < DENSE_IDS {
            match self.dense.get(id as usize) {
                Some(&g) if g != ABSENT => Some(g),
                _ => None,
            }
        } else {
            self.sparse.get(&id).copied()
        }
    }
}

/// Raw tables collected while reading, resolved into the catalog at the end.
#[derive(Default)]
struct RawTables {
    strings: IdMap<u64, (u64, String)>,
    stacks: Vec<(u64, u64, Vec<u64>)>,
    stack_ids: IdMap<u64, ()>,
    /// PC -> (func string, file string, line); the first frame seen for a PC wins.
    pcs: IdMap<u64, (u64, u64, u64)>,
}

/// Reads generations one at a time; holds the batch that spilled over from the
/// previous generation in pre-1.26 traces.
pub struct GenerationReader<R: Read> {
    batches: BatchReader<R>,
    spill: Option<Batch>,
    last_gen: u64,
    /// Pre-1.26: a damaged batch found after a generation's batches; reported after
    /// that generation (as Go does), so earlier problems are reported first.
    pending: Option<TraceError>,
}

impl<R: Read> GenerationReader<R> {
    pub fn new(src: R) -> Result<Self> {
        Ok(GenerationReader {
            batches: BatchReader::new(src)?,
            spill: None,
            last_gen: 0,
            pending: None,
        })
    }

    pub fn version(&self) -> Version {
        self.batches.version()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.batches.offset()
    }

    /// The next generation, or None at the end of the trace.
    pub fn next_generation(&mut self, catalog: &mut Catalog) -> Result<Option<Generation>> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let v = self.version();
        let mut start_offset = self.batches.offset();
        let mut damaged_at = None;
        let mut g = Generation {
            genno: 0,
            threads: Vec::new(),
            cpu_samples: Vec::new(),
            min_ts: 0,
            freq: 0.0,
            clock: None,
            strings: LocalIds::default(),
            stacks: LocalIds::default(),
            start_offset,
            end_offset: start_offset,
            experimental_bytes: 0,
        };
        let mut thread_index: IdMap<i64, usize> = IdMap::default();
        let mut tables = RawTables::default();
        let mut have_any = false;
        if let Some(b) = self.spill.take() {
            start_offset = b.offset;
            g.start_offset = start_offset;
            g.genno = b.genno;
            g.min_ts = b.time;
            have_any = true;
            add_batch(&mut g, &mut thread_index, &mut tables, b, v)?;
        }
        loop {
            let at = self.batches.offset();
            let item = match self.batches.next_item() {
                Ok(item) => item,
                Err(e) if v < 26 && have_any => {
                    self.pending = Some(e);
                    damaged_at = Some(at);
                    break;
                }
                Err(e) => return Err(e),
            };
            match item {
                Item::Eof => {
                    if !have_any {
                        return Ok(None);
                    }
                    if v >= 26 {
                        return Err(TraceError::new(
                            ErrorKind::Truncated,
                            at,
                            "file ends inside a generation (no EndOfGeneration): trace likely truncated",
                        ));
                    }
                    break;
                }
                Item::EndOfGeneration => {
                    if !have_any {
                        return Err(TraceError::new(
                            ErrorKind::Malformed,
                            at,
                            "EndOfGeneration without any batch before it",
                        ));
                    }
                    break;
                }
                Item::Batch(b) => {
                    if b.genno == 0 {
                        return Err(TraceError::new(
                            ErrorKind::Malformed,
                            at,
                            "invalid generation number 0",
                        ));
                    }
                    if !have_any {
                        g.genno = b.genno;
                        have_any = true;
                    } else if b.genno != g.genno {
                        if v < 26 && b.genno == g.genno.wrapping_add(1) {
                            self.spill = Some(b);
                            break;
                        }
                        return Err(TraceError::new(
                            ErrorKind::Malformed,
                            at,
                            format!(
                                "batch of generation {} inside generation {}: generations out of order or interleaved",
                                b.genno, g.genno
                            ),
                        ));
                    }
                    if g.min_ts == 0 || b.time < g.min_ts {
                        g.min_ts = b.time;
                    }
                    add_batch(&mut g, &mut thread_index, &mut tables, b, v)?;
                }
            }
        }
        g.end_offset = match (&self.spill, damaged_at) {
            (_, Some(at)) => at,
            (Some(b), _) => b.offset,
            (None, None) => self.batches.offset(),
        };
        if self.last_gen != 0 && g.genno <= self.last_gen {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                start_offset,
                format!("generation {} after generation {}", g.genno, self.last_gen),
            ));
        }
        self.last_gen = g.genno;
        // Before Go 1.26 nothing marks a generation's end: one that ends with the file (or at
        // damage) may just be cut short, so what is missing from it is truncation, not a
        // malformed trace.
        let unfinished = v < 26 && self.spill.is_none();
        let genno = g.genno;
        let cut_short = |e: TraceError| {
            if unfinished && e.kind == ErrorKind::Malformed {
                TraceError::new(
                    ErrorKind::Truncated,
                    e.offset,
                    format!("the file ends before generation {genno} is complete: {}", e.message),
                )
            } else {
                e
            }
        };
        Self::check_complete(&mut g, tables, catalog, v).map_err(cut_short)?;
        Ok(Some(g))
    }

    /// Every generation has a frequency (and since Go 1.25 a clock snapshot), and its
    /// stacks name strings that exist.
    fn check_complete(
        g: &mut Generation,
        tables: RawTables,
        catalog: &mut Catalog,
        v: Version,
    ) -> Result<()> {
        if g.freq == 0.0 {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                g.end_offset,
                format!("generation {}: no frequency event found", g.genno),
            ));
        }
        if v >= 25 && g.clock.is_none() {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                g.end_offset,
                format!("generation {}: no clock snapshot event found", g.genno),
            ));
        }
        resolve_tables(g, tables, catalog)?;
        for s in g.cpu_samples.iter_mut() {
            s.time = ticks_to_ns(g.freq, s.time as u64);
        }
        g.cpu_samples.sort_by_key(|s| s.time);
        if let Some(c) = g.clock.as_mut() {
            c.trace = ticks_to_ns(g.freq, c.trace as u64);
        }
        Ok(())
    }
}

fn add_batch(
    g: &mut Generation,
    thread_index: &mut IdMap<i64, usize>,
    t: &mut RawTables,
    b: Batch,
    v: Version,
) -> Result<()> {
    if b.exp != 0 {
        g.experimental_bytes += b.data.len() as u64;
        return Ok(());
    }
    let first = b.data.first().copied();
    match first {
        Some(ev::STRINGS) => read_strings(t, &b),
        Some(ev::STACKS) => read_stacks(t, &b),
        Some(ev::CPU_SAMPLES) => read_cpu_samples(g, &b),
        Some(ev::FREQUENCY) if v < 25 => read_sync(g, &b, v),
        Some(ev::SYNC) if v >= 25 => read_sync(g, &b, v),
        _ => {
            let m = b.m as i64;
            let i = *thread_index.entry(m).or_insert_with(|| {
                g.threads.push((m, Vec::new()));
                g.threads.len() - 1
            });
            g.threads[i].1.push(b);
            Ok(())
        }
    }
}

/// A cursor over one batch's bytes with offset-carrying errors.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cur<'a> {
    fn new(b: &'a Batch) -> Self {
        Cur {
            b: &b.data,
            pos: 1,
            base: b.data_offset,
        }
    }
    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> TraceError {
        TraceError::new(kind, self.at(), msg)
    }
    fn byte(&mut self) -> u8 {
        let x = self.b[self.pos];
        self.pos += 1;
        x
    }
    fn varint(&mut self, what: &str) -> Result<u64> {
        match uvarint(&self.b[self.pos.min(self.b.len())..]) {
            Some((x, n)) => {
                self.pos += n;
                Ok(x)
            }
            None => Err(self.err(
                ErrorKind::Malformed,
                format!("invalid or cut varint for {what}"),
            )),
        }
    }
    fn bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(self.err(
                ErrorKind::Malformed,
                format!("{what} of {n} bytes but only {left} left in the batch"),
            ));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    /// A varint that sizes what follows, refused above `max` (memory comes from it).
    fn bounded(&mut self, what: &str, max: u64) -> Result<u64> {
        let n = self.varint(what)?;
        if n > max {
            return Err(self.err(
                ErrorKind::Malformed,
                format!("invalid {what} {n}, maximum is {max}"),
            ));
        }
        Ok(n)
    }
    fn expect(&mut self, typ: u8, what: &str) -> Result<()> {
        let at = self.at();
        let t = self.byte();
        if t != typ {
            return Err(TraceError::new(
                ErrorKind::Malformed,
                at,
                format!("expected {what} event, got event type {t}"),
            ));
        }
        Ok(())
    }
}

/// A string or stack table entry whose ID is 0 (reserved for "none") or already taken.
fn bad_table_id(table: &str, id: u64, at: u64) -> TraceError {
    TraceError::new(
        ErrorKind::Malformed,
        at,
        format!("duplicate or zero {table} ID {id}"),
    )
}

fn read_strings(t: &mut RawTables, b: &Batch) -> Result<()> {
    let mut c = Cur::new(b);
    while !c.done() {
        c.expect(ev::STRING, "String")?;
        let at = c.at();
        let id = c.varint("string ID")?;
        let len = c.bounded("string length", MAX_STRING_LEN)?;
        let s = String::from_utf8_lossy(c.bytes(len, "string")?).into_owned();
        if id == 0 || t.strings.contains_key(&id) {
            return Err(bad_table_id("string", id, at));
        }
        t.strings.insert(id, (at, s));
    }
    Ok(())
}

fn read_stacks(t: &mut RawTables, b: &Batch) -> Result<()> {
    let mut c = Cur::new(b);
    while !c.done() {
        c.expect(ev::STACK, "Stack")?;
        let at = c.at();
        let id = c.varint("stack ID")?;
        let n = c.bounded("stack size", MAX_FRAMES)?;
        let mut pcs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let pc = c.varint("frame PC")?;
            let func = c.varint("frame function")?;
            let file = c.varint("frame file")?;
            let line = c.varint("frame line")?;
            t.pcs.entry(pc).or_insert((func, file, line));
            pcs.push(pc);
        }
        if id == 0 || t.stack_ids.insert(id, ()).is_some() {
            return Err(bad_table_id("stack", id, at));
        }
        t.stacks.push((id, at, pcs));
    }
    Ok(())
}

fn read_cpu_samples(g: &mut Generation, b: &Batch) -> Result<()> {
    let mut c = Cur::new(b);
    while !c.done() {
        c.expect(ev::CPU_SAMPLE, "CPUSample")?;
        let ts = c.varint("sample time")?;
        let m = c.varint("sample thread")?;
        let p = c.varint("sample proc")?;
        let gid = c.varint("sample goroutine")?;
        let stack = c.varint("sample stack")?;
        // Stored as ticks for now; converted once the frequency is known.
        g.cpu_samples.push(CpuSample {
            time: ts as i64,
            m: m as i64,
            p: p as i64,
            g: if gid == 0 { -1 } else { gid as i64 },
            stack,
        });
    }
    Ok(())
}

fn read_sync(g: &mut Generation, b: &Batch, v: Version) -> Result<()> {
    let mut c = Cur::new(b);
    if v < 25 {
        c.pos = 0;
    }
    let mut last_ts = b.time;
    while !c.done() {
        let at = c.at();
        match c.byte() {
            ev::FREQUENCY => {
                if g.freq != 0.0 {
                    return Err(TraceError::new(
                        ErrorKind::Malformed,
                        at,
                        "found multiple frequency events",
                    ));
                }
                let f = c.varint("frequency")?;
                if f == 0 {
                    return Err(TraceError::new(
                        ErrorKind::Malformed,
                        at,
                        "invalid frequency 0",
                    ));
                }
                g.freq = 1.0 / (f as f64 / 1e9);
            }
            ev::CLOCK_SNAPSHOT if v >= 25 => {
                if g.clock.is_some() {
                    return Err(TraceError::new(
                        ErrorKind::Malformed,
                        at,
                        "found multiple clock snapshot events",
                    ));
                }
                let dt = c.varint("clock snapshot time")?;
                last_ts = last_ts.wrapping_add(dt);
                let mono = c.varint("monotonic clock")?;
                let sec = c.varint("wall clock seconds")?;
                let nsec = c.varint("wall clock nanoseconds")?;
                // trace holds ticks until the frequency is known.
                g.clock = Some(ClockSnapshot {
                    trace: last_ts as i64,
                    mono,
                    sec,
                    nsec,
                });
            }
            t => {
                return Err(TraceError::new(
                    ErrorKind::Malformed,
                    at,
                    format!("expected frequency or clock snapshot event, got event type {t}"),
                ));
            }
        }
    }
    Ok(())
}

/// Intern the generation's strings and stacks into the catalog; check that every
/// frame names strings that exist.
fn resolve_tables(g: &mut Generation, t: RawTables, catalog: &mut Catalog) -> Result<()> {
    for (&id, (_, s)) in t.strings.iter() {
        g.strings.insert(id, catalog.string(s));
    }
    let string = |id: u64, at: u64, what: &str, stack: u64, g: &Generation| -> Result<u32> {
        if id == 0 {
            return Ok(0);
        }
        g.strings.get(id).ok_or_else(|| {
            TraceError::new(
                ErrorKind::Malformed,
                at,
                format!("found invalid {what} string ID {id} for stack {stack}"),
            )
        })
    };
    let mut frames = Vec::with_capacity(MAX_FRAMES as usize);
    for (id, at, pcs) in t.stacks {
        frames.clear();
        for pc in pcs {
            let (func, file, line) = t.pcs[&pc];
            frames.push(Frame {
                pc,
                func: string(func, at, "func", id, g)?,
                file: string(file, at, "file", id, g)?,
                line,
            });
        }
        g.stacks.insert(id, catalog.stack(&frames));
    }
    Ok(())
}
