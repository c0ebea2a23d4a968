"""Renderers of an investigation: plain text, JSON, Markdown.

Plain text goes into failure messages, JUnit and the terminal (a test's
memory failure has its own layout, :func:`render_failure`); JSON into the
results file; Markdown into CI step summaries (GitHub's
``$GITHUB_STEP_SUMMARY``, GitLab and Azure Markdown reports).  People read
text and Markdown, so those are bounded: at most ``limit`` findings and
``detail_limit`` detail lines each, then a line saying exactly how many were
left out.  JSON is read by machines and keeps every finding and every line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..base.defaults import DETAILS_SHOWN, FINDINGS_SHOWN, WHERE_DETAILS_SHOWN
from ..base.text import markdown_code, markdown_text
from .attribution import UNTRACED_GROWTH_CHECK
from .findings import Finding, Investigation
from .peak_location import PEAK_LOCATION_CHECK
from .rerun import CHECK as RERUN_CHECK

#: Checks that answer "where" even when they name no line: the peak's
#: location (found or not), growth tracing could not see (C code), and what
#: a traced re-run found instead of a line (a cache filled once, a re-run
#: that raised).
_WHERE_CHECKS = frozenset({PEAK_LOCATION_CHECK, UNTRACED_GROWTH_CHECK, RERUN_CHECK})

__all__ = [
    "locates",
    "render",
    "render_failure",
    "render_json",
    "render_markdown",
    "render_text",
]

FORMATS = ("text", "json", "markdown")


def _more(hidden: int, what: str) -> str:
    return f"… and {hidden:,} more {what}{'s' if hidden != 1 else ''}"


def _bounded(items: tuple[Any, ...] | list[Any], limit: int) -> tuple[list[Any], int]:
    shown = list(items[:limit])
    return shown, max(0, len(items) - limit)


def render_text(
    investigation: Investigation,
    *,
    limit: int = FINDINGS_SHOWN,
    detail_limit: int = DETAILS_SHOWN,
) -> str:
    """Indented plain text: figures, then findings with details and advice."""
    lines = [investigation.title]
    lines.extend(f"  {name}: {value}" for name, value in investigation.figures.items())
    if not investigation.findings and not investigation.figures:
        lines.append("  no findings")
    shown, hidden = _bounded(investigation.findings, limit)
    for finding in shown:
        lines.append(f"- [{finding.severity.name}] {finding.summary}")
        lines.extend(_detail_lines(finding, detail_limit, "    "))
        if finding.recommendation:
            lines.append(f"    what to do: {finding.recommendation}")
    if hidden:
        lines.append(_more(hidden, "finding"))
    return "\n".join(lines)


def locates(finding: Finding) -> bool:
    """Whether ``finding`` says where a failure happened: it names a line
    (its evidence has ``line``), lists the allocation sites that kept memory
    (``sites``), or is one of :data:`_WHERE_CHECKS`."""
    evidence = finding.evidence
    return "line" in evidence or bool(evidence.get("sites")) or finding.check in _WHERE_CHECKS


def render_failure(
    measured: Sequence[str],
    investigation: Investigation,
    advice: Sequence[str],
    *,
    limit: int = FINDINGS_SHOWN,
    detail_limit: int = DETAILS_SHOWN,
) -> str:
    """The report under a memory failure's one-line message, in the order a
    reader asks: what was measured (each figure once, with its basis), where
    (the findings that locate it), what to do, and anything else found.

    ``advice`` is what to do when no finding locates the failure; a finding
    that does brings its own.  The investigation's figures are not shown:
    ``measured`` holds those that matter for the budgets that failed.
    """
    where = [f for f in investigation.findings if locates(f)]
    others = [f for f in investigation.findings if not locates(f)]
    lines = [*measured]
    if where:
        lines.extend(["", "where:"])
        for finding in where:
            lines.append(f"  {finding.summary}")
            lines.extend(_detail_lines(finding, WHERE_DETAILS_SHOWN, "    "))
    todo = [f.recommendation for f in where if f.recommendation] or list(advice)
    if todo:
        lines.extend(["", "what to do:"])
        lines.extend(f"  {line}" for line in dict.fromkeys(todo))
    shown, hidden = _bounded(others, limit)
    if shown:
        lines.extend(["", "also found:"])
    for finding in shown:
        lines.append(f"  - [{finding.severity.name}] {finding.summary}")
        lines.extend(_detail_lines(finding, detail_limit, "      "))
        if finding.recommendation:
            lines.append(f"      what to do: {finding.recommendation}")
    if hidden:
        lines.append(f"  {_more(hidden, 'finding')}")
    return "\n".join(lines)


def _detail_lines(finding: Finding, limit: int, indent: str) -> list[str]:
    details, more = _bounded(finding.details, limit)
    lines = [f"{indent}{detail}" for detail in details]
    if more:
        lines.append(f"{indent}{_more(more, 'line')}")
    return lines


def render_json(investigation: Investigation) -> str:
    """The whole investigation as JSON (nothing bounded: machines read it)."""
    document = {"title": investigation.title, **investigation.to_dict()}
    return json.dumps(document, indent=2, allow_nan=False, default=str)


def _md_finding(finding: Finding, detail_limit: int) -> list[str]:
    lines = [f"### {finding.severity.name}: {markdown_text(finding.summary)}", ""]
    details, more = _bounded(finding.details, detail_limit)
    lines.extend(f"- `{markdown_code(detail)}`" for detail in details)
    if more:
        lines.append(f"- {_more(more, 'line')}")
    if details:
        lines.append("")
    if finding.recommendation:
        lines.extend([f"**What to do:** {markdown_text(finding.recommendation)}", ""])
    return lines


def render_markdown(
    investigation: Investigation,
    *,
    limit: int = FINDINGS_SHOWN,
    detail_limit: int = DETAILS_SHOWN,
) -> str:
    """Markdown for CI step summaries: a figures table, then one section per finding."""
    lines = [f"## {markdown_text(investigation.title)}", ""]
    if investigation.figures:
        lines.extend(["| figure | value |", "|---|---|"])
        lines.extend(
            f"| {markdown_text(str(name))} | {markdown_text(str(value))} |"
            for name, value in investigation.figures.items()
        )
        lines.append("")
    if not investigation.findings:
        lines.extend(["No findings.", ""])
    shown, hidden = _bounded(investigation.findings, limit)
    for finding in shown:
        lines.extend(_md_finding(finding, detail_limit))
    if hidden:
        lines.extend([_more(hidden, "finding"), ""])
    return "\n".join(lines).rstrip() + "\n"


def render(investigation: Investigation, fmt: str) -> str:
    """Render in one of :data:`FORMATS`."""
    if fmt == "text":
        return render_text(investigation)
    if fmt == "json":
        return render_json(investigation)
    if fmt == "markdown":
        return render_markdown(investigation)
    raise ValueError(f"invalid format {fmt!r}: expected one of {', '.join(FORMATS)}")
