"""`gopark collect URL -o DIR`: take a bundle from a live /debug/pprof/ endpoint."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gopark.cli.arguments import add_collection_arguments, collect_options
from gopark.collect import Bundle, ProgressEvent, collect_bundle, collect_zip, open_bundle
from gopark.collect.bundle import MANIFEST
from gopark.collect.collector import collecting_folder
from gopark.errors import GoparkError

NAME = "collect"
HELP = "take a bundle (goroutines, heap, trace...) from a live /debug/pprof/ endpoint"
DESCRIPTION = """\
Take a bundle from a running Go service's net/http/pprof endpoint: cheap goroutine
snapshots every --interval for --duration, a full goroutine dump and heap profile at the
start and the end, block/mutex profiles when enabled, goroutineleak when offered, and on
request a CPU profile and an execution trace. The bundle is a folder (manifest.json and
the raw responses), or with --zip (or -o NAME.zip) a zip of one, that every other gopark
command reads.

  gopark collect http://127.0.0.1:6060/debug/pprof/ -o bundle --duration 2m --trace 5s
  gopark collect URL -o incident-42.zip              # zipped, ready to attach to a ticket
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark collect`."""
    parser.add_argument("url", metavar="URL",
                        help="the /debug/pprof/ endpoint, e.g. http://127.0.0.1:6060/debug/pprof/")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="bundle folder to create (default gopark-bundle-<time>); a name "
                             "ending in .zip writes a zipped bundle")
    parser.add_argument("--zip", action="store_true",
                        help="write the bundle as a zip (DIR.zip), written when the "
                             "collection ends")
    add_collection_arguments(parser)
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="print every request as it finishes")


def run(args: argparse.Namespace) -> int:
    """Collect; 0 when a bundle was written (even a partial one), 2 when nothing could be."""
    out = args.output or Path(datetime.now(UTC).strftime("gopark-bundle-%Y%m%d-%H%M%S"))
    zipped = args.zip or out.suffix == ".zip"
    if zipped and out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    collect = collect_zip if zipped else collect_bundle
    options = collect_options(args)
    display = ProgressDisplay(sys.stderr, quiet=args.quiet, verbose=args.verbose)
    try:
        with display:
            bundle = collect(args.url, out, options, progress=display.event)
    except KeyboardInterrupt:
        print(f"gopark: interrupted; {_kept(out)}", file=sys.stderr)
        return 130
    if not args.quiet:
        for note in bundle.notes:
            if not note.startswith("target stopped"):
                print(f"note: {note}", file=sys.stderr)
    if bundle.status == "target-lost":
        print(f"gopark: warning: {bundle.notes[-1]}", file=sys.stderr)
    if not args.quiet:
        print(_summary(bundle))
    return 0


def _kept(out: Path) -> str:
    if not out.is_file() and not (out / MANIFEST).is_file():
        work = collecting_folder(out)
        if (work / MANIFEST).is_file():  # interrupted again while zipping
            return f"not zipped; the partial bundle is in {work}"
        return "nothing was written"
    try:
        bundle = open_bundle(out)
    except GoparkError:
        return f"the partial bundle is in {out}"
    return f"kept {sum(f.ok for f in bundle.files)} files in {out}"


def _summary(bundle: Bundle) -> str:
    ok = sum(f.ok for f in bundle.files)
    failed = len(bundle.errors)
    size = sum(f.size for f in bundle.files)
    text = f"bundle {bundle.directory}: {ok} files, {size / 1024:.0f} KiB"
    if failed:
        text += f", {failed} failed requests (see manifest.json)"
    return text + f" [{bundle.status}]"


class _Elapsed(ProgressColumn):
    """Bar and time left by the clock, so they move while a long capture is running."""

    def __init__(self, began: float) -> None:
        super().__init__()
        self.began = began

    def render(self, task: Task) -> RenderableType:
        total = task.total or 1.0
        done = min(total, time.monotonic() - self.began)
        row = Table.grid(padding=(0, 1))
        row.add_row(ProgressBar(total=total, completed=done, width=30),
                    Text(f"{max(0.0, total - done):4.0f}s left"))
        return row


class ProgressDisplay:
    """Progress of a collection: a bar with time left on a terminal, nothing when piped;
    with ``verbose``, a line per request. Pass ``event`` as collect_bundle's callback."""

    def __init__(self, stream: TextIO, quiet: bool, verbose: bool) -> None:
        self.verbose = verbose and not quiet
        self.console = Console(file=stream, stderr=stream is sys.stderr, markup=False)
        self.live = not quiet and self.console.is_terminal
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]collecting[/]"), _Elapsed(time.monotonic()),
                TextColumn("{task.description}", markup=False), console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def event(self, e: ProgressEvent) -> None:
        """Progress callback for collect_bundle."""
        if self.verbose and e.what == "file" and e.file is not None:
            f = e.file
            result = f"error: {f.error}" if f.error else f"{f.size} bytes"
            if f.retries:
                result += f" (after {len(f.retries)} retries)"
            self.console.print(f"{e.elapsed_s:7.2f}s  {f.phase:<8} {e.text:<24} "
                               f"{f.duration_s:6.3f}s  {result}", highlight=False, markup=False,
                               soft_wrap=True)  # one line per request, even when piped
        if self.progress is not None and self.task is not None and e.what in ("step", "note"):
            self.progress.update(self.task, total=e.planned_s, description=e.text)
