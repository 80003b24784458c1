//! Step 2's facts per goroutine, gathered in the summary's pass over the ordered stream.
//!
//! Per goroutine: its wakes (Waiting → Runnable; by no goroutine = timers and the
//! network poller), the first state it was seen in, and its closed runnable intervals.
//! For the program: every counted runnable interval (the scheduler latency), those
//! intervals by the stack that made the goroutine runnable, the waits by (stack,
//! reason), and the ended waits by (goroutine, stack).
//!
//! A goroutine's transitions are cut into runs of the same target state; a run ends at
//! the goroutine's next transition to another state. Runnable runs are counted as
//! `go tool trace -pprof=sched` counts them: a runnable status at the trace start opens
//! one too, the run that ends in a goroutine's first run in the window is left out (Go's
//! tool clips intervals to the time after that first run), and so are runs still open
//! at the end. A wait already going when the goroutine first showed up has no known
//! start: it counts as an ended wait of its goroutine, but not in its site's wait time
//! (nor do Go's blocking profiles count it).
//!
//! Memory follows the goroutines, wait sites and (goroutine, stack) pairs, plus 8 bytes
//! per counted runnable interval (kept for exact percentiles), never the events.

use crate::event::{Event, gstate};
use crate::fasthash::IdMap;

/// Per-goroutine columns; row i is the summary's row i (the same goroutine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoFacts {
    /// Waiting → Runnable transitions, and those made by no goroutine.
    pub wakes: Vec<i64>,
    pub runtime_wakes: Vec<i64>,
    /// Time of the first and the last wake (-1: never woken).
    pub first_wake: Vec<i64>,
    pub last_wake: Vec<i64>,
    /// The state of its first transition in the trace ([`gstate`]).
    pub first_state: Vec<u8>,
    /// Counted runnable intervals, and their total time.
    pub runnable_waits: Vec<i64>,
    pub runnable_ns: Vec<i64>,
}

/// Waits that began at one stack for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteTotals {
    /// Waits that began and ended in the window, and their total time.
    pub waits: i64,
    pub wait_ns: i64,
    /// Waits still going at the end, and their time up to the end.
    pub open_waits: i64,
    pub open_ns: i64,
}

/// Everything gathered, ready to hand out as columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactsTable {
    pub goroutines: GoFacts,
    /// Every counted runnable interval (ns), in stream order of their ends.
    pub latencies: Vec<i64>,
    /// (stack, intervals, ns) of runnable intervals by the stack of the event that made
    /// the goroutine runnable, sorted by stack.
    pub runnable_by_stack: Vec<(u32, i64, i64)>,
    /// (stack, reason string, totals): sites with ended waits first, each part sorted
    /// by (stack, reason).
    pub sites: Vec<(u32, u32, SiteTotals)>,
    /// (goroutine, stack, ended waits), sorted by goroutine then stack.
    pub wait_pairs: Vec<(i64, u32, i64)>,
    /// Distinct Ps seen on events.
    pub procs: usize,
}

/// The run a goroutine is in: its first transition's time, states, stack and reason;
/// and whether the goroutine was seen running yet.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: i64,
    from: u8,
    to: u8,
    stack: u32,
    name: u32,
    has_run: bool,
}

impl Run {
    fn opened_by(e: &Event, has_run: bool) -> Run {
        Run {
            start: e.time,
            from: e.from,
            to: e.to,
            stack: e.stack,
            name: e.name,
            has_run,
        }
    }
}

/// Accumulates the facts; fed by the summarizer, which owns the goroutine rows.
#[derive(Debug, Default)]
pub struct Facts {
    go: GoFacts,
    runs: Vec<Run>,
    latencies: Vec<i64>,
    by_stack: IdMap<u32, (i64, i64)>,
    sites: IdMap<(u32, u32), (i64, i64)>,
    pairs: IdMap<(i64, u32), i64>,
    procs: IdMap<i64, ()>,
    last_proc: Option<i64>,
}

impl Facts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Note the P an event ran on (any event kind).
    pub fn proc(&mut self, p: i64) {
        // Consecutive events mostly share a P: skip the map for those.
        if p >= 0 && self.last_proc != Some(p) {
            self.last_proc = Some(p);
            self.procs.insert(p, ());
        }
    }

    /// A goroutine state transition of summary row `row` (rows come in order: a row
    /// one past the last is a goroutine seen for the first time).
    pub fn transition(&mut self, row: usize, e: &Event) {
        if row >= self.runs.len() {
            self.push(e);
        }
        let g = &mut self.go;
        if e.from == gstate::WAITING && e.to == gstate::RUNNABLE {
            g.wakes[row] += 1;
            if e.g < 0 {
                g.runtime_wakes[row] += 1;
            }
            if g.wakes[row] == 1 {
                g.first_wake[row] = e.time;
            }
            g.last_wake[row] = e.time;
        }
        let open = self.runs[row];
        let first_run = e.to == gstate::RUNNING && !open.has_run;
        if open.to != e.to {
            self.close(row, e.resource, open, e.time, first_run);
            self.runs[row] = Run::opened_by(e, open.has_run || first_run);
        }
    }

    /// A row for a goroutine whose first transition is `e`.
    fn push(&mut self, e: &Event) {
        let g = &mut self.go;
        g.wakes.push(0);
        g.runtime_wakes.push(0);
        g.first_wake.push(-1);
        g.last_wake.push(-1);
        g.first_state.push(e.to);
        g.runnable_waits.push(0);
        g.runnable_ns.push(0);
        self.runs.push(Run::opened_by(e, e.to == gstate::RUNNING));
    }

    /// Account run `r` of goroutine `id` (row `row`), ended at time `end`.
    fn close(&mut self, row: usize, id: i64, r: Run, end: i64, ends_in_first_run: bool) {
        // Wrapping: times in a damaged trace can be absurd; never panic on them.
        let d = end.wrapping_sub(r.start);
        match r.to {
            gstate::RUNNABLE if !ends_in_first_run => {
                self.latencies.push(d);
                let g = &mut self.go;
                g.runnable_waits[row] += 1;
                g.runnable_ns[row] = g.runnable_ns[row].wrapping_add(d);
                add(self.by_stack.entry(r.stack).or_default(), d);
            }
            gstate::WAITING => {
                if r.from != gstate::UNDETERMINED {
                    add(self.sites.entry((r.stack, r.name)).or_default(), d);
                }
                *self.pairs.entry((id, r.stack)).or_default() += 1;
            }
            _ => {}
        }
    }

    /// The facts, with waits still open at `end_time` (the trace's last event) counted.
    pub fn finish(self, end_time: i64) -> FactsTable {
        let mut open: IdMap<(u32, u32), (i64, i64)> = IdMap::default();
        for r in self.runs.iter().filter(|r| r.to == gstate::WAITING) {
            add(
                open.entry((r.stack, r.name)).or_default(),
                end_time.wrapping_sub(r.start),
            );
        }
        let mut closed: Vec<_> = self.sites.into_iter().collect();
        closed.sort_unstable_by_key(|s| s.0);
        let mut sites: Vec<(u32, u32, SiteTotals)> = closed
            .into_iter()
            .map(|((stack, name), (waits, wait_ns))| {
                let (open_waits, open_ns) = open.remove(&(stack, name)).unwrap_or_default();
                let t = SiteTotals {
                    waits,
                    wait_ns,
                    open_waits,
                    open_ns,
                };
                (stack, name, t)
            })
            .collect();
        let mut open_only: Vec<_> = open.into_iter().collect();
        open_only.sort_unstable_by_key(|s| s.0);
        sites.extend(open_only.into_iter().map(|((stack, name), (n, ns))| {
            let t = SiteTotals {
                open_waits: n,
                open_ns: ns,
                ..SiteTotals::default()
            };
            (stack, name, t)
        }));
        let mut by_stack: Vec<_> = self
            .by_stack
            .into_iter()
            .map(|(s, (n, ns))| (s, n, ns))
            .collect();
        by_stack.sort_unstable();
        let mut pairs: Vec<_> = self
            .pairs
            .into_iter()
            .map(|((g, s), n)| (g, s, n))
            .collect();
        pairs.sort_unstable();
        FactsTable {
            goroutines: self.go,
            latencies: self.latencies,
            runnable_by_stack: by_stack,
            sites,
            wait_pairs: pairs,
            procs: self.procs.len(),
        }
    }
}

/// Count one more interval of `d` ns.
fn add(total: &mut (i64, i64), d: i64) {
    total.0 += 1;
    total.1 = total.1.wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{kind, scope};
    use crate::summary::Summarizer;
    use gstate::{NOT_EXIST, RUNNABLE, RUNNING, UNDETERMINED, WAITING};

    /// Goroutine `id`'s transition at `time`, made on goroutine `g` with stack `stack`.
    fn tr(time: i64, g: i64, id: i64, from: u8, to: u8, stack: u32, name: u32) -> Event {
        Event {
            time,
            kind: kind::STATE_TRANSITION,
            scope: scope::GOROUTINE,
            g,
            p: 0,
            resource: id,
            from,
            to,
            stack,
            name,
            ..Event::default()
        }
    }

    fn facts_of(events: &[Event]) -> FactsTable {
        let mut s = Summarizer::new();
        s.collect_facts();
        for e in events {
            s.event(e);
        }
        s.take_facts().expect("facts were asked for")
    }

    #[test]
    fn wakes_latency_and_waits_of_one_goroutine() {
        let f = facts_of(&[
            tr(10, 1, 7, NOT_EXIST, RUNNABLE, 2, 0),
            tr(15, -1, 7, RUNNABLE, RUNNING, 0, 0), // first run: its wait is not counted
            tr(25, 7, 7, RUNNING, WAITING, 9, 3),
            tr(65, 2, 7, WAITING, RUNNABLE, 11, 0),
            tr(70, -1, 7, RUNNABLE, RUNNING, 0, 0),
            tr(71, 7, 7, RUNNING, WAITING, 9, 4),
            tr(100, 1, 1, UNDETERMINED, RUNNING, 0, 0), // the trace's last event
        ]);
        let g = &f.goroutines;
        assert_eq!((g.wakes[0], g.runtime_wakes[0]), (1, 0));
        assert_eq!((g.first_wake[0], g.last_wake[0]), (65, 65));
        assert_eq!((g.first_state[0], g.first_state[1]), (RUNNABLE, RUNNING));
        assert_eq!((g.runnable_waits[0], g.runnable_ns[0]), (1, 5));
        assert_eq!(f.latencies, vec![5]);
        assert_eq!(f.runnable_by_stack, vec![(11, 1, 5)]);
        let closed = SiteTotals {
            waits: 1,
            wait_ns: 40,
            ..SiteTotals::default()
        };
        let open = SiteTotals {
            open_waits: 1,
            open_ns: 29,
            ..SiteTotals::default()
        };
        assert_eq!(f.sites, vec![(9, 3, closed), (9, 4, open)]);
        assert_eq!(f.wait_pairs, vec![(7, 9, 1)]);
        assert_eq!(f.procs, 1);
    }

    #[test]
    fn wait_from_before_the_trace_is_no_site_time() {
        let f = facts_of(&[
            tr(10, -1, 5, UNDETERMINED, WAITING, 4, 0),
            tr(20, -1, 5, WAITING, RUNNABLE, 0, 0), // woken by a timer
            tr(30, -1, 5, RUNNABLE, RUNNING, 0, 0),
            tr(40, 5, 5, RUNNING, WAITING, 4, 6),
            tr(45, -1, 5, WAITING, RUNNABLE, 0, 0),
            tr(47, -1, 5, RUNNABLE, RUNNING, 0, 0),
        ]);
        let g = &f.goroutines;
        assert_eq!((g.wakes[0], g.runtime_wakes[0]), (2, 2));
        assert_eq!((g.first_wake[0], g.last_wake[0]), (20, 45));
        assert_eq!(g.first_state[0], WAITING);
        // both waits ended at stack 4, only the second has a known start
        assert_eq!(f.wait_pairs, vec![(5, 4, 2)]);
        let site = SiteTotals {
            waits: 1,
            wait_ns: 5,
            ..SiteTotals::default()
        };
        assert_eq!(f.sites, vec![(4, 6, site)]);
        // the first run's wait is left out; the second wait to run counts
        assert_eq!(f.latencies, vec![2]);
    }

    #[test]
    fn runnable_at_the_start_and_repeated_states() {
        let f = facts_of(&[
            tr(0, -1, 3, UNDETERMINED, RUNNING, 0, 0),
            tr(10, 3, 3, RUNNING, RUNNABLE, 8, 0),  // preempted
            tr(12, 3, 3, RUNNABLE, RUNNABLE, 9, 0), // same state: the run goes on
            tr(30, -1, 3, RUNNABLE, RUNNING, 0, 0),
            tr(31, -1, 4, UNDETERMINED, RUNNABLE, 0, 0), // never runs: stays open
        ]);
        assert_eq!(f.latencies, vec![20]);
        assert_eq!(f.runnable_by_stack, vec![(8, 1, 20)]);
        let g = &f.goroutines;
        assert_eq!((g.runnable_waits[0], g.runnable_waits[1]), (1, 0));
        assert!(f.sites.is_empty() && f.wait_pairs.is_empty());
    }

    #[test]
    fn procs_counts_distinct_ps_and_no_facts_unless_asked() {
        let mut s = Summarizer::new();
        s.collect_facts();
        for p in [0, 0, 1, -1, 0, 2, 1] {
            s.event(&Event {
                p,
                ..Event::default()
            });
        }
        assert_eq!(s.take_facts().map(|f| f.procs), Some(3));
        assert_eq!(s.take_facts(), None);
        assert_eq!(Summarizer::new().take_facts(), None);
    }
}
