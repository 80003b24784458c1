"""Load any input gopark reads, choosing the parser from the bytes (see sniff)."""

from __future__ import annotations

from pathlib import Path

from gopark.errors import InputError
from gopark.formats.debug1 import parse_debug1
from gopark.formats.dump import parse_dump
from gopark.formats.inflate import gunzip
from gopark.formats.sniff import GZIP_MAGIC, sniff
from gopark.model import Profile, Snapshot

Loaded = Snapshot | Profile | Path
"""What an input gives: goroutine snapshots, other profiles, or an execution trace's path
(traces are read from their file by the trace engine)."""

def load_bytes(data: bytes, source: str) -> list[Loaded]:
    """Parse ``data`` (named ``source`` in messages) by what it is: goroutine dumps give one
    Snapshot per dump; debug=1 text one Snapshot; a pprof goroutine or goroutineleak
    profile a Snapshot; any other pprof profile a Profile.

    Raises InputError for empty, unknown or damaged input, and for execution traces
    (read those with load_path).
    """
    if not data:
        raise InputError(source, None, "empty input")
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, source)
    kind = sniff(data)
    if kind == "dump":
        return list(parse_dump(data, source))
    if kind == "debug1":
        return [parse_debug1(data, source)]
    if kind == "pprof":
        from gopark.formats import pprof  # imported when needed: protobuf is slow to load

        profile = pprof.parse_profile(data, source)
        if profile.kind in ("goroutine", "goroutineleak"):
            return [pprof.profile_to_snapshot(profile)]
        return [profile]
    if kind == "trace":
        raise InputError(source, None, "an execution trace: load it from its file (load_path)")
    if kind == "heap-text":
        raise InputError(source, "line 1", "heap profile in debug=1 text form is not supported: "
                         "fetch /debug/pprof/heap without ?debug=1 (protobuf)")
    raise InputError(source, "byte 0", "unknown input: expected a goroutine dump or traceback, "
                     "goroutine debug=1 text, a pprof profile or a Go execution trace")


def load_path(path: str | Path) -> list[Loaded]:
    """Load the file at ``path`` (see load_bytes); an execution trace gives its Path back.

    Raises InputError when the file cannot be read or parsed.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(16)
            if sniff(head) == "trace":
                return [p]
            data = head + f.read()
    except OSError as e:
        raise InputError(str(p), None, f"cannot read: {e.strerror or e}") from None
    return load_bytes(data, str(p))
