"""heap?debug=1 (and allocs?debug=1) text: Go's legacy heap profile and the
``# runtime.MemStats`` block the runtime appends to it.

The format is written by runtime/pprof's writeHeapInternal::

    heap profile: 9: 262320 [9: 262321] @ heap/1048576
    1: 32768 [4: 131072] @ 0x680a36 0x51b46b 0x491201
    #	0x680a35	main.work+0x35	/src/main.go:38
    ...
    # runtime.MemStats
    # Alloc = 7037976
    # Stack = 1245184 / 1245184
    # PauseNs = [3078795 48230 0 ...]
    # GCCPUFraction = 0.0088
    # DebugGC = false
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from gopark.errors import InputError
from gopark.formats.gotext import FrameInterner
from gopark.model import Frame, Profile, Sample, SampleType

MEMSTATS_MARKER = "# runtime.MemStats"

# "heap profile: <inuse objects>: <inuse bytes> [<alloc objects>: <alloc bytes>] @ heap/<2*rate>"
_HEADER = re.compile(r"heap profile: *(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@ *heap/(\d+)$")
_RECORD = re.compile(r"(\d+): *(\d+) *\[ *(\d+): *(\d+) *\] *@((?: +0x[0-9a-f]+)*)$")
# "#<TAB>0xPC<TAB>function+0xOFF<TAB>file:line" (tabwriter pads with more tabs), or just the PC
_FRAME = re.compile(r"#\t+0x[0-9a-f]+(?:\t+(\S+)\+0x[0-9a-f]+\t+(.*):(\d+))?$")
_STAT = re.compile(r"# (\w+) = (.*)$")

# MemStats lines that print two fields as "inuse / sys".
_PAIRS = {"Stack": ("StackInuse", "StackSys"), "MSpan": ("MSpanInuse", "MSpanSys"),
          "MCache": ("MCacheInuse", "MCacheSys")}

SAMPLE_TYPES = [SampleType("alloc_objects", "count"), SampleType("alloc_space", "bytes"),
                SampleType("inuse_objects", "count"), SampleType("inuse_space", "bytes")]
"""Columns of the samples, in the order Go's protobuf heap profiles use."""


@dataclass(slots=True)
class HeapText:
    """A heap?debug=1 response: the samples and the runtime.MemStats block."""

    profile: Profile
    """The samples, scaled for sampling like ``go tool pprof`` and the protobuf form do."""
    memstats: dict[str, int]
    """See :func:`parse_memstats`."""
    pause_ns: list[int] = field(default_factory=list)
    """Recent GC pause durations (the runtime keeps the last 256), oldest first."""
    pause_end: list[int] = field(default_factory=list)
    """When each of ``pause_ns`` ended, Unix ns, oldest first."""
    gc_cpu_fraction: float = 0.0
    """Share of the program's CPU time used by the GC since it started."""


def parse_memstats(data: bytes, source: str) -> dict[str, int]:
    """The ``# runtime.MemStats`` block at the end of heap?debug=1 output, as integers.

    Every integer field is kept under its runtime.MemStats name (HeapAlloc, HeapSys,
    HeapObjects, HeapInuse, NumGC, ..., MaxRSS when present). ``Stack``, ``MSpan`` and
    ``MCache`` lines give two fields each (StackInuse and StackSys, ...). The 256-entry
    ``PauseNs``/``PauseEnd`` rings become their most recent entry (0 before the first GC);
    the full series is in :func:`parse_heap_text`. ``DebugGC``/``EnableGC`` are 0 or 1.
    ``GCCPUFraction`` is a fraction, so it is only in :func:`parse_heap_text`.
    """
    return _parse_stats(_text(data), source)[0]


def parse_heap_text(data: bytes, source: str) -> HeapText:
    """A whole heap?debug=1 (or allocs?debug=1) response: samples and MemStats."""
    text = _text(data)
    stats, pause_ns, pause_end, fraction = _parse_stats(text, source)
    return HeapText(profile=_parse_samples(text, source), memstats=stats, pause_ns=pause_ns,
                    pause_end=pause_end, gc_cpu_fraction=fraction)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _memstats_start(text: str, source: str) -> int:
    """Offset of the MemStats marker line; raises InputError when there is none."""
    if text.startswith(MEMSTATS_MARKER):
        return 0
    at = text.find("\n" + MEMSTATS_MARKER + "\n")
    if at < 0:
        raise InputError(source, None,
                         f"no '{MEMSTATS_MARKER}' block: expected heap?debug=1 output")
    return at + 1


def _parse_stats(text: str, source: str) -> tuple[dict[str, int], list[int], list[int], float]:
    start = _memstats_start(text, source)
    first_line = text.count("\n", 0, start) + 1
    stats: dict[str, int] = {}
    rings: dict[str, list[int]] = {}
    fraction = 0.0
    lines = text[start:].splitlines()[1:]
    for n, line in enumerate(lines, start=first_line + 1):
        if not line.strip():
            continue
        m = _STAT.match(line)
        if m is None:
            raise InputError(source, f"line {n}", f"expected '# Name = value', got {line[:60]!r}")
        name, value = m.group(1), m.group(2).strip()
        try:
            if name in _PAIRS:
                inuse, sys_ = value.split("/")
                stats[_PAIRS[name][0]] = int(inuse)
                stats[_PAIRS[name][1]] = int(sys_)
            elif value.startswith("["):
                rings[name] = [int(v) for v in value.strip("[]").split()]
            elif value in ("true", "false"):
                stats[name] = int(value == "true")
            elif name == "GCCPUFraction":
                fraction = float(value)
            else:
                stats[name] = int(value)
        except ValueError:
            raise InputError(source, f"line {n}",
                             f"{name}: expected a number, got {value[:60]!r}") from None
    if "NumGC" not in stats:
        raise InputError(source, None, f"the '{MEMSTATS_MARKER}' block has no NumGC line")
    num_gc = stats["NumGC"]
    pause_ns = _chronological(rings.get("PauseNs", []), num_gc)
    pause_end = _chronological(rings.get("PauseEnd", []), num_gc)
    for name, series in (("PauseNs", pause_ns), ("PauseEnd", pause_end)):
        if name in rings:
            stats[name] = series[-1] if series else 0
    return stats, pause_ns, pause_end, fraction


def _chronological(ring: list[int], num_gc: int) -> list[int]:
    """The runtime's circular buffer of the last len(ring) GCs, oldest first.

    GC number k (1-based) is stored at index (k-1) % len(ring).
    """
    size = len(ring)
    if size == 0:
        return []
    kept = min(num_gc, size)
    return [ring[(num_gc - kept + i) % size] for i in range(kept)]


def _scale(count: int, size: int, rate: int) -> tuple[int, int]:
    """Undo heap sampling the way Go does (runtime/pprof.scaleHeapSample): an allocation
    of average size s was sampled with probability 1 - exp(-s/rate).

    Raises ValueError when the numbers are beyond what the formula can scale.
    """
    if count == 0 or size == 0:
        return 0, 0
    if rate <= 1:
        return count, size
    sampled = 1 - math.exp(-(size / count) / rate)
    if not sampled > 0:
        raise ValueError(f"{count} objects of {size} bytes cannot be scaled")
    scale = 1 / sampled
    try:
        return int(count * scale), int(size * scale)
    except OverflowError:
        raise ValueError(f"{count} objects of {size} bytes cannot be scaled") from None


def _parse_samples(text: str, source: str) -> Profile:
    end = _memstats_start(text, source)
    lines = text[:end].splitlines()
    header = _HEADER.match(lines[0].strip()) if lines else None
    if header is None:
        got = lines[0][:60] if lines else ""
        raise InputError(source, "line 1",
                         f"expected 'heap profile: N: N [N: N] @ heap/RATE', got {got!r}")
    # The header states twice the sampling rate, for old pprof versions.
    rate = int(header.group(5)) // 2
    frames = FrameInterner()
    samples: list[Sample] = []
    stack: list[Frame] = []
    for n, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _FRAME.match(raw)
            if m is None or not samples:
                raise InputError(source, f"line {n}",
                                 f"expected a stack frame '#\\t0xPC\\tfunc+0xOFF\\tfile:line', "
                                 f"got {line[:60]!r}")
            stack.append(frames.get(m.group(1) or "", m.group(2) or "", int(m.group(3) or 0)))
            continue
        m = _RECORD.match(line)
        if m is None:
            raise InputError(source, f"line {n}",
                             f"expected 'N: N [N: N] @ 0xPC...', got {line[:60]!r}")
        if samples:
            samples[-1].frames = tuple(stack)
        stack = []
        inuse_n, inuse_b, alloc_n, alloc_b = (int(m.group(i)) for i in range(1, 5))
        try:
            values = (*_scale(alloc_n, alloc_b, rate), *_scale(inuse_n, inuse_b, rate))
        except ValueError as e:
            raise InputError(source, f"line {n}", str(e)) from None
        samples.append(Sample(
            values=values,
            frames=(),
            # The allocation size, as pprof labels heap samples.
            num_labels={"bytes": _block_size(inuse_n, inuse_b, alloc_n, alloc_b)},
            # Return addresses; minus one lands on the call, as pprof and the proto form do.
            addresses=tuple(int(a, 16) - 1 for a in m.group(5).split()),
        ))
    if samples:
        samples[-1].frames = tuple(stack)
    return Profile(source=source, sample_types=list(SAMPLE_TYPES), samples=samples,
                   period_type=SampleType("space", "bytes"), period=rate)


def _block_size(inuse_n: int, inuse_b: int, alloc_n: int, alloc_b: int) -> int:
    if inuse_n:
        return inuse_b // inuse_n
    return alloc_b // alloc_n if alloc_n else 0
