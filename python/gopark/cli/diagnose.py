"""`gopark diagnose FILE...`: findings with verdicts, evidence, location and fix."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from gopark.analysis.diagnose import diagnose
from gopark.analysis.findings import VERDICTS, Finding
from gopark.analysis.suspects import DEFAULT_THRESHOLD
from gopark.cli.arguments import add_collection_arguments, collect_options
from gopark.cli.collect import ProgressDisplay
from gopark.errors import GoparkError
from gopark.inputs import Inputs, collect_inputs, is_url, load_inputs
from gopark.report import json as json_report
from gopark.report import text as text_report

NAME = "diagnose"
HELP = "find leaking and piling-up goroutines in dumps and profiles"
DESCRIPTION = """\
Diagnose a Go program from what its runtime exposes: goroutine dumps and profiles (any
form), goroutineleak profiles (Go 1.26+), heap profiles, execution traces (Go 1.11+), or a
live /debug/pprof/ endpoint watched for --duration. Several snapshots give each group a
trend (growing, drained, stable); a trace tells which goroutines never woke, which a timer
keeps waking, and the scheduler latency. Each finding has a verdict (proven, confirmed,
suspected, benign), the evidence, the source location and a fix.

  gopark diagnose goroutine-debug2.txt
  gopark diagnose dump.txt goroutineleak.pb.gz --format json
  gopark diagnose dump.txt --fail-on suspected     # exit 1 if anything is suspected
  gopark diagnose dump.txt --ignore 'cache\\.janitor' --fail-on confirmed  # a CI gate
  gopark diagnose http://127.0.0.1:6060/debug/pprof/ --duration 20s --interval 4s
  gopark diagnose URL --trace 5s --keep incident/  # with a trace; keep the bundle
  gopark diagnose dump.txt trace.out               # a dump and a trace of the same process
  gopark diagnose bundle/                          # a folder from gopark collect
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark diagnose`."""
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="dumps and profiles, bundles (gopark collect; folders or "
                             "zips), or the /debug/pprof/ URL of a live service to collect "
                             "from first")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="W",
                        help="weighted size of a group that makes it a suspect: its count, "
                             "times up to ~2 for many different creators, times more for "
                             f"long waits (default {DEFAULT_THRESHOLD:g})")
    parser.add_argument("--fail-on", choices=VERDICTS[:-1], default=None, metavar="VERDICT",
                        help="exit 1 when a finding is this serious or worse "
                             "(proven, confirmed, suspected)")
    parser.add_argument("--ignore", action="append", default=[], metavar="REGEX",
                        help="leave out findings with a function matching REGEX in their "
                             "stack, location or creator: a shape you know and keep "
                             "(repeatable; e.g. 'cache\\.\\(\\*janitor\\)')")
    parser.add_argument("--no-benign", action="store_true", help="hide known idle shapes (text)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="with a URL: keep the collected bundle in DIR")
    add_collection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis; 1 when --fail-on is met."""
    ignore = [_regex(p) for p in args.ignore]
    inputs = _inputs(args)
    d = diagnose(inputs.items, threshold=args.threshold, target=inputs.target,
                 path_names=inputs.path_names)
    d.ignore(ignore)
    d.notes.extend(inputs.notes)
    if args.format == "json":
        sys.stdout.write(json_report.dumps(json_report.diagnosis_json(d)))
    else:
        text_report.render_diagnosis(d, sys.stdout, show_benign=not args.no_benign)
    return 1 if failed(d.findings, args.fail_on) else 0


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise GoparkError(f"--ignore {pattern!r}: not a regular expression ({e})") from None


def _inputs(args: argparse.Namespace) -> Inputs:
    urls = [f for f in args.files if is_url(f)]
    if not urls:
        return load_inputs(args.files)
    if len(args.files) > 1:
        raise GoparkError("diagnose takes one URL, or files and bundle folders, not both")
    if sys.stderr.isatty():
        print(f"collecting from {urls[0]} for {args.duration:g} s (Ctrl-C: stop early and "
              "diagnose what was taken)…", file=sys.stderr)
    with ProgressDisplay(sys.stderr, quiet=False, verbose=False) as display:
        return collect_inputs(urls[0], collect_options(args), keep=args.keep,
                              progress=display.event)


def failed(findings: list[Finding], fail_on: str | None) -> bool:
    """Whether any finding is at least as serious as ``fail_on``."""
    if fail_on is None:
        return False
    limit = VERDICTS.index(fail_on)
    return any(VERDICTS.index(f.verdict) <= limit for f in findings)
