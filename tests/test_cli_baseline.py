"""``automem baseline update`` and ``automem budgets suggest`` end to end, as real processes.

Both write a file a team commits, from results files: every input is read
before anything is written, so a bad input (exit 2, one line naming the
file and line) leaves the old file exactly as it was, and no temp file.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import RESULTS_SESSION, assert_input_error, results_test, run_automem

from pytest_automem.cli import baseline_command, budgets_command, main

MB = 1 << 20


def automem(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_automem(*args, cwd=cwd)


def write_run(path: Path, tests: dict[str, Any], **session: Any) -> Path:
    document = {"version": 1, "session": {**RESULTS_SESSION, **session}, "tests": tests}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        write_run(
            tmp_path / "r1.json",
            {"t.py::a": results_test(10 * MB, 0), "t.py::b": results_test(1, 1)},
        ),
        write_run(
            tmp_path / "r2.json", {"t.py::a": results_test(12 * MB, 2 * MB, leaks={"s": 512.0})}
        ),
    ]


# -- baseline update ---------------------------------------------------------------------


def test_update_writes_each_tests_worst_results_test(tmp_path: Path, runs: list[Path]) -> None:
    result = automem("baseline", "update", *runs, "--baseline", tmp_path / "base.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"baseline {tmp_path / 'base.json'}: 2 tests from 2 runs"
    tests = json.loads((tmp_path / "base.json").read_text())["tests"]
    assert (tests["t.py::a"]["peak_bytes"], tests["t.py::a"]["growth_bytes"]) == (12 * MB, 2 * MB)
    assert tests["t.py::b"]["baseline_runs"] == 1


def test_update_writes_the_default_baseline_in_the_current_folder(
    tmp_path: Path, runs: list[Path]
) -> None:
    result = automem("baseline", "update", "r1.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "automem-baseline.json").read_text())["version"] == 1


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n"version": 1,\n"tests": {\n  "t::a": [1]\n}}\n', encoding="utf-8")
    version2 = tmp_path / "v2.json"
    version2.write_text('{\n"version": 2, "tests": {}}', encoding="utf-8")
    other_python = write_run(tmp_path / "py312.json", {}, python="3.12.1")
    return {
        "missing": (tmp_path / "nope.json", "nope.json: No such file or directory"),
        "not-an-object": (broken, 'broken.json:4: test "t::a" is a JSON array'),
        "version": (version2, "v2.json:2: not a version-1 automem results file"),
        "context": (other_python, "py312.json: measured in another context than"),
    }


@pytest.mark.parametrize("case", ["missing", "not-an-object", "version", "context"])
def test_a_bad_input_leaves_the_old_baseline_untouched(
    tmp_path: Path, runs: list[Path], case: str
) -> None:
    baseline = tmp_path / "base.json"
    assert automem("baseline", "update", runs[0], "--baseline", baseline).returncode == 0
    before = baseline.read_bytes()
    bad, named = _bad_inputs(tmp_path)[case]

    result = automem("baseline", "update", runs[1], bad, "--baseline", baseline)

    line = assert_input_error(result, named)
    assert line.startswith("automem baseline: error: ")
    assert baseline.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".base.json")]
    assert sorted(p.name for p in tmp_path.iterdir() if "base" in p.name) == ["base.json"]


def test_mixed_contexts_are_combined_when_allowed(tmp_path: Path, runs: list[Path]) -> None:
    other = write_run(tmp_path / "py312.json", {"t.py::a": results_test(1, 0)}, python="3.12.1")
    baseline = tmp_path / "base.json"
    result = automem(
        "baseline", "update", runs[0], other, "--baseline", baseline, "--allow-mixed-context"
    )
    assert result.returncode == 0, result.stderr
    assert "(mixed contexts)" in result.stdout
    session = json.loads(baseline.read_text())["session"]
    assert session["baseline"]["mixed_context"] is True
    assert [run["python"] for run in session["baseline"]["runs"]] == ["3.11.7", "3.12.1"]


def test_a_baseline_that_cannot_be_written_is_an_input_error(
    tmp_path: Path, runs: list[Path]
) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = automem("baseline", "update", runs[0], "--baseline", folder)
    assert_input_error(result, "cannot write --baseline", str(folder))


def test_baseline_needs_an_action_and_a_file() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["baseline"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["baseline", "update"])
    assert exited.value.code == 2


# -- budgets suggest ---------------------------------------------------------------------


def test_suggest_writes_a_budgets_file_from_the_worst_run(tmp_path: Path, runs: list[Path]) -> None:
    out = tmp_path / "budgets.json"
    result = automem("budgets", "suggest", *runs, "--margin", "50%", "--min", "2MB", "-o", out)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["version"] == 1
    assert document["budgets"] == {
        "t.py::a": {"peak": "18MB", "growth": "3MB", "leak_per_iteration": "2MB"},
        "t.py::b": {"peak": "2MB", "growth": "2MB"},
    }
    assert document["suggested"] == {
        "from": [str(run) for run in runs],
        "margin": "50%",
        "min": "2MB",
    }


@pytest.mark.parametrize(
    ("option", "value"), [("--margin", "lots"), ("--margin", "-1%"), ("--min", "lots")]
)
def test_suggest_names_a_bad_option(
    tmp_path: Path, runs: list[Path], option: str, value: str
) -> None:
    result = automem("budgets", "suggest", runs[0], option, value, "-o", tmp_path / "b.json")
    assert_input_error(result, option)
    assert not (tmp_path / "b.json").exists()


def test_suggest_leaves_the_old_file_on_a_bad_input(tmp_path: Path, runs: list[Path]) -> None:
    out = tmp_path / "budgets.json"
    assert automem("budgets", "suggest", runs[0], "-o", out).returncode == 0
    before = out.read_bytes()
    result = automem("budgets", "suggest", runs[1], tmp_path / "nope.json", "-o", out)
    assert_input_error(result, "nope.json")
    assert out.read_bytes() == before


# -- help ----------------------------------------------------------------------------------

#: reStructuredText a terminal would show raw: ``literal``, :role:`target`, `default role`.
MARKUP = re.compile(r"``|:[a-z]+:`|`")


@pytest.mark.parametrize(
    "command", [["baseline"], ["baseline", "update"], ["budgets"], ["budgets", "suggest"]], ids=str
)
def test_help_has_no_markup(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: automem {' '.join(command)}")
    assert [line for line in text.splitlines() if MARKUP.search(line)] == []


def test_automem_alone_lists_both_commands() -> None:
    result = automem()
    assert result.returncode == 2
    for name, module in (("baseline", baseline_command), ("budgets", budgets_command)):
        [line] = [line for line in result.stderr.splitlines() if line.split()[:1] == [name]]
        assert line.split(maxsplit=1)[1] == module.SUMMARY
