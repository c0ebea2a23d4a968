"""Snapshot analysis: where the time went by pressure, how fast memory grew, what events did.

The figures of the original guide's fifth tool, for any snapshot file
(``automem monitor --snapshots``, the plugin's per-test samples, the
spawner's events log).  Samples may be irregular: the plugin keeps at most
~500 points of a test with min/max buckets, so one kept point may stand for
a long stretch and the next for a single millisecond.  Every figure is
therefore weighted by time, never by a count of samples: a sample holds its
value until the next one (the last sample ends the curve).

Growth is given two ways:

- the overall slope, Theil–Sen over an even subsample: min/max buckets keep
  every spike, and a least-squares line follows a spike near either end,
  while a median of pairwise slopes ignores a minority of them;
- the steepest sustained rate: the time-weighted median of the memory in
  one rate window (``MIN_RATE_WINDOW_S``) against the next, sliding.  A
  median moves only when memory stays up for half a window, so a one-sample
  spike (or dip) is no rate at all, and a 100 MB jump reads as 100 MB over
  half a second, not as 100 GB/s over the millisecond it took.

Which of these figures passes or fails a mark is decided in
:mod:`pytest_automem.verdicts.analysis`, not here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..base.defaults import (
    ANALYSIS_MAX_WINDOWS,
    ANALYSIS_RATE_STEP_FRACTION,
    ANALYSIS_SLOPE_MAX_POINTS,
    MB,
    MIN_RATE_WINDOW_S,
)
from ..base.stats import theil_sen_slope
from ..base.units import MAX_DURATION_S, MAX_SIZE_BYTES, MAX_SIZE_TEXT
from ..measure.pressure import PressureLevel
from .files import Snapshot, SnapshotEvent, SnapshotFormatError

__all__ = [
    "EventTotal",
    "PressureTime",
    "SnapshotAnalysis",
    "SnapshotsAnalysis",
    "SourcedEvent",
    "SustainedRate",
    "analyze_snapshot",
    "analyze_snapshots",
    "event_totals",
]

#: Object counts above this are no count a program can hold (and would not
#: fit a float's exact range): the file is at fault, not the analysis.
_MAX_OBJECTS = 2**63 - 1


@dataclass(frozen=True)
class PressureTime:
    """Seconds spent at each pressure level (every level present, 0.0 where none)."""

    seconds_by_level: Mapping[PressureLevel, float]

    @property
    def total_s(self) -> float:
        return sum(self.seconds_by_level.values())

    def share(self, level: PressureLevel) -> float | None:
        """The fraction of the time at ``level``; None when no time was recorded."""
        total = self.total_s
        return self.seconds_by_level[level] / total if total > 0 else None

    @property
    def high_or_above_s(self) -> float:
        return sum(s for level, s in self.seconds_by_level.items() if level >= PressureLevel.HIGH)

    @property
    def critical_s(self) -> float:
        return self.seconds_by_level[PressureLevel.CRITICAL]


def _pressure_time(pairs: Sequence[tuple[PressureLevel, float]]) -> PressureTime:
    seconds = dict.fromkeys(PressureLevel, 0.0)
    for level, duration_s in pairs:
        seconds[level] += duration_s
    return PressureTime(seconds)


@dataclass(frozen=True)
class SustainedRate:
    """The steepest growth that lasted: from one rate window to the next."""

    rate_bytes_per_s: float
    #: Where the first of the two windows begins, from the snapshot's first sample.
    start_s: float
    window_s: float


@dataclass(frozen=True)
class SourcedEvent:
    """An event and the snapshot file it was read from."""

    source: str
    event: SnapshotEvent

    @property
    def freed_bytes(self) -> int | None:
        """Before minus after (negative: the event added memory), where both are known."""
        effect = self.event.effect_bytes
        return None if effect is None else -effect


@dataclass(frozen=True)
class EventTotal:
    """One kind of event: how many, and what those with a known effect freed in all."""

    kind: str
    count: int
    with_effect: int
    freed_bytes: int


@dataclass(frozen=True)
class SnapshotAnalysis:
    """One snapshot's figures (None where the snapshot cannot give one)."""

    path: Path
    label: str
    #: The header's ``test`` (the plugin's node id) and ``source`` ("pytest",
    #: "spawner"), empty where the writer did not say.
    test: str
    source: str
    samples: int
    duration_s: float
    downsampled_from: int | None
    torn_tail: bool
    peak_rss_bytes: int | None
    max_pressure: PressureLevel | None
    pressure: PressureTime
    #: Theil–Sen over the whole snapshot; None below one rate window or two samples.
    slope_bytes_per_s: float | None
    #: None when the snapshot is shorter than two rate windows.
    sustained: SustainedRate | None
    #: Objects per MB of RSS, weighted by time, over the samples that counted
    #: objects; and the lowest one sample gave.  None where none counted.
    objects_per_mb: float | None
    lowest_objects_per_mb: float | None
    #: The time those samples held (0.0 for a lone sample), which weighs
    #: ``objects_per_mb`` when snapshots are taken together.
    objects_counted_s: float
    #: Largest effect first; events with no known effect last, by time.
    events: tuple[SourcedEvent, ...]

    @property
    def name(self) -> str:
        """The file as it was given, as reports and verdicts name the snapshot
        (two folders may each hold a file of the same name)."""
        return str(self.path)

    @property
    def high_or_above_s(self) -> float:
        return self.pressure.high_or_above_s

    @property
    def sustained_rate_bytes_per_s(self) -> float | None:
        return None if self.sustained is None else self.sustained.rate_bytes_per_s


@dataclass(frozen=True)
class SnapshotsAnalysis:
    """Every snapshot given, each on its own and all together."""

    snapshots: tuple[SnapshotAnalysis, ...]
    #: Time at each level, summed over the snapshots.
    pressure: PressureTime
    #: Objects per MB weighted by time over every sample that counted objects.
    objects_per_mb: float | None
    #: Every snapshot's events, largest effect first.
    events: tuple[SourcedEvent, ...]
    #: Per kind, most frequent first.
    event_totals: tuple[EventTotal, ...]

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.snapshots)

    @property
    def steepest_slope(self) -> SnapshotAnalysis | None:
        """The snapshot with the steepest overall slope, if any has one."""
        rated = [s for s in self.snapshots if s.slope_bytes_per_s is not None]
        return max(rated, key=lambda s: s.slope_bytes_per_s or 0.0, default=None)

    @property
    def steepest_sustained(self) -> SnapshotAnalysis | None:
        """The snapshot with the steepest sustained rate, if any is long enough for one."""
        rated = [s for s in self.snapshots if s.sustained is not None]
        return max(rated, key=lambda s: s.sustained_rate_bytes_per_s or 0.0, default=None)


class _Curve:
    """A snapshot's samples in time order, in seconds, each held until the next."""

    def __init__(self, snapshot: Snapshot) -> None:
        order = sorted(range(len(snapshot.t_ms)), key=snapshot.t_ms.__getitem__)
        self.times_s = [snapshot.t_ms[i] / 1000 for i in order]
        self.rss_bytes = [snapshot.rss_bytes[i] for i in order]
        self.levels = [snapshot.pressure[i] for i in order]
        counts = snapshot.object_counts
        self.objects = [counts[i] for i in order] if counts else []
        #: How long each sample held; the last one ends the curve.
        self.durations_s = [b - a for a, b in zip(self.times_s, self.times_s[1:], strict=False)]
        self.durations_s += [0.0] if self.times_s else []

    @property
    def span_s(self) -> float:
        return self.times_s[-1] - self.times_s[0] if self.times_s else 0.0

    def median_between(self, start_s: float, end_s: float) -> float:
        """The time-weighted median of memory over ``[start_s, end_s)``.

        The samples inside hold their whole duration; only the first and
        the last are cut at the window's edges.
        """
        times = self.times_s
        first = max(0, bisect.bisect_right(times, start_s) - 1)
        stop = max(first + 1, bisect.bisect_left(times, end_s))
        held = self.durations_s[first:stop]
        held_until = times[first] + self.durations_s[first]
        held[0] = min(held_until, end_s) - max(times[first], start_s)
        if stop - 1 > first:
            held[-1] = end_s - times[stop - 1]
        pieces = sorted(zip(self.rss_bytes[first:stop], held, strict=True))
        half = (end_s - start_s) / 2
        reached = 0.0
        for value, duration_s in pieces:
            reached += duration_s
            if reached >= half:
                return float(value)
        return float(pieces[-1][0])


def _check_ranges(snapshot: Snapshot, curve: _Curve) -> None:
    """Refuse figures no process can have, which would overflow the arithmetic."""
    sizes = [*snapshot.rss_bytes]
    for event in snapshot.events:
        sizes.extend(b for b in (event.rss_before_bytes, event.rss_after_bytes) if b is not None)
    if max(sizes, default=0) > MAX_SIZE_BYTES:
        raise SnapshotFormatError(
            f"{snapshot.path}: a memory figure of {max(sizes)} bytes is above {MAX_SIZE_TEXT}"
        )
    if max((c for c in curve.objects if c is not None), default=0) > _MAX_OBJECTS:
        raise SnapshotFormatError(f"{snapshot.path}: an object count is above {_MAX_OBJECTS}")
    if not curve.span_s <= MAX_DURATION_S:
        raise SnapshotFormatError(
            f"{snapshot.path}: sample times span {curve.span_s:.3g} s, more than a year"
        )


def _overall_slope(curve: _Curve) -> float | None:
    count = len(curve.times_s)
    if count < 2 or curve.span_s < MIN_RATE_WINDOW_S:
        return None
    points = min(count, ANALYSIS_SLOPE_MAX_POINTS)
    kept = sorted({round(i * (count - 1) / (points - 1)) for i in range(points)})
    return theil_sen_slope([curve.rss_bytes[i] for i in kept], [curve.times_s[i] for i in kept])


def _sustained(curve: _Curve) -> SustainedRate | None:
    """The steepest change from one rate window's median to the next window's.

    Windows start every tenth of a window, so each window's median serves
    as the first of one pair and the second of another.  A snapshot so long
    that this would take more than ``ANALYSIS_MAX_WINDOWS`` starts (hours of
    samples) is scanned at that many evenly spaced starts instead, which
    bounds the cost whatever the file claims.
    """
    window = MIN_RATE_WINDOW_S
    if curve.span_s < 2 * window:
        return None
    first = curve.times_s[0]
    fine = window * ANALYSIS_RATE_STEP_FRACTION
    count = math.floor((curve.span_s - 2 * window) / fine + 1e-9) + 1
    if count <= ANALYSIS_MAX_WINDOWS:
        per_window = round(1 / ANALYSIS_RATE_STEP_FRACTION)
        starts = [first + k * fine for k in range(count + per_window)]
        medians = [curve.median_between(a, a + window) for a in starts]
        pairs = [(medians[k], medians[k + per_window], k * fine) for k in range(count)]
    else:
        step = (curve.span_s - 2 * window) / (ANALYSIS_MAX_WINDOWS - 1)
        pairs = [
            (
                curve.median_between(first + k * step, first + k * step + window),
                curve.median_between(first + k * step + window, first + k * step + 2 * window),
                k * step,
            )
            for k in range(ANALYSIS_MAX_WINDOWS)
        ]
    rate, start_s = max(((after - before) / window, start_s) for before, after, start_s in pairs)
    return SustainedRate(rate_bytes_per_s=rate, start_s=start_s, window_s=window)


def _objects_per_mb(curve: _Curve) -> tuple[list[float], list[float]]:
    """Each sample's objects per MB of RSS where it counted objects, and its weight."""
    ratios: list[float] = []
    weights: list[float] = []
    if not curve.objects:
        return ratios, weights
    for objects, rss, held in zip(curve.objects, curve.rss_bytes, curve.durations_s, strict=True):
        if objects is not None and rss > 0:
            ratios.append(objects / (rss / MB))
            weights.append(held)
    return ratios, weights


def _weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float | None:
    """The mean weighted by time; the plain mean when no time passed (one sample)."""
    if not values:
        return None
    total = sum(weights)
    if total <= 0:
        return sum(values) / len(values)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total


def _by_effect(events: Sequence[SourcedEvent]) -> tuple[SourcedEvent, ...]:
    """Largest change of memory first; those with no known effect last, in time order."""
    known = [e for e in events if e.freed_bytes is not None]
    unknown = [e for e in events if e.freed_bytes is None]
    known.sort(key=lambda e: (-abs(e.freed_bytes or 0), e.event.t_ms))
    unknown.sort(key=lambda e: e.event.t_ms)
    return (*known, *unknown)


def event_totals(events: Sequence[SourcedEvent]) -> tuple[EventTotal, ...]:
    """Each kind's count and bytes freed, most frequent kind first."""
    kinds: dict[str, list[SourcedEvent]] = {}
    for event in events:
        kinds.setdefault(event.event.kind, []).append(event)
    totals = [
        EventTotal(
            kind=kind,
            count=len(of_kind),
            with_effect=sum(1 for e in of_kind if e.freed_bytes is not None),
            freed_bytes=sum(e.freed_bytes or 0 for e in of_kind),
        )
        for kind, of_kind in kinds.items()
    ]
    return tuple(sorted(totals, key=lambda t: (-t.count, t.kind)))


def _downsampled_from(snapshot: Snapshot) -> int | None:
    value = snapshot.header.get("downsampled_from")
    return value if type(value) is int else None


def analyze_snapshot(snapshot: Snapshot) -> SnapshotAnalysis:
    """One snapshot's figures.  Raises SnapshotFormatError for figures out of any range."""
    curve = _Curve(snapshot)
    _check_ranges(snapshot, curve)
    ratios, weights = _objects_per_mb(curve)
    header = snapshot.header
    return SnapshotAnalysis(
        path=snapshot.path,
        label=snapshot.label,
        test=str(header.get("test", "")),
        source=str(header.get("source", "")),
        samples=len(curve.times_s),
        duration_s=curve.span_s,
        downsampled_from=_downsampled_from(snapshot),
        torn_tail=snapshot.torn_tail,
        peak_rss_bytes=max(curve.rss_bytes, default=None),
        max_pressure=max(curve.levels, default=None),
        pressure=_pressure_time(list(zip(curve.levels, curve.durations_s, strict=True))),
        slope_bytes_per_s=_overall_slope(curve),
        sustained=_sustained(curve),
        objects_per_mb=_weighted_mean(ratios, weights),
        lowest_objects_per_mb=min(ratios, default=None),
        objects_counted_s=sum(weights),
        events=_by_effect([SourcedEvent(str(snapshot.path), e) for e in snapshot.events]),
    )


def analyze_snapshots(snapshots: Iterable[Snapshot]) -> SnapshotsAnalysis:
    """Each snapshot's figures, and the figures of all of them together.

    ``snapshots`` may be a generator: each one is analysed and let go
    before the next is read, so a folder of 10,000 files is never held whole.
    """
    analyses = tuple(analyze_snapshot(s) for s in snapshots)
    pairs = [(level, s) for a in analyses for level, s in a.pressure.seconds_by_level.items()]
    counted = [a for a in analyses if a.objects_per_mb is not None]
    events = [e for a in analyses for e in a.events]
    return SnapshotsAnalysis(
        snapshots=analyses,
        pressure=_pressure_time(pairs),
        objects_per_mb=_weighted_mean(
            [a.objects_per_mb or 0.0 for a in counted], [a.objects_counted_s for a in counted]
        ),
        events=_by_effect(events),
        event_totals=event_totals(events),
    )
