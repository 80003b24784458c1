"""Growth across snapshots: which stack groups grow, which drain, which stay flat.

The statistics are deliberately robust and small, because a collection has few points
(6–10 snapshots) and goroutine counts jump when a burst of requests arrives:

* slope: Theil–Sen (median of all pairwise slopes), in goroutines per minute — one
  outlier snapshot cannot tilt it;
* monotonic growth: the Mann–Kendall test (one-sided, normal approximation with the
  tie correction) — "did it go up across the window, not just between two points";
* steady band: the seed's rule — a healthy total stays within ±5% of its median (±2
  goroutines for small totals).

A group's *shape* is one of ``growing``, ``drained`` (rose, then fell back: a burst),
``stable``, ``shrinking``, ``new`` or ``fluctuating``. Its *verdict* adds
the evidence that its goroutines are the same ones stuck all along:

* ``proven`` — Go's goroutineleak profile marks goroutines of the group leaked;
* ``confirmed`` — it grows, and its goroutines persist (the same ids in the first and
  last debug=2 dump) or their wait ages keep rising;
* ``suspected`` — it grows but no dump pair shows persistence;
* ``benign`` — a burst that drained back, or a stable pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import median

from gopark.analysis.classify import location as location_of
from gopark.analysis.inventory import inventory, key_of, signature
from gopark.model import Frame, Goroutine, Snapshot

STEADY_BAND = 0.05
"""The seed's steady band: a count within ±5% of its median is steady."""

MONOTONIC_P = 0.05
"""Significance of the one-sided Mann–Kendall test for "keeps growing"."""

PERSIST_FRACTION = 0.9
"""Share of a group's first-dump goroutine ids that must still be there at the end."""


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of the slopes between every pair of points with distinct x (0.0 if none).

    Robust to a few outliers: up to ~29% of the points can be wild without moving it much.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i])
        for i in range(len(xs))
        for j in range(i + 1, len(xs))
        if xs[j] != xs[i]
    ]
    return float(median(slopes)) if slopes else 0.0


@dataclass(frozen=True, slots=True)
class MonotonicTest:
    """Mann–Kendall trend test of a series."""

    s: int
    """Concordant minus discordant pairs: positive when later values tend to be larger."""
    z: float
    p_increasing: float
    """One-sided p-value for "increasing"; small means a real upward trend."""

    @property
    def increasing(self) -> bool:
        """Significantly increasing at MONOTONIC_P."""
        return self.s > 0 and self.p_increasing < MONOTONIC_P


def mann_kendall(ys: Sequence[float]) -> MonotonicTest:
    """The Mann–Kendall statistic S, its z score and the one-sided p for an upward trend."""
    n = len(ys)
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = ys[j] - ys[i]
            s += (d > 0) - (d < 0)
    # Variance with the correction for tied values (runs of equal counts are common).
    ties: dict[float, int] = {}
    for y in ys:
        ties[y] = ties.get(y, 0) + 1
    var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18
    if var <= 0:
        return MonotonicTest(s, 0.0, 1.0)
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    p = 0.5 * math.erfc(z / math.sqrt(2))
    return MonotonicTest(s, z, p)


def keeps_rising(values: Sequence[float]) -> bool:
    """At least three points that rise: each above the previous, or (with more points, where
    a dip is allowed) a significant Mann–Kendall trend. Three points cannot reach
    significance, so short series must rise at every step."""
    if len(values) < 3:
        return False
    if all(b > a for a, b in zip(values, values[1:], strict=False)):
        return True
    return mann_kendall(values).increasing


STEADY_SLACK = 2
"""Goroutines a small total may move and still be steady: at 4 goroutines, ±5% is less
than one, and a request in flight when a snapshot is taken adds one or two."""


def within_band(values: Sequence[float], band: float = STEADY_BAND,
                slack: float = STEADY_SLACK) -> bool:
    """True when every value is within ±band of the series' median (the seed's steady
    rule), or within ±slack of it for small counts."""
    if not values:
        return True
    mid = median(values)
    tolerance = max(band * mid, slack)
    return all(abs(v - mid) <= tolerance for v in values)


# ---------------------------------------------------------------------------------------
# Per group series


@dataclass(slots=True)
class GroupPoint:
    """One stack group in one snapshot."""

    count: int = 0
    ids: set[int] = field(default_factory=set)
    wait_min: int | None = None
    wait_max: int | None = None
    leaked: int = 0
    example: Goroutine | None = None


@dataclass(slots=True)
class GroupTrend:
    """A stack group followed across snapshots."""

    key: str
    counts: list[int]
    """Count in each goroutine snapshot, in time order (0 where absent)."""
    per_min: float | None
    """Theil–Sen slope in goroutines per minute (None without timestamps)."""
    test: MonotonicTest
    shape: str
    verdict: str | None
    """``proven``/``confirmed``/``suspected``/``benign``, or None when there is nothing to say."""
    evidence: list[str]
    example: Goroutine | None
    """A goroutine of the group (from a debug=2 dump when there is one) for location/category."""
    location: Frame | None = None
    """Where the group's goroutines are (the inventory's rule: the first frame in user code)."""
    ids: list[int] = field(default_factory=list)
    """Ids of the group's goroutines in the last dump that has ids."""
    persisted: int | None = None
    """How many first-dump ids were still in the group in the last dump (None: no dump pair)."""
    wait_minutes: tuple[int, int] | None = None
    leaked: int = 0

    @property
    def first(self) -> int:
        """Count in the first snapshot."""
        return self.counts[0] if self.counts else 0

    @property
    def last(self) -> int:
        """Count in the last snapshot."""
        return self.counts[-1] if self.counts else 0


@dataclass(slots=True)
class TrendReport:
    """Totals and per-group trends of a series of snapshots."""

    totals: list[int]
    minutes: list[float] | None
    """Minutes since the first snapshot, per snapshot (None when a timestamp is missing)."""
    per_min: float | None
    steady: bool
    test: MonotonicTest
    groups: list[GroupTrend]
    """Every group seen, most growth first."""

    @property
    def window_seconds(self) -> float | None:
        """Length of the window, when the snapshots have timestamps."""
        return self.minutes[-1] * 60 if self.minutes else None


KeyFn = Callable[[Goroutine], str]

_user_keys: dict[tuple[Frame, ...], str] = {}


def user_key(g: Goroutine) -> str:
    """The inventory's "user"-similarity group key of a goroutine: the same code gets the
    same key in a debug=2 dump, a debug=1 profile and a protobuf profile."""
    k = _user_keys.get(g.frames)
    if k is None:
        if len(_user_keys) > 100_000:  # frames are interned per parse; bound the cache
            _user_keys.clear()
        k = _user_keys[g.frames] = key_of(signature(g.frames, "user"), "user")
    return k


def _points(snapshot: Snapshot, key_of: KeyFn) -> dict[str, GroupPoint]:
    out: dict[str, GroupPoint] = {}
    for g in snapshot.goroutines:
        p = out.setdefault(key_of(g), GroupPoint())
        p.count += g.count
        if g.id is not None:
            p.ids.add(g.id)
        if snapshot.form == "debug2":
            p.wait_min = g.wait_minutes if p.wait_min is None else min(p.wait_min, g.wait_minutes)
            p.wait_max = g.wait_minutes if p.wait_max is None else max(p.wait_max, g.wait_minutes)
        if g.leaked:
            p.leaked += g.count
        # Prefer a debug=2 goroutine as the example: it has the wait reason and full frames.
        if p.example is None or (p.example.state == "" and g.state != ""):
            p.example = g
    return out


def _minutes(snapshots: Sequence[Snapshot]) -> list[float] | None:
    times = [s.taken_at for s in snapshots]
    if any(t is None for t in times):
        return None
    t0 = times[0]
    assert t0 is not None
    return [((t - t0).total_seconds() / 60) for t in times if t is not None]


def shape_of(counts: Sequence[int], test: MonotonicTest, min_growth: int) -> str:
    """Name the shape of a count series (see the module docstring)."""
    first, last, peak = counts[0], counts[-1], max(counts)
    if first == 0 and last > 0 and all(c == 0 for c in counts[:-1]):
        return "new"
    if test.increasing and last - first >= min_growth:
        return "growing"
    # Came down clearly from its peak to no more than where it started: a burst that drained
    # (whether the window caught its rise or only its fall).
    fell = peak - last
    if fell >= min_growth and fell > STEADY_BAND * peak and last <= first + STEADY_BAND * first:
        return "drained"
    if within_band(counts) or peak - min(counts) < min_growth:
        return "stable"
    if last < first:
        return "shrinking"
    return "fluctuating"


def analyze(
    snapshots: Sequence[Snapshot],
    key_of: KeyFn,
    leak_snapshots: Sequence[Snapshot] = (),
    min_growth: int = 5,
) -> TrendReport:
    """Follow every stack group across `snapshots` (goroutine profiles or dumps, any form).

    `key_of` maps a goroutine to its group key; it must give the same key for the same
    code in every form (the inventory's "user" similarity does). Snapshots are put in time
    order when they all have timestamps. `leak_snapshots` are goroutineleak profiles or
    dumps: goroutines they mark leaked make their group ``proven``. A group must grow by at
    least `min_growth` goroutines to count as growing.
    """
    snaps = [s for s in snapshots if s.profile == "goroutine"]
    leaks = list(leak_snapshots) + [s for s in snapshots if s.profile == "goroutineleak"]
    if all(s.taken_at is not None for s in snaps):
        snaps.sort(key=lambda s: s.taken_at)  # type: ignore[arg-type, return-value]
    minutes = _minutes(snaps) if len(snaps) > 1 else None
    xs: list[float] = minutes if minutes is not None else [float(i) for i in range(len(snaps))]
    points = [_points(s, key_of) for s in snaps]
    leaked = _leaked_by_key(leaks, key_of)

    totals = [s.total for s in snaps]
    total_test = mann_kendall(totals)
    total_slope = theil_sen_slope(xs, totals) if minutes is not None else None

    dumps = [i for i, s in enumerate(snaps) if s.form == "debug2"]
    keys = sorted({k for p in points for k in p} | set(leaked))
    groups = [
        _group_trend(k, points, xs if minutes is not None else None, dumps, leaked.get(k),
                     min_growth)
        for k in keys
    ]
    groups.sort(key=lambda g: (-(g.last - g.first), -g.last, g.key))
    return TrendReport(
        totals=totals, minutes=minutes, per_min=total_slope, steady=within_band(totals),
        test=total_test, groups=groups,
    )


def _leaked_by_key(leaks: Sequence[Snapshot], key_of: KeyFn) -> dict[str, GroupPoint]:
    out: dict[str, GroupPoint] = {}
    for snap in leaks:
        for k, p in _points(snap, key_of).items():
            # A goroutineleak *profile* (proto, debug=1) lists only leaked goroutines;
            # its debug=2 form lists every goroutine and marks the leaked ones.
            n = p.leaked if snap.form == "debug2" else p.count
            if n:
                q = out.setdefault(k, GroupPoint())
                q.leaked = max(q.leaked, n)
                q.ids |= p.ids
                q.example = q.example or p.example
    return out


def _group_trend(key: str, points: list[dict[str, GroupPoint]], minutes: list[float] | None,
                 dumps: list[int], leak: GroupPoint | None, min_growth: int) -> GroupTrend:
    present = [p.get(key) for p in points]
    counts = [p.count if p else 0 for p in present]
    test = mann_kendall(counts)
    per_min = theil_sen_slope(minutes, counts) if minutes is not None and counts else None
    shape = shape_of(counts, test, min_growth) if counts else "new"
    example = next((p.example for p in reversed(present) if p and p.example and p.example.state),
                   None) or next((p.example for p in reversed(present) if p and p.example), None)
    if example is None and leak is not None:
        example = leak.example
    evidence: list[str] = []
    if len(counts) > 1:
        rate = f" ({per_min:+.1f}/min)" if per_min is not None else ""
        evidence.append(
            f"{_shape_words(shape)} {counts[0]} → {counts[-1]} in {len(counts)} snapshots"
            f"{rate}: {' '.join(str(c) for c in counts)}"
        )

    trend = GroupTrend(key=key, counts=counts, per_min=per_min, test=test, shape=shape,
                       verdict=None, evidence=evidence, example=example,
                       location=location_of(example.frames) if example else None)
    ages_rise = _persistence(trend, [present[i] for i in dumps])
    if leak is not None and leak.leaked:
        trend.leaked = leak.leaked
        trend.verdict = "proven"
        # Worded as step 1 words it, so merged evidence says it once.
        trend.evidence.insert(0, f"Go's goroutineleak profile marks {leak.leaked:,} of them "
                                 "leaked: nothing reachable can ever wake them")
        if leak.ids and not trend.ids:
            trend.ids = sorted(leak.ids)
    elif shape == "growing":
        if (trend.persisted is not None and trend.persisted > 0) or ages_rise:
            trend.verdict = "confirmed"
        else:
            trend.verdict = "suspected"
            if trend.persisted is None:
                trend.evidence.append("no pair of debug=2 dumps to check that the same goroutines "
                                      "stay blocked")
    elif shape == "drained" and max(counts) >= min_growth:
        trend.verdict = "benign"
        trend.evidence.append(f"a burst to {max(counts)} that drained back to {counts[-1]}: "
                              "not a leak")
    elif shape == "stable" and len(counts) > 1 and counts[-1] > 0:
        trend.verdict = "benign"
        trend.evidence.append(f"stable at {min(counts)}–{max(counts)} across the window")
    return trend


def _persistence(trend: GroupTrend, dumps: list[GroupPoint | None]) -> bool:
    """Compare the group's goroutines in the first and the last dump that has the group.

    Sets ids, wait_minutes and persisted; returns True when the oldest wait age rose
    (wait minutes only show after a minute of waiting: old goroutines that stay, age).
    """
    with_ids = [p for p in dumps if p is not None and p.ids]
    if not with_ids:
        return False
    last_p = with_ids[-1]
    trend.ids = sorted(last_p.ids)
    trend.wait_minutes = (last_p.wait_min or 0, last_p.wait_max or 0)
    ages_rise = len(with_ids) > 1 and (last_p.wait_max or 0) > (with_ids[0].wait_max or 0)
    if ages_rise:
        trend.evidence.append(f"the oldest wait age rose from {with_ids[0].wait_max or 0} to "
                              f"{last_p.wait_max} min: the oldest goroutines never leave")
    if len(dumps) < 2 or dumps[0] is None or not dumps[0].ids:
        return ages_rise
    first = dumps[0].ids
    last = dumps[-1].ids if dumps[-1] is not None else set()
    kept = len(first & last)
    share = kept / len(first)
    trend.persisted = kept if share >= PERSIST_FRACTION else 0
    trend.evidence.append(
        f"{kept} of the {len(first)} goroutines of the first dump are still blocked "
        f"here in the last ({share:.0%}): the same goroutines, never released"
        if share >= PERSIST_FRACTION else
        f"only {kept} of the {len(first)} goroutines of the first dump are still here "
        f"in the last ({share:.0%}): they come and go"
    )
    return ages_rise


def _shape_words(shape: str) -> str:
    return {
        "growing": "grew", "drained": "rose and drained", "stable": "stable",
        "shrinking": "shrank", "new": "appeared",
        "fluctuating": "fluctuated",
    }.get(shape, shape)


# ---------------------------------------------------------------------------------------
# Two snapshots side by side (gopark diff)


@dataclass(slots=True)
class GroupChange:
    """One stack group before and after."""

    key: str
    before: int
    after: int
    category: str
    location: Frame | None
    state: str
    """The most common wait reason (after, else before; "" for profiles)."""

    @property
    def delta(self) -> int:
        """after − before."""
        return self.after - self.before

    @property
    def status(self) -> str:
        """``new``, ``vanished``, ``grew``, ``shrank`` or ``same``."""
        if self.before == 0:
            return "new"
        if self.after == 0:
            return "vanished"
        return "grew" if self.delta > 0 else "shrank" if self.delta < 0 else "same"


@dataclass(slots=True)
class SnapshotDiff:
    """Goroutine groups of two snapshots, most changed first."""

    before_source: str
    after_source: str
    before_total: int
    after_total: int
    groups: list[GroupChange]
    seconds: float | None
    """Time between the snapshots when both carry a time."""


def diff_snapshots(before: Snapshot, after: Snapshot, similarity: str = "user") -> SnapshotDiff:
    """Match the stack groups of two snapshots (any forms) by the inventory's group key."""
    a = inventory(before, similarity).by_key()
    b = inventory(after, similarity).by_key()
    changes = []
    for key in a.keys() | b.keys():
        ga, gb = a.get(key), b.get(key)
        # Describe the group by its later self, unless only the earlier one knows more
        # (a debug=2 dump has wait reasons, a profile has none).
        known = [g for g in (gb, ga) if g is not None]
        category = next((g.category for g in known if g.category != "unknown"), "unknown")
        changes.append(GroupChange(
            key=key, before=ga.count if ga else 0, after=gb.count if gb else 0,
            category=category, location=known[0].location,
            state=next((g.main_state for g in known if g.main_state), ""),
        ))
    changes.sort(key=lambda c: (-abs(c.delta), -c.after, c.key))
    t0, t1 = before.taken_at, after.taken_at
    return SnapshotDiff(
        before_source=before.source, after_source=after.source, before_total=before.total,
        after_total=after.total, groups=changes,
        seconds=(t1 - t0).total_seconds() if t0 and t1 else None,
    )
