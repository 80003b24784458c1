"""What kind of input a file is, from its bytes (never from its name)."""

from __future__ import annotations

import re
import zlib
from typing import Literal

Kind = Literal["dump", "debug1", "pprof", "trace", "heap-text", "unknown"]

GZIP_MAGIC = b"\x1f\x8b"
# Execution traces start with "go 1.NN trace\x00" padded with zeros to 16 bytes.
_TRACE = re.compile(rb"go 1\.\d+ trace\x00")
_DEBUG1 = re.compile(rb"\s*(?:goroutine|goroutineleak) profile: total \d+\r?\n")
_HEAP_TEXT = re.compile(rb"\s*heap profile: \d+: \d+ \[\d+: \d+\] @ ")
# A goroutine header line: matched at the very start, searched for after a newline
# (a literal first character keeps the search fast on big files).
_HEADER_BODY = rb"goroutine \d+(?: (?:gp|m|mp)=\S+)* \[[^\]\n]*\](?: \{[^\n]*\})?:\r?(?:\n|\Z)"
_DUMP_START = re.compile(_HEADER_BODY)
_DUMP_LINE = re.compile(b"\n" + _HEADER_BODY)

# profile.proto top-level fields: number -> protobuf wire type (0 varint, 2 length-delimited).
# comment (13) may be packed (2) or not (0).
_PROFILE_FIELDS: dict[int, tuple[int, ...]] = {
    1: (2,), 2: (2,), 3: (2,), 4: (2,), 5: (2,), 6: (2,), 7: (0,), 8: (0,), 9: (0,),
    10: (0,), 11: (2,), 12: (0,), 13: (0, 2), 14: (0,), 15: (2,),
}
_PROBE_FIELDS = 64  # how many top-level fields to check before calling it a profile
_PROBE_BYTES = 1 << 16  # how much of a gzip stream to inflate to look inside


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift < 64:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return None


def looks_like_profile(data: bytes, complete: bool = True) -> bool:
    """True if ``data`` starts as a serialized profile.proto Profile: its first top-level
    fields have known numbers, the right wire types and lengths that fit. ``complete=False``
    accepts a last field cut short (``data`` is only the head of the stream)."""
    pos = 0
    fields = 0
    while pos < len(data) and fields < _PROBE_FIELDS:
        tag = _varint(data, pos)
        if tag is None:
            return not complete and fields > 0
        key, pos = tag
        number, wire = key >> 3, key & 7
        if wire not in _PROFILE_FIELDS.get(number, ()):
            return False
        value = _varint(data, pos)
        if value is None:
            return not complete and fields > 0
        length, pos = value
        if wire == 2:
            if pos + length > len(data):
                return not complete
            pos += length
        fields += 1
    return fields > 0


def gunzip_head(data: bytes, limit: int = _PROBE_BYTES) -> bytes:
    """The first ``limit`` bytes of a gzip stream (less if it is shorter or damaged)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        return inflater.decompress(data[: limit * 4 + 4096], limit)
    except zlib.error:
        return b""


def sniff(data: bytes) -> Kind:
    """The kind of input in ``data``: ``"trace"`` (Go execution trace), ``"pprof"`` (pprof
    protobuf, gzipped or raw), ``"debug1"`` (goroutine/goroutineleak ?debug=1 text),
    ``"heap-text"`` (heap ?debug=1 text), ``"dump"`` (goroutine dumps and tracebacks,
    possibly inside a log) or ``"unknown"``.

    A gzipped text (``dump.txt.gz``) is sniffed by its content.
    """
    if _TRACE.match(data):
        return "trace"
    complete = True
    if data.startswith(GZIP_MAGIC):
        data = gunzip_head(data)
        complete = len(data) < _PROBE_BYTES
    if _DEBUG1.match(data):
        return "debug1"
    if _HEAP_TEXT.match(data):
        return "heap-text"
    if looks_like_profile(data, complete):
        return "pprof"
    if _DUMP_START.match(data) or _DUMP_LINE.search(data):
        return "dump"
    return "unknown"
