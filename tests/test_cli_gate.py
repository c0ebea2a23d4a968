"""``automem gate`` end to end, and its outputs: the table, JUnit, Markdown, annotations.

Real subprocesses for exit codes and the one-line input error; the output
builders alone where a cap needs many tests.  Exit codes: 0 no regression,
1 a regression, 2 bad input (docs/guarantees.md, "Exit codes").
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import INNER_ALLOC, assert_input_error, run_automem
from junitparser import Failure, JUnitXml, Skipped
from test_gate import ODD_IDS, document, record

from pytest_automem.outputs.gate_report import annotations, summary_markdown, text_report
from pytest_automem.results.results_file import read_results, write_results
from pytest_automem.verdicts.gate import Status, compare

MB = 1 << 20
#: The environment of a run outside CI: no annotations, no step summary.
_CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")


def gate(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in _CI_VARIABLES}
    return run_automem("gate", *args, env={**environment, **(env or {})})


def write(path: Path, tests: dict[str, Any], **session: Any) -> Path:
    write_results(path, document(tests, **session))
    return path


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """A baseline and a current run: every odd id regressed in peak, one test unchanged,
    one removed, one new."""
    baseline = {nodeid: record(peak=10 * MB) for nodeid in ODD_IDS}
    baseline.update({"t.py::steady": record(peak=5 * MB), "t.py::gone": record()})
    current = {nodeid: record(peak=(20 + i) * MB) for i, nodeid in enumerate(ODD_IDS)}
    current.update({"t.py::steady": record(peak=5 * MB), "t.py::added": record()})
    return write(tmp_path / "base.json", baseline), write(tmp_path / "cur.json", current)


# ------------------------------------------------------------------ exit codes


def test_no_regression_exits_0(tmp_path: Path) -> None:
    base = write(tmp_path / "b.json", {"t": record(peak=10 * MB, growth=-3 * MB)})
    cur = write(tmp_path / "c.json", {"t": record(peak=11 * MB, growth=-2 * MB)})
    result = gate("--baseline", base, "--current", cur)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "automem gate: pass: no regression among 1 tests"
    assert result.stdout.splitlines()[-1] == (
        "0 regressed, 0 new, 0 removed, 0 improved, 1 unchanged"
    )


def test_a_regression_exits_1_with_the_table_worst_first(runs: tuple[Path, Path]) -> None:
    base, cur = runs
    result = gate("--baseline", base, "--current", cur)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"automem gate: FAIL: {len(ODD_IDS)} of {len(ODD_IDS) + 3} tests regressed"
    head = lines.index(next(line for line in lines if line.startswith("test ")))
    assert lines[head].split() == ["test", "metric", "baseline", "current", "delta", "allowed"]
    rows = lines[head + 1 : head + 1 + len(ODD_IDS)]
    # The last odd id grew most: it leads.  A real newline is shown escaped.
    assert rows[0].startswith(ODD_IDS[-1])
    assert any(row.startswith("t.py::test_p[real\\nnewline]") for row in rows)
    assert "new (1):" in lines and "  t.py::added" in lines
    assert "removed (1):" in lines and "  t.py::gone" in lines
    assert lines[-1] == f"{len(ODD_IDS)} regressed, 1 new, 1 removed, 0 improved, 1 unchanged"


def test_the_table_is_bounded_and_says_how_many_rows_it_left_out() -> None:
    baseline = document({f"t.py::t{i:03}": record() for i in range(25)})
    current = document({f"t.py::t{i:03}": record(peak=(i + 5) * MB) for i in range(25)})
    text = text_report(compare(baseline, current), rows=20)
    assert "… and 5 more regressed tests not shown" in text
    assert text.count("\nt.py::t") == 20


def test_options_set_the_rule(tmp_path: Path) -> None:
    base = write(tmp_path / "b.json", {"t": record(peak=10 * MB, growth=0, rate=0.0)})
    cur = write(tmp_path / "c.json", {"t": record(peak=10 * MB, growth=5 * MB, rate=0.0)})
    assert gate("--baseline", base, "--current", cur).returncode == 1  # past 4 MB
    assert gate("--baseline", base, "--current", cur, "--min-delta", "growth=5MB").returncode == 0
    assert gate("--baseline", base, "--current", cur, "--min-delta", "5MB").returncode == 0
    # Later values win; a relative tolerance alone cannot excuse a zero baseline.
    args = ("--min-delta", "5MB", "--min-delta", "growth=0", "--max-increase", "1000%")
    assert gate("--baseline", base, "--current", cur, *args).returncode == 1
    faster = write(tmp_path / "f.json", {"t": record(peak=10 * MB, rate=3.0 * MB)})
    assert gate("--baseline", base, "--current", faster).returncode == 0  # rate not gated
    asked = ("--max-increase", "rate=25%")
    assert gate("--baseline", base, "--current", faster, *asked).returncode == 1
    assert (
        gate("--baseline", base, "--current", faster, "--min-delta", "rate=4MB/s").returncode == 0
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(("--max-increase", "ten"), "--max-increase", id="bad-percent"),
        pytest.param(("--max-increase=-5%",), "--max-increase", id="negative-percent"),
        pytest.param(("--min-delta", "lots"), "--min-delta", id="bad-size"),
        pytest.param(("--min-delta", "speed=1MB"), "'speed'", id="unknown-metric"),
        pytest.param(("--min-delta", "rate=1MB/fortnight"), "--min-delta", id="bad-rate"),
    ],
)
def test_bad_options_are_one_line(
    runs: tuple[Path, Path], args: tuple[str, ...], named: str
) -> None:
    base, cur = runs
    line = assert_input_error(gate("--baseline", base, "--current", cur, *args), named)
    assert line.startswith("automem gate: error: ")


@pytest.mark.parametrize(
    ("content", "named"),
    [
        pytest.param(None, "No such file", id="missing"),
        pytest.param("[1, 2]", "not a version-1 automem results file", id="not-results"),
        pytest.param('{"version": 1, "tests": {"t": [1]}}', '"t"', id="bad-test"),
    ],
)
def test_bad_files_are_one_line(
    runs: tuple[Path, Path], tmp_path: Path, content: str | None, named: str
) -> None:
    base, cur = runs
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    assert_input_error(gate("--baseline", bad, "--current", cur), "--baseline", str(bad), named)
    assert_input_error(gate("--baseline", base, "--current", cur, bad), "--current", str(bad))


def test_several_currents_are_merged(tmp_path: Path) -> None:
    base = write(tmp_path / "b.json", {"t.py::a": record(), "t.py::b": record()})
    shard1 = write(tmp_path / "s1.json", {"t.py::a": record()})
    shard2 = write(tmp_path / "s2.json", {"t.py::b": record(peak=50 * MB)})
    result = gate("--baseline", base, "--current", shard1, shard2)
    assert result.returncode == 1
    assert "1 regressed, 0 new, 0 removed, 0 improved, 1 unchanged" in result.stdout
    dup = write(tmp_path / "dup.json", {"t.py::b": record()})
    assert_input_error(
        gate("--baseline", base, "--current", shard1, shard2, dup),
        "--current",
        '"t.py::b"',
        str(shard2),
        str(dup),
    )
    preferred = gate("--baseline", base, "--current", shard1, shard2, dup, "--prefer", "last")
    assert preferred.returncode == 0, preferred.stdout


def test_context_mismatch_warns_and_strict_refuses(tmp_path: Path) -> None:
    base = write(tmp_path / "b.json", {"t": record()}, sampler_kind="process-procfs")
    cur = write(tmp_path / "c.json", {"t": record()}, sampler_kind="tree-psutil")
    warned = gate("--baseline", base, "--current", cur)
    assert warned.returncode == 0
    assert (
        "automem gate: WARNING: sampler_kind differs: baseline 'process-procfs', "
        "current 'tree-psutil' (1 test)"
    ) in warned.stdout.splitlines()
    assert_input_error(
        gate("--baseline", base, "--current", cur, "--strict-context"),
        "--strict-context",
        "sampler_kind",
    )
    same = gate("--baseline", base, "--current", base, "--strict-context")
    assert same.returncode == 0


# ------------------------------------------------------------------ JUnit


def test_junit_parses_with_elementtree_and_junitparser(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    base, cur = runs
    out = tmp_path / "gate.xml"
    assert gate("--baseline", base, "--current", cur, "--junit", out).returncode == 1
    root = ET.parse(out).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(ODD_IDS) + 3
    assert root.get("failures") == str(len(ODD_IDS))
    failures = [case for case in cases if case.find("failure") is not None]
    assert len(failures) == len(ODD_IDS)
    for case in failures:
        message = case.find("failure").get("message")
        assert "\n" not in message
        assert message.startswith("peak 10.0 MB -> ") and ", allowed +4.0 MB)" in message
    names = {case.get("name") for case in cases}
    assert "test_p[🧠-ü-汉]" in names and "test_p[real\nnewline]" in names
    assert {case.get("classname") for case in cases} >= {"automem.gate.t", "automem.gate.t.T"}
    # Failure texts name the node id exactly, odd characters and all.
    texts = {case.find("failure").text.split("\n[")[0] for case in failures}
    assert any(text.startswith("t.py::test_p[a|b]") for text in texts)

    suite = next(iter(JUnitXml.fromfile(str(out))))
    outcomes: dict[str, str] = {}
    for case in suite:
        result = case.result
        kind = type(result[0]).__name__ if result else "passed"
        outcomes[case.name] = kind
        if result and isinstance(result[0], Failure):
            assert result[0].message.startswith("peak ")
        if result and isinstance(result[0], Skipped):
            assert "baseline only" in result[0].message
    assert outcomes["gone"] == "Skipped"
    assert outcomes["added"] == "passed" and outcomes["steady"] == "passed"
    assert list(outcomes.values()).count("Failure") == len(ODD_IDS)


# ------------------------------------------------------------------ Markdown


def _table_rows(markdown: str) -> list[list[str]]:
    """The table's rows as cells, split at unescaped pipes as GitHub does."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = line.replace("\\|", "\0").strip("|").split("|")
            rows.append([cell.strip().replace("\0", "\\|") for cell in cells])
    return rows


def test_summary_has_the_columns_and_escapes_pipes(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, cur = runs
    out = tmp_path / "gate.md"
    assert gate("--baseline", base, "--current", cur, "--summary", out).returncode == 1
    markdown = out.read_text(encoding="utf-8")
    assert markdown.startswith("## automem gate\n")
    rows = _table_rows(markdown)
    assert rows[0] == ["test", "metric", "baseline", "current", "delta", "allowed"]
    assert all(len(row) == 6 for row in rows)
    assert len(rows) == 1 + len(ODD_IDS)
    assert "`t.py::test_p[a\\|b]`" in [row[0] for row in rows]


def test_summary_is_appended_to_the_step_summary_by_itself(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    base, cur = runs
    step = tmp_path / "step.md"
    step.write_text("earlier step\n", encoding="utf-8")
    result = gate("--baseline", base, "--current", cur, env={"GITHUB_STEP_SUMMARY": str(step)})
    assert result.returncode == 1
    text = step.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## automem gate\n")
    assert "FAIL" in text


def test_summary_stays_under_1_mib_and_says_what_it_left_out() -> None:
    long_id = "t.py::test_big[" + "x" * 200 + "-{}]"
    tests = 10_000
    baseline = document({long_id.format(i): record() for i in range(tests)})
    current = document({long_id.format(i): record(peak=(i + 5) * MB) for i in range(tests)})
    result = compare(baseline, current)
    markdown = summary_markdown(result)
    size = len(markdown.encode("utf-8"))
    assert 1_000_000 < size <= 1 << 20
    shown = len(_table_rows(markdown)) - 1
    assert 0 < shown < tests
    assert markdown.endswith(
        f"\n{tests - shown} more regressed tests not shown (the summary is capped at 1 MiB).\n"
    )


def test_a_small_cap_keeps_the_head() -> None:
    result = compare(document({"a": record()}), document({"a": record(peak=9 * MB)}))
    markdown = summary_markdown(result, max_bytes=200)
    assert "**FAIL: 1 of 1 tests regressed**" in markdown
    assert markdown.endswith(
        "\n1 more regressed tests not shown (the summary is capped at 1 MiB).\n"
    )


# ------------------------------------------------------------------ annotations


def test_annotations_are_capped_at_10_worst_first(tmp_path: Path) -> None:
    baseline = {f"t.py::t{i:02}": record() for i in range(15)}
    current = {f"t.py::t{i:02}": record(peak=(i + 2) * MB) for i in range(15)}
    base, cur = write(tmp_path / "b.json", baseline), write(tmp_path / "c.json", current)
    result = gate("--baseline", base, "--current", cur, env={"GITHUB_ACTIONS": "true"})
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 10
    assert [line.split("%3A%3A")[1].split("::")[0] for line in errors] == [
        f"t{i:02}" for i in range(14, 4, -1)
    ]
    quiet = gate("--baseline", base, "--current", cur)
    assert "::error" not in quiet.stdout


def test_annotations_escape_as_workflow_commands() -> None:
    nodeid = "t.py::test_p[50%,a:b\r\nc]"
    result = compare(document({nodeid: record()}), document({nodeid: record(peak=9 * MB)}))
    (line,) = annotations(result)
    title, message = line.removeprefix("::error title=").split("::", 1)
    assert title == "memory regression%3A t.py%3A%3Atest_p[50%25%2Ca%3Ab%0D%0Ac]"
    assert message.startswith("t.py::test_p[50%25,a:b%0D%0Ac]: peak 0 B -> 9.0 MB (+9.0 MB, ")
    assert "\n" not in line and "\r" not in line


def test_no_regression_no_annotation() -> None:
    result = compare(document({"a": record()}), document({"a": record()}))
    assert list(annotations(result)) == []
    assert result.count(Status.UNCHANGED) == 1


# ------------------------------------------------------------------ from a real run


@pytest.mark.parametrize("retained_mb", [0, 20])
def test_gate_on_two_real_runs_reports_exactly_the_changed_test(
    pytester: pytest.Pytester, retained_mb: int
) -> None:
    """Two sessions of the plugin gated: the same code passes; a test made to keep
    20 MB more is the one regression."""
    pytester.makepyfile(alloc=INNER_ALLOC)
    source = """
        import pytest
        from alloc import resident, spike, MB

        KEPT = []

        @pytest.mark.parametrize("size", [1, 4, 8])
        def test_spiking(size):
            spike(size * MB)

        def test_caching():
            KEPT.append(resident({extra} * MB + 1))

        def test_churning():
            for _ in range(20):
                resident(2 * MB).close()
    """
    pytester.makepyfile(test_suite=source.format(extra=0))
    first = pytester.runpytest_subprocess(
        "--automem", "--automem-json=base.json", "-p", "no:randomly"
    )
    first.assert_outcomes(passed=5)
    pytester.makepyfile(test_suite=source.format(extra=retained_mb))
    second = pytester.runpytest_subprocess(
        "--automem", "--automem-json=cur.json", "-p", "no:randomly"
    )
    second.assert_outcomes(passed=5)
    cur = pytester.path / "cur.json"
    assert len(read_results(cur)["tests"]) == 5
    result = gate("--baseline", pytester.path / "base.json", "--current", cur)
    if retained_mb:
        assert result.returncode == 1, result.stdout
        assert "1 regressed," in result.stdout
        (row,) = [line for line in result.stdout.splitlines() if line.startswith("test_suite.py")]
        assert row.startswith("test_suite.py::test_caching ")
    else:
        assert result.returncode == 0, result.stdout
        assert "0 regressed," in result.stdout


def test_a_path_with_a_newline_is_still_a_one_line_error(runs: tuple[Path, Path]) -> None:
    base, _ = runs
    missing = base.parent / "no\nsuch.json"
    assert_input_error(gate("--baseline", base, "--current", missing), "--current")
