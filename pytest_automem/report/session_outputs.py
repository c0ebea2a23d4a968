"""What a session leaves behind for people: terminal lines, report files, JUnit.

The session (:mod:`pytest_automem.session`) collects one plain record per
monitored test; these functions turn the records into the outputs CI users
read, and are kept apart so each can be tested without a pytest session.
"""

from __future__ import annotations

import heapq
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write_text
from ..units import format_size

if TYPE_CHECKING:
    from .junit import JunitAttachment

__all__ = ["junit_attachment", "report_file_name", "summary_lines", "write_report_files"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def junit_attachment(
    nodeid: str, record: dict[str, Any], report_file: Path | None
) -> JunitAttachment:
    """What the JUnit file gets for one failed test: the report, and a one-line
    message when the failure was the memory budget's own."""
    from .junit import JunitAttachment  # junitparser: only once there is a failure

    return JunitAttachment(
        nodeid=nodeid,
        report_text=record["report"],
        failure_message=f"memory budget exceeded: {record['message']}"
        if record.get("failed_on_memory")
        else None,
        attachment_path=str(report_file.resolve()) if report_file else None,
    )


def summary_lines(records: dict[str, dict[str, Any]], *, verbosity: int, top: int = 5) -> list[str]:
    """The terminal summary: memory failures always, the largest tests unless -q."""
    failed = sorted(nodeid for nodeid, record in records.items() if record["verdict"] == "fail")
    lines = [f"MEMORY FAIL {nodeid}: {records[nodeid]['message']}" for nodeid in failed]
    if verbosity < 0:
        return lines
    for key, label in (("peak_bytes", "peak"), ("growth_bytes", "growth")):
        ranked = heapq.nlargest(top, records.items(), key=lambda kv: kv[1][key])
        lines.append(f"highest {label} ({len(records)} monitored tests):")
        lines.extend(
            f"  {format_size(record[key]):>10}  {record['max_pressure']:<8}  {nodeid}"
            for nodeid, record in ranked
        )
    return lines


def report_file_name(nodeid: str) -> str:
    """A file name for a test's report: readable, safe, unique enough."""
    return (_SAFE_NAME.sub("_", nodeid).strip("_") or "test")[:150] + ".txt"


def write_report_files(folder: Path, records: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Write each failed test's report to ``folder``; return nodeid -> path."""
    written = {}
    for nodeid, record in records.items():
        if record.get("report"):
            path = folder / report_file_name(nodeid)
            atomic_write_text(path, f"{nodeid}\n{record['message']}\n\n{record['report']}\n")
            written[nodeid] = path
    return written
