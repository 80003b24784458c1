"""Step 2 of the method: what an execution trace says about each goroutine.

One streaming pass over the trace's state transitions (a generation at a time, so memory
follows the number of goroutines and waits, not the file) gives, per goroutine: how often
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

from collections import Counter
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
    """Waits that ended in the window, and their total time."""
    wait_ns: int = 0
    open_waits: int = 0
    """Waits still going when the trace ended, and their time up to the end."""
    open_ns: int = 0


@dataclass
class TraceFacts:
    """Per-goroutine facts and program-wide latencies of one execution trace."""

    source: str
    start_ns: int
    end_ns: int
    procs: int
    """Distinct Ps seen (GOMAXPROCS, as far as the trace shows)."""
    goroutines: dict[int, GoroutineFacts]
    latencies_ns: Int64s
    """Every closed runnable → running interval, in ns."""
    runnable_by_stack: dict[int, tuple[int, int]]
    """(intervals, ns) by the stack of the event that made the goroutine runnable, as
    ``go tool trace -pprof=sched`` attributes them."""
    wait_sites: dict[tuple[int, str], WaitSite]
    closed_waits: Counter[tuple[int, int]]
    """Ended waits by (goroutine, stack where it blocked)."""
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
    """Accumulators of the streaming pass, and what carries over a generation boundary."""

    wakes: Counter[int] = field(default_factory=Counter)
    runtime_wakes: Counter[int] = field(default_factory=Counter)
    first_wake: dict[int, int] = field(default_factory=dict)
    last_wake: dict[int, int] = field(default_factory=dict)
    first_state: dict[int, int] = field(default_factory=dict)
    latencies: list[Int64s] = field(default_factory=list)
    runnable_count: Counter[int] = field(default_factory=Counter)
    runnable_ns: Counter[int] = field(default_factory=Counter)
    runnable_by_stack: dict[int, list[int]] = field(default_factory=dict)
    sites: dict[tuple[int, int], WaitSite] = field(default_factory=dict)
    closed_waits: Counter[tuple[int, int]] = field(default_factory=Counter)
    procs: set[int] = field(default_factory=set)
    has_run: set[int] = field(default_factory=set)
    carry: dict[str, NDArray[Any]] | None = None
    """Each goroutine's last transition of the previous generation (its open interval)."""


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
        acc.procs.update(np.unique(procs[procs >= 0]).tolist())
        sel = (events["kind"] == KIND_STATE_TRANSITION) & (events["scope"] == SCOPE_GOROUTINE)
        cols = {k: events[k][sel] for k in _COLUMNS}
        _count_wakes(acc, cols)
        _intervals(acc, cols)
    summary = reader.summary()
    strings = summary.catalog.strings
    facts = TraceFacts(
        source=summary.source, start_ns=summary.start_time, end_ns=summary.end_time,
        procs=len(acc.procs), goroutines={},
        latencies_ns=np.concatenate(acc.latencies) if acc.latencies
        else np.zeros(0, np.int64),
        runnable_by_stack={k: (v[0], v[1]) for k, v in acc.runnable_by_stack.items()},
        wait_sites={}, closed_waits=acc.closed_waits, catalog=summary.catalog,
        damage=summary.damage,
    )
    _open_waits(facts, acc)
    for (sid, rid), site in acc.sites.items():
        site.reason = strings[rid]
        facts.wait_sites[(sid, site.reason)] = site
    _per_goroutine(facts, acc, summary.goroutines, summary.catalog.strings)
    return facts


def _count_wakes(acc: _Pass, c: dict[str, NDArray[Any]]) -> None:
    """Waiting → Runnable transitions per goroutine, and who did them."""
    woke = (c["from_state"] == GO_WAITING) & (c["to_state"] == GO_RUNNABLE)
    ids, times, by = c["resource"][woke], c["time"][woke], c["goroutine"][woke]
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    for gid, i, j, n in zip(uniq.tolist(), first.tolist(), last.tolist(), counts.tolist(),
                            strict=True):
        acc.wakes[gid] += n
        acc.first_wake.setdefault(gid, int(times[i]))
        acc.last_wake[gid] = int(times[j])
    by_runtime = np.unique(ids[by < 0], return_counts=True)
    for gid, n in zip(*(a.tolist() for a in by_runtime), strict=True):
        acc.runtime_wakes[gid] += n
    seen = np.unique(c["resource"], return_index=True)
    for gid, i in zip(*(a.tolist() for a in seen), strict=True):
        acc.first_state.setdefault(gid, int(c["to_state"][i]))


def _intervals(acc: _Pass, c: dict[str, NDArray[Any]]) -> None:
    """Runnable intervals (scheduler latency) and waits, per goroutine, across generations.

    Each goroutine's transitions, in time order, are cut into runs of the same target
    state; a run ends at the goroutine's next transition to another state. A run still
    open at the end of the generation is carried into the next one.
    """
    if acc.carry is not None:
        c = {k: np.concatenate([acc.carry[k], c[k]]) for k in _COLUMNS}
    order = np.lexsort((np.arange(len(c["time"])), c["resource"]))
    gid, to, t = c["resource"][order], c["to_state"][order], c["time"][order]
    stack, reason = c["stack"][order], c["name"][order]
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

    runnable = (run_state == GO_RUNNABLE) & ~np.isin(e_idx, _first_runs(acc, gid, to))
    lat, lat_g, lat_stack = dur[runnable], gid[s_idx][runnable], stack[s_idx][runnable]
    acc.latencies.append(lat.astype(np.int64))
    _add_by(acc.runnable_count, acc.runnable_ns, lat_g, lat)
    for sid, cnt, ns in _sum_by(lat_stack, lat):
        entry = acc.runnable_by_stack.setdefault(sid, [0, 0])
        entry[0] += cnt
        entry[1] += ns

    waiting = run_state == GO_WAITING
    w_g, w_stack, w_reason, w_dur = (gid[s_idx][waiting], stack[s_idx][waiting],
                                     reason[s_idx][waiting], dur[waiting])
    keys = np.stack([w_stack.astype(np.int64), w_reason.astype(np.int64)])
    if w_dur.size:
        uniq, inv = np.unique(keys, axis=1, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv)
        totals = np.bincount(inv, weights=w_dur.astype(np.float64))
        for (sid, rid), cnt, ns in zip(uniq.T.tolist(), counts.tolist(), totals.tolist(),
                                       strict=True):
            site = _site(acc, sid, rid)
            site.waits += cnt
            site.wait_ns += int(ns)
        pairs, pcounts = np.unique(np.stack([w_g, w_stack.astype(np.int64)]), axis=1,
                                   return_counts=True)
        for (g, sid), cnt in zip(pairs.T.tolist(), pcounts.tolist(), strict=True):
            acc.closed_waits[(g, sid)] += cnt

    open_starts = starts[~closed]
    acc.carry = {k: c[k][order][open_starts] for k in _COLUMNS}


def _first_runs(acc: _Pass, gid: Int64s, to: NDArray[Any]) -> Int64s:
    """Indexes of the transitions that are a goroutine's first run in the trace."""
    running = np.flatnonzero(to == GO_RUNNING)
    ids, first = np.unique(gid[running], return_index=True)
    new = ~np.isin(ids, np.fromiter(acc.has_run, np.int64, len(acc.has_run)))
    acc.has_run.update(ids[new].tolist())
    return running[first[new]]


def _site(acc: _Pass, stack: int, reason: int) -> WaitSite:
    """The site of (stack, reason string ID); its reason text is filled in at the end."""
    site = acc.sites.get((stack, reason))
    if site is None:
        site = acc.sites[(stack, reason)] = WaitSite(stack, "")
    return site


def _sum_by(keys: NDArray[Any], values: Int64s) -> list[tuple[int, int, int]]:
    """(key, count, sum) per distinct key."""
    if not len(keys):
        return []
    uniq, inv = np.unique(keys, return_inverse=True)
    counts = np.bincount(inv)
    sums = np.bincount(inv, weights=values.astype(np.float64))
    return [(int(k), int(n), int(s)) for k, n, s in zip(uniq.tolist(), counts.tolist(),
                                                         sums.tolist(), strict=True)]


def _add_by(count: Counter[int], total: Counter[int], keys: NDArray[Any],
            values: Int64s) -> None:
    for k, n, s in _sum_by(keys, values):
        count[k] += n
        total[k] += s


def _open_waits(facts: TraceFacts, acc: _Pass) -> None:
    """Waits still open at the end: counted per site up to the trace's end."""
    if acc.carry is None:
        return
    c = acc.carry
    waiting = c["to_state"] == GO_WAITING
    for sid, rid, t in zip(c["stack"][waiting].tolist(), c["name"][waiting].tolist(),
                           c["time"][waiting].tolist(), strict=True):
        site = _site(acc, sid, rid)
        site.open_waits += 1
        site.open_ns += facts.end_ns - t


def _per_goroutine(facts: TraceFacts, acc: _Pass, table: Any, strings: list[str]) -> None:
    cols = {k: table[k].tolist() for k in (
        "id", "created", "state", "since", "block_reason", "block_stack", "unblocker",
        "last_stack", "start_stack")}
    for i, gid in enumerate(cols["id"]):
        state = cols["state"][i]
        waiting = state == GO_WAITING
        facts.goroutines[gid] = GoroutineFacts(
            id=gid, existed_at_start=cols["created"][i] < 0,
            first_state=GO_STATES[acc.first_state.get(gid, state)],
            end_state=GO_STATES[state], wakes=acc.wakes[gid],
            runtime_wakes=acc.runtime_wakes[gid],
            first_wake_ns=acc.first_wake.get(gid, -1), last_wake_ns=acc.last_wake.get(gid, -1),
            wait_reason=strings[cols["block_reason"][i]],
            blocked_since_ns=cols["since"][i] if waiting else -1,
            block_stack=cols["block_stack"][i], last_stack=cols["last_stack"][i],
            start_stack=cols["start_stack"][i],
            unblocker=cols["unblocker"][i],
            runnable_waits=acc.runnable_count[gid], runnable_ns=acc.runnable_ns[gid],
        )
