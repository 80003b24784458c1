"""Heap growth across a window: which allocation sites keep memory, and how much leaking
goroutines hold.

The diff works like ``go tool pprof -base FIRST LAST``: in-use space and objects of the
last heap profile minus the first, stack by stack; stacks are then summed by *site*, the
innermost frame outside the runtime (where the program allocated). A heap profile's in-use
numbers describe the heap as of the last completed GC, so a collector should take heap
profiles with ``gc=1`` or after enough time for a GC cycle.

Memory held by a goroutine group is an estimate (Finding.bytes), the sum of

* stacks: goroutines × the average stack per goroutine, ``StackInuse / goroutines`` from
  the MemStats of the same moment (Go starts new goroutines at the average stack size
  since 1.19, ``GODEBUG=adaptivestackstart``), never less than the 2 KiB minimum stack;
  without MemStats, 2 KiB each — a lower bound;
* heap: in-use space of the last heap profile's samples whose stack runs through the
  group's own code (its location frame's function). Memory the group only *references*
  (allocated elsewhere, kept alive by the blocked goroutines) cannot be attributed from a
  profile and is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gopark.analysis.classify import PPROF_WRITERS, is_runtime
from gopark.analysis.findings import MIN_STACK_BYTES as MIN_STACK
from gopark.analysis.findings import Finding
from gopark.analysis.trend import keeps_rising
from gopark.errors import InputError
from gopark.model import Frame, Profile, Sample

MIN_GROWTH_BYTES = 1 << 20
"""A site must keep at least this much more memory at the end to be reported."""

MIN_SHARE = 0.10
"""…and account for at least this share of the heap's growth between the two profiles."""

MIN_SAMPLES = 4
"""…and grow by at least this many heap samples' worth (4 × 512 KiB by default)."""


def site_frame(frames: Sequence[Frame]) -> Frame | None:
    """The allocation site of a heap sample: its innermost named frame outside the runtime
    and the standard library's ``internal/`` packages.

    The runtime's own allocation helpers (map growth, slice growth, string concatenation)
    sit above the program's frame; skipping them names the line that asked for memory.
    """
    for f in frames:
        if f.function and not is_runtime(f.function, with_internal=True):
            return f
    return frames[0] if frames else None


@dataclass(slots=True)
class SiteDelta:
    """One allocation site, first and last heap profile side by side."""

    site: Frame
    stack: tuple[Frame, ...]
    """The stack that holds the most at this site in the last profile (innermost first)."""
    before_bytes: int = 0
    after_bytes: int = 0
    before_objects: int = 0
    after_objects: int = 0
    series: list[int] = field(default_factory=list)
    """In-use bytes at this site in every heap profile, in order."""

    @property
    def delta_bytes(self) -> int:
        """Growth of in-use space (negative when it shrank)."""
        return self.after_bytes - self.before_bytes

    @property
    def delta_objects(self) -> int:
        """Growth of in-use objects."""
        return self.after_objects - self.before_objects


@dataclass(slots=True)
class HeapDiff:
    """In-use heap by allocation site between the first and last heap profile."""

    before_total: int
    after_total: int
    sites: list[SiteDelta]
    """Most growth first."""
    profiles: int
    seconds: float | None
    """Time between the first and last profile, when both carry a time."""
    sample_rate: int = 0
    """Bytes per heap sample on average (the profile's period, 512 KiB by default)."""

    @property
    def delta_total(self) -> int:
        """Growth of the sampled in-use heap."""
        return self.after_total - self.before_total


def _inuse_columns(profile: Profile) -> tuple[int, int]:
    try:
        return profile.index("inuse_space"), profile.index("inuse_objects")
    except KeyError:
        raise InputError(profile.source, None,
                         "expected a heap profile (with an inuse_space sample type), "
                         f"got a {profile.kind} profile") from None


def diff_heap(profiles: Sequence[Profile]) -> HeapDiff:
    """Diff the in-use heap of the first and last of `profiles` (in time order), by site.

    Stacks are matched exactly (function, file, line of every frame), as ``pprof -base``
    matches them, then summed per allocation site. Every profile contributes a point to
    each site's series. Raises InputError if a profile is not a heap profile.
    """
    if not profiles:
        raise ValueError("diff_heap needs at least one heap profile")
    per_profile = [_by_stack(p) for p in profiles]
    first, last = per_profile[0], per_profile[-1]
    sites: dict[Frame, SiteDelta] = {}
    best: dict[Frame, int] = {}
    for stack in first.keys() | last.keys():
        site = site_frame(stack)
        if site is None:
            continue
        d = sites.get(site) or sites.setdefault(site, SiteDelta(site=site, stack=stack))
        b_bytes, b_objs = first.get(stack, (0, 0))
        a_bytes, a_objs = last.get(stack, (0, 0))
        d.before_bytes += b_bytes
        d.before_objects += b_objs
        d.after_bytes += a_bytes
        d.after_objects += a_objs
        if a_bytes > best.get(site, -1):
            best[site] = a_bytes
            d.stack = stack
    for pp in per_profile:
        by_site: dict[Frame, int] = {}
        for stack, (b, _) in pp.items():
            site = site_frame(stack)
            if site is not None:
                by_site[site] = by_site.get(site, 0) + b
        for site, d in sites.items():
            d.series.append(by_site.get(site, 0))
    ordered = sorted(sites.values(), key=lambda d: (-d.delta_bytes, -d.after_bytes, str(d.site)))
    t0, t1 = profiles[0].time, profiles[-1].time
    return HeapDiff(
        before_total=sum(v[0] for v in first.values()),
        after_total=sum(v[0] for v in last.values()),
        sites=ordered,
        profiles=len(profiles),
        seconds=(t1 - t0).total_seconds() if t0 and t1 and len(profiles) > 1 else None,
        sample_rate=max(p.period for p in profiles),
    )


def _by_stack(profile: Profile) -> dict[tuple[Frame, ...], tuple[int, int]]:
    space, objects = _inuse_columns(profile)
    out: dict[tuple[Frame, ...], tuple[int, int]] = {}
    for s in profile.samples:
        if any(f.function.startswith(PPROF_WRITERS) for f in s.frames):
            continue  # the profiler's own buffers, allocated to answer gopark's requests
        b, o = out.get(s.frames, (0, 0))
        out[s.frames] = (b + s.values[space], o + s.values[objects])
    return out


def memstats_line(series: Sequence[Mapping[str, int]]) -> str | None:
    """One evidence line from MemStats at the start and end, e.g. HeapAlloc 4.1 → 9.8 MiB."""
    usable = [m for m in series if "HeapAlloc" in m]
    if len(usable) < 2:
        return None
    a, b = usable[0], usable[-1]
    parts = [f"HeapAlloc {_mib(a['HeapAlloc'])} → {_mib(b['HeapAlloc'])}"]
    if "HeapObjects" in a and "HeapObjects" in b:
        parts.append(f"HeapObjects {a['HeapObjects']:,} → {b['HeapObjects']:,}")
    if "NumGC" in a and "NumGC" in b:
        parts.append(f"{b['NumGC'] - a['NumGC']} GC cycles between")
    return "runtime.MemStats: " + ", ".join(parts)


def heap_findings(diff: HeapDiff, memstats: Sequence[Mapping[str, int]] = (),
                  min_bytes: int = MIN_GROWTH_BYTES) -> list[Finding]:
    """``heap-growth`` findings for sites that kept growing between the heap profiles.

    A site qualifies when its in-use space grew by at least `min_bytes` and by at least
    MIN_SHARE of the whole heap's growth, and has a frame outside the runtime. With three
    or more profiles whose series keeps rising (trend.keeps_rising), the verdict is
    ``confirmed``; from two profiles it is ``suspected`` (a cache warming up looks the
    same over a short window).
    """
    if diff.profiles < 2:
        return []
    growth = max(diff.delta_total, 0)
    # A sampled small object stands for a whole sampling period of bytes: growth worth fewer
    # than MIN_SAMPLES samples is sampling noise, not a site that keeps growing.
    min_bytes = max(min_bytes, MIN_SAMPLES * diff.sample_rate)
    ms = memstats_line(memstats)
    out: list[Finding] = []
    for d in diff.sites:
        if d.delta_bytes < min_bytes or d.delta_bytes < MIN_SHARE * growth:
            continue
        if is_runtime(d.site.function, with_internal=True):
            # No frame of the program's own: the runtime's bookkeeping for something else
            # (a new goroutine's g, a timer), whose cause is a finding of its own; and at a
            # 512 KiB sampling rate two samples of such small objects already read as 1 MiB.
            continue
        rising = keeps_rising(d.series)
        span = f" in {diff.seconds:.0f} s" if diff.seconds else ""
        evidence = [
            f"in-use heap allocated at {d.site.function} grew {_mib(d.before_bytes)} → "
            f"{_mib(d.after_bytes)}{span} ({d.before_objects:,} → {d.after_objects:,} objects) "
            f"across {diff.profiles} heap profiles",
            f"{d.delta_bytes / growth:.0%} of the sampled heap's growth "
            f"({_mib(diff.before_total)} → {_mib(diff.after_total)})" if growth else
            "the sampled heap as a whole did not grow",
        ]
        if len(d.series) >= 3:
            evidence.append("series: " + " ".join(_mib(v) for v in d.series))
        if ms:
            evidence.append(ms)
        per_min = d.delta_bytes / diff.seconds * 60 if diff.seconds else None
        out.append(Finding(
            verdict="confirmed" if rising else "suspected",
            category="heap-growth",
            title=f"{_mib(d.delta_bytes)} more heap held by allocations at "
                  f"{d.site.function} ({_short(d.site)})"
                  + (f", {_mib(per_min)}/min" if per_min else ""),
            bytes=d.after_bytes,
            location=d.site,
            stack=list(d.stack),
            evidence=evidence,
            fix="memory allocated here stays reachable: if it goes into a map, slice or cache "
                "that lives for the whole process, bound it (evict, expire, cap its size) or "
                "delete entries when their request or session ends",
        ))
    return out


def stack_bytes_each(memstats: Mapping[str, int] | None, goroutines: int) -> int:
    """Average stack bytes per goroutine: StackInuse / goroutines, at least MIN_STACK."""
    if memstats and goroutines > 0 and memstats.get("StackInuse"):
        return max(MIN_STACK, memstats["StackInuse"] // goroutines)
    return MIN_STACK


def heap_under(profile: Profile | None, function: str) -> int:
    """In-use bytes of `profile`'s samples whose stack runs through `function`."""
    if profile is None or not function:
        return 0
    space, _ = _inuse_columns(profile)
    return sum(s.values[space] for s in profile.samples if _runs_through(s, function))


def _runs_through(sample: Sample, function: str) -> bool:
    return any(f.function == function for f in sample.frames)


def group_bytes(goroutines: int, location: Frame | None, memstats: Mapping[str, int] | None,
                total_goroutines: int, heap: Profile | None) -> tuple[int, str]:
    """Estimated bytes held by a group of `goroutines` blocked at `location`, and how.

    See the module docstring for the estimate. Returns (bytes, one line of explanation).
    """
    each = stack_bytes_each(memstats, total_goroutines)
    stacks = goroutines * each
    heap_bytes = heap_under(heap, location.function) if location else 0
    how = (f"≈{_mib(stacks + heap_bytes)} held: {goroutines:,} stacks × {each:,} B"
           + (" (StackInuse / goroutines)" if memstats and memstats.get("StackInuse") else
              " (the minimum stack; a lower bound)"))
    if heap_bytes and location is not None:
        how += f" + {_mib(heap_bytes)} in-use heap allocated under {location.function}"
    return stacks + heap_bytes, how


def _mib(n: float) -> str:
    if abs(n) >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if abs(n) >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n:.0f} B"


def _short(f: Frame) -> str:
    return f"{f.file.rsplit('/', 1)[-1]}:{f.line}" if f.file else f.function
