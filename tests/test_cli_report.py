"""``automem report`` end to end, as a real process: results files in, one HTML file out.

Bad input is one line on stderr and exit 2, with nothing written; samples
that cannot be read are not bad input (the report shows those tests
without a plot and says how many).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import external_references, node_ids_of, page_data
from helpers import RESULTS_SESSION, assert_input_error, results_test, run_automem

MB = 1 << 20


def write_run(path: Path, tests: dict[str, Any], **session: Any) -> Path:
    document = {"version": 1, "session": {**RESULTS_SESSION, **session}, "tests": tests}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def snapshot(path: Path, peak_bytes: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {"kind": "window", "version": 2, "label": "t", "pid": 1, "baseline_bytes": 0},
        {"t_ms": 0.0, "rss_bytes": 0, "pressure": "LOW"},
        {"t_ms": 1.0, "rss_bytes": peak_bytes, "pressure": "LOW"},
        {"t_ms": 2.0, "event": "gc", "rss_before_bytes": peak_bytes, "rss_after_bytes": 0},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def report_data(path: Path) -> dict[str, Any]:
    return page_data(path.read_text(encoding="utf-8"))


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    snapshot(tmp_path / "ci" / "samples" / "a.jsonl", 3 * MB)
    return [
        write_run(tmp_path / "r1.json", {"t.py::a": results_test(10 * MB, 0)}),
        write_run(
            tmp_path / "ci" / "r2.json",
            {
                "t.py::a": {**results_test(30 * MB, 0), "samples_file": "a.jsonl"},
                "t.py::b": {**results_test(MB, 0), "samples_file": "gone.jsonl"},
            },
            samples_dir="samples",
        ),
    ]


def test_report_of_several_runs_with_the_samples_its_results_file_names(
    tmp_path: Path, runs: list[Path]
) -> None:
    result = run_automem("report", *runs, "-o", tmp_path / "out" / "report.html")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"automem report: 2 tests from 2 runs, 1 memory curve (1 samples file missing, "
        f"0 unreadable) -> {tmp_path / 'out' / 'report.html'}"
    )
    assert result.stderr == ""
    text = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    data = page_data(text)
    assert sorted(node_ids_of(data)) == ["t.py::a", "t.py::b"]
    assert [run["label"] for run in data["runs"]] == ["r1.json", "r2.json"]
    assert data["gate"]["counts"]["regressed"] == 1
    assert max(data["details"]["0"]["curve"]["m"]) == 3 * MB
    assert external_references(text) == []


def test_samples_option_overrides_the_folder_the_results_file_names(
    tmp_path: Path, runs: list[Path]
) -> None:
    snapshot(tmp_path / "elsewhere" / "gone.jsonl", 5 * MB)

    result = run_automem(
        "report", runs[1], "--samples", tmp_path / "elsewhere", "-o", tmp_path / "r.html"
    )

    assert result.returncode == 0, result.stderr
    details = report_data(tmp_path / "r.html")["details"]
    assert details["0"]["noplot"] == "missing"  # a.jsonl is not in the other folder
    assert max(details["1"]["curve"]["m"]) == 5 * MB


def test_an_absolute_samples_dir_is_used_as_it_is(tmp_path: Path) -> None:
    snapshot(tmp_path / "abs" / "a.jsonl", 2 * MB)
    (tmp_path / "deep").mkdir()
    results = write_run(
        tmp_path / "deep" / "r.json",
        {"t::a": {**results_test(MB, 0), "samples_file": "a.jsonl"}},
        samples_dir=str(tmp_path / "abs"),
    )

    result = run_automem("report", results, "-o", tmp_path / "r.html")

    assert result.returncode == 0, result.stderr
    assert "curve" in report_data(tmp_path / "r.html")["details"]["0"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str | Path], str]]:
    good = write_run(tmp_path / "good.json", {"t::a": results_test(1, 1)})
    broken = tmp_path / "broken.json"
    broken.write_text('{\n"version": 1,\n"tests": {\n  "t::a": [1]\n}}\n', encoding="utf-8")
    version2 = tmp_path / "v2.json"
    version2.write_text('{\n"version": 2, "tests": {}}', encoding="utf-8")
    not_json = tmp_path / "nope.txt"
    not_json.write_text("hello\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "report.html"
    return {
        "missing": ([tmp_path / "no.json", "-o", out], "no.json: cannot read it"),
        "missing-among-several": ([good, tmp_path / "no.json", "-o", out], "no.json"),
        "not-an-object": ([broken, "-o", out], 'broken.json:4: test "t::a" is a JSON array'),
        "version": ([version2, "-o", out], "v2.json:2: not a version-1 automem results file"),
        "not-json": ([not_json, "-o", out], "nope.txt:1: not a results file"),
        "output-folder": ([good, "-o", tmp_path / "folder"], "-o"),
        "output-under-a-file": ([good, "-o", tmp_path / "a-file" / "r.html"], "cannot write -o"),
        "samples-not-a-folder": ([good, "--samples", tmp_path / "a-file", "-o", out], "--samples"),
        "output-is-an-input": ([good, "-o", good], "is the results file"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "missing-among-several",
        "not-an-object",
        "version",
        "not-json",
        "output-folder",
        "output-under-a-file",
        "samples-not-a-folder",
        "output-is-an-input",
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, case: str) -> None:
    args, named = _bad_inputs(tmp_path)[case]

    assert_input_error(run_automem("report", *args), named)
    assert not (tmp_path / "report.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_link_at_the_output_is_replaced_and_its_target_kept(tmp_path: Path) -> None:
    good = write_run(tmp_path / "good.json", {"t::a": results_test(1, 1)})
    target = tmp_path / "target.txt"
    target.write_text("keep")
    (tmp_path / "r.html").symlink_to(target)

    result = run_automem("report", good, "-o", tmp_path / "r.html")

    assert result.returncode == 0, result.stderr
    assert target.read_text() == "keep"
    assert node_ids_of(report_data(tmp_path / "r.html")) == ["t::a"]


def test_no_output_is_a_usage_error(tmp_path: Path) -> None:
    good = write_run(tmp_path / "good.json", {"t::a": results_test(1, 1)})

    assert_input_error(run_automem("report", good), "-o")


def test_an_empty_results_file_still_makes_a_page(tmp_path: Path) -> None:
    empty = write_run(tmp_path / "empty.json", {})

    result = run_automem("report", empty, "-o", tmp_path / "r.html")

    assert result.returncode == 0, result.stderr
    assert report_data(tmp_path / "r.html")["summary"]["tests"] == 0
