"""JSON output: the diagnosis contract ``gopark.diagnosis/v1`` and the goroutine inventory
``gopark.goroutines/v1``. Plain dicts; ``dumps`` makes the text."""

from __future__ import annotations

import json
from typing import Any

from gopark.analysis.findings import Diagnosis, Finding
from gopark.analysis.inventory import Group, Inventory
from gopark.model import Frame

DIAGNOSIS_SCHEMA = "gopark.diagnosis/v1"
INVENTORY_SCHEMA = "gopark.goroutines/v1"


def frame_json(frame: Frame | None) -> dict[str, Any] | None:
    """A frame as {"function", "file", "line"} (None stays None)."""
    if frame is None:
        return None
    return {"function": frame.function, "file": frame.file or None, "line": frame.line or None}


def minutes_json(minutes: tuple[int, int] | None) -> dict[str, int] | None:
    """A (min, max) wait in minutes as {"min", "max"} (None stays None)."""
    if minutes is None:
        return None
    return {"min": minutes[0], "max": minutes[1]}


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding per the contract, plus ``source_line`` (the location's line when the
    source was readable) and ``goroutine_ids``."""
    return {
        "id": f.id,
        "verdict": f.verdict,
        "category": f.category,
        "title": f.title,
        "goroutines": f.goroutines,
        "bytes": f.bytes,
        "per_min": f.per_min,
        "wait_minutes": minutes_json(f.wait_minutes),
        "location": frame_json(f.location),
        "created_by": frame_json(f.created_by),
        "stack": [str(fr) for fr in f.stack],
        "evidence": list(f.evidence),
        "fix": f.fix,
        "source_line": f.source_line,
        "goroutine_ids": list(f.goroutine_ids),
    }


def diagnosis_json(d: Diagnosis) -> dict[str, Any]:
    """A diagnosis as the ``gopark.diagnosis/v1`` document (design.md, README)."""
    s = d.summary
    return {
        "schema": DIAGNOSIS_SCHEMA,
        "target": d.target,
        "go_version": d.go_version,
        "window": {"start": d.window_start, "end": d.window_end, "snapshots": d.snapshots},
        "summary": {
            "goroutines": {"first": s.goroutines_first, "last": s.goroutines_last,
                           "per_min": s.goroutines_per_min, "steady": s.steady},
            "parked_fraction": s.parked_fraction,
            "parked_by_category": dict(s.parked_by_category),
            "sched_latency_ms": s.sched_latency_ms,
        },
        "findings": [finding_json(f) for f in d.ranked()],
        "notes": list(d.notes),
    }


def group_json(g: Group) -> dict[str, Any]:
    """One inventory group."""
    return {
        "key": g.key,
        "count": g.count,
        "category": g.category,
        "benign": g.benign,
        "states": dict(g.states),
        "wait_minutes": minutes_json(g.wait_minutes),
        "location": frame_json(g.location),
        "source_line": g.source_line,
        "created_by": frame_json(g.created_by),
        "creators": g.distinct_creators,
        "leaked": g.leaked,
        "goroutine_ids": list(g.goroutine_ids),
        "stack": [str(fr) for fr in g.stack],
    }


def inventory_json(inv: Inventory) -> dict[str, Any]:
    """One snapshot's inventory."""
    return {
        "source": inv.source,
        "form": inv.form,
        "profile": inv.profile,
        "go_version": inv.go_version,
        "similarity": inv.similarity,
        "goroutines": inv.total,
        "parked_fraction": round(inv.parked_fraction, 4),
        "parked_by_category": dict(inv.parked_by_category),
        "groups": [group_json(g) for g in inv.groups],
    }


def inventories_json(invs: list[Inventory]) -> dict[str, Any]:
    """The ``gopark.goroutines/v1`` document: one inventory per input snapshot."""
    return {"schema": INVENTORY_SCHEMA, "inventories": [inventory_json(i) for i in invs]}


def dumps(doc: Any) -> str:
    """Indented JSON text with a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
