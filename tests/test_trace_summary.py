"""The per-goroutine summary computed in the Rust core, checked against Go's own
analysis: `go tool trace -pprof=sched|sync|net|syscall` on the same file, and against
what tracebusy is known to do (its leaked goroutines, its workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gopark.formats.pprof import parse_profile
from gopark.formats.trace import (
    GO_RUNNABLE,
    GO_RUNNING,
    GO_SYSCALL,
    GO_WAITING,
    TraceSummary,
    load_trace,
    summarize_trace,
)
from tracefixtures import busy_trace, go_tool

# Go releases, and a flight-recorder window (it starts mid-stream).
VERSIONS = ("1.22", "1.27", "flight-1.27")


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("summary")
    out = {v: busy_trace(v, tmp / f"busy-{v}.trace", duration="200ms", leaks=50)
           for v in VERSIONS[:2]}
    out["flight-1.27"] = busy_trace("1.27", tmp / "flight.trace", duration="300ms", flight=True)
    return out


def _pprof_total(trace: Path, kind: str) -> int:
    out = trace.with_suffix(f".{kind}.pb")
    go_tool("1.27", "trace", f"-pprof={kind}", str(trace), stdout=out)
    p = parse_profile(out.read_bytes(), str(out))
    i = p.index("delay")
    return sum(s.values[i] for s in p.samples)


def _blocked_total(s: TraceSummary, match: object) -> int:
    g = s.goroutines
    names = s.catalog.strings
    return int(sum(ns for r, ns in zip(g.reason_string, g.reason_ns, strict=True)
                   if match(names[r])))  # type: ignore[operator]


@pytest.mark.parametrize("version", VERSIONS)
def test_totals_equal_go_tool_trace_pprof(version: str, traces: dict[str, Path]) -> None:
    trace = traces[version]
    s = summarize_trace(trace)
    g = s.goroutines
    ran = g["first_run"] >= 0
    # Go's profiles clip each goroutine to [first run, end]: the wait before a
    # goroutine's first run is not in them, so take it out of ours to compare.
    runnable = int((g["runnable_ns"] - np.where(ran, g["start_runnable_ns"], 0)).sum())
    syscall = int((g["syscall_ns"] - np.where(ran, g["start_syscall_ns"], 0)).sum())
    sync = _blocked_total(s, lambda r: "chan" in r or "sync" in r or "select" in r)
    net = _blocked_total(s, lambda r: r == "network")
    assert runnable > 0 and sync > 0 and net > 0 and syscall > 0
    assert runnable == _pprof_total(trace, "sched")
    assert sync == _pprof_total(trace, "sync")
    assert net == _pprof_total(trace, "net")
    assert syscall == _pprof_total(trace, "syscall")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_nanosecond_of_a_goroutine_is_in_one_state(version: str,
                                                         traces: dict[str, Path]) -> None:
    s = summarize_trace(traces[version])
    g = s.goroutines
    end = np.where(g["ended"] >= 0, g["ended"], s.end_time)
    tail = np.where(g["ended"] >= 0, 0, s.end_time - g["since"])
    lived = end - g["first_seen"]
    accounted = g["running_ns"] + g["runnable_ns"] + g["blocked_ns"] + g["syscall_ns"] + tail
    assert len(g) > 100
    np.testing.assert_array_equal(accounted, lived)
    reasons = np.zeros(len(g), dtype=np.int64)
    np.add.at(reasons, g.reason_row, g.reason_ns)
    np.testing.assert_array_equal(reasons, g["blocked_ns"])


def test_summary_sees_leaks_workers_and_wakers(traces: dict[str, Path]) -> None:
    s = summarize_trace(traces["1.27"])
    g = s.goroutines
    names = s.catalog.strings

    def funcs(stack_id: int) -> list[str]:
        return [f.function for f in s.catalog.stack(stack_id)]

    # tracebusy leaks goroutines blocked forever on a send: created in main.leak,
    # still waiting at the end on "chan send".
    leaked = [i for i in range(len(g))
              if funcs(int(g["create_stack"][i]))[:1] == ["main.leak"]
              and funcs(int(g["start_stack"][i]))[:1] == ["main.leak.func1"]
              and g["state"][i] == GO_WAITING]
    assert len(leaked) >= 2
    for i in leaked:
        assert names[g["block_reason"][i]] == "chan send"
        assert funcs(int(g["block_stack"][i]))[:2] == ["runtime.chansend1", "main.leak.func1"]
    # Three leaked before tracing started: seen only through status events.
    old = [i for i in range(len(g)) if g["created"][i] < 0 and g["state"][i] == GO_WAITING
           and any(f.startswith("main.leak.func") for f in funcs(int(g["last_stack"][i])))]
    assert len(old) >= 3
    # Workers block on channels and are woken by other goroutines, whose stacks we have.
    woken = (g["unblocker"] >= 0) & (g["unblock_stack"] > 0)
    assert woken.sum() > 10
    assert set(np.unique(g["state"])) <= {GO_RUNNABLE, GO_RUNNING, GO_WAITING, GO_SYSCALL, 1}


def test_streaming_summary_equals_summary_after_loading(traces: dict[str, Path]) -> None:
    a = summarize_trace(traces["1.27"])
    b = load_trace(traces["1.27"])
    for name in a.goroutines.names():
        np.testing.assert_array_equal(a.goroutines[name], b.goroutines[name])
    assert a.counts == b.counts
    assert b.counts["events"] == len(b.events)
