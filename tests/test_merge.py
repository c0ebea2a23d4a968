"""Merging results files: tests united, conflicts named, contexts kept per test.

``merge_results`` alone, then ``automem merge`` end to end (real processes:
exit codes, the one-line input error, the written file).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_input_error, run_automem
from test_gate import ODD_IDS, document, record

from pytest_automem.results.merge import MergeConflictError, ResultsSource, merge_results
from pytest_automem.results.results_file import parse_results, read_results, write_results
from pytest_automem.verdicts.gate import compare

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "results.schema.json"


def source(path: str, tests: dict[str, Any], **session: Any) -> ResultsSource:
    return ResultsSource(path, document(tests, **session))


def test_tests_are_united_and_sorted() -> None:
    merged = merge_results(
        [
            source("a.json", {"t.py::z": record(peak=1)}),
            source("b.json", {"t.py::a": record(peak=2), "t.py::m": record(peak=3)}),
        ]
    )
    assert list(merged["tests"]) == ["t.py::a", "t.py::m", "t.py::z"]
    assert merged["tests"]["t.py::z"]["peak_bytes"] == 1
    assert merged["session"]["tests_monitored"] == 3
    assert merged["session"]["merged_from"] == ["a.json", "b.json"]


def test_a_duplicate_node_id_names_it_and_both_files() -> None:
    sources = [
        source("shard-1.json", {"t.py::x[a|b]": record()}),
        source("shard-2.json", {"t.py::y": record()}),
        source("shard-3.json", {"t.py::x[a|b]": record()}),
    ]
    with pytest.raises(MergeConflictError) as caught:
        merge_results(sources)
    message = str(caught.value)
    assert '"t.py::x[a|b]"' in message
    assert "shard-1.json" in message and "shard-3.json" in message
    assert "shard-2.json" not in message


@pytest.mark.parametrize(("prefer", "peak"), [("first", 1), ("last", 3)])
def test_prefer_chooses_the_record(prefer: str, peak: int) -> None:
    sources = [
        source("1.json", {"t": record(peak=1)}),
        source("2.json", {"t": record(peak=2)}),
        source("3.json", {"t": record(peak=3)}),
    ]
    assert merge_results(sources, prefer=prefer)["tests"]["t"]["peak_bytes"] == peak


def test_same_context_stays_in_the_session() -> None:
    session = {"sampler_kind": "process-procfs", "platform": "linux", "gc_mode": "full"}
    merged = merge_results(
        [
            source("a.json", {"a": record()}, written_at="x", tests_monitored=1, **session),
            source("b.json", {"b": record()}, written_at="y", tests_monitored=1, **session),
        ]
    )
    assert all("context" not in test for test in merged["tests"].values())
    assert {key: merged["session"][key] for key in session} == session
    assert merged["session"]["python"] == "3.11.9"


def test_differing_contexts_are_kept_per_test() -> None:
    merged = merge_results(
        [
            source("a.json", {"a": record()}, platform="linux", cpu_count=2),
            source("b.json", {"b": record()}, platform="darwin", cpu_count=2),
        ]
    )
    assert merged["session"]["cpu_count"] == 2
    assert "platform" not in merged["session"]
    assert merged["tests"]["a"]["context"] == {
        "python": "3.11.9",
        "platform": "linux",
        "cpu_count": 2,
    }
    assert merged["tests"]["b"]["context"]["platform"] == "darwin"


def test_a_merge_of_merges_keeps_each_tests_context() -> None:
    first = merge_results(
        [
            source("a.json", {"a": record()}, platform="linux"),
            source("b.json", {"b": record()}, platform="darwin"),
        ]
    )
    again = merge_results(
        [ResultsSource("ab.json", first), source("c.json", {"c": record()}, platform="win32")]
    )
    platforms = {nodeid: test["context"]["platform"] for nodeid, test in again["tests"].items()}
    assert platforms == {"a": "linux", "b": "darwin", "c": "win32"}


def test_the_gate_sees_a_shards_context() -> None:
    """Gating a merged current against a baseline names the shard measured differently."""
    baseline = document({"a": record(), "b": record()}, platform="linux")
    merged = merge_results(
        [
            source("a.json", {"a": record()}, platform="linux"),
            source("b.json", {"b": record()}, platform="darwin"),
        ]
    )
    (difference,) = compare(baseline, merged).context_differences
    assert (difference.key, difference.current, difference.tests) == ("platform", "darwin", 1)


def test_merged_document_is_a_valid_results_file(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is needed to check results files against the schema"
    )
    merged = merge_results(
        [
            source("a.json", {nodeid: record() for nodeid in ODD_IDS[:3]}, platform="linux"),
            source("b.json", {nodeid: record() for nodeid in ODD_IDS[3:]}, platform="darwin"),
        ]
    )
    path = tmp_path / "all.json"
    write_results(path, merged)
    read = parse_results(path.read_bytes(), path, strict=True)
    assert sorted(read["tests"]) == sorted(ODD_IDS)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(read)) == []


# ------------------------------------------------------------------ automem merge


def automem_merge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_automem("merge", *args)


def write(path: Path, tests: dict[str, Any], **session: Any) -> Path:
    write_results(path, document(tests, **session))
    return path


def test_merge_command_writes_the_merged_file(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {ODD_IDS[0]: record(peak=1)})
    b = write(tmp_path / "b.json", {ODD_IDS[3]: record(peak=2)})
    out = tmp_path / "all.json"
    result = automem_merge(a, b, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "2 tests from 2 files" in result.stdout
    assert sorted(read_results(out)["tests"]) == sorted([ODD_IDS[0], ODD_IDS[3]])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_merge_command_conflict_is_one_line(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"t.py::x": record()})
    b = write(tmp_path / "b.json", {"t.py::x": record()})
    out = tmp_path / "all.json"
    assert_input_error(automem_merge(a, b, "-o", out), '"t.py::x"', str(a), str(b), "--prefer")
    assert not out.exists()
    assert automem_merge(a, b, "-o", out, "--prefer", "last").returncode == 0


@pytest.mark.parametrize(
    ("content", "named"),
    [
        pytest.param(None, "No such file", id="missing"),
        pytest.param('{"version": 1, "tests": {}', "not a results file", id="truncated"),
        pytest.param('{"version": 2, "tests": {}}', "version 2", id="other-version"),
        pytest.param('{"version": 1, "tests": {"t": 3}}', '"t"', id="test-not-an-object"),
    ],
)
def test_merge_command_bad_input(tmp_path: Path, content: str | None, named: str) -> None:
    good = write(tmp_path / "good.json", {"t.py::ok": record()})
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    line = assert_input_error(automem_merge(good, bad, "-o", tmp_path / "o.json"), str(bad), named)
    assert line.startswith("automem merge: error: ")


def test_merge_command_unwritable_output(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"t": record()})
    out = a / "all.json"  # under a file: no folder can be made there
    assert_input_error(automem_merge(a, a, "-o", out, "--prefer", "first"), "-o", str(out))


def test_merge_command_output_is_json_lines_per_test(tmp_path: Path) -> None:
    """The merged file is written like the plugin's: one test per line, diffable."""
    a = write(tmp_path / "a.json", {"t.py::a": record()})
    b = write(tmp_path / "b.json", {"t.py::b": record()})
    out = tmp_path / "all.json"
    automem_merge(a, b, "-o", out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line.split(":")[0].strip() for line in lines if line.startswith("  ")] == [
        '"t.py',
        '"t.py',
    ]
    assert json.loads(out.read_text(encoding="utf-8"))["version"] == 1


# ------------------------------------------------------------------ kept samples


def shard_with_samples(folder: Path, nodeid: str, samples_dir: str = "results.samples") -> Path:
    """A results file in ``folder`` whose one test kept a samples file (made for real)."""
    samples = folder / samples_dir
    samples.mkdir(parents=True)
    name = f"snapshot-20261206T000000.000000-1-{folder.name}.jsonl"
    (samples / name).write_text('{"kind": "window"}\n', encoding="utf-8")
    return write(
        folder / "results.json", {nodeid: record(samples_file=name)}, samples_dir=samples_dir
    )


def reachable(results_path: Path) -> dict[str, Path]:
    """Each test's samples file, resolved as a reader resolves it."""
    merged = read_results(results_path)
    folder = results_path.parent / merged["session"]["samples_dir"]
    return {
        nodeid: folder / entry["samples_file"]
        for nodeid, entry in merged["tests"].items()
        if "samples_file" in entry
    }


def test_merged_samples_stay_reachable_from_shards_in_different_folders(tmp_path: Path) -> None:
    a = shard_with_samples(tmp_path / "ci" / "shard-1", "t.py::a")
    b = shard_with_samples(tmp_path / "ci" / "shard-2", "t.py::b")
    for out in (tmp_path / "ci" / "all.json", tmp_path / "elsewhere" / "all.json"):
        out.parent.mkdir(exist_ok=True)
        assert automem_merge(a, b, "-o", out).returncode == 0
        files = reachable(out)
        assert sorted(files) == ["t.py::a", "t.py::b"]
        assert all(path.is_file() for path in files.values())
    # Beside the shards, the merged folder is stated relative to the merged file.
    assert read_results(tmp_path / "ci" / "all.json")["session"]["samples_dir"] == "."
    assert Path(
        read_results(tmp_path / "elsewhere" / "all.json")["session"]["samples_dir"]
    ).is_absolute()


def test_shards_sharing_one_samples_folder_keep_their_file_names(tmp_path: Path) -> None:
    shared = tmp_path / "samples"
    shared.mkdir()
    docs = []
    for name in ("a", "b"):
        (shared / f"{name}.jsonl").write_text("{}\n", encoding="utf-8")
        docs.append(
            source(
                str(tmp_path / f"{name}.json"),
                {f"t.py::{name}": record(samples_file=f"{name}.jsonl")},
                samples_dir="samples",
            )
        )
    merged = merge_results(docs, written_to=tmp_path / "all.json")
    assert merged["session"]["samples_dir"] == "samples"
    assert [entry["samples_file"] for entry in merged["tests"].values()] == ["a.jsonl", "b.jsonl"]
    assert "context" not in merged["tests"]["t.py::a"]  # samples_dir is no measurement context


def test_a_samples_file_without_a_samples_folder_is_dropped_not_misplaced(tmp_path: Path) -> None:
    with_folder = shard_with_samples(tmp_path / "one", "t.py::a")
    without = source(str(tmp_path / "two.json"), {"t.py::b": record(samples_file="lost.jsonl")})
    kept = ResultsSource(str(with_folder), read_results(with_folder))
    merged = merge_results([kept, without])
    assert "samples_file" not in merged["tests"]["t.py::b"]
    assert "samples_file" in without.document["tests"]["t.py::b"]  # the source is untouched
    folder = Path(merged["session"]["samples_dir"])
    assert (folder / merged["tests"]["t.py::a"]["samples_file"]).is_file()
