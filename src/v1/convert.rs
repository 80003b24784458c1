//! Turning an ordered v1 trace into the model's events, the way Go 1.27 presents an
//! old trace: the same wire event types and state transitions a Go 1.22+ trace would
//! have, with goroutines and Ps that were already there when tracing began appearing
//! in an "Undetermined" state.

use std::collections::BTreeSet;

use crate::catalog::{Catalog, Frame};
use crate::event::{Event, NO_TASK, NONE_ID, gstate, kind, pstate, scope};
use crate::fasthash::IdMap;
use crate::order::Names;
use crate::spec::ev;
use crate::v1::parse::{V1Trace, ev1, has_stack};

/// Reasons the v1 wait events stand for, as Go 1.27 names them.
fn block_reason(typ: u8) -> Option<(&'static str, bool)> {
    // (reason, whether the goroutine stays runnable)
    Some(match typ {
        ev1::GO_STOP => ("forever", false),
        ev1::GO_SCHED => ("runtime.Gosched", true),
        ev1::GO_PREEMPT => ("preempted", true),
        ev1::GO_SLEEP => ("sleep", false),
        ev1::GO_BLOCK => ("", false),
        ev1::GO_BLOCK_SEND => ("chan send", false),
        ev1::GO_BLOCK_RECV => ("chan receive", false),
        ev1::GO_BLOCK_SELECT => ("select", false),
        ev1::GO_BLOCK_SYNC => ("sync", false),
        ev1::GO_BLOCK_COND => ("sync.(*Cond).Wait", false),
        ev1::GO_BLOCK_NET => ("network", false),
        ev1::GO_BLOCK_GC => ("GC mark assist wait for work", false),
        _ => return None,
    })
}

const STW_REASONS: [&str; 17] = [
    "",
    "GC mark termination",
    "GC sweep termination",
    "write heap dump",
    "goroutine profile",
    "goroutine profile cleanup",
    "all goroutine stack trace",
    "read mem stats",
    "AllThreadsSyscall",
    "GOMAXPROCS",
    "start trace",
    "stop trace",
    "CountPagesInUse (test)",
    "ReadMetricsSlow (test)",
    "ReadMemStatsSlow (test)",
    "PageCachePagesLeaked (test)",
    "ResetDebugLog (test)",
];

/// The stop-the-world reason of a v1 kind number (its meaning changed in Go 1.21).
fn stw_reason(version: u32, kind_id: u64) -> &'static str {
    let i = if version < 21 {
        if kind_id <= 1 {
            kind_id as usize + 1
        } else {
            0
        }
    } else if (kind_id as usize) < STW_REASONS.len() {
        kind_id as usize
    } else {
        0
    };
    STW_REASONS[i]
}

/// Converts one ordered v1 trace into model events, in order.
pub struct Converter {
    /// Before the first Gomaxprocs event, the goroutines the trace found already there
    /// are being listed; those created then are reported as runnable at its time.
    pre_init: bool,
    created_pre_init: BTreeSet<u64>,
    tasks: IdMap<u64, (u64, u32)>,
    seen_procs: IdMap<i32, ()>,
    proc_thread: IdMap<i32, i64>,
    stw_name: u32,
    stack_ids: IdMap<u32, u32>,
    /// For each event, whether its goroutine's next event blocks it in a syscall.
    syscall_blocks: Vec<bool>,
    last_time: i64,
    syncs: i64,
    names: Names,
}

impl Converter {
    /// Get ready to convert `tr` (its events are not changed).
    pub fn new(tr: &V1Trace, cat: &mut Catalog) -> Self {
        Converter {
            pre_init: true,
            created_pre_init: BTreeSet::new(),
            tasks: IdMap::default(),
            seen_procs: IdMap::default(),
            proc_thread: IdMap::default(),
            stw_name: 0,
            stack_ids: IdMap::default(),
            syscall_blocks: syscall_blocks(tr),
            last_time: -1,
            syncs: 0,
            names: Names::intern(cat),
        }
    }

    /// Time of the last event emitted.
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// Emit every event, starting with a Sync just before the first one; returns the
    /// number emitted. The closing Sync comes from `finish`.
    pub fn run(&mut self, tr: &V1Trace, cat: &mut Catalog, out: &mut impl FnMut(&Event)) -> usize {
        let mut n = 0usize;
        let mut count = |e: &Event| {
            n += 1;
            out(e);
        };
        if let Some(&first) = tr.order.first() {
            let first = &tr.events[first as usize];
            self.sync(first.ts.wrapping_sub(1), 1, &mut count);
        }
        for i in 0..tr.order.len() {
            self.convert(tr, i, cat, &mut count);
        }
        n
    }

    /// The Sync that closes the stream.
    pub fn finish(&mut self, out: &mut impl FnMut(&Event)) {
        let t = self.last_time.wrapping_add(1);
        self.sync(t, 0, out);
    }

    fn sync(&mut self, time: i64, genno: u64, out: &mut impl FnMut(&Event)) {
        self.syncs += 1;
        out(&Event::sync_marker(time, self.syncs, genno));
    }

    /// Stamp `e` strictly after the previous event and emit it.
    fn emit(&mut self, mut e: Event, out: &mut impl FnMut(&Event)) {
        if e.time <= self.last_time {
            e.time = self.last_time.wrapping_add(1);
        }
        self.last_time = e.time;
        out(&e);
    }

    fn stack(&mut self, tr: &V1Trace, id: u64, cat: &mut Catalog) -> u32 {
        let id = id as u32;
        if id == 0 {
            return 0;
        }
        if let Some(&s) = self.stack_ids.get(&id) {
            return s;
        }
        let Some(pcs) = tr.stacks.get(&id) else {
            if !tr.frames_lost {
                return 0;
            }
            // The stack table was lost with the end of the trace: one frame with no
            // PC names the stack, so events keep telling their stacks apart.
            let name = cat.string(&format!(
                "(stack {id}: frames lost with the end of the trace)"
            ));
            let s = cat.stack(&[Frame {
                pc: 0,
                func: name,
                file: 0,
                line: 0,
            }]);
            self.stack_ids.insert(id, s);
            return s;
        };
        let frames: Vec<Frame> = pcs
            .iter()
            .map(|pc| {
                let f = tr.pcs.get(pc);
                Frame {
                    pc: *pc,
                    func: cat.string(f.map(|f| tr.string(f.func)).unwrap_or("")),
                    file: cat.string(f.map(|f| tr.string(f.file)).unwrap_or("")),
                    line: f.map(|f| f.line).unwrap_or(0),
                }
            })
            .collect();
        let s = cat.stack(&frames);
        self.stack_ids.insert(id, s);
        s
    }

    fn convert(&mut self, tr: &V1Trace, i: usize, cat: &mut Catalog, out: &mut impl FnMut(&Event)) {
        let v = *tr.ordered(i);
        let a = v.args;
        if v.typ == ev1::PROC_START {
            self.proc_thread.insert(v.p, a[0] as i64);
        }
        let m = if v.p != -1 && v.typ != ev1::CPU_SAMPLE {
            self.proc_thread.get(&v.p).copied().unwrap_or(NONE_ID)
        } else {
            NONE_ID
        };
        if v.typ == ev1::PROC_STOP {
            self.proc_thread.remove(&v.p);
        }
        let g = if v.g == 0 { NONE_ID } else { v.g as i64 };
        let own_stack = if has_stack(v.typ) {
            self.stack(tr, v.stk as u64, cat)
        } else {
            0
        };
        let mut e = Event {
            time: v.ts,
            m,
            p: v.p as i64,
            g,
            ..Event::default()
        };
        let go = |e: &mut Event, typ: u8, id: i64, from: u8, to: u8| {
            e.typ = typ;
            e.set_transition(scope::GOROUTINE, id, from, to);
        };
        let proc = |e: &mut Event, typ: u8, id: i64, from: u8, to: u8| {
            e.typ = typ;
            e.set_transition(scope::PROC, id, from, to);
        };
        let range = |e: &mut Event, typ: u8, k: u8, name: u32, sc: u8, id: i64| {
            e.typ = typ;
            e.kind = k;
            e.name = name;
            e.scope = sc;
            e.resource = id;
        };
        let metric = |e: &mut Event, typ: u8, name: u32, value: u64| {
            e.typ = typ;
            e.kind = kind::METRIC;
            e.name = name;
            e.values[0] = value;
        };
        let status = |id: u64, to: u8, time: i64, ctx: &Event| Event {
            time,
            m: ctx.m,
            p: ctx.p,
            g: ctx.g,
            typ: ev::GO_STATUS,
            kind: kind::STATE_TRANSITION,
            scope: scope::GOROUTINE,
            resource: id as i64,
            from: gstate::UNDETERMINED,
            to,
            ..Event::default()
        };
        if let Some((reason, runnable)) = block_reason(v.typ) {
            let (typ, to) = if runnable {
                (ev::GO_STOP, gstate::RUNNABLE)
            } else {
                (ev::GO_BLOCK, gstate::WAITING)
            };
            go(&mut e, typ, g, gstate::RUNNING, to);
            e.name = cat.string(reason);
            e.stack = own_stack;
            e.tstack = own_stack;
            self.emit(e, out);
            return;
        }
        match v.typ {
            ev1::GOMAXPROCS => {
                if self.pre_init {
                    // The goroutines created before tracing began, still not seen
                    // running or waiting, are runnable.
                    self.pre_init = false;
                    let none = Event {
                        m: NONE_ID,
                        p: NONE_ID,
                        g: NONE_ID,
                        ..Event::default()
                    };
                    for id in std::mem::take(&mut self.created_pre_init) {
                        self.emit(status(id, gstate::RUNNABLE, v.ts, &none), out);
                    }
                    return;
                }
                metric(&mut e, ev::PROCS_CHANGE, self.names.gomaxprocs, a[0]);
                e.stack = own_stack;
            }
            ev1::PROC_START | ev1::PROC_STOP => {
                let first = self.seen_procs.insert(v.p, ()).is_none();
                let to = if v.typ == ev1::PROC_START {
                    pstate::RUNNING
                } else {
                    pstate::IDLE
                };
                if first {
                    proc(
                        &mut e,
                        ev::PROC_STATUS,
                        v.p as i64,
                        pstate::UNDETERMINED,
                        to,
                    );
                } else if v.typ == ev1::PROC_START {
                    proc(
                        &mut e,
                        ev::PROC_START,
                        v.p as i64,
                        pstate::IDLE,
                        pstate::RUNNING,
                    );
                } else {
                    proc(
                        &mut e,
                        ev::PROC_STOP,
                        v.p as i64,
                        pstate::RUNNING,
                        pstate::IDLE,
                    );
                }
            }
            ev1::GC_START => {
                range(
                    &mut e,
                    ev::GC_BEGIN,
                    kind::RANGE_BEGIN,
                    self.names.gc_mark,
                    scope::NONE,
                    0,
                );
                e.stack = own_stack;
            }
            ev1::GC_DONE => range(
                &mut e,
                ev::GC_END,
                kind::RANGE_END,
                self.names.gc_mark,
                scope::NONE,
                0,
            ),
            ev1::STW_START => {
                self.stw_name = cat.string(&format!(
                    "stop-the-world ({})",
                    stw_reason(tr.version, a[0])
                ));
                range(
                    &mut e,
                    ev::STW_BEGIN,
                    kind::RANGE_BEGIN,
                    self.stw_name,
                    scope::GOROUTINE,
                    g,
                );
            }
            ev1::STW_DONE => range(
                &mut e,
                ev::STW_END,
                kind::RANGE_END,
                self.stw_name,
                scope::GOROUTINE,
                g,
            ),
            ev1::GC_SWEEP_START => {
                range(
                    &mut e,
                    ev::GC_SWEEP_BEGIN,
                    kind::RANGE_BEGIN,
                    self.names.gc_sweep,
                    scope::PROC,
                    v.p as i64,
                );
                e.stack = own_stack;
            }
            ev1::GC_SWEEP_DONE => {
                range(
                    &mut e,
                    ev::GC_SWEEP_END,
                    kind::RANGE_END,
                    self.names.gc_sweep,
                    scope::PROC,
                    v.p as i64,
                );
                e.values = [a[0], a[1], 0];
            }
            ev1::GC_MARK_ASSIST_START => {
                range(
                    &mut e,
                    ev::GC_MARK_ASSIST_BEGIN,
                    kind::RANGE_BEGIN,
                    self.names.mark_assist,
                    scope::GOROUTINE,
                    g,
                );
                e.stack = own_stack;
            }
            ev1::GC_MARK_ASSIST_DONE => range(
                &mut e,
                ev::GC_MARK_ASSIST_END,
                kind::RANGE_END,
                self.names.mark_assist,
                scope::GOROUTINE,
                g,
            ),
            ev1::HEAP_ALLOC => metric(&mut e, ev::HEAP_ALLOC, self.names.heap_alloc, a[0]),
            ev1::HEAP_GOAL => metric(&mut e, ev::HEAP_GOAL, self.names.heap_goal, a[0]),
            ev1::GO_CREATE => {
                if self.pre_init {
                    self.created_pre_init.insert(a[0]);
                    return;
                }
                go(
                    &mut e,
                    ev::GO_CREATE,
                    a[0] as i64,
                    gstate::NOT_EXIST,
                    gstate::RUNNABLE,
                );
                e.stack = own_stack;
                e.tstack = self.stack(tr, a[1], cat);
            }
            ev1::GO_START_LABEL => {
                go(
                    &mut e,
                    ev::GO_START,
                    a[0] as i64,
                    gstate::RUNNABLE,
                    gstate::RUNNING,
                );
                self.emit(e, out);
                let label = Event {
                    time: v.ts,
                    m,
                    p: v.p as i64,
                    g,
                    typ: ev::GO_LABEL,
                    kind: kind::LABEL,
                    name: cat.string(tr.string(a[2])),
                    scope: scope::GOROUTINE,
                    resource: g,
                    ..Event::default()
                };
                self.emit(label, out);
                return;
            }
            ev1::GO_START => {
                if self.pre_init {
                    self.created_pre_init.remove(&a[0]);
                    e = status(a[0], gstate::RUNNING, v.ts, &e);
                } else {
                    go(
                        &mut e,
                        ev::GO_START,
                        a[0] as i64,
                        gstate::RUNNABLE,
                        gstate::RUNNING,
                    );
                }
            }
            ev1::GO_END => go(
                &mut e,
                ev::GO_DESTROY,
                g,
                gstate::RUNNING,
                gstate::NOT_EXIST,
            ),
            ev1::GO_UNBLOCK => {
                go(
                    &mut e,
                    ev::GO_UNBLOCK,
                    a[0] as i64,
                    gstate::WAITING,
                    gstate::RUNNABLE,
                );
                e.stack = own_stack;
            }
            ev1::GO_SYS_CALL => {
                go(
                    &mut e,
                    ev::GO_SYSCALL_BEGIN,
                    g,
                    gstate::RUNNING,
                    gstate::SYSCALL,
                );
                e.stack = own_stack;
                e.tstack = own_stack;
                self.emit(e, out);
                if !self.syscall_blocks[i] {
                    // A syscall that never blocked: it ended right away.
                    let mut end = Event {
                        time: v.ts.wrapping_add(1),
                        m,
                        p: v.p as i64,
                        g,
                        ..Event::default()
                    };
                    go(
                        &mut end,
                        ev::GO_SYSCALL_END,
                        g,
                        gstate::SYSCALL,
                        gstate::RUNNING,
                    );
                    self.emit(end, out);
                }
                return;
            }
            ev1::GO_SYS_EXIT => go(
                &mut e,
                ev::GO_SYSCALL_END_BLOCKED,
                g,
                gstate::SYSCALL,
                gstate::RUNNABLE,
            ),
            ev1::GO_WAITING | ev1::GO_IN_SYSCALL => {
                self.created_pre_init.remove(&a[0]);
                let to = if v.typ == ev1::GO_WAITING {
                    gstate::WAITING
                } else {
                    gstate::SYSCALL
                };
                e = status(a[0], to, v.ts, &e);
            }
            ev1::USER_TASK_CREATE => {
                let ty = cat.string(tr.string(a[2]));
                self.tasks.insert(a[0], (a[1], ty));
                e.typ = ev::USER_TASK_BEGIN;
                e.kind = kind::TASK_BEGIN;
                e.resource = a[0] as i64;
                e.values[0] = if a[1] == 0 { NO_TASK } else { a[1] };
                e.name = ty;
                e.stack = own_stack;
            }
            ev1::USER_TASK_END => {
                // Go reports the parent as the creation recorded it (0: none).
                let (parent, ty) = self.tasks.remove(&a[0]).unwrap_or((NO_TASK, 0));
                e.typ = ev::USER_TASK_END;
                e.kind = kind::TASK_END;
                e.resource = a[0] as i64;
                e.values[0] = parent;
                e.name = ty;
                e.stack = own_stack;
            }
            ev1::USER_REGION => {
                let begin = a[1] == 0;
                e.typ = if begin {
                    ev::USER_REGION_BEGIN
                } else {
                    ev::USER_REGION_END
                };
                e.kind = if begin {
                    kind::REGION_BEGIN
                } else {
                    kind::REGION_END
                };
                e.resource = a[0] as i64;
                e.name = cat.string(tr.string(a[2]));
                e.stack = own_stack;
            }
            ev1::USER_LOG => {
                e.typ = ev::USER_LOG;
                e.kind = kind::LOG;
                e.resource = a[0] as i64;
                e.name = cat.string(tr.string(a[1]));
                let msg = tr
                    .inline_strings
                    .get(a[2] as usize)
                    .map(String::as_str)
                    .unwrap_or("");
                e.message = cat.string(msg);
                e.stack = own_stack;
            }
            ev1::CPU_SAMPLE => {
                e.typ = ev::CPU_SAMPLE;
                e.kind = kind::STACK_SAMPLE;
                e.stack = own_stack;
            }
            // Folded into the syscall's begin and exit; FutileWakeup is not carried over.
            _ => return,
        }
        self.emit(e, out);
    }
}

/// For each event, whether it is a syscall that blocks: the next event of the same
/// goroutine is the syscall's block.
fn syscall_blocks(tr: &V1Trace) -> Vec<bool> {
    let mut out = vec![false; tr.order.len()];
    let mut next_of_g: IdMap<u64, u8> = IdMap::default();
    for i in (0..tr.order.len()).rev() {
        let e = tr.ordered(i);
        if e.typ == ev1::GO_SYS_CALL {
            out[i] = match next_of_g.get(&e.g) {
                Some(&next) => next == ev1::GO_SYS_BLOCK,
                // Its last event kept: the block may have been left out of a cut trace.
                None => tr.blocked_after_cut.contains_key(&e.g),
            };
        }
        next_of_g.insert(e.g, e.typ);
    }
    out
}
