"""Text output: rich tables and colour on a terminal, plain aligned text when piped."""

from __future__ import annotations

import os
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gopark.analysis.findings import Diagnosis, Finding
from gopark.analysis.inventory import Group, Inventory
from gopark.model import Frame

VERDICT_STYLE = {"proven": "bold red", "confirmed": "red", "suspected": "yellow",
                 "benign": "green"}


class _Console(Console):
    """A Console that lets a closed pipe (``| head``) reach the CLI, which exits 0, instead
    of rich's own exit 1."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def _where(frame: Frame | None) -> str:
    if frame is None:
        return "-"
    if frame.file:
        return f"{frame.function} ({os.path.basename(frame.file)}:{frame.line})"
    return frame.function


def _short(frame: Frame | None) -> str:
    """``readLoop (transport.go:2398)`` style: the function without its import path."""
    if frame is None:
        return "-"
    name = frame.function.rsplit("/", 1)[-1]
    return f"{name} ({os.path.basename(frame.file)}:{frame.line})" if frame.file else name


def _wait(w: tuple[int, int] | None) -> str:
    if w is None:
        return "-"
    return f"{w[0]}" if w[0] == w[1] else f"{w[0]}–{w[1]}"


def _states(g: Group) -> str:
    return ", ".join(f"{s} ×{n}" if len(g.states) > 1 else s for s, n in g.states.items()) or "-"


def render_inventory(inv: Inventory, out: TextIO, limit: int | None = None,
                     terminal: bool | None = None, stacks: bool = False) -> None:
    """Print an inventory, largest group first (``limit`` groups at most); with ``stacks``,
    each group's example stack after the table."""
    console = _Console(file=out, highlight=False, markup=False, force_terminal=terminal)
    groups = inv.groups[:limit] if limit else inv.groups
    head = (f"{inv.source}: {inv.total:,} goroutines in {len(inv.groups):,} groups "
            f"({inv.form}, similarity {inv.similarity}); parked {inv.parked_fraction:.0%}")
    if console.is_terminal:
        # Columns by terminal width: the category says most of what the state says.
        show_state, show_creator = console.width >= 120, console.width >= 160
        table = Table(title=head, title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("count", justify="right", no_wrap=True)
        table.add_column("category", no_wrap=True)
        if show_state:
            table.add_column("state", no_wrap=True)
        table.add_column("wait", justify="right", no_wrap=True)
        table.add_column("location", overflow="fold", min_width=24, ratio=3)
        if show_creator:
            table.add_column("created by", overflow="fold", ratio=2)
        table.add_column("note", style="green", overflow="fold", min_width=12, ratio=2)
        for g in groups:
            row = [f"{g.count:,}", g.category]
            if show_state:
                row.append(_states(g))
            row += [_wait(g.wait_minutes), _short(g.location)]
            if show_creator:
                row.append(_short(g.created_by))
            table.add_row(*row, g.benign or "")
        console.print(table)
    else:
        print(head, file=out)
        rows = [(f"{g.count:,}", g.category, _states(g), _wait(g.wait_minutes),
                 _where(g.location), _where(g.created_by), g.benign or "") for g in groups]
        header = ("COUNT", "CATEGORY", "STATE", "WAIT", "LOCATION", "CREATED BY", "NOTE")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            cells = [r[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(r[1:], widths[1:],
                                                                           strict=True)]
            print("  ".join(cells).rstrip(), file=out)
    if limit and len(inv.groups) > limit:
        print(f"… {len(inv.groups) - limit:,} smaller groups not shown", file=out)
    if stacks:
        for i, g in enumerate(groups, 1):
            ids = ""
            if g.goroutine_ids:
                shown = ", ".join(map(str, g.goroutine_ids[:8]))
                ids = f"; goroutines {shown}" + (", …" if len(g.goroutine_ids) > 8 else "")
            print(f"\n#{i} {g.count:,} × {g.category} [{_states(g)}]{ids}", file=out)
            if g.source_line:
                print(f"    > {g.source_line}", file=out)
            for f in g.stack:
                print(f"    {f.function}\n        {f.file}:{f.line}" if f.file else
                      f"    {f.function}", file=out)
            if g.created_by is not None:
                print(f"    created by {g.created_by.function}\n        "
                      f"{g.created_by.file}:{g.created_by.line}", file=out)


def render_diagnosis(d: Diagnosis, out: TextIO, terminal: bool | None = None,
                     show_benign: bool = True) -> None:
    """Print a diagnosis: summary, then each finding with evidence, line and fix."""
    console = _Console(file=out, highlight=False, markup=False, force_terminal=terminal,
                       soft_wrap=True)
    s = d.summary
    console.print(Text(f"gopark diagnosis of {d.target}", style="bold"))
    facts = [f"goroutines: {s.goroutines_last:,}"]
    if s.goroutines_first != s.goroutines_last:
        facts[0] = f"goroutines: {s.goroutines_first:,} → {s.goroutines_last:,}"
    if s.parked_fraction is not None:
        facts.append(f"parked: {s.parked_fraction:.0%}")
    if s.sched_latency_ms:
        lat = s.sched_latency_ms
        facts.append(f"sched latency: mean {lat['mean']:.2f} ms, p99 {lat['p99']:.2f} ms")
    if d.go_version:
        facts.append(d.go_version)
    console.print("  " + "; ".join(facts))
    if s.parked_by_category:
        top = ", ".join(f"{c} {v:.0%}" for c, v in list(s.parked_by_category.items())[:6])
        console.print(f"  parked by category: {top}")
    for note in d.notes:
        console.print(Text(f"  note: {note}", style="dim"))
    ranked = d.ranked()
    serious = [f for f in ranked if f.verdict != "benign"]
    benign = [f for f in ranked if f.verdict == "benign"]
    if not serious:
        console.print(Text("\nNo leak suspects.", style="green"))
    for f in serious:
        _finding(console, f)
    if benign and show_benign:
        console.print(Text(f"\nKnown idle shapes ({sum(f.goroutines for f in benign):,} "
                           "goroutines, benign):", style="green"))
        for f in benign:
            console.print(f"  {f.id} {f.goroutines:>6,}  {_where(f.location)}: "
                          f"{f.title.split(': ', 1)[-1]}")


def _finding(console: Console, f: Finding) -> None:
    console.print()
    head = Text(f"{f.id} ")
    head.append(f"[{f.verdict}]", style=VERDICT_STYLE.get(f.verdict, ""))
    head.append(f" {f.category}: {f.title}", style="bold")
    console.print(head)
    if f.location is not None:
        console.print(f"   at {_where(f.location)}")
        if f.location.file:
            console.print(f"      {f.location.file}:{f.location.line}", style="dim")
    if f.source_line:
        console.print(Text(f"      > {f.source_line}", style="cyan"))
    for e in f.evidence:
        console.print(f"   - {e}")
    if f.fix:
        console.print(Text(f"   fix: {f.fix}", style="bold"))
