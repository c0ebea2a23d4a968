"""Checks on what a run measured: a monitor window, its phases, scenario results.

Growth-rate targets: < 1 MB/s is the target, > 5 MB/s a warning, > 10 MB/s
critical.  A rate is stated only where it means something: over a window of
at least ``MIN_RATE_WINDOW_S`` that retained more than ``GROWTH_NOISE_BYTES``.
A slope of a short window, or of a test that kept nothing, describes a
spike's shape, not growth: a test that built and freed 200 MB in 0.1 s has
a slope of GB/s and a growth of 0 B.  A scenario's leak slope, and RSS
growing while the allocators' heap does not (growth outside the tracked
objects), are findings too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..base.defaults import (
    GROWTH_NOISE_BYTES,
    LEAK_FINDING_BYTES_PER_ITERATION,
    MB,
    MIN_RATE_WINDOW_S,
    OUTSIDE_HEAP_SHARE,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_TARGET_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
)
from ..base.units import format_rate, format_size
from .findings import Finding, Investigation, Severity

if TYPE_CHECKING:
    from ..automaton.scenario import ScenarioResult
    from ..measure.monitor import HeadlineResult
    from ..measure.window_result import WindowResult

__all__ = ["GROWTH_RATE_CHECK", "SCENARIO_LEAK_CHECK", "investigate_measured", "meaningful_rate"]

GROWTH_RATE_CHECK = "growth-rate"
SCENARIO_LEAK_CHECK = "scenario-leak"

#: The growth-rate marks as the finding states them.
_RATE_MARKS_TEXT = (
    f"target < {RATE_TARGET_BYTES_PER_S // MB} MB/s, "
    f"warning > {RATE_WARNING_BYTES_PER_S // MB} MB/s, "
    f"critical > {RATE_CRITICAL_BYTES_PER_S // MB} MB/s"
)


def investigate_measured(
    *,
    window: WindowResult | None = None,
    scenarios: Sequence[ScenarioResult] = (),
    phases: dict[str, WindowResult | HeadlineResult] | None = None,
) -> Investigation:
    """Diagnose one measured run: a test's window, its phases, its scenarios."""
    findings: list[Finding] = []
    figures: dict[str, Any] = {}
    if window is not None:
        figures.update(_window_figures(window))
        findings.extend(_rate_findings(window))
    for name, phase in (phases or {}).items():
        if name != "call" and phase.growth_bytes > GROWTH_NOISE_BYTES:
            figures[f"{name} growth"] = format_size(phase.growth_bytes)
    for result in scenarios:
        findings.extend(_scenario_findings(result))
    findings.sort(key=lambda f: -f.severity)
    return Investigation(tuple(findings), figures)


def _window_figures(window: WindowResult) -> dict[str, Any]:
    rate = meaningful_rate(window)
    figures = {
        "peak": f"{format_size(window.peak_bytes)} above the baseline "
        f"({format_size(window.peak_rss_bytes)} RSS)",
        "growth": f"{format_size(window.growth_bytes)} after gc.collect()",
    }
    if rate is not None:
        figures["growth rate"] = format_rate(rate)
    figures["pressure"] = f"{window.max_pressure.name} (thresholds {window.thresholds.describe()})"
    figures["measured by"] = window.how_measured()
    return figures


def meaningful_rate(window: WindowResult) -> float | None:
    """The window's growth rate where it says something about growth, else None:
    the window lasted ``MIN_RATE_WINDOW_S`` and retained more than the noise."""
    rate = window.rate_bytes_per_s
    if rate is None or window.duration_s < MIN_RATE_WINDOW_S:
        return None
    return rate if window.growth_bytes > GROWTH_NOISE_BYTES else None


def _rate_findings(window: WindowResult) -> list[Finding]:
    rate = meaningful_rate(window)
    if rate is None or rate <= RATE_TARGET_BYTES_PER_S:
        return []
    severity = (
        Severity.CRITICAL
        if rate > RATE_CRITICAL_BYTES_PER_S
        else Severity.WARNING
        if rate > RATE_WARNING_BYTES_PER_S
        else Severity.INFO
    )
    return [
        Finding(
            check=GROWTH_RATE_CHECK,
            severity=severity,
            summary=f"memory grew at {format_rate(rate)} for {window.duration_s:.1f} s "
            f"({_RATE_MARKS_TEXT})",
            evidence={"rate_bytes_per_s": rate, "duration_s": window.duration_s},
            recommendation="look for buffers, caches or histories that grow without a bound; "
            "cap them (e.g. OptimizationConfig.max_objects / max_execution_history)",
        )
    ]


def _scenario_findings(result: ScenarioResult) -> list[Finding]:
    findings = []
    leak = result.leak_bytes_per_iteration
    if leak >= LEAK_FINDING_BYTES_PER_ITERATION:
        findings.append(
            Finding(
                check=SCENARIO_LEAK_CHECK,
                severity=Severity.WARNING,
                summary=f"scenario {result.name} retains {format_size(leak)} per iteration "
                f"({format_size(leak * result.iterations)} over {result.iterations} iterations)",
                evidence={
                    "leak_bytes_per_iteration": leak,
                    "rss_leak_bytes_per_iteration": result.rss_leak_bytes_per_iteration,
                    "heap_leak_bytes_per_iteration": result.heap_leak_bytes_per_iteration,
                    "final_objects": result.final_objects,
                    "final_history": result.final_history,
                },
                recommendation="something kept per step is never released: check what the "
                "scenario adds to long-lived containers",
            )
        )
    heap = result.heap_leak_bytes_per_iteration
    rss = result.rss_leak_bytes_per_iteration
    if heap is not None and rss > 0 and heap < OUTSIDE_HEAP_SHARE * rss:
        findings.append(
            Finding(
                check="growth-outside-heap",
                severity=Severity.WARNING,
                summary=f"RSS grows {format_size(rss)}/iteration but the Python and C heaps only "
                f"{format_size(heap)}/iteration: memory grows outside the tracked objects",
                evidence={
                    "rss_leak_bytes_per_iteration": rss,
                    "heap_leak_bytes_per_iteration": heap,
                },
                recommendation="suspect a C extension's own allocations (mmap) or allocator "
                "fragmentation; tracemalloc cannot see these",
            )
        )
    if result.final_history > 0 and result.trims == 0 and leak > 0:
        findings.append(
            Finding(
                check="execution-history",
                severity=Severity.INFO,
                summary=f"the automaton ended with {result.final_objects} objects and "
                f"{result.final_history} history entries and was never trimmed",
                evidence={
                    "final_objects": result.final_objects,
                    "final_history": result.final_history,
                },
                recommendation="bound it: run on a MemoryOptimizedAutomaton with max_objects and "
                "max_execution_history set (OptimizationConfig)",
            )
        )
    return findings
