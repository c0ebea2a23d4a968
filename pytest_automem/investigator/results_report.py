"""A results file (``--automem-json``) as an investigation: what each test recorded.

The run already judged and diagnosed every test; this reads it back for
someone who has only the file (a CI artifact): the tests that failed on
memory first, each with its message and the findings recorded for it, then
the tests whose findings did not fail them, and as figures the tests with
the highest peaks and the most growth.

Every finding is filed under its test's node id (``Finding.check``), so a
JUnit file written from the investigation has one test case per test of the
results file.  The document is taken as :func:`~pytest_automem.results.results_file.parse_results`
returned it (a version this code reads, an object per test); what a test
record holds beyond that is checked here, and a value the report cannot use
raises :class:`ResultsContentError` naming the test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base.defaults import WORST_TESTS_SHOWN
from ..base.json_files import json_kind
from ..base.units import format_size
from .findings import Finding, Investigation, Severity

__all__ = ["ResultsContentError", "investigate_results"]

_VERDICTS = ("pass", "fail")
_PHASES = ("setup", "call", "teardown")


class ResultsContentError(ValueError):
    """A test record with a value the report cannot read; ``nodeid`` names the test."""

    def __init__(self, nodeid: str, reason: str) -> None:
        super().__init__(f"test {json.dumps(nodeid)}: {reason}")
        self.nodeid = nodeid


def _optional(record: Mapping[str, Any], nodeid: str, key: str, kind: type) -> Any:
    """``record[key]`` when it is a ``kind`` (bool is not an int), None when absent or null."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {int: "an integer", str: "a string", list: "an array", dict: "an object"}
        raise ResultsContentError(
            nodeid, f"{key} is a JSON {json_kind(value)}, expected {expected[kind]}"
        )
    return value


def _recorded_finding(nodeid: str, index: int, entry: object) -> Finding:
    """One finding of the test's ``findings``, filed under the test."""
    where = f"findings[{index}]"
    if not isinstance(entry, dict):
        raise ResultsContentError(nodeid, f"{where} is a JSON {json_kind(entry)}, not an object")
    severity = entry.get("severity")
    if severity not in Severity.__members__:
        names = ", ".join(Severity.__members__)
        raise ResultsContentError(
            nodeid, f"{where}.severity is {json.dumps(severity)}, expected one of {names}"
        )
    check = _optional(entry, nodeid, "check", str) or "?"
    details = _optional(entry, nodeid, "details", list) or []
    return Finding(
        check=nodeid,
        severity=Severity[severity],
        summary=f"{nodeid}: {_optional(entry, nodeid, 'summary', str) or check}",
        evidence={
            "test": nodeid,
            "check": check,
            "evidence": _optional(entry, nodeid, "evidence", dict) or {},
        },
        recommendation=_optional(entry, nodeid, "recommendation", str) or "",
        details=tuple(str(line) for line in details),
    )


def _failure(nodeid: str, record: Mapping[str, Any]) -> Finding:
    """The memory failure of a test whose verdict is "fail": its message, each
    violation; CRITICAL, or INFO when the test expected it (xfail)."""
    violations = [str(v) for v in _optional(record, nodeid, "violations", list) or []]
    message = _optional(record, nodeid, "message", str) or "; ".join(violations) or "no message"
    # An xfailed memory failure is a leak caught as the test expected.
    expected = bool(_optional(record, nodeid, "expected_failure", bool))
    how = "failed on memory, as expected (xfail)" if expected else "failed on memory"
    return Finding(
        check=nodeid,
        severity=Severity.INFO if expected else Severity.CRITICAL,
        summary=f"{nodeid} {how}: {' '.join(message.split())}",
        evidence={
            "test": nodeid,
            "verdict": "fail",
            "expected_failure": expected,
            "violations": violations,
            "peak_bytes": record.get("peak_bytes"),
            "growth_bytes": record.get("growth_bytes"),
            "budget": record.get("budget"),
        },
        details=tuple(violations) if len(violations) > 1 else (),
    )


def _test_findings(nodeid: str, record: Mapping[str, Any]) -> list[Finding]:
    """The test's failure (if it failed), then its recorded findings, most severe first."""
    verdict = record.get("verdict")
    if verdict is not None and verdict not in _VERDICTS:
        raise ResultsContentError(
            nodeid, f'verdict is {json.dumps(verdict)}, expected "pass" or "fail"'
        )
    entries = _optional(record, nodeid, "findings", list) or []
    recorded = [_recorded_finding(nodeid, i, entry) for i, entry in enumerate(entries)]
    recorded.sort(key=lambda finding: -finding.severity)
    return [_failure(nodeid, record), *recorded] if verdict == "fail" else recorded


def _peak(nodeid: str, record: Mapping[str, Any]) -> tuple[int, str] | None:
    """The test's highest peak of its phases (a fixture's setup counts), and the phase."""
    phases = _optional(record, nodeid, "phases", dict) or {}
    peaks = []
    for phase in _PHASES:
        figures = phases.get(phase) if phase != "call" else record
        if isinstance(figures, dict):
            peak = _optional(figures, nodeid, "peak_bytes", int)
            if peak is not None:
                peaks.append((peak, phase))
    return max(peaks, default=None)


def _ranked(figures: list[tuple[int, str, str]], title: str) -> dict[str, str]:
    """The highest ``figures`` (``(bytes, nodeid, phase)``) as numbered figures."""
    figures.sort(key=lambda entry: (-entry[0], entry[1]))
    return {
        f"{title} #{rank}": f"{format_size(size)}  {nodeid}"
        + (f" ({phase})" if phase != "call" else "")
        for rank, (size, nodeid, phase) in enumerate(figures[:WORST_TESTS_SHOWN], start=1)
    }


def investigate_results(document: Mapping[str, Any], source: str | Path) -> Investigation:
    """The findings a results file records, failed tests first, and its worst tests."""
    tests: Mapping[str, Mapping[str, Any]] = document["tests"]
    failed: list[Finding] = []
    others: list[Sequence[Finding]] = []
    peaks: list[tuple[int, str, str]] = []
    growths: list[tuple[int, str, str]] = []
    for nodeid, record in tests.items():
        findings = _test_findings(nodeid, record)
        if record.get("verdict") == "fail":
            failed.extend(findings)
        elif findings:
            others.append(findings)
        peak = _peak(nodeid, record)
        if peak is not None:
            peaks.append((peak[0], nodeid, peak[1]))
        growth = _optional(record, nodeid, "growth_bytes", int)
        if growth is not None and growth > 0:
            growths.append((growth, nodeid, "call"))
    others.sort(key=lambda findings: -findings[0].severity)
    path = Path(source)
    figures: dict[str, Any] = {
        "file": str(path),
        "tests": len(tests),
        "memory failures": sum(1 for record in tests.values() if record.get("verdict") == "fail"),
        "tests with findings only": len(others),
    }
    session = document.get("session")
    if isinstance(session, dict) and isinstance(session.get("written_at"), str):
        figures["written at"] = session["written_at"]
    figures.update(_ranked(peaks, "highest peak"))
    figures.update(_ranked(growths, "most growth"))
    findings = (*failed, *(finding for group in others for finding in group))
    return Investigation(
        findings, figures, title=f"automem investigate: {path.name} (results file)"
    )
