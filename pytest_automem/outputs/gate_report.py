"""What the gate leaves for people: the terminal table, the step summary, GitHub annotations.

Each is bounded and says exactly what it left out: a gate over a
hundred thousand tests must still print a screenful, and GitHub refuses a
step summary above 1 MiB and shows only ten error annotations a step.
Node ids are not ours to choose (parametrize ids carry ``[``, ``|``,
newlines, any unicode), so each output escapes them by its own rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..base.defaults import (
    GATE_ANNOTATIONS_MAX,
    GATE_IDS_SHOWN,
    GATE_ROWS_SHOWN,
    STEP_SUMMARY_MAX_BYTES,
)
from ..base.text import markdown_code, markdown_text
from ..verdicts.gate import (
    GateResult,
    MetricChange,
    Status,
    TestComparison,
    figure_text,
    signed_figure_text,
)

__all__ = [
    "annotations",
    "printable",
    "regression_message",
    "summary_markdown",
    "text_report",
]

_SUMMARY_TITLE = "## automem gate"
_TABLE_HEAD = ("test", "metric", "baseline", "current", "delta", "allowed")


def printable(text: str) -> str:
    """``text`` on one terminal line: control characters as backslash escapes."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _rule_text(change: MetricChange) -> str:
    return f"allowed {signed_figure_text(change.metric, change.allowed)}"


def regression_message(comparison: TestComparison) -> str:
    """One line: each regressed metric with baseline, current, delta and the rule."""
    return "; ".join(
        f"{change.metric} {figure_text(change.metric, change.baseline)} -> "
        f"{figure_text(change.metric, change.current)} "
        f"({signed_figure_text(change.metric, change.delta)}, {_rule_text(change)})"
        for change in comparison.regressions
    )


def _cells(comparison: TestComparison) -> tuple[str, ...]:
    change = comparison.regressions[0]
    return (
        change.metric,
        figure_text(change.metric, change.baseline),
        figure_text(change.metric, change.current),
        signed_figure_text(change.metric, change.delta),
        signed_figure_text(change.metric, change.allowed),
    )


def _counts_line(result: GateResult) -> str:
    return ", ".join(f"{result.count(status)} {status.label}" for status in Status)


def _verdict_line(result: GateResult) -> str:
    regressed = result.count(Status.REGRESSED)
    if regressed:
        return f"automem gate: FAIL: {regressed} of {len(result.comparisons)} tests regressed"
    return f"automem gate: pass: no regression among {len(result.comparisons)} tests"


def _more(left_out: int, what: str) -> list[str]:
    return [f"… and {left_out} more {what} not shown"] if left_out > 0 else []


def _id_lines(result: GateResult, status: Status) -> list[str]:
    nodeids = [c.nodeid for c in result.of_status(status)]
    if not nodeids:
        return []
    lines = [f"{status.label} ({len(nodeids)}):"]
    lines.extend(f"  {printable(nodeid)}" for nodeid in nodeids[:GATE_IDS_SHOWN])
    lines.extend("  " + line for line in _more(len(nodeids) - GATE_IDS_SHOWN, "node ids"))
    return lines


def text_report(result: GateResult, *, rows: int = GATE_ROWS_SHOWN) -> str:
    """The terminal report: the verdict, the regressed tests worst first as a
    table of at most ``rows`` rows, the new and removed ids, then every count."""
    lines = [_verdict_line(result)]
    lines.extend(f"automem gate: WARNING: {d.describe()}" for d in result.context_differences)
    regressed = list(result.of_status(Status.REGRESSED))
    if regressed:
        table = [_TABLE_HEAD] + [(printable(c.nodeid), *_cells(c)) for c in regressed[:rows]]
        widths = [max(len(row[i]) for row in table) for i in range(len(_TABLE_HEAD))]
        lines.append("")
        lines.extend(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in table
        )
        lines.extend(_more(len(regressed) - rows, "regressed tests"))
    for status in (Status.NEW, Status.REMOVED):
        id_lines = _id_lines(result, status)
        if id_lines:
            lines.append("")
            lines.extend(id_lines)
    lines.extend(["", _counts_line(result)])
    return "\n".join(lines)


def _markdown_row(comparison: TestComparison) -> str:
    cells = (f"`{markdown_code(comparison.nodeid, in_table=True)}`", *_cells(comparison))
    return "| " + " | ".join(cells) + " |\n"


def summary_markdown(result: GateResult, *, max_bytes: int = STEP_SUMMARY_MAX_BYTES) -> str:
    """The gate as Markdown for a CI step summary, under ``max_bytes`` in UTF-8.

    The head (verdict, counts, context warnings) always fits; regressed rows
    follow worst first until the next would pass the cap, then a line says
    how many were left out.
    """
    head = [
        _SUMMARY_TITLE,
        "",
        f"**{markdown_text(_verdict_line(result).removeprefix('automem gate: '))}**",
        "",
        markdown_text(_counts_line(result)),
        "",
    ]
    head.extend(f"- warning: {markdown_text(d.describe())}" for d in result.context_differences)
    text = "\n".join(head) + "\n"
    regressed = list(result.of_status(Status.REGRESSED))
    if not regressed:
        return text
    table_head = "| " + " | ".join(_TABLE_HEAD) + " |\n|" + "---|" * len(_TABLE_HEAD) + "\n"
    text += "\n" + table_head
    # Room for the closing "left out" line, whatever its number.
    budget = max_bytes - len(text.encode("utf-8")) - 100
    shown: list[str] = []
    for comparison in regressed:
        row = _markdown_row(comparison)
        budget -= len(row.encode("utf-8"))
        if budget < 0:
            break
        shown.append(row)
    text += "".join(shown)
    left_out = len(regressed) - len(shown)
    if left_out:
        text += f"\n{left_out} more regressed tests not shown (the summary is capped at 1 MiB).\n"
    return text


def _escape_data(text: str) -> str:
    """GitHub's workflow-command escaping of a message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """GitHub's escaping of a property value (``title=``): also ``:`` and ``,``."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(result: GateResult, *, limit: int = GATE_ANNOTATIONS_MAX) -> Iterator[str]:
    """``::error`` workflow commands, one per regressed test, worst first, at most ``limit``."""
    regressed = list(result.of_status(Status.REGRESSED))
    for comparison in regressed[:limit]:
        title = _escape_property(f"memory regression: {comparison.nodeid}")
        message = _escape_data(f"{comparison.nodeid}: {regression_message(comparison)}")
        yield f"::error title={title}::{message}"
