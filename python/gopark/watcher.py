"""A live watch of a service: the goroutine snapshots and heap sizes taken so far.

Each refresh takes the cheap goroutine profile (protobuf; the concurrent profile, no long
stop-the-world) and heap?debug=1 for the runtime's MemStats. The last ``history`` of each
are kept, so ``trend()`` re-runs the trend analysis over a bounded window. `gopark watch`
renders it; a notebook can drive it the same way.

Etiquette: writing a goroutine profile costs the target CPU in proportion to its
goroutines (about 2.5 µs each: 0.12 s at 50,000). ``pause_after`` stretches the interval
so the requests stay under a given share of one core.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime

from gopark.analysis.trend import TrendReport, analyze, user_key
from gopark.collect.client import FetchError, PprofClient, redact_url
from gopark.errors import CollectError, GoparkError
from gopark.formats.heaptext import parse_memstats
from gopark.formats.pprof import parse_profile, profile_to_snapshot
from gopark.model import Snapshot

MAX_PROFILE_BYTES = 256 << 20
MAX_HEAP_TEXT_BYTES = 64 << 20


class Watcher:
    """The state kept between refreshes."""

    def __init__(self, client: PprofClient, history: int, heap: bool) -> None:
        self.client = client
        self.snapshots: deque[Snapshot] = deque(maxlen=max(2, history))
        self.heap_inuse: deque[int] = deque(maxlen=max(2, history))
        self.heap = heap
        self.errors = 0
        self.last_error: str | None = None
        self.started = datetime.now(UTC)
        self.busy = 0.0
        """Seconds the last refresh's requests took (an upper bound on the target's CPU
        for them: the profiles are written by one goroutine, and the wire adds time)."""

    def _get(self, path: str, cap: int) -> bytes:
        began = time.monotonic()
        try:
            return self.client.fetch_bytes(path, cap)
        finally:
            self.busy += time.monotonic() - began

    def refresh(self) -> None:
        """Take one goroutine profile (and MemStats); errors are counted, not raised,
        except a CollectError when the target has not answered even once."""
        self.busy = 0.0
        try:
            data = self._get("goroutine", MAX_PROFILE_BYTES)
            snap = profile_to_snapshot(parse_profile(data, self.client.url("goroutine")))
            snap.taken_at = datetime.now(UTC)
            self.snapshots.append(snap)
            if self.heap:
                text = self._get("heap?debug=1", MAX_HEAP_TEXT_BYTES)
                stats = parse_memstats(text, self.client.url("heap?debug=1"))
                if "HeapInuse" in stats:
                    self.heap_inuse.append(stats["HeapInuse"])
        except (FetchError, GoparkError) as e:
            self.errors += 1
            self.last_error = str(e)
            if not self.snapshots:
                raise CollectError(f"{redact_url(self.client.base_url)}: {e}") from e

    def pause_after(self, interval: float, max_load: float) -> float:
        """The interval, stretched so the requests stay under max_load of a core."""
        return max(interval, self.busy / max_load) if max_load > 0 else interval

    def trend(self) -> TrendReport:
        """The trend analysis over the snapshots kept, grouped by user stack."""
        return analyze(list(self.snapshots), user_key)
