"""Limits given on the command line (``automem monitor --max-peak``,
``--fail-on-pressure``) and the verdict on what a watch measured.

A crossed limit is a finding (exit 3 where the command itself succeeded); a
limit that could not be checked because its figure was never measured is a
note, so a run that measured nothing cannot pass for one within its limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.units import format_size
from ..measure.pressure import PressureLevel

__all__ = ["CommandLimits", "LimitsVerdict", "judge_limits"]


@dataclass(frozen=True)
class CommandLimits:
    """The limits of one watch; None means "no limit on this"."""

    max_peak_bytes: int | None = None
    fail_on_pressure: PressureLevel | None = None


@dataclass(frozen=True)
class LimitsVerdict:
    """The limits crossed (findings) and those that could not be checked (notes)."""

    findings: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def crossed(self) -> bool:
        return bool(self.findings)


def judge_limits(
    limits: CommandLimits,
    *,
    peak_rss_bytes: int | None,
    peak_rss_at_most_bytes: int | None,
    max_pressure: PressureLevel,
) -> LimitsVerdict:
    """Compare a watch's figures with ``limits``.

    ``peak_rss_bytes`` is None when the peak was not measured;
    ``peak_rss_at_most_bytes`` then bounds it, and a bound within
    ``--max-peak`` means the limit cannot have been crossed.
    """
    findings = []
    max_peak = limits.max_peak_bytes
    if max_peak is not None and peak_rss_bytes is not None and peak_rss_bytes > max_peak:
        findings.append(
            f"peak RSS {format_size(peak_rss_bytes)} > --max-peak {format_size(max_peak)}"
        )
    level = limits.fail_on_pressure
    if level is not None and max_pressure >= level:
        findings.append(f"pressure reached {max_pressure.name} (--fail-on-pressure {level.name})")
    return LimitsVerdict(
        tuple(findings), _unchecked(max_peak, peak_rss_bytes, peak_rss_at_most_bytes)
    )


def _unchecked(
    max_peak: int | None, peak_rss_bytes: int | None, peak_rss_at_most_bytes: int | None
) -> tuple[str, ...]:
    """Limits that could not be checked because the peak was not measured."""
    if peak_rss_bytes is not None or max_peak is None:
        return ()
    if peak_rss_at_most_bytes is not None and peak_rss_at_most_bytes <= max_peak:
        return ()  # not measured, but it cannot have crossed the limit
    return ("--max-peak not checked: the peak RSS was not measured",)
