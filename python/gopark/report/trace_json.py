"""`gopark trace --format json`: schema ``gopark.trace/v1`` (plain dicts)."""

from __future__ import annotations

from typing import Any

from gopark.analysis.tracegroups import GoroutineGroup
from gopark.formats.trace import TraceSummary
from gopark.model import Frame

TRACE_SCHEMA = "gopark.trace/v1"


def _frame(f: Frame | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"function": f.function, "file": f.file, "line": f.line}


def group_json(g: GoroutineGroup, max_ids: int = 50) -> dict[str, Any]:
    """One stack group. Times are nanoseconds (clock ticks when the answer's
    ``time_unit`` is "ticks") of closed intervals (entered and left during the trace);
    ``still_blocked`` counts goroutines waiting at the end and ``pending_blocked_ns`` how
    long they had waited by then, in all."""
    return {
        "goroutines": g.count,
        "entry": _frame(g.entry),
        "created_at": _frame(g.created_at),
        "state_at_end": g.state,
        "wait_reason": g.wait_reason or None,
        "blocked_at": _frame(g.blocked_at),
        "still_blocked": g.still_blocked,
        "longest_wait_ns": g.longest_wait_ns,
        "pending_blocked_ns": g.pending_ns,
        "running_ns": g.running_ns,
        "runnable_ns": g.runnable_ns,
        "syscall_ns": g.syscall_ns,
        "blocked_ns": g.blocked_ns,
        "blocked_by_reason_ns": dict(sorted((g.blocked_by_reason or {}).items())),
        "goroutine_ids": g.ids[:max_ids],
    }


def trace_json(s: TraceSummary, groups: list[GoroutineGroup]) -> dict[str, Any]:
    """The whole `gopark trace` answer. ``time_unit`` says what every ``*_ns`` field
    holds: "ns", or "ticks" when the trace's clock frequency is unknown (a Go 1.11–1.21
    trace cut before the frequency it writes at its end)."""
    c = s.counts
    g = s.goroutines
    return {
        "schema": TRACE_SCHEMA,
        "source": s.source,
        "trace_format": f"go 1.{s.version}",
        "size_bytes": s.size,
        "generations": len(s.generations),
        "experimental_bytes_skipped": sum(gen.experimental_bytes for gen in s.generations),
        "time_unit": "ticks" if s.times_in_ticks else "ns",
        "start_ns": s.start_time,
        "end_ns": s.end_time,
        "duration_ns": s.duration_ns,
        "events": c["events"],
        "cpu_samples": c["cpu_samples"],
        "gc_cycles": c["gc_cycles"],
        "stw": {"pauses": c["stw_pauses"], "total_ns": c["stw_ns"]},
        "goroutines": {
            "total": len(g),
            "created": int((g["created"] >= 0).sum()),
            "ended": int((g["ended"] >= 0).sum()),
            "blocked_at_end": sum(x.still_blocked for x in groups),
        },
        "damage": None if s.damage is None else {
            "offset": s.damage.offset, "kind": s.damage.kind, "message": s.damage.message,
            "fraction_lost": round(s.damage.fraction_lost, 6),
        },
        "groups": [group_json(x) for x in groups],
    }
