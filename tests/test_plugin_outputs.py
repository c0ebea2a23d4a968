"""The plugin's report files end to end: one file per failed test, whatever its id.

A real inner session in a subprocess (as in ``test_plugin.py``): the report
files and the JUnit attachments that point at them are written at its end.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import INNER_ALLOC

from pytest_automem.base.atomic import atomic_writer
from pytest_automem.outputs.session_outputs import report_file_name

pytest_plugins = ["pytester"]

LONG = "x" * 200


def test_colliding_node_ids_get_a_report_file_and_an_attachment_each(
    pytester: pytest.Pytester,
) -> None:
    # These ids sanitise to one name ("a/b", "a?b") or share their first 150
    # characters (the two long ones): they once shared one report file.
    pytester.makepyfile(alloc=INNER_ALLOC)
    pytester.makepyfile(
        test_c=f"""
        import pytest
        from alloc import MB, spike

        CASES = ["a/b", "a?b", "{LONG}1", "{LONG}2"]

        # Explicit ids: pytest >= 9.2 replaces long generated ids with "case2".
        @pytest.mark.parametrize("case", CASES, ids=CASES)
        @pytest.mark.memory_budget(peak="8MB")
        def test_c(case):
            spike(40 * MB)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly",
        "--junitxml=junit.xml", "--automem-report-dir=reports",
        timeout=120,
    )  # fmt: skip
    result.assert_outcomes(failed=4)
    nodeids = {f"test_c.py::test_c[{case}]" for case in ("a/b", "a?b", f"{LONG}1", f"{LONG}2")}

    reports = sorted((pytester.path / "reports").iterdir())
    assert len(reports) == 4
    assert {path.read_text().splitlines()[0] for path in reports} == nodeids

    attachments = {}
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        text = case.findtext("system-out") or ""
        assert text.count("[[ATTACHMENT|") == 1, text
        attachments[f"test_c.py::{case.get('name')}"] = Path(
            text.split("[[ATTACHMENT|", 1)[1].split("]]", 1)[0]
        )
    assert set(attachments) == nodeids
    assert len(set(attachments.values())) == 4
    for nodeid, path in attachments.items():
        assert path.read_text().splitlines()[0] == nodeid


def _memory_failure_and_a_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(alloc=INNER_ALLOC)
    pytester.makepyfile(
        test_s="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="8MB")
        def test_over():
            spike(40 * MB)

        @pytest.mark.memory_budget(peak="1GB")
        def test_fine():
            pass
        """
    )


def test_step_summary_at_a_link_is_a_warning_and_every_other_output_is_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _memory_failure_and_a_pass(pytester)
    target = pytester.path / "elsewhere.md"
    target.write_text("theirs\n")
    link = pytester.path / "summary.md"
    link.symlink_to(target)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(link))

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark", "-W", "error",
        "--junitxml=junit.xml", "--automem-report-dir=reports", "--automem-json=results.json",
        timeout=120,
    )  # fmt: skip

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    warnings = [line for line in output.splitlines() if "GITHUB_STEP_SUMMARY" in line]
    assert len(warnings) == 1, output
    assert str(link) in warnings[0] and "symbolic link" in warnings[0]
    assert target.read_text() == "theirs\n" and link.is_symlink()
    results = json.loads((pytester.path / "results.json").read_text())
    assert set(results["tests"]) == {"test_s.py::test_over", "test_s.py::test_fine"}
    assert len(list((pytester.path / "reports").iterdir())) == 1
    assert "[[ATTACHMENT|" in (pytester.path / "junit.xml").read_text()


def test_stale_temps_of_our_outputs_are_removed_and_nothing_else(
    pytester: pytest.Pytester,
) -> None:
    # A pytest killed with -9 while writing leaves the writer's temp beside
    # each output; the next run removes those, and only those.
    _memory_failure_and_a_pass(pytester)
    report = report_file_name("test_s.py::test_over")
    reports = pytester.mkdir("reports")
    stale = [
        pytester.path / ".results.json.k1ll3d_9.tmp",
        pytester.path / ".junit.xml.abcdefgh.tmp",
        reports / f".{report}.zzzzzzzz.tmp",
        reports / f".{report_file_name('test_s.py::test_gone')}.a1b2c3d4.tmp",
    ]
    foreign = [
        pytester.path / ".results.json.abc.tmp",  # not mkstemp's eight characters
        pytester.path / ".results.json.ABCDEFGH.tmp",
        pytester.path / "results.json.abcdefgh.tmp",
        pytester.path / ".other.json.abcdefgh.tmp",  # another file's temp
        reports / ".notes.txt.abcdefgh.tmp",  # not a report file's name
    ]
    for path in stale + foreign:
        path.write_text("half a file")

    with atomic_writer(pytester.path / "results.json") as live:  # a live writer, mid-write
        live.write('{"written": "by the live writer"}\n')
        planted = {*stale, *foreign}
        live_temps = [p for p in pytester.path.iterdir() if p.suffix == ".tmp" and p not in planted]
        assert len(live_temps) == 1
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:randomly",
            "--junitxml=junit.xml", "--automem-report-dir=reports",
            "--automem-json=results.json",
            timeout=120,
        )  # fmt: skip
        result.assert_outcomes(failed=1, passed=1)
        assert set(json.loads((pytester.path / "results.json").read_text())["tests"]) == {
            "test_s.py::test_over",
            "test_s.py::test_fine",
        }
        assert all(path.exists() for path in live_temps)

    assert [path.name for path in stale if path.exists()] == []
    assert [path.name for path in foreign if not path.exists()] == []
    assert json.loads((pytester.path / "results.json").read_text()) == {
        "written": "by the live writer"
    }
    assert (reports / report).exists()
