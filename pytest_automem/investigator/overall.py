"""``investigate(...)``: every check that applies to what is known about a run.

What is known varies: a test has a monitor window (and maybe scenario
results and a tracing attribution), ``automem investigate`` has a file, a
scenario run in a test has all of them.  This module runs the checks each
piece allows and merges their findings, most severe first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..base.units import format_size
from .attribution import (
    UNTRACED_GROWTH_CHECK,
    Attribution,
    SiteGrowth,
    grew_outside_traced_heap,
)
from .file_checks import (
    check_duplicate_ids,
    check_execution_history,
    check_large_arrays,
    check_snapshots,
    investigate_file,
)
from .findings import Finding, Investigation, Severity
from .measured import investigate_measured
from .peak_location import PEAK_LOCATION_CHECK, locate_peak
from .rerun import RERUN_SUBJECT, Rerun, rerun_findings

if TYPE_CHECKING:
    from ..automaton.scenario import ScenarioResult
    from ..automaton.store import Automaton
    from ..measure.monitor import HeadlineResult
    from ..measure.stack_dumps import StackDump
    from ..measure.window_result import WindowResult

__all__ = ["PeakStacks", "SubjectAttribution", "investigate"]


@dataclass(frozen=True)
class SubjectAttribution:
    """An attribution with what it explains.

    ``measured_growth_bytes`` is the growth the monitor measured over the
    same stretch (RSS), when known: traced growth far below it means the
    growth is outside Python objects.
    """

    subject: str
    attribution: Attribution
    measured_growth_bytes: int | None = None


def investigate(
    *,
    automaton: Automaton | str | os.PathLike[str] | None = None,
    window: WindowResult | None = None,
    scenarios: Sequence[ScenarioResult] = (),
    phases: dict[str, WindowResult | HeadlineResult] | None = None,
    attributions: Sequence[SubjectAttribution] = (),
    snapshots: str | os.PathLike[str] | None = None,
    strict: bool = False,
    peak_stacks: PeakStacks | None = None,
    rerun: Rerun | None = None,
) -> Investigation:
    """Diagnose a run from whatever is known about it.

    ``automaton``: a path (the file checks, as ``automem investigate`` runs
    them) or a loaded :class:`Automaton` (the same checks on its objects and
    its execution history).  ``window``/``phases``/``scenarios``: what the
    monitor measured; a phase is a full window's result or, for setup,
    teardown and a short call measured in brief, its headline figures.
    ``attributions``: results of tracing, which name the lines that
    allocated what was retained.  ``peak_stacks``: the stacks dumped when
    the window's memory crossed a peak limit, which name where.  ``rerun``:
    a failing call run once more under tracing, which names where it grew.
    """
    parts = []
    if peak_stacks is not None and window is not None:
        parts.append(_peak_location_part(peak_stacks, window))
    if window is not None or scenarios or phases:
        parts.append(investigate_measured(window=window, scenarios=scenarios, phases=phases))
    if isinstance(automaton, (str, os.PathLike)):
        parts.append(investigate_file(automaton, snapshots=snapshots, strict=strict))
    else:
        if automaton is not None:
            parts.append(_investigate_object(automaton))
        if snapshots is not None:
            parts.append(Investigation(tuple(check_snapshots(snapshots)), {}))
    if rerun is not None:
        parts.append(_rerun_part(rerun))
    parts.append(_attribution_part(attributions))
    merged = Investigation((), {})
    for part in parts:
        merged = merged.merged(part)
    return merged


@dataclass(frozen=True)
class PeakStacks:
    """The stacks a window dumped once its memory passed ``limit_bytes``."""

    dumps: tuple[StackDump, ...]
    limit_bytes: int
    #: Where the memory alive at the last dump was allocated (a traced call).
    sites_alive: tuple[SiteGrowth, ...] = ()


def _peak_location_part(stacks: PeakStacks, window: WindowResult) -> Investigation:
    finding = locate_peak(stacks.dumps, stacks.limit_bytes, stacks.sites_alive)
    if finding is None and window.peak_bytes > stacks.limit_bytes:
        finding = Finding(
            check=PEAK_LOCATION_CHECK,
            severity=Severity.INFO,
            summary="where the peak happened was not recorded: no sample saw memory above "
            f"{format_size(stacks.limit_bytes)}, so the peak lasted less than a sampling "
            "interval (the kernel's high-water mark caught it)",
            evidence={"dumps": len(stacks.dumps)},
            recommendation="mark the test memory_budget(..., trace=True) to name the lines "
            "that allocated",
        )
    return Investigation((finding,) if finding is not None else (), {})


def _rerun_part(rerun: Rerun) -> Investigation:
    found = rerun_findings(rerun)
    if rerun.attribution is not None and not found:
        explained = SubjectAttribution(RERUN_SUBJECT, rerun.attribution, rerun.growth_bytes)
        return _attribution_part((explained,))
    return Investigation(found, {})


def _investigate_object(automaton: Automaton) -> Investigation:
    config = getattr(automaton, "config", None)
    limit = config.max_execution_history if config is not None else 500
    findings = [
        *check_duplicate_ids(automaton),
        *check_large_arrays(automaton),
        *check_execution_history(automaton, limit=max(limit, 1)),
    ]
    figures = {
        "automaton objects": len(automaton.objects),
        "automaton history": len(automaton.execution_history),
    }
    return Investigation(tuple(findings), figures)


def _attribution_part(attributions: Sequence[SubjectAttribution]) -> Investigation:
    findings: list[Finding] = []
    for item in attributions:
        finding = item.attribution.finding(subject=item.subject)
        if finding is not None:
            findings.append(finding)
        untraced = _growth_outside_traced_heap(item)
        if untraced is not None:
            findings.append(untraced)
    return Investigation(tuple(findings), {})


def _growth_outside_traced_heap(item: SubjectAttribution) -> Finding | None:
    """RSS grew while the traced Python heap did not: growth outside Python objects."""
    measured = item.measured_growth_bytes
    traced = item.attribution.traced_growth_bytes
    if measured is None or not grew_outside_traced_heap(measured, traced):
        return None
    return Finding(
        check=UNTRACED_GROWTH_CHECK,
        severity=Severity.WARNING,
        summary=f"{item.subject}: memory grew {format_size(measured)} but the traced Python "
        f"heap only {format_size(traced)}: the growth is outside Python objects",
        evidence={"growth_bytes": measured, "traced_growth_bytes": traced},
        recommendation="look at C extensions and native buffers (their own malloc/mmap), "
        "which tracemalloc cannot see; allocator fragmentation can look the same",
    )
