//! The scheduler state machine that decides whether an event may be taken yet.
//!
//! An event may only be taken when the state it requires holds: a goroutine may start
//! only after it became runnable, with the next sequence number; a P may be stolen only
//! while in a syscall; ... (`merge` asks, thread by thread). Taking an event updates
//! the state and turns the wire event into the model's [`Event`], with its state
//! transition resolved. The state machine doubles as a validator: contradictions are
//! errors (the trace is damaged or inconsistent).

use std::collections::VecDeque;

use crate::catalog::Catalog;
use crate::event::{Event, NO_TASK, NONE_ID, gstate, kind, pstate, scope};
use crate::fasthash::IdMap;
use crate::generation::Generation;
use crate::spec::{self, ev};

// Wire goroutine and proc statuses.
const WG_RUNNABLE: u8 = 1;
const WG_RUNNING: u8 = 2;
const WG_SYSCALL: u8 = 3;
const WG_WAITING: u8 = 4;
const WP_RUNNING: u8 = 1;
const WP_IDLE: u8 = 2;
const WP_SYSCALL: u8 = 3;
const WP_SYSCALL_ABANDONED: u8 = 4;

fn wire_g_to_state(s: u8) -> u8 {
    match s {
        WG_RUNNABLE => gstate::RUNNABLE,
        WG_RUNNING => gstate::RUNNING,
        WG_SYSCALL => gstate::SYSCALL,
        WG_WAITING => gstate::WAITING,
        _ => gstate::UNDETERMINED,
    }
}

fn wire_p_to_state(s: u8) -> u8 {
    match s {
        WP_RUNNING | WP_SYSCALL => pstate::RUNNING,
        WP_IDLE | WP_SYSCALL_ABANDONED => pstate::IDLE,
        _ => pstate::UNDETERMINED,
    }
}

/// An event as decoded from a batch (time already in ns, arguments after the time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw {
    pub typ: u8,
    pub time: i64,
    pub args: [u64; 4],
}

#[derive(Debug, Clone, Copy)]
struct Ctx {
    m: i64,
    p: i64,
    g: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Seq {
    genno: u64,
    n: u64,
}

impl Seq {
    /// The sequence number an event of generation `genno` carries in argument `i`.
    fn arg(raw: &Raw, i: usize, genno: u64) -> Seq {
        Seq {
            genno,
            n: raw.args[i],
        }
    }

    fn follows(self, prev: Seq) -> bool {
        self.genno == prev.genno && self.n == prev.n.wrapping_add(1)
    }
}

/// A time range bound to a goroutine or P: its begin event type and (for STW) kind.
type RangeKey = (u8, u32);

#[derive(Debug)]
struct GState {
    status: u8,
    seq: Seq,
    regions: Vec<(u64, u32)>,
    ranges: Vec<RangeKey>,
}

impl GState {
    /// A goroutine first seen in generation `genno`, with no regions or ranges open.
    fn new(status: u8, genno: u64) -> GState {
        GState {
            status,
            seq: Seq { genno, n: 0 },
            regions: Vec::new(),
            ranges: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct PState {
    status: u8,
    seq: Seq,
    ranges: Vec<RangeKey>,
}

#[derive(Debug, Clone, Copy)]
struct MState {
    g: i64,
    p: i64,
}

#[derive(PartialEq, Clone, Copy)]
enum Gc {
    Undetermined,
    NotRunning,
    Running,
}

/// The begin event of a range's end/active event.
fn range_start(typ: u8) -> u8 {
    match typ {
        ev::STW_END => ev::STW_BEGIN,
        ev::GC_ACTIVE | ev::GC_END => ev::GC_BEGIN,
        ev::GC_SWEEP_ACTIVE | ev::GC_SWEEP_END => ev::GC_SWEEP_BEGIN,
        ev::GC_MARK_ASSIST_ACTIVE | ev::GC_MARK_ASSIST_END => ev::GC_MARK_ASSIST_BEGIN,
        t => t,
    }
}

fn begin_range(ranges: &mut Vec<RangeKey>, key: RangeKey) -> std::result::Result<(), String> {
    if ranges.contains(&key) {
        return Err(format!("{} already in progress", spec::name(key.0)));
    }
    ranges.push(key);
    Ok(())
}

fn active_range(
    ranges: &mut Vec<RangeKey>,
    key: RangeKey,
    first_gen: bool,
) -> std::result::Result<(), String> {
    if first_gen {
        return begin_range(ranges, key);
    }
    if !ranges.contains(&key) {
        return Err(format!(
            "resource is missing active range {}",
            spec::name(key.0)
        ));
    }
    Ok(())
}

fn end_range(ranges: &mut Vec<RangeKey>, typ: u8) -> std::result::Result<u32, String> {
    let start = range_start(typ);
    match ranges.iter().position(|r| r.0 == start) {
        Some(i) => Ok(ranges.swap_remove(i).1),
        None => Err(format!(
            "tried to end {}, but it is not in progress",
            spec::name(start)
        )),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Need {
    No,
    May,
    Must,
}

fn check_ctx(c: Ctx, m: Need, p: Need, g: Need) -> std::result::Result<(), String> {
    let check = |has: bool, need: Need, what: &str| match (need, has) {
        (Need::Must, false) => Err(format!("expected a {what} but didn't have one")),
        (Need::No, true) => Err(format!("expected no {what} but had one")),
        _ => Ok(()),
    };
    check(c.m != NONE_ID, m, "thread")?;
    check(c.p != NONE_ID, p, "proc")?;
    check(c.g != NONE_ID, g, "goroutine")
}

fn user_ctx(c: Ctx) -> std::result::Result<(), String> {
    check_ctx(c, Need::Must, Need::Must, Need::Must)
}

/// Catalog string IDs of the fixed names the model uses (shared with the v1 converter).
pub(crate) struct Names {
    pub(crate) gomaxprocs: u32,
    pub(crate) heap_alloc: u32,
    pub(crate) heap_goal: u32,
    pub(crate) gc_mark: u32,
    pub(crate) gc_sweep: u32,
    pub(crate) mark_assist: u32,
}

impl Names {
    /// Intern the fixed names in `catalog`.
    pub(crate) fn intern(catalog: &mut Catalog) -> Names {
        Names {
            gomaxprocs: catalog.string("/sched/gomaxprocs:threads"),
            heap_alloc: catalog.string("/memory/classes/heap/objects:bytes"),
            heap_goal: catalog.string("/gc/heap/goal:bytes"),
            gc_mark: catalog.string("GC concurrent mark phase"),
            gc_sweep: catalog.string("GC incremental sweep"),
            mark_assist: catalog.string("GC mark assist"),
        }
    }
}

/// The scheduler state the ordering tracks across generations.
pub struct Ordering {
    initial_gen: u64,
    gs: IdMap<i64, GState>,
    ps: IdMap<i64, PState>,
    ms: IdMap<i64, MState>,
    tasks: IdMap<u64, (u64, u32)>,
    gc_seq: u64,
    gc: Gc,
    names: Names,
    queue: VecDeque<Event>,
}

type Step = std::result::Result<Option<Ctx>, String>;

impl Ordering {
    pub fn new(catalog: &mut Catalog) -> Self {
        let names = Names::intern(catalog);
        Ordering {
            initial_gen: 0,
            gs: IdMap::default(),
            ps: IdMap::default(),
            ms: IdMap::default(),
            tasks: IdMap::default(),
            gc_seq: 0,
            gc: Gc::Undetermined,
            names,
            queue: VecDeque::new(),
        }
    }

    /// Number of goroutines the ordering currently knows about.
    pub fn live_goroutines(&self) -> usize {
        self.gs.len()
    }

    /// Try to take `raw`, read from thread `m` of generation `g`. Ok(false): not yet
    /// (try another thread); Err: the trace contradicts itself.
    pub fn advance(
        &mut self,
        raw: &Raw,
        m: i64,
        g: &Generation,
        cat: &mut Catalog,
    ) -> std::result::Result<bool, String> {
        if self.initial_gen == 0 {
            self.initial_gen = g.genno;
        }
        let cur = match self.ms.get(&m) {
            Some(s) if m != NONE_ID => Ctx { m, p: s.p, g: s.g },
            _ => Ctx {
                m,
                p: NONE_ID,
                g: NONE_ID,
            },
        };
        let step = self.dispatch(raw, cur, g, cat)?;
        match step {
            None => Ok(false),
            Some(new) => {
                if m != NONE_ID {
                    let s = self.ms.entry(m).or_insert(MState {
                        g: NONE_ID,
                        p: NONE_ID,
                    });
                    s.g = new.g;
                    s.p = new.p;
                }
                Ok(true)
            }
        }
    }

    /// The next event taken, in order.
    pub fn pop(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    fn dispatch(&mut self, raw: &Raw, cur: Ctx, g: &Generation, cat: &mut Catalog) -> Step {
        let genno = g.genno;
        match raw.typ {
            ev::PROCS_CHANGE | ev::GO_LABEL | ev::USER_LOG => {
                user_ctx(cur)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::PROC_STATUS => self.proc_status(raw, cur, g, cat),
            ev::PROC_START => {
                let pid = raw.args[0] as i64;
                let seq = Seq::arg(raw, 1, genno);
                if cur.p != NONE_ID {
                    return Ok(None);
                }
                let Some(s) = self.p_next(pid, &[WP_IDLE], seq) else {
                    return Ok(None);
                };
                check_ctx(cur, Need::Must, Need::No, Need::May)?;
                s.status = WP_RUNNING;
                s.seq = seq;
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { p: pid, ..cur }))
            }
            ev::PROC_STOP => {
                let s = self
                    .ps
                    .get_mut(&cur.p)
                    .ok_or_else(|| format!("ProcStop for proc {} that doesn't exist", cur.p))?;
                if s.status != WP_RUNNING && s.status != WP_SYSCALL {
                    return Err("ProcStop event for proc that's not Running or Syscall".into());
                }
                check_ctx(cur, Need::Must, Need::Must, Need::May)?;
                s.status = WP_IDLE;
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { p: NONE_ID, ..cur }))
            }
            ev::PROC_STEAL => self.proc_steal(raw, cur, g, cat),
            ev::GO_STATUS | ev::GO_STATUS_STACK => self.go_status(raw, cur, g, cat),
            ev::GO_CREATE | ev::GO_CREATE_BLOCKED => {
                check_ctx(cur, Need::Must, Need::Must, Need::May)?;
                if self.gs.get(&cur.g).is_some_and(|s| s.status != WG_RUNNING) {
                    return Err(format!(
                        "{} event for goroutine that's not Running",
                        spec::name(raw.typ)
                    ));
                }
                let new = raw.args[0] as i64;
                if self.gs.contains_key(&new) {
                    return Err(format!(
                        "tried to create goroutine ({new}) that already exists"
                    ));
                }
                let status = if raw.typ == ev::GO_CREATE {
                    WG_RUNNABLE
                } else {
                    WG_WAITING
                };
                self.gs.insert(new, GState::new(status, genno));
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GO_DESTROY | ev::GO_STOP | ev::GO_BLOCK => {
                user_ctx(cur)?;
                let s = self.running_g(raw.typ, cur.g, WG_RUNNING, "Running")?;
                match raw.typ {
                    ev::GO_DESTROY => {
                        self.gs.remove(&cur.g);
                    }
                    ev::GO_STOP => s.status = WG_RUNNABLE,
                    _ => s.status = WG_WAITING,
                }
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { g: NONE_ID, ..cur }))
            }
            ev::GO_START => {
                let gid = raw.args[0] as i64;
                let seq = Seq::arg(raw, 1, genno);
                let Some(s) = self.g_next(gid, WG_RUNNABLE, seq) else {
                    return Ok(None);
                };
                check_ctx(cur, Need::Must, Need::Must, Need::No)?;
                s.status = WG_RUNNING;
                s.seq = seq;
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { g: gid, ..cur }))
            }
            ev::GO_UNBLOCK => {
                let gid = raw.args[0] as i64;
                let seq = Seq::arg(raw, 1, genno);
                let Some(s) = self.g_next(gid, WG_WAITING, seq) else {
                    return Ok(None);
                };
                s.status = WG_RUNNABLE;
                s.seq = seq;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GO_SWITCH | ev::GO_SWITCH_DESTROY => self.go_switch(raw, cur, g, cat),
            ev::GO_SYSCALL_BEGIN => {
                user_ctx(cur)?;
                let s = self.running_g(raw.typ, cur.g, WG_RUNNING, "Running")?;
                s.status = WG_SYSCALL;
                let p = self.ps.get_mut(&cur.p).ok_or_else(|| {
                    format!("uninitialized proc {} found during GoSyscallBegin", cur.p)
                })?;
                p.status = WP_SYSCALL;
                let pseq = Seq::arg(raw, 0, genno);
                if !pseq.follows(p.seq) {
                    return Err(format!(
                        "failed to advance GoSyscallBegin: can't make sequence: {} -> {}",
                        p.seq.n, pseq.n
                    ));
                }
                p.seq = pseq;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GO_SYSCALL_END => {
                user_ctx(cur)?;
                let s = self.running_g(raw.typ, cur.g, WG_SYSCALL, "Syscall")?;
                s.status = WG_RUNNING;
                let p = self.ps.get_mut(&cur.p).ok_or_else(|| {
                    format!("uninitialized proc {} found during GoSyscallEnd", cur.p)
                })?;
                if p.status != WP_SYSCALL {
                    return Err(format!("expected proc {} in state Syscall", cur.p));
                }
                p.status = WP_RUNNING;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GO_SYSCALL_END_BLOCKED => {
                if cur.p != NONE_ID {
                    let p = self.ps.get(&cur.p).ok_or_else(|| {
                        format!(
                            "uninitialized proc {} found during GoSyscallEndBlocked",
                            cur.p
                        )
                    })?;
                    if p.status == WP_SYSCALL {
                        return Ok(None);
                    }
                }
                check_ctx(cur, Need::Must, Need::May, Need::Must)?;
                let s = self.running_g(raw.typ, cur.g, WG_SYSCALL, "Syscall")?;
                s.status = WG_RUNNABLE;
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { g: NONE_ID, ..cur }))
            }
            ev::GO_CREATE_SYSCALL => {
                check_ctx(cur, Need::Must, Need::May, Need::No)?;
                let new = raw.args[0] as i64;
                if self.gs.contains_key(&new) {
                    return Err(format!(
                        "tried to create goroutine ({new}) in syscall that already exists"
                    ));
                }
                self.gs.insert(new, GState::new(WG_SYSCALL, genno));
                self.push(raw, cur, g, cat)?;
                Ok(Some(Ctx { g: new, ..cur }))
            }
            ev::GO_DESTROY_SYSCALL => {
                check_ctx(cur, Need::Must, Need::May, Need::Must)?;
                self.running_g(raw.typ, cur.g, WG_SYSCALL, "Syscall")?;
                self.gs.remove(&cur.g);
                let mut new = Ctx { g: NONE_ID, ..cur };
                if cur.p != NONE_ID {
                    let p = self.ps.get_mut(&cur.p).ok_or_else(|| {
                        format!("found invalid proc {} during GoDestroySyscall", cur.p)
                    })?;
                    if p.status != WP_SYSCALL {
                        return Err(format!(
                            "proc {} in unexpected state during GoDestroySyscall",
                            cur.p
                        ));
                    }
                    // The thread may be reused under the same ID; the P is as good as stolen.
                    p.status = WP_SYSCALL_ABANDONED;
                    new.p = NONE_ID;
                    let steal = Raw {
                        typ: ev::PROC_STEAL,
                        time: raw.time,
                        args: [cur.p as u64, 0, 0, 0],
                    };
                    let mut e = self.make(&steal, cur, g, cat)?;
                    e.from = pstate::RUNNING;
                    self.queue.push_back(e);
                }
                self.push(raw, cur, g, cat)?;
                Ok(Some(new))
            }
            ev::USER_TASK_BEGIN => {
                let id = raw.args[0];
                if self.tasks.contains_key(&id) {
                    return Err(format!("task ID conflict: {id}"));
                }
                let mut raw = *raw;
                if raw.args[1] == 0 {
                    raw.args[1] = NO_TASK;
                }
                let name = lookup_string(g, raw.args[2], raw.typ)?;
                self.tasks.insert(id, (raw.args[1], name));
                user_ctx(cur)?;
                self.push(&raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::USER_TASK_END => {
                let (parent, name) = self.tasks.remove(&raw.args[0]).unwrap_or((NO_TASK, 0));
                user_ctx(cur)?;
                let mut e = self.make(raw, cur, g, cat)?;
                e.values[0] = parent;
                e.name = name;
                self.queue.push_back(e);
                Ok(Some(cur))
            }
            ev::USER_REGION_BEGIN | ev::USER_REGION_END => {
                user_ctx(cur)?;
                let name = lookup_string(g, raw.args[1], raw.typ)?;
                let key = (raw.args[0], name);
                let s = self.gs.get_mut(&cur.g).ok_or_else(|| {
                    format!(
                        "{} without known state for current goroutine {}",
                        spec::name(raw.typ),
                        cur.g
                    )
                })?;
                if raw.typ == ev::USER_REGION_BEGIN {
                    s.regions.push(key);
                } else if let Some(&last) = s.regions.last() {
                    // Regions that began before the trace did are not known; ignore their end.
                    if last != key {
                        return Err(format!(
                            "misuse of region in goroutine {}: region end does not match the innermost region",
                            cur.g
                        ));
                    }
                    s.regions.pop();
                }
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_ACTIVE => {
                let seq = raw.args[0];
                if genno == self.initial_gen {
                    if self.gc != Gc::Undetermined {
                        return Err("GCActive in the first generation isn't first GC event".into());
                    }
                    self.gc_seq = seq;
                    self.gc = Gc::Running;
                    self.push(raw, cur, g, cat)?;
                    return Ok(Some(cur));
                }
                if seq != self.gc_seq.wrapping_add(1) {
                    return Ok(None);
                }
                if self.gc != Gc::Running {
                    return Err("encountered GCActive while GC was not in progress".into());
                }
                self.gc_seq = seq;
                user_ctx(cur)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_BEGIN => {
                let seq = raw.args[0];
                if self.gc == Gc::Undetermined {
                    self.gc_seq = seq;
                    self.gc = Gc::Running;
                    self.push(raw, cur, g, cat)?;
                    return Ok(Some(cur));
                }
                if seq != self.gc_seq.wrapping_add(1) {
                    return Ok(None);
                }
                if self.gc == Gc::Running {
                    return Err("encountered GCBegin while GC was already in progress".into());
                }
                self.gc_seq = seq;
                self.gc = Gc::Running;
                user_ctx(cur)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_END => {
                let seq = raw.args[0];
                if seq != self.gc_seq.wrapping_add(1) {
                    return Ok(None);
                }
                match self.gc {
                    Gc::NotRunning => {
                        return Err("encountered GCEnd when GC was not in progress".into());
                    }
                    Gc::Undetermined => {
                        return Err("encountered GCEnd when GC was in an undetermined state".into());
                    }
                    Gc::Running => {}
                }
                self.gc_seq = seq;
                self.gc = Gc::NotRunning;
                user_ctx(cur)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::HEAP_ALLOC | ev::HEAP_GOAL => {
                check_ctx(cur, Need::Must, Need::Must, Need::May)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_SWEEP_BEGIN => {
                check_ctx(cur, Need::Must, Need::Must, Need::May)?;
                let p = self
                    .ps
                    .get_mut(&cur.p)
                    .ok_or_else(|| format!("GCSweepBegin on unknown proc {}", cur.p))?;
                begin_range(&mut p.ranges, (ev::GC_SWEEP_BEGIN, 0))?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_SWEEP_ACTIVE => {
                let pid = raw.args[0] as i64;
                let first = genno == self.initial_gen;
                let p = self
                    .ps
                    .get_mut(&pid)
                    .ok_or_else(|| format!("encountered GCSweepActive for unknown proc {pid}"))?;
                active_range(&mut p.ranges, (ev::GC_SWEEP_BEGIN, 0), first)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_SWEEP_END => {
                check_ctx(cur, Need::Must, Need::Must, Need::May)?;
                let p = self
                    .ps
                    .get_mut(&cur.p)
                    .ok_or_else(|| format!("GCSweepEnd on unknown proc {}", cur.p))?;
                end_range(&mut p.ranges, raw.typ)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::STW_BEGIN | ev::GC_MARK_ASSIST_BEGIN => {
                user_ctx(cur)?;
                let desc = if raw.typ == ev::STW_BEGIN {
                    lookup_string(g, raw.args[0], raw.typ)?
                } else {
                    0
                };
                let s = self.gs.get_mut(&cur.g).ok_or_else(|| {
                    format!(
                        "{} without known state for current goroutine {}",
                        spec::name(raw.typ),
                        cur.g
                    )
                })?;
                begin_range(&mut s.ranges, (raw.typ, desc))?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::GC_MARK_ASSIST_ACTIVE => {
                let gid = raw.args[0] as i64;
                let first = genno == self.initial_gen;
                let s = self.gs.get_mut(&gid).ok_or_else(|| {
                    format!("uninitialized goroutine {gid} found during GCMarkAssistActive")
                })?;
                active_range(&mut s.ranges, (ev::GC_MARK_ASSIST_BEGIN, 0), first)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            ev::STW_END | ev::GC_MARK_ASSIST_END => {
                user_ctx(cur)?;
                let s = self.gs.get_mut(&cur.g).ok_or_else(|| {
                    format!(
                        "{} without known state for current goroutine {}",
                        spec::name(raw.typ),
                        cur.g
                    )
                })?;
                let desc = end_range(&mut s.ranges, raw.typ)?;
                let mut e = self.make(raw, cur, g, cat)?;
                if raw.typ == ev::STW_END {
                    e.name = cat.string(&format!(
                        "stop-the-world ({})",
                        cat.get_string(desc).to_owned()
                    ));
                }
                self.queue.push_back(e);
                Ok(Some(cur))
            }
            t if spec::is_experimental(t) => {
                check_ctx(cur, Need::Must, Need::May, Need::May)?;
                self.push(raw, cur, g, cat)?;
                Ok(Some(cur))
            }
            t => Err(format!("bad event type {t} found while ordering")),
        }
    }

    /// The state of goroutine `gid`, which must exist and be in `want`.
    fn running_g(
        &mut self,
        typ: u8,
        gid: i64,
        want: u8,
        want_name: &str,
    ) -> std::result::Result<&mut GState, String> {
        let s = self.gs.get_mut(&gid).ok_or_else(|| {
            format!(
                "event {} for goroutine ({gid}) that doesn't exist",
                spec::name(typ)
            )
        })?;
        if s.status != want {
            return Err(format!(
                "{} event for goroutine that's not {want_name}",
                spec::name(typ)
            ));
        }
        Ok(s)
    }

    /// The state of goroutine `gid` if it is in `want` and `seq` is its next sequence
    /// number; None: its event must wait for another thread's events.
    fn g_next(&mut self, gid: i64, want: u8, seq: Seq) -> Option<&mut GState> {
        self.gs
            .get_mut(&gid)
            .filter(|s| s.status == want && seq.follows(s.seq))
    }

    /// The state of proc `pid` if it is in one of `want` and `seq` is its next sequence
    /// number; None: its event must wait for another thread's events.
    fn p_next(&mut self, pid: i64, want: &[u8], seq: Seq) -> Option<&mut PState> {
        self.ps
            .get_mut(&pid)
            .filter(|s| want.contains(&s.status) && seq.follows(s.seq))
    }

    fn proc_status(&mut self, raw: &Raw, mut cur: Ctx, g: &Generation, cat: &mut Catalog) -> Step {
        let pid = raw.args[0] as i64;
        let mut status = raw.args[1];
        if status == 0 || status > WP_SYSCALL_ABANDONED as u64 {
            return Err(format!("invalid status for proc {pid}: {status}"));
        }
        let mut old = wire_p_to_state(status as u8);
        let genno = g.genno;
        if let Some(s) = self.ps.get_mut(&pid) {
            let st = status as u8;
            if st == WP_SYSCALL_ABANDONED && s.status == WP_SYSCALL {
                // Nothing was lost after all: the P is still in the syscall we saw.
                old = pstate::RUNNING;
                status = WP_SYSCALL as u64;
            } else if st == WP_SYSCALL_ABANDONED && s.status == WP_SYSCALL_ABANDONED {
                old = pstate::IDLE;
            } else if s.status != st {
                return Err(format!(
                    "inconsistent status for proc {pid}: old {} vs. new {st}",
                    s.status
                ));
            }
            s.seq = Seq { genno, n: 0 };
        } else {
            self.ps.insert(
                pid,
                PState {
                    status: status as u8,
                    seq: Seq { genno, n: 0 },
                    ranges: Vec::new(),
                },
            );
            old = if genno == self.initial_gen {
                pstate::UNDETERMINED
            } else {
                pstate::NOT_EXIST
            };
        }
        let mut new = cur;
        let st = raw.args[1] as u8;
        if st == WP_RUNNING || st == WP_SYSCALL {
            new.p = pid;
        }
        if st == WP_SYSCALL_ABANDONED && old == pstate::RUNNING {
            // Report it on the thread the P is bound to, which is about to lose it.
            let owner = self
                .ms
                .iter()
                .find(|(_, s)| s.p == pid)
                .map(|(&m, s)| (m, *s));
            match owner {
                Some((m, s)) => cur = Ctx { m, p: pid, g: s.g },
                None => {
                    return Err(format!(
                        "failed to find sched context for proc {pid} that's about to be stolen"
                    ));
                }
            }
        }
        let mut e = self.make(raw, cur, g, cat)?;
        e.from = old;
        e.to = wire_p_to_state(status as u8);
        self.queue.push_back(e);
        Ok(Some(new))
    }

    fn proc_steal(&mut self, raw: &Raw, cur: Ctx, g: &Generation, cat: &mut Catalog) -> Step {
        let pid = raw.args[0] as i64;
        let seq = Seq::arg(raw, 1, g.genno);
        let Some(s) = self.p_next(pid, &[WP_SYSCALL, WP_SYSCALL_ABANDONED], seq) else {
            return Ok(None);
        };
        let old = s.status;
        check_ctx(cur, Need::Must, Need::May, Need::May)?;
        s.status = WP_IDLE;
        s.seq = seq;
        let mut e = self.make(raw, cur, g, cat)?;
        e.from = if old == WP_SYSCALL_ABANDONED {
            pstate::IDLE
        } else {
            pstate::RUNNING
        };
        if old == WP_SYSCALL_ABANDONED {
            // The thread it was on is gone from view; leave threads alone.
            self.queue.push_back(e);
            return Ok(Some(cur));
        }
        let victim = raw.args[2] as i64;
        if victim == cur.m {
            if cur.p != pid {
                return Err(format!(
                    "tried to self-steal proc {pid} (thread {victim}), but got proc {} instead",
                    cur.p
                ));
            }
            self.queue.push_back(e);
            return Ok(Some(Ctx { p: NONE_ID, ..cur }));
        }
        let ms = self
            .ms
            .get_mut(&victim)
            .ok_or_else(|| format!("stole proc from non-existent thread {victim}"))?;
        if ms.p != pid {
            return Err(format!(
                "tried to steal proc {pid} from thread {victim}, but got proc {} instead",
                ms.p
            ));
        }
        ms.p = NONE_ID;
        self.queue.push_back(e);
        Ok(Some(cur))
    }

    fn go_status(&mut self, raw: &Raw, mut cur: Ctx, g: &Generation, cat: &mut Catalog) -> Step {
        let gid = raw.args[0] as i64;
        let mid = raw.args[1] as i64;
        let status = raw.args[2];
        if status == 0 || status > WG_WAITING as u64 {
            return Err(format!("invalid status for goroutine {gid}: {status}"));
        }
        let status = status as u8;
        let genno = g.genno;
        let mut old = wire_g_to_state(status);
        if let Some(s) = self.gs.get_mut(&gid) {
            if s.status != status {
                return Err(format!(
                    "inconsistent status for goroutine {gid}: old {} vs. new {status}",
                    s.status
                ));
            }
            s.seq = Seq { genno, n: 0 };
        } else if genno == self.initial_gen {
            self.gs.insert(gid, GState::new(status, genno));
            old = gstate::UNDETERMINED;
        } else {
            return Err(format!(
                "found goroutine status for new goroutine after the first generation: id={gid} status={status}"
            ));
        }
        let mut new = cur;
        match status {
            WG_RUNNING => new.g = gid,
            WG_SYSCALL => {
                if mid == NONE_ID {
                    return Err(format!("found goroutine {gid} in syscall without a thread"));
                }
                if mid == cur.m {
                    if genno != self.initial_gen && cur.g != gid {
                        return Err(format!(
                            "inconsistent thread for syscalling goroutine {gid}: thread has goroutine {}",
                            cur.g
                        ));
                    }
                    new.g = gid;
                } else {
                    match self.ms.get(&mid) {
                        Some(ms) => {
                            if ms.g != gid {
                                return Err(format!(
                                    "inconsistent thread for syscalling goroutine {gid}: thread has goroutine {}",
                                    ms.g
                                ));
                            }
                            cur.g = ms.g;
                        }
                        None => {
                            self.ms.insert(mid, MState { g: gid, p: NONE_ID });
                        }
                    }
                    cur.m = mid;
                }
            }
            _ => {}
        }
        let mut e = self.make(raw, cur, g, cat)?;
        e.from = old;
        self.queue.push_back(e);
        Ok(Some(new))
    }

    fn go_switch(&mut self, raw: &Raw, cur: Ctx, g: &Generation, cat: &mut Catalog) -> Step {
        user_ctx(cur)?;
        self.running_g(raw.typ, cur.g, WG_RUNNING, "Running")?;
        let next = raw.args[0] as i64;
        let seq = Seq::arg(raw, 1, g.genno);
        if self.g_next(next, WG_WAITING, seq).is_none() {
            return Ok(None);
        }
        self.push(raw, cur, g, cat)?;
        // A switch is three events: unblock next, block (or destroy) current, start next.
        if raw.typ == ev::GO_SWITCH {
            self.gs.get_mut(&cur.g).unwrap().status = WG_WAITING;
            let block = Raw {
                typ: ev::GO_BLOCK,
                time: raw.time,
                args: [0; 4],
            };
            self.push(&block, cur, g, cat)?;
        } else {
            self.gs.remove(&cur.g);
            let destroy = Raw {
                typ: ev::GO_DESTROY,
                time: raw.time,
                args: [0; 4],
            };
            self.push(&destroy, cur, g, cat)?;
        }
        let s = self.gs.get_mut(&next).unwrap();
        s.status = WG_RUNNING;
        s.seq = seq;
        let start = Raw {
            typ: ev::GO_START,
            time: raw.time,
            args: [next as u64, raw.args[1], 0, 0],
        };
        self.push(&start, Ctx { g: NONE_ID, ..cur }, g, cat)?;
        Ok(Some(Ctx { g: next, ..cur }))
    }

    fn push(
        &mut self,
        raw: &Raw,
        ctx: Ctx,
        g: &Generation,
        cat: &mut Catalog,
    ) -> std::result::Result<(), String> {
        let e = self.make(raw, ctx, g, cat)?;
        self.queue.push_back(e);
        Ok(())
    }

    /// Build the model event for `raw` taken in context `ctx`, resolving its string and
    /// stack IDs (unknown IDs are errors).
    fn make(
        &self,
        raw: &Raw,
        ctx: Ctx,
        g: &Generation,
        cat: &mut Catalog,
    ) -> std::result::Result<Event, String> {
        let t = raw.typ;
        let a = &raw.args;
        // Every stack and string ID must exist; the first stack is the event's own.
        let mut stack = 0;
        for (k, &i) in spec::stack_args(t).iter().enumerate() {
            let s = lookup_stack(g, a[i], t)?;
            if k == 0 {
                stack = s;
            }
        }
        for &i in spec::string_args(t) {
            lookup_string(g, a[i], t)?;
        }
        let mut e = Event {
            time: raw.time,
            typ: t,
            m: ctx.m,
            p: ctx.p,
            g: ctx.g,
            stack,
            ..Event::default()
        };
        let str_arg = |i: usize| g.strings.get(a[i]).unwrap_or(0);
        let go = |e: &mut Event, id: i64, from: u8, to: u8| {
            e.set_transition(scope::GOROUTINE, id, from, to);
        };
        let proc = |e: &mut Event, id: i64, from: u8, to: u8| {
            e.set_transition(scope::PROC, id, from, to);
        };
        let range = |e: &mut Event, k: u8, name: u32, sc: u8, id: i64| {
            e.kind = k;
            e.name = name;
            e.scope = sc;
            e.resource = id;
        };
        let n = &self.names;
        match t {
            ev::PROCS_CHANGE | ev::HEAP_ALLOC | ev::HEAP_GOAL => {
                e.kind = kind::METRIC;
                e.name = match t {
                    ev::PROCS_CHANGE => n.gomaxprocs,
                    ev::HEAP_ALLOC => n.heap_alloc,
                    _ => n.heap_goal,
                };
                e.values[0] = a[0];
            }
            ev::PROC_START => proc(&mut e, a[0] as i64, pstate::IDLE, pstate::RUNNING),
            ev::PROC_STOP => proc(&mut e, ctx.p, pstate::RUNNING, pstate::IDLE),
            ev::PROC_STEAL => proc(&mut e, a[0] as i64, pstate::RUNNING, pstate::IDLE),
            ev::PROC_STATUS => proc(
                &mut e,
                a[0] as i64,
                pstate::UNDETERMINED,
                wire_p_to_state(a[1] as u8),
            ),
            ev::GO_CREATE | ev::GO_CREATE_BLOCKED => {
                let to = if t == ev::GO_CREATE {
                    gstate::RUNNABLE
                } else {
                    gstate::WAITING
                };
                go(&mut e, a[0] as i64, gstate::NOT_EXIST, to);
                e.tstack = lookup_stack(g, a[1], t)?;
            }
            ev::GO_CREATE_SYSCALL => go(&mut e, a[0] as i64, gstate::NOT_EXIST, gstate::SYSCALL),
            ev::GO_START => go(&mut e, a[0] as i64, gstate::RUNNABLE, gstate::RUNNING),
            ev::GO_DESTROY => go(&mut e, ctx.g, gstate::RUNNING, gstate::NOT_EXIST),
            ev::GO_DESTROY_SYSCALL => go(&mut e, ctx.g, gstate::SYSCALL, gstate::NOT_EXIST),
            ev::GO_STOP | ev::GO_BLOCK => {
                let to = if t == ev::GO_STOP {
                    gstate::RUNNABLE
                } else {
                    gstate::WAITING
                };
                go(&mut e, ctx.g, gstate::RUNNING, to);
                e.name = str_arg(0);
                e.tstack = stack;
            }
            ev::GO_UNBLOCK | ev::GO_SWITCH | ev::GO_SWITCH_DESTROY => {
                go(&mut e, a[0] as i64, gstate::WAITING, gstate::RUNNABLE)
            }
            ev::GO_SYSCALL_BEGIN => {
                go(&mut e, ctx.g, gstate::RUNNING, gstate::SYSCALL);
                e.tstack = stack;
            }
            ev::GO_SYSCALL_END => go(&mut e, ctx.g, gstate::SYSCALL, gstate::RUNNING),
            ev::GO_SYSCALL_END_BLOCKED => go(&mut e, ctx.g, gstate::SYSCALL, gstate::RUNNABLE),
            ev::GO_STATUS | ev::GO_STATUS_STACK => {
                go(
                    &mut e,
                    a[0] as i64,
                    gstate::UNDETERMINED,
                    wire_g_to_state(a[2] as u8),
                );
                e.tstack = stack;
            }
            ev::STW_BEGIN => {
                let name = cat.string(&format!(
                    "stop-the-world ({})",
                    cat.get_string(str_arg(0)).to_owned()
                ));
                range(&mut e, kind::RANGE_BEGIN, name, scope::GOROUTINE, ctx.g);
            }
            ev::STW_END => range(&mut e, kind::RANGE_END, 0, scope::GOROUTINE, ctx.g),
            ev::GC_ACTIVE => range(&mut e, kind::RANGE_ACTIVE, n.gc_mark, scope::NONE, 0),
            ev::GC_BEGIN => range(&mut e, kind::RANGE_BEGIN, n.gc_mark, scope::NONE, 0),
            ev::GC_END => range(&mut e, kind::RANGE_END, n.gc_mark, scope::NONE, 0),
            ev::GC_SWEEP_ACTIVE => range(
                &mut e,
                kind::RANGE_ACTIVE,
                n.gc_sweep,
                scope::PROC,
                a[0] as i64,
            ),
            ev::GC_SWEEP_BEGIN => range(&mut e, kind::RANGE_BEGIN, n.gc_sweep, scope::PROC, ctx.p),
            ev::GC_SWEEP_END => {
                range(&mut e, kind::RANGE_END, n.gc_sweep, scope::PROC, ctx.p);
                e.values = [a[0], a[1], 0];
            }
            ev::GC_MARK_ASSIST_ACTIVE => range(
                &mut e,
                kind::RANGE_ACTIVE,
                n.mark_assist,
                scope::GOROUTINE,
                a[0] as i64,
            ),
            ev::GC_MARK_ASSIST_BEGIN => range(
                &mut e,
                kind::RANGE_BEGIN,
                n.mark_assist,
                scope::GOROUTINE,
                ctx.g,
            ),
            ev::GC_MARK_ASSIST_END => range(
                &mut e,
                kind::RANGE_END,
                n.mark_assist,
                scope::GOROUTINE,
                ctx.g,
            ),
            ev::GO_LABEL => {
                e.kind = kind::LABEL;
                e.name = str_arg(0);
                e.scope = scope::GOROUTINE;
                e.resource = ctx.g;
            }
            ev::USER_TASK_BEGIN => {
                e.kind = kind::TASK_BEGIN;
                e.resource = a[0] as i64;
                e.values[0] = a[1];
                e.name = str_arg(2);
            }
            ev::USER_TASK_END => {
                e.kind = kind::TASK_END;
                e.resource = a[0] as i64;
            }
            ev::USER_REGION_BEGIN | ev::USER_REGION_END => {
                e.kind = if t == ev::USER_REGION_BEGIN {
                    kind::REGION_BEGIN
                } else {
                    kind::REGION_END
                };
                e.resource = a[0] as i64;
                e.name = str_arg(1);
            }
            ev::USER_LOG => {
                e.kind = kind::LOG;
                e.resource = a[0] as i64;
                e.name = str_arg(1);
                e.message = str_arg(2);
            }
            t if spec::is_experimental(t) => {
                e.kind = kind::EXPERIMENTAL;
                e.name = cat.string(spec::name(t));
                e.values = [a[0], a[1], a[2]];
            }
            t => return Err(format!("bad event type {t}")),
        }
        Ok(e)
    }
}

pub(crate) fn lookup_stack(g: &Generation, id: u64, typ: u8) -> std::result::Result<u32, String> {
    if id == 0 {
        return Ok(0);
    }
    g.stacks
        .get(id)
        .ok_or_else(|| format!("found invalid stack ID {id} for event {}", spec::name(typ)))
}

fn lookup_string(g: &Generation, id: u64, typ: u8) -> std::result::Result<u32, String> {
    if id == 0 {
        return Ok(0);
    }
    g.strings
        .get(id)
        .ok_or_else(|| format!("found invalid string ID {id} for event {}", spec::name(typ)))
}
