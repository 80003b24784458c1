"""Step 3 of the method: cross-check the dump's stack groups with the trace's timelines.

The goroutines of a group are found in the trace by goroutine id (debug=2 dumps carry ids,
and a trace of the same process uses the same ids), or, when the snapshot has no ids or
comes from another run, by stack: trace goroutines that waited at a stack with the group's
user signature. For each group: how many the trace saw wait at the group's site, how many
were woken from it, how many never were, how many were blocked the whole window.

Then the findings the trace supports:

- a suspect group whose traced goroutines never woke is stronger evidence; when the group
  also grew during the window (goroutines created in it joined and never woke) while older
  ones stayed blocked throughout, the leak is ``confirmed``;
- a group whose goroutines keep being woken by a timer is a ticker loop (``ticker``),
  ``confirmed`` likewise when old ones looped throughout and new ones joined (the more
  serious finding wins the merge, so this category then replaces step 1's, which needs
  the source to tell a ticker from any channel receive);
- ``sched-latency`` when the mean runnable → running wait exceeds the seed's 10 ms;
- ``lock-contention`` when goroutines spend much time queued on one hot lock site.

A trace whose times are clock ticks (a Go 1.11–1.21 trace cut before the clock frequency
it writes at its end) gives no ``sched-latency`` finding: no wait can be compared with
10 ms. Its counts still hold, and so does lock contention (a ratio of queued time to the
window, the same in ticks); evidence quotes its durations in ticks.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from gopark.analysis import classify, suspects
from gopark.analysis.findings import Finding, goroutine_count
from gopark.analysis.inventory import Group, Inventory, key_of, signature
from gopark.analysis.tracefacts import TraceFacts, latency_summary, trace_facts
from gopark.errors import InputError
from gopark.formats.trace import GO_WAITING
from gopark.model import Frame

if TYPE_CHECKING:  # diagnose imports this module (to list it in CONTRIBUTORS)
    from gopark.analysis.diagnose import Context

SCHED_LATENCY_MS = 10.0
"""Mean runnable → running wait above which the seed sees scheduler pressure."""
TICKER_MIN_WAKES = 3
"""Wakes per goroutine in the window that make a loop (not a one-off wake-up)."""
TIMER_SHARE = 0.9
"""Share of wakes done by no goroutine (timers) that makes a timer loop."""
LOCK_MIN_WAITS = 50
"""Ended waits at one lock site that make it hot (contention, not one stuck holder)."""
LOCK_MIN_QUEUED = 1.0
"""Goroutine-seconds queued at the site per second of window: on average at least one
goroutine waits for the lock all the time."""

_LOCK_FUNCTIONS = ("sync.(*Mutex).Lock", "sync.(*RWMutex).Lock", "sync.(*RWMutex).RLock",
                   "internal/sync.(*Mutex).Lock")


@dataclass(slots=True)
class GroupCheck:
    """One dump group seen through the trace."""

    group: Group
    joined_by: str
    """"id" (goroutine ids) or "stack" (user signature)."""
    traced: int = 0
    """Goroutines of the group the trace saw at all."""
    at_site: int = 0
    """Of those, how many waited at the group's site during the window."""
    woken: int = 0
    """Woken from the site at least once."""
    never_woken: int = 0
    """Blocked at the site when the trace ended and never woken from it."""
    whole_window: int = 0
    """Blocked from before the trace began to its end."""
    new_never_woken: int = 0
    """Never woken, and created during the window (the group grew in it)."""
    old_alive: int = 0
    """Woken, alive from before the trace to its end (a loop that did not exit)."""
    new_alive: int = 0
    """Woken, created during the window and still alive at its end."""
    wakes_per_goroutine: float = 0.0
    """Median wakes from the site of the goroutines that were woken."""
    period_ns: float | None = None
    """Median time between wakes, for goroutines woken at least twice."""
    timer_share: float = 0.0
    """Share of their wakes done by no goroutine (timers, the network poller)."""
    wakers: list[int] = field(default_factory=list)
    """Goroutines that woke them last (distinct, at most a few)."""


class _SiteIndex:
    """Trace goroutines by the user key of the stacks they waited at (the key of the
    dump group that waits there)."""

    def __init__(self, facts: TraceFacts) -> None:
        self.facts = facts
        self._key_of_stack: dict[int, int] = {}
        self._key_ids: dict[str, int] = {}
        table = facts.goroutines.columns
        rows = np.flatnonzero((table["end_state"] == GO_WAITING) & (table["block_stack"] > 0))
        self._blocked_g = facts.goroutines.ids[rows]
        self._blocked_key = self._keys(table["block_stack"][rows])
        w = facts.closed_waits
        ok = w.stack > 0
        self._wait_g, self._wait_n, self._wait_key = w.goroutine[ok], w.count[ok], \
            self._keys(w.stack[ok])

    def _keys(self, stacks: NDArray[np.int64]) -> NDArray[np.int64]:
        """The key index of each stack (one signature per distinct stack)."""
        uniq, inv = np.unique(stacks, return_inverse=True)
        per = [self._key_index(int(sid)) for sid in uniq.tolist()]
        return np.array(per, np.int64)[inv.reshape(-1)] if per else np.zeros(0, np.int64)

    def _key_index(self, stack_id: int) -> int:
        got = self._key_of_stack.get(stack_id)
        if got is None:
            key = key_of(signature(self.facts.frames(stack_id), "user"), "user")
            got = self._key_of_stack[stack_id] = self._key_ids.setdefault(key, len(self._key_ids))
        return got

    def wakes(self, key: str) -> dict[int, int]:
        """Goroutine → waits ended at a stack with this key."""
        k = self._key_ids.get(key)
        out: dict[int, int] = {}
        if k is not None:
            sel = self._wait_key == k
            for gid, n in zip(self._wait_g[sel].tolist(), self._wait_n[sel].tolist(),
                              strict=True):
                out[gid] = out.get(gid, 0) + n
        return out

    def blocked(self, key: str) -> set[int]:
        """Goroutines blocked at a stack with this key when the trace ended."""
        k = self._key_ids.get(key)
        return set() if k is None else set(self._blocked_g[self._blocked_key == k].tolist())


def crosscheck(inv: Inventory, facts: TraceFacts) -> list[GroupCheck]:
    """Each group of the inventory that the trace saw, with what the trace says of it.

    Groups are joined by goroutine id when the ids name the same goroutines (see
    same_process); otherwise (no ids, or another process) by stack.
    """
    index = _SiteIndex(facts)
    by_id = same_process(inv, facts, index)
    out = []
    for group in inv.groups:
        check = _check(group, facts, index, by_id)
        if check.traced:
            out.append(check)
    return out


def same_process(inv: Inventory, facts: TraceFacts, index: _SiteIndex | None = None) -> bool:
    """Whether the snapshot's goroutine ids name the trace's goroutines.

    Ids alone prove little (every process has goroutines 1, 2, 3…): the goroutines the
    trace left blocked with a stack must mostly be blocked where the dump shows them.
    """
    index = index or _SiteIndex(facts)
    table = facts.goroutines
    agree = disagree = seen = 0
    for group in inv.groups:
        if not group.goroutine_ids:
            continue
        ids = np.array(group.goroutine_ids, np.int64)
        rows, found = table.rows(ids)
        seen += int(found.sum())
        # only a stack whose frames are known can agree or disagree with the dump
        placed = found & (table.columns["end_state"][rows] == GO_WAITING) \
            & _with_frames(facts, table.columns["block_stack"][rows])
        here = index.blocked(group.key)
        hits = sum(1 for i in ids[placed].tolist() if i in here)
        agree += hits
        disagree += int(placed.sum()) - hits
    return agree > disagree if agree + disagree else seen > 0


def _with_frames(facts: TraceFacts, stacks: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which stack IDs have known frames: not 0 (no stack), nor a stack of a cut Go
    1.11–1.21 trace whose frames were lost with its end (a placeholder with no file)."""
    uniq, inv = np.unique(stacks, return_inverse=True)
    known = [sid > 0 and any(f.file for f in facts.frames(sid)) for sid in uniq.tolist()]
    return np.array(known, np.bool_)[inv.reshape(-1)] if known else np.zeros(0, np.bool_)


def _check(group: Group, facts: TraceFacts, index: _SiteIndex, by_id: bool) -> GroupCheck:
    wakes = index.wakes(group.key)
    blocked = index.blocked(group.key)
    if by_id:
        members = [i for i in group.goroutine_ids if i in facts.goroutines]
        check = GroupCheck(group, "id", traced=len(members))
        # Older Go (1.22) writes no stack for a goroutine blocked since before the trace,
        # and a cut Go 1.11-1.21 trace loses the frames of its stacks: the dump says where
        # that same goroutine waits, if the trace never saw it woken.
        unplaced = [facts.goroutines[i] for i in members]
        unplaced = [g for g in unplaced if g.blocked_at_end and g.wakes == 0]
        known = _with_frames(facts, np.array([g.block_stack for g in unplaced], np.int64))
        blocked = blocked | {g.id for g, k in zip(unplaced, known.tolist(), strict=True)
                             if not k}
        members = [i for i in members if i in wakes or i in blocked]
    else:
        members = sorted(wakes.keys() | blocked)
        check = GroupCheck(group, "stack", traced=len(members))
    check.at_site = len(members)
    woken = [facts.goroutines[i] for i in members if wakes.get(i, 0)]
    check.woken = len(woken)
    for i in members:
        g = facts.goroutines[i]
        if i in blocked and not wakes.get(i, 0):
            check.never_woken += 1
            check.whole_window += g.blocked_whole_window
            check.new_never_woken += not g.existed_at_start
    for g in woken:
        if g.end_state != "NotExist":
            check.old_alive += g.existed_at_start
            check.new_alive += not g.existed_at_start
    if woken:
        check.wakes_per_goroutine = statistics.median(wakes[g.id] for g in woken)
        periods = [p for g in woken if (p := g.wake_period_ns) is not None]
        check.period_ns = statistics.median(periods) if periods else None
        total = sum(g.wakes for g in woken)
        check.timer_share = sum(g.runtime_wakes for g in woken) / total if total else 0.0
        check.wakers = sorted({g.unblocker for g in woken if g.unblocker >= 0})[:5]
    return check


def contribute(ctx: Context) -> list[Finding]:
    """Trace findings of a diagnosis: the summary's scheduler latency, sched-latency and
    lock-contention findings, and trace evidence on the dump's groups."""
    facts = _read_traces(ctx.paths, ctx.notes, ctx.path_names)
    if not facts:
        return []
    timed = [f.latencies_ns for f in facts if not f.times_in_ticks]
    ctx.summary.sched_latency_ms = latency_summary(np.concatenate(timed)) if timed else None
    by_id = {i: g for g in ctx.inventory.groups for i in g.goroutine_ids} \
        if ctx.inventory is not None else {}
    out: list[Finding] = []
    for f in facts:
        out.extend(sched_latency_findings(f, by_id))
        out.extend(lock_contention_findings(f))
    if ctx.inventory is not None:
        last = facts[-1]
        checks = crosscheck(ctx.inventory, last)
        if ctx.inventory.form == "debug2" and not same_process(ctx.inventory, last):
            ctx.notes.append(f"no goroutine id of the dump is in {last.source}: "
                             "joined the dump and the trace by stack (another process?)")
        for c in checks:
            found = group_finding(c, last, ctx.threshold)
            if found is not None:
                out.append(found)
    return out


def _read_traces(paths: Iterable[Path], notes: list[str],
                 names: Mapping[Path, str]) -> list[TraceFacts]:
    out = []
    for p in paths:
        try:
            facts = trace_facts(p, names.get(p))
        except InputError as e:
            notes.append(f"skipped {e}")
            continue
        if facts.damage is not None:
            notes.append(facts.damage.describe(facts.source))
        if facts.times_in_ticks:
            notes.append(f"{facts.source}: times are clock ticks (the trace lost the clock "
                         "frequency it keeps at its end): no scheduler latency is judged from "
                         "it; its counts still hold")
        out.append(facts)
    return out


def _span(facts: TraceFacts, ns: float) -> str:
    """A duration of this trace: seconds, or clock ticks when its times are ticks."""
    return f"{ns:,.0f} ticks" if facts.times_in_ticks else f"{ns / 1e9:.1f} s"


def group_finding(c: GroupCheck, facts: TraceFacts, threshold: float) -> Finding | None:
    """The trace's evidence on a group step 1 reports (a suspect or a proven leak), as a
    finding that merges with step 1's; None for groups step 1 does not report."""
    g = c.group
    if not c.at_site or g.benign is not None or not (g.leaked or suspects.is_suspect(g, threshold)):
        return None
    window = _span(facts, facts.duration_ns)
    verdict, category = "suspected", g.category
    evidence: list[str] = []
    if c.woken == 0 and c.never_woken:
        evidence.append(f"0 of {c.at_site:,} traced were woken in {window} "
                        f"({c.whole_window:,} blocked the whole window)")
        if c.whole_window and c.new_never_woken:
            verdict = "confirmed"
            evidence.append(f"{c.new_never_woken:,} more blocked there during the window and "
                            "never woke: the group grows")
    elif is_timer_loop(c):
        category = "ticker"
        if not c.period_ns:
            period = ""
        elif facts.times_in_ticks:
            period = f", every ~{c.period_ns:,.0f} ticks"
        else:
            period = f", every ~{c.period_ns / 1e6:.0f} ms"
        evidence.append(f"{c.woken:,} of {c.at_site:,} traced were woken "
                        f"{c.wakes_per_goroutine:g} times each in {window}{period}, by a "
                        "timer: a timer/ticker loop")
        if c.old_alive and c.new_alive:
            # the same standard as for a never-woken group: old ones persist, new ones join
            verdict = "confirmed"
            evidence.append(f"{c.old_alive:,} looped the whole window without exiting and "
                            f"{c.new_alive:,} more started looping during it: the group grows")
    else:
        who = f" (last woken by goroutine {', '.join(map(str, c.wakers))})" if c.wakers else ""
        evidence.append(f"{c.woken:,} of {c.at_site:,} traced were woken in {window}{who}: "
                        f"they make progress; {c.never_woken:,} never woke")
    return Finding(
        verdict=verdict, category=category,
        title=f"{goroutine_count(g.count)} {suspects.TITLES.get(category, 'blocked')}",
        goroutines=g.count, wait_minutes=g.wait_minutes, location=g.location,
        created_by=g.created_by, stack=list(g.stack), evidence=evidence,
        fix=suspects.FIXES.get(category, ""), source_line=g.source_line,
        goroutine_ids=list(g.goroutine_ids), group_key=g.key,
    )


def is_timer_loop(c: GroupCheck) -> bool:
    """Most traced goroutines of the group woke repeatedly, nearly always by a timer."""
    return c.woken >= max(1, c.at_site // 2) and c.wakes_per_goroutine >= TICKER_MIN_WAKES \
        and c.timer_share >= TIMER_SHARE


def sched_latency_findings(facts: TraceFacts,
                           groups_by_id: Mapping[int, Group] | None = None) -> list[Finding]:
    """A ``sched-latency`` finding when the mean runnable → running wait is above 10 ms.

    ``groups_by_id`` (goroutine id → dump group) says where the goroutines that waited
    are: a preempted goroutine's trace stack often ends in the runtime's preemption
    handler, while the dump shows its code.
    """
    lat = facts.sched_latency_ms()  # None when times are ticks: nothing to judge
    if lat is None or lat["mean"] <= SCHED_LATENCY_MS:
        return []
    table = facts.goroutines
    rows = np.flatnonzero(table.columns["runnable_waits"] > 0)
    by_place: dict[Frame | None, list[int]] = {}
    places: dict[tuple[int, int], Frame | None] = {}
    for gid, last, start, ns in zip(*(a[rows].tolist() for a in (
            table.ids, table.columns["last_stack"], table.columns["start_stack"],
            table.columns["runnable_ns"])), strict=True):
        group = (groups_by_id or {}).get(gid)
        if group is not None and group.location is not None:
            place: Frame | None = group.location
        else:
            if (last, start) not in places:
                places[(last, start)] = _place(facts, last, start)
            place = places[(last, start)]
        entry = by_place.setdefault(place, [0, 0])
        entry[0] += 1
        entry[1] += ns
    ranked = sorted(by_place.items(), key=lambda kv: -kv[1][1])
    evidence = [
        f"mean runnable → running wait {lat['mean']:.1f} ms (p50 {lat['p50']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms) over {len(facts.latencies_ns):,} waits in "
        f"{_span(facts, facts.duration_ns)} on {facts.procs} Ps; above {SCHED_LATENCY_MS:g} ms "
        "the scheduler is under pressure",
    ]
    total = sum(ns for _, ns in by_place.values())
    evidence += [f"{goroutine_count(n)} at {place.function if place else 'an unknown place'} "
                 f"waited {_span(facts, ns)} to run in total" for place, (n, ns) in ranked[:3]
                 if ns >= total / 20]
    top = ranked[0][0] if ranked else None
    waiting = sum(n for n, _ in by_place.values())
    return [Finding(
        verdict="suspected", category="sched-latency",
        title=f"goroutines wait {lat['mean']:.0f} ms on average to run once runnable "
              f"({goroutine_count(waiting)}, {facts.procs} Ps)",
        goroutines=waiting, location=top, evidence=evidence,
        fix="more runnable goroutines than GOMAXPROCS can serve: bound CPU-heavy work "
            "(a worker pool sized to GOMAXPROCS), check GOMAXPROCS against the CPU limit, "
            "and look for busy loops and lock convoys",
    )]


def _place(facts: TraceFacts, last_stack: int, start_stack: int) -> Frame | None:
    """Where a goroutine's code is, from the trace: the user frame of its last stack, else
    of its entry stack."""
    for sid in (last_stack, start_stack):
        frames = facts.frames(sid)
        i = classify.first_user_index(frames)
        if i is not None:
            return frames[i]
    return classify.location(facts.frames(start_stack or last_stack))


def _mean_wait(facts: TraceFacts, ns: float) -> str:
    return f"{ns:,.0f} ticks" if facts.times_in_ticks else f"{ns / 1e6:.2f} ms"


def lock_contention_findings(facts: TraceFacts) -> list[Finding]:
    """``lock-contention`` findings: lock sites where goroutines queue much of the time."""
    by_place: dict[Frame, list[int]] = {}
    stack_of: dict[Frame, int] = {}
    stacks_of: dict[Frame, set[int]] = {}
    for site in facts.wait_sites.values():
        frames = facts.frames(site.stack)
        if not any(f.function in _LOCK_FUNCTIONS for f in frames):
            continue
        place = classify.location(frames)
        if place is None:
            continue
        entry = by_place.setdefault(place, [0, 0, 0])
        entry[0] += site.waits
        entry[1] += site.wait_ns + site.open_ns
        entry[2] += site.open_waits
        stack_of.setdefault(place, site.stack)
        stacks_of.setdefault(place, set()).add(site.stack)
    window = max(facts.duration_ns, 1)
    out = []
    for place, (waits, ns, still) in sorted(by_place.items(), key=lambda kv: -kv[1][1]):
        queued = ns / window
        if waits < LOCK_MIN_WAITS or queued < LOCK_MIN_QUEUED:
            continue
        stacks = stacks_of[place]
        w = facts.closed_waits
        waiters = len(np.unique(w.goroutine[np.isin(w.stack, list(stacks))]))
        mean = ns / max(waits + still, 1)
        out.append(Finding(
            verdict="suspected", category="lock-contention",
            title=f"{goroutine_count(waiters)} queue on a lock at {place.function}: "
                  f"{queued:.1f} waiting on average",
            goroutines=waiters, location=place,
            stack=list(facts.frames(stack_of[place])),
            evidence=[f"{waits:,} waits for the lock ended in {_span(facts, facts.duration_ns)} "
                      f"(mean {_mean_wait(facts, mean)}), {still:,} still "
                      f"waiting at the end; {_span(facts, ns)} queued in total"],
            fix="hold the lock for less time (no I/O or heavy work under it), shard the "
                "guarded state, or use sync/atomic or an RWMutex for read-mostly data",
        ))
    return out

