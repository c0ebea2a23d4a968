"""The investigator's file checks: each planted condition is found and named exactly.

Every test writes a small ``automaton.jsonl`` (or a snapshot folder) into a
tmp folder with one condition planted, and asserts that the check names it:
which ids, which lines, which object and field, how many.  Clean files give
no findings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_automem.automaton.store import Automaton, AutomatonFormatError
from pytest_automem.investigator.file_checks import (
    FILE_CHECKS,
    SNAPSHOT_CHECK,
    check_duplicate_ids,
    check_execution_history,
    check_large_arrays,
    check_object_efficiency,
    check_snapshots,
    investigate_file,
)
from pytest_automem.investigator.findings import Severity
from pytest_automem.investigator.render import render_json, render_markdown, render_text

MIB = 1 << 20


def write_jsonl(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")
    return path


def compact_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    """Forty small objects, unique ids, short lists: nothing to report."""
    objects = [
        {"id": f"obj-{i}", "kind": "state", "values": list(range(20)), "history": ["a", "b"]}
        for i in range(40)
    ]
    return write_jsonl(tmp_path / "automaton.jsonl", objects)


def test_clean_file_gives_no_findings(clean: Path) -> None:
    automaton = Automaton(clean)
    assert check_duplicate_ids(automaton) == []
    assert check_large_arrays(automaton) == []
    assert check_execution_history(automaton) == []
    assert check_object_efficiency(automaton, None) == []
    investigation = investigate_file(clean)
    assert investigation.findings == ()
    assert investigation.figures["objects"] == 40
    assert investigation.figures["duplicate ids"] == 0


# --------------------------------------------------------------------------- duplicates


def test_duplicate_ids_named_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    ids = ["a", "evt-7", "b", "evt-7", "c", "x", "evt-7", "x"]
    write_jsonl(path, [{"id": object_id, "n": n} for n, object_id in enumerate(ids)])

    [finding] = check_duplicate_ids(Automaton(path))

    assert finding.check == "duplicate-ids"
    assert finding.severity is Severity.WARNING
    assert finding.evidence["duplicated_ids"] == 2
    assert finding.evidence["extra_copies"] == 3
    assert finding.evidence["lines"] == {"evt-7": [2, 4, 7], "x": [6, 8]}
    # Most copies first.
    assert finding.details == ('id "evt-7": lines 2, 4, 7', 'id "x": lines 6, 8')
    assert "2 ids" in finding.summary and "3 extra copies" in finding.summary
    assert "strict=True" in finding.recommendation


def test_duplicate_details_keep_every_id(tmp_path: Path) -> None:
    # The finding keeps every id (the JSON report is read by machines);
    # only the text renderers bound what they show.
    path = tmp_path / "automaton.jsonl"
    objects = [{"id": f"id-{i % 100}"} for i in range(800)]  # 100 ids, 8 copies each
    write_jsonl(path, objects)

    [finding] = check_duplicate_ids(Automaton(path))

    assert finding.evidence["duplicated_ids"] == 100
    assert finding.evidence["extra_copies"] == 700
    assert len(finding.details) == 100
    assert finding.details[0] == 'id "id-0": lines 1, 101, 201, 301, 401 … (8 in all)'
    assert finding.details[-1] == 'id "id-99": lines 100, 200, 300, 400, 500 … (8 in all)'
    assert len(finding.evidence["lines"]) == 100
    assert finding.evidence["lines"]["id-0"] == [1, 101, 201, 301, 401, 501, 601, 701]


# --------------------------------------------------------------------------- large arrays


def test_large_array_named_by_object_field_and_count(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    samples = list(range(100_000))
    write_jsonl(
        path,
        [
            {"id": "small", "payload": {"samples": [1, 2, 3]}},
            {"id": "sensor-42", "payload": {"unit": "ms", "samples": samples}},
        ],
    )

    [finding] = check_large_arrays(Automaton(path))

    assert finding.check == "large-arrays"
    [array] = finding.evidence["largest"]
    assert array == {
        "id": "sensor-42",
        "line": 2,
        "path": "payload.samples",
        "elements": 100_000,
        "bytes": compact_size(samples),  # exact JSON size, as saved
    }
    assert finding.details[0].startswith('object "sensor-42" (line 2): payload.samples has 100,000')
    assert "payload.samples" in finding.summary
    assert "bulk data" in finding.recommendation


def test_large_arrays_nested_in_lists_and_large_by_bytes(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    blobs = ["x" * 200_000] * 6  # six elements, 1.2 MB
    write_jsonl(
        path,
        [
            {"id": "batches", "batches": [{"values": [0]}, {"values": [0.5] * 12_000}]},
            # Large in bytes only, and inside an outer list that is large only because
            # of it: the inner list is reported, the outer one is not.
            {"id": "blobs", "outer": [[*blobs], 1]},
        ],
    )

    [finding] = check_large_arrays(Automaton(path))

    found = {(a["id"], a["path"]): a for a in finding.evidence["largest"]}
    assert set(found) == {("batches", "batches[1].values"), ("blobs", "outer[0]")}
    assert found["blobs", "outer[0]"]["elements"] == 6
    assert found["blobs", "outer[0]"]["bytes"] == compact_size(blobs)
    assert found["batches", "batches[1].values"]["elements"] == 12_000
    # Largest first.
    assert finding.evidence["largest"][0]["id"] == "blobs"


def test_large_array_thresholds_are_settings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "automaton.jsonl", [{"id": "a", "v": list(range(50))}])
    automaton = Automaton(path)
    assert check_large_arrays(automaton) == []
    [finding] = check_large_arrays(automaton, min_elements=50)
    assert finding.evidence["largest"][0]["elements"] == 50
    [finding] = check_large_arrays(automaton, min_elements=10**9, min_bytes=100)
    assert finding.evidence["largest"][0]["bytes"] == compact_size(list(range(50)))


def test_array_size_counts_escapes_and_utf8(tmp_path: Path) -> None:
    values = ['q"uote', "back\\slash", "bell\x07", "émoji 🧠", None, True, False, 1.5, -3]
    path = write_jsonl(tmp_path / "automaton.jsonl", [{"id": "a", "v": values}])
    [finding] = check_large_arrays(Automaton(path), min_elements=len(values))
    assert finding.evidence["largest"][0]["bytes"] == compact_size(values)


# --------------------------------------------------------------------------- history


def test_unbounded_execution_history_of_the_automaton(tmp_path: Path) -> None:
    automaton = Automaton(tmp_path / "automaton.jsonl")
    for i in range(600):
        automaton.add({"id": f"obj-{i}"})

    [finding] = check_execution_history(automaton)

    assert finding.check == "execution-history"
    assert finding.evidence["entries"] == 600
    assert finding.evidence["limit"] == 500
    assert finding.evidence["actions"] == {"add": 600}
    assert "max_execution_history=500" in finding.recommendation
    assert check_execution_history(automaton, limit=600) == []


def test_unbounded_history_saved_in_an_object(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    entries = [{"action": "step", "n": n} for n in range(600)]
    write_jsonl(
        path,
        [
            {"id": "fine", "history": entries[:500]},  # at the limit: not longer than it
            {"id": "runner", "history": entries},
            {"id": "nested", "state": {"executionHistory": entries + entries}},
        ],
    )

    [finding] = check_execution_history(Automaton(path))

    assert finding.check == "execution-history"
    assert finding.evidence["fields"] == 2
    assert finding.evidence["longest"] == [
        {"id": "nested", "line": 3, "path": "state.executionHistory", "entries": 1200},
        {"id": "runner", "line": 2, "path": "history", "entries": 600},
    ]
    assert 'object "runner" (line 2): history has 600 entries' in finding.details


# --------------------------------------------------------------------------- efficiency


def test_low_object_efficiency_from_file_size(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    write_jsonl(path, [{"id": f"o{i}", "blob": "x" * 300_000} for i in range(5)])

    [finding] = check_object_efficiency(Automaton(path), None)

    assert finding.check == "object-efficiency"
    assert finding.evidence["objects"] == 5
    assert finding.evidence["bytes"] == path.stat().st_size
    assert finding.evidence["basis"] == "file size"
    assert finding.evidence["objects_per_mb"] == round(5 / (path.stat().st_size / MIB), 3)
    assert "target > 10" in finding.summary


def test_object_efficiency_from_given_memory(clean: Path) -> None:
    automaton = Automaton(clean)  # 40 objects
    [finding] = check_object_efficiency(automaton, 20 * MIB)
    assert finding.evidence["objects_per_mb"] == 2.0
    assert finding.evidence["basis"] == "memory"
    assert check_object_efficiency(automaton, 1 * MIB) == []
    assert check_object_efficiency(Automaton(clean.with_name("empty.jsonl")), None) == []


def test_object_efficiency_of_an_unsaved_automaton(tmp_path: Path) -> None:
    automaton = Automaton(tmp_path / "never-saved.jsonl")
    for i in range(3):
        automaton.add({"id": f"o{i}", "blob": "x" * 200_000})
    [finding] = check_object_efficiency(automaton, None)
    assert finding.evidence["basis"] == "size as JSON lines"
    assert finding.evidence["bytes"] == sum(compact_size(obj) + 1 for obj in automaton)


# --------------------------------------------------------------------------- snapshots


def make_snapshots(folder: Path, count: int, size: int = 100) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"snapshot-20260101T0000{i:02d}.000000-1-w.jsonl").write_bytes(b"x" * size)
    (folder / "notes.txt").write_text("not a snapshot")


def test_too_many_snapshot_files(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    make_snapshots(folder, 60)

    [finding] = check_snapshots(folder)

    assert finding.check == SNAPSHOT_CHECK
    assert finding.evidence["files"] == 60
    assert finding.evidence["max_files"] == 50
    assert finding.details[0] == "oldest: snapshot-20260101T000000.000000-1-w.jsonl (100 B)"
    assert "--keep 50" in finding.recommendation
    assert check_snapshots(folder, max_files=60) == []


def test_too_large_snapshot_files(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    make_snapshots(folder, 3, size=1000)
    [finding] = check_snapshots(folder, max_total_bytes=2000)
    assert finding.evidence["total_bytes"] == 3000
    assert check_snapshots(folder) == []


def test_snapshot_path_must_be_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(NotADirectoryError):
        check_snapshots(file)
    with pytest.raises(FileNotFoundError):
        check_snapshots(tmp_path / "missing")


# --------------------------------------------------------------------------- investigate_file


def test_investigate_file_runs_every_check(tmp_path: Path) -> None:
    path = tmp_path / "automaton.jsonl"
    write_jsonl(
        path,
        [
            {"id": "dup"},
            {"id": "dup"},
            {"id": "big", "samples": list(range(200_000))},
            {"id": "h", "log": ["e"] * 501},
        ],
    )
    folder = tmp_path / "snaps"
    make_snapshots(folder, 51)

    investigation = investigate_file(path, snapshots=folder)

    checks = {finding.check for finding in investigation.findings}
    assert checks == {*FILE_CHECKS, SNAPSHOT_CHECK}
    figures = investigation.figures
    assert figures["objects"] == 4
    assert figures["duplicate ids"] == 1
    assert figures["longest history field"] == 501
    assert figures["snapshot files"].startswith("51 ")
    for text in (render_text(investigation), render_markdown(investigation)):
        assert '"dup"' in text
    assert json.loads(render_json(investigation))["findings"]


def test_investigate_file_input_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        investigate_file(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(AutomatonFormatError, match=r"bad\.jsonl:2: invalid JSON"):
        investigate_file(bad)
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"id": "a"}\n{"id": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(AutomatonFormatError, match=r"deep\.jsonl:2: invalid JSON"):
        investigate_file(deep)
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a"}, {"id": "a"}])
    with pytest.raises(AutomatonFormatError, match=r"dup\.jsonl:2: duplicate id"):
        investigate_file(dup, strict=True)
    with pytest.raises(NotADirectoryError):
        investigate_file(dup, snapshots=dup)
