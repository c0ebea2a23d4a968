"""End-to-end: ``--automem-baseline`` fails, in the same run, the tests whose memory regressed.

A suite is run, its results made the baseline with ``automem baseline
update``, then one test is changed to keep 20 MB more: exactly that test
fails, with both figures in its message, in the terminal, the JUnit file
and the results file; the others pass, serially and under xdist.  A bad
baseline or a bad tolerance stops the run before any test, naming the
option and the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from helpers import junit_cases

pytest_plugins = ["pytester"]

MB = 1 << 20

TESTS = """
import pytest

KEPT = []
KEEP_MB = {keep_mb}

def _filled(size):
    return bytes(range(256)) * (size // 256)

def test_keeper():
    KEPT.append(_filled(KEEP_MB * 1024 * 1024))

def test_steady():
    block = _filled(8 * 1024 * 1024)
    assert len(block)

@pytest.mark.parametrize("n", [1, 2])
def test_small(n):
    assert n
"""
KEEPER = "tests/test_app.py::test_keeper"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
    )


def _write_tests(pytester: pytest.Pytester, keep_mb: int) -> None:
    (pytester.path / "tests" / "test_app.py").write_text(
        TESTS.format(keep_mb=keep_mb), encoding="utf-8"
    )


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite measured once and made the baseline, then its keeper keeping 20 MB more."""
    pytester.makeini("[pytest]\n")
    pytester.mkpydir("tests")
    _write_tests(pytester, keep_mb=2)
    _run(pytester, "--automem", "--automem-json=run1.json").assert_outcomes(passed=4)
    made = subprocess.run(
        [sys.executable, "-m", "pytest_automem", "baseline", "update", "run1.json",
         "--baseline", "baseline.json"],
        cwd=pytester.path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    _write_tests(pytester, keep_mb=22)
    return pytester


def _tests(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    tests: dict[str, Any] = json.loads((pytester.path / name).read_text())["tests"]
    return tests


def test_exactly_the_test_that_keeps_more_fails_with_both_figures(
    project: pytest.Pytester,
) -> None:
    result = _run(
        project, "--automem-baseline=baseline.json", "--automem-json=run2.json",
        "--junitxml=junit.xml",
    )  # fmt: skip

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "memory regression: * > baseline * (+*, allowed +*)*",
            "MEMORY FAIL tests/test_app.py::test_keeper: memory regression: *",
        ]
    )
    baseline = _tests(project, "baseline.json")[KEEPER]
    record = _tests(project, "run2.json")[KEEPER]
    assert record["verdict"] == "fail"
    assert record["failed_on_memory"] is True
    message = record["message"]
    assert message.startswith("memory regression: ")
    regressed = {violation.split()[2] for violation in record["violations"]}
    assert regressed <= {"peak", "growth"} and "growth" in regressed
    [growth] = [v for v in record["violations"] if v.split()[2] == "growth"]
    assert f"> baseline {_size(baseline['growth_bytes'])} (+" in growth
    assert f"growth {_size(record['growth_bytes'])} >" in growth
    assert "allowed +4.0 MB" in growth
    assert record["growth_bytes"] - baseline["growth_bytes"] > 15 * MB
    assert record["report"]  # the investigator's report, as for any memory failure
    others = {nodeid: r["verdict"] for nodeid, r in _tests(project, "run2.json").items()}
    assert others == {
        KEEPER: "fail",
        "tests/test_app.py::test_steady": "pass",
        "tests/test_app.py::test_small[1]": "pass",
        "tests/test_app.py::test_small[2]": "pass",
    }

    cases = junit_cases(project.path / "junit.xml")
    failure = cases["test_keeper"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("memory regression: ")
    assert "> baseline " in failure.get("message", "")
    assert [name for name, case in cases.items() if case.find("failure") is not None] == [
        "test_keeper"
    ]


def test_a_growth_regression_is_rerun_to_name_the_line_that_kept_it(
    project: pytest.Pytester,
) -> None:
    result = _run(project, "--automem-baseline=baseline.json", "-k", "keeper")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "memory regression: growth * retained at tests/test_app.py:8*",
            "*a traced re-run of the test's call: * retained, most at tests/test_app.py:8*",
        ]
    )


def _size(num_bytes: int) -> str:
    from pytest_automem.base.units import format_size

    return format_size(num_bytes)


def test_xdist_gives_the_same_verdicts(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = _run(
        project, "-n", "2", "--automem-baseline=baseline.json", "--automem-json=run2.json"
    )

    result.assert_outcomes(passed=3, failed=1)
    verdicts = {nodeid: r["verdict"] for nodeid, r in _tests(project, "run2.json").items()}
    assert verdicts[KEEPER] == "fail"
    assert [nodeid for nodeid, verdict in verdicts.items() if verdict == "fail"] == [KEEPER]
    assert _tests(project, "run2.json")[KEEPER]["message"].startswith("memory regression: ")


def test_the_ini_settings_apply_and_the_options_override_them(
    project: pytest.Pytester,
) -> None:
    project.makeini("[pytest]\nautomem_baseline = baseline.json\nautomem_min_increase = 100MB\n")

    _run(project).assert_outcomes(passed=4)
    _run(project, "--automem-min-increase=4MB").assert_outcomes(passed=3, failed=1)


def test_a_test_not_in_the_baseline_is_not_monitored(project: pytest.Pytester) -> None:
    baseline = json.loads((project.path / "baseline.json").read_text())
    del baseline["tests"][KEEPER]
    (project.path / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")

    result = _run(project, "--automem-baseline=baseline.json", "--automem-json=run2.json")

    result.assert_outcomes(passed=4)
    assert KEEPER not in _tests(project, "run2.json")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["--automem-baseline=nowhere.json"],
            "--automem-baseline=nowhere.json: nowhere.json: No such file",
        ),
        (["--automem-baseline=bad.json"], "--automem-baseline=bad.json: bad.json:2:"),
        (
            ["--automem-baseline=baseline.json", "--automem-fail-on-increase=lots"],
            "--automem-fail-on-increase: invalid percentage 'lots'",
        ),
        (
            ["--automem-baseline=baseline.json", "--automem-min-increase=-1MB"],
            "--automem-min-increase: invalid size",
        ),
    ],
    ids=["missing", "malformed", "bad-percent", "bad-size"],
)
def test_a_bad_baseline_or_rule_is_a_usage_error_naming_the_option(
    project: pytest.Pytester, args: list[str], named: str
) -> None:
    (project.path / "bad.json").write_text('{"version": 1,\n "tests": [] }', encoding="utf-8")

    result = _run(project, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert named in result.stderr.str()
    assert "passed" not in result.stdout.str()


def test_help_lists_the_options_with_the_gates_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help", "-p", "no:randomly", timeout=120)

    assert result.ret == 0
    text = " ".join(result.stdout.str().split())
    assert "--automem-baseline=PATH" in text
    assert "ini automem_fail_on_increase, 10%)" in text
    assert "ini automem_min_increase, 4.0MB)" in text
