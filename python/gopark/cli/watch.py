"""`gopark watch URL`: a live view of a service's goroutines and heap, refreshed each interval.

gopark.watcher takes the snapshots and keeps the series (the last --history of them);
this module loops, paces the refreshes and hands each state to report.watch_text. The
interval is stretched to at least (time the requests took) / --max-load, so the watch
costs the target under that share of one core.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live

from gopark.cli.arguments import add_access_arguments, client_options, parse_duration
from gopark.collect.client import PprofClient, redact_url
from gopark.errors import GoparkError
from gopark.report.watch_text import WatchState, render_plain, render_rich, render_summary
from gopark.watcher import Watcher

NAME = "watch"
HELP = "live view of a service's goroutines and heap, with growing groups highlighted"
DESCRIPTION = """\
Watch a running Go service through its net/http/pprof endpoint: total goroutines with a
sparkline, the top stack groups with their count, change and rate, growing groups
highlighted, and the heap in use. Ctrl-C stops it and prints a summary.

  gopark watch http://127.0.0.1:6060/debug/pprof/ --interval 5s
"""


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
    add_access_arguments(parser)


def _state(watch: Watcher, interval: float, max_load: float) -> WatchState:
    """What the view shows now."""
    pause = watch.pause_after(interval, max_load)
    return WatchState(target=redact_url(watch.client.base_url), report=watch.trend(),
                      heap_inuse=list(watch.heap_inuse), started=watch.started,
                      now=datetime.now(UTC), errors=watch.errors, last_error=watch.last_error,
                      stretched=pause if pause > interval else None)


def run(args: argparse.Namespace) -> int:
    """Refresh until --iterations or Ctrl-C; print a summary. 2 if the target never answered."""
    if args.iterations < 0 or args.top < 1 or not 0 <= args.max_load <= 1:
        raise GoparkError("--iterations must be ≥ 0, --top ≥ 1 and --max-load in 0..1")
    # No retries: the next refresh is the retry.
    options = replace(client_options(args), retries=0)
    console = Console(markup=False)  # names and paths come from the target: never markup
    with PprofClient(args.url, options) as client:
        watch = Watcher(client, args.history, heap=not args.no_heap)
        try:
            if console.is_terminal:
                _loop_live(watch, args, console)
            else:
                _loop_plain(watch, args)
        except KeyboardInterrupt:
            pass
        if watch.snapshots:
            summary = render_summary(_state(watch, args.interval, args.max_load))
            print("\n".join(summary), flush=True)
    return 0


def _ticks(args: argparse.Namespace) -> Iterable[int]:
    return range(args.iterations) if args.iterations else itertools.count()


def _pause(start: float, watch: Watcher, args: argparse.Namespace) -> None:
    interval = watch.pause_after(args.interval, args.max_load)
    time.sleep(max(0.0, start + interval - time.monotonic()))


def _loop_live(watch: Watcher, args: argparse.Namespace, console: Console) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for i in _ticks(args):
            start = time.monotonic()
            watch.refresh()
            view = render_rich(_state(watch, args.interval, args.max_load), args.top)
            live.update(view, refresh=True)
            if not args.iterations or i < args.iterations - 1:
                _pause(start, watch, args)


def _loop_plain(watch: Watcher, args: argparse.Namespace) -> None:
    for i in _ticks(args):
        start = time.monotonic()
        watch.refresh()
        for line in render_plain(_state(watch, args.interval, args.max_load), args.top):
            print(line, flush=True)
        if not args.iterations or i < args.iterations - 1:
            _pause(start, watch, args)
    sys.stdout.flush()
