"""Bundles: a plain folder with the raw responses of a collection and a manifest.

A bundle folder can be zipped and shared (``zip -r b.zip b/``, or flat from inside the
folder): every command that reads a bundle reads the zip as it is, without unzipping it
(:mod:`gopark.collect.bundlezip`); ``gopark collect -o b.zip`` writes one directly. The
raw files are kept byte for byte as the target sent them (protobuf profiles stay
gzipped), so any pprof tool reads them too. Files appear atomically (written to a hidden
temporary name, then renamed) and ``manifest.json`` is rewritten atomically after each
file, so a bundle is valid at every moment, even when the collection was interrupted, the
target died or gopark itself was killed.

``manifest.json`` (schema ``gopark.bundle/v1``)::

    {
      "schema": "gopark.bundle/v1",
      "target": "http://127.0.0.1:6060/debug/pprof/",   # without user:password or query
      "gopark_version": "0.1.0",
      "go_version": "go1.27.3",          # null when the target does not reveal it
      "go_version_source": "/metrics go_info",            # where it came from, or null
      "started": "2026-11-27T07:00:00.000Z",              # UTC, ISO 8601, milliseconds
      "finished": "2026-11-27T07:01:00.412Z",             # null while collecting
      "status": "complete",
      "options": {"interval_s": 10.0, "duration_s": 60.0, "max_dump_goroutines": 20000,
                  "force_dumps": false, "cpu_s": 0.0, "trace_s": 0.0,
                  "timeout_s": 30.0, "max_bytes": 536870912},
      "profiles": {"goroutine": 54, "heap": 1, "block": 0, ...},
      "notes": ["mutex profile empty, so not taken: ... SetMutexProfileFraction ..."],
      "files": [
        {
          "name": "0003-goroutine-debug2.txt",  # null when the request failed
          "kind": "goroutine",   # index goroutine goroutineleak heap block mutex cpu trace
          "form": "debug2",      # html proto debug1 debug2 trace
          "request": "goroutine?debug=2",   # path and query under the target URL
          "phase": "start",      # start | interval | end | capture (trace, CPU)
          "started": "2026-11-27T07:00:00.120Z",
          "duration_s": 0.031,
          "size": 48213,         # bytes on disk (0 when failed)
          "error": null,         # or one line: what went wrong
          "retries": []          # why each retry waited, e.g. "HTTP 429: ... (Retry-After
                                 # 2 s); retried after 2.0 s"
        }
      ]
    }

``status``: ``collecting`` (still running, or gopark was killed), ``complete``,
``interrupted`` (Ctrl-C), ``target-lost`` (the target stopped answering; what came
before is there) or ``failed`` (nothing could be read; ``notes`` says why).
``profiles`` is the Count column of the target's /debug/pprof/ index at the start
(goroutines, distinct block/mutex stacks, ...); the end index is kept as a file.
File names are ``NNNN-kind[-form].ext`` (``.pb.gz``, ``.txt``, ``.html``, ``.trace``),
numbered in the order requests began; ``files`` lists them in the order they started.
Secrets (headers, certificate paths, credentials or tokens in the URL) are never written
into a bundle.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from gopark import __version__
from gopark.collect.bundlezip import BundleZip, is_zip, write_zip
from gopark.errors import CollectError, InputError
from gopark.untrusted import printable

SCHEMA = "gopark.bundle/v1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
"""A manifest lists ~250 bytes per file: far below this even for hours of snapshots."""

# File name extension per form.
_EXTENSION = {"html": ".html", "proto": ".pb.gz", "debug1": ".txt", "debug2": ".txt",
              "trace": ".trace"}

STATUSES = ("collecting", "complete", "interrupted", "target-lost", "failed")


def format_time(t: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``, the manifest's time format."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any ISO 8601 time with an offset)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time without a timezone: {text!r}")
    return t


@dataclass(slots=True)
class BundleFile:
    """One request of a collection: the file it produced, or the error it met."""

    name: str | None
    kind: str
    form: str
    request: str
    phase: str
    started: datetime
    duration_s: float
    size: int
    error: str | None = None
    retries: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The request succeeded and the file exists."""
        return self.error is None and self.name is not None

    def to_json(self) -> dict[str, Any]:
        """The manifest entry."""
        return {"name": self.name, "kind": self.kind, "form": self.form,
                "request": self.request, "phase": self.phase,
                "started": format_time(self.started), "duration_s": round(self.duration_s, 3),
                "size": self.size, "error": self.error, "retries": self.retries}


@dataclass(slots=True)
class Bundle:
    """A bundle as described by its manifest (see the module docstring)."""

    directory: Path
    """The bundle folder, or the zip file of a zipped bundle."""
    target: str
    started: datetime
    gopark_version: str = __version__
    go_version: str | None = None
    go_version_source: str | None = None
    finished: datetime | None = None
    status: str = "collecting"
    options: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[BundleFile] = field(default_factory=list)
    archive: BundleZip | None = None
    """The open zip of a zipped bundle; None for a folder."""

    def path(self, f: BundleFile) -> Path:
        """Where ``f`` lies on disk; raises ValueError for a failed request, or a file
        inside a zip (read those with read() or copy())."""
        if f.name is None:
            raise ValueError(f"{f.kind} {f.form} has no file: {f.error}")
        if self.archive is not None:
            raise ValueError(f"{self.source(f)} is inside a zip: it has no path of its own")
        return self.directory / f.name

    def source(self, f: BundleFile) -> str:
        """How messages name ``f``: its path, or ``ZIP:MEMBER`` inside a zip."""
        if self.archive is not None and f.name is not None:
            return self.archive.source(f.name)
        return str(self.path(f))

    def read(self, f: BundleFile) -> bytes:
        """The raw bytes of ``f`` exactly as the target sent them."""
        if self.archive is not None and f.name is not None:
            return self.archive.read(f.name, f.size)
        return self.path(f).read_bytes()

    def copy(self, f: BundleFile, sink: BinaryIO) -> None:
        """Stream the raw bytes of ``f`` into ``sink`` (for files too big to hold)."""
        if self.archive is not None and f.name is not None:
            for chunk in self.archive.chunks(f.name, f.size):
                sink.write(chunk)
            return
        with open(self.path(f), "rb") as src:
            while chunk := src.read(1 << 20):
                sink.write(chunk)

    def select(self, kind: str, form: str | None = None,
               phase: str | None = None) -> list[BundleFile]:
        """Successful files of ``kind`` (and ``form``, ``phase``), in the order taken."""
        return [f for f in self.files
                if f.ok and f.kind == kind and (form is None or f.form == form)
                and (phase is None or f.phase == phase)]

    @property
    def snapshots(self) -> list[BundleFile]:
        """The cheap goroutine snapshots (protobuf, or debug=1 after a fallback) in time
        order: the series to follow goroutine counts across the window."""
        return [f for f in self.select("goroutine") if f.form in ("proto", "debug1")]

    @property
    def errors(self) -> list[BundleFile]:
        """Requests that failed."""
        return [f for f in self.files if f.error is not None]

    def to_json(self) -> dict[str, Any]:
        """The manifest."""
        return {
            "schema": SCHEMA, "target": self.target, "gopark_version": self.gopark_version,
            "go_version": self.go_version, "go_version_source": self.go_version_source,
            "started": format_time(self.started),
            "finished": format_time(self.finished) if self.finished else None,
            "status": self.status, "options": self.options, "profiles": self.profiles,
            "notes": self.notes, "files": [f.to_json() for f in self.files],
        }


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BundleWriter:
    """Builds a bundle on disk; thread-safe. Every change rewrites the manifest atomically."""

    def __init__(self, directory: Path, target: str, options: dict[str, Any]) -> None:
        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise CollectError(f"{directory}: exists and is not an empty directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CollectError(f"{directory}: cannot create the bundle folder: {e}") from e
        self.bundle = Bundle(directory=directory, target=target,
                             started=datetime.now(UTC), options=options)
        self._lock = threading.Lock()
        self._closed = False
        self._seq = 0
        self._save()

    def save_response(self, kind: str, form: str, request: str, phase: str,
                      receive: Callable[[BinaryIO], object],
                      retries: list[str] | None = None) -> BundleFile:
        """Run one request: ``receive`` streams the body into a temporary file.

        If ``receive`` returns, the file is renamed into place and listed; if it raises an
        Exception, the temporary file is deleted and the request listed with the error as
        its message (the exception is not propagated; KeyboardInterrupt is). ``retries``
        is what ``receive`` appended about its retries, listed with the file. Returns the
        manifest entry either way.
        """
        with self._lock:
            self._seq += 1
            plain = form in ("proto", "html", "trace")
            name = f"{self._seq:04d}-{kind}{'' if plain else '-' + form}"
            name += _EXTENSION.get(form, ".bin")
        final = self.bundle.directory / name
        tmp = final.with_name(f".{name}.part")
        started = datetime.now(UTC)
        entry = BundleFile(name=None, kind=kind, form=form, request=request, phase=phase,
                           started=started, duration_s=0.0, size=0)
        try:
            with open(tmp, "wb") as out:
                receive(out)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            with self._lock:
                if self._closed:  # finished meanwhile (Ctrl-C): the bundle stays as it was
                    tmp.unlink(missing_ok=True)
                    return entry
                os.replace(tmp, final)
            entry.name, entry.size = name, size
        except Exception as e:  # the request failed: record why, leave no half file
            tmp.unlink(missing_ok=True)
            entry.error = str(e) or type(e).__name__
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        entry.duration_s = (datetime.now(UTC) - started).total_seconds()
        entry.retries = list(retries or [])
        self._add(entry)
        return entry

    def note(self, text: str) -> None:
        """Add a human-readable remark to the manifest."""
        with self._lock:
            if text not in self.bundle.notes:
                self.bundle.notes.append(text)
            self._save()

    def update(self, **fields: Any) -> None:
        """Set top-level manifest fields (go_version, profiles, ...)."""
        with self._lock:
            for k, v in fields.items():
                setattr(self.bundle, k, v)
            self._save()

    def finish(self, status: str) -> Bundle:
        """Write the final manifest; later files from straggling threads are dropped."""
        assert status in STATUSES
        with self._lock:
            self.bundle.status = status
            self.bundle.finished = datetime.now(UTC)
            self._save()
            self._closed = True
        return self.bundle

    def _add(self, entry: BundleFile) -> None:
        with self._lock:
            if self._closed:
                return
            self.bundle.files.append(entry)
            self.bundle.files.sort(key=lambda f: f.started)
            self._save()

    def _save(self) -> None:
        text = json.dumps(self.bundle.to_json(), indent=2).encode() + b"\n"

        def write(out: BinaryIO) -> None:
            out.write(text)

        _write_atomically(self.bundle.directory / MANIFEST, write)


def open_bundle(location: str | Path) -> Bundle:
    """Read a bundle back from its folder or from a zip of it; raises InputError naming
    what is wrong and where (for a zip: the zip and the member)."""
    location = Path(location)
    if location.is_dir():
        return _open_folder(location)
    if is_zip(location):
        archive = BundleZip(location, MANIFEST)
        raw = archive.read_manifest(MANIFEST, MAX_MANIFEST_BYTES)
        return _from_manifest(raw, archive.source(MANIFEST), location, archive)
    if location.exists():
        raise InputError(str(location), None,
                         "not a gopark bundle (neither a bundle folder nor a zip of one)")
    raise InputError(str(location), None, "no such file or folder")


def _open_folder(directory: Path) -> Bundle:
    manifest = directory / MANIFEST
    try:
        raw = manifest.read_bytes()
    except FileNotFoundError:
        raise InputError(str(directory), None,
                         "not a gopark bundle (no manifest.json in it)") from None
    except OSError as e:
        raise InputError(str(manifest), None, f"cannot read: {e.strerror}") from None
    return _from_manifest(raw, str(manifest), directory, None)


def _from_manifest(raw: bytes, source: str, location: Path,
                   archive: BundleZip | None) -> Bundle:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) \
            else f"byte {e.start}"
        raise InputError(source, where, "invalid JSON in the bundle manifest") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(source, "schema", f"expected {SCHEMA!r}, found {got!r}")
    try:
        bundle = _bundle_from_json(location, data)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(source, _field_of(e), f"malformed manifest: {e}") from None
    bundle.archive = archive
    for f in bundle.files:
        if f.name is None:
            continue
        if not isinstance(f.name, str) or "/" in f.name or "\\" in f.name \
                or f.name.startswith("."):
            raise InputError(source, f"file {f.name!r}", "file names must be plain names")
        if f.size < 0:
            raise InputError(source, f"file {f.name!r}", "negative size")
        present = archive.has(f.name) if archive else (location / f.name).is_file()
        if not present:
            missing = archive.source(f.name) if archive else str(location / f.name)
            raise InputError(missing, None, "listed in manifest.json but missing from the bundle")
    return bundle


def zip_bundle(directory: str | Path, out: str | Path) -> Bundle:
    """Zip the bundle folder ``directory`` into ``out`` atomically, inside a folder named
    after the zip (as ``zip -r`` would), and return the zipped bundle. Only the files the
    manifest lists are taken."""
    directory, out = Path(directory), Path(out)
    bundle = _open_folder(directory)
    names = [f.name for f in bundle.files if f.ok and f.name is not None]
    write_zip(directory, [*names, MANIFEST], out, out.name.removesuffix(".zip") or "bundle")
    return open_bundle(out)


def _field_of(e: Exception) -> str:
    return f"field {e.args[0]!r}" if isinstance(e, KeyError) else "content"


def _bundle_from_json(directory: Path, d: dict[str, Any]) -> Bundle:
    # A bundle may come from someone else: its text reaches terminals (see printable).
    def text(v: Any) -> str:
        return printable(str(v))

    def opt_str(key: str) -> str | None:
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"{key} must be a string or null")
        return None if v is None else printable(v)

    files = []
    for i, e in enumerate(d["files"]):
        if not isinstance(e, dict):
            raise TypeError(f"files[{i}] must be an object")
        error = e.get("error")
        files.append(BundleFile(
            name=None if e["name"] is None else text(e["name"]), kind=text(e["kind"]),
            form=text(e["form"]), request=text(e.get("request", "")),
            phase=text(e.get("phase", "")), started=parse_time(e["started"]),
            duration_s=float(e["duration_s"]), size=int(e["size"]),
            error=None if error is None else text(error),
            retries=[text(r) for r in e.get("retries") or []],
        ))
    finished = opt_str("finished")
    profiles = d.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise TypeError("profiles must be an object")
    return Bundle(
        directory=directory, target=text(d["target"]), started=parse_time(d["started"]),
        gopark_version=text(d.get("gopark_version", "")), go_version=opt_str("go_version"),
        go_version_source=opt_str("go_version_source"),
        finished=parse_time(finished) if finished else None, status=text(d["status"]),
        options=dict(d.get("options") or {}), profiles={text(k): int(v) for k, v in
                                                        profiles.items()},
        notes=[text(n) for n in d.get("notes") or []], files=files,
    )
