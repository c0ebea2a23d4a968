"""Memory pressure levels and the thresholds that separate them.

A level is the highest one whose boundary the measured memory reaches:
LOW below ``medium``, MEDIUM from ``medium``, HIGH from ``high``, CRITICAL from
``critical``.  What "measured memory" is — the bytes a test added above its
own baseline, or a process's whole resident set — is the caller's choice
(see :class:`MeasurementBasis`); this module only classifies numbers.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ..base.defaults import (
    DEFAULT_CRITICAL_PRESSURE_BYTES,
    DEFAULT_HIGH_PRESSURE_BYTES,
    DEFAULT_MEDIUM_PRESSURE_BYTES,
    DEFAULT_THRESHOLDS_TEXT,
)
from ..base.units import format_size, is_count, parse_size_bytes

__all__ = [
    "MeasurementBasis",
    "PressureLevel",
    "PressureThresholds",
    "distribution_of_values",
    "measured_bytes",
]


class PressureLevel(enum.IntEnum):
    """Ordered pressure levels: ``PressureLevel.HIGH > PressureLevel.MEDIUM``."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: PressureLevel | str) -> PressureLevel:
        """Accept a level or its name in any case (``"high"``)."""
        if isinstance(value, PressureLevel):
            return value
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        names = ", ".join(cls.__members__)
        raise ValueError(f"invalid pressure level {value!r}: expected one of {names}")


class MeasurementBasis(enum.Enum):
    """What a pressure level is measured on.

    ``RELATIVE``: bytes above the window's baseline (inside a test, the pytest
    process already holds its imports).  ``ABSOLUTE``: the process's whole
    resident memory (an automaton in a child process of its own).
    """

    RELATIVE = "relative"
    ABSOLUTE = "absolute"


def measured_bytes(rss_bytes: int, baseline_bytes: int, basis: MeasurementBasis) -> int:
    """An RSS reading as a level judges it: above the baseline when relative."""
    return rss_bytes - baseline_bytes if basis is MeasurementBasis.RELATIVE else rss_bytes


@dataclass(frozen=True)
class PressureThresholds:
    """Where MEDIUM, HIGH and CRITICAL begin, in bytes; strictly increasing."""

    medium: int = DEFAULT_MEDIUM_PRESSURE_BYTES
    high: int = DEFAULT_HIGH_PRESSURE_BYTES
    critical: int = DEFAULT_CRITICAL_PRESSURE_BYTES

    def __post_init__(self) -> None:
        for name in ("medium", "high", "critical"):
            value = getattr(self, name)
            if not is_count(value, minimum=1):
                raise ValueError(
                    f"invalid pressure threshold {name}={value!r}: expected a positive "
                    "int of bytes (use PressureThresholds.parse for text such as '50MB')"
                )
        if not self.medium < self.high < self.critical:
            raise ValueError(
                "pressure thresholds must be strictly increasing (medium < high < critical), "
                f"got {self.describe()}"
            )

    @classmethod
    def from_sizes(
        cls, medium: int | str, high: int | str, critical: int | str
    ) -> PressureThresholds:
        """Build from sizes given as bytes or text (``"50MB"``)."""
        return cls(parse_size_bytes(medium), parse_size_bytes(high), parse_size_bytes(critical))

    @classmethod
    def parse(cls, text: str) -> PressureThresholds:
        """Parse ``"50MB,200MB,500MB"``: three sizes, comma-separated."""
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"invalid pressure thresholds {text!r}: expected three sizes separated by "
                f"commas, where MEDIUM, HIGH and CRITICAL begin, e.g. '{DEFAULT_THRESHOLDS_TEXT}'"
            )
        try:
            return cls.from_sizes(*parts)
        except ValueError as exc:
            raise ValueError(f"invalid pressure thresholds {text!r}: {exc}") from None

    def classify(self, measured_bytes: float) -> PressureLevel:
        """The highest level whose boundary ``measured_bytes`` reaches."""
        if measured_bytes < self.medium:
            return PressureLevel.LOW
        if measured_bytes < self.high:
            return PressureLevel.MEDIUM
        if measured_bytes < self.critical:
            return PressureLevel.HIGH
        return PressureLevel.CRITICAL

    def describe(self) -> str:
        """The thresholds as the text form the ini setting accepts."""
        return ",".join(format_size(v).replace(" ", "") for v in self.boundaries())

    def boundary_above(self, level: PressureLevel) -> int | None:
        """Where the level above ``level`` begins (None above CRITICAL)."""
        return self.boundaries()[level] if level < PressureLevel.CRITICAL else None

    def boundaries(self) -> tuple[int, int, int]:
        """``(medium, high, critical)`` in bytes."""
        return (self.medium, self.high, self.critical)


def distribution_of_values(
    sorted_measured_bytes: Sequence[int], thresholds: PressureThresholds
) -> dict[str, float]:
    """Fraction of the measurements at each level, keyed by level name, all
    four present; all zeros for none (rather than dividing by zero).

    The measurements come sorted, so each boundary is one bisection, which
    keeps closing a long measurement window cheap.
    """
    total = len(sorted_measured_bytes)
    if not total:
        return {level.name: 0.0 for level in PressureLevel}
    cuts = [
        0,
        *(bisect.bisect_left(sorted_measured_bytes, b) for b in thresholds.boundaries()),
        total,
    ]
    return {level.name: (cuts[i + 1] - cuts[i]) / total for i, level in enumerate(PressureLevel)}
