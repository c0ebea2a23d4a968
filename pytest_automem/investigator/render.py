"""Renderers of an investigation: plain text, JSON, Markdown.

Plain text goes into failure messages, JUnit and the terminal; JSON into the
results file; Markdown into CI step summaries (GitHub's
``$GITHUB_STEP_SUMMARY``, GitLab and Azure Markdown reports).  People read
text and Markdown, so those are bounded: at most ``limit`` findings and
``detail_limit`` detail lines each, then a line saying exactly how many were
left out.  JSON is read by machines and keeps every finding and every line.
"""

from __future__ import annotations

import json
from typing import Any

from ..base.defaults import DETAILS_SHOWN, FINDINGS_SHOWN
from ..base.text import markdown_code, markdown_text
from .findings import Finding, Investigation

__all__ = ["render", "render_json", "render_markdown", "render_text"]

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
        details, more = _bounded(finding.details, detail_limit)
        lines.extend(f"    {detail}" for detail in details)
        if more:
            lines.append(f"    {_more(more, 'line')}")
        if finding.recommendation:
            lines.append(f"    what to do: {finding.recommendation}")
    if hidden:
        lines.append(_more(hidden, "finding"))
    return "\n".join(lines)


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
