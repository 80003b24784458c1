"""Wait until a fixture program's goroutines have reached their blocking points.

The harness waits 300 ms after starting the leaky requests; on a loaded machine some
are still on their way (sleeping in slowLookup, say). Tests that count goroutines per
state take their dumps once two dumps in a row agree on every state.
"""

from __future__ import annotations

import time
from collections import Counter

import gofixtures
from gopark.demo.goprocess import GoProcess


def _states(dump: bytes) -> Counter[bytes]:
    # "running" is the goroutine writing the dump; "IO wait" ones come and go with the
    # HTTP connections of the requests that fetch the dumps.
    return Counter(line.split(b"[", 1)[1] for line in dump.split(b"\n")
                   if line.startswith(b"goroutine ") and b"[" in line
                   and b"[running" not in line and b"[IO wait" not in line)


def settle(p: GoProcess, timeout: float = 20.0) -> bytes:
    """A goroutine?debug=2 dump of ``p`` once its goroutines stopped changing state."""
    last = gofixtures.fetch(p, "goroutine?debug=2")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        dump = gofixtures.fetch(p, "goroutine?debug=2")
        if _states(dump) == _states(last):
            return dump
        last = dump
    return last
