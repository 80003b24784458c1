"""Gzip input, inflated with a cap on the output: a small hostile file (a gzip bomb) cannot
make gopark hold more than the cap."""

from __future__ import annotations

import zlib

from gopark.errors import InputError

MAX_INFLATED = 2 << 30
"""Default cap on inflated bytes (2 GiB): a bound on memory for hostile input."""

_CHUNK = 1 << 24


def gunzip(data: bytes, source: str, max_bytes: int = MAX_INFLATED) -> bytes:
    """The inflated content of one gzip member (as Go and ``gzip -c`` write them).

    Raises InputError naming ``source`` when the data is damaged, ends early, inflates to
    more than ``max_bytes``, or has anything but NUL padding after the member.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    pending = data
    try:
        while not inflater.eof:
            # At most one byte past the cap is ever held; called again with no input while
            # zlib still holds output.
            chunk = inflater.decompress(pending, min(_CHUNK, max_bytes - size + 1))
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
            size += len(chunk)
            if size > max_bytes:
                raise InputError(source, f"byte {len(data) - len(pending)}",
                                 f"gzip data inflates to more than {max_bytes:,} bytes "
                                 "(the limit)")
            parts.append(chunk)
    except zlib.error as e:
        raise InputError(source, "gzip stream", f"damaged gzip data ({e})") from None
    if not inflater.eof:
        raise InputError(source, f"byte {len(data)}", "gzip data ends early (truncated file?)")
    if inflater.unused_data.strip(b"\0"):
        raise InputError(source, f"byte {len(data) - len(inflater.unused_data)}",
                         "unexpected data after the gzip stream (two files concatenated?)")
    return b"".join(parts)
