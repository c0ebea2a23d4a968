"""The session's record store: what it keeps in memory, what it spools, what it writes."""

from __future__ import annotations

import json
import math
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pytest_automem.results.records import RecordStore, encode_record, summary_record
from pytest_automem.results.results_file import build_results, read_results, write_results

MB = 1 << 20


def _record(peak: int, growth: int = 0, *, failed: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "peak_bytes": peak,
        "growth_bytes": growth,
        "max_pressure": "LOW",
        "verdict": "fail" if failed else "pass",
        "message": "peak over budget" if failed else None,
        "sampler_kind": "process-procfs",
        **extra,
    }


def test_results_file_holds_every_record_sorted_as_a_whole_document_would(
    tmp_path: Path,
) -> None:
    records = {f"t.py::test_{n}": _record(n * MB, n, samples=n) for n in (3, 1, 2)}
    store = RecordStore(tmp_path)
    for nodeid, record in records.items():
        store.add(nodeid, record)
    store.write_results(tmp_path / "spooled.json", {"tests_monitored": 3})
    write_results(tmp_path / "whole.json", build_results(records, {"tests_monitored": 3}))

    spooled, whole = read_results(tmp_path / "spooled.json"), read_results(tmp_path / "whole.json")
    assert list(spooled["tests"]) == ["t.py::test_1", "t.py::test_2", "t.py::test_3"]
    assert spooled["tests"] == whole["tests"] == records
    assert spooled["session"]["tests_monitored"] == 3
    assert {"written_at", "python", "platform"} <= set(spooled["session"])


def test_the_results_document_is_the_file_it_would_write(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    for n in (2, 1):
        store.add(f"t.py::test_{n}", _record(n * MB, failed=n == 2))
    store.write_results(tmp_path / "r.json", {"tests_monitored": 2})

    document = store.results_document({"tests_monitored": 2})
    written = read_results(tmp_path / "r.json")
    assert list(document["tests"]) == ["t.py::test_1", "t.py::test_2"]
    assert document["tests"] == written["tests"]
    assert document["session"].keys() == written["session"].keys()


def test_records_added_after_a_write_are_kept(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.add("t.py::b", _record(2))
    store.write_results(tmp_path / "first.json", {})
    store.add("t.py::a", _record(1))
    store.write_results(tmp_path / "second.json", {})
    tests = read_results(tmp_path / "second.json")["tests"]
    assert tests == {"t.py::a": _record(1), "t.py::b": _record(2)}


def test_the_spool_leaves_no_file_behind(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "out")
    store.add("t.py::a", _record(1))
    assert os.listdir(tmp_path / "out") == []  # anonymous: deleted however the process ends
    store.write_results(tmp_path / "out" / "r.json", {})
    store.close()
    assert os.listdir(tmp_path / "out") == ["r.json"]


def test_a_test_recorded_again_keeps_its_last_record(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, top=2)
    store.add("t.py::a", _record(9 * MB, failed=True))
    store.add("t.py::b", _record(5 * MB))
    store.add("t.py::a", _record(1 * MB))  # a rerun that passed
    assert len(store) == 2
    assert store.failures == {}
    assert [nodeid for nodeid, _ in store.highest("peak_bytes")] == ["t.py::b", "t.py::a"]
    assert store.highest("peak_bytes")[1][1]["peak_bytes"] == 1 * MB
    store.write_results(tmp_path / "r.json", {})
    assert read_results(tmp_path / "r.json")["tests"]["t.py::a"]["peak_bytes"] == 1 * MB


def test_highest_keeps_the_top_figures_highest_first() -> None:
    store = RecordStore(top=3)
    for n in [4, 9, 1, 7, 3, 8]:
        store.add(f"t.py::{n}", _record(n * MB, growth=-n))
    assert [n for n, _ in store.highest("peak_bytes")] == ["t.py::9", "t.py::8", "t.py::7"]
    assert [n for n, _ in store.highest("growth_bytes")] == ["t.py::1", "t.py::3", "t.py::4"]
    assert store.highest("peak_bytes")[0][1] == {
        "peak_bytes": 9 * MB,
        "growth_bytes": -9,
        "max_pressure": "LOW",
    }


def test_failures_and_the_sampler_kind_are_kept() -> None:
    store = RecordStore()
    store.add("t.py::ok", _record(1))
    store.add("t.py::bad", _record(2, failed=True, report="the report"))
    assert list(store.failures) == ["t.py::bad"]
    assert store.failures["t.py::bad"]["report"] == "the report"
    assert store.sampler_kind == "process-procfs"


@pytest.mark.parametrize("spooled", [True, False], ids=["with-results-file", "summary-only"])
def test_a_summary_is_kept_as_its_summary_record_would_be(tmp_path: Path, spooled: bool) -> None:
    by_summary = RecordStore(tmp_path / "a" if spooled else None, top=3)
    by_record = RecordStore(tmp_path / "b" if spooled else None, top=3)
    by_summary.add("t.py::a", _record(9 * MB, failed=True))
    by_record.add("t.py::a", _record(9 * MB, failed=True))
    for n, (peak, growth, pressure) in enumerate([(3 * MB, -5, "LOW"), (8 * MB, 7, "HIGH")]):
        by_summary.add_summary(f"t.py::{n}", peak, growth, pressure)
        by_record.add(f"t.py::{n}", summary_record(peak, growth, pressure))
    by_summary.add_summary("t.py::a", MB, 0, "LOW")  # a rerun that passed
    by_record.add("t.py::a", summary_record(MB, 0, "LOW"))
    assert by_summary.failures == by_record.failures == {}
    for key in ("peak_bytes", "growth_bytes"):
        assert by_summary.highest(key) == by_record.highest(key)
    assert by_summary.highest("peak_bytes")[0] == (
        "t.py::1",
        {"peak_bytes": 8 * MB, "growth_bytes": 7, "max_pressure": "HIGH"},
    )
    if spooled:
        by_summary.write_results(tmp_path / "a.json", {})
        by_record.write_results(tmp_path / "b.json", {})
        tests = [read_results(tmp_path / name)["tests"] for name in ("a.json", "b.json")]
        assert tests[0] == tests[1]
        assert tests[0]["t.py::0"]["peak_bytes"] == 3 * MB


def test_a_record_json_cannot_hold_is_refused_before_anything_is_kept(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with pytest.raises(ValueError):
        store.add("t.py::nan", _record(1, rate_bytes_per_s=math.inf))
    assert len(store) == 0
    store.add("t.py::ok", _record(1))
    store.write_results(tmp_path / "r.json", {})
    assert list(json.loads((tmp_path / "r.json").read_text())["tests"]) == ["t.py::ok"]


def test_an_encoded_record_is_kept_as_the_record_itself(tmp_path: Path) -> None:
    records = {"t.py::ok": _record(1), "t.py::bad": _record(2 * MB, failed=True, report="why")}
    direct, encoded = RecordStore(tmp_path / "a"), RecordStore(tmp_path / "b")
    for nodeid, record in records.items():
        direct.add(nodeid, record)
        encoded.add_encoded(nodeid, encode_record(record))
    direct.write_results(tmp_path / "direct.json", {})
    encoded.write_results(tmp_path / "encoded.json", {})
    assert (
        read_results(tmp_path / "encoded.json")["tests"]
        == read_results(tmp_path / "direct.json")["tests"]
        == records
    )
    assert encoded.failures == direct.failures == {"t.py::bad": records["t.py::bad"]}
    assert encoded.highest("peak_bytes") == direct.highest("peak_bytes")
    assert encoded.sampler_kind == "process-procfs"


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        json.dumps(_record(1)) + "\n" + json.dumps(_record(2)),
        '{"verdict": "pass"}',
    ],
    ids=["not-json", "not-an-object", "two-lines", "no-figures"],
)
def test_an_encoded_line_that_is_not_a_record_is_refused_before_anything_is_kept(
    tmp_path: Path, line: str
) -> None:
    store = RecordStore(tmp_path)
    with pytest.raises(ValueError):
        store.add_encoded("t.py::x", line)
    assert len(store) == 0
    store.write_results(tmp_path / "r.json", {})
    assert read_results(tmp_path / "r.json")["tests"] == {}


def test_encoding_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError):
        encode_record(_record(1, rate_bytes_per_s=math.nan))
    assert "\n" not in encode_record(_record(1, message="two\nlines"))


def test_without_a_spool_folder_there_is_no_results_file(tmp_path: Path) -> None:
    store = RecordStore()
    store.add("t.py::a", _record(1))
    with pytest.raises(RuntimeError, match="no records"):
        store.write_results(tmp_path / "r.json", {})
    assert not (tmp_path / "r.json").exists()


def test_an_empty_store_writes_an_empty_results_file(tmp_path: Path) -> None:
    RecordStore(tmp_path).write_results(tmp_path / "r.json", {})
    assert read_results(tmp_path / "r.json")["tests"] == {}


@pytest.mark.parametrize("spooled", [True, False], ids=["with-results-file", "summary-only"])
def test_memory_held_per_test_is_under_a_kilobyte(tmp_path: Path, spooled: bool) -> None:
    """The issue's target: a 100,000-test session must not hold its records.

    A full record (every results key and its phases) is several kilobytes in
    memory; the store keeps the node id and an offset.  Node ids are made
    before measuring: pytest holds them anyway (its items)."""
    tests = 5_000
    full = _record(
        3 * MB,
        MB,
        rate_bytes_per_s=None,
        samples=12,
        interval_p50_ms=1.0,
        interval_p99_ms=1.2,
        peak_source="kernel-hwm",
        violations=[],
        phases={phase: {"peak_bytes": 1, "growth_bytes": 0} for phase in ("setup", "call")},
    )
    nodeids = [f"tests/test_module.py::TestClass::test_case[{n}-param]" for n in range(tests)]
    store = RecordStore(tmp_path if spooled else None)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, nodeid in enumerate(nodeids):
            store.add(nodeid, dict(full, peak_bytes=n))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / tests < 1024
