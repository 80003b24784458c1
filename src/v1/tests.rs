//! The v1 reader on a small hand-made trace (the real ones are checked against Go's
//! reader from Python, tests/test_trace_v1.py): what it yields, and that cutting or
//! flipping its bytes anywhere gives an error with an offset, never a panic.

use crate::error::ErrorKind;
use crate::event::{gstate, kind, pstate};
use crate::reader::{TraceReader, read_all};
use crate::spec::ev;

fn uv(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// One v1 event: type, then the timestamp delta and arguments (length-prefixed when
/// there are more than three values).
fn event(out: &mut Vec<u8>, typ: u8, vals: &[u64]) {
    if vals.len() <= 3 {
        out.push(typ | ((vals.len() as u8).saturating_sub(1) << 6));
        for &v in vals {
            uv(out, v);
        }
    } else {
        out.push(typ | (3 << 6));
        let mut args = Vec::new();
        for &v in vals {
            uv(&mut args, v);
        }
        uv(out, args.len() as u64);
        out.extend_from_slice(&args);
    }
}

fn string(out: &mut Vec<u8>, id: u64, s: &str) {
    out.push(37);
    uv(out, id);
    uv(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// P 0 starts on thread 7; goroutine 0 creates goroutine 5, which runs and blocks on
/// a channel receive in main.work; the P stops. 1 tick = 1 ns.
fn small_trace() -> Vec<u8> {
    let mut b = b"go 1.21 trace\0\0\0".to_vec();
    b.push(1 | (1 << 6)); // batch: P 0 at tick 100
    uv(&mut b, 0);
    uv(&mut b, 100);
    event(&mut b, 4, &[1, 4, 0]); // Gomaxprocs 4
    event(&mut b, 5, &[1, 7]); // ProcStart on thread 7
    event(&mut b, 13, &[1, 5, 1, 0]); // GoCreate g5, new stack 1
    event(&mut b, 14, &[1, 5, 1]); // GoStart g5 seq 1
    event(&mut b, 23, &[1, 1]); // GoBlockRecv, stack 1
    event(&mut b, 6, &[1]); // ProcStop
    event(&mut b, 2, &[1_000_000_000]); // Frequency
    event(&mut b, 3, &[1, 1, 0x401000, 1, 2, 7]); // Stack 1: main.work at main.go:7
    string(&mut b, 1, "main.work");
    string(&mut b, 2, "main.go");
    b
}

#[test]
fn small_trace_converts_like_go() {
    let (events, cat, err) = read_all(&small_trace());
    assert_eq!(err, None);
    let kinds: Vec<u8> = events.iter().map(|e| e.kind).collect();
    use kind::*;
    assert_eq!(
        kinds,
        [
            SYNC,
            STATE_TRANSITION,
            STATE_TRANSITION,
            STATE_TRANSITION,
            STATE_TRANSITION,
            STATE_TRANSITION,
            SYNC
        ]
    );
    let typs: Vec<u8> = events[1..6].iter().map(|e| e.typ).collect();
    assert_eq!(
        typs,
        [
            ev::PROC_STATUS,
            ev::GO_CREATE,
            ev::GO_START,
            ev::GO_BLOCK,
            ev::PROC_STOP
        ]
    );
    // Times are ns since the first event (the Gomaxprocs, which is not shown).
    let times: Vec<i64> = events.iter().map(|e| e.time).collect();
    assert_eq!(times, [-1, 1, 2, 3, 4, 5, 6]);
    let status = &events[1];
    assert_eq!((status.m, status.p, status.resource), (7, 0, 0));
    assert_eq!(
        (status.from, status.to),
        (pstate::UNDETERMINED, pstate::RUNNING)
    );
    let block = &events[4];
    assert_eq!((block.g, block.resource, block.to), (5, 5, gstate::WAITING));
    assert_eq!(cat.get_string(block.name), "chan receive");
    let frames = cat.stack_frames(block.tstack);
    assert_eq!(frames.len(), 1);
    let f = cat.frames()[frames[0] as usize];
    assert_eq!(
        (cat.get_string(f.func), cat.get_string(f.file), f.line, f.pc),
        ("main.work", "main.go", 7, 0x401000)
    );
    // The new goroutine's stack is the GoCreate's transition stack.
    assert_eq!(events[2].tstack, block.tstack);
}

/// Two Ps and the buffer without a P. P0: g5 is created, runs, blocks on a receive,
/// is woken by the P-less buffer (written last, as the runtime does), runs again and
/// ends. P1 starts early and stops late.
fn two_p_trace() -> TwoPs {
    let mut b = b"go 1.21 trace\0\0\0".to_vec();
    let batch = |b: &mut Vec<u8>, p: u64, ts: u64| {
        b.push(1 | (1 << 6));
        uv(b, p);
        uv(b, ts);
    };
    batch(&mut b, 0, 100);
    event(&mut b, 4, &[1, 2, 0]); // 101 Gomaxprocs 2
    event(&mut b, 5, &[1, 7]); // 102 ProcStart on thread 7
    event(&mut b, 13, &[1, 5, 1, 0]); // 103 GoCreate g5, stack 1
    event(&mut b, 14, &[1, 5, 1]); // 104 GoStart g5 seq 1
    event(&mut b, 23, &[1, 1]); // 105 GoBlockRecv, stack 1
    batch(&mut b, 1, 100);
    event(&mut b, 5, &[6, 8]); // 106 ProcStart on thread 8
    let p1_stop = b.len();
    event(&mut b, 6, &[14]); // 120 ProcStop
    let second = b.len();
    batch(&mut b, 0, 110);
    event(&mut b, 14, &[1, 5, 3]); // 111 GoStart g5 seq 3
    event(&mut b, 15, &[1]); // 112 GoEnd
    let stop = b.len();
    event(&mut b, 6, &[1]); // 113 ProcStop
    let no_p = b.len();
    b.push(1 | (1 << 6));
    uv(&mut b, u64::MAX); // the buffer without a P
    uv(&mut b, 107);
    event(&mut b, 21, &[1, 5, 2, 0]); // 108 GoUnblock g5 seq 2
    event(&mut b, 2, &[1_000_000_000]); // Frequency
    let table = b.len();
    event(&mut b, 3, &[1, 1, 0x401000, 1, 2, 7]); // Stack 1: main.work at main.go:7
    string(&mut b, 1, "main.work");
    string(&mut b, 2, "main.go");
    TwoPs {
        table,
        data: b,
        p1_stop,
        second,
        stop,
        no_p,
    }
}

/// `two_p_trace` and offsets in it.
struct TwoPs {
    data: Vec<u8>,
    /// P1's ProcStop, P0's second batch, P0's last event (ProcStop), the P-less
    /// batch.
    p1_stop: usize,
    second: usize,
    stop: usize,
    no_p: usize,
    /// The stack table.
    table: usize,
}

/// (wire type, goroutine or resource, proc) of the events that are not Syncs.
fn shape(events: &[crate::event::Event]) -> Vec<(u8, i64, i64)> {
    events
        .iter()
        .filter(|e| e.kind != kind::SYNC)
        .map(|e| (e.typ, e.resource, e.p))
        .collect()
}

#[test]
fn cut_trace_keeps_what_every_p_knows() {
    let TwoPs {
        data,
        p1_stop,
        no_p,
        ..
    } = two_p_trace();
    let (full, _, err) = read_all(&data);
    assert_eq!(err, None);
    // Cut where the P-less batch starts: the unblock of g5 and the frequency are lost.
    let mut r = TraceReader::new(&data[..no_p]).unwrap();
    let mut events = Vec::new();
    assert!(r.next_generation(&mut events).unwrap());
    let err = r.next_generation(&mut events).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Truncated);
    assert_eq!(err.offset, no_p as u64);
    assert!(err.message.contains("times are in clock ticks"), "{err}");
    assert!(r.is_done());
    // P1's events are known up to 120 and P0's up to 113, so everything before 113 is
    // kept: g5's second start, whose unblock was lost, comes at its own time.
    use ev::*;
    let g5 = 5;
    assert_eq!(
        shape(&events),
        [
            (PROC_STATUS, 0, 0),
            (GO_CREATE, g5, 0),
            (GO_START, g5, 0),
            (GO_BLOCK, g5, 0),
            (PROC_STATUS, 1, 1),
            (GO_START, g5, 0),
            (GO_DESTROY, g5, 0),
        ]
    );
    // They are the whole trace's events, minus the lost unblock and what follows 113.
    let mut want = shape(&full);
    want.retain(|&(t, _, _)| t != GO_UNBLOCK && t != PROC_STOP);
    assert_eq!(shape(&events), want);
    // Times stay in ticks (since the first event), the stack keeps its ID without frames.
    let info = &r.generations[0];
    assert_eq!(info.ns_per_tick, 0.0, "frequency unknown");
    assert_eq!(info.end_offset, p1_stop as u64, "the first event left out");
    let times: Vec<i64> = events.iter().skip(1).map(|e| e.time).collect();
    assert_eq!(times, [1, 2, 3, 4, 5, 10, 11]);
    let block = &events[4];
    assert_eq!(block.typ, GO_BLOCK);
    assert_ne!(block.tstack, 0);
    assert_eq!(
        events[2].tstack, block.tstack,
        "GoCreate and GoBlock name stack 1"
    );
    let frames = r.catalog.stack_frames(block.tstack);
    assert_eq!(frames.len(), 1);
    let f = r.catalog.frames()[frames[0] as usize];
    assert_eq!(f.pc, 0);
    assert!(
        r.catalog
            .get_string(f.func)
            .contains("stack 1: frames lost")
    );
}

#[test]
fn cut_anywhere_keeps_a_prefix_of_each_p_or_is_an_error() {
    let TwoPs {
        data,
        second,
        table,
        ..
    } = two_p_trace();
    let (full, _, _) = read_all(&data);
    let per_p = |ev: &[crate::event::Event], p: i64| -> Vec<(u8, i64)> {
        shape(ev)
            .into_iter()
            .filter(|s| s.2 == p)
            .map(|s| (s.0, s.1))
            .collect()
    };
    let mut kept_some = 0;
    for n in 0..data.len() {
        let (events, _, err) = read_all(&data[..n]);
        if events.is_empty() {
            // Nothing readable: an error that names a byte of what is there.
            let err = err.unwrap_or_else(|| panic!("cut at {n}: no events and no error"));
            assert!(err.offset <= n as u64, "cut at {n}: {err}");
            assert!(
                n < second,
                "cut at {n}: both Ps are known, yet nothing kept"
            );
            continue;
        }
        kept_some += 1;
        // v1 has no end marker: a cut among the strings that end the stack table
        // cannot be seen.
        assert!(err.is_some() || n > table, "cut at {n} read without damage");
        for p in [0, 1] {
            let (got, want) = (per_p(&events, p), per_p(&full, p));
            assert!(
                got.len() <= want.len() && got == want[..got.len()],
                "cut at {n}, P{p}"
            );
        }
        let times: Vec<i64> = events.iter().map(|e| e.time).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "cut at {n}: {times:?}"
        );
    }
    assert!(kept_some > 20);
}

#[test]
fn a_flipped_event_type_is_damage_like_a_cut_there() {
    let TwoPs { data, stop, .. } = two_p_trace();
    let mut flipped = data.clone();
    flipped[stop] &= 0xc0; // event type 0: there is none
    let (got, _, err) = read_all(&flipped);
    let err = err.unwrap();
    assert_eq!((err.kind, err.offset), (ErrorKind::Malformed, stop as u64));
    assert!(err.message.contains("unknown event type 0"), "{err}");
    let (cut, _, _) = read_all(&data[..stop]);
    assert!(!got.is_empty());
    assert_eq!(shape(&got), shape(&cut));
}

#[test]
fn flipped_bytes_never_panic() {
    for data in [small_trace(), two_p_trace().data] {
        for i in 16..data.len() {
            for bit in 0..8 {
                let mut d = data.clone();
                d[i] ^= 1 << bit;
                let (events, _, err) = read_all(&d);
                if let Some(e) = err {
                    assert!(e.offset <= d.len() as u64);
                    assert_ne!(e.kind, ErrorKind::Io);
                }
                // What is kept is in time order, damaged or not.
                assert!(events.windows(2).all(|w| w[0].time < w[1].time));
            }
        }
    }
}

#[test]
fn absurd_lengths_are_refused_before_allocating() {
    let mut b = b"go 1.21 trace\0\0\0".to_vec();
    b.push(1 | (1 << 6));
    uv(&mut b, 0);
    uv(&mut b, 0);
    let base = b.clone();
    // A string of 2^40 bytes, arguments of 2^40 bytes, a stack of 2^30 frames.
    string(&mut b, 1, "");
    b.truncate(b.len() - 1);
    uv(&mut b, 1 << 40);
    let (_, _, err) = read_all(&b);
    assert_eq!(err.unwrap().kind, ErrorKind::Malformed);
    let mut b = base.clone();
    b.push(13 | (3 << 6));
    uv(&mut b, 1 << 40);
    let (_, _, err) = read_all(&b);
    assert_eq!(err.unwrap().kind, ErrorKind::Malformed);
    let mut b = base;
    event(&mut b, 3, &[1, 1 << 30, 0, 0]);
    let (_, _, err) = read_all(&b);
    assert!(err.unwrap().message.contains("frames"));
}

#[test]
fn unknown_and_out_of_version_events_are_refused() {
    let mut b = b"go 1.11 trace\0\0\0".to_vec();
    b.push(1 | (1 << 6));
    uv(&mut b, 0);
    uv(&mut b, 0);
    let mut cpu = b.clone();
    event(&mut cpu, 49, &[1, 1, 0, 1, 0]); // CPU samples came with Go 1.19
    let (_, _, err) = read_all(&cpu);
    assert!(err.unwrap().message.contains("unknown event type 49"));
    b.push(60);
    let (_, _, err) = read_all(&b);
    assert!(err.unwrap().message.contains("unknown event type 60"));
}

#[test]
fn an_event_takes_56_bytes() {
    // The memory bound stated in parse.rs and the README rests on it.
    assert_eq!(std::mem::size_of::<crate::v1::parse::V1Event>(), 56);
}

#[test]
fn a_cut_before_the_stack_table_is_seen() {
    let TwoPs { data, table, .. } = two_p_trace();
    let (full, _, _) = read_all(&data);
    let mut r = TraceReader::new(&data[..table]).unwrap();
    let mut events = Vec::new();
    assert!(r.next_generation(&mut events).unwrap());
    let err = r.next_generation(&mut events).unwrap_err();
    assert_eq!((err.kind, err.offset), (ErrorKind::Truncated, table as u64));
    assert!(
        err.message.contains("missing from the stack table"),
        "{err}"
    );
    // Every event is there, with its time in ns; stack 1 lost its frames only.
    let times = |ev: &[crate::event::Event]| ev.iter().map(|e| e.time).collect::<Vec<_>>();
    assert_eq!(shape(&events), shape(&full));
    assert_eq!(times(&events), times(&full[..full.len() - 1]));
    let block = events.iter().find(|e| e.typ == ev::GO_BLOCK).unwrap();
    let f = r.catalog.frames()[r.catalog.stack_frames(block.tstack)[0] as usize];
    assert!(
        r.catalog
            .get_string(f.func)
            .contains("stack 1: frames lost")
    );
}

#[test]
fn events_that_contradict_each_other_are_damage_there() {
    let TwoPs { data, second, .. } = two_p_trace();
    // P0's second batch starts g5 with sequence number 9, which no event gives it.
    let start = second + 3;
    assert_eq!(data[start..start + 4], [14 | (2 << 6), 1, 5, 3]);
    let mut bad = data.clone();
    bad[start + 3] = 9;
    let (events, _, err) = read_all(&bad);
    let err = err.unwrap();
    assert_eq!(
        (err.kind, err.offset),
        (ErrorKind::Inconsistent, start as u64)
    );
    assert!(err.message.contains("kept the events up to"), "{err}");
    assert!(
        !err.message.contains("clock ticks"),
        "the frequency is there: {err}"
    );
    // As if cut there: P0 is known up to 105 (g5 blocks), so what precedes it stays.
    use ev::*;
    assert_eq!(
        shape(&events),
        [(PROC_STATUS, 0, 0), (GO_CREATE, 5, 0), (GO_START, 5, 0),]
    );
}
