"""Diagnose: every input in, ranked findings out.

``diagnose(inputs)`` takes what the parsers produced (goroutine snapshots in any form,
pprof profiles, paths of inputs no parser turned into objects, e.g. traces), runs the
one-snapshot inventory analysis on the best goroutine snapshot, then every contributor
(``CONTRIBUTORS``: the growth/heap and trace analyses; a caller may pass others), and
merges their findings: findings about the same stack group (``Finding.group_key``) become
one, with the most serious verdict and all the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gopark.analysis import crosscheck, growth, suspects
from gopark.analysis.findings import VERDICTS, Diagnosis, Finding, Summary
from gopark.analysis.inventory import Inventory, inventory, key_of, signature
from gopark.analysis.source import SourceReader
from gopark.formats.pprof import profile_to_snapshot
from gopark.model import Profile, Snapshot

Input = Snapshot | Profile | Path


@dataclass(slots=True)
class Context:
    """What the analyses see: the inputs sorted by kind, and what step 1 made of them."""

    snapshots: list[Snapshot]
    """Goroutine snapshots (profile "goroutine"), oldest first when times are known."""
    leak_snapshots: list[Snapshot]
    """goroutineleak profiles/dumps."""
    profiles: list[Profile]
    """Every other profile (heap, allocs, block, mutex, CPU)."""
    paths: list[Path]
    """Inputs left as paths (execution traces, ...)."""
    path_names: Mapping[Path, str] = field(default_factory=dict)
    """What to call a path in messages when not its own name (a trace copied out of a zip)."""
    primary: Snapshot | None = None
    """The snapshot step 1 analysed: the last debug=2 dump, else the last snapshot."""
    inventory: Inventory | None = None
    summary: Summary = field(default_factory=Summary)
    notes: list[str] = field(default_factory=list)
    threshold: float = suspects.DEFAULT_THRESHOLD
    source: SourceReader = field(default_factory=SourceReader)


Contributor = Callable[[Context], Iterable[Finding]]
CONTRIBUTORS: tuple[Contributor, ...] = (growth.contribute, crosscheck.contribute)
"""Analyses that add findings after step 1, in order."""


def split_inputs(inputs: Iterable[Input]) -> Context:
    """Sort inputs by kind; goroutine profiles become snapshots."""
    ctx = Context(snapshots=[], leak_snapshots=[], profiles=[], paths=[])
    for item in inputs:
        if isinstance(item, Path):
            ctx.paths.append(item)
            continue
        if isinstance(item, Profile):
            if item.kind not in ("goroutine", "goroutineleak"):
                ctx.profiles.append(item)
                continue
            item = profile_to_snapshot(item)
        (ctx.leak_snapshots if item.profile == "goroutineleak" else ctx.snapshots).append(item)
    if ctx.snapshots and all(s.taken_at is not None for s in ctx.snapshots):
        ctx.snapshots.sort(key=lambda s: s.taken_at)  # type: ignore[arg-type, return-value]
    return ctx


def diagnose(inputs: Sequence[Input], *, threshold: float = suspects.DEFAULT_THRESHOLD,
             source: SourceReader | None = None, target: str | None = None,
             contributors: Sequence[Contributor] | None = None,
             path_names: Mapping[Path, str] | None = None) -> Diagnosis:
    """Diagnose a program from its dumps and profiles.

    ``threshold`` is the weighted group size that makes a suspect (see suspects.weight);
    ``contributors`` defaults to ``CONTRIBUTORS``; ``path_names`` names path inputs in
    messages (see inputs.Inputs.path_names).
    """
    ctx = split_inputs(inputs)
    ctx.path_names = path_names or {}
    ctx.threshold = threshold
    if source is not None:
        ctx.source = source
    found = _step1(ctx)
    for contributor in CONTRIBUTORS if contributors is None else contributors:
        found.extend(contributor(ctx))
    names = [s.source for s in (*ctx.snapshots, *ctx.leak_snapshots)]
    names += [p.source for p in ctx.profiles] + [ctx.path_names.get(p, str(p)) for p in ctx.paths]
    times = [s.taken_at for s in ctx.snapshots if s.taken_at is not None]
    version = next((s.go_version for s in (*ctx.snapshots, *ctx.leak_snapshots)
                    if s.go_version), None)
    diagnosis = Diagnosis(
        target=target or ", ".join(dict.fromkeys(names)), findings=merge(found),
        summary=ctx.summary, go_version=version,
        window_start=min(times).isoformat() if times else None,
        window_end=max(times).isoformat() if times else None,
        snapshots=len(ctx.snapshots), notes=ctx.notes,
    )
    diagnosis.findings = diagnosis.ranked()
    return diagnosis


def _step1(ctx: Context) -> list[Finding]:
    """Inventory, categories, benign shapes and suspects of the primary snapshot."""
    dumps = [s for s in ctx.snapshots if s.form == "debug2"]
    leak_dumps = [s for s in ctx.leak_snapshots if s.form == "debug2"]
    candidates = dumps or ctx.snapshots or leak_dumps or ctx.leak_snapshots
    if not candidates:
        ctx.notes.append("no goroutine dump or profile among the inputs: no goroutine findings")
        return []
    primary = candidates[-1]
    ctx.primary = primary
    if primary.form != "debug2":
        ctx.notes.append(f"no debug=2 dump: {primary.form} form has no goroutine ids, "
                         "creators, wait times or arguments (lock holders)")
    # profile stacks carry no wait reason: learn categories from any dump given with them
    hints = _category_hints(dumps + leak_dumps, ctx.source) if primary.form != "debug2" else {}
    inv = inventory(primary, "user", source=ctx.source, category_hints=hints)
    ctx.inventory = inv
    leaked_keys = _leaked_keys(ctx.leak_snapshots, primary)
    ctx.summary.parked_fraction = round(inv.parked_fraction, 4)
    ctx.summary.parked_by_category = {
        c: round(n / inv.total, 4) for c, n in inv.parked_by_category.items()} if inv.total else {}
    counts = [s.total for s in ctx.snapshots] or [primary.total]
    ctx.summary.goroutines_first, ctx.summary.goroutines_last = counts[0], counts[-1]
    return suspects.findings(inv, primary.goroutines, threshold=ctx.threshold,
                             source=ctx.source, leaked_keys=leaked_keys)


def _category_hints(dumps: Sequence[Snapshot], reader: SourceReader) -> dict[str, str]:
    """user key → category from debug=2 dumps (which carry wait reasons)."""
    hints: dict[str, str] = {}
    for s in dumps:
        for g in inventory(s, "user", source=reader).groups:
            if g.category != "unknown":
                hints[g.key] = g.category
    return hints


def _leaked_keys(leaks: Sequence[Snapshot], primary: Snapshot) -> dict[str, int]:
    """user key → goroutines marked leaked, from goroutineleak inputs other than primary.
    Profiles (proto, debug=1) list only leaked goroutines; dumps mark them."""
    out: dict[str, int] = {}
    for s in leaks:
        if s is primary:
            continue
        for g in s.goroutines:
            leaked = g.leaked or s.form != "debug2"
            if leaked and g.frames:  # a stack-less sample cannot be matched to a group
                k = key_of(signature(g.frames, "user"), "user")
                out[k] = out.get(k, 0) + g.count
    return out


def merge(found: Iterable[Finding]) -> list[Finding]:
    """One finding per group: the most serious verdict wins, evidence is pooled."""
    by_key: dict[str, Finding] = {}
    out: list[Finding] = []
    for f in found:
        if f.group_key is None:
            out.append(f)
            continue
        old = by_key.get(f.group_key)
        if old is None:
            by_key[f.group_key] = f
            out.append(f)
            continue
        keep, other = (f, old) if VERDICTS.index(f.verdict) < VERDICTS.index(old.verdict) \
            else (old, f)
        keep.evidence = list(dict.fromkeys([*keep.evidence, *other.evidence]))
        keep.source_line = keep.source_line or other.source_line
        keep.per_min = keep.per_min if keep.per_min is not None else other.per_min
        keep.bytes = keep.bytes if keep.bytes is not None else other.bytes
        if keep is f:
            out[out.index(old)] = f
            by_key[f.group_key] = f
    return out
