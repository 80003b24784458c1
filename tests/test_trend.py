"""Trend statistics on count series, and group trends over real snapshots of real programs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import gofixtures
import pytest
from dumpwait import settle
from gopark.analysis.trend import (
    analyze,
    keeps_rising,
    mann_kendall,
    shape_of,
    theil_sen_slope,
    user_key,
    within_band,
)
from gopark.demo.goprocess import GoProcess
from gopark.formats.load import load_bytes
from gopark.model import Snapshot


def test_theil_sen_ignores_an_outlier() -> None:
    xs = [0.0, 1, 2, 3, 4, 5, 6]
    ys = [10.0, 12, 14, 500, 18, 20, 22]  # one wild snapshot
    assert theil_sen_slope(xs, ys) == pytest.approx(2.0)
    assert theil_sen_slope([0.0, 0.0], [1.0, 5.0]) == 0.0  # no distinct x: no slope


def test_mann_kendall() -> None:
    up = mann_kendall([1, 2, 3, 4, 5, 6])
    assert up.s == 15 and up.increasing and up.p_increasing < 0.01
    flat = mann_kendall([5, 5, 5, 5, 5, 5])
    assert flat.s == 0 and not flat.increasing
    noisy = mann_kendall([10, 12, 9, 11, 10, 12, 9])
    assert not noisy.increasing
    down = mann_kendall([6, 5, 4, 3, 2, 1])
    assert down.s == -15 and down.p_increasing > 0.99
    # Four strictly rising points are just significant at 5%; three cannot be.
    assert mann_kendall([1, 2, 3, 4]).increasing
    assert not mann_kendall([1, 2, 3]).increasing


def test_keeps_rising_and_band() -> None:
    assert keeps_rising([1, 2, 3]) and not keeps_rising([1, 3, 2]) and not keeps_rising([1, 2])
    assert keeps_rising([10, 12, 11, 14, 16, 15, 19, 21])  # dips allowed in a long series
    assert within_band([100, 104, 97, 103]) and not within_band([100, 110, 100])
    # Small totals: a request or two in flight is not a change of state.
    assert within_band([4, 4, 6, 4, 5]) and not within_band([4, 4, 7, 4])
    assert within_band([0, 0]) and within_band([0, 1, 0])


@pytest.mark.parametrize("counts, shape", [
    ([50, 60, 70, 80, 90, 100], "growing"),
    ([300, 300, 300, 0, 0, 0], "drained"),      # the window caught only the fall
    ([40, 40, 300, 300, 40, 40], "drained"),    # rise and fall
    ([300, 300, 40, 41, 40, 40], "drained"),    # back down to the steady load
    ([16, 16, 16, 16, 16, 16], "stable"),
    ([100, 103, 98, 101, 99, 102], "stable"),
    ([0, 0, 0, 0, 0, 7], "new"),
    ([50, 90, 30, 100, 20, 60], "fluctuating"),
])
def test_shapes(counts: list[int], shape: str) -> None:
    assert shape_of(counts, mann_kendall(counts), min_growth=5) == shape


# --- group trends over real snapshots -------------------------------------------------

def _series(program: str, version: str, args: list[str], forms: list[str],
            pause: float = 0.4, settled: bool = False,
            last_when: Callable[[bytes], bool] | None = None) -> list[Snapshot]:
    """Snapshots of a running fixture, one per entry of `forms` ("debug2", "debug1",
    "proto"), `pause` seconds apart, stamped with the time they were taken. With `settled`,
    the first waits until the program's goroutines have reached their blocking points;
    with `last_when`, the last waits until a debug=2 dump satisfies it."""
    out: list[Snapshot] = []
    with gofixtures.run(program, version, args) as p:
        if settled:
            settle(p)
        for i, form in enumerate(forms):
            if i:
                time.sleep(pause)
            if last_when is not None and i == len(forms) - 1:
                _wait_for(p, last_when)
            path = {"debug2": "goroutine?debug=2", "debug1": "goroutine?debug=1",
                    "proto": "goroutine"}[form]
            taken = datetime.now(UTC)
            items = load_bytes(gofixtures.fetch(p, path), f"{program}-{i}-{form}")
            snap = items[0]
            assert isinstance(snap, Snapshot) and snap.form == form
            snap.taken_at = taken
            out.append(snap)
    return out


def _wait_for(p: GoProcess, condition: Callable[[bytes], bool], timeout: float = 90.0) -> None:
    """Poll `p`'s debug=2 dump until `condition` holds (fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition(gofixtures.fetch(p, "goroutine?debug=2")):
        assert time.monotonic() < deadline, "the fixture never reached the expected state"
        time.sleep(0.2)


MIXED = ["debug2", "proto", "debug1", "proto", "debug1", "proto", "debug2"]


@pytest.fixture(scope="module", params=["1.21", "1.27"])
def leaking(request: pytest.FixtureRequest) -> list[Snapshot]:
    return _series("sendaftertimeout", request.param, ["-n", "30", "-rate", "20"], MIXED)


def test_leak_grows_and_persists_across_forms(leaking: list[Snapshot]) -> None:
    report = analyze(leaking, user_key)
    top = report.groups[0]
    assert top.location is not None and top.location.function == "main.fetch.func1"
    # The same key in every form (Go 1.27 profiles trim the runtime frames): no gaps.
    assert all(c > 0 for c in top.counts), top.counts
    assert top.counts[-1] - top.counts[0] >= 20
    assert top.shape == "growing" and top.test.increasing
    assert 600 < (top.per_min or 0) < 1800  # 20 requests/s ≈ 1,200/min
    # Every goroutine of the first dump is still there in the last: confirmed.
    first_ids = {g.id for g in leaking[0].goroutines
                 if g.frames and g.frames[0].function == "main.fetch.func1"}
    assert top.persisted == len(first_ids) > 0
    assert top.verdict == "confirmed"
    assert top.example is not None and top.example.state == "chan send"
    assert report.per_min is not None and report.per_min > 300
    assert not report.steady and report.test.increasing


def test_growth_without_a_dump_pair_is_only_suspected(leaking: list[Snapshot]) -> None:
    report = analyze([s for s in leaking if s.form != "debug2"], user_key)
    top = report.groups[0]
    assert top.shape == "growing" and top.persisted is None and top.verdict == "suspected"


def test_goroutineleak_profile_proves_the_group() -> None:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "30"]) as p:
        settle(p)  # all 30 blocked in their send (the test counts them)
        snap = load_bytes(gofixtures.fetch(p, "goroutine"), "g.pb.gz")[0]
        leak = load_bytes(gofixtures.fetch(p, "goroutineleak"), "leak.pb.gz")[0]
    assert isinstance(snap, Snapshot) and isinstance(leak, Snapshot)
    assert leak.profile == "goroutineleak"
    report = analyze([snap], user_key, leak_snapshots=[leak])
    proven = [g for g in report.groups if g.verdict == "proven"]
    assert [g.location.function for g in proven if g.location] == ["main.fetch.func1"]
    assert proven[0].leaked == 30


def test_burst_drains_and_pool_is_stable() -> None:
    # The first snapshot once all 200 requests wait (well within the 5 s hold, even on a
    # loaded machine), the last once they all returned.
    burst = _series("burstdrains", "1.24", ["-n", "200", "-hold", "5s"],
                    ["debug2", "proto", "proto", "proto", "proto", "debug2"], pause=0.5,
                    settled=True, last_when=lambda dump: b"main.handle(" not in dump)
    report = analyze(burst, user_key)
    handle = next(g for g in report.groups if g.location and g.location.function == "main.handle")
    assert handle.counts[0] == 200 and handle.counts[-1] == 0
    assert handle.shape == "drained" and handle.verdict == "benign"
    assert not [g for g in report.groups if g.verdict in ("proven", "confirmed", "suspected")]

    pool = _series("healthypool", "1.24", ["-n", "0", "-rate", "10"], ["proto"] * 5)
    report = analyze(pool, user_key)
    worker = next(g for g in report.groups if g.location and g.location.function == "main.worker")
    # 16 workers; some may be busy with a job (sleeping elsewhere) when a snapshot is taken.
    assert max(worker.counts) == 16 and min(worker.counts) > 16 - 5, worker.counts
    assert worker.shape == "stable" and worker.verdict == "benign", worker.counts
    assert report.steady
