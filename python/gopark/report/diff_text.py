"""`gopark diff` as text: goroutine groups and heap sites before/after (JSON: diff_json)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table

from gopark.analysis.heap import HeapDiff
from gopark.analysis.trend import SnapshotDiff
from gopark.model import Frame

_STYLE = {"new": "bold red", "grew": "red", "vanished": "green", "shrank": "green", "same": ""}


def _where(f: Frame | None) -> str:
    if f is None:
        return "?"
    return f"{f.function} ({f.file.rsplit('/', 1)[-1]}:{f.line})" if f.file else f.function


def _bytes(n: int, signed: bool = False) -> str:
    sign = "+" if signed and n > 0 else ""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{sign}{n / size:,.1f} {unit}"
    return f"{sign}{n:,} B"


def render_text(goroutines: SnapshotDiff | None, heap: HeapDiff | None, out: TextIO,
                top: int = 20, show_same: bool = False) -> None:
    """Tables of the changed groups (new and vanished included) and heap sites."""
    console = Console(file=out, highlight=False, markup=False)
    if not console.is_terminal:
        console.width = 160  # a pipe or file: keep rows on one line for grep
    if goroutines is not None:
        g = goroutines
        span = f" over {g.seconds:,.0f} s" if g.seconds else ""
        console.print(f"goroutines {g.before_total:,} → {g.after_total:,} "
                      f"({g.after_total - g.before_total:+,}{span})")
        console.print(f"  before: {g.before_source}\n  after:  {g.after_source}")
        rows = [c for c in g.groups if show_same or c.status != "same"]
        table = Table(show_edge=False, pad_edge=False)
        for col, just in (("before", "right"), ("after", "right"), ("delta", "right"),
                          ("", "left"), ("category", "left"), ("where", "left")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for c in rows[:top]:
            table.add_row(f"{c.before:,}", f"{c.after:,}", f"{c.delta:+,}", c.status,
                          c.category, _where(c.location), style=_STYLE[c.status])
        if rows:
            console.print(table)
        hidden = len(rows) - top
        counts = {s: sum(c.status == s for c in g.groups) for s in ("new", "vanished", "same")}
        console.print(f"{counts['new']} new, {counts['vanished']} vanished, "
                      f"{counts['same']} unchanged groups"
                      + (f"; {hidden} more changed (--top)" if hidden > 0 else ""))
    if heap is not None:
        if goroutines is not None:
            console.print()
        h = heap
        console.print(f"heap in use (sampled) {_bytes(h.before_total)} → {_bytes(h.after_total)}"
                      f" ({_bytes(h.delta_total, signed=True)})")
        table = Table(show_edge=False, pad_edge=False)
        for col in ("before", "after", "delta", "objects", "allocated at"):
            table.add_column(col, justify="left" if col == "allocated at" else "right")
        changed = [s for s in h.sites if show_same or s.delta_bytes]
        for s in changed[:top]:
            table.add_row(_bytes(s.before_bytes), _bytes(s.after_bytes),
                          _bytes(s.delta_bytes, signed=True),
                          f"{s.delta_objects:+,}", _where(s.site),
                          style="red" if s.delta_bytes > 0 else "green")
        if changed:
            console.print(table)
