"""``automem investigate`` on every kind of file automem writes, recognised by content.

A results file from a real ``pytest --automem-json`` run, snapshot files and
folders from ``write_snapshot``, automaton files under other names; and the
one-line errors for content of no kind and for near misses.
"""

from __future__ import annotations

import array
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import MB, assert_input_error, make_window, run_investigate
from junitparser import Failure, JUnitXml

from pytest_automem.measure.pressure import MeasurementBasis, PressureThresholds
from pytest_automem.results.results_file import build_results, write_results
from pytest_automem.snapshots.files import write_snapshot

#: Every error about content of no kind names all four kinds.
KINDS = ("automaton file", "results file", "snapshot file or folder")


automem = run_investigate


def junit_failures(path: Path) -> dict[str, list[Failure]]:
    """Each test case's failures, by name."""
    return {
        case.name: [r for r in case.result if isinstance(r, Failure)]
        for suite in JUnitXml.fromfile(str(path))
        for case in suite
    }


# --------------------------------------------------------------------------- results files

INNER_TESTS = """
    import pytest

    LEAK = []


    @pytest.mark.memory_budget(peak="8MB")
    def test_big_blob():
        blob = bytearray(60 * 1024 * 1024)
        del blob


    def keep(automaton, step):
        LEAK.append(bytearray(50_000))  # the leak


    @pytest.mark.memory_budget(leak_per_iteration="2KB")
    def test_leak(run_scenario):
        run_scenario(keep, iterations=20, warmup=2)


    @pytest.mark.memory_budget(peak="500MB")
    def test_within():
        bytearray(1024 * 1024)
"""


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results file of a real session: two memory failures and a pass."""
    folder = tmp_path_factory.mktemp("session")
    (folder / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS), encoding="utf-8")
    path = folder / "results.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
         "test_inner.py", f"--automem-json={path}"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert path.exists()
    return path


def test_results_file_reports_failed_tests_first_with_message_and_findings(
    results_file: Path,
) -> None:
    result = automem(results_file)

    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "automem investigate: results.json (results file)"
    assert "  tests: 3" in lines and "  memory failures: 2" in lines
    findings = [line for line in lines if line.startswith("- [")]
    assert findings[0].startswith("- [CRITICAL] test_inner.py::test_big_blob failed on memory: ")
    assert "peak" in findings[0] and "> budget 8.0 MB" in findings[0]
    leak = [line for line in findings if line.startswith("- [CRITICAL] test_inner.py::test_leak")]
    assert leak and "leak" in leak[0] and "> budget 2.0 KB/iteration" in leak[0]
    # The leak's attribution, recorded by the run, names the line.
    assert "test_inner.py:14" in result.stdout
    assert "test_within" not in "".join(findings)


def test_an_expected_memory_failure_is_labelled_expected(
    results_file: Path, tmp_path: Path
) -> None:
    document = json.loads(results_file.read_text(encoding="utf-8"))
    document["tests"]["test_inner.py::test_big_blob"]["expected_failure"] = True
    marked = tmp_path / "results.json"
    marked.write_text(json.dumps(document), encoding="utf-8")
    findings = [line for line in automem(marked).stdout.splitlines() if line.startswith("- [")]
    assert any(
        line.startswith("- [INFO] test_inner.py::test_big_blob failed on memory, as expected")
        for line in findings
    ), findings
    assert not any("[CRITICAL] test_inner.py::test_big_blob" in line for line in findings)


def test_results_file_names_the_worst_tests_by_peak_and_growth(results_file: Path) -> None:
    figures = json.loads(automem(results_file, "--format", "json").stdout)["figures"]

    assert figures["highest peak #1"].endswith("  test_inner.py::test_big_blob")
    assert figures["highest peak #1"].startswith(("5", "6"))  # ~60 MB
    assert figures["most growth #1"].endswith("  test_inner.py::test_leak")
    assert figures["tests"] == 3 and figures["memory failures"] == 2


def test_results_file_json_and_junit_one_case_per_test(results_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "investigate.xml"
    result = automem(results_file, "--format", "json", "--junit", out)

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    checks = [finding["check"] for finding in document["findings"]]
    assert checks[0] == "test_inner.py::test_big_blob"
    cases = junit_failures(out)
    assert set(cases) == {
        "test_inner.py::test_big_blob",
        "test_inner.py::test_leak",
        "test_inner.py::test_within",
    }
    assert cases["test_inner.py::test_within"] == []
    [failure] = cases["test_inner.py::test_big_blob"]
    assert "failed on memory" in (failure.message or "") and "\n" not in (failure.message or "")


def write_document(path: Path, tests: dict[str, dict[str, Any]]) -> Path:
    write_results(path, build_results(tests, {}))
    return path


def finding(severity: str, summary: str) -> dict[str, Any]:
    return {"check": "growth-rate", "severity": severity, "summary": summary, "details": []}


def test_a_failed_test_comes_before_a_passing_test_with_a_worse_finding(tmp_path: Path) -> None:
    path = write_document(
        tmp_path / "results.json",
        {
            "a_test.py::test_passes": {
                "verdict": "pass",
                "findings": [finding("CRITICAL", "grew at 12 MB/s")],
            },
            "b_test.py::test_fails": {
                "verdict": "fail",
                "message": "peak 9.0 MB > budget 8.0 MB",
                "findings": [finding("INFO", "grew at 2 MB/s")],
            },
            "c_test.py::test_clean": {"verdict": "pass", "findings": []},
        },
    )

    result = automem(path)

    findings = [line for line in result.stdout.splitlines() if line.startswith("- [")]
    assert findings == [
        "- [CRITICAL] b_test.py::test_fails failed on memory: peak 9.0 MB > budget 8.0 MB",
        "- [INFO] b_test.py::test_fails: grew at 2 MB/s",
        "- [CRITICAL] a_test.py::test_passes: grew at 12 MB/s",
    ]
    assert result.returncode == 1


def test_a_results_file_without_findings_exits_0(tmp_path: Path) -> None:
    path = write_document(
        tmp_path / "results.json", {"t.py::a": {"verdict": "pass", "peak_bytes": MB}}
    )
    result = automem(path)
    assert result.returncode == 0, result.stderr
    assert "highest peak #1: 1.0 MB  t.py::a" in result.stdout


def test_a_fixtures_peak_counts_among_the_highest_and_names_its_phase(tmp_path: Path) -> None:
    path = write_document(
        tmp_path / "results.json",
        {
            "t.py::test_fixture": {
                "verdict": "pass",
                "peak_bytes": 0,
                "phases": {"setup": {"peak_bytes": 40 * MB}, "call": {"peak_bytes": 0}},
            },
            "t.py::test_call": {"verdict": "pass", "peak_bytes": 3 * MB},
        },
    )
    result = automem(path)
    assert "  highest peak #1: 40.0 MB  t.py::test_fixture (setup)" in result.stdout
    assert "  highest peak #2: 3.0 MB  t.py::test_call" in result.stdout


def test_a_results_file_of_another_version_names_the_line(tmp_path: Path) -> None:
    path = write_document(tmp_path / "results.json", {"t.py::a": {"verdict": "pass"}})
    path.write_text(path.read_text().replace('"version": 1', '"version": 2'))

    assert_input_error(automem(path), f"{path}:2: not a version-1 automem results file (version 2)")


def test_a_test_record_the_report_cannot_read_names_its_line(tmp_path: Path) -> None:
    path = write_document(
        tmp_path / "results.json",
        {
            "t.py::a": {"verdict": "pass"},
            "t.py::b": {"verdict": "fail", "findings": [finding("LOUD", "x")]},
        },
    )
    line = assert_input_error(automem(path), f"{path}:6:", 'test "t.py::b"', "findings[0]")
    assert "LOUD" in line and "INFO, WARNING, CRITICAL" in line


def test_strict_results_need_the_contract_keys(tmp_path: Path, results_file: Path) -> None:
    path = write_document(tmp_path / "results.json", {"t.py::a": {"verdict": "pass"}})
    assert_input_error(automem(path, "--strict"), f"{path}:5:", 'test "t.py::a" has no peak_bytes')
    assert automem(results_file, "--strict").returncode == 1


# --------------------------------------------------------------------------- snapshots


def snapshot(folder: Path, rss_mb: list[int], label: str = "w") -> Path:
    """A snapshot file of one sample a millisecond, at thresholds 10/20/30 MB of RSS."""
    thresholds = PressureThresholds.parse("10MB,20MB,30MB")
    rss = [size * MB for size in rss_mb]
    window = make_window(
        basis=MeasurementBasis.ABSOLUTE,
        thresholds=thresholds,
        peak_rss_bytes=max(rss),
        max_pressure=max(thresholds.classify(size) for size in rss),
        sample_times_ns=array.array("q", [i * 1_000_000 for i in range(len(rss))]),
        sample_rss_bytes=array.array("q", rss),
        samples=len(rss),
    )
    folder.mkdir(exist_ok=True)
    return write_snapshot(window, folder, label=label, keep=None)


def test_a_snapshot_file_says_how_high_and_at_which_pressure(tmp_path: Path) -> None:
    path = snapshot(tmp_path / "snaps", [5, 12, 35, 22, 8])

    result = automem(path)

    assert result.returncode == 1, result.stderr
    assert f"automem investigate: {path.name} (snapshot file)" in result.stdout
    assert "  highest sample: 35.0 MB RSS at 2.0 ms" in result.stdout
    assert "  max pressure: CRITICAL" in result.stdout
    assert f"- [CRITICAL] {path.name} reached CRITICAL pressure, peak RSS 35.0 MB" in result.stdout


def test_a_calm_snapshot_file_exits_0(tmp_path: Path) -> None:
    result = automem(snapshot(tmp_path / "snaps", [5, 6, 7]))
    assert result.returncode == 0, result.stderr
    assert "  max pressure: LOW" in result.stdout


def test_a_snapshot_folder_on_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    calm = snapshot(folder, [5, 6], label="calm")
    high = snapshot(folder, [5, 25], label="high")
    out = tmp_path / "junit.xml"

    result = automem(folder, "--junit", out)

    assert result.returncode == 1, result.stderr
    assert "automem investigate: snaps (snapshot folder)" in result.stdout
    assert "  snapshot files: 2 (" in result.stdout
    assert f"1 of 2 windows (worst: {high.name}) reached HIGH pressure" in result.stdout
    assert calm.name not in result.stdout.split("- [")[1]
    cases = junit_failures(out)
    assert set(cases) == {"snapshots", "snapshot-pressure"}
    assert cases["snapshots"] == [] and len(cases["snapshot-pressure"]) == 1


def test_a_folder_without_snapshots_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert_input_error(automem(tmp_path), str(tmp_path), "no snapshot files")


def test_a_damaged_snapshot_names_file_and_line(tmp_path: Path) -> None:
    path = snapshot(tmp_path / "snaps", [5, 6, 7])
    lines = path.read_text().splitlines()
    lines[2] = '{"t_ms": 1.0, "rss_bytes": "many"}'
    path.write_text("\n".join(lines) + "\n")
    assert_input_error(automem(path), f"{path}:3: bad sample")
    assert_input_error(automem(path.parent), f"{path}:3: bad sample")


# --------------------------------------------------------------------------- by content


def test_kinds_are_recognised_by_content_not_by_name(tmp_path: Path) -> None:
    automaton = tmp_path / "results.json"
    automaton.write_text('{"id": "a"}\n{"id": "a"}\n')
    results = write_document(tmp_path / "automaton.jsonl", {"t.py::a": {"verdict": "pass"}})
    snap = snapshot(tmp_path / "snaps", [5, 6, 7])
    renamed = snap.rename(tmp_path / "data.txt")

    assert "duplicate" in automem(automaton).stdout
    assert "(results file)" in automem(results).stdout
    assert "(snapshot file)" in automem(renamed).stdout


@pytest.mark.parametrize(
    ("content", "line", "why"),
    [
        (b"[1, 2]\n", 1, "a JSON array"),
        (b'\n\n{"name": "x"}\n', 3, 'a JSON object with no "id", "version" or "kind"'),
        (b"hello\n", 1, "invalid JSON"),
        (b"\xff\xfe\x00\x01\n", 1, "invalid UTF-8"),
        (b'"just a string"\n', 1, "a JSON string"),
    ],
    ids=["array", "object-of-no-kind", "text", "binary", "string"],
)
def test_content_of_no_kind_is_one_line_naming_file_line_and_kinds(
    tmp_path: Path, content: bytes, line: int, why: str
) -> None:
    path = tmp_path / "mystery.json"
    path.write_bytes(content)
    message = assert_input_error(automem(path), f"{path}:{line}: {why}", *KINDS)
    assert re.match(r"^automem investigate: error: ", message)


def test_a_broken_first_line_of_json_lines_is_not_taken_for_a_results_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "automaton.jsonl"
    path.write_text('{"id": "a", oops}\n{"id": "b"}\n')
    message = assert_input_error(automem(path), f"{path}:1: invalid JSON", *KINDS)
    assert "not a results file" not in message


def test_a_results_file_indented_by_another_tool_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pretty.json"
    document = build_results({"t.py::a": {"verdict": "pass", "peak_bytes": MB}}, {})
    path.write_text(json.dumps(document, indent=2))
    result = automem(path)
    assert result.returncode == 0, result.stderr
    assert "(results file)" in result.stdout


def test_a_truncated_results_file_names_the_line(tmp_path: Path) -> None:
    path = write_document(tmp_path / "results.json", {"t.py::a": {"verdict": "pass"}})
    text = path.read_text()
    path.write_text(text[: text.index('"tests"') + 20])
    assert_input_error(automem(path), f"{path}:", "not a results file")


@pytest.mark.parametrize("kind", ["results", "snapshot-file", "snapshot-folder"])
def test_snapshots_option_applies_to_an_automaton_file_only(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "snaps"
    snap = snapshot(folder, [5])
    path = {
        "results": write_document(tmp_path / "r.json", {"t.py::a": {"verdict": "pass"}}),
        "snapshot-file": snap,
        "snapshot-folder": folder,
    }[kind]
    assert_input_error(automem(path, "--snapshots", folder), "--snapshots", "automaton file")


def test_strict_does_not_apply_to_snapshots(tmp_path: Path) -> None:
    path = snapshot(tmp_path / "snaps", [5])
    assert_input_error(automem(path, "--strict"), "--strict", "snapshot file")
    assert_input_error(automem(path.parent, "--strict"), "--strict", "snapshot folder")
