"""The verdicts the commands report: ``automem monitor``'s limits and an investigation's checks.

Figures are given directly, so every boundary (at a limit, one byte over it,
a peak that was never measured) is checked without running a command.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_automem.investigator.findings import Finding, Investigation, Severity
from pytest_automem.measure.pressure import PressureLevel
from pytest_automem.outputs.junit import write_check_report
from pytest_automem.verdicts.findings import judge_investigation
from pytest_automem.verdicts.limits import CommandLimits, judge_limits

MB = 1 << 20
NOT_CHECKED = "--max-peak not checked: the peak RSS was not measured"


# -- automem monitor's limits ----------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "at_most", "findings", "notes"),
    [
        pytest.param(8 * MB, None, (), (), id="at-the-limit"),
        pytest.param(8 * MB + 1, None, ("peak RSS 8.0 MB > --max-peak 8.0 MB",), (), id="over"),
        pytest.param(None, None, (), (NOT_CHECKED,), id="unmeasured"),
        pytest.param(None, 8 * MB, (), (), id="unmeasured-bounded-within"),
        pytest.param(None, 9 * MB, (), (NOT_CHECKED,), id="unmeasured-bounded-above"),
    ],
)
def test_max_peak(
    peak: int | None, at_most: int | None, findings: tuple[str, ...], notes: tuple[str, ...]
) -> None:
    verdict = judge_limits(
        CommandLimits(max_peak_bytes=8 * MB),
        peak_rss_bytes=peak,
        peak_rss_at_most_bytes=at_most,
        max_pressure=PressureLevel.LOW,
    )
    assert (verdict.findings, verdict.notes) == (findings, notes)
    assert verdict.crossed == bool(findings)


@pytest.mark.parametrize(
    ("reached", "crossed"),
    [(PressureLevel.MEDIUM, False), (PressureLevel.HIGH, True), (PressureLevel.CRITICAL, True)],
)
def test_fail_on_pressure_fails_once_the_level_is_reached(
    reached: PressureLevel, crossed: bool
) -> None:
    verdict = judge_limits(
        CommandLimits(fail_on_pressure=PressureLevel.HIGH),
        peak_rss_bytes=None,
        peak_rss_at_most_bytes=None,
        max_pressure=reached,
    )
    assert verdict.crossed == crossed
    assert verdict.notes == ()  # no --max-peak: nothing left unchecked
    if crossed:
        assert verdict.findings == (f"pressure reached {reached.name} (--fail-on-pressure HIGH)",)


def test_no_limits_never_cross() -> None:
    verdict = judge_limits(
        CommandLimits(),
        peak_rss_bytes=10**12,
        peak_rss_at_most_bytes=None,
        max_pressure=PressureLevel.CRITICAL,
    )
    assert not verdict.crossed and verdict.notes == ()


# -- an investigation's checks -----------------------------------------------------


def finding(check: str, summary: str, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(check=check, severity=severity, summary=summary, details=("line 3",))


def test_a_check_with_findings_fails_and_says_so_in_one_line() -> None:
    investigation = Investigation(
        findings=(
            finding("large-arrays", "big\narray", Severity.CRITICAL),
            finding("large-arrays", "smaller array"),
        ),
        figures={},
    )
    verdict = judge_investigation(investigation, ["duplicate-ids", "large-arrays"])
    assert not verdict.passed
    clean, arrays = verdict.checks
    assert (clean.check, clean.passed) == ("duplicate-ids", True)
    assert (arrays.check, arrays.passed) == ("large-arrays", False)
    assert arrays.message == "big array (+1 more)"
    assert arrays.severity_name == "CRITICAL"


def test_a_finding_of_a_check_not_named_still_fails_the_investigation() -> None:
    investigation = Investigation(findings=(finding("snapshots", "stale"),), figures={})
    verdict = judge_investigation(investigation, ["duplicate-ids"])
    assert [c.check for c in verdict.checks] == ["duplicate-ids", "snapshots"]
    assert not verdict.passed


def test_no_findings_pass() -> None:
    verdict = judge_investigation(Investigation(findings=(), figures={}), ["duplicate-ids"])
    assert verdict.passed


def test_the_junit_file_fails_exactly_the_checks_the_verdict_fails(tmp_path: Path) -> None:
    investigation = Investigation(
        findings=(finding("large-arrays", "big array"),), figures={"objects": 3}
    )
    verdict = judge_investigation(investigation, ["duplicate-ids", "large-arrays"])
    out = tmp_path / "junit.xml"
    write_check_report(
        out, verdict.checks, suite="s", classname="c", properties=investigation.figures
    )
    root = ET.parse(out).getroot()
    assert root.get("failures") == "1"
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["duplicate-ids"].find("failure") is None
    failure = cases["large-arrays"].find("failure")
    assert failure is not None
    assert (failure.get("message"), failure.get("type")) == ("big array", "WARNING")
    assert failure.text == "[WARNING] big array\n  line 3\n"
    [prop] = root.iter("property")
    assert (prop.get("name"), prop.get("value")) == ("objects", "3")
