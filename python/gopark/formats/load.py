"""Load any input gopark reads, choosing the parser from the bytes (see sniff)."""

from __future__ import annotations

import zlib
from pathlib import Path

from gopark.errors import InputError
from gopark.formats.debug1 import parse_debug1
from gopark.formats.dump import parse_dump
from gopark.formats.sniff import GZIP_MAGIC, sniff
from gopark.model import Profile, Snapshot

Loaded = Snapshot | Profile | Path
"""What an input gives: goroutine snapshots, other profiles, or an execution trace's path
(traces are read from their file by the trace engine)."""

MAX_INFLATED = 2 << 30
"""A gzip input may not inflate beyond this (2 GiB): a bound on memory for hostile input."""


def gunzip(data: bytes, source: str) -> bytes:
    """The inflated content of a gzip stream; InputError if damaged or too big."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    pending = data
    try:
        while pending:
            chunk = inflater.decompress(pending, 1 << 24)
            size += len(chunk)
            if size > MAX_INFLATED:
                raise InputError(source, f"byte {len(data) - len(inflater.unconsumed_tail)}",
                                 f"gzip content is larger than {MAX_INFLATED >> 30} GiB")
            parts.append(chunk)
            pending = inflater.unconsumed_tail
        parts.append(inflater.flush())
    except zlib.error as e:
        raise InputError(source, "gzip stream", f"damaged gzip data ({e})") from None
    if not inflater.eof:
        raise InputError(source, f"byte {len(data)}", "gzip data ends early (truncated file?)")
    return b"".join(parts)


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
