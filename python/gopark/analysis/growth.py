"""The diagnosis contributor for growth across a window: goroutine groups that grow (trend)
and heap sites that keep memory (heap), as findings that merge with step 1's by group key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gopark.analysis import classify, heap, suspects
from gopark.analysis.findings import Finding
from gopark.analysis.inventory import Group
from gopark.analysis.trend import GroupTrend, TrendReport, analyze, user_key
from gopark.model import Profile

if TYPE_CHECKING:  # diagnose imports this module (to list it in CONTRIBUTORS)
    from gopark.analysis.diagnose import Context

_LEAK_VERDICTS = ("proven", "confirmed", "suspected")


def contribute(ctx: Context) -> list[Finding]:
    """Trend and heap findings of a diagnosis context (nothing from a single snapshot)."""
    leaks = goroutine_growth(ctx)
    return leaks + _fold_heap_into_leaks(heap_growth(ctx), leaks)


def _fold_heap_into_leaks(heap_found: list[Finding], leaks: list[Finding]) -> list[Finding]:
    """Heap that grows because goroutines leak is that leak's memory, not a second cause:
    a heap-growth site whose allocation stack runs through a leaking group's function or
    the function that started those goroutines (e.g. the buffers net/http's dialConn
    allocates for each leaked connection) becomes evidence and bytes of the leak."""
    out = []
    for h in heap_found:
        owner = next((f for f in leaks if f.verdict in _LEAK_VERDICTS
                      and _owns(f, [fr.function for fr in h.stack])), None)
        if owner is None:
            out.append(h)
            continue
        owner.evidence.append(f"the heap grows with them: {h.title}")
        counted = owner.location is not None and owner.location.function in \
            {fr.function for fr in h.stack}  # group_bytes already counted heap under it
        if h.bytes and not counted:
            owner.bytes = (owner.bytes or 0) + h.bytes
    return out


def _owns(leak: Finding, functions: list[str]) -> bool:
    mine = [fr.function for fr in (leak.location, leak.created_by) if fr is not None]
    return any(not classify.is_runtime(fn) and fn in functions for fn in mine)


def goroutine_growth(ctx: Context) -> list[Finding]:
    """Findings for groups that grow (or drain) across the goroutine snapshots; also sets
    the summary's rate and steadiness."""
    if len(ctx.snapshots) < 2 and not ctx.leak_snapshots:
        return []
    report = analyze(ctx.snapshots, user_key, ctx.leak_snapshots)
    if len(report.totals) >= 2:
        ctx.summary.goroutines_first, ctx.summary.goroutines_last = report.totals[0], \
            report.totals[-1]
        ctx.summary.steady = report.steady
        if report.per_min is not None:
            ctx.summary.goroutines_per_min = round(report.per_min, 1)
    groups = ctx.inventory.by_key() if ctx.inventory is not None else {}
    heaps = _heap_profiles(ctx.profiles)
    memstats = next((p.memstats for p in reversed(ctx.profiles) if p.memstats), None)
    out = []
    for g in report.groups:
        if g.verdict in _LEAK_VERDICTS or (g.verdict == "benign" and g.shape == "drained"):
            out.append(_finding(g, groups.get(g.key), report, heaps[-1] if heaps else None,
                                memstats))
    return _fold_http_pairs(out)


def _fold_http_pairs(found: list[Finding]) -> list[Finding]:
    """Every leaked HTTP client connection has a readLoop and a writeLoop goroutine: one
    leak, so the writeLoop group becomes evidence of the readLoop finding."""
    def at(f: Finding, function: str) -> bool:
        return f.location is not None and f.location.function == function

    readers = [f for f in found if at(f, classify.READ_LOOP) and f.verdict != "benign"]
    if not readers:
        return found
    out = []
    for f in found:
        if at(f, classify.WRITE_LOOP) and f.verdict == readers[0].verdict:
            readers[0].evidence.append(f"{f.goroutines:,} writeLoop goroutines of the same "
                                       "connections grew beside them")
            readers[0].bytes = (readers[0].bytes or 0) + (f.bytes or 0)
            continue
        out.append(f)
    return out


def _finding(g: GroupTrend, group: Group | None, report: TrendReport, heap_last: Profile | None,
             memstats: dict[str, int] | None) -> Finding:
    assert g.verdict is not None
    example = g.example
    if group is not None:
        category, location, stack = group.category, group.location, list(group.stack)
        created_by, source_line = group.created_by, group.source_line
    else:  # not in the primary snapshot (e.g. a burst that drained away)
        frames = example.frames if example else ()
        category = classify.categorize(example.state if example else "", frames)
        location, stack = g.location, list(frames)
        created_by, source_line = (example.created_by if example else None), None
    n = g.last if g.verdict != "benign" else max(g.counts)
    f = Finding(
        verdict=g.verdict, category=category, goroutines=n, per_min=_round(g.per_min),
        wait_minutes=g.wait_minutes, location=location, created_by=created_by, stack=stack,
        evidence=list(g.evidence), source_line=source_line, goroutine_ids=list(g.ids),
        group_key=g.key, title="",
    )
    if g.verdict == "benign":
        f.title = f"a burst of {n:,} goroutines that drained back to {g.last:,}: not a leak"
        return f
    if group is not None and group.benign is not None and f.verdict == "confirmed":
        # A known idle shape that keeps growing: worth a look, but it is how the shape
        # behaves under its load (e.g. keep-alive connections of a leaking client).
        f.verdict = "suspected"
        f.evidence.append(f"a known idle shape ({group.benign}), yet it kept growing: "
                          "check that these ever end")
    rate = f" (+{g.per_min:,.0f}/min)" if g.per_min else ""
    f.title = f"{n:,} goroutines {suspects.TITLES.get(category, 'blocked')}, growing{rate}"
    f.fix = suspects.FIXES.get(category, "")
    if report.totals:
        f.bytes, how = heap.group_bytes(n, location, memstats, report.totals[-1], heap_last)
        f.evidence.append(how)
    return f


def heap_growth(ctx: Context) -> list[Finding]:
    """heap-growth findings from the heap profiles among the inputs (two or more)."""
    heaps = _heap_profiles(ctx.profiles)
    if len(heaps) < 2:
        return []
    memstats = [p.memstats for p in ctx.profiles if p.memstats]
    return heap.heap_findings(heap.diff_heap(heaps), memstats)


def _heap_profiles(profiles: list[Profile]) -> list[Profile]:
    """Heap profiles in time order: the protobuf ones when there are any (the debug=1 text
    of the same moment repeats them), else the text ones."""
    # allocs profiles have the same columns; Go marks them with alloc_space as the default.
    found = [p for p in profiles if p.kind == "heap" and p.default_sample_type != "alloc_space"]
    proto = [p for p in found if not p.memstats]
    chosen = proto if len(proto) >= 2 or not found else found
    if all(p.time is not None for p in chosen):
        chosen.sort(key=lambda p: p.time)  # type: ignore[arg-type, return-value]
    return chosen


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
