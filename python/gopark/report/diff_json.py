"""`gopark diff` as JSON (schema ``gopark.diff/v1``): goroutine groups and heap sites
before/after."""

from __future__ import annotations

import json
from typing import Any, TextIO

from gopark.analysis.heap import HeapDiff
from gopark.analysis.trend import SnapshotDiff
from gopark.model import Frame

SCHEMA = "gopark.diff/v1"


def _frame(f: Frame | None) -> dict[str, Any] | None:
    return None if f is None else {"function": f.function, "file": f.file, "line": f.line}


def to_json(goroutines: SnapshotDiff | None, heap: HeapDiff | None) -> dict[str, Any]:
    """The diff as a JSON-ready dict (schema ``gopark.diff/v1``)."""
    out: dict[str, Any] = {"schema": SCHEMA, "goroutines": None, "heap": None}
    if goroutines is not None:
        g = goroutines
        out["goroutines"] = {
            "before_source": g.before_source, "after_source": g.after_source,
            "before": g.before_total, "after": g.after_total,
            "delta": g.after_total - g.before_total, "seconds": g.seconds,
            "groups": [{"key": c.key, "status": c.status, "before": c.before, "after": c.after,
                        "delta": c.delta, "category": c.category, "state": c.state,
                        "location": _frame(c.location)} for c in g.groups],
        }
    if heap is not None:
        out["heap"] = {
            "before": heap.before_total, "after": heap.after_total, "delta": heap.delta_total,
            "seconds": heap.seconds,
            "sites": [{"location": _frame(s.site), "before_bytes": s.before_bytes,
                       "after_bytes": s.after_bytes, "delta_bytes": s.delta_bytes,
                       "before_objects": s.before_objects, "after_objects": s.after_objects,
                       "stack": [str(f) for f in s.stack]} for s in heap.sites],
        }
    return out


def render_json(goroutines: SnapshotDiff | None, heap: HeapDiff | None, out: TextIO) -> None:
    """Write the JSON form."""
    out.write(json.dumps(to_json(goroutines, heap), indent=2) + "\n")
