"""`gopark trace` on the terminal: what the trace holds, then goroutines by stack group."""

from __future__ import annotations

import datetime as _dt
from typing import TextIO

from gopark.analysis.tracegroups import GoroutineGroup
from gopark.formats.trace import TraceSummary
from gopark.model import Frame

# Which Go releases write each trace format version.
FORMAT_WRITERS = {22: "Go 1.22", 23: "Go 1.23-1.24", 25: "Go 1.25", 26: "Go 1.26+"}


_STATE_WORDS = {"NotExist": "exited", "Waiting": "blocked", "Syscall": "in syscall"}


def duration(ns: int) -> str:
    """A duration in a readable unit: 950ns, 12.3µs, 4.56ms, 7.89s."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.2f}s"


def ticks(n: int) -> str:
    """A duration in clock ticks (a trace whose clock frequency is unknown): 12,345 ticks."""
    return f"{n:,} ticks"


def size(n: int) -> str:
    """A byte count: 512 B, 1.2 MB."""
    for unit, div in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def frame_text(f: Frame | None) -> str:
    """function file:line."""
    if f is None:
        return "?"
    return f"{f.function} {f.file}:{f.line}"


def recorded_at(s: TraceSummary) -> str | None:
    """Wall-clock start of the trace (from the first clock snapshot, Go 1.25+)."""
    for g in s.generations:
        if g.clock is not None:
            t = _dt.datetime.fromtimestamp(g.clock[2] + g.clock[3] / 1e9, tz=_dt.UTC)
            return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    return None


def render_summary(s: TraceSummary, groups: list[GoroutineGroup], out: TextIO,
                   limit: int | None = None) -> None:
    """Print the trace overview and the stack groups (largest first)."""
    c = s.counts
    g = s.goroutines
    # Without the clock frequency no duration is known in seconds: show ticks, never ns.
    span = ticks if s.times_in_ticks else duration
    created = int((g["created"] >= 0).sum())
    ended = int((g["ended"] >= 0).sum())
    blocked = sum(x.still_blocked for x in groups)
    writer = FORMAT_WRITERS.get(s.version, f"go 1.{s.version}")
    print(f"{s.source}: execution trace, format go 1.{s.version} (written by {writer}), "
          f"{size(s.size)}, {len(s.generations)} generation(s)", file=out)
    when = recorded_at(s)
    if when:
        print(f"  recorded at {when}", file=out)
    if s.times_in_ticks:
        print("  times in clock ticks, not seconds: the trace lost the clock frequency a "
              "Go 1.11-1.21 trace writes at its end", file=out)
    print(f"  duration {span(s.duration_ns)}, {c['events']:,} events, "
          f"{c['cpu_samples']:,} CPU samples, {c['gc_cycles']} GC cycle(s), "
          f"{c['stw_pauses']} stop-the-world pause(s) totalling {span(c['stw_ns'])}", file=out)
    print(f"  {len(g):,} goroutines: {created:,} created and {ended:,} ended during the trace, "
          f"{blocked:,} blocked at the end", file=out)
    skipped = sum(gen.experimental_bytes for gen in s.generations)
    if skipped:
        print(f"  {size(skipped)} of experimental batches (e.g. GODEBUG=traceallocfree) skipped",
              file=out)
    if s.damage is not None:
        print(f"  DAMAGED at byte {s.damage.offset}: {s.damage.message} "
              f"({s.damage.fraction_lost:.1%} of the file unread)", file=out)
    else:
        print("  loss: none (the whole file was read)", file=out)
    print(file=out)
    shown = groups if limit is None else groups[:limit]
    print(f"goroutines by stack group ({len(groups)} groups"
          + (f", {len(shown)} shown" if len(shown) < len(groups) else "") + "):", file=out)
    for grp in shown:
        print(file=out)
        head = f"{grp.count:>7,}  {grp.entry.function if grp.entry else '?'}"
        at_end = _STATE_WORDS.get(grp.state, grp.state.lower())
        if grp.wait_reason:
            at_end += f" ({grp.wait_reason})"
        elif grp.state == "Waiting":
            at_end += " (since before the trace started)"
        print(f"{head}  — at end: {at_end}", file=out)
        if grp.created_at is not None:
            print(f"         created at {frame_text(grp.created_at)}", file=out)
        if grp.blocked_at is not None:
            print(f"         blocked at {frame_text(grp.blocked_at)}", file=out)
        if grp.still_blocked:
            print(f"         {grp.still_blocked:,} still blocked at the end, longest for "
                  f"{span(grp.longest_wait_ns)}, {span(grp.pending_ns)} in all",
                  file=out)
        reasons = ", ".join(f"{r or 'unknown'} {span(ns)}" for r, ns in
                            sorted((grp.blocked_by_reason or {}).items(), key=lambda x: -x[1]))
        print(f"         running {span(grp.running_ns)}, runnable {span(grp.runnable_ns)}, "
              f"syscall {span(grp.syscall_ns)}, blocked and woken {span(grp.blocked_ns)}"
              + (f" ({reasons})" if reasons else ""), file=out)
