"""Wait until a fixture program's goroutines have reached their blocking points.

The harness waits 300 ms after starting the leaky requests; on a loaded machine some
are still on their way (sleeping in slowLookup, say). Tests that count goroutines take
their dumps once two dumps in a row agree on where every goroutine is and what it does.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import gofixtures
from gopark.demo.goprocess import GoProcess

_HEADER = re.compile(rb"^goroutine \d+ [^\[]*\[([^\],\]]*)")


def shape(dump: bytes) -> Counter[tuple[bytes, ...]]:
    """How many goroutines sit in each (state, functions of the stack) of a debug=2 dump.

    The stack tells a goroutine that moved on (from slowLookup's sleep to its send); the
    state tells a dump that caught a burst of tickers firing ("runnable", with the stack
    they parked with) from one where they wait. The writer of the dump ("running") and the
    HTTP connections of the requests that fetch the dumps ("IO wait", or "syscall"
    mid-read) come and go; they are left out.
    """
    out: Counter[tuple[bytes, ...]] = Counter()
    for block in dump.split(b"\n\n"):
        lines = block.strip(b"\n").split(b"\n")
        m = _HEADER.match(lines[0])
        if m is None or m[1] in (b"running", b"IO wait", b"syscall"):
            continue
        calls = (ln.rsplit(b"(", 1)[0] for ln in lines[1:] if not ln.startswith(b"\t"))
        out[(m[1], *calls)] += 1
    return out


def settle(p: GoProcess, timeout: float = 90.0) -> bytes:
    """A goroutine?debug=2 dump of ``p`` once its goroutines stopped changing (two dumps
    0.3 s apart agree on every goroutine's state and stack); after ``timeout`` seconds,
    the last dump."""
    last = gofixtures.fetch(p, "goroutine?debug=2")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        dump = gofixtures.fetch(p, "goroutine?debug=2")
        if shape(dump) == shape(last):
            return dump
        last = dump
    return last
