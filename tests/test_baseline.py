"""Baselines: each test's worst figure over the runs, and the context that measured them.

A baseline is a results file, so it must read back with the results reader
and validate against the results schema; runs measured differently must not
be combined silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import RESULTS_SESSION, results_test

from pytest_automem.results.baseline import (
    MixedContextError,
    Run,
    build_baseline,
    worst_records,
    write_baseline,
)
from pytest_automem.results.results_file import measurement_context, read_results

MB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schema" / "results.schema.json").read_text(encoding="utf-8"))

CONTEXT = RESULTS_SESSION


def run(path: str, tests: dict[str, Any], **context: Any) -> Run:
    return Run(path, {"version": 1, "session": {**CONTEXT, **context}, "tests": tests})


def test_each_metric_keeps_its_worst_figure_across_runs() -> None:
    runs = [
        run("r1.json", {"t::a": results_test(10 * MB, -2 * MB, None, {"s": 100.0, "u": 5.0})}),
        run("r2.json", {"t::a": results_test(12 * MB, -3 * MB, 1.5, {"s": 40.0})}),
        run("r3.json", {"t::a": results_test(11 * MB, 1 * MB, 0.5, {"s": 250.0})}),
    ]
    [(nodeid, worst)] = build_baseline(runs)["tests"].items()
    assert nodeid == "t::a"
    assert worst["peak_bytes"] == 12 * MB  # from r2
    assert worst["growth_bytes"] == 1 * MB  # from r3: negative growth is the better one
    assert worst["rate_bytes_per_s"] == 1.5  # a missing rate yields to a measured one
    leaks = {s["name"]: s["leak_bytes_per_iteration"] for s in worst["scenarios"]}
    assert leaks == {"s": 250.0, "u": 5.0}
    assert worst["baseline_runs"] == 3


def test_a_baseline_carries_no_samples_file() -> None:
    with_samples = {**results_test(5, 0), "samples_file": "snapshot-x.jsonl"}
    runs = [
        run("r1.json", {"t::a": with_samples}, samples_dir="r1.samples"),
        run("r2.json", {"t::a": with_samples}, samples_dir="r2.samples"),
    ]
    baseline = build_baseline(runs)
    assert "samples_file" not in baseline["tests"]["t::a"]
    assert "samples_dir" not in baseline["session"]


def test_a_test_in_only_some_runs_is_kept_with_the_worst_of_those() -> None:
    tests = worst_records(
        [
            {"t::a": results_test(5, 0), "t::b": results_test(7, 0)},
            {"t::a": results_test(9, 0)},
            {"t::c": results_test(1, 0), "t::b": results_test(3, 4)},
        ]
    )
    assert {nodeid: (r["peak_bytes"], r["growth_bytes"]) for nodeid, r in tests.items()} == {
        "t::a": (9, 0),
        "t::b": (7, 4),
        "t::c": (1, 0),
    }
    assert {nodeid: r["baseline_runs"] for nodeid, r in tests.items()} == {
        "t::a": 2,
        "t::b": 2,
        "t::c": 1,
    }


def test_the_baseline_keeps_the_measurement_context_and_its_runs() -> None:
    baseline = build_baseline([run("r1.json", {"t::a": results_test(1, 0)}), run("r2.json", {})])
    session = baseline["session"]
    for key in ("python", "implementation", "platform", "cpu_count", "plugin_version"):
        assert session[key] == CONTEXT[key]
    assert session["sampler_kind"] == "process-procfs"
    assert session["peak_sources"] == ["kernel-hwm"]
    assert [r["file"] for r in session["baseline"]["runs"]] == ["r1.json", "r2.json"]
    assert session["baseline"]["runs"][0]["written_at"] == CONTEXT["written_at"]
    assert session["baseline"]["mixed_context"] is False


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("sampler_kind", "thread-portable", "sampler_kind process-procfs against thread-portable"),
        ("python", "3.12.1", "python 3.11.7 against 3.12.1"),
        ("cpu_count", 8, "cpu_count 2 against 8"),
        ("plugin_version", None, "plugin_version 0.1.0 against unknown"),
    ],
)
def test_runs_measured_in_different_contexts_are_refused(key: str, value: Any, shown: str) -> None:
    runs = [run("r1.json", {}), run("r2.json", {}, **{key: value})]
    with pytest.raises(MixedContextError) as refused:
        build_baseline(runs)
    message = str(refused.value)
    assert message.startswith("r2.json: measured in another context than r1.json")
    assert shown in message
    assert "--allow-mixed-context" in message
    assert "\n" not in message


def test_a_different_peak_source_is_a_different_context() -> None:
    sampled = results_test(1, 0) | {"peak_source": "sampled"}
    runs = [run("r1.json", {"t::a": results_test(1, 0)}), run("r2.json", {"t::a": sampled})]
    with pytest.raises(MixedContextError, match="peak_sources kernel-hwm against sampled"):
        build_baseline(runs)


def test_mixed_contexts_when_allowed_are_listed_run_by_run() -> None:
    runs = [run("r1.json", {}), run("r2.json", {}, python="3.12.1")]
    session = build_baseline(runs, allow_mixed_context=True)["session"]
    assert session["baseline"]["mixed_context"] is True
    assert session["python"] is None  # the runs disagree
    assert session["platform"] == "linux"  # they agree
    assert [r["python"] for r in session["baseline"]["runs"]] == ["3.11.7", "3.12.1"]


def test_a_file_without_the_newer_context_keys_reads_them_as_unknown() -> None:
    old = {"version": 1, "session": {"python": "3.11.7"}, "tests": {"t::a": results_test(1, 0)}}
    context = measurement_context(old)
    assert context["cpu_count"] is None and context["plugin_version"] is None
    assert context["peak_sources"] == ["kernel-hwm"]


def test_the_written_baseline_reads_back_and_validates(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    runs = [
        run("r1.json", {"t::b": results_test(2, 0), "t::a": results_test(1, 0, 2.0, {"s": 1.0})}),
        run("r2.json", {"t::a": results_test(3, 1)}),
    ]
    path = tmp_path / "baseline.json"
    write_baseline(path, build_baseline(runs))
    document = read_results(path)
    assert list(document["tests"]) == ["t::a", "t::b"]
    assert document["tests"]["t::a"]["peak_bytes"] == 3
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document)) == []
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temp file left
