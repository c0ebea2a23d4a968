"""The HTML dashboard: results files as one self-contained page.

``automem report RESULTS… -o report.html`` and ``pytest --automem-html=PATH``
both come here.  The page is one file that opens from a CI artifact with no
network: the data are embedded as JSON (``<`` ``>`` ``&`` escaped, so a test
named ``</script>`` stays text), and a small hand-written script
(:mod:`.dashboard_page`) draws the summary, the tests table (a page of rows
at a time, so 100,000 tests open at once) and, on demand, one test's
curve with its pressure bands, budget, peak and events beside the
investigator's text.

Several results files (oldest first) add a trend per test and for the suite,
and the newest is compared with the one before by the gate's own rule
(:func:`~pytest_automem.verdicts.gate.compare`, the gate's defaults), so the
page highlights exactly the regressions ``automem gate`` would fail on.

What is embedded is bounded: one row of figures per test, the texts of the
tests that have any, and curves for at most ``DASHBOARD_MAX_PLOTS`` tests
(failing ones first, then the highest peaks).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_writer, remove_stale_temps
from ..base.defaults import (
    DASHBOARD_MAX_PLOTS,
    DASHBOARD_PAGE_ROWS,
    DASHBOARD_TOP_TESTS,
    GATE_ROWS_SHOWN,
    GB,
    KB,
    MB,
)
from ..base.units import format_duration, format_size
from ..measure.pressure import PressureLevel, PressureThresholds
from ..results.results_file import figure, measurement_context
from ..verdicts.gate import GateResult, Status, TestComparison, compare, regression_text
from .dashboard_page import render_page
from .dashboard_samples import CurveUnavailable, Unavailable, read_curve, thresholds_of

__all__ = [
    "COLUMNS",
    "Dashboard",
    "DashboardRun",
    "DashboardSummary",
    "build_dashboard",
    "write_dashboard",
]

#: One table row per test, these values in this order (the page reads the
#: positions by name from the embedded ``columns``).
COLUMNS = (
    "name",
    "peak",
    "growth",
    "rate",
    "pressure",
    "verdict",
    "gate",
    "trend",
    "p50",
    "p99",
    "samples",
    "duration",
    "source",
)
#: Verdicts as the table shows them, worst first (failing tests first).
VERDICTS = ("fail", "xfail", "pass")
LEVELS = tuple(level.name for level in PressureLevel)
#: The units the page formats sizes in, as ``format_size`` does.
UNITS = (("GB", GB), ("MB", MB), ("KB", KB))


@dataclass(frozen=True)
class DashboardRun:
    """One results document to show: its label (the file's name) and where
    its samples are (None: no curves)."""

    label: str
    document: Mapping[str, Any]
    samples_dir: Path | None = None


@dataclass(frozen=True)
class DashboardSummary:
    """What a dashboard holds: its tests, the curves drawn, and the curves it
    could not have (a samples file missing or unreadable, or over the limit)."""

    tests: int
    plots: int
    samples_missing: int
    samples_bad: int
    plots_left_out: int


@dataclass(frozen=True)
class Dashboard:
    """The page's embedded data (plain values only, see :data:`COLUMNS`) and its summary."""

    data: dict[str, Any]
    summary: DashboardSummary


def write_dashboard(
    path: str | os.PathLike[str],
    runs: Sequence[DashboardRun],
    *,
    max_plots: int = DASHBOARD_MAX_PLOTS,
) -> DashboardSummary:
    """Write the dashboard of ``runs`` (oldest first; the last is shown) atomically."""
    dashboard = build_dashboard(runs, max_plots=max_plots)
    with atomic_writer(path) as handle:
        handle.write(render_page(runs[-1].label, dashboard.data))
    remove_stale_temps(path)
    return dashboard.summary


def build_dashboard(
    runs: Sequence[DashboardRun], *, max_plots: int = DASHBOARD_MAX_PLOTS
) -> Dashboard:
    """The dashboard of ``runs``, oldest first: the last is shown, the one
    before it is what the gate compares it with."""
    if not runs:
        raise ValueError("a dashboard needs at least one results document")
    newest = runs[-1]
    tests = _tests(newest.document)
    nodeids = list(tests)
    gate = compare(runs[-2].document, newest.document) if len(runs) > 1 else None
    statuses = {c.nodeid: c for c in gate.comparisons} if gate is not None else {}
    trends = _trends(runs, nodeids) if len(runs) > 1 else None
    sources: list[str] = []
    rows = [
        _row(nodeid, tests[nodeid], statuses.get(nodeid), trends, sources) for nodeid in nodeids
    ]
    details = {
        str(index): detail
        for index, nodeid in enumerate(nodeids)
        if (detail := _detail(tests[nodeid], statuses.get(nodeid)))
    }
    summary = _add_curves(newest, nodeids, details, max_plots)
    data = {
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "label": newest.label,
        "columns": list(COLUMNS),
        "verdicts": list(VERDICTS),
        "levels": list(LEVELS),
        "statuses": [status.label for status in Status],
        "sources": sources,
        "units": [list(unit) for unit in UNITS],
        "pageRows": DASHBOARD_PAGE_ROWS,
        "rows": rows,
        "details": details,
        "summary": _summary(newest, tests, summary),
        "runs": [_run_figures(run) for run in runs] if len(runs) > 1 else [],
        "gate": _gate_summary(gate, runs) if gate is not None else None,
    }
    return Dashboard(data, summary)


def _tests(document: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    tests = document.get("tests")
    return tests if isinstance(tests, Mapping) else {}


def _session(document: Mapping[str, Any]) -> Mapping[str, Any]:
    session = document.get("session")
    return session if isinstance(session, Mapping) else {}


def _number(value: object, digits: int = 0) -> float | int | None:
    """A figure for the page, rounded to ``digits`` decimals (sizes and rates
    to the byte): finite numbers only, as JSON has no NaN."""
    number = figure(value)
    if number is None or not math.isfinite(number):
        return None
    rounded = round(number, digits)
    return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded


def _verdict(record: Mapping[str, Any]) -> int:
    if record.get("verdict") != "fail":
        return VERDICTS.index("pass")
    return VERDICTS.index("xfail" if record.get("expected_failure") else "fail")


def _level(record: Mapping[str, Any]) -> int | None:
    name = record.get("max_pressure")
    return LEVELS.index(name) if name in LEVELS else None


def _row(
    nodeid: str,
    record: Mapping[str, Any],
    comparison: TestComparison | None,
    trends: Mapping[str, list[float | int | None]] | None,
    sources: list[str],
) -> list[Any]:
    source = record.get("peak_source")
    source_index = None
    if isinstance(source, str):
        if source not in sources:
            sources.append(source)
        source_index = sources.index(source)
    return [
        nodeid,
        _number(record.get("peak_bytes")),
        _number(record.get("growth_bytes")),
        _number(record.get("rate_bytes_per_s")),
        _level(record),
        _verdict(record),
        None if comparison is None else int(comparison.status),
        None if trends is None else trends[nodeid],
        _number(record.get("interval_p50_ms"), 3),
        _number(record.get("interval_p99_ms"), 3),
        _number(record.get("samples")),
        _number(record.get("duration_s"), 4),
        source_index,
    ]


def _trends(runs: Sequence[DashboardRun], nodeids: Sequence[str]) -> dict[str, list[Any]]:
    """Each test's peak in each run, oldest first (None where a run lacks it)."""
    documents = [_tests(run.document) for run in runs]
    return {
        nodeid: [_number((tests.get(nodeid) or {}).get("peak_bytes")) for tests in documents]
        for nodeid in nodeids
    }


def _texts(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _detail(record: Mapping[str, Any], comparison: TestComparison | None) -> dict[str, Any]:
    """What a test's detail shows besides its row; empty for a quiet test."""
    detail: dict[str, Any] = {}
    for key, name in (("message", "msg"), ("report", "report")):
        if isinstance(record.get(key), str) and record[key]:
            detail[name] = record[key]
    if violations := _texts(record.get("violations")):
        detail["viol"] = violations
    findings = [
        [str(f.get("severity", "")), str(f.get("summary", "")), str(f.get("recommendation", ""))]
        for f in record.get("findings") or ()
        if isinstance(f, Mapping)
    ]
    if findings:
        detail["find"] = findings
    budget = record.get("budget")
    if isinstance(budget, Mapping):
        limits = {
            key: value
            for key in ("peak_bytes", "growth_bytes", "rate_bytes_per_s")
            if (value := _number(budget.get(key))) is not None
        }
        if limits:
            detail["budget"] = limits
    if comparison is not None and comparison.regressions:
        detail["reg"] = [regression_text(change) for change in comparison.regressions]
    return detail


def _plot_order(
    tests: Mapping[str, Mapping[str, Any]], nodeids: Sequence[str]
) -> list[tuple[int, str]]:
    """Tests with samples (a ``samples_file`` that is not null), failing
    first, then by peak, highest first."""
    candidates = [
        (index, nodeid)
        for index, nodeid in enumerate(nodeids)
        if tests[nodeid].get("samples_file") is not None
    ]

    def rank(item: tuple[int, str]) -> tuple[int, float]:
        record = tests[item[1]]
        return (_verdict(record), -(_number(record.get("peak_bytes")) or 0))

    return sorted(candidates, key=rank)


def _add_curves(
    run: DashboardRun,
    nodeids: Sequence[str],
    details: dict[str, dict[str, Any]],
    max_plots: int,
) -> DashboardSummary:
    """Each plotted test's curve into its detail, and why the others have none."""
    tests = _tests(run.document)
    order = _plot_order(tests, nodeids)
    fallback = thresholds_of(_session(run.document).get("thresholds_bytes"), PressureThresholds())
    plots = missing = bad = 0
    for index, nodeid in order[:max_plots]:
        detail = details.setdefault(str(index), {})
        if run.samples_dir is None:
            detail["noplot"] = Unavailable.MISSING.value
            missing += 1
            continue
        try:
            curve = read_curve(run.samples_dir, tests[nodeid]["samples_file"], fallback)
        except CurveUnavailable as exc:
            detail["noplot"] = exc.why.value
            missing += exc.why is Unavailable.MISSING
            bad += exc.why is Unavailable.BAD
            continue
        detail["curve"] = curve.to_data()
        plots += 1
    for index, _ in order[max_plots:]:
        details.setdefault(str(index), {})["noplot"] = "left out"
    left_out = max(0, len(order) - max_plots)
    return DashboardSummary(len(nodeids), plots, missing, bad, left_out)


def _highest(
    tests: Mapping[str, Mapping[str, Any]], key: str
) -> list[tuple[str, float | int | None]]:
    figures = ((nodeid, _number(record.get(key))) for nodeid, record in tests.items())
    known = [(nodeid, value) for nodeid, value in figures if value is not None]
    known.sort(key=lambda item: -item[1])  # type: ignore[operator]
    return known[:DASHBOARD_TOP_TESTS]


def _context_lines(document: Mapping[str, Any]) -> list[list[str]]:
    """The measurement context as ``[label, text]`` pairs people read."""
    session = _session(document)
    context = measurement_context(document)
    lines = [[key.replace("_", " "), _plain(value)] for key, value in context.items()]
    interval = _number(session.get("interval_target_ms"), 3)
    if interval is not None:
        lines.append(["interval target", format_duration(interval / 1000)])
    if "idle_interval_ms" in session:
        idle = _number(session.get("idle_interval_ms"), 3)
        rest = "never" if idle is None else format_duration(idle / 1000)
        lines.append(["interval between windows", rest])
    thresholds = session.get("thresholds_bytes")
    if isinstance(thresholds, list) and all(_number(v) is not None for v in thresholds):
        lines.append(["thresholds", ", ".join(format_size(v) for v in thresholds)])
    for key in ("gc_mode", "written_at"):
        if key in session:
            lines.append([key.replace("_", " "), _plain(session[key])])
    return lines


def _plain(value: object) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def _summary(
    run: DashboardRun, tests: Mapping[str, Mapping[str, Any]], summary: DashboardSummary
) -> dict[str, Any]:
    verdicts = [_verdict(record) for record in tests.values()]
    return {
        "tests": len(tests),
        "failures": verdicts.count(VERDICTS.index("fail")),
        "expected": verdicts.count(VERDICTS.index("xfail")),
        "peaks": _highest(tests, "peak_bytes"),
        "growths": _highest(tests, "growth_bytes"),
        "context": _context_lines(run.document),
        "plots": summary.plots,
        "samplesMissing": summary.samples_missing,
        "samplesBad": summary.samples_bad,
        "plotsLeftOut": summary.plots_left_out,
    }


def _run_figures(run: DashboardRun) -> dict[str, Any]:
    """One run of the suite's trend: how many tests, failures, the highest
    peak and the growth of all tests together."""
    tests = _tests(run.document)
    peaks = [p for r in tests.values() if (p := _number(r.get("peak_bytes"))) is not None]
    growths = [g for r in tests.values() if (g := _number(r.get("growth_bytes"))) is not None]
    session = _session(run.document)
    return {
        "label": run.label,
        "written_at": _plain(session.get("written_at")),
        "tests": len(tests),
        "failures": sum(1 for r in tests.values() if _verdict(r) == 0),
        "peak": max(peaks, default=0),
        "growth": sum(growths),
    }


def _gate_summary(gate: GateResult, runs: Sequence[DashboardRun]) -> dict[str, Any]:
    removed = [c.nodeid for c in gate.of_status(Status.REMOVED)]
    return {
        "baseline": runs[-2].label,
        "current": runs[-1].label,
        "counts": {status.label: gate.count(status) for status in Status},
        "removed": removed[:GATE_ROWS_SHOWN],
        "removedMore": max(0, len(removed) - GATE_ROWS_SHOWN),
        "context": [difference.describe() for difference in gate.context_differences],
    }
