"""Downsampling memory curves without losing the peak.

A test's or a watcher's samples (one a millisecond) are far more than a plot
or a file needs, but plain decimation drops the short spike that is the
whole story.  Min/max buckets keep, for each stretch of time, its lowest and
its highest sample, so the kept points hold the exact highest (and lowest)
value and the curve's envelope, and their number is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MIN_POINTS", "downsample_indices"]

#: The fewest points a downsampled curve may have: first, last, one bucket.
MIN_POINTS = 4


def downsample_indices(values: Sequence[int | float], max_points: int) -> list[int]:
    """Indices of at most ``max_points`` of ``values`` to keep, in order.

    The first and last values are always kept, and each of the
    ``(max_points - 2) // 2`` buckets between them gives its minimum and its
    maximum, so the highest and lowest values are always among those kept.
    """
    if type(max_points) is not int or max_points < MIN_POINTS:
        raise ValueError(f"invalid max_points {max_points!r}: must be at least {MIN_POINTS}")
    count = len(values)
    if count <= max_points:
        return list(range(count))
    kept = {0, count - 1}
    buckets = (max_points - 2) // 2
    inner = count - 2
    for bucket in range(buckets):
        start = 1 + bucket * inner // buckets
        stop = 1 + (bucket + 1) * inner // buckets
        if start >= stop:
            continue
        span = range(start, stop)
        kept.add(min(span, key=values.__getitem__))
        kept.add(max(span, key=values.__getitem__))
    return sorted(kept)
