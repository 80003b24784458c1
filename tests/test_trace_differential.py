"""gopark's ordered event stream equals Go's: for traces of real programs made by Go 1.22,
1.23, 1.25, 1.26 and 1.27, every event (kind, time, thread, proc, goroutine, state
transition with reason, stacks, ...) printed the way `go tool trace -d=parsed` prints
it is identical to what Go 1.27's tool prints for the same file. The traces come from
runtime/trace.Start, the flight recorder, /debug/pprof/trace and `go test -trace`."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from gofixtures import run
from gopark.formats.trace import KIND_NAMES, load_trace, summarize_trace
from tracefixtures import (
    V2_GO,
    busy_trace,
    first_difference,
    go_parsed,
    go_test_trace,
    gopark_parsed,
    record_testprog,
)

# Go's own trace test programs: annotations, GC pressure, many goroutines/syscalls,
# pipes, and (Go 1.23+) iter.Pull coroutines, which the trace shows as GoSwitch.
TESTPROGS = ("annotations", "gc-stress", "stress", "futile-wakeup", "wait-on-pipe")


def _cases() -> list[tuple[str, str]]:
    cases = [(v, "busy") for v in V2_GO]
    cases += [(v, f"testprog:{p}") for v in ("1.22", "1.25", "1.27") for p in TESTPROGS]
    cases += [(v, "testprog:iter-pull") for v in ("1.23", "1.27")]
    cases += [("1.25", "flight"), ("1.27", "flight")]
    cases += [("1.22", "gotest"), ("1.27", "gotest")]
    cases += [("1.23", "allocfree"), ("1.27", "allocfree")]
    return cases


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traces")


def _make(short: str, what: str, tmp: Path) -> Path:
    out = tmp / f"{what.replace(':', '-')}-{short}.trace"
    if what == "busy":
        return busy_trace(short, out)
    if what == "allocfree":
        # Heap alloc/free events go in experimental batches, which readers skip.
        return busy_trace(short, out, duration="100ms", godebug="traceallocfree=1")
    if what == "gotest":
        return go_test_trace(short, out)
    if what == "flight":
        # The flight recorder's window starts mid-stream: goroutines and Ps appear
        # in states the trace never saw them enter.
        return busy_trace(short, out, duration="300ms", flight=True)
    return record_testprog(short, what.split(":", 1)[1], out)


@pytest.mark.parametrize(("short", "what"), _cases())
def test_stream_equals_go_tool_trace_parsed(short: str, what: str, tmp: Path) -> None:
    trace = _make(short, what, tmp)
    want = go_parsed(trace)
    got = gopark_parsed(trace)
    assert len(want) > 20
    assert got == want, first_difference(want, got)


def test_experimental_batches_are_skipped(tmp: Path) -> None:
    trace = busy_trace("1.27", tmp / "allocfree-check.trace", duration="100ms",
                       godebug="traceallocfree=1")
    s = summarize_trace(trace)
    assert sum(g.experimental_bytes for g in s.generations) > 1_000
    assert s.damage is None


def test_trace_fetched_from_debug_pprof_trace(tmp: Path) -> None:
    with run("tracebusy", "1.27", ["-n", "0"]) as p:
        data = httpx.get(p.base_url + "trace?seconds=0.3", timeout=60).content
    trace = tmp / "http.trace"
    trace.write_bytes(data)
    want = go_parsed(trace)
    assert gopark_parsed(trace) == want


def test_busy_trace_covers_what_the_model_must_carry(tmp: Path) -> None:
    """The differential test above only proves something if the traces hold every kind
    of event; check the busy trace does."""
    t = load_trace(busy_trace("1.27", tmp / "cover.trace"))
    ev = t.events
    kinds = {KIND_NAMES[k] for k in np.unique(ev["kind"])}
    assert {"Sync", "Metric", "StackSample", "RangeBegin", "RangeEnd", "TaskBegin", "TaskEnd",
            "RegionBegin", "RegionEnd", "Log", "StateTransition"} <= kinds
    waiting = ev["to_state"][ev["kind"] == 13] == 4
    reasons = {t.catalog.strings[r] for r in ev["name"][ev["kind"] == 13][waiting]}
    assert {"chan receive", "chan send", "sync", "network", "sleep", "select"} <= reasons
    # Unblocks name who woke the goroutine (the event's goroutine and stack).
    unblocks = (ev["type"] == 21) & (ev["goroutine"] >= 0)
    assert unblocks.sum() > 100
    assert (ev["stack"][unblocks] > 0).mean() > 0.5
    assert np.all(np.diff(ev["time"]) > 0)
