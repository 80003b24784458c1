"""What to take from a target and when: pure decisions, no I/O.

The schedule (see the collection etiquette in the design notes):

- start: the index (which profiles exist, their counts), a cheap goroutine snapshot,
  one ``debug=2`` dump unless the target has more goroutines than the threshold, heap
  (protobuf, and ``debug=1`` for its runtime.MemStats block), block and mutex profiles
  when their rates are on;
- every interval: a cheap goroutine snapshot (protobuf; ``debug=1`` if that fails) and a
  heap profile (protobuf, no forced GC);
- meanwhile, on request and one at a time: an execution trace, then a CPU profile;
- end: the index again, a last snapshot, ``goroutineleak`` when offered (before the
  dump, so the dump shows the goroutines it marked ``(leaked)``), the second ``debug=2``
  dump, heap, block and mutex again.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capture:
    """One request to make: what it is and how heavy it is for the target."""

    kind: str
    form: str
    request: str
    """Path and query under the /debug/pprof/ URL."""
    heavy: bool = False
    """Stops the world or profiles the whole program: never two at once."""
    seconds: float = 0.0
    """How long the target captures before it answers (CPU profile, trace)."""
    max_bytes: int | None = None
    """A tighter size cap than the client's, for responses read into memory."""
    expect: bytes = b""
    """How a good response starts, to refuse e.g. a proxy's login page early."""

    @property
    def label(self) -> str:
        """What a person would call it, for progress displays."""
        names = {"index": "profile index", "goroutine proto": "goroutine snapshot",
                 "goroutine debug1": "goroutine snapshot (text)",
                 "goroutine debug2": "goroutine dump (debug=2)", "heap proto": "heap profile",
                 "heap debug1": "heap MemStats (debug=1)", "cpu proto": "CPU profile",
                 "trace trace": "execution trace"}
        name = names.get(f"{self.kind} {self.form}", names.get(self.kind, self.kind + " profile"))
        return f"{name} {self.seconds:g}s" if self.seconds else name


GZIP = b"\x1f\x8b"  # Go writes every protobuf profile gzipped

INDEX = Capture("index", "html", "", max_bytes=4 * 1024 * 1024)  # a page of ~3 KB
GOROUTINES = Capture("goroutine", "proto", "goroutine", expect=GZIP)
GOROUTINES_TEXT = Capture("goroutine", "debug1", "goroutine?debug=1",
                          expect=b"goroutine profile: total ")
GOROUTINE_DUMP = Capture("goroutine", "debug2", "goroutine?debug=2", heavy=True,
                         expect=b"goroutine ")
HEAP = (Capture("heap", "proto", "heap", expect=GZIP),
        Capture("heap", "debug1", "heap?debug=1", expect=b"heap profile: "))
BLOCK = Capture("block", "proto", "block", expect=GZIP)
MUTEX = Capture("mutex", "proto", "mutex", expect=GZIP)
LEAKS = Capture("goroutineleak", "proto", "goroutineleak", expect=GZIP)

ENABLE_HINT = {
    "block": "call runtime.SetBlockProfileRate(rate) in the program (rate in ns: one "
             "sample per rate ns blocked, e.g. 10000; 1 records every event)",
    "mutex": "call runtime.SetMutexProfileFraction(n) in the program (one in n "
             "contention events is sampled, e.g. 100)",
}

# One row of the index table: <tr><td>COUNT</td><td><a href='NAME?debug=1'>NAME</a></td></tr>
_ROW = re.compile(rb"<tr><td>(\d+)</td><td><a href=['\"][^'\"]*['\"]>([^<]+)</a></td></tr>")


def parse_index(page: bytes) -> dict[str, int] | None:
    """Profile name → the index's Count column; None if the page is not a pprof index.

    Count is the number of records (goroutines for ``goroutine``, distinct stacks for
    ``block``/``mutex``; 0 for ``profile``, ``trace`` and other non-profiles).
    """
    rows = {html.unescape(m.group(2).decode("utf-8", "replace")): int(m.group(1))
            for m in _ROW.finditer(page)}
    return rows or None


def trace_capture(seconds: float) -> Capture:
    """An execution trace of ``seconds`` (the endpoint accepts fractions)."""
    return Capture("trace", "trace", f"trace?seconds={seconds:g}", heavy=True, seconds=seconds,
                   expect=b"go 1.")


def cpu_capture(seconds: float) -> Capture:
    """A CPU profile of ``seconds``, rounded up: the endpoint takes whole seconds."""
    whole = max(1, math.ceil(seconds))
    return Capture("cpu", "proto", f"profile?seconds={whole}", heavy=True, seconds=whole,
                   expect=GZIP)


def heavy_captures(trace_seconds: float, cpu_seconds: float) -> list[Capture]:
    """The long captures asked for, to run one after the other during the window."""
    out = []
    if trace_seconds > 0:
        out.append(trace_capture(trace_seconds))
    if cpu_seconds > 0:
        out.append(cpu_capture(cpu_seconds))
    return out


def snapshot_offsets(duration: float, interval: float) -> list[float]:
    """Seconds after the start at which to take goroutine snapshots, both ends included."""
    if duration <= 0:
        return [0.0]
    n = max(1, math.ceil(duration / interval - 1e-9)) if interval > 0 else 1
    return [min(duration, i * interval) for i in range(n)] + [duration]


def dump_allowed(goroutines: int | None, max_goroutines: int, force: bool) -> str | None:
    """None if a ``debug=2`` dump may be taken, else why not (for the manifest notes)."""
    if force or goroutines is None or goroutines <= max_goroutines:
        return None
    return (f"debug=2 dump skipped: {goroutines} goroutines is above --max-dump-goroutines "
            f"{max_goroutines} (the dump stops the world; --force-dumps takes it anyway)")


def contention_captures(profiles: dict[str, int]) -> tuple[list[Capture], list[str]]:
    """Block and mutex profiles worth taking, and notes for those that are off.

    The index cannot show a profiling rate; an empty profile (count 0) means the rate is
    off, or nothing has blocked yet — either way there is nothing to fetch.
    """
    take, notes = [], []
    for cap in (BLOCK, MUTEX):
        if cap.kind not in profiles:
            continue
        if profiles[cap.kind] > 0:
            take.append(cap)
        else:
            notes.append(f"{cap.kind} profile empty, so not taken: its rate is probably not "
                         f"enabled; to enable it, {ENABLE_HINT[cap.kind]}")
    return take, notes


def _dump_and_heap(when: str, profiles: dict[str, int], max_dump_goroutines: int,
                   force_dumps: bool) -> tuple[list[Capture], list[str]]:
    """The debug=2 dump (unless too many goroutines) and the heap, taken at both ends."""
    take: list[Capture] = []
    notes: list[str] = []
    skip = dump_allowed(profiles.get("goroutine"), max_dump_goroutines, force_dumps)
    if skip:
        notes.append(f"{when} {skip}")
    else:
        take.append(GOROUTINE_DUMP)
    if "heap" in profiles:
        take.extend(HEAP)
    return take, notes


def start_captures(profiles: dict[str, int], max_dump_goroutines: int,
                   force_dumps: bool) -> tuple[list[Capture], list[str]]:
    """What to take at the start (after the index and the first snapshot), with notes."""
    take, notes = _dump_and_heap("start", profiles, max_dump_goroutines, force_dumps)
    extra, _ = contention_captures(profiles)  # notes once, from the end, if still empty
    return take + extra, notes


def end_captures(profiles: dict[str, int], max_dump_goroutines: int,
                 force_dumps: bool) -> tuple[list[Capture], list[str]]:
    """What to take at the end (after the index and the last snapshot), with notes."""
    take: list[Capture] = []
    notes: list[str] = []
    if "goroutineleak" in profiles:
        take.append(LEAKS)  # first: its GC marks leaked goroutines, the dump then shows them
    else:
        notes.append("goroutineleak profile not offered: it needs Go 1.27, or Go 1.26 built "
                     "with GOEXPERIMENT=goroutineleakprofile")
    both, both_notes = _dump_and_heap("end", profiles, max_dump_goroutines, force_dumps)
    extra, more_notes = contention_captures(profiles)
    return take + both + extra, notes + both_notes + more_notes
