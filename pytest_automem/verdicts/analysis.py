"""Which marks a snapshot analysis passes: the growth-rate marks, pressure, object efficiency.

The original guide's marks: growth below 1 MB/s is the target, above
5 MB/s a warning, above 10 MB/s critical; more than 10 objects per MB is
the target.  ``automem analyze`` fails (exit 1) on a critical mark: time at
CRITICAL pressure, or a growth rate above the critical mark.  Warnings
(HIGH pressure, a rate above the warning mark, efficiency below its target)
are reported and fail only with ``--fail-on warning``: a CI job that
watches a long-running process should not go red on a burst it survives.

A snapshot is judged through :class:`AnalysedSnapshot`, the few figures a
mark needs, so this layer does not read snapshot files itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..base.defaults import (
    OBJECTS_PER_MB_TARGET,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_TARGET_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
)
from ..base.units import format_duration, format_rate
from ..investigator.findings import Severity
from ..measure.pressure import PressureLevel

__all__ = [
    "AnalysedSnapshot",
    "AnalysisVerdict",
    "MarkPassed",
    "RateBand",
    "judge_analysis",
    "judge_snapshot",
    "rate_band",
]


class RateBand(enum.IntEnum):
    """Where a growth rate stands against the marks, best first."""

    TARGET = 0
    ABOVE_TARGET = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def text(self) -> str:
        return self.name.lower().replace("_", " ")


def rate_band(bytes_per_s: float) -> RateBand:
    """Below 1 MB/s on target; above 5 MB/s a warning; above 10 MB/s critical."""
    if bytes_per_s > RATE_CRITICAL_BYTES_PER_S:
        return RateBand.CRITICAL
    if bytes_per_s > RATE_WARNING_BYTES_PER_S:
        return RateBand.WARNING
    if bytes_per_s < RATE_TARGET_BYTES_PER_S:
        return RateBand.TARGET
    return RateBand.ABOVE_TARGET


class AnalysedSnapshot(Protocol):
    """The figures of one snapshot the marks are judged on."""

    @property
    def name(self) -> str: ...
    @property
    def max_pressure(self) -> PressureLevel | None: ...
    @property
    def high_or_above_s(self) -> float: ...
    @property
    def slope_bytes_per_s(self) -> float | None: ...
    @property
    def sustained_rate_bytes_per_s(self) -> float | None: ...
    @property
    def objects_per_mb(self) -> float | None: ...


@dataclass(frozen=True)
class MarkPassed:
    """One mark a snapshot passed: how bad, which figure, and a one-line message."""

    snapshot: str
    severity: Severity
    figure: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "snapshot": self.snapshot,
            "severity": self.severity.name,
            "figure": self.figure,
            "message": self.message,
        }


@dataclass(frozen=True)
class AnalysisVerdict:
    """Every mark passed, worst first."""

    marks: tuple[MarkPassed, ...]

    @property
    def worst(self) -> Severity | None:
        return self.marks[0].severity if self.marks else None

    def fails(self, fail_on: Severity) -> bool:
        """Whether a mark at ``fail_on`` or worse was passed."""
        return any(mark.severity >= fail_on for mark in self.marks)

    def count(self, severity: Severity) -> int:
        return sum(1 for mark in self.marks if mark.severity is severity)


def _rate_mark(name: str, figure: str, what: str, rate: float | None) -> list[MarkPassed]:
    if rate is None:
        return []
    band = rate_band(rate)
    if band is RateBand.CRITICAL:
        severity, mark = Severity.CRITICAL, RATE_CRITICAL_BYTES_PER_S
    elif band is RateBand.WARNING:
        severity, mark = Severity.WARNING, RATE_WARNING_BYTES_PER_S
    else:
        return []
    message = f"{what} {format_rate(rate)} > {band.text} mark {format_rate(mark)}"
    return [MarkPassed(name, severity, figure, message)]


def _pressure_mark(snapshot: AnalysedSnapshot) -> list[MarkPassed]:
    level = snapshot.max_pressure
    if level is None or level < PressureLevel.HIGH:
        return []
    severity = Severity.CRITICAL if level is PressureLevel.CRITICAL else Severity.WARNING
    message = (
        f"reached {level.name} pressure "
        f"({format_duration(snapshot.high_or_above_s)} at HIGH or above)"
    )
    return [MarkPassed(snapshot.name, severity, "pressure", message)]


def _efficiency_mark(snapshot: AnalysedSnapshot) -> list[MarkPassed]:
    efficiency = snapshot.objects_per_mb
    if efficiency is None or efficiency >= OBJECTS_PER_MB_TARGET:
        return []
    message = f"{efficiency:.1f} objects per MB, below the target of {OBJECTS_PER_MB_TARGET:g}"
    return [MarkPassed(snapshot.name, Severity.WARNING, "objects_per_mb", message)]


def judge_snapshot(snapshot: AnalysedSnapshot) -> list[MarkPassed]:
    """The marks one snapshot passed.

    Pressure counts by the highest level any sample reached: a plugin's
    downsampled curve may end on its peak, which then holds no time, yet
    memory was there.  Both growth figures are judged; either one passing
    the critical mark is critical.
    """
    name = snapshot.name
    return [
        *_pressure_mark(snapshot),
        *_rate_mark(
            name, "sustained_rate", "sustained growth", snapshot.sustained_rate_bytes_per_s
        ),
        *_rate_mark(name, "slope", "overall growth", snapshot.slope_bytes_per_s),
        *_efficiency_mark(snapshot),
    ]


def judge_analysis(snapshots: Iterable[AnalysedSnapshot]) -> AnalysisVerdict:
    """Every snapshot's marks, the critical ones first (then in the order given)."""
    marks = [mark for snapshot in snapshots for mark in judge_snapshot(snapshot)]
    marks.sort(key=lambda mark: -mark.severity)
    return AnalysisVerdict(tuple(marks))
