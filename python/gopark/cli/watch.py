"""`gopark watch URL`: a live view of a service's goroutines and heap, refreshed each interval.

Each refresh takes the cheap goroutine profile (protobuf; the concurrent profile, no long
stop-the-world) and heap?debug=1 for the runtime's MemStats, then re-runs the trend
analysis over the snapshots so far (the last --history of them).

Etiquette: writing a goroutine profile costs the target CPU in proportion to its
goroutines (about 2.5 µs each: 0.12 s at 50,000). The watch keeps that under --max-load
of one core by stretching the interval to at least (time the requests took) / max-load.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live

from gopark.analysis.trend import TrendReport, analyze, user_key
from gopark.cli.collect import parse_duration, parse_header
from gopark.collect.client import ClientOptions, FetchError, PprofClient, redact_url
from gopark.errors import CollectError, GoparkError
from gopark.formats.heaptext import parse_memstats
from gopark.formats.pprof import parse_profile, profile_to_snapshot
from gopark.model import Snapshot
from gopark.report.watch_text import WatchState, render_plain, render_rich, render_summary

NAME = "watch"
HELP = "live view of a service's goroutines and heap, with growing groups highlighted"
DESCRIPTION = """\
Watch a running Go service through its net/http/pprof endpoint: total goroutines with a
sparkline, the top stack groups with their count, change and rate, growing groups
highlighted, and the heap in use. Ctrl-C stops it and prints a summary.

  gopark watch http://127.0.0.1:6060/debug/pprof/ --interval 5s
"""

MAX_PROFILE_BYTES = 256 << 20
MAX_HEAP_TEXT_BYTES = 64 << 20


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark watch`."""
    parser.add_argument("url", metavar="URL",
                        help="the /debug/pprof/ endpoint, e.g. http://127.0.0.1:6060/debug/pprof/")
    parser.add_argument("--interval", type=parse_duration, default=5.0, metavar="DUR",
                        help="time between refreshes (default 5s)")
    parser.add_argument("--iterations", type=int, default=0, metavar="N",
                        help="stop after N refreshes (default: until Ctrl-C)")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="how many groups to show (default 10)")
    parser.add_argument("--history", type=int, default=120, metavar="N",
                        help="snapshots the trend is computed over (default 120)")
    parser.add_argument("--max-load", type=float, default=0.02, metavar="FRACTION",
                        help="keep the requests under this share of one of the target's "
                             "cores by stretching the interval (default 0.02)")
    parser.add_argument("--no-heap", action="store_true",
                        help="do not read heap?debug=1 (MemStats) each refresh")
    parser.add_argument("--timeout", type=parse_duration, default=10.0, metavar="DUR",
                        help="give up on a request silent this long (default 10s)")
    parser.add_argument("--header", type=parse_header, action="append", default=[],
                        metavar="'NAME: VALUE'", help="extra request header (repeatable)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


class _Watch:
    """The state kept between refreshes."""

    def __init__(self, client: PprofClient, history: int, heap: bool) -> None:
        self.client = client
        self.snapshots: deque[Snapshot] = deque(maxlen=max(2, history))
        self.heap_inuse: deque[int] = deque(maxlen=max(2, history))
        self.heap = heap
        self.errors = 0
        self.last_error: str | None = None
        self.started = datetime.now(UTC)
        self.busy = 0.0
        """Seconds the last refresh's requests took (an upper bound on the target's CPU
        for them: the profiles are written by one goroutine, and the wire adds time)."""

    def _get(self, path: str, cap: int) -> bytes:
        began = time.monotonic()
        try:
            return self.client.fetch_bytes(path, cap)
        finally:
            self.busy += time.monotonic() - began

    def refresh(self) -> None:
        """Take one goroutine profile (and MemStats); errors are counted, not raised."""
        self.busy = 0.0
        try:
            data = self._get("goroutine", MAX_PROFILE_BYTES)
            snap = profile_to_snapshot(parse_profile(data, self.client.url("goroutine")))
            snap.taken_at = datetime.now(UTC)
            self.snapshots.append(snap)
            if self.heap:
                text = self._get("heap?debug=1", MAX_HEAP_TEXT_BYTES)
                stats = parse_memstats(text, self.client.url("heap?debug=1"))
                if "HeapInuse" in stats:
                    self.heap_inuse.append(stats["HeapInuse"])
        except (FetchError, GoparkError) as e:
            self.errors += 1
            self.last_error = str(e)
            if not self.snapshots:
                raise CollectError(f"{redact_url(self.client.base_url)}: {e}") from e

    def pause_after(self, interval: float, max_load: float) -> float:
        """The interval, stretched so the requests stay under max_load of a core."""
        return max(interval, self.busy / max_load) if max_load > 0 else interval

    def state(self, interval: float, max_load: float) -> WatchState:
        """What the view shows now."""
        report: TrendReport = analyze(list(self.snapshots), user_key)
        pause = self.pause_after(interval, max_load)
        return WatchState(target=redact_url(self.client.base_url), report=report,
                          heap_inuse=list(self.heap_inuse), started=self.started,
                          now=datetime.now(UTC), errors=self.errors, last_error=self.last_error,
                          stretched=pause if pause > interval else None)


def run(args: argparse.Namespace) -> int:
    """Refresh until --iterations or Ctrl-C; print a summary. 2 if the target never answered."""
    if args.iterations < 0 or args.top < 1 or not 0 <= args.max_load <= 1:
        raise GoparkError("--iterations must be ≥ 0, --top ≥ 1 and --max-load in 0..1")
    options = ClientOptions(timeout=args.timeout, headers=tuple(args.header),
                            insecure=args.insecure, retries=0)
    console = Console()
    with PprofClient(args.url, options) as client:
        watch = _Watch(client, args.history, heap=not args.no_heap)
        try:
            if console.is_terminal:
                _loop_live(watch, args, console)
            else:
                _loop_plain(watch, args)
        except KeyboardInterrupt:
            pass
        if watch.snapshots:
            print("\n".join(render_summary(watch.state(args.interval, args.max_load))), flush=True)
    return 0


def _ticks(args: argparse.Namespace) -> Iterable[int]:
    return range(args.iterations) if args.iterations else itertools.count()


def _pause(start: float, watch: _Watch, args: argparse.Namespace) -> None:
    interval = watch.pause_after(args.interval, args.max_load)
    time.sleep(max(0.0, start + interval - time.monotonic()))


def _loop_live(watch: _Watch, args: argparse.Namespace, console: Console) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for i in _ticks(args):
            start = time.monotonic()
            watch.refresh()
            view = render_rich(watch.state(args.interval, args.max_load), args.top)
            live.update(view, refresh=True)
            if not args.iterations or i < args.iterations - 1:
                _pause(start, watch, args)


def _loop_plain(watch: _Watch, args: argparse.Namespace) -> None:
    for i in _ticks(args):
        start = time.monotonic()
        watch.refresh()
        for line in render_plain(watch.state(args.interval, args.max_load), args.top):
            print(line, flush=True)
        if not args.iterations or i < args.iterations - 1:
            _pause(start, watch, args)
    sys.stdout.flush()
