"""What a measurement window saw: the frozen :class:`WindowResult`.

Its own module because its readers are many and need no monitor: verdicts,
snapshot files, the investigator and the CLI read a window's figures, and
only :mod:`.monitor` makes them.  The statistics a result is computed from
(growth rate, interval percentiles) live here with it.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass, field
from typing import Any

from ..base.defaults import LEAST_SQUARES_MAX_POINTS, MIN_RATE_SAMPLES
from ..base.stats import differences, least_squares_slope, percentile
from ..base.units import format_size
from .pressure import MeasurementBasis, PressureLevel, PressureThresholds, measured_bytes

__all__ = ["WindowResult", "growth_rate", "interval_stats_ms"]

_PEAK_SOURCE_TEXT = {
    "kernel-hwm": "kernel high-water mark",
    "tracemalloc": "traced peak of Python's allocators (the kernel's mark missed what they reused)",
}


@dataclass(frozen=True)
class WindowResult:
    """What one measurement window saw.  Sizes in bytes, times in ms or s.

    ``peak_bytes`` and ``growth_bytes`` are relative to ``baseline_bytes``;
    ``*_rss_bytes`` fields are the process's whole resident memory.
    """

    pid: int
    duration_s: float
    baseline_bytes: int
    end_rss_bytes: int
    peak_rss_bytes: int
    peak_bytes: int
    growth_bytes: int
    rate_bytes_per_s: float | None
    max_pressure: PressureLevel
    pressure_distribution: dict[str, float]
    thresholds: PressureThresholds
    basis: MeasurementBasis
    samples: int
    samples_dropped: int
    interval_target_ms: float
    interval_p50_ms: float | None
    interval_p99_ms: float | None
    interval_max_ms: float | None
    sampler_kind: str
    peak_source: str
    allocator_trimmed: bool
    sample_times_ns: array.array = field(repr=False, compare=False)
    sample_rss_bytes: array.array = field(repr=False, compare=False)
    #: How garbage was collected at both ends (``auto``, ``full`` or ``off``).
    gc_mode: str = "auto"
    #: False when garbage was collected at the end only (see ``MemoryMonitor.window``).
    baseline_collected: bool = True
    #: RSS at the end minus the baseline, whatever ``growth_bytes`` is based on.
    rss_growth_bytes: int | None = None
    #: ``retained-heap``: ``growth_bytes`` is what the allocators' live bytes
    #: (and memory outside them) gained, memory the allocators keep for reuse
    #: excluded (a window opened with ``fresh_allocator``); ``rss``: RSS growth.
    growth_source: str = "rss"
    #: Freed memory the allocators kept at the window's start and end (at
    #: most; None where it was not measured): how far RSS figures could be
    #: off without the fresh allocator.
    allocator_cached_start_bytes: int | None = None
    allocator_cached_end_bytes: int | None = None

    def how_measured(self) -> str:
        """One phrase for messages: ``kernel high-water mark, 1 ms sampler, 842 samples``."""
        source = _PEAK_SOURCE_TEXT.get(self.peak_source, "sampled peak")
        interval = f"{self.interval_target_ms:g} ms"
        return f"{source}, {interval} sampler, {self.samples} samples"

    def level_of(self, rss_bytes: int) -> PressureLevel:
        """Pressure level of one RSS reading on this window's basis."""
        return self.thresholds.classify(measured_bytes(rss_bytes, self.baseline_bytes, self.basis))

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (str/int/float/bool/None), safe for JSON and xdist."""
        return {
            "peak_bytes": self.peak_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "baseline_bytes": self.baseline_bytes,
            "end_rss_bytes": self.end_rss_bytes,
            "growth_bytes": self.growth_bytes,
            "rate_bytes_per_s": self.rate_bytes_per_s,
            "max_pressure": self.max_pressure.name,
            "pressure_distribution": dict(self.pressure_distribution),
            "pressure_basis": self.basis.value,
            "duration_s": self.duration_s,
            "samples": self.samples,
            "samples_dropped": self.samples_dropped,
            "interval_target_ms": self.interval_target_ms,
            "interval_p50_ms": self.interval_p50_ms,
            "interval_p99_ms": self.interval_p99_ms,
            "interval_max_ms": self.interval_max_ms,
            "sampler_kind": self.sampler_kind,
            "peak_source": self.peak_source,
            "allocator_trimmed": self.allocator_trimmed,
            "gc_mode": self.gc_mode,
            "baseline_collected": self.baseline_collected,
            "rss_growth_bytes": self.rss_growth_bytes,
            "growth_source": self.growth_source,
            "allocator_cached_start_bytes": self.allocator_cached_start_bytes,
            "allocator_cached_end_bytes": self.allocator_cached_end_bytes,
        }

    def describe(self) -> str:
        """A short human summary of the window."""
        return (
            f"peak {format_size(self.peak_bytes)}, growth {format_size(self.growth_bytes)}, "
            f"max pressure {self.max_pressure.name} ({self.how_measured()})"
        )


def interval_stats_ms(times_ns: array.array) -> tuple[float | None, float | None, float | None]:
    """p50, p99 and max gap between consecutive samples, in ms."""
    if len(times_ns) < 2:
        return None, None, None
    gaps = sorted(differences(times_ns))
    return percentile(gaps, 0.50) / 1e6, percentile(gaps, 0.99) / 1e6, gaps[-1] / 1e6


def growth_rate(times_ns: array.array, rss_bytes: array.array) -> float | None:
    """Least-squares slope of RSS over time in bytes/s, subsampled when huge."""
    if len(times_ns) < MIN_RATE_SAMPLES:
        return None
    step = max(1, math.ceil(len(times_ns) / LEAST_SQUARES_MAX_POINTS))
    slope_per_ns = least_squares_slope(times_ns[::step], rss_bytes[::step])
    return None if slope_per_ns is None else slope_per_ns * 1e9
