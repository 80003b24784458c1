"""The `gopark watch` view: a rich table on a terminal, plain lines when piped.

It renders what the trend analysis computed over the snapshots so far; it never fetches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gopark.analysis.trend import GroupTrend, TrendReport
from gopark.model import Frame

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """The last `width` values as a row of block characters scaled to their min..max."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return _BARS[0 if hi == 0 else 3] * len(vals)
    return "".join(_BARS[round((v - lo) / (hi - lo) * (len(_BARS) - 1))] for v in vals)


@dataclass(slots=True)
class WatchState:
    """Everything one refresh of the view shows."""

    target: str
    report: TrendReport
    heap_inuse: list[int]
    """MemStats HeapInuse per refresh (may be shorter than the totals if some failed)."""
    started: datetime
    now: datetime
    errors: int = 0
    last_error: str | None = None
    stretched: float | None = None
    """The interval, when it was stretched to keep the load on the target low."""


def _where(f: Frame | None) -> str:
    if f is None:
        return "?"
    return f"{f.function} {f.file.rsplit('/', 1)[-1]}:{f.line}" if f.file else f.function


def _rate(g: GroupTrend) -> str:
    return "" if g.per_min is None else f"{g.per_min:+,.0f}/min"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _headline(s: WatchState) -> str:
    r = s.report
    first, last = (r.totals[0], r.totals[-1]) if r.totals else (0, 0)
    rate = f", {r.per_min:+,.0f}/min" if r.per_min is not None else ""
    trend = "growing" if r.test.increasing and last > first else (
        "steady ±5%" if r.steady else "changing")
    text = (f"goroutines {last:,} ({last - first:+,} since start{rate}, {trend}) "
            f"{sparkline(r.totals)}")
    if s.heap_inuse:
        text += f"   heap in use {_mib(s.heap_inuse[-1])} {sparkline(s.heap_inuse)}"
    return text


def _shown(r: TrendReport, top: int) -> list[GroupTrend]:
    # Growing groups first (they are what the user watches for), then the largest.
    live = [g for g in r.groups if g.last > 0 or g.first > 0]
    growing = [g for g in live if g.shape == "growing"]
    rest = sorted((g for g in live if g.shape != "growing"), key=lambda g: -g.last)
    return (growing + rest)[:top]


def render_rich(s: WatchState, top: int = 10) -> RenderableType:
    """The live view: headline, then the top groups with count, change and rate."""
    elapsed = (s.now - s.started).total_seconds()
    head = Text(f"gopark watch {s.target}  ·  {elapsed:,.0f} s, {len(s.report.totals)} "
                "snapshots  ·  Ctrl-C to stop", style="dim")
    table = Table(expand=False, show_edge=False, pad_edge=False)
    table.add_column("goroutines", justify="right")
    table.add_column("change", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("trend")
    table.add_column("where")
    for g in _shown(s.report, top):
        style = "bold red" if g.shape == "growing" else ""
        table.add_row(f"{g.last:,}", f"{g.last - g.first:+,}", _rate(g),
                      sparkline(g.counts, 16), _where(g.location), style=style)
    parts: list[RenderableType] = [head, Text(_headline(s)), table]
    if s.stretched:
        parts.append(Text(f"refreshing every {s.stretched:.1f} s to keep the load on the "
                          "target low (--max-load)", style="dim"))
    if s.last_error:
        parts.append(Text(f"last error ({s.errors} so far): {s.last_error}", style="yellow"))
    return Group(*parts)


def render_plain(s: WatchState, top: int = 10) -> list[str]:
    """One refresh as plain lines (for a pipe): the headline, then growing groups."""
    stamp = s.now.strftime("%H:%M:%S")
    lines = [f"{stamp} {_headline(s)}"]
    for g in _shown(s.report, top):
        if g.shape == "growing":
            lines.append(f"{stamp}   growing {g.last:,} ({g.last - g.first:+,}, {_rate(g)}) "
                         f"{_where(g.location)}")
    if s.stretched:
        lines.append(f"{stamp}   next refresh in {s.stretched:.1f} s (stretched: the target "
                     "takes long to write its goroutine profile)")
    if s.last_error:
        lines.append(f"{stamp}   error: {s.last_error}")
    return lines


def render_summary(s: WatchState) -> list[str]:
    """What the watch saw, printed once when it stops."""
    r = s.report
    elapsed = (s.now - s.started).total_seconds()
    lines = [f"watched {s.target} for {elapsed:,.0f} s ({len(r.totals)} snapshots"
             + (f", {s.errors} failed requests" if s.errors else "") + ")"]
    if r.totals:
        rate = f", {r.per_min:+,.1f}/min" if r.per_min is not None else ""
        lines.append(f"goroutines {r.totals[0]:,} → {r.totals[-1]:,}{rate}; "
                     + ("steady within ±5%" if r.steady else "not steady (outside ±5%)"))
    if len(s.heap_inuse) > 1:
        lines.append(f"heap in use {_mib(s.heap_inuse[0])} → {_mib(s.heap_inuse[-1])}")
    growing = [g for g in r.groups if g.shape == "growing"]
    for g in growing:
        lines.append(f"growing: {g.first:,} → {g.last:,} ({_rate(g)}) at {_where(g.location)}")
    if r.totals and not growing:
        lines.append("no group grew steadily")
    return lines
