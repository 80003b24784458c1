//! The v1 reader on a small hand-made trace (the real ones are checked against Go's
//! reader from Python, tests/test_trace_v1.py): what it yields, and that cutting or
//! flipping its bytes anywhere gives an error with an offset, never a panic.

use crate::error::ErrorKind;
use crate::event::{gstate, kind, pstate};
use crate::reader::read_all;
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

#[test]
fn cut_anywhere_is_an_error_with_an_offset() {
    let data = small_trace();
    // v1 has no end marker: a cut after the frequency (before the stack and the two
    // strings, 33 bytes) may still read, with names missing.
    let tables = data.len() - 33;
    for n in 0..data.len() {
        let (events, _, err) = read_all(&data[..n]);
        match err {
            Some(err) => {
                assert!(err.offset <= n as u64, "cut at {n}: {err}");
                assert!(events.is_empty());
            }
            None => assert!(n >= tables, "cut at {n} read without error"),
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let data = small_trace();
    for i in 16..data.len() {
        for bit in 0..8 {
            let mut d = data.clone();
            d[i] ^= 1 << bit;
            let (_, _, err) = read_all(&d);
            if let Some(e) = err {
                assert!(e.offset <= d.len() as u64);
                assert_ne!(e.kind, ErrorKind::Io);
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
