"""`gopark collect URL -o DIR`: take a bundle from a live /debug/pprof/ endpoint.

``add_collection_arguments`` and ``collect_options`` are shared with the commands that
collect before they analyse (diagnose, watch), so the options read the same everywhere.
"""

from __future__ import annotations

import argparse
import re
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

from gopark.collect import (
    Bundle,
    ClientOptions,
    CollectOptions,
    ProgressEvent,
    collect_bundle,
    open_bundle,
)
from gopark.collect.bundle import MANIFEST
from gopark.errors import GoparkError

NAME = "collect"
HELP = "take a bundle (goroutines, heap, trace...) from a live /debug/pprof/ endpoint"
DESCRIPTION = """\
Take a bundle from a running Go service's net/http/pprof endpoint: cheap goroutine
snapshots every --interval for --duration, a full goroutine dump and heap profile at the
start and the end, block/mutex profiles when enabled, goroutineleak when offered, and on
request a CPU profile and an execution trace. The bundle is a folder (manifest.json and
the raw responses) that every other gopark command reads.

  gopark collect http://127.0.0.1:6060/debug/pprof/ -o bundle --duration 2m --trace 5s
"""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?i?b?)", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``10s``, ``1m30s``, ``500ms``) or a plain number."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (like 10s, 1m30s, 500ms)")
    return total


def parse_size(text: str) -> int:
    """Bytes in ``512MB``, ``1GiB``, ``100k`` or a plain number (binary multiples)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (like 512MB, 1GB)")
    return int(float(m.group(1)) * _SIZE_FACTOR[m.group(2)[:1].lower()])


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` → (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        # Not echoed: a malformed header may well be the secret itself.
        raise argparse.ArgumentTypeError("a header must be given as 'Name: value'")
    return name.strip(), value.strip()


def add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a live collection (all but the URL and the output folder)."""
    d = CollectOptions()
    c = ClientOptions()
    g = parser.add_argument_group("collection")
    g.add_argument("--interval", type=parse_duration, default=d.interval, metavar="DUR",
                   help="time between goroutine snapshots (default 10s)")
    g.add_argument("--duration", type=parse_duration, default=d.duration, metavar="DUR",
                   help="how long to watch (default 60s)")
    g.add_argument("--max-dump-goroutines", type=int, default=d.max_dump_goroutines,
                   metavar="N", help="skip the debug=2 dumps (they stop the world) above N "
                   "goroutines (default 20000)")
    g.add_argument("--force-dumps", action="store_true",
                   help="take the debug=2 dumps whatever the goroutine count")
    g.add_argument("--cpu", type=parse_duration, default=0.0, metavar="DUR",
                   help="also take a CPU profile this long (e.g. 10s)")
    g.add_argument("--trace", type=parse_duration, default=0.0, metavar="DUR",
                   help="also take an execution trace this long (e.g. 5s)")
    n = parser.add_argument_group("connection")
    n.add_argument("--timeout", type=parse_duration, default=c.timeout, metavar="DUR",
                   help="give up on a request not done in this long, plus the capture time "
                   "for --cpu/--trace (default 30s)")
    n.add_argument("--max-size", type=parse_size, default=c.max_bytes, metavar="SIZE",
                   help="largest response accepted (default 512MiB)")
    n.add_argument("--header", type=parse_header, action="append", default=[],
                   metavar="'NAME: VALUE'", help="extra request header, e.g. an auth token "
                   "(repeatable; never written into the bundle)")
    n.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    n.add_argument("--cacert", metavar="PEM", help="CA certificates to verify the target with")
    n.add_argument("--cert", metavar="PEM", help="client certificate for mutual TLS")
    n.add_argument("--key", metavar="PEM", help="private key of --cert, if not in that file")


def collect_options(args: argparse.Namespace) -> CollectOptions:
    """CollectOptions from arguments registered by add_collection_arguments."""
    client = ClientOptions(timeout=args.timeout, max_bytes=args.max_size,
                           headers=tuple(args.header), insecure=args.insecure,
                           cacert=args.cacert, cert=args.cert, key=args.key)
    return CollectOptions(interval=args.interval, duration=args.duration,
                          max_dump_goroutines=args.max_dump_goroutines,
                          force_dumps=args.force_dumps, cpu=args.cpu, trace=args.trace,
                          client=client)


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark collect`."""
    parser.add_argument("url", metavar="URL",
                        help="the /debug/pprof/ endpoint, e.g. http://127.0.0.1:6060/debug/pprof/")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="bundle folder to create (default gopark-bundle-<time>)")
    add_collection_arguments(parser)
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="print every request as it finishes")


def run(args: argparse.Namespace) -> int:
    """Collect; 0 when a bundle was written (even a partial one), 2 when nothing could be."""
    out = args.output or Path(datetime.now(UTC).strftime("gopark-bundle-%Y%m%d-%H%M%S"))
    options = collect_options(args)
    display = _Display(sys.stderr, quiet=args.quiet, verbose=args.verbose)
    try:
        with display:
            bundle = collect_bundle(args.url, out, options, progress=display.event)
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
    if not (out / MANIFEST).exists():
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


class _Display:
    """Progress bar on a terminal; nothing when piped, unless --verbose."""

    def __init__(self, stream: TextIO, quiet: bool, verbose: bool) -> None:
        self.verbose = verbose and not quiet
        self.console = Console(file=stream, stderr=stream is sys.stderr)
        self.live = not quiet and self.console.is_terminal
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _Display:
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]collecting[/]"), _Elapsed(time.monotonic()),
                TextColumn("{task.description}"), console=self.console, transient=True,
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
            self.console.print(f"{e.elapsed_s:7.2f}s  {f.phase:<8} {e.text:<24} "
                               f"{f.duration_s:6.3f}s  {result}", highlight=False, markup=False)
        if self.progress is not None and self.task is not None and e.what in ("step", "note"):
            self.progress.update(self.task, total=e.planned_s, description=e.text)
