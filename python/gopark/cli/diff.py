"""`gopark diff A B`: what changed between two dumps, profiles or bundles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gopark.analysis.heap import HeapDiff, diff_heap
from gopark.analysis.inventory import SIMILARITIES
from gopark.analysis.trend import SnapshotDiff, diff_snapshots
from gopark.errors import GoparkError
from gopark.formats.load import Loaded
from gopark.inputs import is_bundle, load_inputs
from gopark.model import Profile, Snapshot
from gopark.report import diff_json, diff_text

NAME = "diff"
HELP = "goroutine groups and heap sites before/after: new, vanished, grown"
DESCRIPTION = """\
Compare two goroutine dumps or profiles, two heap profiles, or two bundles (their last
goroutine snapshot and heap profile): per stack group the count before, after and the
change, with new and vanished groups; heap in use by allocation site likewise (like
`go tool pprof -base`). With a single bundle, its first and last snapshots are compared.

  gopark diff before.txt after.txt
  gopark diff heap-1.pb.gz heap-2.pb.gz
  gopark diff bundle/                   # start of the collection vs its end
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of `gopark diff`."""
    parser.add_argument("before", metavar="A", help="dump, profile or bundle (folder or zip)")
    parser.add_argument("after", metavar="B", nargs="?",
                        help="dump, profile or bundle (omit to diff a bundle's "
                             "first and last snapshot)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--similarity", choices=SIMILARITIES, default="user",
                        help="how alike stacks must be to count as one group (default user)")
    parser.add_argument("--top", type=int, default=20, metavar="N",
                        help="rows per table (default 20)")
    parser.add_argument("--all", action="store_true", help="also list unchanged groups/sites")


def _snapshots(items: list[Loaded]) -> list[Snapshot]:
    snaps = [s for s in items if isinstance(s, Snapshot) and s.profile == "goroutine"]
    dumps = [s for s in snaps if s.form == "debug2"]
    return dumps or snaps  # dumps carry wait reasons: prefer them when a bundle has both


def _heaps(items: list[Loaded]) -> list[Profile]:
    heaps = [p for p in items if isinstance(p, Profile) and p.kind == "heap"
             and p.default_sample_type != "alloc_space"]
    proto = [p for p in heaps if not p.memstats]  # the debug=1 text repeats the protobuf
    return proto or heaps


def run(args: argparse.Namespace) -> int:
    """Print the diff; 2 when the inputs have nothing comparable."""
    if args.top < 1:
        raise GoparkError("--top must be at least 1")
    if args.after is None:
        if not is_bundle(args.before):
            raise GoparkError(f"{args.before}: with one argument, give a bundle (folder or zip) "
                              "(gopark collect); otherwise give two inputs")
        items = load_inputs([args.before], traces=False).items
        snaps, heaps = _snapshots(items), _heaps(items)
        before = (snaps[0] if snaps else None, heaps[0] if heaps else None)
        after = (snaps[-1] if len(snaps) > 1 else None, heaps[-1] if len(heaps) > 1 else None)
    else:
        a = load_inputs([args.before], traces=False).items
        b = load_inputs([args.after], traces=False).items
        sa, sb, ha, hb = _snapshots(a), _snapshots(b), _heaps(a), _heaps(b)
        before = (sa[-1] if sa else None, ha[-1] if ha else None)
        after = (sb[-1] if sb else None, hb[-1] if hb else None)

    goroutines: SnapshotDiff | None = None
    heap: HeapDiff | None = None
    if before[0] is not None and after[0] is not None:
        goroutines = diff_snapshots(before[0], after[0], args.similarity)
    if before[1] is not None and after[1] is not None:
        heap = diff_heap([before[1], after[1]])
    if goroutines is None and heap is None:
        names = " and ".join(str(Path(p)) for p in (args.before, args.after) if p)
        raise GoparkError(f"{names}: nothing to compare: need a goroutine dump or profile on "
                          "both sides, or a heap profile on both sides")
    if args.format == "json":
        diff_json.render_json(goroutines, heap, sys.stdout)
    else:
        diff_text.render_text(goroutines, heap, sys.stdout, top=args.top, show_same=args.all)
    return 0
