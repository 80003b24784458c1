"""gopark: why a Go program's goroutines pile up or leak, and why its memory grows.

The public Python API mirrors the CLI::

    import gopark
    inputs = gopark.load(["dump.txt", "goroutine.pb.gz"])
    print(gopark.inventory(inputs[0]).groups[0])
    for finding in gopark.diagnose(inputs).findings:
        print(finding.verdict, finding.title)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gopark.analysis.findings import Diagnosis
    from gopark.analysis.inventory import Inventory
    from gopark.model import Profile, Snapshot

__all__ = ["__version__", "diagnose", "inventory", "load"]


def load(paths: Iterable[str | Path]) -> list[Snapshot | Profile | Path]:
    """Read dumps and profiles (format sniffed from the bytes) and bundles (gopark
    collect; folders or zips) into model objects; inputs no parser turns into objects (e.g.
    execution traces) come back as paths.
    Raises gopark.errors.InputError naming the file and the place when one is unreadable."""
    from gopark.inputs import load_inputs

    return load_inputs(paths).items


def inventory(snapshot: Snapshot | Profile, similarity: str = "user") -> Inventory:
    """Group a goroutine snapshot (or goroutine profile) by stack at ``similarity``
    ("user", "functions" or "exact"), classified, largest group first."""
    from gopark.analysis.inventory import inventory as make_inventory
    from gopark.formats.pprof import profile_to_snapshot
    from gopark.model import Profile

    if isinstance(snapshot, Profile):
        snapshot = profile_to_snapshot(snapshot)
    return make_inventory(snapshot, similarity)


def diagnose(inputs: Sequence[Snapshot | Profile | Path | str], *,
             threshold: float | None = None) -> Diagnosis:
    """Findings (proven, suspected, benign, ...) from dumps and profiles; strings are read
    as file paths. ``threshold`` is the weighted group size that makes a suspect."""
    from gopark.analysis import diagnose as diag
    from gopark.analysis.suspects import DEFAULT_THRESHOLD

    items: list[Snapshot | Profile | Path] = []
    for item in inputs:
        items.extend(load([item]) if isinstance(item, str) else [item])
    return diag.diagnose(items, threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
