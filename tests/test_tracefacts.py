"""Step 2's trace facts, gathered by the Rust core in the summary's pass, checked two ways
on traces of real programs (tracebusy: mutexes, channels, network, syscalls, goroutine
churn; Go 1.21's v1 format, Go 1.22's, Go 1.27's and a flight-recorder window):

- against a plain reference pass written here over the ordered event stream (which
  itself equals `go tool trace -d=parsed`, see test_trace_differential.py): every field
  of every goroutine, every wait site, wait pair and runnable interval;
- against Go's own `go tool trace -pprof=sched|sync|net` on the same file (test_crosscheck
  does the same for Go 1.27 traces of the fixture services).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from gopark.analysis.tracefacts import TraceFacts, trace_facts
from gopark.formats.pprof import parse_profile
from gopark.formats.trace import (
    GO_NOT_EXIST,
    GO_RUNNABLE,
    GO_RUNNING,
    GO_STATES,
    GO_WAITING,
    KIND_STATE_TRANSITION,
    SCOPE_GOROUTINE,
    TraceReader,
    load_trace,
    summarize_trace,
)
from tracefixtures import busy_trace, go_tool

_UNDETERMINED = GO_STATES.index("Undetermined")
# A new generation every 100 ms (Go's default is about a second), so that runs and waits
# cross many generation boundaries, and a cut always falls after a complete generation.
GODEBUG = "traceadvanceperiod=100000000"


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tracefacts")
    out = {v: busy_trace(v, tmp / f"busy-{v}.trace", duration="800ms", workers=2,
                         godebug=GODEBUG)
           for v in ("1.21", "1.22", "1.27")}
    out["flight-1.27"] = busy_trace("1.27", tmp / "flight.trace", duration="800ms",
                                    workers=2, flight=True, godebug=GODEBUG)
    return out


@dataclass
class _Goroutine:
    """What the reference pass keeps per goroutine."""

    first_state: int
    run: tuple[int, int, int, int, int]
    """The run it is in: (start, from, to, stack, reason) of its first transition."""
    state: int = _UNDETERMINED
    since: int = -1
    created: bool = False
    ran: bool = False
    wakes: int = 0
    runtime_wakes: int = 0
    wake_times: list[int] = field(default_factory=list)
    reason: int = 0
    block_stack: int = 0
    last_stack: int = 0
    start_stack: int = 0
    unblocker: int = -1
    runnable: list[int] = field(default_factory=list)


@dataclass
class _Reference:
    goroutines: dict[int, _Goroutine]
    latencies: list[int]
    by_stack: Counter[tuple[int, str]]
    sites: dict[tuple[int, str], list[int]]
    pairs: Counter[tuple[int, int]]
    procs: int


def _reference(source: Path | bytes) -> _Reference:
    """The facts recomputed from the ordered events, one transition at a time, following
    the rules in tracefacts' docstring."""
    trace = load_trace(source)
    e = trace.events
    strings = trace.catalog.strings
    sel = (e["kind"] == KIND_STATE_TRANSITION) & (e["scope"] == SCOPE_GOROUTINE)
    names = ("time", "goroutine", "resource", "from_state", "to_state", "stack", "name",
             "transition_stack")
    gs: dict[int, _Goroutine] = {}
    ref = _Reference(gs, [], Counter(), {}, Counter(),
                     len(set(e["proc"][e["proc"] >= 0].tolist())))
    for t, by, gid, frm, to, stack, reason, tstack in zip(
            *(e[n][sel].tolist() for n in names), strict=True):
        g = gs.get(gid)
        if g is None:
            g = gs[gid] = _Goroutine(first_state=to, run=(t, frm, to, stack, reason))
        if tstack:
            g.last_stack = tstack
        if frm == GO_WAITING and to == GO_RUNNABLE:
            g.wakes += 1
            g.runtime_wakes += by < 0
            g.wake_times.append(t)
            g.unblocker = by
        if frm != to and to == GO_WAITING:
            g.reason, g.block_stack = reason, tstack
        if frm == GO_NOT_EXIST:
            g.created, g.start_stack = True, tstack
        if frm != to:
            g.state, g.since = to, t
        first_run = to == GO_RUNNING and not g.ran
        g.ran = g.ran or to == GO_RUNNING
        start, run_from, run_to, run_stack, run_reason = g.run
        if to == run_to:
            continue
        g.run = (t, frm, to, stack, reason)
        if run_to == GO_RUNNABLE and not first_run:
            ref.latencies.append(t - start)
            g.runnable.append(t - start)
            ref.by_stack[(run_stack, "n")] += 1
            ref.by_stack[(run_stack, "ns")] += t - start
        elif run_to == GO_WAITING:
            ref.pairs[(gid, run_stack)] += 1
            if run_from != _UNDETERMINED:
                site = ref.sites.setdefault((run_stack, strings[run_reason]), [0, 0, 0, 0])
                site[0] += 1
                site[1] += t - start
    for g in gs.values():
        start, _, run_to, run_stack, run_reason = g.run
        if run_to == GO_WAITING:
            site = ref.sites.setdefault((run_stack, strings[run_reason]), [0, 0, 0, 0])
            site[2] += 1
            site[3] += trace.end_time - start
    return ref


def _assert_same(facts: TraceFacts, ref: _Reference) -> None:
    assert facts.procs == ref.procs
    assert sorted(facts.latencies_ns.tolist()) == sorted(ref.latencies)
    by_stack = Counter({(s, "n"): n for s, (n, _) in facts.runnable_by_stack.items()})
    by_stack.update({(s, "ns"): ns for s, (_, ns) in facts.runnable_by_stack.items()})
    assert by_stack == ref.by_stack
    sites = {k: [s.waits, s.wait_ns, s.open_waits, s.open_ns]
             for k, s in facts.wait_sites.items()}
    assert sites == ref.sites
    w = facts.closed_waits
    pairs = Counter({(g, s): n for g, s, n in zip(w.goroutine.tolist(), w.stack.tolist(),
                                                   w.count.tolist(), strict=True)})
    assert pairs == ref.pairs
    assert set(facts.goroutines) == set(ref.goroutines)
    strings = facts.catalog.strings
    for gid, r in ref.goroutines.items():
        got = facts.goroutines[gid]
        want = (not r.created, GO_STATES[r.first_state], GO_STATES[r.state], r.wakes,
                r.runtime_wakes, r.wake_times[0] if r.wakes else -1,
                r.wake_times[-1] if r.wakes else -1, strings[r.reason],
                r.since if r.state == GO_WAITING else -1, r.block_stack, r.last_stack,
                r.start_stack, r.unblocker, len(r.runnable), sum(r.runnable))
        have = (got.existed_at_start, got.first_state, got.end_state, got.wakes,
                got.runtime_wakes, got.first_wake_ns, got.last_wake_ns, got.wait_reason,
                got.blocked_since_ns, got.block_stack, got.last_stack, got.start_stack,
                got.unblocker, got.runnable_waits, got.runnable_ns)
        assert have == want, gid


@pytest.mark.parametrize("version", ["1.21", "1.22", "1.27", "flight-1.27"])
def test_facts_equal_a_reference_pass(version: str, traces: dict[str, Path]) -> None:
    """Every fact of every goroutine, site, pair and interval equals the reference's."""
    facts = trace_facts(traces[version])
    ref = _reference(traces[version])
    # the trace exercises what is compared
    assert len(ref.goroutines) > 1000 and len(ref.latencies) > 1000
    assert sum(g.runtime_wakes for g in ref.goroutines.values()) > 0
    assert sum(g.wakes - g.runtime_wakes for g in ref.goroutines.values()) > 0
    assert any(s[0] for s in ref.sites.values()) and any(s[2] for s in ref.sites.values())
    _assert_same(facts, ref)


@pytest.mark.parametrize("version", ["1.22", "1.27"])
def test_trace_cut_inside_a_generation(version: str, traces: dict[str, Path]) -> None:
    """A trace cut in the middle of a generation: the facts of what was read before the
    damage (including the damaged generation's events ordered before it) equal the
    reference's on the same bytes."""
    path = traces[version]
    gens = summarize_trace(path).generations
    assert len(gens) >= 2, "GODEBUG should have made a generation every 100 ms"
    # The biggest after the first, not the last: that one may start just before tracing
    # stops, too small for its middle to be safely inside it (a cut exactly between two
    # batches of a Go 1.22 generation can read as a whole one).
    cut_in = max(gens[1:], key=lambda g: g.end_offset - g.start_offset)
    data = path.read_bytes()[: (cut_in.start_offset + cut_in.end_offset) // 2]
    facts = trace_facts(data, "cut.trace")
    assert facts.damage is not None and facts.damage.fraction_lost > 0
    _assert_same(facts, _reference(data))


@pytest.mark.parametrize("version", ["1.21", "1.22", "flight-1.27"])
def test_runnable_time_agrees_with_the_summary(version: str,
                                               traces: dict[str, Path]) -> None:
    """Each goroutine's counted runnable time (facts) equals its runnable time in the
    summary (another pass of the core) without the part before its first run."""
    path = traces[version]
    g = summarize_trace(path).goroutines
    ran = g["first_run"] >= 0
    want = g["runnable_ns"] - np.where(ran, g["start_runnable_ns"], 0)
    table = trace_facts(path).goroutines
    rows, found = table.rows(g["id"])
    assert found.all()
    np.testing.assert_array_equal(table.columns["runnable_ns"][rows], want)
    assert int(want.sum()) > 0


def _go_profile(trace: Path, kind: str) -> Counter[tuple[tuple[str, int], ...]]:
    """go tool trace -pprof=KIND: (stack, "n" | "ns") → total, stacks as pprof keeps them."""
    out = trace.with_suffix(f".{kind}.pb")
    go_tool("1.27", "trace", f"-pprof={kind}", str(trace), stdout=out)
    got: Counter[tuple[tuple[str, int], ...]] = Counter()
    for s in parse_profile(out.read_bytes(), str(out)).samples:
        key = tuple((f.function, f.line) for f in s.frames if f.function)
        got[key + (("n", 0),)] += s.values[0]
        got[key + (("ns", 0),)] += s.values[1]
    return got


def _ours(facts: TraceFacts, rows: list[tuple[int, int, int]]) \
        -> Counter[tuple[tuple[str, int], ...]]:
    """(stack ID, n, ns) rows keyed like _go_profile."""
    got: Counter[tuple[tuple[str, int], ...]] = Counter()
    for sid, n, ns in rows:
        key = tuple((f.function, f.line) for f in facts.frames(sid) if f.function)
        got[key + (("n", 0),)] += n
        got[key + (("ns", 0),)] += ns
    return +got


@pytest.mark.parametrize("version", ["1.21", "1.22"])
def test_older_formats_agree_with_go_tool_trace(version: str,
                                                traces: dict[str, Path]) -> None:
    """Runnable intervals and ended sync/net waits by stack equal Go 1.27's
    -pprof=sched|sync|net on Go 1.21 (converted v1) and Go 1.22 traces."""
    path = traces[version]
    facts = trace_facts(path)
    sched = _ours(facts, [(s, n, ns) for s, (n, ns) in facts.runnable_by_stack.items()])
    assert sched and sched == +_go_profile(path, "sched")
    reasons = {"sync": lambda r: "chan" in r or "sync" in r or "select" in r,
               "net": lambda r: r == "network"}
    for kind, match in reasons.items():
        rows = [(sid, s.waits, s.wait_ns) for (sid, r), s in facts.wait_sites.items()
                if s.waits and match(r)]
        ours = _ours(facts, rows)
        assert ours and ours == +_go_profile(path, kind), kind


def test_facts_only_when_asked(traces: dict[str, Path]) -> None:
    """A reader opened without facts=True says so instead of handing out nothing."""
    reader = TraceReader(traces["1.27"])
    with pytest.raises(ValueError, match="facts=True"):
        reader.facts()
