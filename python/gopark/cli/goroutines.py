"""`gopark goroutines FILE...`: the grouped goroutine inventory of each dump or profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gopark.analysis.inventory import SIMILARITIES, filter_goroutines, inventory
from gopark.analysis.source import SourceReader
from gopark.collect.bundlezip import is_zip
from gopark.errors import GoparkError
from gopark.model import Snapshot
from gopark.report import json as json_report
from gopark.report import text as text_report

NAME = "goroutines"
HELP = "grouped goroutine inventory of dumps and goroutine profiles, largest group first"
DESCRIPTION = """\
Group the goroutines of each dump (goroutine?debug=2, panic/SIGQUIT traceback) or
goroutine profile (debug=1 text, protobuf) by stack, with each group's category, state,
wait minutes, location, creator and whether it is a known idle shape.

  gopark goroutines dump.txt
  gopark goroutines bundle/                        # a bundle's last full dump
  gopark goroutines goroutine.pb.gz --filter function=main.fetch --format json
  gopark goroutines dump.txt --filter state="chan send" --filter min-wait=5
"""

FILTER_KEYS = ("function", "state", "min-wait", "category")


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark goroutines`."""
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="dumps, goroutine profiles or bundles (gopark collect; folders "
                             "or zips)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--similarity", choices=SIMILARITIES, default="user",
                        help="user: runtime/stdlib frames folded (default); functions: "
                             "same function names; exact: same function and line everywhere")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="keep goroutines matching: function=REGEX (any frame), "
                             "state=TEXT, min-wait=MINUTES, category=NAME; repeatable")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="show the N largest groups (text)")
    parser.add_argument("--stacks", action="store_true",
                        help="print each group's example stack and goroutine ids (text)")


def parse_filters(items: list[str]) -> dict[str, str]:
    """KEY=VALUE filter arguments as a dict; raises GoparkError on a bad one."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise GoparkError(f"--filter {item!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(FILTER_KEYS)}")
        out[key] = value
    if "min-wait" in out and not out["min-wait"].isdigit():
        raise GoparkError(f"--filter min-wait={out['min-wait']}: expected whole minutes")
    return out


def _is_bundle(path: str) -> bool:
    # a folder or a zip: only bundles come that way
    return Path(path).is_dir() or is_zip(path)


def _load(path: str) -> list[object]:
    if _is_bundle(path):
        from gopark.inputs import load_inputs  # bundles only: collection code loads slowly

        return list(load_inputs([path], traces=False).items)
    from gopark.formats.load import load_path

    return list(load_path(path))


def run(args: argparse.Namespace) -> int:
    """Print the inventory of every goroutine snapshot among the files."""
    filters = parse_filters(args.filter)
    snapshots: list[Snapshot] = []
    for path in args.files:
        # goroutine profiles load as snapshots; other profiles and traces have no goroutines
        found = [i for i in _load(path) if isinstance(i, Snapshot)]
        if _is_bundle(path) and found:
            # a bundle holds a series: show its last full dump (else its last snapshot)
            dumps = [s for s in found if s.form == "debug2" and s.profile == "goroutine"]
            found = [(dumps or found)[-1]]
        snapshots += found
    if not snapshots:
        raise GoparkError(f"no goroutine dump or goroutine profile in {' '.join(args.files)}")
    reader = SourceReader()
    keep = filter_goroutines(
        function=filters.get("function"), state=filters.get("state"),
        min_wait=int(filters["min-wait"]) if "min-wait" in filters else None,
        category=filters.get("category"), source=reader,
    ) if filters else None
    invs = [inventory(s, args.similarity, source=reader, keep=keep) for s in snapshots]
    if args.format == "json":
        sys.stdout.write(json_report.dumps(json_report.inventories_json(invs)))
        return 0
    for i, inv in enumerate(invs):
        if i:
            print()
        text_report.render_inventory(inv, sys.stdout, limit=args.limit, stacks=args.stacks)
    return 0
