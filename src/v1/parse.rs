//! Reading a Go 1.11–1.21 ("v1") trace: its per-P batches, string and stack tables and
//! frequency, merged into one stream ordered by the goroutines' sequence numbers and
//! then by time, checked for consistency the way Go's old reader checks it.
//!
//! The v1 format keeps its tables and frequency at the end of the file, and a P's
//! events may sit anywhere later in the file than events of other Ps that come after
//! them, so the whole trace is read before anything can be ordered (Go's own reader
//! does the same). Memory is therefore bounded by the file, not by a generation: the
//! bytes while decoding (freed before ordering), then 56 bytes per event plus two
//! 4-byte indexes per event while merging (about 17 times the file on busy traces).
//! Every length comes from the input and is checked against the bytes that are there
//! before anything is allocated for it.

use std::collections::HashMap;

use crate::error::{ErrorKind, Result, TraceError};
use crate::fasthash::IdMap;
use crate::spec::Version;
use crate::wire::{HEADER_LEN, uvarint};

/// v1 wire event types.
pub mod ev1 {
    pub const BATCH: u8 = 1;
    pub const FREQUENCY: u8 = 2;
    pub const STACK: u8 = 3;
    pub const GOMAXPROCS: u8 = 4;
    pub const PROC_START: u8 = 5;
    pub const PROC_STOP: u8 = 6;
    pub const GC_START: u8 = 7;
    pub const GC_DONE: u8 = 8;
    pub const STW_START: u8 = 9;
    pub const STW_DONE: u8 = 10;
    pub const GC_SWEEP_START: u8 = 11;
    pub const GC_SWEEP_DONE: u8 = 12;
    pub const GO_CREATE: u8 = 13;
    pub const GO_START: u8 = 14;
    pub const GO_END: u8 = 15;
    pub const GO_STOP: u8 = 16;
    pub const GO_SCHED: u8 = 17;
    pub const GO_PREEMPT: u8 = 18;
    pub const GO_SLEEP: u8 = 19;
    pub const GO_BLOCK: u8 = 20;
    pub const GO_UNBLOCK: u8 = 21;
    pub const GO_BLOCK_SEND: u8 = 22;
    pub const GO_BLOCK_RECV: u8 = 23;
    pub const GO_BLOCK_SELECT: u8 = 24;
    pub const GO_BLOCK_SYNC: u8 = 25;
    pub const GO_BLOCK_COND: u8 = 26;
    pub const GO_BLOCK_NET: u8 = 27;
    pub const GO_SYS_CALL: u8 = 28;
    pub const GO_SYS_EXIT: u8 = 29;
    pub const GO_SYS_BLOCK: u8 = 30;
    pub const GO_WAITING: u8 = 31;
    pub const GO_IN_SYSCALL: u8 = 32;
    pub const HEAP_ALLOC: u8 = 33;
    pub const HEAP_GOAL: u8 = 34;
    pub const TIMER_GOROUTINE: u8 = 35;
    pub const FUTILE_WAKEUP: u8 = 36;
    pub const STRING: u8 = 37;
    pub const GO_START_LOCAL: u8 = 38;
    pub const GO_UNBLOCK_LOCAL: u8 = 39;
    pub const GO_SYS_EXIT_LOCAL: u8 = 40;
    pub const GO_START_LABEL: u8 = 41;
    pub const GO_BLOCK_GC: u8 = 42;
    pub const GC_MARK_ASSIST_START: u8 = 43;
    pub const GC_MARK_ASSIST_DONE: u8 = 44;
    pub const USER_TASK_CREATE: u8 = 45;
    pub const USER_TASK_END: u8 = 46;
    pub const USER_REGION: u8 = 47;
    pub const USER_LOG: u8 = 48;
    pub const CPU_SAMPLE: u8 = 49;
    pub const COUNT: u8 = 50;
}

use ev1::*;

/// Per event type: name, number of arguments after the timestamp (not counting the
/// stack), whether a stack ID ends the arguments.
const DESCS: [(&str, u8, bool); 50] = [
    ("None", 0, false),
    ("Batch", 2, false),
    ("Frequency", 1, false),
    ("Stack", 2, false),
    ("Gomaxprocs", 1, true),
    ("ProcStart", 1, false),
    ("ProcStop", 0, false),
    ("GCStart", 1, true),
    ("GCDone", 0, false),
    ("GCSTWStart", 1, false),
    ("GCSTWDone", 0, false),
    ("GCSweepStart", 0, true),
    ("GCSweepDone", 2, false),
    ("GoCreate", 2, true),
    ("GoStart", 2, false),
    ("GoEnd", 0, false),
    ("GoStop", 0, true),
    ("GoSched", 0, true),
    ("GoPreempt", 0, true),
    ("GoSleep", 0, true),
    ("GoBlock", 0, true),
    ("GoUnblock", 2, true),
    ("GoBlockSend", 0, true),
    ("GoBlockRecv", 0, true),
    ("GoBlockSelect", 0, true),
    ("GoBlockSync", 0, true),
    ("GoBlockCond", 0, true),
    ("GoBlockNet", 0, true),
    ("GoSysCall", 0, true),
    ("GoSysExit", 3, false),
    ("GoSysBlock", 0, false),
    ("GoWaiting", 1, false),
    ("GoInSyscall", 1, false),
    ("HeapAlloc", 1, false),
    ("HeapGoal", 1, false),
    ("TimerGoroutine", 1, false),
    ("FutileWakeup", 0, false),
    ("String", 0, false),
    ("GoStartLocal", 1, false),
    ("GoUnblockLocal", 1, true),
    ("GoSysExitLocal", 2, false),
    ("GoStartLabel", 3, false),
    ("GoBlockGC", 0, true),
    ("GCMarkAssistStart", 0, true),
    ("GCMarkAssistDone", 0, false),
    ("UserTaskCreate", 3, true),
    ("UserTaskEnd", 1, true),
    ("UserRegion", 3, true),
    ("UserLog", 2, true),
    ("CPUSample", 3, true),
];

/// Name of a v1 event type, for messages.
pub fn name(typ: u8) -> &'static str {
    DESCS.get(typ as usize).map(|d| d.0).unwrap_or("Unknown")
}

/// Whether the v1 event type ends its arguments with a stack ID.
pub fn has_stack(typ: u8) -> bool {
    DESCS.get(typ as usize).map(|d| d.2).unwrap_or(false)
}

/// Pseudo-Ps the old reader puts events on that no real P owns.
pub const TIMER_P: i32 = 1_000_001;
pub const NETPOLL_P: i32 = 1_000_002;
pub const SYSCALL_P: i32 = 1_000_003;
pub const GC_P: i32 = 1_000_004;
pub const PROFILE_P: i32 = 1_000_005;

/// Longest string, in bytes, and longest stack, in frames, a trace may hold.
const MAX_STRING: u64 = 1_000_000;
const MAX_FRAMES: u64 = 1000;
/// Longest length-prefixed argument list, in bytes.
const MAX_ARGS_LEN: u64 = 2048;

/// One event of a v1 trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Event {
    /// Ticks while ordering; nanoseconds since the first event after `parse`.
    pub ts: i64,
    pub g: u64,
    /// Up to three arguments; a user log's message is args[2] (see `inline_strings`).
    pub args: [u64; 3],
    pub stk: u32,
    pub p: i32,
    /// Byte offset of the event in the file (for messages; files are under 4 GiB).
    pub off: u32,
    pub typ: u8,
}

/// A frame of the PC table.
#[derive(Debug, Clone, Copy)]
pub struct PcFrame {
    pub func: u64,
    pub file: u64,
    pub line: u64,
}

/// A parsed, ordered and checked v1 trace.
#[derive(Debug, Default)]
pub struct V1Trace {
    pub version: Version,
    /// The events in file order; `order` lists them in stream order (indexes).
    pub events: Vec<V1Event>,
    pub order: Vec<u32>,
    pub stacks: IdMap<u32, Vec<u64>>,
    /// IDs of the stacks the table lists with no frames.
    pub empty_stacks: IdMap<u32, ()>,
    pub pcs: IdMap<u64, PcFrame>,
    pub strings: IdMap<u64, String>,
    /// User log messages, indexed by the events' args[2].
    pub inline_strings: Vec<String>,
    /// Clock ticks per second; 0 if the trace was cut before its frequency event.
    pub ticks_per_sec: i64,
    /// File size, bytes.
    pub size: u64,
    /// What stopped the reader early; the events are those known before it.
    pub damage: Option<TraceError>,
    /// Every event before this offset is kept (the file size if undamaged).
    pub good_bytes: u64,
    /// Cut trace: the goroutines whose syscall blocked just after the last event kept
    /// (the block itself was left out).
    pub blocked_after_cut: IdMap<u64, ()>,
    /// Whether stacks may be missing from the stack table (damaged trace): events then
    /// keep their stack IDs (see `Converter`), as a complete trace would have them.
    pub frames_lost: bool,
}

impl V1Trace {
    /// The i-th event of the ordered stream.
    #[inline]
    pub fn ordered(&self, i: usize) -> &V1Event {
        &self.events[self.order[i] as usize]
    }

    /// Nanoseconds per clock tick (1 when the frequency is lost: times stay in ticks).
    pub fn ns_per_tick(&self) -> f64 {
        if self.ticks_per_sec > 0 {
            1e9 / self.ticks_per_sec as f64
        } else {
            1.0
        }
    }

    /// A string of the trace's table ("" for 0 or a missing ID).
    pub fn string(&self, id: u64) -> &str {
        self.strings.get(&id).map(String::as_str).unwrap_or("")
    }
}

fn malformed(off: usize, msg: impl Into<String>) -> TraceError {
    TraceError::new(ErrorKind::Malformed, off as u64, msg)
}

fn truncated(off: usize, what: &str) -> TraceError {
    TraceError::new(
        ErrorKind::Truncated,
        off as u64,
        format!("file ends inside {what}"),
    )
}

fn inconsistent(off: u64, msg: impl Into<String>) -> TraceError {
    TraceError::new(ErrorKind::Inconsistent, off, msg)
}

/// Reads raw events from the bytes after the header.
struct Cursor<'a> {
    data: &'a [u8],
    off: usize,
}

impl Cursor<'_> {
    fn varint(&mut self, what: &str) -> Result<u64> {
        match uvarint(&self.data[self.off..]) {
            Some((v, n)) => {
                self.off += n;
                Ok(v)
            }
            None if self.data.len() - self.off < 10
                && self.data[self.off..].iter().all(|b| b & 0x80 != 0) =>
            {
                Err(truncated(self.off, what))
            }
            None => Err(malformed(self.off, format!("bad varint in {what}"))),
        }
    }

    /// `n` bytes, checked against what is left before anything is allocated.
    fn bytes(&mut self, n: u64, what: &str) -> Result<&[u8]> {
        let left = (self.data.len() - self.off) as u64;
        if n > left {
            return Err(truncated(self.off, what));
        }
        let b = &self.data[self.off..self.off + n as usize];
        self.off += n as usize;
        Ok(b)
    }
}

/// A P's events while reading, and what its event stream implies between events.
#[derive(Default)]
struct ProcEvents {
    pid: i32,
    /// Indexes of its events in the trace's one event array, in order.
    events: Vec<u32>,
    last_g: u64,
    last_ts: i64,
}

/// What the byte reader collects, kept up to the first damaged event.
#[derive(Default)]
struct Decoded {
    tr: V1Trace,
    procs: Vec<ProcEvents>,
    /// Every event, in file order (CPU samples included); the Ps and the CPU samples
    /// keep lists of indexes into it, so the merge needs no second copy of the events.
    all: Vec<V1Event>,
    cpu_samples: Vec<u32>,
    timer_goids: IdMap<u64, ()>,
    /// Offset of the first event not read whole (the file size if all were).
    good: usize,
}

/// Parse, order and check a whole v1 trace (`data` starts with the header).
///
/// A trace damaged or cut partway keeps what can be known before the damage (see
/// `keep_known_prefix`) and says where in `damage`; with nothing readable it is an error.
pub fn parse(data: Vec<u8>, version: Version) -> Result<V1Trace> {
    if u32::try_from(data.len()).is_err() {
        return Err(TraceError::new(
            ErrorKind::Unsupported,
            0,
            "v1 traces of 4 GiB or more are not supported",
        ));
    }
    let mut d = Decoded {
        tr: V1Trace {
            version,
            size: data.len() as u64,
            ..V1Trace::default()
        },
        good: HEADER_LEN.min(data.len()),
        ..Decoded::default()
    };
    let damage = decode(&data, version, &mut d).err();
    // Everything needed is decoded: free the bytes before ordering.
    drop(data);
    order_and_check(d, damage)
}

/// Read the events, strings and stacks, stopping at the first damaged event.
fn decode(data: &[u8], version: Version, d: &mut Decoded) -> Result<()> {
    let Decoded {
        tr,
        procs,
        all,
        cpu_samples,
        timer_goids,
        good,
    } = d;
    let mut proc_index: IdMap<i32, usize> = IdMap::default();
    let mut inline_ids: HashMap<String, u64> = HashMap::new();
    let mut cur: Option<usize> = None;
    let mut c = Cursor {
        data,
        off: HEADER_LEN.min(data.len()),
    };
    let mut args: Vec<u64> = Vec::with_capacity(16);
    while c.off < data.len() {
        let start = c.off;
        *good = start;
        let b = data[c.off];
        c.off += 1;
        let typ = b & 0x3f;
        let narg = (b >> 6) + 1;
        if typ == 0 || typ >= COUNT || (typ == CPU_SAMPLE && version < 19) {
            return Err(malformed(start, format!("unknown event type {typ}")));
        }
        match typ {
            STRING => {
                let id = c.varint("a string ID")?;
                if id == 0 {
                    return Err(malformed(start, "string has invalid id 0"));
                }
                if tr.strings.get(&id).is_some_and(|s| !s.is_empty()) {
                    return Err(malformed(start, format!("string has duplicate id {id}")));
                }
                let len = c.varint("a string length")?;
                if len == 0 || len > MAX_STRING {
                    return Err(malformed(start, format!("string has invalid length {len}")));
                }
                let s = String::from_utf8_lossy(c.bytes(len, "a string")?).into_owned();
                tr.strings.insert(id, s);
                continue;
            }
            BATCH => {
                if narg != 2 {
                    return Err(malformed(
                        start,
                        format!("EvBatch has wrong number of arguments: got {narg}, want 2"),
                    ));
                }
                let pid = c.varint("a batch header")?;
                let ts = c.varint("a batch header")?;
                let pid = if pid == u64::MAX {
                    -1
                } else if pid > i32::MAX as u64 {
                    return Err(malformed(start, format!("processor ID {pid} is too large")));
                } else {
                    pid as i32
                };
                let i = *proc_index.entry(pid).or_insert_with(|| {
                    procs.push(ProcEvents {
                        pid,
                        ..ProcEvents::default()
                    });
                    procs.len() - 1
                });
                procs[i].last_ts = ts as i64;
                cur = Some(i);
                continue;
            }
            _ => {}
        }
        // Ordinary events: inline arguments, or a byte length then the arguments.
        args.clear();
        if narg <= 3 {
            for _ in 0..narg {
                args.push(c.varint("event arguments")?);
            }
        } else {
            let len = c.varint("an argument length")?;
            if len > MAX_ARGS_LEN {
                return Err(malformed(
                    start,
                    format!(
                        "length-prefixed arguments too big: {len} bytes, limit is {MAX_ARGS_LEN}"
                    ),
                ));
            }
            let mut buf = c.bytes(len, "event arguments")?;
            while !buf.is_empty() {
                let Some((v, n)) = uvarint(buf) else {
                    return Err(malformed(start, "bad varint in event arguments"));
                };
                args.push(v);
                buf = &buf[n..];
            }
        }
        let mut log_message = None;
        if typ == USER_LOG && narg > 3 {
            let len = c.varint("a log message length")?;
            if len > MAX_STRING {
                return Err(malformed(start, format!("string is too large (len={len})")));
            }
            log_message =
                Some(String::from_utf8_lossy(c.bytes(len, "a log message")?).into_owned());
        }
        let Some(pi) = cur else {
            return Err(malformed(
                start,
                format!("event {} before the first batch", name(typ)),
            ));
        };
        let (_, nargs, stack) = DESCS[typ as usize];
        let want = match typ {
            STACK => args.len(),
            FREQUENCY | TIMER_GOROUTINE => nargs as usize,
            _ => nargs as usize + stack as usize + 1,
        };
        if args.len() != want {
            return Err(malformed(
                start,
                format!(
                    "{} has wrong number of arguments: want {want}, got {}",
                    name(typ),
                    args.len()
                ),
            ));
        }
        match typ {
            FREQUENCY => {
                tr.ticks_per_sec = args[0] as i64;
                if tr.ticks_per_sec <= 0 {
                    return Err(malformed(start, "time stamps out of order (bad frequency)"));
                }
            }
            TIMER_GOROUTINE => {
                timer_goids.insert(args[0], ());
            }
            STACK => read_stack(tr, &args, start)?,
            CPU_SAMPLE => {
                // Written late by a separate worker: ordered by the time the signal
                // handler recorded, not where it sits in the batch.
                cpu_samples.push(index(all, start)?);
                all.push(V1Event {
                    ts: args[1] as i64,
                    p: args[2] as i32,
                    g: args[3],
                    stk: args[4] as u32,
                    typ,
                    off: start as u32,
                    ..V1Event::default()
                });
            }
            _ => {
                let pe = &mut procs[pi];
                let mut e = V1Event {
                    typ,
                    p: pe.pid,
                    g: pe.last_g,
                    off: start as u32,
                    ..V1Event::default()
                };
                e.ts = pe.last_ts.wrapping_add(args[0] as i64);
                pe.last_ts = e.ts;
                for (i, &a) in args.iter().enumerate().skip(1) {
                    if i == args.len() - 1 && stack {
                        e.stk = a as u32;
                    } else {
                        e.args[i - 1] = a;
                    }
                }
                match typ {
                    GO_START | GO_START_LOCAL | GO_START_LABEL => {
                        pe.last_g = e.args[0];
                        e.g = e.args[0];
                    }
                    GO_END | GO_STOP | GO_SCHED | GO_PREEMPT | GO_SLEEP | GO_BLOCK
                    | GO_BLOCK_SEND | GO_BLOCK_RECV | GO_BLOCK_SELECT | GO_BLOCK_SYNC
                    | GO_BLOCK_COND | GO_BLOCK_NET | GO_SYS_BLOCK | GO_BLOCK_GC => pe.last_g = 0,
                    GO_SYS_EXIT | GO_WAITING | GO_IN_SYSCALL => e.g = e.args[0],
                    USER_LOG => {
                        let msg = log_message.take().unwrap_or_default();
                        let next = tr.inline_strings.len() as u64;
                        let id = *inline_ids.entry(msg.clone()).or_insert_with(|| {
                            tr.inline_strings.push(msg);
                            next
                        });
                        e.args[2] = id;
                    }
                    _ => {}
                }
                pe.events.push(index(all, start)?);
                all.push(e);
            }
        }
    }
    *good = data.len();
    Ok(())
}

/// Order the events read and check them; `damage` is what stopped the byte reader.
fn order_and_check(d: Decoded, damage: Option<TraceError>) -> Result<V1Trace> {
    let Decoded {
        mut tr,
        mut procs,
        all,
        mut cpu_samples,
        timer_goids,
        good,
    } = d;
    // The runtime writes the frequency when tracing stops, after every batch: without
    // it the trace was cut.
    let damage = damage.or_else(|| {
        (tr.ticks_per_sec == 0).then(|| {
            TraceError::new(
                ErrorKind::Truncated,
                tr.size,
                "no EvFrequency event: the v1 trace ends before the frequency the runtime writes when tracing stops",
            )
        })
    });
    // v1 has no end marker: a cut between two entries of the final stack table shows
    // only as stacks that events use and the table lacks.
    let damage = damage.or_else(|| match unlisted_stack_uses(&tr, &all) {
        0 => None,
        n => Some(TraceError::new(
            ErrorKind::Truncated,
            tr.size,
            format!(
                "{n} events use stacks missing from the stack table: the trace was likely cut in its final tables"
            ),
        )),
    });
    if let Some(e) = damage.clone()
        && all.is_empty()
    {
        return Err(match e.kind {
            ErrorKind::Truncated if tr.ticks_per_sec == 0 && good == tr.size as usize => {
                TraceError::new(
                    e.kind,
                    e.offset,
                    "no events: the v1 trace ends before its first event",
                )
            }
            _ => e,
        });
    }
    // Cut before the frequency, some events of every P are missing; cut after it,
    // only stacks and strings are.
    let mut damage = damage;
    let mut partial = damage.is_some() && tr.ticks_per_sec == 0;
    let mut good = good as u64;
    if partial {
        let first_left_out = keep_known_prefix(&all, &mut procs, &mut cpu_samples, &mut tr);
        good = good.min(first_left_out);
    }
    let mut events = all;
    cpu_samples.sort_by_key(|&i| events[i as usize].ts);
    let mut order = match merge(&events, &streams(&procs, &cpu_samples), partial) {
        Ok(order) => order,
        // Events that contradict each other from some event on (a flipped byte): keep
        // what comes before that event, as for a trace cut there.
        Err(e) if !partial && e.kind == ErrorKind::Inconsistent => {
            keep_before(&events, &mut procs, &mut cpu_samples, e.offset);
            let first_left_out = keep_known_prefix(&events, &mut procs, &mut cpu_samples, &mut tr);
            good = good.min(e.offset).min(first_left_out);
            partial = true;
            damage = Some(e);
            merge(&events, &streams(&procs, &cpu_samples), true)?
        }
        Err(e) => return Err(e),
    };
    drop((procs, cpu_samples));
    for &k in &order {
        // The "Local" variants only matter for ordering.
        let e = &mut events[k as usize];
        e.typ = match e.typ {
            GO_START_LOCAL => GO_START,
            GO_UNBLOCK_LOCAL => GO_UNBLOCK,
            GO_SYS_EXIT_LOCAL => GO_SYS_EXIT,
            t => t,
        };
    }
    fix_syscall_exits(&mut events, &mut order, partial)?;
    if let Some(&first) = order.first() {
        let min = events[first as usize].ts;
        // Without the frequency, times stay in clock ticks.
        let ns_per_tick = tr.ns_per_tick();
        for e in &mut events {
            e.ts = (e.ts.wrapping_sub(min) as f64 * ns_per_tick) as i64;
            if e.typ == GO_UNBLOCK && timer_goids.contains_key(&e.g) {
                e.p = TIMER_P;
            }
            if e.typ == GO_SYS_EXIT {
                e.p = SYSCALL_P;
            }
        }
    }
    tr.frames_lost = damage.is_some();
    check(&mut events, &order, &tr.stacks, !partial, tr.frames_lost)?;
    if let Some(e) = damage {
        if order.is_empty() {
            return Err(e);
        }
        tr.damage = Some(if partial {
            explain_partial(e, tr.ticks_per_sec > 0)
        } else {
            e
        });
        tr.good_bytes = good;
    } else {
        tr.good_bytes = tr.size;
    }
    tr.events = events;
    tr.order = order;
    Ok(tr)
}

/// How many of `events` use a stack the stack table does not list (none in a whole
/// trace: the runtime writes every stack it used).
fn unlisted_stack_uses(tr: &V1Trace, events: &[V1Event]) -> usize {
    let listed = |id: u64| {
        id == 0
            || tr.stacks.contains_key(&(id as u32))
            || tr.empty_stacks.contains_key(&(id as u32))
    };
    events
        .iter()
        .filter(|e| {
            (has_stack(e.typ) && !listed(e.stk.into()))
                || (e.typ == GO_CREATE && !listed(e.args[1]))
        })
        .count()
}

/// The damage message, plus what a v1 trace cut short loses.
fn explain_partial(mut e: TraceError, has_frequency: bool) -> TraceError {
    e.message
        .push_str("; kept the events up to where every P's events are known");
    if !has_frequency {
        e.message.push_str(
            " (a v1 trace keeps its clock frequency and stack table at the end: times \
             are in clock ticks, stacks are known by their IDs only)",
        );
    }
    e
}

/// The Ps' event lists, then the CPU samples, as the merge takes them.
fn streams<'a>(procs: &'a [ProcEvents], cpu: &'a [u32]) -> Vec<&'a [u32]> {
    procs
        .iter()
        .map(|p| p.events.as_slice())
        .chain(std::iter::once(cpu))
        .collect()
}

/// Keep only the events before byte `at`, as if the trace were cut there.
fn keep_before(all: &[V1Event], procs: &mut [ProcEvents], cpu: &mut Vec<u32>, at: u64) {
    let before = |k: &u32| u64::from(all[*k as usize].off) < at;
    for p in procs.iter_mut() {
        let n = p
            .events
            .iter()
            .position(|k| !before(k))
            .unwrap_or(p.events.len());
        p.events.truncate(n);
        // Known up to its last event kept; a P with none is as if never seen.
        p.last_ts = p.events.last().map_or(i64::MAX, |&k| all[k as usize].ts);
    }
    cpu.retain(before);
}

/// Keep, of a trace cut before its end, only what is known for every P.
///
/// A P's events reach the file in batches written when its buffer fills, so each P's
/// events after its last batch before the cut are unknown, and they may be older than
/// the other Ps' known events. So every P's events stop at the earliest time where
/// some P's known events run out. The buffer of events without a P and the CPU samples
/// are written at the end of the trace: what of them the cut lost stays lost (an event
/// that waits on one of them is taken at its own time, see `merge`).
///
/// Returns the offset of the first event left out (u64::MAX if none).
fn keep_known_prefix(
    all: &[V1Event],
    procs: &mut [ProcEvents],
    cpu: &mut Vec<u32>,
    tr: &mut V1Trace,
) -> u64 {
    let real = procs.iter().filter(|p| p.pid >= 0).map(|p| p.last_ts).min();
    let Some(limit) = real.or_else(|| procs.iter().map(|p| p.last_ts).min()) else {
        return u64::MAX;
    };
    let known = |k: &u32| all[*k as usize].ts < limit;
    let mut first_left_out = u64::MAX;
    for p in procs.iter_mut() {
        // Times only grow along a P's events, so the known ones are a prefix.
        let n = p
            .events
            .iter()
            .position(|k| !known(k))
            .unwrap_or(p.events.len());
        if let Some(&k) = p.events.get(n) {
            let e = &all[k as usize];
            first_left_out = first_left_out.min(e.off.into());
            // Tells whether the syscall just before it blocked.
            if e.typ == GO_SYS_BLOCK {
                tr.blocked_after_cut.insert(e.g, ());
            }
        }
        p.events.truncate(n);
    }
    for &k in cpu.iter().filter(|k| !known(k)) {
        first_left_out = first_left_out.min(all[k as usize].off.into());
    }
    cpu.retain(known);
    first_left_out
}

fn read_stack(tr: &mut V1Trace, args: &[u64], off: usize) -> Result<()> {
    if args.len() < 2 {
        return Err(malformed(off, "EvStack has too few arguments"));
    }
    let size = args[1];
    if size > MAX_FRAMES {
        return Err(malformed(
            off,
            format!("EvStack has bad number of frames: {size}"),
        ));
    }
    if args.len() as u64 != 2 + 4 * size {
        return Err(malformed(
            off,
            format!(
                "EvStack has wrong number of arguments: want {}, got {}",
                2 + 4 * size,
                args.len()
            ),
        ));
    }
    let id = args[0] as u32;
    if id == 0 {
        return Ok(());
    }
    if size == 0 {
        tr.empty_stacks.insert(id, ());
        return Ok(());
    }
    let mut pcs = Vec::with_capacity(size as usize);
    for f in args[2..].chunks_exact(4) {
        pcs.push(f[0]);
        tr.pcs.entry(f[0]).or_insert(PcFrame {
            func: f[1],
            file: f[2],
            line: f[3],
        });
    }
    tr.stacks.insert(id, pcs);
    Ok(())
}

// Goroutine statuses while merging.
const DEAD: u8 = 0;
const RUNNABLE: u8 = 1;
const RUNNING: u8 = 2;
const WAITING: u8 = 3;

/// "Any sequence number" (init) and "one more than before" (next).
const NOSEQ: u64 = u64::MAX;
const SEQINC: u64 = u64::MAX - 1;

#[derive(Clone, Copy, Default, PartialEq)]
struct GSeq {
    seq: u64,
    status: u8,
}

/// Which goroutine an event moves (None: it is not ordered), from which state to which.
/// The GC counts as one more "goroutine" whose sequence is the GC number.
fn transition_of(e: &V1Event) -> Option<(u64, GSeq, GSeq)> {
    const GC: u64 = u64::MAX - 1;
    let st = |seq, status| GSeq { seq, status };
    let a = &e.args;
    Some(match e.typ {
        GO_CREATE => (a[0], st(0, DEAD), st(1, RUNNABLE)),
        GO_WAITING | GO_IN_SYSCALL => (e.g, st(1, RUNNABLE), st(2, WAITING)),
        GO_START | GO_START_LABEL => (e.g, st(a[1], RUNNABLE), st(a[1].wrapping_add(1), RUNNING)),
        GO_START_LOCAL => (e.g, st(NOSEQ, RUNNABLE), st(SEQINC, RUNNING)),
        GO_BLOCK | GO_BLOCK_SEND | GO_BLOCK_RECV | GO_BLOCK_SELECT | GO_BLOCK_SYNC
        | GO_BLOCK_COND | GO_BLOCK_NET | GO_SLEEP | GO_SYS_BLOCK | GO_BLOCK_GC => {
            (e.g, st(NOSEQ, RUNNING), st(NOSEQ, WAITING))
        }
        GO_SCHED | GO_PREEMPT => (e.g, st(NOSEQ, RUNNING), st(NOSEQ, RUNNABLE)),
        GO_UNBLOCK | GO_SYS_EXIT => (a[0], st(a[1], WAITING), st(a[1].wrapping_add(1), RUNNABLE)),
        GO_UNBLOCK_LOCAL | GO_SYS_EXIT_LOCAL => (a[0], st(NOSEQ, WAITING), st(SEQINC, RUNNABLE)),
        GC_START => (GC, st(a[0], DEAD), st(a[0].wrapping_add(1), DEAD)),
        _ => return None,
    })
}

fn ready(cur: GSeq, init: GSeq) -> bool {
    (init.seq == NOSEQ || init.seq == cur.seq) && init.status == cur.status
}

/// The streams whose next event may be taken, as a binary min-heap on time. Equal
/// times are common (coarse ticks); they are broken exactly the way Go's old reader's
/// heap breaks them, so both readers produce the same order.
#[derive(Default)]
struct Frontier {
    heap: Vec<(i64, usize)>,
}

impl Frontier {
    fn push(&mut self, ts: i64, stream: usize) {
        let h = &mut self.heap;
        h.push((ts, stream));
        let mut j = h.len() - 1;
        while j > 0 {
            let i = (j - 1) / 2;
            if h[j].0 >= h[i].0 {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    }

    /// The earliest time in the heap.
    fn min(&self) -> Option<i64> {
        self.heap.first().map(|h| h.0)
    }

    fn pop(&mut self) -> Option<usize> {
        let h = &mut self.heap;
        let n = h.len().checked_sub(1)?;
        h.swap(0, n);
        let mut i = 0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && h[j1 + 1].0 < h[j1].0 {
                j = j1 + 1;
            }
            if h[j].0 >= h[i].0 {
                break;
            }
            h.swap(i, j);
            i = j;
        }
        h.pop().map(|(_, s)| s)
    }
}

/// The index the next event will have in the event array.
fn index(all: &[V1Event], off: usize) -> Result<u32> {
    u32::try_from(all.len())
        .map_err(|_| malformed(off, "more than 2^32 events: too large for this reader"))
}

/// Merge the Ps' streams: repeatedly take, among the Ps' next events whose goroutine
/// is in the state they need, the earliest one. Correct even where clocks disagree.
/// Returns that order, as indexes into `events`.
///
/// `lenient` is for a trace cut short, where an event may wait on one that was lost
/// (an unblock from the buffer without a P, written at the end): once no event that
/// can be taken is earlier, such an event is taken anyway, at its own time.
fn merge(events: &[V1Event], streams: &[&[u32]], lenient: bool) -> Result<Vec<u32>> {
    let mut next = vec![0usize; streams.len()];
    let mut waiting: Vec<usize> = (0..streams.len()).collect();
    let mut frontier = Frontier::default();
    let mut gs: IdMap<u64, GSeq> = IdMap::default();
    let mut order: Vec<u32> = Vec::with_capacity(events.len());
    loop {
        let mut i = 0;
        // The earliest next event that is not ready: (time, stream).
        let mut stuck: Option<(i64, usize)> = None;
        while i < waiting.len() {
            let s = waiting[i];
            let Some(&k) = streams[s].get(next[s]) else {
                waiting.swap_remove(i);
                continue;
            };
            let e = &events[k as usize];
            let ok = match transition_of(e) {
                None => true,
                Some((g, init, _)) => ready(gs.get(&g).copied().unwrap_or_default(), init),
            };
            if ok {
                frontier.push(e.ts, s);
                waiting.swap_remove(i);
            } else {
                if stuck.is_none_or(|(t, _)| e.ts < t) {
                    stuck = Some((e.ts, s));
                }
                i += 1;
            }
        }
        let forced = match stuck {
            Some((t, s)) if lenient && frontier.min().is_none_or(|m| t < m) => Some(s),
            _ => None,
        };
        let s = match forced.or_else(|| frontier.pop()) {
            Some(s) => s,
            None => {
                if let Some((_, s)) = stuck {
                    let e = &events[streams[s][next[s]] as usize];
                    return Err(inconsistent(
                        e.off.into(),
                        format!(
                            "no consistent ordering of events possible (stuck at {} on P {})",
                            name(e.typ),
                            e.p
                        ),
                    ));
                }
                break;
            }
        };
        let k = streams[s][next[s]];
        next[s] += 1;
        let e = &events[k as usize];
        if let Some((g, init, mut to)) = transition_of(e) {
            let cur = gs.get(&g).copied().unwrap_or_default();
            if !ready(cur, init) && !lenient {
                return Err(inconsistent(
                    e.off.into(),
                    format!("impossible goroutine state transition at {}", name(e.typ)),
                ));
            }
            to.seq = match to.seq {
                NOSEQ => cur.seq,
                SEQINC => cur.seq.wrapping_add(1),
                n => n,
            };
            gs.insert(g, to);
        }
        order.push(k);
        // A forced stream never left the waiting list.
        if forced.is_none() {
            waiting.push(s);
        }
    }
    // (In a cut trace, times of events taken anyway may disagree; they are stamped in
    // order when converted.)
    if !lenient
        && let Some(w) = order
            .windows(2)
            .find(|w| events[w[1] as usize].ts < events[w[0] as usize].ts)
    {
        return Err(inconsistent(
            events[w[1] as usize].off.into(),
            "time stamps out of order",
        ));
    }
    Ok(order)
}

/// A syscall exit is written after the fact, carrying when it really happened: move it
/// there (keeping the order of equal times).
/// `lenient` (a trace cut short): an exit whose block was lost stays where it is.
fn fix_syscall_exits(events: &mut [V1Event], order: &mut [u32], lenient: bool) -> Result<()> {
    let mut last_block: IdMap<u64, i64> = IdMap::default();
    let mut moved = Vec::new();
    for (i, &k) in order.iter().enumerate() {
        let e = &mut events[k as usize];
        match e.typ {
            GO_SYS_BLOCK | GO_IN_SYSCALL => {
                last_block.insert(e.g, e.ts);
            }
            GO_SYS_EXIT => {
                let ts = e.args[2] as i64;
                if ts == 0 {
                    continue;
                }
                let block = last_block.get(&e.g).copied().unwrap_or(0);
                if lenient && (block == 0 || ts < block) {
                    continue;
                }
                if block == 0 {
                    return Err(inconsistent(e.off.into(), "stray syscall exit"));
                }
                if ts < block {
                    return Err(inconsistent(
                        e.off.into(),
                        "time stamps out of order (syscall exit before its block)",
                    ));
                }
                if ts != e.ts {
                    e.ts = ts;
                    moved.push(i);
                }
            }
            _ => {}
        }
    }
    restore_order(order, &moved, |k| events[k as usize].ts);
    Ok(())
}

/// Put `items` back in time order after the items at `moved` (ascending positions)
/// changed their times, the others being still in order: the same result as a stable
/// sort by time, in linear time and with memory for the moved items only.
fn restore_order(items: &mut [u32], moved: &[usize], ts: impl Fn(u32) -> i64) {
    let (n, m) = (items.len(), moved.len());
    if m == 0 {
        return;
    }
    let mut taken: Vec<(u32, usize)> = moved.iter().map(|&i| (items[i], i)).collect();
    taken.sort_by_key(|&(k, i)| (ts(k), i));
    // Close the gaps: the others keep their order, at the front.
    let (mut w, mut k) = (0, 0);
    for r in 0..n {
        if k < m && moved[k] == r {
            k += 1;
            continue;
        }
        items[w] = items[r];
        w += 1;
    }
    // Merge from the back; ties go by original position (as a stable sort has them).
    // `below` counts the moved items originally before the current one of the others.
    let (mut rest, mut left, mut below) = (n - m, m, m);
    for w in (0..n).rev() {
        let take_moved = left > 0 && {
            rest == 0 || {
                let u = rest - 1;
                while below > 0 && moved[below - 1] >= u + below {
                    below -= 1;
                }
                let (c, orig) = taken[left - 1];
                (ts(c), orig) > (ts(items[u]), u + below)
            }
        };
        if take_moved {
            left -= 1;
            items[w] = taken[left].0;
        } else {
            rest -= 1;
            items[w] = items[rest];
        }
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn restore_order_equals_a_stable_sort() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let n = 1 + (rnd() % 60) as usize;
            let mut times: Vec<i64> = (0..n).map(|i| i as i64 / 3).collect();
            let mut moved = Vec::new();
            for (i, t) in times.iter_mut().enumerate() {
                if rnd() % 4 == 0 {
                    *t = (rnd() % (n as u64 / 3 + 2)) as i64;
                    moved.push(i);
                }
            }
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by_key(|&k| times[k as usize]);
            let mut got: Vec<u32> = (0..n as u32).collect();
            restore_order(&mut got, &moved, |k| times[k as usize]);
            assert_eq!(got, want, "round {round}");
        }
    }
}

#[derive(Clone, Copy, Default)]
struct GDesc {
    state: u8,
    /// Type of the event that last changed how the goroutine waits (0: none).
    last: u8,
    /// The stack the goroutine was created with, until it first runs.
    create_stack: Option<u64>,
}

#[derive(Clone, Copy, Default)]
struct PDesc {
    running: bool,
    g: u64,
    sweeping: bool,
}

/// Check the merged stream is consistent (a P runs one goroutine at a time, a
/// goroutine is blocked before it is unblocked, ...) and fill in what the checks learn:
/// a goroutine's first start carries its creation stack, network unblocks go on the
/// netpoll pseudo-P, the GC on the GC pseudo-P.
///
/// Not `strict` (a trace cut short, whose lost events leave gaps), problems are passed
/// over. With `frames_lost`, stack IDs missing from the table are kept.
fn check(
    events: &mut [V1Event],
    order: &[u32],
    stacks: &IdMap<u32, Vec<u64>>,
    strict: bool,
    frames_lost: bool,
) -> Result<()> {
    let mut gs: IdMap<u64, GDesc> = IdMap::default();
    let mut ps: IdMap<i32, PDesc> = IdMap::default();
    let mut tasks: IdMap<u64, ()> = IdMap::default();
    let mut regions: IdMap<u64, Vec<(u64, u64)>> = IdMap::default();
    let mut marking: IdMap<u64, bool> = IdMap::default();
    let (mut in_gc, mut in_stw) = (false, false);
    gs.insert(
        0,
        GDesc {
            state: RUNNING,
            ..GDesc::default()
        },
    );
    for &k in order {
        let e = &mut events[k as usize];
        let at = u64::from(e.off);
        let what = name(e.typ);
        let err = |msg: String| -> Result<()> {
            if strict {
                return Err(inconsistent(at, msg));
            }
            Ok(())
        };
        let running = |p: &PDesc, g: &GDesc, e: &V1Event, allow_g0: bool| -> Result<()> {
            if g.state != RUNNING {
                err(format!("g {} is not running while {what}", e.g))?;
            }
            if p.g != e.g {
                err(format!("p {} is not running g {} while {what}", e.p, e.g))?;
            }
            if !allow_g0 && e.g == 0 {
                err(format!("g 0 did {what}"))?;
            }
            Ok(())
        };
        match e.typ {
            PROC_START => {
                let p = ps.entry(e.p).or_default();
                if p.running {
                    err(format!("p {} is running before start", e.p))?;
                }
                p.running = true;
            }
            PROC_STOP => {
                let p = ps.entry(e.p).or_default();
                if !p.running {
                    err(format!("p {} is not running before stop", e.p))?;
                }
                if p.g != 0 {
                    err(format!(
                        "p {} is running a goroutine {} during stop",
                        e.p, p.g
                    ))?;
                }
                p.running = false;
            }
            GC_START => {
                if in_gc {
                    err("previous GC is not ended before a new one".into())?;
                }
                in_gc = true;
                e.p = GC_P;
            }
            GC_DONE => {
                if !in_gc {
                    err("bogus GC end".into())?;
                }
                in_gc = false;
            }
            STW_START => {
                if in_stw {
                    err("previous STW is not ended before a new one".into())?;
                }
                in_stw = true;
            }
            STW_DONE => {
                if !in_stw {
                    err("bogus STW end".into())?;
                }
                in_stw = false;
            }
            GC_SWEEP_START => {
                let p = ps.entry(e.p).or_default();
                if p.sweeping {
                    err("previous sweeping is not ended before a new one".into())?;
                }
                p.sweeping = true;
            }
            GC_SWEEP_DONE => {
                let p = ps.entry(e.p).or_default();
                if !p.sweeping {
                    err("bogus sweeping end".into())?;
                }
                p.sweeping = false;
            }
            GC_MARK_ASSIST_START => {
                let m = marking.entry(e.g).or_default();
                if *m {
                    err("previous mark assist is not ended before a new one".into())?;
                }
                *m = true;
            }
            GC_MARK_ASSIST_DONE => {
                marking.insert(e.g, false);
            }
            GO_WAITING | GO_IN_SYSCALL => {
                let g = gs.entry(e.g).or_default();
                if g.state != RUNNABLE {
                    err(format!("g {} is not runnable before {what}", e.g))?;
                }
                g.state = WAITING;
                g.last = e.typ;
            }
            GO_CREATE => {
                let g = gs.get(&e.g).copied().unwrap_or_default();
                let p = ps.get(&e.p).copied().unwrap_or_default();
                running(&p, &g, e, true)?;
                if gs.contains_key(&e.args[0]) {
                    err(format!("g {} already exists", e.args[0]))?;
                }
                gs.insert(
                    e.args[0],
                    GDesc {
                        state: RUNNABLE,
                        last: e.typ,
                        create_stack: Some(e.args[1]),
                    },
                );
            }
            GO_START | GO_START_LABEL => {
                let g = gs.entry(e.g).or_default();
                let p = ps.entry(e.p).or_default();
                if g.state != RUNNABLE {
                    err(format!("g {} is not runnable before start", e.g))?;
                }
                if p.g != 0 {
                    err(format!(
                        "p {} is already running g {} while start g {}",
                        e.p, p.g, e.g
                    ))?;
                }
                g.state = RUNNING;
                p.g = e.g;
                if let Some(s) = g.create_stack.take() {
                    e.stk = s as u32;
                }
                g.last = 0;
            }
            GO_END | GO_STOP | GO_SCHED | GO_PREEMPT | GO_SYS_BLOCK | GO_SLEEP | GO_BLOCK
            | GO_BLOCK_SEND | GO_BLOCK_RECV | GO_BLOCK_SELECT | GO_BLOCK_SYNC | GO_BLOCK_COND
            | GO_BLOCK_NET | GO_BLOCK_GC | GO_SYS_CALL => {
                let g = gs.entry(e.g).or_default();
                let p = ps.entry(e.p).or_default();
                running(p, g, e, false)?;
                match e.typ {
                    GO_SYS_CALL => g.last = e.typ,
                    GO_END | GO_STOP => {
                        g.state = DEAD;
                        p.g = 0;
                        if e.typ == GO_END {
                            regions.remove(&e.g);
                        }
                    }
                    GO_SCHED | GO_PREEMPT => {
                        g.state = RUNNABLE;
                        g.last = e.typ;
                        p.g = 0;
                    }
                    GO_SYS_BLOCK => {
                        g.state = WAITING;
                        p.g = 0;
                    }
                    _ => {
                        g.state = WAITING;
                        g.last = e.typ;
                        p.g = 0;
                    }
                }
            }
            GO_UNBLOCK => {
                let g = gs.get(&e.g).copied().unwrap_or_default();
                let p = ps.get(&e.p).copied().unwrap_or_default();
                if g.state != RUNNING {
                    err(format!("g {} is not running while unpark", e.g))?;
                }
                if e.p != TIMER_P && p.g != e.g {
                    err(format!("p {} is not running g {} while unpark", e.p, e.g))?;
                }
                let g1 = gs.entry(e.args[0]).or_default();
                if g1.state != WAITING {
                    err(format!("g {} is not waiting before unpark", e.args[0]))?;
                }
                if g1.last == GO_BLOCK_NET {
                    e.p = NETPOLL_P;
                }
                g1.state = RUNNABLE;
                g1.last = e.typ;
            }
            GO_SYS_EXIT => {
                let g = gs.entry(e.g).or_default();
                if g.state != WAITING {
                    err(format!("g {} is not waiting during syscall exit", e.g))?;
                }
                g.state = RUNNABLE;
                g.last = e.typ;
            }
            USER_TASK_CREATE => {
                let fresh = tasks.insert(e.args[0], ()).is_none();
                if !fresh {
                    err(format!("task id conflicts (id:{})", e.args[0]))?;
                }
            }
            USER_TASK_END => {
                tasks.remove(&e.args[0]);
            }
            USER_REGION => {
                let stack = regions.entry(e.g).or_default();
                match e.args[1] {
                    0 => stack.push((e.args[0], e.args[2])),
                    1 => {
                        if let Some(&(task, typ)) = stack.last() {
                            if task != e.args[0] || typ != e.args[2] {
                                err(format!(
                                    "misuse of region in goroutine {}: the end does not match the innermost active region",
                                    e.g
                                ))?;
                            }
                            stack.pop();
                        }
                    }
                    m => err(format!("invalid user region mode {m}"))?,
                }
            }
            _ => {}
        }
        if e.stk != 0 && !frames_lost && stacks.get(&e.stk).is_none_or(Vec::is_empty) {
            e.stk = 0;
        }
    }
    Ok(())
}
