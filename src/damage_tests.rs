//! Damaged-input tests: small hand-made traces (valid ones as seeds) cut, flipped and
//! stuffed with absurd lengths. The reader must return errors with offsets, keep what
//! it read before the damage, and never panic (debug builds also trap overflow).
//! Real traces get the same treatment from Python (tests/test_trace_damage.py).

use crate::error::ErrorKind;
use crate::event::kind;
use crate::reader::{TraceReader, read_all};
use crate::spec::ev;

/// Builds a wire-format trace from events.
struct Enc {
    out: Vec<u8>,
}

fn uv(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

impl Enc {
    fn new(v: u32) -> Self {
        Enc {
            out: format!("go 1.{v} trace\0\0\0").into_bytes(),
        }
    }
    /// One batch: header then `events` (each a type byte and varint args).
    fn batch(&mut self, genno: u64, m: u64, time: u64, events: &[(u8, &[u64])]) {
        let mut data = Vec::new();
        for (t, args) in events {
            data.push(*t);
            for &a in *args {
                uv(&mut data, a);
            }
        }
        self.raw_batch(genno, m, time, &data);
    }
    fn raw_batch(&mut self, genno: u64, m: u64, time: u64, data: &[u8]) {
        self.out.push(ev::EVENT_BATCH);
        uv(&mut self.out, genno);
        uv(&mut self.out, m);
        uv(&mut self.out, time);
        uv(&mut self.out, data.len() as u64);
        self.out.extend_from_slice(data);
    }
    fn strings(&mut self, genno: u64, strings: &[(u64, &str)]) {
        let mut data = vec![ev::STRINGS];
        for (id, s) in strings {
            data.push(ev::STRING);
            uv(&mut data, *id);
            uv(&mut data, s.len() as u64);
            data.extend_from_slice(s.as_bytes());
        }
        self.raw_batch(genno, u64::MAX, 1, &data);
    }
    fn stacks(&mut self, genno: u64) {
        // Stack 1: one frame, main.work in main.go:7 (strings 1 and 2).
        let mut data = vec![ev::STACKS, ev::STACK];
        for x in [1u64, 1, 0x401000, 1, 2, 7] {
            uv(&mut data, x);
        }
        self.raw_batch(genno, u64::MAX, 1, &data);
    }
    fn sync(&mut self, genno: u64, v: u32) {
        let mut data = Vec::new();
        if v >= 25 {
            data.push(ev::SYNC);
        }
        data.push(ev::FREQUENCY);
        uv(&mut data, 1_000_000_000);
        if v >= 25 {
            data.push(ev::CLOCK_SNAPSHOT);
            for x in [1u64, 100, 1_700_000_000, 5] {
                uv(&mut data, x);
            }
        }
        self.raw_batch(genno, u64::MAX, 1, &data);
    }
    fn end_gen(&mut self, v: u32) {
        if v >= 26 {
            self.out.push(ev::END_OF_GENERATION);
        }
    }
}

/// A valid two-generation trace: goroutine 1 creates 2, which runs, blocks on "chan
/// receive" and is woken by 1; then a second generation restates everything.
fn seed(v: u32) -> Vec<u8> {
    let mut e = Enc::new(v);
    for genno in 1..=2u64 {
        e.sync(genno, v);
        e.strings(
            genno,
            &[(1, "main.work"), (2, "main.go"), (3, "chan receive")],
        );
        e.stacks(genno);
        let base = genno * 1000;
        if genno == 1 {
            e.batch(
                genno,
                5,
                base,
                &[
                    (ev::PROC_STATUS, &[1, 0, 1]),
                    (ev::GO_STATUS, &[1, 1, 5, 2]),
                    (ev::GO_CREATE, &[2, 2, 1, 1]),
                    (ev::GO_STOP, &[3, 3, 1]),
                    (ev::GO_START, &[4, 2, 1]),
                    (ev::GO_BLOCK, &[5, 3, 1]),
                    (ev::GO_START, &[6, 1, 1]),
                    (ev::GO_UNBLOCK, &[7, 2, 2, 1]),
                ],
            );
        } else {
            e.batch(
                genno,
                5,
                base,
                &[
                    (ev::PROC_STATUS, &[1, 0, 1]),
                    (ev::GO_STATUS, &[1, 1, 5, 2]),
                    (ev::GO_STATUS, &[1, 2, u64::MAX, 1]),
                    (ev::GO_STOP, &[3, 3, 1]),
                    (ev::GO_START, &[4, 2, 1]),
                    (ev::GO_DESTROY, &[5]),
                ],
            );
        }
        e.end_gen(v);
    }
    e.out
}

#[test]
fn seeds_are_valid_traces() {
    for v in [22, 23, 25, 26] {
        let (events, cat, err) = read_all(&seed(v));
        assert!(err.is_none(), "v{v}: {err:?}");
        let transitions = events
            .iter()
            .filter(|e| e.kind == kind::STATE_TRANSITION)
            .count();
        assert_eq!(transitions, 14, "v{v}");
        let block = events.iter().find(|e| e.typ == ev::GO_BLOCK).unwrap();
        assert_eq!(cat.get_string(block.name), "chan receive");
        let syncs = events.iter().filter(|e| e.kind == kind::SYNC).count();
        assert_eq!(syncs, 3);
        assert!(events.windows(2).all(|w| w[0].time < w[1].time));
    }
}

/// Read `data` completely; returns (generations read, error) and checks invariants.
fn read(data: &[u8]) -> (usize, Option<crate::TraceError>) {
    let mut r = match TraceReader::new(data) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.offset <= data.len() as u64, "{e}");
            return (0, Some(e));
        }
    };
    r.summary.collect_facts(); // so damaged input goes through facts.rs too
    r.drain();
    assert!(r.summary.take_facts().is_some());
    if let Some(e) = &r.error {
        assert!(
            e.offset <= data.len() as u64,
            "offset {} beyond {} bytes: {e}",
            e.offset,
            data.len()
        );
        assert!(!e.message.is_empty());
    }
    assert!(r.good_bytes() <= data.len() as u64);
    (r.generations.len(), r.error.clone())
}

#[test]
fn truncation_anywhere_is_an_error_with_earlier_generations_kept() {
    for v in [22, 25, 26] {
        let data = seed(v);
        let (full_gens, err) = read(&data);
        assert!(err.is_none());
        assert_eq!(full_gens, 2);
        let mut whole = TraceReader::new(&data[..]).unwrap();
        whole.drain();
        let boundaries: Vec<u64> = whole.generations.iter().map(|g| g.end_offset).collect();
        for cut in 0..data.len() {
            let (gens, err) = read(&data[..cut]);
            if cut < 16 {
                assert!(err.is_some(), "v{v} cut {cut}");
                continue;
            }
            // A cut can only lose data: never more generations than the whole file.
            assert!(gens <= full_gens);
            // Go 1.26+ marks each generation's end, so a cut is noticed unless it falls
            // exactly between generations.
            if v >= 26 && cut > 16 && !boundaries.contains(&(cut as u64)) {
                assert!(err.is_some(), "v{v} cut at {cut} went unnoticed");
            }
        }
    }
}

/// A small deterministic generator (xorshift) for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_traces_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let absurd: [&[u8]; 4] = [
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        ],
        &[0x00],
    ];
    let mut rejected = 0;
    for v in [22, 23, 25, 26] {
        let data = seed(v);
        for _ in 0..3000 {
            let mut m = data.clone();
            for _ in 0..1 + rng.below(3) {
                if m.len() <= 16 {
                    break;
                }
                let at = 16 + rng.below(m.len() - 16);
                match rng.below(4) {
                    0 => m[at] ^= 1 << rng.below(8),
                    1 => m[at] = rng.next() as u8,
                    2 => {
                        let junk = absurd[rng.below(absurd.len())];
                        m.splice(at..at, junk.iter().copied());
                    }
                    _ => m.truncate(at),
                }
            }
            if read(&m).1.is_some() {
                rejected += 1;
            }
        }
    }
    // Most mutations must be caught (the format is checked, not just skimmed).
    assert!(
        rejected > 6000,
        "only {rejected} of 12000 mutations rejected"
    );
}

#[test]
fn absurd_counts_and_lengths_are_errors() {
    // A string longer than the runtime ever writes.
    let mut e = Enc::new(26);
    e.sync(1, 26);
    let mut data = vec![ev::STRINGS, ev::STRING, 1];
    uv(&mut data, 1 << 40);
    e.raw_batch(1, u64::MAX, 1, &data);
    let err = read(&e.out).1.unwrap();
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert!(err.message.contains("invalid string length"), "{err}");

    // A stack with a billion frames.
    let mut e = Enc::new(26);
    let mut data = vec![ev::STACKS, ev::STACK, 1];
    uv(&mut data, 1 << 30);
    e.raw_batch(1, u64::MAX, 1, &data);
    let err = read(&e.out).1.unwrap();
    assert!(err.message.contains("invalid stack size"), "{err}");

    // Unknown event type inside an event batch.
    let mut e = Enc::new(26);
    e.sync(1, 26);
    e.batch(1, 5, 10, &[(99, &[1, 2])]);
    e.end_gen(26);
    let err = read(&e.out).1.unwrap();
    assert!(err.message.contains("invalid event type 99"), "{err}");

    // Generation numbers that go backwards: the generation they interrupt is lost too.
    let mut data = seed(22);
    let mut e = Enc::new(22);
    e.sync(1, 22);
    data.extend_from_slice(&e.out[16..]);
    let (gens, err) = read(&data);
    assert_eq!(gens, 1);
    assert!(err.unwrap().message.contains("generation"));
}
