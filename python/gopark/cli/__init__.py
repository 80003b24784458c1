"""The `gopark` command line: one module per subcommand, each with `register` and `run`.

A subcommand module defines::

    NAME = "goroutines"
    HELP = "one line for the command list"
    def register(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

and is listed in COMMANDS below. The CLI stays thin: it parses arguments, calls the
Python API and hands the result to a reporter.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from gopark import __version__
from gopark.errors import GoparkError

# In the order `gopark --help` lists them.
COMMANDS: list[str] = ["diagnose", "watch", "collect", "goroutines", "trace", "diff", "demo"]

DESCRIPTION = """\
Find out why a Go program's goroutines pile up or leak and why its memory grows.

  gopark demo                                    # the built-in leaky service, diagnosed live
  gopark diagnose http://127.0.0.1:6060/debug/pprof/   # watch a service for 60 s, then say
  gopark diagnose dump.txt heap.pb.gz            # the same from files or a bundle folder
  gopark goroutines dump.txt                     # grouped goroutine inventory
  gopark trace trace.out                         # what an execution trace holds
"""


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"gopark.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="gopark", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gopark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(
            mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.register(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gopark` script; returns the exit code (0 ran, 1 check failed,
    2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        code: int = args._run(args)
        return code
    except GoparkError as e:
        print(f"gopark: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gopark: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): point stdout at /dev/null so the flush at exit
        # does not fail again and turn a finished run into exit 1
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
