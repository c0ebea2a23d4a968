"""End-to-end: ini ``automem_budgets`` enforces a budgets file as if each test carried the marker.

A test in the file is judged on the file's budget; a ``memory_budget``
marker on the test, however it got there, wins; a bad file stops the run
before any test, naming the ini file, the budgets file and the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import junit_cases

pytest_plugins = ["pytester"]

MB = 1 << 20

TESTS = """
import pytest

def test_big():
    block = bytearray(40 * 1024 * 1024)
    assert len(block)

def test_small():
    assert True

@pytest.mark.memory_budget(peak="200MB")
def test_marked_big():
    block = bytearray(40 * 1024 * 1024)
    assert len(block)

def test_not_in_file():
    block = bytearray(40 * 1024 * 1024)
    assert len(block)
"""

BUDGETS = {
    "tests/test_app.py::test_big": {"peak": "20MB"},
    "tests/test_app.py::test_small": {"peak": "20MB", "growth": "5MB"},
    "tests/test_app.py::test_marked_big": {"peak": "1MB"},
    "tests/test_app.py::test_renamed_long_ago": {"peak": "1MB"},
}


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
    )


def _budgets_file(pytester: pytest.Pytester, budgets: dict[str, Any]) -> None:
    folder = pytester.path / "ci"
    folder.mkdir(exist_ok=True)
    (folder / "budgets.json").write_text(
        json.dumps({"version": 1, "budgets": budgets}, indent=1), encoding="utf-8"
    )


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """Tests in tests/, the ini at the root naming ci/budgets.json relative to itself."""
    pytester.makeini("[pytest]\nautomem_budgets = ci/budgets.json\n")
    tests = pytester.mkpydir("tests")
    (tests / "test_app.py").write_text(TESTS, encoding="utf-8")
    _budgets_file(pytester, BUDGETS)
    return pytester


def test_the_file_fails_an_over_budget_test_and_passes_the_others(
    project: pytest.Pytester,
) -> None:
    result = _run(project, "--automem-json=results.json", "--junitxml=junit.xml")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*MEMORY FAIL tests/test_app.py::test_big: peak * > budget 20.0 MB*",
            "automem: 1 of 4 budgets in ini automem_budgets matched no test in this run",
        ]
    )
    tests = json.loads((project.path / "results.json").read_text())["tests"]
    assert tests["tests/test_app.py::test_big"]["verdict"] == "fail"
    assert tests["tests/test_app.py::test_big"]["budget"]["peak_bytes"] == 20 * MB
    assert tests["tests/test_app.py::test_small"]["verdict"] == "pass"
    assert tests["tests/test_app.py::test_small"]["budget"]["growth_bytes"] == 5 * MB
    # Without --automem a test neither marked nor in the file is not monitored.
    assert "tests/test_app.py::test_not_in_file" not in tests

    cases = junit_cases(project.path / "junit.xml")
    failure = cases["test_big"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("memory budget exceeded: peak")
    assert "budget 20.0 MB" in failure.get("message", "")
    assert cases["test_small"].find("failure") is None


def test_a_marker_on_the_test_wins_over_the_file(project: pytest.Pytester) -> None:
    """The file says 1MB for test_marked_big; its own marker allows 200MB."""
    result = _run(project, "--automem-json=results.json", "-k", "marked")

    result.assert_outcomes(passed=1, deselected=3)
    record = json.loads((project.path / "results.json").read_text())["tests"][
        "tests/test_app.py::test_marked_big"
    ]
    assert record["verdict"] == "pass"
    assert record["budget"]["peak_bytes"] == 200 * MB


def test_a_marker_added_after_collection_wins_over_the_file(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "test_big":
                    item.add_marker(pytest.mark.memory_budget(peak="300MB"))
        """
    )
    result = _run(project, "--automem-json=results.json", "-k", "test_big and not marked")

    result.assert_outcomes(passed=1, deselected=3)
    record = json.loads((project.path / "results.json").read_text())["tests"][
        "tests/test_app.py::test_big"
    ]
    assert record["budget"]["peak_bytes"] == 300 * MB


def test_the_file_applies_under_xdist(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = _run(project, "-n", "2", "--automem-json=results.json")

    result.assert_outcomes(passed=3, failed=1)
    tests = json.loads((project.path / "results.json").read_text())["tests"]
    assert tests["tests/test_app.py::test_big"]["verdict"] == "fail"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (None, "budgets.json: No such file or directory"),
        ('{"version": 1, "budgets": {\n "t::a": {"peak": "lots"}}}', 'budgets.json:2: test "t::a"'),
        ('{"version": 3,\n "budgets": {}}', "budgets.json:1: not a version-1 automem budgets file"),
    ],
    ids=["missing", "bad-size", "version"],
)
def test_a_bad_file_is_a_usage_error_naming_the_ini_the_file_and_the_line(
    project: pytest.Pytester, content: str | None, named: str
) -> None:
    path = project.path / "ci" / "budgets.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content, encoding="utf-8")

    result = _run(project)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    ini = Path(project.path / "tox.ini")
    [line] = [line for line in result.stderr.lines if "automem_budgets" in line]
    assert f"ini automem_budgets in {ini}" in line
    assert str(path.parent) in line and named in line
    assert "passed" not in result.stdout.str()


def test_budgets_that_matched_no_test_are_named_under_xdist_too(
    project: pytest.Pytester,
) -> None:
    """The controller collects nothing itself: the count comes from a worker."""
    pytest.importorskip("xdist")

    result = _run(project, "-n", "2", "--automem-json=results.json")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["automem: 1 of 4 budgets in ini automem_budgets matched no test in this run"]
    )
