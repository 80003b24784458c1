"""Trend statistics on count series, and group trends over real snapshots of real programs."""

from __future__ import annotations

import pytest
from gopark.analysis.trend import (
    keeps_rising,
    mann_kendall,
    shape_of,
    theil_sen_slope,
    within_band,
)


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
    assert within_band([0, 0]) and not within_band([0, 1, 0])


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
