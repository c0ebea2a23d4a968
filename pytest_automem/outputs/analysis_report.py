"""``automem analyze``'s report: plain text, Markdown or JSON.

People read text (a terminal, a CI log) and Markdown (a step summary), so
those are bounded whatever the number of snapshots: the figures of all
snapshots together, the first marks passed, the events with the largest
effect and the worst snapshots, each list ending with a line that says
exactly how many it left out.  JSON is read by machines and holds every
snapshot, mark and event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..base.defaults import (
    ANALYSIS_EVENTS_SHOWN,
    ANALYSIS_MARKS_SHOWN,
    ANALYSIS_SNAPSHOTS_SHOWN,
    MIN_RATE_WINDOW_S,
    OBJECTS_PER_MB_TARGET,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_TARGET_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
)
from ..base.text import markdown_code, markdown_text
from ..base.units import format_duration, format_rate, format_size
from ..investigator.findings import Severity
from ..measure.pressure import PressureLevel
from ..snapshots.analysis import (
    EventTotal,
    PressureTime,
    SnapshotAnalysis,
    SnapshotsAnalysis,
    SourcedEvent,
    event_totals,
)
from ..verdicts.analysis import AnalysisVerdict, MarkPassed, rate_band

__all__ = ["FORMATS", "REPORT_VERSION", "render_analysis"]

FORMATS = ("text", "json", "markdown")
#: The JSON report's ``version``: a script reading it checks this first.
REPORT_VERSION = 1

_MARKS_TEXT = (
    f"growth < {format_rate(RATE_TARGET_BYTES_PER_S)} target, "
    f"> {format_rate(RATE_WARNING_BYTES_PER_S)} warning, "
    f"> {format_rate(RATE_CRITICAL_BYTES_PER_S)} critical "
    f"(sustained: from one {format_duration(MIN_RATE_WINDOW_S)} window to the next); "
    f"objects per MB target >= {OBJECTS_PER_MB_TARGET:g}"
)


# ------------------------------------------------------------------- shared wording


def _more(hidden: int, what: str) -> str:
    return f"… and {hidden:,} more {what}{'' if hidden == 1 else 's'}"


def _title(analysis: SnapshotsAnalysis) -> str:
    count = len(analysis.snapshots)
    return (
        f"automem analyze: {count:,} snapshot{'' if count == 1 else 's'}, "
        f"{format_duration(analysis.duration_s)} of samples"
    )


def _verdict_text(verdict: AnalysisVerdict) -> str:
    if not verdict.marks:
        return "no mark passed"
    critical, warnings = verdict.count(Severity.CRITICAL), verdict.count(Severity.WARNING)
    return f"{critical:,} critical, {warnings:,} warning{'' if warnings == 1 else 's'}"


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def _pressure_text(pressure: PressureTime) -> str:
    if pressure.total_s <= 0:
        return "no time recorded (fewer than two samples)"
    shares = ", ".join(f"{level.name} {_percent(pressure.share(level))}" for level in PressureLevel)
    high = pressure.high_or_above_s
    return f"{shares}; HIGH or above {format_duration(high) if high > 0 else 'never'}"


def _rate_text(rate: float | None, why_none: str) -> str:
    if rate is None:
        return why_none
    return f"{format_rate(rate)} ({rate_band(rate).text})"


def _slope_text(snapshot: SnapshotAnalysis) -> str:
    return _rate_text(
        snapshot.slope_bytes_per_s, f"none (shorter than {format_duration(MIN_RATE_WINDOW_S)})"
    )


def _sustained_text(snapshot: SnapshotAnalysis) -> str:
    sustained = snapshot.sustained
    if sustained is None:
        return f"none (shorter than {format_duration(2 * MIN_RATE_WINDOW_S)})"
    where = f" from {format_duration(sustained.start_s)}"
    return _rate_text(sustained.rate_bytes_per_s, "") + where


def _efficiency_text(value: float | None, lowest: float | None = None) -> str:
    if value is None:
        return "not recorded"
    below = " (below the target)" if value < OBJECTS_PER_MB_TARGET else ""
    low = "" if lowest is None else f", lowest {lowest:.1f}"
    return f"{value:.1f}{below}{low}"


def _freed_text(bytes_freed: int) -> str:
    if bytes_freed < 0:
        return f"added {format_size(-bytes_freed)}"
    return f"freed {format_size(bytes_freed)}"


def _totals_text(totals: Sequence[EventTotal]) -> str:
    if not totals:
        return "none"
    parts = []
    for total in totals:
        effect = f" ({_freed_text(total.freed_bytes)})" if total.with_effect else ""
        parts.append(f"{total.kind} {total.count:,}{effect}")
    return ", ".join(parts)


def _effect_text(event: SourcedEvent) -> str:
    before, after = event.event.rss_before_bytes, event.event.rss_after_bytes
    if before is not None and after is not None:
        freed = _freed_text(before - after)
        return f"{format_size(before)} → {format_size(after)}, {freed}"
    known = (("before", before), ("after", after))
    return ", ".join(f"{name} {format_size(value)}" for name, value in known if value is not None)


def _event_line(event: SourcedEvent) -> str:
    detail = f" ({event.event.detail})" if event.event.detail else ""
    effect = _effect_text(event) or "effect not recorded"
    at = format_duration(event.event.t_ms / 1000)
    return f"{event.source}: {event.event.kind} at {at}: {effect}{detail}"


def _snapshot_facts(snapshot: SnapshotAnalysis) -> str:
    notes = []
    if snapshot.downsampled_from is not None:
        notes.append(f"downsampled from {snapshot.downsampled_from:,}")
    if snapshot.torn_tail:
        notes.append("a torn last line left out")
    note = f" ({'; '.join(notes)})" if notes else ""
    if snapshot.peak_rss_bytes is None or snapshot.max_pressure is None:
        return f"no samples{note}"
    return (
        f"{snapshot.samples:,} samples over {format_duration(snapshot.duration_s)}{note}, "
        f"peak RSS {format_size(snapshot.peak_rss_bytes)}, "
        f"max pressure {snapshot.max_pressure.name}"
    )


def _worst_first(
    analysis: SnapshotsAnalysis, verdict: AnalysisVerdict
) -> list[tuple[SnapshotAnalysis, Severity | None]]:
    """The snapshots with their worst mark, worst first, then by pressure and growth."""
    worst: dict[str, Severity] = {}
    for mark in verdict.marks:
        worst[mark.snapshot] = max(worst.get(mark.snapshot, mark.severity), mark.severity)

    def order(snapshot: SnapshotAnalysis) -> tuple[int, int, float]:
        severity = worst.get(snapshot.name)
        level = -1 if snapshot.max_pressure is None else int(snapshot.max_pressure)
        rate = snapshot.sustained_rate_bytes_per_s or snapshot.slope_bytes_per_s or 0.0
        return (-1 if severity is None else int(severity), level, rate)

    ranked = sorted(analysis.snapshots, key=order, reverse=True)
    return [(s, worst.get(s.name)) for s in ranked]


def _steepest(
    snapshot: SnapshotAnalysis | None, rate: Callable[[SnapshotAnalysis], float | None]
) -> str:
    if snapshot is None:
        return "none (no snapshot is long enough)"
    return f"{_rate_text(rate(snapshot), '')} in {snapshot.name}"


def _together(analysis: SnapshotsAnalysis) -> list[tuple[str, str]]:
    """The figures of all snapshots together, as (name, value) rows."""
    return [
        ("pressure (share of time)", _pressure_text(analysis.pressure)),
        (
            "steepest sustained growth",
            _steepest(analysis.steepest_sustained, lambda s: s.sustained_rate_bytes_per_s),
        ),
        (
            "steepest overall growth",
            _steepest(analysis.steepest_slope, lambda s: s.slope_bytes_per_s),
        ),
        ("objects per MB", _efficiency_text(analysis.objects_per_mb)),
        ("events", _totals_text(analysis.event_totals)),
    ]


def _per_snapshot(snapshot: SnapshotAnalysis) -> list[tuple[str, str]]:
    return [
        ("pressure", _pressure_text(snapshot.pressure)),
        ("overall growth", _slope_text(snapshot)),
        ("sustained growth", _sustained_text(snapshot)),
        (
            "objects per MB",
            _efficiency_text(snapshot.objects_per_mb, snapshot.lowest_objects_per_mb),
        ),
        ("events", _totals_text(event_totals(snapshot.events))),
    ]


# ------------------------------------------------------------------- text


def render_text(analysis: SnapshotsAnalysis, verdict: AnalysisVerdict) -> str:
    lines = [
        _title(analysis),
        f"  marks: {_MARKS_TEXT}",
        f"  verdict: {_verdict_text(verdict)}",
        "",
        "all together:",
        *(f"  {name}: {value}" for name, value in _together(analysis)),
    ]
    events = analysis.events
    if events:
        lines.append("  largest effects:")
        lines.extend(f"    {_event_line(e)}" for e in events[:ANALYSIS_EVENTS_SHOWN])
        if len(events) > ANALYSIS_EVENTS_SHOWN:
            lines.append(f"    {_more(len(events) - ANALYSIS_EVENTS_SHOWN, 'event')}")
    if verdict.marks:
        lines.extend(["", "marks passed, worst first:"])
        lines.extend(
            f"  - [{m.severity.name}] {m.snapshot}: {m.message}"
            for m in verdict.marks[:ANALYSIS_MARKS_SHOWN]
        )
        if len(verdict.marks) > ANALYSIS_MARKS_SHOWN:
            lines.append(f"  {_more(len(verdict.marks) - ANALYSIS_MARKS_SHOWN, 'mark')}")
    lines.extend(["", "snapshots, worst first:"])
    ranked = _worst_first(analysis, verdict)
    for snapshot, _ in ranked[:ANALYSIS_SNAPSHOTS_SHOWN]:
        test = f"  [{snapshot.test}]" if snapshot.test else ""
        lines.append(f"  {snapshot.name}{test}")
        lines.append(f"    {_snapshot_facts(snapshot)}")
        lines.extend(f"    {name}: {value}" for name, value in _per_snapshot(snapshot))
    lines.extend(_left_out(ranked, "  "))
    return "\n".join(lines)


def _left_out(ranked: list[tuple[SnapshotAnalysis, Severity | None]], indent: str) -> list[str]:
    hidden = ranked[ANALYSIS_SNAPSHOTS_SHOWN:]
    if not hidden:
        return []
    marked = sum(1 for _, severity in hidden if severity is not None)
    return [
        f"{indent}{_more(len(hidden), 'snapshot')} ({marked:,} of them passed a mark); "
        "--format json has every snapshot"
    ]


# ------------------------------------------------------------------- markdown


def _md_row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(analysis: SnapshotsAnalysis, verdict: AnalysisVerdict) -> str:
    lines = [
        f"## {markdown_text(_title(analysis))}",
        "",
        f"**Verdict:** {markdown_text(_verdict_text(verdict))}.",
        "",
        f"Marks: {markdown_text(_MARKS_TEXT)}.",
        "",
        "### All together",
        "",
        _md_row("figure", "value"),
        "|---|---|",
        *(_md_row(markdown_text(n), markdown_text(v)) for n, v in _together(analysis)),
        "",
    ]
    if verdict.marks:
        lines.extend(
            ["### Marks passed", "", _md_row("severity", "snapshot", "mark"), "|---|---|---|"]
        )
        lines.extend(
            _md_row(
                m.severity.name,
                f"`{markdown_code(m.snapshot, in_table=True)}`",
                markdown_text(m.message),
            )
            for m in verdict.marks[:ANALYSIS_MARKS_SHOWN]
        )
        if len(verdict.marks) > ANALYSIS_MARKS_SHOWN:
            lines.extend(["", _more(len(verdict.marks) - ANALYSIS_MARKS_SHOWN, "mark")])
        lines.append("")
    if analysis.events:
        lines.extend(["### Largest event effects", ""])
        lines.extend(
            f"- `{markdown_code(_event_line(e))}`" for e in analysis.events[:ANALYSIS_EVENTS_SHOWN]
        )
        if len(analysis.events) > ANALYSIS_EVENTS_SHOWN:
            lines.append(f"- {_more(len(analysis.events) - ANALYSIS_EVENTS_SHOWN, 'event')}")
        lines.append("")
    lines.extend(_md_snapshots(_worst_first(analysis, verdict)))
    return "\n".join(lines).rstrip() + "\n"


def _md_snapshots(ranked: list[tuple[SnapshotAnalysis, Severity | None]]) -> list[str]:
    header = ("snapshot", "worst mark", "samples", "pressure", "overall growth",
              "sustained growth", "objects per MB", "events")  # fmt: skip
    lines = ["### Snapshots, worst first", "", _md_row(*header), "|" + "---|" * len(header)]
    for snapshot, severity in ranked[:ANALYSIS_SNAPSHOTS_SHOWN]:
        name = f"`{markdown_code(snapshot.name, in_table=True)}`"
        if snapshot.test:
            name += f"<br>`{markdown_code(snapshot.test, in_table=True)}`"
        lines.append(
            _md_row(
                name,
                "—" if severity is None else severity.name,
                markdown_text(_snapshot_facts(snapshot)),
                *(markdown_text(value) for _, value in _per_snapshot(snapshot)),
            )
        )
    lines.extend(["", *_left_out(ranked, "")])
    return lines


# ------------------------------------------------------------------- json


def _pressure_dict(pressure: PressureTime) -> dict[str, Any]:
    return {
        "seconds": {level.name: s for level, s in pressure.seconds_by_level.items()},
        "share": {level.name: pressure.share(level) for level in PressureLevel},
        "high_or_above_s": pressure.high_or_above_s,
    }


def _rate_dict(rate: float | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {"bytes_per_s": rate, "band": rate_band(rate).name}


def _event_dict(event: SourcedEvent) -> dict[str, Any]:
    return {
        "t_ms": event.event.t_ms,
        "event": event.event.kind,
        "rss_before_bytes": event.event.rss_before_bytes,
        "rss_after_bytes": event.event.rss_after_bytes,
        "freed_bytes": event.freed_bytes,
        "detail": event.event.detail,
    }


def _totals_list(totals: Sequence[EventTotal]) -> list[dict[str, Any]]:
    return [
        {
            "kind": t.kind,
            "count": t.count,
            "with_effect": t.with_effect,
            "freed_bytes": t.freed_bytes,
        }
        for t in totals
    ]


def _snapshot_dict(snapshot: SnapshotAnalysis, marks: Sequence[MarkPassed]) -> dict[str, Any]:
    sustained = snapshot.sustained
    return {
        "file": snapshot.name,
        "label": snapshot.label,
        "test": snapshot.test or None,
        "source": snapshot.source or None,
        "samples": snapshot.samples,
        "duration_s": snapshot.duration_s,
        "downsampled_from": snapshot.downsampled_from,
        "torn_tail": snapshot.torn_tail,
        "peak_rss_bytes": snapshot.peak_rss_bytes,
        "max_pressure": None if snapshot.max_pressure is None else snapshot.max_pressure.name,
        "pressure": _pressure_dict(snapshot.pressure),
        "slope": _rate_dict(snapshot.slope_bytes_per_s),
        "sustained": None
        if sustained is None
        else {
            **(_rate_dict(sustained.rate_bytes_per_s) or {}),
            "start_s": sustained.start_s,
            "window_s": sustained.window_s,
        },
        "objects_per_mb": snapshot.objects_per_mb,
        "lowest_objects_per_mb": snapshot.lowest_objects_per_mb,
        "event_totals": _totals_list(event_totals(snapshot.events)),
        "events": [_event_dict(e) for e in snapshot.events],
        "marks_passed": [m.to_dict() for m in marks],
    }


def render_json(analysis: SnapshotsAnalysis, verdict: AnalysisVerdict) -> str:
    steepest, steepest_slope = analysis.steepest_sustained, analysis.steepest_slope
    marks_by_snapshot: dict[str, list[MarkPassed]] = {}
    for mark in verdict.marks:
        marks_by_snapshot.setdefault(mark.snapshot, []).append(mark)
    document = {
        "version": REPORT_VERSION,
        "marks": {
            "rate_target_bytes_per_s": RATE_TARGET_BYTES_PER_S,
            "rate_warning_bytes_per_s": RATE_WARNING_BYTES_PER_S,
            "rate_critical_bytes_per_s": RATE_CRITICAL_BYTES_PER_S,
            "rate_window_s": MIN_RATE_WINDOW_S,
            "objects_per_mb_target": OBJECTS_PER_MB_TARGET,
        },
        "verdict": {
            "worst": None if verdict.worst is None else verdict.worst.name,
            "marks_passed": [m.to_dict() for m in verdict.marks],
        },
        "all": {
            "snapshots": len(analysis.snapshots),
            "duration_s": analysis.duration_s,
            "pressure": _pressure_dict(analysis.pressure),
            "steepest_sustained": None
            if steepest is None
            else {"file": steepest.name, **(_rate_dict(steepest.sustained_rate_bytes_per_s) or {})},
            "steepest_slope": None
            if steepest_slope is None
            else {
                "file": steepest_slope.name,
                **(_rate_dict(steepest_slope.slope_bytes_per_s) or {}),
            },
            "objects_per_mb": analysis.objects_per_mb,
            "event_totals": _totals_list(analysis.event_totals),
        },
        "snapshots": [
            _snapshot_dict(s, marks_by_snapshot.get(s.name, ())) for s in analysis.snapshots
        ],
    }
    return json.dumps(document, indent=2, allow_nan=False)


def render_analysis(analysis: SnapshotsAnalysis, verdict: AnalysisVerdict, fmt: str) -> str:
    """The report in one of :data:`FORMATS`."""
    if fmt == "text":
        return render_text(analysis, verdict)
    if fmt == "json":
        return render_json(analysis, verdict)
    if fmt == "markdown":
        return render_markdown(analysis, verdict)
    raise ValueError(f"invalid format {fmt!r}: expected one of {', '.join(FORMATS)}")
