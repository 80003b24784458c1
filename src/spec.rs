//! The v2 wire format's event table: type numbers, names and argument lists, and which
//! trace versions know which events. Learned from GOROOT/src/internal/trace/tracev2.

/// A trace file version: the N of the "go 1.N trace" header.
pub type Version = u32;

/// Wire event types (the first byte of every event).
pub mod ev {
    pub const EVENT_BATCH: u8 = 1;
    pub const STACKS: u8 = 2;
    pub const STACK: u8 = 3;
    pub const STRINGS: u8 = 4;
    pub const STRING: u8 = 5;
    pub const CPU_SAMPLES: u8 = 6;
    pub const CPU_SAMPLE: u8 = 7;
    pub const FREQUENCY: u8 = 8;
    pub const PROCS_CHANGE: u8 = 9;
    pub const PROC_START: u8 = 10;
    pub const PROC_STOP: u8 = 11;
    pub const PROC_STEAL: u8 = 12;
    pub const PROC_STATUS: u8 = 13;
    pub const GO_CREATE: u8 = 14;
    pub const GO_CREATE_SYSCALL: u8 = 15;
    pub const GO_START: u8 = 16;
    pub const GO_DESTROY: u8 = 17;
    pub const GO_DESTROY_SYSCALL: u8 = 18;
    pub const GO_STOP: u8 = 19;
    pub const GO_BLOCK: u8 = 20;
    pub const GO_UNBLOCK: u8 = 21;
    pub const GO_SYSCALL_BEGIN: u8 = 22;
    pub const GO_SYSCALL_END: u8 = 23;
    pub const GO_SYSCALL_END_BLOCKED: u8 = 24;
    pub const GO_STATUS: u8 = 25;
    pub const STW_BEGIN: u8 = 26;
    pub const STW_END: u8 = 27;
    pub const GC_ACTIVE: u8 = 28;
    pub const GC_BEGIN: u8 = 29;
    pub const GC_END: u8 = 30;
    pub const GC_SWEEP_ACTIVE: u8 = 31;
    pub const GC_SWEEP_BEGIN: u8 = 32;
    pub const GC_SWEEP_END: u8 = 33;
    pub const GC_MARK_ASSIST_ACTIVE: u8 = 34;
    pub const GC_MARK_ASSIST_BEGIN: u8 = 35;
    pub const GC_MARK_ASSIST_END: u8 = 36;
    pub const HEAP_ALLOC: u8 = 37;
    pub const HEAP_GOAL: u8 = 38;
    pub const GO_LABEL: u8 = 39;
    pub const USER_TASK_BEGIN: u8 = 40;
    pub const USER_TASK_END: u8 = 41;
    pub const USER_REGION_BEGIN: u8 = 42;
    pub const USER_REGION_END: u8 = 43;
    pub const USER_LOG: u8 = 44;
    pub const GO_SWITCH: u8 = 45;
    pub const GO_SWITCH_DESTROY: u8 = 46;
    pub const GO_CREATE_BLOCKED: u8 = 47;
    pub const GO_STATUS_STACK: u8 = 48;
    pub const EXPERIMENTAL_BATCH: u8 = 49;
    pub const SYNC: u8 = 50;
    pub const CLOCK_SNAPSHOT: u8 = 51;
    pub const END_OF_GENERATION: u8 = 52;
    /// First experimental event type (AllocFree experiment); they run up to 136.
    pub const FIRST_EXPERIMENTAL: u8 = 128;
    pub const LAST_EXPERIMENTAL: u8 = 136;
    /// Not a wire type: the marker gopark gives the Sync events it synthesizes.
    pub const SYNC_MARKER: u8 = 255;
}

/// How one event type is laid out on the wire.
pub struct Spec {
    pub name: &'static str,
    /// Argument names; for timed events the first is the timestamp delta "dt".
    pub args: &'static [&'static str],
    /// Timed events appear in per-thread batches and are surfaced by the reader.
    pub timed: bool,
}

const fn s(name: &'static str, args: &'static [&'static str], timed: bool) -> Spec {
    Spec { name, args, timed }
}

const NONE: Spec = s("", &[], false);

/// The spec of every wire event type (index = type byte); unknown types have an empty name.
pub static SPECS: [Spec; 137] = {
    let mut t = [NONE; 137];
    t[1] = s("EventBatch", &["gen", "m", "time", "size"], false);
    t[2] = s("Stacks", &[], false);
    t[3] = s("Stack", &["id", "nframes"], false);
    t[4] = s("Strings", &[], false);
    t[5] = s("String", &["id"], false);
    t[6] = s("CPUSamples", &[], false);
    t[7] = s("CPUSample", &["time", "m", "p", "g", "stack"], false);
    t[8] = s("Frequency", &["freq"], false);
    t[9] = s("ProcsChange", &["dt", "procs_value", "stack"], true);
    t[10] = s("ProcStart", &["dt", "p", "p_seq"], true);
    t[11] = s("ProcStop", &["dt"], true);
    t[12] = s("ProcSteal", &["dt", "p", "p_seq", "m"], true);
    t[13] = s("ProcStatus", &["dt", "p", "pstatus"], true);
    t[14] = s("GoCreate", &["dt", "new_g", "new_stack", "stack"], true);
    t[15] = s("GoCreateSyscall", &["dt", "new_g"], true);
    t[16] = s("GoStart", &["dt", "g", "g_seq"], true);
    t[17] = s("GoDestroy", &["dt"], true);
    t[18] = s("GoDestroySyscall", &["dt"], true);
    t[19] = s("GoStop", &["dt", "reason_string", "stack"], true);
    t[20] = s("GoBlock", &["dt", "reason_string", "stack"], true);
    t[21] = s("GoUnblock", &["dt", "g", "g_seq", "stack"], true);
    t[22] = s("GoSyscallBegin", &["dt", "p_seq", "stack"], true);
    t[23] = s("GoSyscallEnd", &["dt"], true);
    t[24] = s("GoSyscallEndBlocked", &["dt"], true);
    t[25] = s("GoStatus", &["dt", "g", "m", "gstatus"], true);
    t[26] = s("STWBegin", &["dt", "kind_string", "stack"], true);
    t[27] = s("STWEnd", &["dt"], true);
    t[28] = s("GCActive", &["dt", "gc_seq"], true);
    t[29] = s("GCBegin", &["dt", "gc_seq", "stack"], true);
    t[30] = s("GCEnd", &["dt", "gc_seq"], true);
    t[31] = s("GCSweepActive", &["dt", "p"], true);
    t[32] = s("GCSweepBegin", &["dt", "stack"], true);
    t[33] = s(
        "GCSweepEnd",
        &["dt", "swept_value", "reclaimed_value"],
        true,
    );
    t[34] = s("GCMarkAssistActive", &["dt", "g"], true);
    t[35] = s("GCMarkAssistBegin", &["dt", "stack"], true);
    t[36] = s("GCMarkAssistEnd", &["dt"], true);
    t[37] = s("HeapAlloc", &["dt", "heapalloc_value"], true);
    t[38] = s("HeapGoal", &["dt", "heapgoal_value"], true);
    t[39] = s("GoLabel", &["dt", "label_string"], true);
    t[40] = s(
        "UserTaskBegin",
        &["dt", "task", "parent_task", "name_string", "stack"],
        true,
    );
    t[41] = s("UserTaskEnd", &["dt", "task", "stack"], true);
    t[42] = s(
        "UserRegionBegin",
        &["dt", "task", "name_string", "stack"],
        true,
    );
    t[43] = s(
        "UserRegionEnd",
        &["dt", "task", "name_string", "stack"],
        true,
    );
    t[44] = s(
        "UserLog",
        &["dt", "task", "key_string", "value_string", "stack"],
        true,
    );
    t[45] = s("GoSwitch", &["dt", "g", "g_seq"], true);
    t[46] = s("GoSwitchDestroy", &["dt", "g", "g_seq"], true);
    t[47] = s(
        "GoCreateBlocked",
        &["dt", "new_g", "new_stack", "stack"],
        true,
    );
    t[48] = s("GoStatusStack", &["dt", "g", "m", "gstatus", "stack"], true);
    t[49] = s("ExperimentalBatch", &["exp", "gen", "m", "time"], false);
    t[50] = s("Sync", &[], false);
    t[51] = s("ClockSnapshot", &["dt", "mono", "sec", "nsec"], true);
    t[52] = s("EndOfGeneration", &[], false);
    t[128] = s("Span", &["dt", "id", "npages_value", "kindclass"], true);
    t[129] = s(
        "SpanAlloc",
        &["dt", "id", "npages_value", "kindclass"],
        true,
    );
    t[130] = s("SpanFree", &["dt", "id"], true);
    t[131] = s("HeapObject", &["dt", "id", "type"], true);
    t[132] = s("HeapObjectAlloc", &["dt", "id", "type"], true);
    t[133] = s("HeapObjectFree", &["dt", "id"], true);
    t[134] = s("GoroutineStack", &["dt", "id", "order"], true);
    t[135] = s("GoroutineStackAlloc", &["dt", "id", "order"], true);
    t[136] = s("GoroutineStackFree", &["dt", "id"], true);
    t
};

/// Trace versions gopark reads with the v2 reader.
pub const V2_VERSIONS: [Version; 4] = [22, 23, 25, 26];

/// Versions of the older (v1) format, Go 1.11–1.21.
pub const V1_VERSIONS: [Version; 3] = [11, 19, 21];

/// The last regular event type a version defines (later ones are not valid in it).
pub fn last_event(v: Version) -> u8 {
    match v {
        22 => ev::USER_LOG,
        23 | 24 => ev::EXPERIMENTAL_BATCH,
        25 => ev::CLOCK_SNAPSHOT,
        _ => ev::END_OF_GENERATION,
    }
}

/// The spec of `typ` if the version defines it.
pub fn spec(v: Version, typ: u8) -> Option<&'static Spec> {
    let known = typ <= last_event(v)
        || (v >= 23 && (ev::FIRST_EXPERIMENTAL..=ev::LAST_EXPERIMENTAL).contains(&typ));
    let sp = &SPECS[typ as usize % SPECS.len()];
    if known && (typ as usize) < SPECS.len() && !sp.name.is_empty() {
        Some(sp)
    } else {
        None
    }
}

/// The name of a wire event type, for messages.
pub fn name(typ: u8) -> &'static str {
    if typ == ev::SYNC_MARKER {
        return "Sync";
    }
    match SPECS.get(typ as usize) {
        Some(sp) if !sp.name.is_empty() => sp.name,
        _ => "Unknown",
    }
}

/// Whether `typ` belongs to the AllocFree experiment.
pub fn is_experimental(typ: u8) -> bool {
    (ev::FIRST_EXPERIMENTAL..=ev::LAST_EXPERIMENTAL).contains(&typ)
}

/// Index (into the event's args after dt) of the event's own stack, if it has one.
pub fn stack_arg(typ: u8) -> Option<usize> {
    use ev::*;
    match typ {
        PROCS_CHANGE | GO_STOP | GO_BLOCK | GO_SYSCALL_BEGIN | STW_BEGIN | GC_BEGIN => Some(1),
        GO_CREATE | GO_CREATE_BLOCKED | GO_UNBLOCK | USER_REGION_BEGIN | USER_REGION_END => Some(2),
        GO_STATUS_STACK | USER_TASK_BEGIN | USER_LOG => Some(3),
        GC_SWEEP_BEGIN | GC_MARK_ASSIST_BEGIN => Some(0),
        USER_TASK_END => Some(1),
        _ => None,
    }
}

/// Indexes (into the args after dt) of every stack ID an event carries.
pub fn stack_args(typ: u8) -> &'static [usize] {
    use ev::*;
    match typ {
        GO_CREATE | GO_CREATE_BLOCKED => &[2, 1],
        PROCS_CHANGE | GO_STOP | GO_BLOCK | GO_SYSCALL_BEGIN | STW_BEGIN | GC_BEGIN
        | USER_TASK_END => &[1],
        GO_UNBLOCK | USER_REGION_BEGIN | USER_REGION_END => &[2],
        GO_STATUS_STACK | USER_TASK_BEGIN | USER_LOG => &[3],
        GC_SWEEP_BEGIN | GC_MARK_ASSIST_BEGIN => &[0],
        _ => &[],
    }
}

/// Indexes (into the args after dt) of every string ID an event carries.
pub fn string_args(typ: u8) -> &'static [usize] {
    use ev::*;
    match typ {
        GO_STOP | GO_BLOCK | STW_BEGIN | GO_LABEL => &[0],
        USER_TASK_BEGIN => &[2],
        USER_REGION_BEGIN | USER_REGION_END => &[1],
        USER_LOG => &[1, 2],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_limit_event_types() {
        assert!(spec(22, ev::USER_LOG).is_some());
        assert!(spec(22, ev::GO_SWITCH).is_none());
        assert!(spec(23, ev::GO_STATUS_STACK).is_some());
        assert!(spec(23, ev::SYNC).is_none());
        assert!(spec(25, ev::CLOCK_SNAPSHOT).is_some());
        assert!(spec(25, ev::END_OF_GENERATION).is_none());
        assert!(spec(26, ev::END_OF_GENERATION).is_some());
        assert!(spec(26, 53).is_none());
        assert!(spec(26, 130).is_some());
        assert!(spec(22, 130).is_none());
    }

    #[test]
    fn stack_and_string_arg_indexes_name_stack_and_string_args() {
        for typ in 0..=ev::LAST_EXPERIMENTAL {
            let sp = &SPECS[typ as usize];
            if !sp.timed {
                continue;
            }
            for &i in stack_args(typ) {
                assert!(
                    sp.args[i + 1].ends_with("stack") && !sp.args[i + 1].starts_with("new")
                        || sp.args[i + 1] == "new_stack",
                    "{}",
                    sp.name
                );
            }
            for &i in string_args(typ) {
                assert!(sp.args[i + 1].ends_with("string"), "{}", sp.name);
            }
            let n_stacks = sp.args.iter().filter(|a| a.ends_with("stack")).count();
            assert_eq!(n_stacks, stack_args(typ).len(), "{}", sp.name);
            if let Some(i) = stack_arg(typ) {
                assert_eq!(stack_args(typ)[0], i, "{}", sp.name);
            }
        }
    }
}
