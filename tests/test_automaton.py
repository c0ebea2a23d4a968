"""Automaton: loading, validation with file:line errors, duplicates, atomic saves,
the writers' lock, concurrent writers and stale temp files."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NEEDS_DIGIT_LIMIT, NESTED_TOO_DEEP, TOO_MANY_DIGITS

from pytest_automem.automaton import store as automaton_module
from pytest_automem.automaton.store import (
    Automaton,
    AutomatonFormatError,
    ConcurrentWriteError,
    append_jsonl_durably,
    archive_path_for,
)
from pytest_automem.base.filelock import lock_path_for

ROOT = Path(__file__).resolve().parents[1]


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
    assert sorted(p.name for p in jsonl.parent.iterdir()) == [
        ".automaton.jsonl.lock",
        "automaton.jsonl",
    ]
    automaton.save()  # the failed save is not mistaken for another writer's
    assert [obj["id"] for obj in Automaton(jsonl)] == ["old", "new"]


def test_save_of_an_object_changed_after_add_names_it_and_keeps_file(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "old"}'])
    automaton = Automaton(jsonl)
    obj = {"id": "bad", "value": [1]}
    automaton.add(obj)
    obj["value"] = {1, 2}  # the dicts are shared, so add's check can be outdated

    with pytest.raises(
        TypeError,
        match=r"""object 'bad' is not JSON-serialisable: \["value"\] is a set value""",
    ):
        automaton.save()

    assert jsonl.read_text() == '{"id": "old"}\n'
    assert sorted(p.name for p in jsonl.parent.iterdir()) == [
        ".automaton.jsonl.lock",
        "automaton.jsonl",
    ]


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (
            {"id": "bad-\ud800"},
            """["id"] holds a lone surrogate '\\ud800', which UTF-8 cannot encode""",
        ),
        (
            {"id": "t", "tags": ["ok", "x\udc80"]},
            """["tags"][1] holds a lone surrogate '\\udc80', which UTF-8 cannot encode""",
        ),
        (
            {"id": "k", "meta": {"\udfff": 1}},
            """a key of ["meta"] holds a lone surrogate '\\udfff', which UTF-8 cannot encode""",
        ),
        ({"id": "n", "v": float("nan")}, """["v"] is nan: JSON has no NaN or infinity"""),
        (
            {"id": "i", "v": [1, {"w": float("inf")}]},
            """["v"][1]["w"] is inf: JSON has no NaN or infinity""",
        ),
        ({"id": "m", "v": -float("inf")}, """["v"] is -inf: JSON has no NaN or infinity"""),
        ({"id": "s", "v": {1, 2}}, """["v"] is a set value, which JSON cannot hold"""),
        ({"id": "b", "v": b"raw"}, """["v"] is a bytes value, which JSON cannot hold"""),
        (
            {"id": "o", "v": {(1, 2): "tuple key"}},
            """a key of ["v"] is a tuple value, which JSON cannot hold""",
        ),
        pytest.param(
            {"id": "big", "n": 10**5000},
            """["n"] is an int of 16610 bits, too long to write as text""",
            marks=NEEDS_DIGIT_LIMIT,
            id="int-past-the-digit-limit",
        ),
    ],
)
def test_add_refuses_what_cannot_be_written_naming_the_id(
    jsonl: Path, obj: dict[str, object], problem: str
) -> None:
    automaton = Automaton(jsonl)
    automaton.add({"id": "fine"})

    with pytest.raises(ValueError) as info:
        automaton.add(obj)

    assert str(info.value) == f"cannot add object {obj['id']!r}: {problem}"
    assert [o["id"] for o in automaton] == ["fine"]
    automaton.save()  # nothing unwritable got in, so saving still works
    assert [o["id"] for o in Automaton(jsonl)] == ["fine"]


def test_add_names_a_circular_reference(jsonl: Path) -> None:
    obj: dict[str, object] = {"id": "loop", "items": []}
    obj["items"].append(obj)  # type: ignore[attr-defined]

    with pytest.raises(
        ValueError, match=r"""cannot add object 'loop': \["items"\]\[0\] contains"""
    ):
        Automaton(jsonl).add(obj)


def test_add_names_nesting_too_deep_in_one_short_line(jsonl: Path) -> None:
    deep: list[object] = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]

    with pytest.raises(ValueError) as info:
        Automaton(jsonl).add({"id": "deep", "v": deep})

    message = str(info.value)
    assert message.startswith("""cannot add object 'deep': ["v"][0][0]""")
    assert message.endswith("... is nested too deeply")
    assert len(message) < 150


def test_strict_add_of_an_unwritable_object_keeps_its_id_free(jsonl: Path) -> None:
    automaton = Automaton(jsonl, strict=True)

    with pytest.raises(ValueError, match="lone surrogate"):
        automaton.add({"id": "a", "v": "\ud800"})
    automaton.add({"id": "a", "v": "fixed"})

    assert [obj["v"] for obj in automaton] == ["fixed"]


def test_surrogate_pairs_and_control_escapes_load_and_save(jsonl: Path) -> None:
    jsonl.write_text('{"id": "\\ud83d\\ude00", "c": "\\u0001"}\n', encoding="utf-8")

    automaton = Automaton(jsonl)
    automaton.save()

    assert automaton.objects == [{"id": "\U0001f600", "c": "\x01"}]
    assert Automaton(jsonl).objects == automaton.objects


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
        ('{"id": "b", "v": NaN}', "invalid JSON: NaN is not a JSON number"),
        ('{"id": "b", "v": [Infinity]}', "invalid JSON: Infinity is not a JSON number"),
        ('{"id": "b", "v": -Infinity}', "invalid JSON: -Infinity is not a JSON number"),
        ('{"id": "b", "v": 1e400}', "invalid JSON: 1e400 is out of range for a float"),
        (
            '{"id": "b-\\ud800"}',
            """["id"] holds a lone surrogate '\\ud800', which UTF-8 cannot encode""",
        ),
        (
            '{"id": "b", "\\udc00": 1}',
            "a key of the object holds a lone surrogate '\\udc00', which UTF-8 cannot encode",
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


def test_archive_name_comes_from_the_full_file_name(tmp_path: Path) -> None:
    names = ["ev.jsonl", "ev.json", "ev", "ev.trimmed.jsonl"]

    archives = [archive_path_for(tmp_path / name) for name in names]

    assert archives == [
        tmp_path / "ev.jsonl.trimmed.jsonl",
        tmp_path / "ev.json.trimmed.jsonl",
        tmp_path / "ev.trimmed.jsonl",
        tmp_path / "ev.trimmed.jsonl.trimmed.jsonl",
    ]


def test_append_repairs_a_torn_last_line(tmp_path: Path) -> None:
    archive = tmp_path / "a.trimmed.jsonl"
    archive.write_bytes(b'{"id": "torn"')

    added = append_jsonl_durably(archive, [{"id": "x"}])

    assert archive.read_bytes() == b'{"id": "torn"\n{"id":"x"}\n'
    assert added == len(b'\n{"id":"x"}\n')


def test_failed_append_never_cuts_rows_another_writer_appended(tmp_path: Path) -> None:
    archive = tmp_path / "a.trimmed.jsonl"
    archive.write_bytes(b'{"id":"kept"}\n')
    big = "x" * (600 << 10)  # two of these fill a chunk, so it is written before the failure

    def objects() -> Iterator[dict[str, object]]:
        yield from ({"id": f"ours-{i}", "pad": big} for i in range(3))
        with archive.open("ab") as other:  # a writer that takes no lock appends meanwhile
            other.write(b'{"id":"theirs"}\n')
        yield {"id": "bad", "v": object()}

    with pytest.raises(TypeError, match="'bad'"):
        append_jsonl_durably(archive, objects())

    ids = [json.loads(line)["id"] for line in archive.read_bytes().splitlines()]
    assert ids[0] == "kept"
    assert "theirs" in ids


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


# --- the writers' lock and concurrent writers -------------------------------------------


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports this checkout of the package."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def lock_is_held(target: Path) -> bool:
    """Whether someone holds the lock of ``target`` (tried from a separate descriptor)."""
    fd = os.open(lock_path_for(target), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_save_holds_the_lock_while_it_writes(jsonl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    automaton = Automaton(jsonl)
    automaton.add({"id": "a"})
    seen: list[bool] = []
    write = automaton_module.atomic_write_lines

    def probing_write(path: Path, lines: Iterator[str]) -> None:
        seen.append(lock_is_held(jsonl))
        write(path, lines)

    monkeypatch.setattr(automaton_module, "atomic_write_lines", probing_write)
    automaton.save()

    assert seen == [True]
    assert not lock_is_held(jsonl)


def test_second_automaton_gets_a_clear_error_instead_of_overwriting(jsonl: Path) -> None:
    first, second = Automaton(jsonl), Automaton(jsonl)
    first.add({"id": "first-1"})
    first.save()
    second.add({"id": "second-1"})

    with pytest.raises(ConcurrentWriteError) as info:
        second.save()

    assert str(info.value).startswith(f"{jsonl}: changed on disk since this automaton loaded")
    assert info.value.path == jsonl
    assert [obj["id"] for obj in Automaton(jsonl)] == ["first-1"]
    reloaded = Automaton(jsonl)  # the documented way on: load again, re-apply
    reloaded.add({"id": "second-1"})
    reloaded.save()
    assert [obj["id"] for obj in Automaton(jsonl)] == ["first-1", "second-1"]


def test_concurrent_write_error_is_importable_from_the_package(jsonl: Path) -> None:
    """Users of the public ``Automaton`` get this error, so they must be able to catch it."""
    import pytest_automem

    assert "ConcurrentWriteError" in pytest_automem.__all__
    first, second = Automaton(jsonl), Automaton(jsonl)
    first.save()
    with pytest.raises(pytest_automem.ConcurrentWriteError):
        second.save()


def test_a_file_changed_by_a_writer_without_the_lock_is_not_overwritten(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "a"}'])
    automaton = Automaton(jsonl)
    automaton.add({"id": "mine"})
    automaton.save()
    write_lines(jsonl, ['{"id": "a"}', '{"id": "edited-by-hand"}'])

    with pytest.raises(ConcurrentWriteError):
        automaton.save()

    assert [obj["id"] for obj in Automaton(jsonl)] == ["a", "edited-by-hand"]


def test_a_file_created_since_an_empty_load_is_not_overwritten(jsonl: Path) -> None:
    empty = Automaton(jsonl)
    other = Automaton(jsonl)
    other.add({"id": "theirs"})
    other.save()
    empty.add({"id": "mine"})

    with pytest.raises(ConcurrentWriteError):
        empty.save()

    assert [obj["id"] for obj in Automaton(jsonl)] == ["theirs"]


def test_one_automaton_saves_again_and_again_without_conflict(jsonl: Path) -> None:
    automaton = Automaton(jsonl)

    for i in range(50):
        automaton.add({"id": f"o{i}"})
        automaton.save()

    assert len(Automaton(jsonl)) == 50


SAVE_AFTER_GO = """
import sys
from pytest_automem.automaton.store import Automaton, ConcurrentWriteError

name, path = sys.argv[1], sys.argv[2]
automaton = Automaton(path)
for i in range(100):
    automaton.add({"id": f"{name}-{i}"})
print("loaded", flush=True)
sys.stdin.readline()
try:
    automaton.save()
except ConcurrentWriteError as error:
    print(f"error: {error}", flush=True)
    again = Automaton(path)
    seen = len(again)
    for obj in automaton.objects:
        again.add(obj)
    again.save()
    print(f"saw {seen}", flush=True)
else:
    print("saved", flush=True)
"""


def test_two_processes_saving_one_automaton_lose_nothing(jsonl: Path) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVE_AFTER_GO, name, str(jsonl)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for name in ("one", "two")
    ]
    for writer in writers:  # both hold their 100 objects, loaded from the same empty state
        assert writer.stdout is not None and writer.stdout.readline() == "loaded\n"
    for writer in writers:  # then both save at once
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=60) for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], outputs
    reports = sorted(out.splitlines()[0].partition(":")[0] for out, _ in outputs)
    assert reports == ["error", "saved"], outputs
    [error_lines] = [out.splitlines() for out, _ in outputs if out.startswith("error")]
    assert error_lines[0].startswith(f"error: {jsonl}: changed on disk since this automaton loaded")
    assert error_lines[1] == "saw 100"  # after the error it sees the first writer's rows
    ids = [obj["id"] for obj in Automaton(jsonl)]
    assert sorted(ids) == sorted(f"{name}-{i}" for name in ("one", "two") for i in range(100))


def test_works_without_fcntl_as_on_windows(tmp_path: Path) -> None:
    script = """
import sys
sys.modules["fcntl"] = None  # what Windows has: importing it fails
from pytest_automem.base.filelock import LOCKING_AVAILABLE
from pytest_automem.automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig
automaton = MemoryOptimizedAutomaton(sys.argv[1], OptimizationConfig(max_objects=1))
automaton.add({"id": "a"})
automaton.add({"id": "b"})
print(LOCKING_AVAILABLE, [obj["id"] for obj in automaton.trim()], len(automaton))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ev.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "False ['a'] 1\n"


# --- temp files of killed saves ---------------------------------------------------------

SAVE_AND_HANG = """
import os, sys, time
from pytest_automem.automaton.store import Automaton

automaton = Automaton(sys.argv[1])
automaton.add({"id": "new"})

def hang(*args):
    print("temp written", flush=True)
    time.sleep(60)

os.replace = hang  # the temp file is complete; the kill lands before the rename
automaton.save()
"""


def killed_in_save(jsonl: Path) -> None:
    """Run a real save of ``jsonl`` in a child and kill -9 it between temp and rename."""
    child = subprocess.Popen(
        [sys.executable, "-c", SAVE_AND_HANG, str(jsonl)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "temp written\n", child.communicate(timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)


def temps_of(jsonl: Path) -> list[str]:
    return sorted(p.name for p in jsonl.parent.glob(f".{jsonl.name}.*.tmp"))


def test_temp_of_a_killed_save_is_removed_by_the_next_open(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "old"}'])
    before = jsonl.read_bytes()
    killed_in_save(jsonl)
    assert len(temps_of(jsonl)) == 1  # what each kill -9 used to leave for good

    assert [obj["id"] for obj in Automaton(jsonl)] == ["old"]

    assert temps_of(jsonl) == []
    assert jsonl.read_bytes() == before


def test_temp_of_a_killed_save_is_removed_by_the_next_save(jsonl: Path) -> None:
    write_lines(jsonl, ['{"id": "old"}'])
    automaton = Automaton(jsonl)  # opened before the crashes, so its open removed nothing
    automaton.save()
    killed_in_save(jsonl)
    assert len(temps_of(jsonl)) == 1
    automaton.add({"id": "mine"})

    automaton.save()  # the killed save never replaced the file: no conflict

    assert temps_of(jsonl) == []
    assert [obj["id"] for obj in Automaton(jsonl)] == ["old", "mine"]


def test_only_stale_temps_of_our_exact_naming_are_removed(jsonl: Path) -> None:
    automaton = Automaton(jsonl)
    automaton.save()  # makes the lock file: from now on opens may clean up
    folder = jsonl.parent
    ours = [".automaton.jsonl.abcd_123.tmp", ".automaton.jsonl.zzzzzzzz.tmp"]
    others = [
        ".automaton.jsonl.abc.tmp",  # not mkstemp's eight characters
        ".automaton.jsonl.ABCDEFGH.tmp",
        ".automaton.jsonl.abcdefgh.tmp.keep",
        ".automaton.jsonl.abcd.efg.tmp",
        ".other.jsonl.abcdefgh.tmp",  # another target's temp
        "automaton.jsonl.abcdefgh.tmp",
    ]
    for name in ours + others:
        (folder / name).write_text("x")
    (folder / ".automaton.jsonl.dirdirdi.tmp").mkdir()
    (folder / ".automaton.jsonl.linklink.tmp").symlink_to(folder / "automaton.jsonl.abcdefgh.tmp")

    Automaton(jsonl)

    left = {p.name for p in folder.iterdir()}
    assert left.isdisjoint(ours)
    assert left >= {*others, ".automaton.jsonl.dirdirdi.tmp", ".automaton.jsonl.linklink.tmp"}
