//! Merging a generation's per-thread event streams into one consistent order.
//!
//! Each thread's batches are already in order; across threads, events are merged by
//! timestamp, but only events the scheduler state machine (`order`) accepts are taken.
//! When the earliest event cannot go yet, the other threads' next events are tried in
//! time order. Tie-breaking between equal timestamps follows Go's reader (a binary
//! min-heap over the threads' next events, a stable sort on a stall), so the stream
//! equals what `go tool trace -d=parsed` prints. Times are made strictly increasing.

use crate::catalog::Catalog;
use crate::error::{ErrorKind, Result, TraceError};
use crate::event::{Event, kind};
use crate::generation::Generation;
use crate::order::{Ordering, Raw, lookup_stack};
use crate::spec::{self, Version, ev};
use crate::wire::uvarint;

/// Per wire event type: 1 + its arguments after the timestamp for timed events of the
/// trace's version, 0 for anything that may not appear in an event batch.
type Arity = [u8; 256];

fn arity(v: Version) -> Arity {
    let mut t = [0u8; 256];
    for (typ, slot) in t.iter_mut().enumerate() {
        if let Some(sp) = spec::spec(v, typ as u8).filter(|sp| sp.timed) {
            *slot = sp.args.len() as u8;
        }
    }
    t
}

/// Reads one thread's events, batch after batch.
struct Cursor {
    m: i64,
    thread: usize,
    batch: usize,
    off: usize,
    last_ts: i64,
    ev: Raw,
    /// File offset of `ev`.
    at: u64,
}

impl Cursor {
    /// Decode the thread's next event into `self.ev`; false when the thread is done.
    fn next(&mut self, g: &Generation, v: Version, arity: &Arity) -> Result<bool> {
        let batches = &g.threads[self.thread].1;
        while self.batch < batches.len() && batches[self.batch].data.len() == self.off {
            self.batch += 1;
            self.off = 0;
            self.last_ts = 0;
        }
        if self.batch == batches.len() {
            return Ok(false);
        }
        let b = &batches[self.batch];
        if self.last_ts == 0 {
            self.last_ts = g.ticks_to_ns(b.time);
        }
        let data = &b.data[self.off..];
        let at = b.data_offset + self.off as u64;
        let typ = data[0];
        let nargs = arity[typ as usize] as usize;
        if nargs == 0 {
            let msg = match spec::spec(v, typ) {
                Some(_) => format!(
                    "found event without a timestamp: type={typ} ({})",
                    spec::name(typ)
                ),
                None => format!("found invalid event type {typ}"),
            };
            return Err(TraceError::new(ErrorKind::Malformed, at, msg));
        }
        let mut n = 1;
        let bad = || {
            TraceError::new(
                ErrorKind::Malformed,
                at,
                format!("invalid or cut varint in {} event", spec::name(typ)),
            )
        };
        let (dt, k) = uvarint(&data[n..]).ok_or_else(bad)?;
        n += k;
        let mut args = [0u64; 4];
        for slot in args.iter_mut().take(nargs - 1) {
            let (x, k) = uvarint(&data[n..]).ok_or_else(bad)?;
            *slot = x;
            n += k;
        }
        let time = g.ticks_to_ns(dt).wrapping_add(self.last_ts);
        self.last_ts = time;
        self.off += n;
        self.ev = Raw { typ, time, args };
        self.at = at;
        Ok(true)
    }

    fn offset(&self, _g: &Generation) -> u64 {
        self.at
    }
}

// A binary min-heap of cursors keyed by their next event's time (same shape as Go's, so
// equal times come out in the same order).
fn sift_up(h: &mut [Cursor], mut i: usize) -> usize {
    while i > 0 && h[(i - 1) / 2].ev.time > h[i].ev.time {
        h.swap((i - 1) / 2, i);
        i = (i - 1) / 2;
    }
    i
}

fn sift_down(h: &mut [Cursor], mut i: usize) {
    loop {
        let mut m = i;
        let mut t = if i < h.len() { h[i].ev.time } else { i64::MAX };
        for c in [2 * i + 1, 2 * i + 2] {
            if c < h.len() && h[c].ev.time < t {
                t = h[c].ev.time;
                m = c;
            }
        }
        if m == i {
            return;
        }
        h.swap(i, m);
        i = m;
    }
}

fn heap_update(h: &mut [Cursor], i: usize) {
    if sift_up(h, i) == i {
        sift_down(h, i);
    }
}

fn heap_remove(h: &mut Vec<Cursor>, mut i: usize) {
    while i > 0 {
        h.swap((i - 1) / 2, i);
        i = (i - 1) / 2;
    }
    let last = h.len() - 1;
    h.swap(0, last);
    h.pop();
    sift_down(h, 0);
}

/// Orders whole generations, carrying scheduler state from one to the next.
pub struct Orderer {
    pub order: Ordering,
    version: Version,
    arity: Arity,
    last_time: i64,
    syncs: i64,
}

impl Orderer {
    pub fn new(version: Version, catalog: &mut Catalog) -> Self {
        Orderer {
            order: Ordering::new(catalog),
            version,
            arity: arity(version),
            last_time: 0,
            syncs: 0,
        }
    }

    /// Stamp `e` with a time strictly after the previous event and append it.
    fn emit(&mut self, mut e: Event, out: &mut impl FnMut(&Event)) {
        if e.time <= self.last_time {
            e.time = self.last_time.wrapping_add(1);
        }
        self.last_time = e.time;
        out(&e);
    }

    fn sync(&mut self, time: i64, genno: u64, out: &mut impl FnMut(&Event)) {
        self.syncs += 1;
        self.emit(Event::sync_marker(time, self.syncs, genno), out);
    }

    /// The final Sync that closes the stream.
    pub fn finish(&mut self, out: &mut impl FnMut(&Event)) {
        let t = self.last_time;
        self.sync(t, 0, out);
    }

    /// Time of the last event emitted.
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// Order generation `g`, passing its events (starting with its Sync) to `out`.
    pub fn generation(
        &mut self,
        g: &Generation,
        cat: &mut Catalog,
        out: &mut impl FnMut(&Event),
    ) -> Result<()> {
        let v = self.version;
        self.sync(g.ticks_to_ns(g.min_ts), g.genno, out);
        let mut heap: Vec<Cursor> = Vec::with_capacity(g.threads.len());
        for (i, (m, _)) in g.threads.iter().enumerate() {
            let mut c = Cursor {
                m: *m,
                thread: i,
                batch: 0,
                off: 0,
                last_ts: 0,
                ev: Raw::default(),
                at: 0,
            };
            if c.next(g, v, &self.arity)? {
                heap.push(c);
                let last = heap.len() - 1;
                sift_up(&mut heap, last);
            }
        }
        let mut cpu = 0;
        loop {
            while let Some(e) = self.order.pop() {
                self.emit(e, out);
            }
            if heap.is_empty() && cpu == g.cpu_samples.len() {
                return Ok(());
            }
            if cpu < g.cpu_samples.len()
                && (heap.is_empty() || g.cpu_samples[cpu].time < heap[0].ev.time)
            {
                let s = g.cpu_samples[cpu];
                cpu += 1;
                let stack = lookup_stack(g, s.stack, ev::CPU_SAMPLE)
                    .map_err(|m| TraceError::new(ErrorKind::Malformed, g.end_offset, m))?;
                let e = Event {
                    time: s.time,
                    kind: kind::STACK_SAMPLE,
                    typ: ev::CPU_SAMPLE,
                    m: s.m,
                    p: s.p,
                    g: s.g,
                    stack,
                    ..Event::default()
                };
                self.emit(e, out);
                continue;
            }
            if !self.try_advance(&mut heap, 0, g, cat)? {
                // The earliest event must wait for another thread's; try them in time order.
                heap.sort_by_key(|c| c.ev.time);
                let mut ok = false;
                for i in 1..heap.len() {
                    if self.try_advance(&mut heap, i, g, cat)? {
                        ok = true;
                        break;
                    }
                }
                if !ok {
                    let c = &heap[0];
                    return Err(TraceError::new(
                        ErrorKind::Inconsistent,
                        c.offset(g),
                        format!(
                            "broken trace: no thread can advance in generation {} (earliest: {} on thread {} at {} ns)",
                            g.genno,
                            spec::name(c.ev.typ),
                            c.m,
                            c.ev.time
                        ),
                    ));
                }
            }
        }
    }

    fn try_advance(
        &mut self,
        heap: &mut Vec<Cursor>,
        i: usize,
        g: &Generation,
        cat: &mut Catalog,
    ) -> Result<bool> {
        let c = &heap[i];
        let raw = c.ev;
        let ok = self.order.advance(&raw, c.m, g, cat).map_err(|m| {
            TraceError::new(
                ErrorKind::Inconsistent,
                heap[i].offset(g),
                format!("{} event: {m}", spec::name(raw.typ)),
            )
        })?;
        if !ok {
            return Ok(false);
        }
        if heap[i].next(g, self.version, &self.arity)? {
            heap_update(heap, i);
        } else {
            heap_remove(heap, i);
        }
        Ok(true)
    }
}
