"""Step 2 of the method: what an execution trace says about each goroutine.

One streaming pass over the trace's state transitions (a generation at a time: memory
follows the number of goroutines and wait sites, plus 8 bytes per runnable interval for
exact percentiles, not the size of the events) gives, per goroutine: how often
it was woken, where it waited, whether it stayed blocked the whole window, who woke it
last; and for the whole program the scheduler latency (runnable → running) as a
distribution, the seed's second metric.

Runnable intervals are counted as ``go tool trace -pprof=sched`` counts them, so the
numbers agree with Go's tool: an interval starts when a goroutine becomes runnable
(including a runnable status at the trace start) and ends at its next transition to
another state; the wait before a goroutine's first run in the window is left out (Go's
tool clips intervals to the time after that first run), and so are intervals still open
at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gopark.formats.trace import (
    GO_RUNNABLE,
    GO_RUNNING,
    GO_STATES,
    GO_WAITING,
    KIND_STATE_TRANSITION,
    SCOPE_GOROUTINE,
    Catalog,
    Damage,
    TraceReader,
)
from gopark.model import Frame

Int64s = NDArray[np.int64]
_UNDETERMINED = GO_STATES.index("Undetermined")


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
    """Every counted runnable → running interval, in ns."""
    runnable_by_stack: dict[int, tuple[int, int]]
    """(intervals, ns) by the stack of the event that made the goroutine runnable, as
    ``go tool trace -pprof=sched`` attributes them."""
    wait_sites: dict[tuple[int, str], WaitSite]
    closed_waits: WaitPairs
    catalog: Catalog
    damage: Damage | None
    _frames: dict[int, tuple[Frame, ...]] = field(default_factory=dict, repr=False)

    @property
    def duration_ns(self) -> int:
        """The trace's window."""
        return self.end_ns - self.start_ns

    def frames(self, stack_id: int) -> tuple[Frame, ...]:
        """A trace stack as model frames (innermost first), cached."""
        got = self._frames.get(stack_id)
        if got is None:
            got = self._frames[stack_id] = tuple(
                Frame(f.function, f.file, f.line) for f in self.catalog.stack(stack_id))
        return got

    def sched_latency_ms(self) -> dict[str, float] | None:
        """Mean, p50 and p99 of the runnable → running intervals (None without any)."""
        return latency_summary(self.latencies_ns)


def latency_summary(latencies_ns: Int64s) -> dict[str, float] | None:
    """{"mean", "p50", "p99"} in ms of a set of intervals, or None when empty."""
    if not len(latencies_ns):
        return None
    ms = latencies_ns.astype(np.float64) / 1e6
    p50, p99 = np.percentile(ms, [50, 99])
    return {"mean": round(float(ms.mean()), 3), "p50": round(float(p50), 3),
            "p99": round(float(p99), 3)}


@dataclass
class _Pass:
    """What the streaming pass collects: per generation arrays, joined at the end, and
    what carries over a generation boundary."""

    parts: dict[str, list[NDArray[Any]]] = field(default_factory=dict)
    procs: set[int] = field(default_factory=set)
    has_run: Int64s = field(default_factory=lambda: np.zeros(0, np.int64))
    """Goroutines seen running so far (sorted)."""
    carry: dict[str, NDArray[Any]] | None = None
    """Each goroutine's last run of transitions of the previous generation, if open."""

    def add(self, **arrays: NDArray[Any]) -> None:
        for k, v in arrays.items():
            self.parts.setdefault(k, []).append(v)

    def joined(self, name: str) -> NDArray[Any]:
        parts = self.parts.get(name)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


_COLUMNS = ("time", "goroutine", "resource", "from_state", "to_state", "name", "stack")


def trace_facts(source: str | Path | bytes, name: str | None = None) -> TraceFacts:
    """Read an execution trace and return what it says about each goroutine.

    Raises gopark.errors.InputError when nothing of the trace is readable; a trace damaged
    partway gives the facts up to the damage (``damage`` says where).
    """
    reader = TraceReader(source, name)
    acc = _Pass()
    for events in reader.generations():
        procs = events["proc"]
        acc.procs.update(np.unique(procs[procs >= 0]).tolist())  # IDs from the file: no bincount
        sel = (events["kind"] == KIND_STATE_TRANSITION) & (events["scope"] == SCOPE_GOROUTINE)
        cols = {k: events[k][sel] for k in _COLUMNS}
        del events
        _wakes_and_first_states(acc, cols)
        _intervals(acc, cols)
    summary = reader.summary()
    strings = summary.catalog.strings
    lat = acc.joined("lat")
    by_stack = _sum_arrays(acc.joined("lat_stack"), acc.joined("lat_stack_n"),
                           acc.joined("lat_stack_ns"))
    return TraceFacts(
        source=summary.source, start_ns=summary.start_time, end_ns=summary.end_time,
        procs=len(acc.procs), goroutines=_table(acc, summary.goroutines, strings),
        latencies_ns=lat.astype(np.int64),
        runnable_by_stack={k: (n, ns) for k, n, ns in zip(*(a.tolist() for a in by_stack),
                                                          strict=True)},
        wait_sites=_wait_sites(acc, strings, summary.end_time),
        closed_waits=_wait_pairs(acc), catalog=summary.catalog, damage=summary.damage,
    )


def _wakes_and_first_states(acc: _Pass, c: dict[str, NDArray[Any]]) -> None:
    """Waiting → Runnable transitions per goroutine (when, and how many by no goroutine),
    and each goroutine's first state; summed per generation."""
    woke = (c["from_state"] == GO_WAITING) & (c["to_state"] == GO_RUNNABLE)
    ids, times = c["resource"][woke], c["time"][woke]
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    by_runtime, n_runtime = np.unique(ids[c["goroutine"][woke] < 0], return_counts=True)
    seen, seen_first = np.unique(c["resource"], return_index=True)
    acc.add(wake_g=uniq, wake_n=counts, wake_first=times[first], wake_last=times[last],
            runtime_g=by_runtime, runtime_n=n_runtime,
            seen_g=seen, seen_state=c["to_state"][seen_first])


def _intervals(acc: _Pass, c: dict[str, NDArray[Any]]) -> None:
    """Runnable intervals (scheduler latency) and waits, per goroutine, across generations.

    Each goroutine's transitions, in time order, are cut into runs of the same target
    state; a run ends at the goroutine's next transition to another state. A run still
    open at the end of the generation is carried into the next one.
    """
    if acc.carry is not None:
        c = {k: np.concatenate([acc.carry[k], c[k]]) for k in _COLUMNS}
    order = np.argsort(c["resource"], kind="stable")  # by goroutine, then time
    c = {k: v[order] for k, v in c.items()}
    gid, to, t = c["resource"], c["to_state"], c["time"]
    n = len(gid)
    same_prev = np.zeros(n, bool)
    same_prev[1:] = gid[1:] == gid[:-1]
    same_to = same_prev.copy()
    same_to[1:] &= to[1:] == to[:-1]
    starts = np.flatnonzero(~same_to)  # first transition of each run
    run_of = np.cumsum(~same_to) - 1  # run index of each transition
    # a run ends at the next run's first transition, when it is the same goroutine's
    ends_at = np.full(len(starts), -1, np.int64)
    follows = starts[1:][same_prev[starts[1:]]]
    ends_at[run_of[follows - 1]] = follows
    closed = ends_at >= 0
    s_idx, e_idx = starts[closed], ends_at[closed]
    dur = t[e_idx] - t[s_idx]
    run_state = to[s_idx]

    first_run = np.zeros(n, bool)
    first_run[_first_runs(acc, gid, to)] = True
    runnable = (run_state == GO_RUNNABLE) & ~first_run[e_idx]
    lat = dur[runnable]
    ones = np.ones(len(lat), np.int64)
    lat_g, lat_n, lat_ns = _sum_arrays(gid[s_idx][runnable], ones, lat)
    lat_stack, lat_stack_n, lat_stack_ns = _sum_arrays(c["stack"][s_idx][runnable], ones, lat)
    acc.add(lat=lat, lat_g=lat_g, lat_n=lat_n, lat_ns=lat_ns, lat_stack=lat_stack,
            lat_stack_n=lat_stack_n, lat_stack_ns=lat_stack_ns)
    waiting = run_state == GO_WAITING
    # a wait already going when the goroutine first showed up has no known start: it
    # counts as a wake-up at its site, not in the site's wait time (nor in Go's profiles)
    timed = waiting & (c["from_state"][s_idx] != _UNDETERMINED)
    site, site_n, site_ns = _sum_arrays(_pack(c["stack"][s_idx][timed], c["name"][s_idx][timed]),
                                        np.ones(int(timed.sum()), np.int64), dur[timed])
    w_stack = c["stack"][s_idx][waiting]
    ones = np.ones(len(w_stack), np.int64)
    pair_g, pair_stack, pair_n = _sum_pairs(gid[s_idx][waiting], w_stack, ones)
    acc.add(site=site, site_n=site_n, site_ns=site_ns, pair_g=pair_g, pair_stack=pair_stack,
            pair_n=pair_n)
    open_starts = starts[~closed]
    acc.carry = {k: c[k][open_starts] for k in _COLUMNS}


def _first_runs(acc: _Pass, gid: Int64s, to: NDArray[Any]) -> NDArray[np.intp]:
    """Indexes of the transitions that are a goroutine's first run in the trace."""
    running = np.flatnonzero(to == GO_RUNNING)
    ids, first = np.unique(gid[running], return_index=True)
    new = ~_sorted_contains(acc.has_run, ids)
    acc.has_run = np.sort(np.concatenate([acc.has_run, ids[new]]))
    return running[first[new]]


def _sorted_contains(sorted_ids: Int64s, ids: NDArray[Any]) -> NDArray[np.bool_]:
    """Whether each of ``ids`` is in the sorted array."""
    if not len(sorted_ids):
        return np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.asarray(sorted_ids[pos] == ids)


def _pack(high: NDArray[Any], low: NDArray[Any]) -> Int64s:
    """Two columns of the engine's 32-bit IDs (stack, string) as one int64 key."""
    return (high.astype(np.int64) << 32) | low.astype(np.int64)


def _wait_sites(acc: _Pass, strings: list[str], end_ns: int) -> dict[tuple[int, str], WaitSite]:
    """Waits by (stack, reason): ended ones, and those still open at the end."""
    sites: dict[tuple[int, str], WaitSite] = {}

    def site(sid: int, rid: int) -> WaitSite:
        key = (sid, strings[rid])
        got = sites.get(key)
        if got is None:
            got = sites[key] = WaitSite(sid, strings[rid])
        return got

    keys, counts, totals = _sum_arrays(acc.joined("site"), acc.joined("site_n"),
                                       acc.joined("site_ns"))
    for key, n, ns in zip(keys.tolist(), counts.tolist(), totals.tolist(), strict=True):
        s = site(key >> 32, key & 0xFFFFFFFF)
        s.waits, s.wait_ns = n, ns
    if acc.carry is not None:
        c = acc.carry
        waiting = c["to_state"] == GO_WAITING
        for sid, rid, t in zip(c["stack"][waiting].tolist(), c["name"][waiting].tolist(),
                               c["time"][waiting].tolist(), strict=True):
            s = site(sid, rid)
            s.open_waits += 1
            s.open_ns += end_ns - t
    return sites


def _wait_pairs(acc: _Pass) -> WaitPairs:
    return WaitPairs(*_sum_pairs(acc.joined("pair_g"), acc.joined("pair_stack"),
                                 acc.joined("pair_n")))


def _sum_pairs(first: NDArray[Any], second: NDArray[Any],
               counts: NDArray[Any]) -> tuple[Int64s, Int64s, Int64s]:
    """Distinct (first, second) pairs with their counts summed. Goroutine IDs come from
    the file (any 64-bit value), so the pair is sorted on, not packed into one integer."""
    first, second = first.astype(np.int64), second.astype(np.int64)
    order = np.lexsort((second, first))
    first, second, counts = first[order], second[order], counts.astype(np.int64)[order]
    starts = np.flatnonzero(np.r_[True, (first[1:] != first[:-1]) | (second[1:] != second[:-1])]) \
        if len(first) else np.zeros(0, np.intp)
    summed = np.add.reduceat(counts, starts) if len(starts) else np.zeros(0, np.int64)
    return first[starts], second[starts], summed.astype(np.int64)


def _sum_arrays(keys: NDArray[Any], counts: NDArray[Any],
                values: NDArray[Any]) -> tuple[Int64s, Int64s, Int64s]:
    """Distinct keys, with their counts and values summed (int64 columns)."""
    uniq, inv = np.unique(keys.astype(np.int64), return_inverse=True)
    inv = inv.reshape(-1)
    n = np.zeros(len(uniq), np.int64)
    total = np.zeros(len(uniq), np.int64)
    np.add.at(n, inv, counts.astype(np.int64))
    np.add.at(total, inv, values.astype(np.int64))
    return uniq, n, total


def _table(acc: _Pass, summary: Any, strings: list[str]) -> GoroutineFactsTable:
    """The engine's per-goroutine summary joined with what the pass counted."""
    ids = summary["id"].astype(np.int64)
    n = len(ids)
    state = summary["state"].astype(np.int64)
    cols: dict[str, NDArray[Any]] = {
        "existed_at_start": summary["created"] < 0,
        "first_state": state.copy(), "end_state": state,
        "wakes": np.zeros(n, np.int64), "runtime_wakes": np.zeros(n, np.int64),
        "first_wake_ns": np.full(n, -1, np.int64), "last_wake_ns": np.full(n, -1, np.int64),
        "wait_reason": summary["block_reason"].astype(np.int64),
        "blocked_since_ns": np.where(state == GO_WAITING, summary["since"], -1),
        "block_stack": summary["block_stack"].astype(np.int64),
        "last_stack": summary["last_stack"].astype(np.int64),
        "start_stack": summary["start_stack"].astype(np.int64),
        "unblocker": summary["unblocker"].astype(np.int64),
        "runnable_waits": np.zeros(n, np.int64), "runnable_ns": np.zeros(n, np.int64),
    }
    table = GoroutineFactsTable(ids, cols, strings)

    def scatter(name: str, keys: NDArray[Any], values: NDArray[Any]) -> None:
        rows, found = table.rows(keys)
        cols[name][rows[found]] = values[found]

    wake_g = acc.joined("wake_g")
    if len(wake_g):  # per-generation rows, oldest first
        uniq, counts, _ = _sum_arrays(wake_g, acc.joined("wake_n"), acc.joined("wake_n"))
        scatter("wakes", uniq, counts)
        first = np.unique(wake_g, return_index=True)[1]
        scatter("first_wake_ns", uniq, acc.joined("wake_first")[first])
        last = len(wake_g) - 1 - np.unique(wake_g[::-1], return_index=True)[1]
        scatter("last_wake_ns", uniq, acc.joined("wake_last")[last])
        by_runtime, n_runtime, _ = _sum_arrays(acc.joined("runtime_g"), acc.joined("runtime_n"),
                                               acc.joined("runtime_n"))
        scatter("runtime_wakes", by_runtime, n_runtime)
    seen, first = np.unique(acc.joined("seen_g"), return_index=True)
    scatter("first_state", seen, acc.joined("seen_state")[first])
    lat_g, lat_n, lat_ns = _sum_arrays(acc.joined("lat_g"), acc.joined("lat_n"),
                                       acc.joined("lat_ns"))
    scatter("runnable_waits", lat_g, lat_n)
    scatter("runnable_ns", lat_g, lat_ns)
    return table
