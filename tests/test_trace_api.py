"""The Python API over the trace engine: paths or bytes, generation by generation or
all at once, numpy columns, stacks, clock snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gopark.formats.trace import (
    KIND_STATE_TRANSITION,
    KIND_SYNC,
    EventTable,
    TraceReader,
    load_trace,
    summarize_trace,
)
from tracefixtures import busy_trace, record_testprog


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("api")
    return {
        "1.22": record_testprog("1.22", "annotations", tmp / "a122.trace"),
        # a generation every 0.4 s (1 s by default: a loaded machine could make 1.3 s one)
        "1.27": busy_trace("1.27", tmp / "busy127.trace", duration="1300ms", workers=2,
                           cpu=False, leaks=0, godebug="traceadvanceperiod=400000000"),
    }


def test_generations_one_at_a_time_equal_the_whole(traces: dict[str, Path]) -> None:
    path = traces["1.27"]
    reader = TraceReader(path)
    parts = list(reader.generations())
    whole = load_trace(path)
    assert len(parts) == len(whole.generations) + 1 >= 3  # + the closing Sync
    for part in parts:
        assert part["kind"][0] == KIND_SYNC
    joined = EventTable.concat(parts)
    for name in whole.events.names():
        np.testing.assert_array_equal(joined[name], whole.events[name], err_msg=name)
    assert reader.summary() is reader.summary()


def test_bytes_and_path_read_alike(traces: dict[str, Path]) -> None:
    a = load_trace(traces["1.22"])
    b = load_trace(traces["1.22"].read_bytes())
    assert b.source == "<bytes>" and a.source == str(traces["1.22"])
    for name in a.events.names():
        np.testing.assert_array_equal(a.events[name], b.events[name])


def test_columns_have_fixed_types(traces: dict[str, Path]) -> None:
    ev = load_trace(traces["1.22"]).events
    assert ev["time"].dtype == np.int64
    assert ev["kind"].dtype == np.uint8
    assert ev["goroutine"].dtype == np.int64
    assert ev["stack"].dtype == np.uint32
    assert len({len(ev[n]) for n in ev.names()}) == 1


def test_stacks_resolve_to_source_lines(traces: dict[str, Path]) -> None:
    t = load_trace(traces["1.27"])
    ev = t.events
    blocks = np.flatnonzero((ev["kind"] == KIND_STATE_TRANSITION) & (ev["type"] == 20))
    frames = [f for i in blocks[:200] for f in t.catalog.stack(int(ev["stack"][i]))]
    mine = [f for f in frames if f.file.endswith("tracebusy/main.go")]
    assert mine and all(f.line > 0 and f.pc > 0 for f in mine)
    assert any(f.function == "main.worker" for f in mine)
    assert t.catalog.stack(0) == []


def test_clock_snapshot_from_go_1_25(traces: dict[str, Path]) -> None:
    new = summarize_trace(traces["1.27"])
    old = summarize_trace(traces["1.22"])
    assert all(g.clock is not None for g in new.generations)
    assert all(g.clock is None for g in old.generations)
    trace_ns, mono, sec, nsec = new.generations[0].clock  # type: ignore[misc]
    assert sec > 1_700_000_000 and 0 <= nsec < 1_000_000_000
    assert new.go_version == "go1.26" and old.go_version == "go1.22"
