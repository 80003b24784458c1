"""What the user names on the command line — files or bundles — as model objects.

A file goes through formats.load (the parser is chosen from the bytes); heap?debug=1 text
becomes a heap Profile carrying its runtime.MemStats. A bundle (gopark collect; a folder
or a zip of one) gives every file it holds, in the order taken, with the collection's
timestamps: each goroutine snapshot gets the time its request started, so trends have a
time axis. Files of a zipped bundle are read from the zip as they are; only an execution
trace is copied out, to a private temporary folder, because the trace engine streams it
from a file (a trace can be far bigger than what is worth holding in memory).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gopark.collect.bundle import MANIFEST, Bundle, BundleFile, open_bundle
from gopark.collect.bundlezip import is_zip
from gopark.collect.collector import (
    CollectOptions,
    ProgressCallback,
    collect_bundle,
    collect_zip,
)
from gopark.errors import InputError
from gopark.formats.load import Loaded, load_bytes, load_path
from gopark.formats.sniff import sniff
from gopark.model import Profile, Snapshot


@dataclass(slots=True)
class Inputs:
    """Everything loaded from the named paths, in order, and what could not be used."""

    items: list[Loaded] = field(default_factory=list)
    target: str | None = None
    """The bundle's target URL, when a bundle was named."""
    go_version: str | None = None
    notes: list[str] = field(default_factory=list)
    """Files of a bundle that could not be read (the rest is still used)."""
    path_names: dict[Path, str] = field(default_factory=dict)
    """What to call a path among the items in messages: a trace copied out of a zipped
    bundle is named as its member (``incident.zip:b/0007-trace.trace``), not its copy."""


def is_bundle(path: str | Path) -> bool:
    """True for a folder with a bundle manifest in it, or a zip (of a bundle, presumably:
    no dump or profile is a zip)."""
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST).is_file()) or is_zip(p)


def load_inputs(paths: Iterable[str | Path], traces: bool = True) -> Inputs:
    """Load files and bundles (folders and zips). Raises InputError for an unreadable file,
    a folder or zip that is not a bundle, or a damaged zip; a file *inside* a bundle that
    cannot be parsed becomes a note. ``traces=False`` leaves a bundle's execution trace
    out (a zipped bundle's would be copied out to a temporary file for nothing)."""
    out = Inputs()
    for path in paths:
        p = Path(path)
        if p.is_dir() or is_zip(p):
            bundle = open_bundle(p)
            out.target = out.target or bundle.target
            out.go_version = out.go_version or bundle.go_version
            items, notes = load_bundle(bundle, traces)
            out.path_names.update(_trace_names(bundle, items))
            out.items.extend(items)
            out.notes.extend(notes)
        else:
            out.items.extend(load_file(p))
    return out


def is_url(text: str) -> bool:
    """True for an http(s) URL (a live target) rather than a path."""
    return text.startswith(("http://", "https://"))


def collect_inputs(url: str, options: CollectOptions, keep: Path | None = None,
                   progress: ProgressCallback | None = None) -> Inputs:
    """Collect a bundle from a live target and load it.

    The bundle goes to `keep` (kept; zipped when its name ends in .zip) or to a temporary
    folder (removed afterwards). Ctrl-C during the collection stops it early: what was
    taken is still loaded, with a note.
    """
    location = keep if keep is not None else Path(tempfile.mkdtemp(prefix="gopark-bundle-"))
    collect = collect_zip if location.suffix == ".zip" else collect_bundle
    interrupted = False
    inputs: Inputs | None = None
    try:
        try:
            collect(url, location, options, progress)
        except KeyboardInterrupt:
            if not (location / MANIFEST).is_file() and not location.is_file():
                raise
            interrupted = True
        inputs = load_inputs([location])
    finally:
        if keep is None:
            if inputs is not None and any(isinstance(i, Path) for i in inputs.items):
                # traces stay paths, read later by diagnose: remove the folder at exit
                atexit.register(shutil.rmtree, location, ignore_errors=True)
            else:
                shutil.rmtree(location, ignore_errors=True)
    if interrupted:
        inputs.notes.append("collection interrupted (Ctrl-C): diagnosed what was taken")
    if keep is not None:
        inputs.notes.append(f"bundle kept in {keep}")
    return inputs


def load_file(path: Path) -> list[Loaded]:
    """One file: like formats.load.load_path, plus heap?debug=1 text (with MemStats)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise InputError(str(path), None, f"cannot read: {e.strerror or e}") from None
    if sniff(head) == "heap-text":
        return [heap_text_profile(path.read_bytes(), str(path))]
    return load_path(path)


def heap_text_profile(data: bytes, source: str) -> Profile:
    """heap?debug=1 text as a heap Profile with its MemStats attached."""
    from gopark.formats.heaptext import parse_heap_text

    parsed = parse_heap_text(data, source)
    parsed.profile.memstats = parsed.memstats
    return parsed.profile


# Bundle file kinds that hold something the analyses read.
_USED_KINDS = ("goroutine", "goroutineleak", "heap", "allocs", "block", "mutex", "cpu", "trace")


def load_bundle(bundle: Bundle, traces: bool = True) -> tuple[list[Loaded], list[str]]:
    """Every usable file of `bundle` as model objects (and paths for traces, unless
    ``traces`` is False), with the time each was taken; plus one note per file that could
    not be read."""
    items: list[Loaded] = []
    notes: list[str] = []
    for f in bundle.files:
        if not f.ok or f.kind not in _USED_KINDS or (f.kind == "trace" and not traces):
            continue
        try:
            items.extend(_load_bundle_file(bundle, f))
        except InputError as e:
            notes.append(f"skipped {e}")
    if bundle.status not in ("complete", "collecting"):
        notes.append(f"the bundle is partial ({bundle.status}); "
                     f"{sum(f.ok for f in bundle.files)} files were taken")
    return items, notes


def _trace_names(bundle: Bundle, items: Iterable[Loaded]) -> dict[Path, str]:
    """The member names of the traces _trace_file copied out of a zipped bundle."""
    if bundle.archive is None:
        return {}
    members = {f.name: bundle.source(f) for f in bundle.select("trace") if f.name}
    return {i: members[i.name] for i in items if isinstance(i, Path) and i.name in members}


def _load_bundle_file(bundle: Bundle, f: BundleFile) -> list[Loaded]:
    if f.kind == "trace":
        return [_trace_file(bundle, f)]
    source = bundle.source(f)
    data = bundle.read(f)
    if f.kind in ("heap", "allocs") and f.form == "debug1":
        profile = heap_text_profile(data, source)
        profile.time = f.started
        return [profile]
    loaded = load_bytes(data, source)
    # One clock for every file of a bundle (gopark's, when the request started: the runtime
    # takes the profile as the request arrives); a profile's own time is the target's clock.
    for item in loaded:
        if isinstance(item, Snapshot):
            item.taken_at = f.started
            item.go_version = item.go_version or bundle.go_version
        elif isinstance(item, Profile):
            item.time = f.started
    return loaded


def bundle_trace(path: str | Path) -> tuple[Path, str]:
    """The execution trace of the bundle (folder or zip) at ``path``: a file the trace
    engine can read, and the trace's name for messages. InputError if it has none."""
    bundle = open_bundle(path)
    traces = bundle.select("trace")
    if not traces:
        raise InputError(str(path), None, "no execution trace in this bundle (gopark collect "
                         "takes one with --trace 5s)")
    return _trace_file(bundle, traces[-1]), bundle.source(traces[-1])


@cache
def _scratch() -> Path:
    """A private folder for traces copied out of zips, removed when gopark exits."""
    folder = Path(tempfile.mkdtemp(prefix="gopark-zip-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _trace_file(bundle: Bundle, f: BundleFile) -> Path:
    """The trace's own file, or for a zipped bundle a temporary copy (streamed, capped at
    the size the manifest lists) named like the member."""
    if bundle.archive is None or f.name is None:
        return bundle.path(f)
    folder = Path(tempfile.mkdtemp(dir=_scratch()))  # one per bundle: names may repeat
    copy = folder / f.name
    with copy.open("wb") as out:
        bundle.copy(f, out)
    return copy
