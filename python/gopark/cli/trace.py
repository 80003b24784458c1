"""`gopark trace FILE`: what an execution trace holds and its goroutines by stack group."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gopark.analysis.tracegroups import group_goroutines
from gopark.collect.bundlezip import is_zip
from gopark.formats.trace import TraceReader, TraceSummary
from gopark.inputs import bundle_trace
from gopark.report import trace_json, trace_text
from gopark.report.trace_events import render_parsed

NAME = "trace"
HELP = "summarize a Go execution trace (Go 1.11+): goroutines by stack group, time per state"
DESCRIPTION = """\
Read a Go execution trace (runtime/trace, /debug/pprof/trace, go test -trace, or the
flight recorder; Go 1.11 or newer) and print what it holds — Go version, duration,
events, goroutines, any loss — and its goroutines grouped by stack, with time running,
runnable (waiting for a CPU), blocked by reason and in syscalls, and which were still
blocked at the end. A file damaged partway is read up to the damage (with a warning);
a Go 1.11–1.21 trace keeps its tables at its end, so it is read whole or not at all.

  gopark trace app.trace
  gopark trace app.trace --format json
  gopark trace app.trace --events > events.txt   # the ordered stream, as go tool trace -d=parsed
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark trace`."""
    parser.add_argument("file", metavar="FILE",
                        help="execution trace file, or a bundle (folder or zip) with one")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="show the N largest groups (text; default 20, 0 for all)")
    parser.add_argument("--events", action="store_true",
                        help="print every event in order, as `go tool trace -d=parsed` does")


def _source(path: str) -> tuple[str | Path, str | None]:
    """The trace file to read and its name in messages; a bundle gives the trace it holds."""
    if not (Path(path).is_dir() or is_zip(path)):
        return path, None
    return bundle_trace(path)


def run(args: argparse.Namespace) -> int:
    """Summarize (or dump) the trace; warn about damage; exit 0 if anything was readable."""
    reader = TraceReader(*_source(args.file))
    summary: TraceSummary
    if args.events:
        trace = reader.load()
        if trace.times_in_ticks:
            print("gopark: note: Time= values are clock ticks, not ns "
                  "(the trace lost its clock frequency)", file=sys.stderr)
        for line in render_parsed(trace.events, trace.catalog, trace.generations):
            print(line)
        summary = trace
    else:
        summary = reader.summary()
        groups = group_goroutines(summary)
        if args.format == "json":
            sys.stdout.write(json.dumps(trace_json.trace_json(summary, groups), indent=2) + "\n")
        else:
            trace_text.render_summary(summary, groups, sys.stdout, limit=args.limit or None)
    if summary.damage is not None:
        print(f"gopark: warning: {summary.damage.describe(summary.source)}", file=sys.stderr)
    return 0
