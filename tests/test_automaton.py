"""Automaton: loading, validation with file:line errors, duplicates, atomic saves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import NEEDS_DIGIT_LIMIT, NESTED_TOO_DEEP, TOO_MANY_DIGITS

from pytest_automem.automaton import (
    Automaton,
    AutomatonFormatError,
    append_jsonl_durably,
    archive_path_for,
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    return tmp_path / "automaton.jsonl"


def test_loads_objects_in_file_order_skipping_blank_lines(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a", "n": 1}', "", '{"id": "b"}', "   ", '{"id": "c"}'])

    automaton = Automaton(jsonl)

    assert [obj["id"] for obj in automaton.objects] == ["a", "b", "c"]
    assert automaton.objects[0] == {"id": "a", "n": 1}
    assert automaton.line_numbers == [1, 3, 5]
    assert len(automaton) == 3
    [entry] = automaton.execution_history
    assert entry["action"] == "load"
    assert entry["objects"] == 3
    assert isinstance(entry["time"], float)


def test_missing_file_is_an_empty_automaton(jsonl: Path) -> None:
    automaton = Automaton(jsonl)

    assert automaton.objects == []
    assert automaton.execution_history == []
    assert not jsonl.exists()


def test_add_appends_newest_and_records_history(jsonl: Path) -> None:
    ticks = iter([1.0, 2.0])
    automaton = Automaton(jsonl, clock=lambda: next(ticks))

    automaton.add({"id": "x", "payload": [1, 2]})
    automaton.add({"id": "y"})

    assert [obj["id"] for obj in automaton] == ["x", "y"]
    assert automaton.line_numbers == [None, None]
    assert automaton.execution_history == [
        {"action": "add", "time": 1.0, "id": "x", "objects": 1},
        {"action": "add", "time": 2.0, "id": "y", "objects": 2},
    ]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (["id", "a"], "expected a JSON object, got array"),
        ({"name": "a"}, 'object has no "id"'),
        ({"id": 7}, '"id" must be a string, got number 7'),
        ({"id": None}, '"id" must be a string, got null'),
    ],
)
def test_add_rejects_what_the_file_format_rejects(jsonl: Path, obj: object, message: str) -> None:
    automaton = Automaton(jsonl)

    with pytest.raises(ValueError, match="cannot add") as info:
        automaton.add(obj)  # type: ignore[arg-type]

    assert str(info.value).endswith(message)
    assert automaton.objects == []


def test_save_writes_compact_lines_and_round_trips(jsonl: Path) -> None:
    automaton = Automaton(jsonl)
    automaton.add({"id": "a", "text": "é", "items": [1, 2]})
    automaton.add({"id": "b"})

    size = automaton.save()

    assert jsonl.read_text(encoding="utf-8") == (
        '{"id":"a","text":"é","items":[1,2]}\n{"id":"b"}\n'
    )
    assert size == jsonl.stat().st_size
    assert automaton.line_numbers == [1, 2]
    assert automaton.execution_history[-1]["action"] == "save"
    assert automaton.execution_history[-1]["objects"] == 2
    assert Automaton(jsonl).objects == automaton.objects


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_crash_during_save_keeps_old_file_and_leaves_no_temp(
    jsonl: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    write_lines(jsonl, ['{"id": "old"}'])
    before = jsonl.read_bytes()
    automaton = Automaton(jsonl)
    automaton.add({"id": "new"})

    def crash(*args: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match="simulated crash"):
        automaton.save()
    monkeypatch.undo()

    assert jsonl.read_bytes() == before
    assert sorted(p.name for p in jsonl.parent.iterdir()) == ["automaton.jsonl"]


def test_save_of_unserialisable_object_names_it_and_keeps_file(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "old"}'])
    automaton = Automaton(jsonl)
    automaton.add({"id": "bad", "value": {1, 2}})

    with pytest.raises(TypeError, match="object 'bad' is not JSON-serialisable"):
        automaton.save()

    assert jsonl.read_text() == '{"id": "old"}\n'
    assert sorted(p.name for p in jsonl.parent.iterdir()) == ["automaton.jsonl"]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (
            '{"id": "b",',
            "invalid JSON: Expecting property name enclosed in double quotes (column 12)",
        ),
        ("not json", "invalid JSON: Expecting value (column 1)"),
        ('["b"]', "expected a JSON object, got array"),
        ('"b"', "expected a JSON object, got string"),
        ('{"name": "b"}', 'object has no "id"'),
        ('{"id": 2}', '"id" must be a string, got number 2'),
        ('{"id": {"x": 1}}', '"id" must be a string, got object {"x": 1}'),
        pytest.param(
            '{"id": "b", "n": ' + TOO_MANY_DIGITS + "}",
            "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion",
            marks=NEEDS_DIGIT_LIMIT,
            id="integer-past-the-digit-limit",
        ),
        pytest.param(
            '{"id": "b", "x": ' + NESTED_TOO_DEEP + "}",
            "invalid JSON: nested too deeply",
            id="nested-too-deeply",
        ),
    ],
)
def test_malformed_line_names_file_line_and_problem(
    jsonl: Path, bad_line: str, reason: str
) -> None:
    write_lines(jsonl, ['{"id": "a"}', "", bad_line, '{"id": "c"}'])
    before = jsonl.read_bytes()

    with pytest.raises(AutomatonFormatError) as info:
        Automaton(jsonl)

    assert str(info.value) == f"{jsonl}:3: {reason}"
    assert (info.value.path, info.value.line, info.value.reason) == (jsonl, 3, reason)
    assert isinstance(info.value, ValueError)
    assert jsonl.read_bytes() == before
    assert sorted(p.name for p in jsonl.parent.iterdir()) == ["automaton.jsonl"]


def test_invalid_utf8_is_a_format_error(jsonl: Path) -> None:
    jsonl.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n')

    with pytest.raises(
        AutomatonFormatError,
        match=r"automaton\.jsonl:2: invalid UTF-8: invalid start byte at byte 9$",
    ):
        Automaton(jsonl)


def test_utf8_byte_order_mark_on_the_first_line_is_allowed(jsonl: Path) -> None:
    jsonl.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')

    assert [obj["id"] for obj in Automaton(jsonl)] == ["a", "b"]


def test_loaded_objects_share_key_strings(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a", "meta": {"k": 1}}', '{"id": "b", "meta": {"k": 2}}'])

    first, second = Automaton(jsonl).objects

    assert [id(key) for key in first] == [id(key) for key in second]
    assert [id(key) for key in first["meta"]] == [id(key) for key in second["meta"]]


def test_duplicate_ids_load_and_are_reported_with_lines(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a"}', '{"id": "b"}', '{"id": "a", "v": 2}', '{"id": "a"}'])

    automaton = Automaton(jsonl)

    assert len(automaton) == 4
    assert automaton.duplicate_ids() == {"a": [1, 3, 4]}
    assert automaton.execution_history[0]["duplicate_ids"] == 1


def test_strict_refuses_duplicates_naming_both_lines(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a"}', '{"id": "b"}', '{"id": "a"}'])

    with pytest.raises(AutomatonFormatError) as info:
        Automaton(jsonl, strict=True)

    assert str(info.value) == f"{jsonl}:3: duplicate id 'a' (first on line 1)"


def test_strict_add_refuses_a_present_id(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a"}'])
    automaton = Automaton(jsonl, strict=True)

    with pytest.raises(ValueError, match="duplicate id 'a'"):
        automaton.add({"id": "a"})
    automaton.add({"id": "b"})

    assert [obj["id"] for obj in automaton] == ["a", "b"]


def test_objects_property_is_a_copy(jsonl: Path) -> None:
    automaton = Automaton(jsonl)
    automaton.add({"id": "a"})

    automaton.objects.clear()
    automaton.execution_history.clear()

    assert len(automaton.objects) == 1
    assert len(automaton.execution_history) == 1


def test_archive_path_is_beside_the_file(tmp_path: Path) -> None:
    assert archive_path_for(tmp_path / "automaton.jsonl") == tmp_path / "automaton.trimmed.jsonl"
    assert archive_path_for(tmp_path / "state") == tmp_path / "state.trimmed.jsonl"


def test_append_repairs_a_torn_last_line(tmp_path: Path) -> None:
    archive = tmp_path / "a.trimmed.jsonl"
    archive.write_bytes(b'{"id": "torn"')

    added = append_jsonl_durably(archive, [{"id": "x"}])

    assert archive.read_bytes() == b'{"id": "torn"\n{"id":"x"}\n'
    assert added == len(b'\n{"id":"x"}\n')


def test_append_rolls_back_when_an_object_fails(tmp_path: Path) -> None:
    archive = tmp_path / "a.trimmed.jsonl"
    archive.write_bytes(b'{"id":"kept"}\n')

    with pytest.raises(TypeError, match="'bad'"):
        append_jsonl_durably(archive, [{"id": "ok"}, {"id": "bad", "v": object()}])

    assert archive.read_bytes() == b'{"id":"kept"}\n'


def test_large_archive_append_is_chunked_and_complete(tmp_path: Path) -> None:
    archive = tmp_path / "big.trimmed.jsonl"
    objects = [{"id": f"o{i}", "pad": "x" * 100} for i in range(20_000)]

    append_jsonl_durably(archive, objects)

    with archive.open(encoding="utf-8") as handle:
        assert [json.loads(line) for line in handle] == objects
