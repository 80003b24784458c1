//! Per-goroutine summary, computed while the ordered stream goes by (no events kept).
//!
//! For every goroutine: when and by whom it was created (and at which stack), how long
//! it spent running, runnable, blocked (by reason) and in syscalls, the state it was in
//! at the end and since when, and where it last blocked and who last woke it.
//! Durations count closed intervals only (state entered and left within the trace); the
//! open interval at the end is described by `state` and `since`.

use crate::event::{Event, NONE_ID, gstate, kind, scope};
use crate::facts::{Facts, FactsTable};
use crate::fasthash::IdMap;

/// What gopark knows about each goroutine, one column per fact (row i of every
/// column is the i-th goroutine seen). Columns, so they can be handed to numpy as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoTable {
    pub id: Vec<i64>,
    /// Creation time; -1 if it existed when the trace started.
    pub created: Vec<i64>,
    /// Goroutine that created it (-1: none or unknown).
    pub creator: Vec<i64>,
    /// Where it was created: the creator's stack at the `go` statement (0: unknown).
    pub create_stack: Vec<u32>,
    /// Its start stack: the function it runs (from the creation event; 0: unknown).
    pub start_stack: Vec<u32>,
    /// Time of the first event that mentions it.
    pub first_seen: Vec<i64>,
    /// First time it was seen running (-1: never).
    pub first_run: Vec<i64>,
    /// Time it exited (-1: still alive at the end).
    pub ended: Vec<i64>,
    /// State at the end of the trace ([`gstate`]); NOT_EXIST if it exited.
    pub state: Vec<u8>,
    /// When it entered `state`.
    pub since: Vec<i64>,
    pub running_ns: Vec<i64>,
    pub runnable_ns: Vec<i64>,
    pub syscall_ns: Vec<i64>,
    pub blocked_ns: Vec<i64>,
    /// The part of runnable_ns / syscall_ns before the first run (start-up latency).
    pub start_runnable_ns: Vec<i64>,
    pub start_syscall_ns: Vec<i64>,
    /// Reason, stack and time of the last block (0 / 0 / -1 if it never blocked; for
    /// a goroutine blocked since before the trace: reason 0, time -1, its status stack).
    pub block_reason: Vec<u32>,
    pub block_stack: Vec<u32>,
    pub block_time: Vec<i64>,
    /// Who last made it runnable from a block, and that goroutine's stack.
    pub unblocker: Vec<i64>,
    pub unblock_stack: Vec<u32>,
    /// The last transition stack seen for it.
    pub last_stack: Vec<u32>,
    /// Number of state transitions seen.
    pub transitions: Vec<u32>,
}

impl GoTable {
    pub fn len(&self) -> usize {
        self.id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    fn push(&mut self, id: i64, t: i64) -> usize {
        self.id.push(id);
        self.created.push(-1);
        self.creator.push(NONE_ID);
        self.create_stack.push(0);
        self.start_stack.push(0);
        self.first_seen.push(t);
        self.first_run.push(-1);
        self.ended.push(-1);
        self.state.push(gstate::UNDETERMINED);
        self.since.push(t);
        self.running_ns.push(0);
        self.runnable_ns.push(0);
        self.syscall_ns.push(0);
        self.blocked_ns.push(0);
        self.start_runnable_ns.push(0);
        self.start_syscall_ns.push(0);
        self.block_reason.push(0);
        self.block_stack.push(0);
        self.block_time.push(-1);
        self.unblocker.push(NONE_ID);
        self.unblock_stack.push(0);
        self.last_stack.push(0);
        self.transitions.push(0);
        self.id.len() - 1
    }
}

/// Whole-trace counters gathered alongside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceCounts {
    pub events: u64,
    pub transitions: u64,
    pub cpu_samples: u64,
    pub gc_cycles: u64,
    pub stw_pauses: u64,
    pub stw_ns: i64,
    pub first_time: i64,
    pub last_time: i64,
    /// Events per kind (index = [`kind`] value).
    pub by_kind: [u64; 15],
}

/// Accumulates the summary over the ordered stream.
#[derive(Default)]
pub struct Summarizer {
    index: RowIndex,
    pub goroutines: GoTable,
    /// Closed blocked time per goroutine and reason: per row, a short list.
    reasons: Vec<ReasonTime>,
    reason_head: Vec<u32>,
    pub counts: TraceCounts,
    stw_start: IdMap<i64, i64>,
    /// Step 2's facts, gathered in the same pass when asked for.
    facts: Option<Facts>,
}

/// Blocked time for one (goroutine, reason); `next` links the goroutine's entries.
#[derive(Debug, Clone, Copy)]
struct ReasonTime {
    row: u32,
    reason: u32,
    ns: i64,
    next: u32,
}

const NO_ROW: u32 = u32::MAX;
const PAGE_BITS: u32 = 12;

/// Goroutine ID -> summary row. Go hands out goroutine IDs nearly in order, so a paged
/// array (pages made on first use) beats a hash map here; odd IDs go to a map.
#[derive(Default)]
struct RowIndex {
    pages: Vec<Option<Box<[u32]>>>,
    /// Pages made so far; capped relative to the rows so that scattered IDs (a damaged
    /// or hostile trace) cannot make a page per event.
    page_count: usize,
    other: IdMap<i64, u32>,
}

impl RowIndex {
    /// Most pages the array may have (IDs up to 2^32).
    const MAX_PAGES: usize = 1 << (32 - PAGE_BITS);

    fn get(&self, id: i64) -> Option<u32> {
        let page = (id as u64 >> PAGE_BITS) as usize;
        if let Some(Some(p)) = self.pages.get(page).filter(|_| id >= 0) {
            let row = p[(id as usize) & ((1 << PAGE_BITS) - 1)];
            if row != NO_ROW {
                return Some(row);
            }
        }
        // Also where an ID lands whose page was not affordable when it was first seen.
        self.other.get(&id).copied()
    }

    fn insert(&mut self, id: i64, row: u32) {
        let page = (id as u64 >> PAGE_BITS) as usize;
        let have = self.pages.get(page).is_some_and(Option::is_some);
        // A new page only while pages stay within ~1/8 occupancy of the rows.
        let affordable = self.page_count << PAGE_BITS <= 8 * (row as usize) + (1 << 16);
        if id < 0 || page >= Self::MAX_PAGES || !(have || affordable) {
            self.other.insert(id, row);
            return;
        }
        if self.pages.len() <= page {
            self.pages.resize_with(page + 1, || None);
        }
        if !have {
            self.page_count += 1;
        }
        let p =
            self.pages[page].get_or_insert_with(|| vec![NO_ROW; 1 << PAGE_BITS].into_boxed_slice());
        p[(id as usize) & ((1 << PAGE_BITS) - 1)] = row;
    }
}

impl Summarizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also gather the facts of [`crate::facts`] (before the first event).
    pub fn collect_facts(&mut self) {
        self.facts = Some(Facts::new());
    }

    /// The facts gathered so far (once; None if not asked for).
    pub fn take_facts(&mut self) -> Option<FactsTable> {
        let end = self.counts.last_time;
        self.facts.take().map(|f| f.finish(end))
    }

    /// Feed the next event of the stream.
    pub fn event(&mut self, e: &Event) {
        if let Some(f) = self.facts.as_mut() {
            f.proc(e.p);
        }
        let c = &mut self.counts;
        if c.events == 0 {
            c.first_time = e.time;
        }
        c.events += 1;
        c.last_time = e.time;
        c.by_kind[(e.kind as usize).min(14)] += 1;
        match e.kind {
            kind::STATE_TRANSITION if e.scope == scope::GOROUTINE => self.transition(e),
            kind::STACK_SAMPLE => c.cpu_samples += 1,
            kind::RANGE_BEGIN if e.typ == crate::spec::ev::GC_BEGIN => c.gc_cycles += 1,
            kind::RANGE_BEGIN if e.typ == crate::spec::ev::STW_BEGIN => {
                c.stw_pauses += 1;
                self.stw_start.insert(e.g, e.time);
            }
            kind::RANGE_END if e.typ == crate::spec::ev::STW_END => {
                if let Some(t) = self.stw_start.remove(&e.g) {
                    c.stw_ns = c.stw_ns.wrapping_add(e.time.wrapping_sub(t));
                }
            }
            _ => {}
        }
    }

    fn transition(&mut self, e: &Event) {
        self.counts.transitions += 1;
        let t = e.time;
        let c = &mut self.goroutines;
        let i = match self.index.get(e.resource) {
            Some(i) => i as usize,
            None => {
                let i = c.push(e.resource, t);
                self.index.insert(e.resource, i as u32);
                self.reason_head.push(NO_ROW);
                i
            }
        };
        if let Some(f) = self.facts.as_mut() {
            f.transition(i, e);
        }
        c.transitions[i] = c.transitions[i].wrapping_add(1);
        if e.tstack != 0 {
            c.last_stack[i] = e.tstack;
        }
        if e.from == e.to {
            return;
        }
        if e.from == gstate::UNDETERMINED && e.to == gstate::WAITING {
            // Blocked since before the trace: the reason is unknown, the stack may be.
            c.block_stack[i] = e.tstack;
        }
        // Wrapping: times in a damaged trace can be absurd; never panic on them.
        let d = t.wrapping_sub(c.since[i]);
        let before_first_run = c.first_run[i] < 0;
        match e.from {
            gstate::NOT_EXIST => {
                c.created[i] = t;
                c.creator[i] = e.g;
                c.create_stack[i] = e.stack;
                c.start_stack[i] = e.tstack;
            }
            gstate::RUNNING => c.running_ns[i] = c.running_ns[i].wrapping_add(d),
            gstate::RUNNABLE => {
                c.runnable_ns[i] = c.runnable_ns[i].wrapping_add(d);
                if before_first_run {
                    c.start_runnable_ns[i] = c.start_runnable_ns[i].wrapping_add(d);
                }
            }
            gstate::SYSCALL => {
                c.syscall_ns[i] = c.syscall_ns[i].wrapping_add(d);
                if before_first_run {
                    c.start_syscall_ns[i] = c.start_syscall_ns[i].wrapping_add(d);
                }
            }
            gstate::WAITING => {
                c.blocked_ns[i] = c.blocked_ns[i].wrapping_add(d);
                add_reason(
                    &mut self.reasons,
                    &mut self.reason_head,
                    i,
                    c.block_reason[i],
                    d,
                );
                if e.to == gstate::RUNNABLE {
                    c.unblocker[i] = e.g;
                    c.unblock_stack[i] = e.stack;
                }
            }
            _ => {}
        }
        match e.to {
            gstate::RUNNING if before_first_run => c.first_run[i] = t,
            gstate::WAITING => {
                c.block_reason[i] = e.name;
                c.block_stack[i] = e.tstack;
                c.block_time[i] = t;
            }
            gstate::NOT_EXIST => c.ended[i] = t,
            _ => {}
        }
        c.state[i] = e.to;
        c.since[i] = t;
    }

    /// Blocked time by reason as (row, reason, ns) triples, sorted by row then reason.
    pub fn reasons(&self) -> Vec<(u32, u32, i64)> {
        let mut v: Vec<_> = self
            .reasons
            .iter()
            .map(|r| (r.row, r.reason, r.ns))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Add `d` to goroutine `row`'s time blocked for `reason`.
fn add_reason(list: &mut Vec<ReasonTime>, head: &mut [u32], row: usize, reason: u32, d: i64) {
    let mut at = head[row];
    while at != NO_ROW {
        let r = &mut list[at as usize];
        if r.reason == reason {
            r.ns = r.ns.wrapping_add(d);
            return;
        }
        at = r.next;
    }
    list.push(ReasonTime {
        row: row as u32,
        reason,
        ns: d,
        next: head[row],
    });
    head[row] = (list.len() - 1) as u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_index_pages_stay_bounded_for_scattered_ids() {
        let mut ix = RowIndex::default();
        for row in 0..100_000u32 {
            let id = (row as i64) << 20; // a new page for every goroutine
            ix.insert(id, row);
            assert_eq!(ix.get(id), Some(row));
        }
        assert!(
            ix.page_count <= 8 * 100_000 / 4096 + 17,
            "{} pages",
            ix.page_count
        );
        let mut dense = RowIndex::default();
        for row in 0..100_000u32 {
            dense.insert(row as i64 + 1, row);
        }
        assert!(dense.other.is_empty());
        assert_eq!(dense.get(5), Some(4));
        assert_eq!(dense.get(-3), None);
    }

    fn tr(time: i64, g: i64, id: i64, from: u8, to: u8, name: u32) -> Event {
        Event {
            time,
            kind: kind::STATE_TRANSITION,
            scope: scope::GOROUTINE,
            g,
            resource: id,
            from,
            to,
            name,
            ..Event::default()
        }
    }

    #[test]
    fn accounts_each_state() {
        let mut s = Summarizer::new();
        s.event(&tr(10, 1, 7, gstate::NOT_EXIST, gstate::RUNNABLE, 0));
        s.event(&tr(15, -1, 7, gstate::RUNNABLE, gstate::RUNNING, 0));
        s.event(&tr(25, 7, 7, gstate::RUNNING, gstate::WAITING, 3));
        s.event(&tr(65, 2, 7, gstate::WAITING, gstate::RUNNABLE, 0));
        s.event(&tr(70, -1, 7, gstate::RUNNABLE, gstate::RUNNING, 0));
        s.event(&tr(71, 7, 7, gstate::RUNNING, gstate::WAITING, 4));
        let g = &s.goroutines;
        assert_eq!((g.created[0], g.creator[0], g.first_run[0]), (10, 1, 15));
        assert_eq!((g.running_ns[0], g.runnable_ns[0]), (11, 10));
        assert_eq!((g.start_runnable_ns[0], g.blocked_ns[0]), (5, 40));
        assert_eq!(s.reasons(), vec![(0, 3, 40)]);
        assert_eq!((g.state[0], g.since[0]), (gstate::WAITING, 71));
        assert_eq!((g.block_reason[0], g.unblocker[0]), (4, 2));
    }
}
