//! Per-goroutine summary, computed while the ordered stream goes by (no events kept).
//!
//! For every goroutine: when and by whom it was created (and at which stack), how long
//! it spent running, runnable, blocked (by reason) and in syscalls, the state it was in
//! at the end and since when, and where it last blocked and who last woke it.
//! Durations count closed intervals only (state entered and left within the trace); the
//! open interval at the end is described by `state` and `since`.

use crate::event::{Event, NONE_ID, gstate, kind, scope};
use crate::fasthash::IdMap;

/// What gopark knows about one goroutine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoSummary {
    pub id: i64,
    /// Creation time; -1 if it existed when the trace started.
    pub created: i64,
    /// Goroutine that created it (-1: none or unknown).
    pub creator: i64,
    /// Where it was created: the creator's stack at the `go` statement (0: unknown).
    pub create_stack: u32,
    /// Its start stack: the function it runs (from the creation event; 0: unknown).
    pub start_stack: u32,
    /// Time of the first event that mentions it.
    pub first_seen: i64,
    /// First time it was seen running (-1: never).
    pub first_run: i64,
    /// Time it exited (-1: still alive at the end).
    pub ended: i64,
    /// State at the end of the trace ([`gstate`]); NOT_EXIST if it exited.
    pub state: u8,
    /// When it entered `state`.
    pub since: i64,
    pub running_ns: i64,
    pub runnable_ns: i64,
    pub syscall_ns: i64,
    pub blocked_ns: i64,
    /// The part of runnable_ns / syscall_ns before the first run (start-up latency).
    pub start_runnable_ns: i64,
    pub start_syscall_ns: i64,
    /// Closed blocked time per reason (catalog string ID, ns).
    pub blocked_by_reason: Vec<(u32, i64)>,
    /// Reason, stack and time of the last block (0 / 0 / -1 if it never blocked; for
    /// a goroutine blocked since before the trace: reason 0, time -1, its status stack).
    pub block_reason: u32,
    pub block_stack: u32,
    pub block_time: i64,
    /// Who last made it runnable from a block, and that goroutine's stack.
    pub unblocker: i64,
    pub unblock_stack: u32,
    /// Innermost-known stack: the last transition stack seen for it.
    pub last_stack: u32,
    /// Number of state transitions seen.
    pub transitions: u64,
}

impl GoSummary {
    fn new(id: i64, t: i64) -> Self {
        GoSummary {
            id,
            created: -1,
            creator: NONE_ID,
            first_seen: t,
            first_run: -1,
            ended: -1,
            since: t,
            block_time: -1,
            unblocker: NONE_ID,
            ..GoSummary::default()
        }
    }

    fn add_blocked(&mut self, reason: u32, d: i64) {
        self.blocked_ns = self.blocked_ns.wrapping_add(d);
        match self
            .blocked_by_reason
            .iter_mut()
            .find(|(r, _)| *r == reason)
        {
            Some((_, t)) => *t = t.wrapping_add(d),
            None => self.blocked_by_reason.push((reason, d)),
        }
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
    index: IdMap<i64, usize>,
    pub goroutines: Vec<GoSummary>,
    pub counts: TraceCounts,
    stw_start: IdMap<i64, i64>,
}

impl Summarizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next event of the stream.
    pub fn event(&mut self, e: &Event) {
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
        let id = e.resource;
        let t = e.time;
        let i = match self.index.get(&id) {
            Some(&i) => i,
            None => {
                self.goroutines.push(GoSummary::new(id, t));
                self.index.insert(id, self.goroutines.len() - 1);
                self.goroutines.len() - 1
            }
        };
        let g = &mut self.goroutines[i];
        g.transitions += 1;
        if e.tstack != 0 {
            g.last_stack = e.tstack;
        }
        if e.from == e.to {
            return;
        }
        if e.from == gstate::UNDETERMINED && e.to == gstate::WAITING {
            // Blocked since before the trace: the reason is unknown, the stack may be.
            g.block_stack = e.tstack;
        }
        // Wrapping: times in a damaged trace can be absurd; never panic on them.
        let d = t.wrapping_sub(g.since);
        match e.from {
            gstate::NOT_EXIST => {
                g.created = t;
                g.creator = e.g;
                g.create_stack = e.stack;
                g.start_stack = e.tstack;
            }
            gstate::RUNNING => g.running_ns = g.running_ns.wrapping_add(d),
            gstate::RUNNABLE => {
                g.runnable_ns = g.runnable_ns.wrapping_add(d);
                if g.first_run < 0 {
                    g.start_runnable_ns = g.start_runnable_ns.wrapping_add(d);
                }
            }
            gstate::SYSCALL => {
                g.syscall_ns = g.syscall_ns.wrapping_add(d);
                if g.first_run < 0 {
                    g.start_syscall_ns = g.start_syscall_ns.wrapping_add(d);
                }
            }
            gstate::WAITING => {
                let r = g.block_reason;
                g.add_blocked(r, d);
                if e.to == gstate::RUNNABLE {
                    g.unblocker = e.g;
                    g.unblock_stack = e.stack;
                }
            }
            _ => {}
        }
        match e.to {
            gstate::RUNNING if g.first_run < 0 => g.first_run = t,
            gstate::WAITING => {
                g.block_reason = e.name;
                g.block_stack = e.tstack;
                g.block_time = t;
            }
            gstate::NOT_EXIST => g.ended = t,
            _ => {}
        }
        g.state = e.to;
        g.since = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let g = &s.goroutines[0];
        assert_eq!((g.created, g.creator, g.first_run), (10, 1, 15));
        assert_eq!(
            (
                g.running_ns,
                g.runnable_ns,
                g.start_runnable_ns,
                g.blocked_ns
            ),
            (11, 10, 5, 40)
        );
        assert_eq!(g.blocked_by_reason, vec![(3, 40)]);
        assert_eq!(
            (g.state, g.since, g.block_reason, g.unblocker),
            (gstate::WAITING, 71, 4, 2)
        );
    }
}
