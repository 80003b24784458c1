//! The ordered event model handed to analyses and to Python.
//!
//! One flat record per event (so a generation's events become columns cheaply). The
//! meaning of the detail fields depends on `kind`; see the field docs.

/// Event kinds (the same split as Go's internal/trace EventKind).
pub mod kind {
    pub const SYNC: u8 = 1;
    pub const METRIC: u8 = 2;
    pub const LABEL: u8 = 3;
    pub const STACK_SAMPLE: u8 = 4;
    pub const RANGE_BEGIN: u8 = 5;
    pub const RANGE_ACTIVE: u8 = 6;
    pub const RANGE_END: u8 = 7;
    pub const TASK_BEGIN: u8 = 8;
    pub const TASK_END: u8 = 9;
    pub const REGION_BEGIN: u8 = 10;
    pub const REGION_END: u8 = 11;
    pub const LOG: u8 = 12;
    pub const STATE_TRANSITION: u8 = 13;
    pub const EXPERIMENTAL: u8 = 14;

    pub const NAMES: [&str; 15] = [
        "Bad",
        "Sync",
        "Metric",
        "Label",
        "StackSample",
        "RangeBegin",
        "RangeActive",
        "RangeEnd",
        "TaskBegin",
        "TaskEnd",
        "RegionBegin",
        "RegionEnd",
        "Log",
        "StateTransition",
        "Experimental",
    ];
}

/// Goroutine states as seen by a reader of the trace.
pub mod gstate {
    pub const UNDETERMINED: u8 = 0;
    pub const NOT_EXIST: u8 = 1;
    pub const RUNNABLE: u8 = 2;
    pub const RUNNING: u8 = 3;
    pub const WAITING: u8 = 4;
    pub const SYSCALL: u8 = 5;
    pub const NAMES: [&str; 6] = [
        "Undetermined",
        "NotExist",
        "Runnable",
        "Running",
        "Waiting",
        "Syscall",
    ];
}

/// Proc (P) states as seen by a reader of the trace.
pub mod pstate {
    pub const UNDETERMINED: u8 = 0;
    pub const NOT_EXIST: u8 = 1;
    pub const RUNNING: u8 = 2;
    pub const IDLE: u8 = 3;
    pub const NAMES: [&str; 4] = ["Undetermined", "NotExist", "Running", "Idle"];
}

/// What `Event::resource` names.
pub mod scope {
    pub const NONE: u8 = 0;
    pub const GOROUTINE: u8 = 1;
    pub const PROC: u8 = 2;
}

/// "No goroutine / proc / thread" and "no task".
pub const NONE_ID: i64 = -1;
pub const NO_TASK: u64 = u64::MAX;

/// One event of the ordered stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event {
    /// Nanoseconds (trace clock); strictly increasing along the stream.
    pub time: i64,
    /// One of [`kind`].
    pub kind: u8,
    /// Wire event type ([`crate::spec::ev`]), or SYNC_MARKER for Sync.
    pub typ: u8,
    /// Thread, proc and goroutine the event happened on (-1: none).
    pub m: i64,
    pub p: i64,
    pub g: i64,
    /// Catalog stack ID of the event's own stack (0: none). For GoCreate it is the
    /// creator's stack; for GoUnblock the unblocker's.
    pub stack: u32,
    /// Which kind of resource `resource` is ([`scope`]): the goroutine or proc of a
    /// state transition, the scope of a range, the goroutine of a label.
    pub scope: u8,
    /// Transition/range/label resource ID; task ID for tasks, regions and logs; N for Sync.
    pub resource: i64,
    /// State transition: old and new state ([`gstate`] or [`pstate`]).
    pub from: u8,
    pub to: u8,
    /// Catalog string: transition reason, range name, metric name, label, task or
    /// region type, log category, experimental event name.
    pub name: u32,
    /// Catalog string: log message.
    pub message: u32,
    /// Transition stack: the new goroutine's stack for GoCreate, else the stack the
    /// goroutine was at when it changed state (0: none).
    pub tstack: u32,
    /// Metric value; GC sweep (swept, reclaimed) bytes; parent task ID for tasks
    /// (NO_TASK: none); experimental arguments; generation number for Sync.
    pub values: [u64; 3],
}

impl Event {
    /// The Sync marker numbered `n` that opens generation `genno` (0: the closing one).
    pub fn sync_marker(time: i64, n: i64, genno: u64) -> Event {
        Event {
            time,
            kind: kind::SYNC,
            typ: crate::spec::ev::SYNC_MARKER,
            m: NONE_ID,
            p: NONE_ID,
            g: NONE_ID,
            resource: n,
            values: [genno, 0, 0],
            ..Event::default()
        }
    }

    /// Make this a state transition of resource `id` (a goroutine or proc, per `scope`).
    pub fn set_transition(&mut self, scope: u8, id: i64, from: u8, to: u8) {
        self.kind = kind::STATE_TRANSITION;
        self.scope = scope;
        self.resource = id;
        self.from = from;
        self.to = to;
    }
}

/// Events as columns (one vector per field), filled one event at a time: what the
/// Python layer hands to numpy without copying.
#[derive(Debug, Default)]
pub struct EventColumns {
    pub time: Vec<i64>,
    pub kind: Vec<u8>,
    pub typ: Vec<u8>,
    pub m: Vec<i64>,
    pub p: Vec<i64>,
    pub g: Vec<i64>,
    pub stack: Vec<u32>,
    pub scope: Vec<u8>,
    pub resource: Vec<i64>,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub name: Vec<u32>,
    pub message: Vec<u32>,
    pub tstack: Vec<u32>,
    pub value0: Vec<u64>,
    pub value1: Vec<u64>,
    pub value2: Vec<u64>,
}

impl EventColumns {
    pub fn push(&mut self, e: &Event) {
        self.time.push(e.time);
        self.kind.push(e.kind);
        self.typ.push(e.typ);
        self.m.push(e.m);
        self.p.push(e.p);
        self.g.push(e.g);
        self.stack.push(e.stack);
        self.scope.push(e.scope);
        self.resource.push(e.resource);
        self.from.push(e.from);
        self.to.push(e.to);
        self.name.push(e.name);
        self.message.push(e.message);
        self.tstack.push(e.tstack);
        self.value0.push(e.values[0]);
        self.value1.push(e.values[1]);
        self.value2.push(e.values[2]);
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }
}
