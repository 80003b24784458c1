"""Damaged real traces: cut anywhere, bytes flipped, absurd lengths. gopark reads up to
the damage, says where it is and how much was lost, keeps what came before exactly as
an undamaged read gives it, and never lets a panic or a traceback through.

A bounded, deterministic mutation run (the fuzz target that runs in CI); the Rust side
has its own on hand-made seeds (cargo test damage_tests)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from gopark.errors import InputError
from gopark.formats.trace import Damage, TraceReader, load_trace
from tracefixtures import busy_trace


@pytest.fixture(scope="module", params=["1.25", "1.27"])
def multi(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of several generations; Go 1.25 has no end-of-generation marker. The runtime
    starts one every 0.6 s here (every 1 s by default, which a loaded machine stretches:
    2.2 s could give only two); the first still holds a quarter of the file or more.
    Two workers: with one, a machine at load 11 wrote middle generations of 300-420 KiB,
    too close to BIG_GENERATION."""
    out = tmp_path_factory.mktemp("damage") / f"multi-{request.param}.trace"
    return busy_trace(request.param, out, duration="2200ms", workers=2, cpu=False, leaks=2,
                      godebug="traceadvanceperiod=600000000")


def _read(data: bytes) -> tuple[int, Damage | None, Exception | None]:
    """(events read, damage, InputError) for a possibly damaged trace."""
    try:
        s = TraceReader(data, name="t").summary()
    except InputError as e:
        assert "\n" not in str(e)
        return 0, None, e
    return int(s.counts["events"]), s.damage, None


# Batches are at most 64 KiB: a generation this big has several batches of plain events
# between its first batch and its string/stack tables.
BIG_GENERATION = 4 * 65536


def test_truncated_read_keeps_an_exact_prefix(multi: Path) -> None:
    data = multi.read_bytes()
    full = load_trace(data)
    assert full.damage is None and len(full.generations) >= 3
    ends = [g.end_offset for g in full.generations]
    # Cut in the middle of every big generation after the first (the middle ones span a
    # whole advance period). Not in a small one (the last may start just before the trace
    # stops): Go 1.25 has no end-of-generation marker, so there a cut inside the first
    # batch keeps that generation's first event, and a cut in its final tables leaves
    # stacks naming strings that never came ("malformed"); test_cut_anywhere cuts there.
    big = [i for i in range(1, len(ends)) if ends[i] - ends[i - 1] >= BIG_GENERATION]
    assert big, [(g.start_offset, g.end_offset) for g in full.generations]
    for i in big:
        cut = (ends[i - 1] + ends[i]) // 2
        part = load_trace(data[:cut])
        assert part.damage is not None
        assert part.damage.kind in ("truncated", "inconsistent")
        assert part.damage.offset <= cut
        assert len(part.generations) == i
        good = part.generations[-1].end_offset
        assert part.damage.fraction_lost == pytest.approx((cut - good) / cut)
        # The summary saw the events the table has: the complete generations, plus
        # (like Go's reader) those of the damaged one ordered before the damage.
        assert part.counts["events"] == len(part.events)
        # The complete generations are exactly what the whole file gives.
        n = sum(g.events for g in part.generations)
        assert 0 < n <= len(part.events)
        for col in ("time", "kind", "thread", "proc", "goroutine", "resource", "from_state",
                    "to_state", "stack", "transition_stack", "name"):
            np.testing.assert_array_equal(part.events[col][:n], full.events[col][:n], err_msg=col)


def test_cut_in_the_last_tables_is_truncation(multi: Path) -> None:
    """A cut among a generation's final string and stack tables is a cut file, never
    "malformed" (before Go 1.26 nothing marks where a generation ends)."""
    data = multi.read_bytes()
    ends = [g.end_offset for g in load_trace(data).generations]
    kinds = Counter()
    for back in (1, 7, 50, 333, 2000):
        cut = ends[-1] - back
        if cut <= ends[-2]:
            continue
        n, damage, err = _read(data[:cut])
        kind = damage.kind if damage is not None else "error" if err is not None else "clean"
        kinds[kind] += 1
    assert kinds and set(kinds) <= {"truncated", "clean"}, kinds


def test_cut_anywhere(multi: Path) -> None:
    """Each cut's outcome follows from where it lands: inside the header, an error; at a
    generation's end, a clean read; after the first generation, the generations before
    it and a damage at or before the cut, or a clean read of whole batches; inside the
    first, an error or a damage."""
    data = multi.read_bytes()
    ends = [g.end_offset for g in load_trace(data).generations]
    rng = random.Random(1)
    later = range(ends[0] + 1, len(data))
    cuts = sorted({rng.randrange(len(data)) for _ in range(50)} | set(range(0, 16))
                  | set(ends) | {later[k * len(later) // 20] for k in range(20)})
    outcomes = {"damage": 0, "error": 0, "clean": 0}
    for cut in cuts:
        n, damage, err = _read(data[:cut])
        if cut == 16:  # the header alone: Go writes at least one generation
            assert err is not None and "ends after its header" in str(err), err
        if err is not None:
            outcomes["error"] += 1
            assert cut < ends[0], (cut, err)
            assert "byte " in str(err)
        elif damage is not None:
            outcomes["damage"] += 1
            assert damage.offset <= cut and n > 0
        else:
            outcomes["clean"] += 1
            # A clean read took every byte as whole batches: a cut at a generation's end
            # or, on Go 1.25 (no end marker), after a generation's first small batch.
            read = TraceReader(data[:cut], name="t").summary().generations
            assert read[-1].end_offset == cut, cut
    assert outcomes["error"] >= 17  # the cuts inside the header, and the header alone
    assert outcomes["clean"] >= len(ends)
    assert outcomes["damage"] >= 20 - len(ends)  # the evenly spaced later cuts


def test_flipped_and_stuffed_bytes(multi: Path) -> None:
    """Mutations never escape as anything but damage or an InputError; a stuffed absurd
    varint shifts every byte after it, so it is always caught (a flipped bit may land in
    a value nothing checks, like a timestamp delta)."""
    data = multi.read_bytes()
    rng = random.Random(7)
    rejected = Counter[int]()
    absurd = [b"\xff" * 9 + b"\x01", b"\x80" * 11, b"\xff\xff\xff\xff\x0f"]
    for i in range(60):
        m = bytearray(data)
        at = rng.randrange(16, len(m))
        if i % 3 == 0:
            m[at] ^= 1 << rng.randrange(8)
        elif i % 3 == 1:
            m[at] = rng.randrange(256)
        else:
            m[at:at] = rng.choice(absurd)
        n, damage, err = _read(bytes(m))
        if damage is not None or err is not None:
            rejected[i % 3] += 1
        if damage is not None:
            assert damage.offset <= len(m)
    assert rejected[2] == 20, rejected
    assert rejected[0] + rejected[1] > 0, rejected


def test_absurd_batch_length_does_not_allocate(tmp_path: Path) -> None:
    # A batch header claiming an 2^63-byte batch right after the header.
    data = b"go 1.26 trace\x00\x00\x00" + bytes([1, 1, 0, 0]) + b"\xff" * 8 + b"\x7f"
    with pytest.raises(InputError, match=r"byte 20: invalid batch length \d+, maximum is 65536"):
        TraceReader(data, name="t").summary()
