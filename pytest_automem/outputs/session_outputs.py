"""What a session leaves behind for people: terminal lines, report files, JUnit.

The session (:mod:`pytest_automem.pytest_plugin.session`) collects one plain record per
monitored test; these functions turn the records into the outputs CI users
read, and are kept apart so each can be tested without a pytest session.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.defaults import GROWTH_NOISE_BYTES
from ..base.text import markdown_code
from ..base.units import format_count, format_size
from ..verdicts.budget import failure_message
from .junit import JunitAttachment

if TYPE_CHECKING:
    from ..results.records import RecordStore

__all__ = [
    "append_step_summary",
    "is_report_file_name",
    "junit_attachment",
    "report_file_name",
    "step_summary_markdown",
    "summary_lines",
    "write_report_files",
]

_PEAKS_TABLE_HEAD = [
    "### Highest peaks",
    "",
    "| test | peak | growth | pressure |",
    "|---|---|---|---|",
]
#: The phases whose peaks the terminal shows beside the call's.
_PHASES = ("setup", "teardown")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: Names Windows keeps for devices, whatever extension follows their first dot.
_WINDOWS_DEVICE = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])\.")
_READABLE_CHARS = 80
_HASH_CHARS = 16
#: What :func:`report_file_name` gives: a readable part (one more
#: character for a device name's ``_``), a dash, the hash, ``.txt``.
_REPORT_FILE_NAME = re.compile(
    rf"[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{_READABLE_CHARS}}}-[0-9a-f]{{{_HASH_CHARS}}}\.txt"
)


def junit_attachment(
    nodeid: str, record: dict[str, Any], report_file: Path | None
) -> JunitAttachment:
    """What the JUnit file gets for one failed test: the report, and a one-line
    message when the failure was the memory budget's own."""
    return JunitAttachment(
        nodeid=nodeid,
        report_text=record["report"],
        failure_message=failure_message(record["message"])
        if record.get("failed_on_memory")
        else None,
        attachment_path=str(report_file.resolve()) if report_file else None,
    )


def summary_lines(records: RecordStore, *, verbosity: int) -> list[str]:
    """The terminal summary: memory failures always, then the largest tests
    (with -q, one line counting what was monitored instead).

    A memory failure of a test marked xfail is listed as expected, as pytest
    counts it.  The peaks list ranks a test by the highest of its setup,
    call and teardown, and names the phases beside the call's figure.
    """
    failures = records.failures
    failed = sorted(failures)
    lines = [_failure_line(nodeid, failures[nodeid]) for nodeid in failed]
    if verbosity < 0:
        expected = sum(1 for nodeid in failed if failures[nodeid].get("expected_failure"))
        tests = format_count(len(records), "test")
        failing = format_count(len(failed) - expected, "memory failure")
        also = f", {expected} expected (xfail)" if expected else ""
        return [*lines, f"{tests} monitored, {failing}{also}"]
    lines.append(f"highest peak ({len(records)} monitored tests):")
    lines.extend(
        f"  {format_size(_highest_peak(summary)):>10}  {summary['max_pressure']:<8}  "
        f"{nodeid}{_phases_beside(summary)}"
        for nodeid, summary in records.highest("peak_bytes")
    )
    lines.append(f"highest growth ({len(records)} monitored tests):")
    lines.extend(
        f"  {format_size(summary['growth_bytes']):>10}  {summary['max_pressure']:<8}  {nodeid}"
        for nodeid, summary in records.highest("growth_bytes")
    )
    return lines


def _failure_line(nodeid: str, record: dict[str, Any]) -> str:
    if record.get("expected_failure"):
        return f"MEMORY XFAIL {nodeid}: {record['message']} (expected)"
    return f"MEMORY FAIL {nodeid}: {record['message']}"


def _reason(record: dict[str, Any]) -> str:
    """A failure's one line, said to be expected where the test is marked xfail."""
    message = record["message"] or ""
    return f"{message} (expected: xfail)" if record.get("expected_failure") else message


def _highest_peak(summary: dict[str, Any]) -> int:
    return max(summary["peak_bytes"], *(summary.get(f"{p}_peak_bytes", 0) for p in _PHASES))


def _phases_beside(summary: dict[str, Any]) -> str:
    """``  (setup 40.0 MB in fixture big, call 0 B, teardown 0 B)`` when a phase
    besides the call peaked above the noise; else nothing (the call is the figure)."""
    setup, teardown = (summary.get(f"{p}_peak_bytes") for p in _PHASES)
    if all(peak is None or peak < GROWTH_NOISE_BYTES for peak in (setup, teardown)):
        return ""
    parts = []
    if setup is not None:
        fixture = summary.get("setup_fixture")
        parts.append(f"setup {format_size(setup)}" + (f" in fixture {fixture}" if fixture else ""))
    parts.append(f"call {format_size(summary['peak_bytes'])}")
    if teardown is not None:
        parts.append(f"teardown {format_size(teardown)}")
    return f"  ({', '.join(parts)})"


def report_file_name(nodeid: str) -> str:
    """A file name for a test's report, unique per node id and the same in every run.

    The node id cut down to a readable prefix would not do: ``test_c[a/b]``
    and ``test_c[a?b]`` both sanitise to ``test_c_a_b``, and long ids share
    their first characters, so one report overwrote another and two JUnit
    attachments named one file.  A hash of the whole id (SHA-256, 16 hex
    digits) tells them apart, also where case does not (macOS, Windows).
    The prefix keeps letters, digits, ``_``, ``.`` and ``-`` only, never
    starts with a dot or names a Windows device, and the whole name is at
    most 101 characters.
    """
    digest = hashlib.sha256(nodeid.encode("utf-8", "surrogatepass")).hexdigest()
    readable = _SAFE_NAME.sub("_", nodeid).strip("_.-")[:_READABLE_CHARS].rstrip("_.-")
    if _WINDOWS_DEVICE.match(readable):
        readable = f"_{readable}"
    return f"{readable or 'test'}-{digest[:_HASH_CHARS]}.txt"


def is_report_file_name(name: str) -> bool:
    """Whether ``name`` is one :func:`report_file_name` could give."""
    return _REPORT_FILE_NAME.fullmatch(name) is not None


def write_report_files(folder: Path, records: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Write each failed test's report to ``folder``; return nodeid -> path.

    Then remove the temps that killed writes of report files left in
    ``folder`` (any test's, not only this run's: a test that no longer fails
    would leave its temp forever), recognised by the report files' exact
    naming and only once their writer is dead.
    """
    from ..base.atomic import atomic_write_text, remove_stale_temps_in

    written = {}
    for nodeid, record in records.items():
        if record.get("report"):
            path = folder / report_file_name(nodeid)
            message = failure_message(record["message"])
            atomic_write_text(path, f"{nodeid}\n{message}\n\n{record['report']}\n")
            written[nodeid] = path
    remove_stale_temps_in(folder, is_report_file_name)
    return written


def step_summary_markdown(records: RecordStore) -> str:
    """A CI step summary (GitHub's ``$GITHUB_STEP_SUMMARY``): failures, then the largest.

    Each failure's full report sits in a collapsed ``<details>`` block, so the
    summary stays short however many findings there are.
    """
    failures = records.failures
    failed = sorted(failures)
    lines = ["## pytest-automem: memory", ""]
    count = f"{len(failed)} memory failure{'s' if len(failed) != 1 else ''}"
    lines.append(f"**{count}** among {len(records)} monitored tests.")
    lines.append("")
    if failed:
        lines.extend(["| test | reason |", "|---|---|"])
        lines.extend(
            f"| `{markdown_code(n, in_table=True)}` | "
            f"{markdown_code(_reason(failures[n]), in_table=True)} |"
            for n in failed
        )
        lines.append("")
        for nodeid in failed:
            lines.extend(
                [
                    f"<details><summary>{_html(nodeid)}: report</summary>",
                    "",
                    "```",
                    (failures[nodeid].get("report") or "").replace("```", "'''"),
                    "```",
                    "</details>",
                    "",
                ]
            )
    lines.extend(_PEAKS_TABLE_HEAD)
    lines.extend(
        f"| `{markdown_code(nodeid, in_table=True)}` | {format_size(_highest_peak(summary))} | "
        f"{format_size(summary['growth_bytes'])} | {summary['max_pressure']} |"
        for nodeid, summary in records.highest("peak_bytes")
    )
    return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def append_step_summary(path: str | os.PathLike[str], markdown: str) -> None:
    """Append to the CI's summary file, as GitHub's protocol asks (it owns the file).

    A link at ``path`` is refused rather than followed (see
    :func:`~pytest_automem.base.atomic.open_for_append_nofollow`).
    """
    from ..base.atomic import open_for_append_nofollow

    fd = open_for_append_nofollow(path)
    with os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(markdown)
