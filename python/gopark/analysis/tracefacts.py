"""Step 2 of the method: what an execution trace says about each goroutine.

Per goroutine: how often it was woken, where it waited, whether it stayed blocked the
whole window, who woke it last; and for the whole program the scheduler latency
(runnable → running) as a distribution, the seed's second metric. The Rust core gathers
all of it in the same streaming pass as the per-goroutine summary (src/facts.rs: memory
follows the goroutines and wait sites, plus 8 bytes per runnable interval for exact
percentiles, not the events); this module gives it a typed shape.

Runnable intervals are counted as ``go tool trace -pprof=sched`` counts them, so the
numbers agree with Go's tool: an interval starts when a goroutine becomes runnable
(including a runnable status at the trace start) and ends at its next transition to
another state; the wait before a goroutine's first run in the window is left out (Go's
tool clips intervals to the time after that first run), and so are intervals still open
at the end. Waits by site are counted like ``-pprof=sync`` / ``-pprof=net``: a wait
already going when the goroutine first showed up has no known start, so it is not in its
site's wait time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gopark.formats.trace import GO_STATES, GO_WAITING, Catalog, Columns, Damage, TraceReader
from gopark.model import Frame

Int64s = NDArray[np.int64]


@dataclass(slots=True)
class GoroutineFacts:
    """What the trace saw one goroutine do."""

    id: int
    existed_at_start: bool
    """Created before the trace started (no creation event in the window)."""
    first_state: str
    """The state it was first seen in ("Waiting" for one blocked when the trace began)."""
    end_state: str
    """Its state when the trace ended (see formats.trace.GO_STATES)."""
    wakes: int = 0
    """Waiting → Runnable transitions in the window."""
    runtime_wakes: int = 0
    """Wakes done by no goroutine: timers and the network poller."""
    first_wake_ns: int = -1
    last_wake_ns: int = -1
    wait_reason: str = ""
    """The reason of its last wait (when it ended blocked: what it is blocked on)."""
    blocked_since_ns: int = -1
    """When it entered its last state, if that is Waiting."""
    block_stack: int = 0
    """Stack ID (in the trace's catalog) where it last blocked."""
    last_stack: int = 0
    """Stack ID of the last place the trace saw it (where it blocked, or its entry)."""
    start_stack: int = 0
    """Stack ID of its entry function, for one created in the window (0: unknown)."""
    unblocker: int = -1
    """The goroutine that woke it last (-1: none or the runtime)."""
    runnable_waits: int = 0
    """Closed runnable → running intervals, and their total time."""
    runnable_ns: int = 0

    @property
    def blocked_at_end(self) -> bool:
        """Whether it was blocked when the trace ended."""
        return self.end_state == "Waiting"

    @property
    def blocked_whole_window(self) -> bool:
        """Blocked from before the trace began to its end, never woken."""
        return self.existed_at_start and self.first_state == "Waiting" and self.wakes == 0 \
            and self.blocked_at_end

    @property
    def wake_period_ns(self) -> float | None:
        """Mean time between wakes, for a goroutine woken at least twice."""
        if self.wakes < 2:
            return None
        return (self.last_wake_ns - self.first_wake_ns) / (self.wakes - 1)


@dataclass(slots=True)
class WaitSite:
    """Waits that began at one stack for one reason (like a -pprof=sync/net row)."""

    stack: int
    reason: str
    waits: int = 0
    """Waits that began and ended in the window, and their total time."""
    wait_ns: int = 0
    open_waits: int = 0
    """Waits still going when the trace ended, and their time up to the end."""
    open_ns: int = 0


class GoroutineFactsTable(Mapping[int, GoroutineFacts]):
    """Per-goroutine facts, stored as numpy columns (a busy trace has ~10⁶ goroutines);
    ``table[id]`` builds one goroutine's GoroutineFacts."""

    def __init__(self, ids: Int64s, columns: dict[str, NDArray[Any]],
                 strings: list[str]) -> None:
        self.ids = ids
        self.columns = columns
        self._strings = strings
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    def rows(self, ids: NDArray[Any]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        """Row of each id, and whether the id is in the table at all."""
        pos = np.searchsorted(self._sorted, ids)
        pos = np.minimum(pos, max(len(self._sorted) - 1, 0))
        found = self._sorted[pos] == ids if len(self._sorted) else np.zeros(len(ids), bool)
        return self._order[pos], found

    def _row(self, gid: object) -> int | None:
        if not isinstance(gid, int) or not len(self._sorted):
            return None
        pos = int(np.searchsorted(self._sorted, gid))
        if pos < len(self._sorted) and int(self._sorted[pos]) == gid:
            return int(self._order[pos])
        return None

    def __contains__(self, gid: object) -> bool:
        return self._row(gid) is not None

    def __getitem__(self, gid: int) -> GoroutineFacts:
        row = self._row(gid)
        if row is None:
            raise KeyError(gid)
        c = self.columns

        def num(name: str) -> int:
            return int(c[name][row])

        return GoroutineFacts(
            id=gid, existed_at_start=bool(c["existed_at_start"][row]),
            first_state=GO_STATES[num("first_state")], end_state=GO_STATES[num("end_state")],
            wakes=num("wakes"), runtime_wakes=num("runtime_wakes"),
            first_wake_ns=num("first_wake_ns"), last_wake_ns=num("last_wake_ns"),
            wait_reason=self._strings[num("wait_reason")],
            blocked_since_ns=num("blocked_since_ns"), block_stack=num("block_stack"),
            last_stack=num("last_stack"), start_stack=num("start_stack"),
            unblocker=num("unblocker"), runnable_waits=num("runnable_waits"),
            runnable_ns=num("runnable_ns"),
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class WaitPairs:
    """Ended waits by goroutine and the stack it blocked at: three parallel columns."""

    goroutine: Int64s
    stack: Int64s
    count: Int64s


@dataclass
class TraceFacts:
    """Per-goroutine facts and program-wide latencies of one execution trace."""

    source: str
    start_ns: int
    end_ns: int
    procs: int
    """Distinct Ps seen (GOMAXPROCS, as far as the trace shows)."""
    goroutines: GoroutineFactsTable
    latencies_ns: Int64s
    """Every counted runnable → running interval, in ns (ticks when times_in_ticks)."""
    runnable_by_stack: dict[int, tuple[int, int]]
    """(intervals, ns) by the stack of the event that made the goroutine runnable, as
    ``go tool trace -pprof=sched`` attributes them."""
    wait_sites: dict[tuple[int, str], WaitSite]
    closed_waits: WaitPairs
    catalog: Catalog
    damage: Damage | None
    times_in_ticks: bool = False
    """Times (every ``*_ns`` field and latency) are clock ticks, not nanoseconds: the
    trace's clock frequency is unknown (see TraceSummary.times_in_ticks)."""
    _frames: dict[int, tuple[Frame, ...]] = field(default_factory=dict, repr=False)

    @property
    def duration_ns(self) -> int:
        """The trace's window."""
        return self.end_ns - self.start_ns

    def frames(self, stack_id: int) -> tuple[Frame, ...]:
        """A trace stack as model frames (innermost first), cached."""
        got = self._frames.get(stack_id)
        if got is None:
            got = self._frames[stack_id] = tuple(self.catalog.stack(stack_id))
        return got

    def sched_latency_ms(self) -> dict[str, float] | None:
        """Mean, p50 and p99 of the runnable → running intervals (None without any, or
        when times are ticks: then no milliseconds are known)."""
        if self.times_in_ticks:
            return None
        return latency_summary(self.latencies_ns)


def latency_summary(latencies_ns: Int64s) -> dict[str, float] | None:
    """{"mean", "p50", "p99"} in ms of a set of intervals, or None when empty."""
    if not len(latencies_ns):
        return None
    ms = latencies_ns.astype(np.float64) / 1e6
    p50, p99 = np.percentile(ms, [50, 99])
    return {"mean": round(float(ms.mean()), 3), "p50": round(float(p50), 3),
            "p99": round(float(p99), 3)}


def trace_facts(source: str | Path | bytes, name: str | None = None) -> TraceFacts:
    """Read an execution trace and return what it says about each goroutine.

    Raises gopark.errors.InputError when nothing of the trace is readable; a trace damaged
    partway gives the facts up to the damage (``damage`` says where).
    """
    reader = TraceReader(source, name, facts=True)
    summary = reader.summary()
    raw = reader.facts()
    strings = summary.catalog.strings
    by_stack = raw.runnable_by_stack
    return TraceFacts(
        source=summary.source, start_ns=summary.start_time, end_ns=summary.end_time,
        procs=raw.procs, goroutines=_table(summary.goroutines, raw.goroutines, strings),
        latencies_ns=raw.latencies_ns,
        runnable_by_stack={k: (n, ns) for k, n, ns in zip(
            *(by_stack[c].tolist() for c in ("stack", "n", "ns")), strict=True)},
        wait_sites=_wait_sites(raw.wait_sites, strings),
        closed_waits=WaitPairs(*(raw.wait_pairs[c].astype(np.int64)
                                 for c in ("goroutine", "stack", "count"))),
        catalog=summary.catalog, damage=summary.damage, times_in_ticks=summary.times_in_ticks,
    )


def _wait_sites(c: Columns, strings: list[str]) -> dict[tuple[int, str], WaitSite]:
    """Waits by (stack, reason), in the core's order (sites with ended waits first)."""
    sites: dict[tuple[int, str], WaitSite] = {}
    names = ("stack", "reason", "waits", "wait_ns", "open_waits", "open_ns")
    for sid, rid, waits, wait_ns, open_waits, open_ns in zip(
            *(c[n].tolist() for n in names), strict=True):
        key = (sid, strings[rid])
        s = sites.get(key)
        if s is None:
            s = sites[key] = WaitSite(sid, strings[rid])
        # two string IDs of one text (an odd trace) make one site
        s.waits += waits
        s.wait_ns += wait_ns
        s.open_waits += open_waits
        s.open_ns += open_ns
    return sites


def _table(summary: Columns, facts: Columns, strings: list[str]) -> GoroutineFactsTable:
    """The engine's per-goroutine summary joined with its facts (same rows)."""
    state = summary["state"].astype(np.int64)

    def i64(c: Columns, name: str) -> Int64s:
        return c[name].astype(np.int64, copy=False)

    cols: dict[str, NDArray[Any]] = {
        "existed_at_start": summary["created"] < 0,
        "first_state": i64(facts, "first_state"), "end_state": state,
        "wakes": i64(facts, "wakes"), "runtime_wakes": i64(facts, "runtime_wakes"),
        "first_wake_ns": i64(facts, "first_wake_ns"),
        "last_wake_ns": i64(facts, "last_wake_ns"),
        "wait_reason": i64(summary, "block_reason"),
        "blocked_since_ns": np.where(state == GO_WAITING, summary["since"], -1),
        "block_stack": i64(summary, "block_stack"), "last_stack": i64(summary, "last_stack"),
        "start_stack": i64(summary, "start_stack"), "unblocker": i64(summary, "unblocker"),
        "runnable_waits": i64(facts, "runnable_waits"),
        "runnable_ns": i64(facts, "runnable_ns"),
    }
    return GoroutineFactsTable(i64(summary, "id"), cols, strings)
