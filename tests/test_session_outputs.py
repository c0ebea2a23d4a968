"""The session's outputs for people: terminal summary lines and report files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_automem.outputs.session_outputs import (
    append_step_summary,
    junit_attachment,
    report_file_name,
    step_summary_markdown,
    summary_lines,
    write_report_files,
)
from pytest_automem.results.records import RecordStore

MB = 1 << 20


def _record(peak: int, growth: int, *, failed: bool = False) -> dict[str, Any]:
    return {
        "peak_bytes": peak,
        "growth_bytes": growth,
        "max_pressure": "LOW",
        "verdict": "fail" if failed else "pass",
        "message": "peak 9.0 MB > budget 1.0 MB (...)" if failed else None,
        "report": "- peak 9.0 MB > budget 1.0 MB\n\nmemory report" if failed else None,
        "failed_on_memory": failed,
    }


RECORDS = {
    "t.py::small": _record(1 * MB, 0),
    "t.py::big": _record(9 * MB, 2 * MB, failed=True),
    "t.py::middle": _record(5 * MB, 4 * MB),
}


def _store(records: dict[str, dict[str, Any]], *, top: int = 5) -> RecordStore:
    store = RecordStore(top=top)
    for nodeid, record in records.items():
        store.add(nodeid, record)
    return store


def test_summary_lists_failures_then_the_largest() -> None:
    lines = summary_lines(_store(RECORDS, top=2), verbosity=0)
    assert lines[0] == "MEMORY FAIL t.py::big: peak 9.0 MB > budget 1.0 MB (...)"
    peak_at = lines.index("highest peak (3 monitored tests):")
    assert "t.py::big" in lines[peak_at + 1]
    assert "t.py::middle" in lines[peak_at + 2]
    growth_at = lines.index("highest growth (3 monitored tests):")
    assert "t.py::middle" in lines[growth_at + 1]
    assert len(lines) == 1 + 2 * (1 + 2)


def test_quiet_summary_shows_failures_and_a_count() -> None:
    assert summary_lines(_store(RECORDS), verbosity=-1) == [
        "MEMORY FAIL t.py::big: peak 9.0 MB > budget 1.0 MB (...)",
        "3 tests monitored, 1 memory failure",
    ]
    one = {"t.py::small": RECORDS["t.py::small"]}
    assert summary_lines(_store(one), verbosity=-1) == ["1 test monitored, 0 memory failures"]


def test_a_fixtures_peak_ranks_its_test_and_is_named_beside_the_call() -> None:
    fixture = dict(
        _record(0, 0),
        phases={
            "setup": {"peak_bytes": 40 * MB, "fixture_peaks_bytes": {"big": 40 * MB, "tiny": 0}},
            "call": {},
            "teardown": {"peak_bytes": 0},
        },
    )
    records = {**RECORDS, "t.py::fixture": fixture}
    lines = summary_lines(_store(records, top=2), verbosity=0)
    peak_at = lines.index("highest peak (4 monitored tests):")
    assert lines[peak_at + 1] == (
        "     40.0 MB  LOW       t.py::fixture  "
        "(setup 40.0 MB in fixture big, call 0 B, teardown 0 B)"
    )
    assert lines[peak_at + 2] == "      9.0 MB  LOW       t.py::big"
    # The step summary ranks and shows the same figure.
    (row,) = [
        line
        for line in step_summary_markdown(_store(records, top=2)).splitlines()
        if line.startswith("| `t.py::fixture`")
    ]
    assert row.startswith("| `t.py::fixture` | 40.0 MB |"), row


def test_an_expected_memory_failure_is_labelled_as_expected() -> None:
    xfailed = dict(RECORDS["t.py::big"], expected_failure=True)
    records = {**RECORDS, "t.py::xfailed": xfailed}
    lines = summary_lines(_store(records), verbosity=0)
    assert lines[:2] == [
        "MEMORY FAIL t.py::big: peak 9.0 MB > budget 1.0 MB (...)",
        "MEMORY XFAIL t.py::xfailed: peak 9.0 MB > budget 1.0 MB (...) (expected)",
    ]
    assert summary_lines(_store(records), verbosity=-1)[-1] == (
        "4 tests monitored, 1 memory failure, 1 expected (xfail)"
    )
    markdown = step_summary_markdown(_store(records))
    assert "| `t.py::xfailed` | peak 9.0 MB > budget 1.0 MB (...) (expected: xfail) |" in markdown


def test_report_files_only_for_failures(tmp_path: Path) -> None:
    written = write_report_files(tmp_path / "reports", RECORDS)
    assert list(written) == ["t.py::big"]
    text = written["t.py::big"].read_text()
    assert text.startswith("t.py::big\nmemory budget exceeded: peak 9.0 MB > budget 1.0 MB")
    assert "memory report" in text


#: Node ids that collided when names were the sanitised id cut to 150 characters.
COLLIDING_IDS = [
    "t.py::test_c[a/b]",
    "t.py::test_c[a?b]",
    "t.py::test_c[" + "x" * 200 + "1]",
    "t.py::test_c[" + "x" * 200 + "2]",
    "t.py::test_Case",
    "t.py::test_case",  # the same file as the one above where case does not count
]
#: Ids with everything a file name cannot hold on Linux, macOS or Windows.
HOSTILE_IDS = [
    "x" * 500,
    "///",
    "..",
    ".hidden/t.py::a",
    "aux.py::test",
    "CON.txt",
    "nul",
    't.py::test[a:b*c?d|e<f>g"h\\i]',
    "t.py::test[trailing. ]",
    "t.py::test[\ud800]",
    "t.py::test[🧠]",
    "t.py::test[\x00\x1b\n]",
    "",
]
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-[0-9a-f]{16}\.txt")
WINDOWS_DEVICES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"{d}{n}" for d in ("com", "lpt") for n in range(10)),
}


def test_report_file_names_are_unique_per_node_id() -> None:
    names = [report_file_name(nodeid) for nodeid in COLLIDING_IDS]
    assert len({name.lower() for name in names}) == len(COLLIDING_IDS)


def test_report_file_names_are_readable_and_the_same_in_every_run() -> None:
    # A literal, not a recomputation: the name must not depend on the run.
    assert (
        report_file_name("tests/a b.py::test[x/y]") == "tests_a_b.py_test_x_y-99d8d40d75757ee4.txt"
    )
    assert report_file_name("///") == "test-732c4e9711639ed1.txt"


@pytest.mark.parametrize("nodeid", HOSTILE_IDS + COLLIDING_IDS)
def test_report_file_names_are_safe_and_bounded(nodeid: str) -> None:
    name = report_file_name(nodeid)
    assert SAFE_NAME.fullmatch(name), name
    assert len(name) <= 101
    assert name.split(".", 1)[0].lower() not in WINDOWS_DEVICES


def test_colliding_ids_get_a_report_file_each(tmp_path: Path) -> None:
    failed = RECORDS["t.py::big"]
    records = {nodeid: dict(failed, message=f"message of {nodeid}") for nodeid in COLLIDING_IDS}
    written = write_report_files(tmp_path, records)
    assert len(set(written.values())) == len(COLLIDING_IDS)
    assert len(list(tmp_path.iterdir())) == len(COLLIDING_IDS)
    for nodeid, path in written.items():
        expected = f"{nodeid}\nmemory budget exceeded: message of {nodeid}\n"
        assert path.read_text().startswith(expected)


def test_junit_attachment_sets_the_message_only_for_memory_failures(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    attachment = junit_attachment("t.py::big", RECORDS["t.py::big"], path)
    assert attachment.failure_message == "memory budget exceeded: peak 9.0 MB > budget 1.0 MB (...)"
    assert attachment.attachment_path == str(path.resolve())
    own = dict(RECORDS["t.py::big"], failed_on_memory=False)
    assert junit_attachment("t.py::big", own, None).failure_message is None


def test_step_summary_has_failures_reports_and_peaks() -> None:
    markdown = step_summary_markdown(_store(RECORDS, top=2))
    assert markdown.startswith("## pytest-automem: memory\n")
    assert "**1 memory failure** among 3 monitored tests." in markdown
    assert "| `t.py::big` | peak 9.0 MB > budget 1.0 MB (...) |" in markdown
    assert "<details><summary>t.py::big: report</summary>" in markdown
    assert markdown.index("t.py::big` | 9.0 MB") < markdown.index("t.py::middle` | 5.0 MB")
    assert "t.py::small` | 1.0 MB" not in markdown  # top 2 only


def test_step_summary_is_appended(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    append_step_summary(target, step_summary_markdown(_store(RECORDS)))
    text = target.read_text()
    assert text.startswith("earlier step\n## pytest-automem: memory")
