"""Small, dependency-free statistics used by the measurement core.

Kept separate so the monitor, the scenario runner and the analysis share one
definition of "p99" and "slope".
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

__all__ = ["differences", "least_squares_slope", "percentile", "theil_sen_slope"]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in [0, 1]).

    Nearest-rank never invents a value that was not measured, which matters
    when the claim is "p99 interval was 1.05 ms".
    """
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Ordinary least-squares slope of ``ys`` over ``xs``; None if undefined.

    Written with ``map``/``sum`` so the loops run in C: the monitor computes
    this for every window, and integer inputs (ns, bytes) stay exact.
    """
    n = len(xs)
    if n < 2 or n != len(ys):
        return None
    sum_x = sum(xs)
    sum_y = sum(ys)
    sxx = n * sum(map(operator.mul, xs, xs)) - sum_x * sum_x
    if sxx == 0:
        return None
    sxy = n * sum(map(operator.mul, xs, ys)) - sum_x * sum_y
    return sxy / sxx


def differences(values: Sequence[int]) -> list[int]:
    """Consecutive differences ``values[i+1] - values[i]`` (C-speed)."""
    return list(map(operator.sub, values[1:], values[:-1]))


def theil_sen_slope(ys: Sequence[float], xs: Sequence[float] | None = None) -> float | None:
    """Median of pairwise slopes: robust to a minority of outliers.

    One GC pause or one allocator hiccup moves a least-squares line a lot and
    a median of slopes hardly at all, which is what a leak verdict needs.
    Quadratic in the number of points; callers pass at most a few hundred.
    """
    points = list(zip(range(len(ys)) if xs is None else xs, ys, strict=True))
    slopes = sorted(
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    )
    if not slopes:
        return None
    middle = len(slopes) // 2
    if len(slopes) % 2:
        return float(slopes[middle])
    return (slopes[middle - 1] + slopes[middle]) / 2
