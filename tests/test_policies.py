"""Policies: config validation and profiles, trims with archives, GC, history cap, events;
trims under kill -9 and next to another writing process."""

from __future__ import annotations

import fcntl
import gc
import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_automem.automaton import policies as policies_module
from pytest_automem.automaton.policies import (
    DEFAULT_CONFIG,
    Event,
    MemoryOptimizedAutomaton,
    OldestFirstTrimPolicy,
    OptimizationConfig,
    PressureGcPolicy,
    StepContext,
    TrimPlan,
)
from pytest_automem.automaton.store import ConcurrentWriteError
from pytest_automem.base.filelock import lock_path_for
from pytest_automem.measure.pressure import PressureLevel

MB = 1 << 20
LOW, MEDIUM, HIGH, CRITICAL = (
    PressureLevel.LOW,
    PressureLevel.MEDIUM,
    PressureLevel.HIGH,
    PressureLevel.CRITICAL,
)


class FakeClock:
    """A clock the test moves by hand, so interval rules run without waiting."""

    def __init__(self, now_s: float = 100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gc_calls() -> Iterator[list[int]]:
    """The full collections the interpreter really runs (its automatic collector paused)."""
    full: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    was_enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(note)
    try:
        yield full
    finally:
        gc.callbacks.remove(note)
        if was_enabled:
            gc.enable()


class _Cycle:
    """Garbage only the cyclic collector frees."""

    def __init__(self) -> None:
        self.me = self


def _cycle_garbage() -> weakref.ref[_Cycle]:
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    del cycle
    return ref


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def make_automaton(
    tmp_path: Path, count: int, clock: FakeClock, **config: Any
) -> MemoryOptimizedAutomaton:
    path = tmp_path / "automaton.jsonl"
    path.write_text("".join(f'{{"id": "o{i}", "i": {i}}}\n' for i in range(count)))
    return MemoryOptimizedAutomaton(path, OptimizationConfig(**config), clock=clock)


# --- configuration ---------------------------------------------------------------------


def test_defaults_are_the_originals() -> None:
    config = OptimizationConfig()

    assert config == DEFAULT_CONFIG
    assert config.to_dict() == {
        "max_objects": 2000,
        "max_execution_history": 500,
        "gc_interval": 5.0,
        "trim_interval": 10.0,
        "memory_pressure_threshold": 200 * MB,
        "enable_gc": True,
        "spike_threshold": 5 * MB,
        "trim_fraction": 0.10,
    }


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("max_objects", 0, 0),
        ("max_objects", 10, 10),
        ("max_execution_history", 0, 0),
        ("gc_interval", 2, 2.0),
        ("gc_interval", "5s", 5.0),
        ("gc_interval", "1ms", 0.001),
        ("trim_interval", "1.5 min", 90.0),
        ("memory_pressure_threshold", "200MB", 200 * MB),
        ("memory_pressure_threshold", "512KiB", 512 * 1024),
        ("memory_pressure_threshold", 1000, 1000),
        ("spike_threshold", "0", 0),
        ("enable_gc", False, False),
        ("trim_fraction", 1, 1.0),
        ("trim_fraction", 0.25, 0.25),
    ],
)
def test_config_accepts_and_normalises(field: str, given: object, stored: object) -> None:
    value = getattr(OptimizationConfig(**{field: given}), field)

    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize(
    ("field", "given", "why"),
    [
        ("max_objects", -1, "expected an int >= 0"),
        ("max_objects", 2.5, "expected an int >= 0"),
        ("max_objects", True, "expected an int >= 0"),
        ("max_objects", "2000", "expected an int >= 0"),
        ("max_execution_history", -5, "expected an int >= 0"),
        ("gc_interval", 0, "an interval must be > 0"),
        ("gc_interval", "0ms", "an interval must be > 0"),
        ("gc_interval", -1, "invalid duration -1"),
        ("trim_interval", "soon", "invalid duration 'soon'"),
        ("trim_interval", None, "expected seconds or a duration"),
        ("memory_pressure_threshold", "-1MB", "invalid size '-1MB'"),
        ("memory_pressure_threshold", "200 parsecs", "invalid size '200 parsecs'"),
        ("spike_threshold", False, "expected bytes or a size"),
        ("enable_gc", 1, "expected True or False"),
        ("trim_fraction", 0, r"expected a number in \(0, 1\]"),
        ("trim_fraction", 1.5, r"expected a number in \(0, 1\]"),
        ("trim_fraction", "10%", r"expected a number in \(0, 1\]"),
    ],
)
def test_config_rejects_naming_field_and_value(field: str, given: object, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        OptimizationConfig(**{field: given})

    assert str(info.value).startswith(f"invalid OptimizationConfig {field}={given!r}: ")


#: The largest size a config holds: an int64, so every JSON reader can take it.
MAX_SIZE = (1 << 63) - 1
HUGE = 10**5000  # past float range, and past int-to-text's default digit limit
NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("max_objects", 0, 0),
        ("max_objects", 1, 1),
        ("max_objects", sys.maxsize, sys.maxsize),
        ("max_execution_history", 0, 0),
        ("max_execution_history", 1, 1),
        ("max_execution_history", sys.maxsize, sys.maxsize),
        ("gc_interval", 1e-9, 1e-9),
        ("gc_interval", 1, 1.0),
        ("gc_interval", 3e7, 3e7),
        ("trim_interval", "1ns", 1e-9),
        ("trim_interval", 3e7, 3e7),
        ("memory_pressure_threshold", 0, 0),
        ("memory_pressure_threshold", 1, 1),
        ("memory_pressure_threshold", MAX_SIZE, MAX_SIZE),
        ("spike_threshold", 0, 0),
        ("spike_threshold", 1, 1),
        ("spike_threshold", MAX_SIZE, MAX_SIZE),
        ("enable_gc", True, True),
        ("enable_gc", False, False),
        ("trim_fraction", 1e-12, 1e-12),
        ("trim_fraction", 1, 1.0),
    ],
    ids=repr,
)
def test_config_limits_at_zero_one_and_huge_work(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int], field: str, given: object, stored: object
) -> None:
    """Each accepted edge builds an automaton that trims, collects and saves, and
    whose config survives strict JSON (results files and xdist carry it)."""
    config = OptimizationConfig(**{field: given})
    assert getattr(config, field) == stored
    automaton = MemoryOptimizedAutomaton(tmp_path / "automaton.jsonl", config, clock=clock)
    for i in range(5):
        automaton.add({"id": f"o{i}"})

    for memory_bytes in (0, 300 * MB, MAX_SIZE):
        automaton.on_step_boundary(memory_bytes, CRITICAL)
        clock.advance(1.0)
    automaton.trim()
    automaton.save()

    assert len(automaton) <= config.max_objects
    assert len(automaton.execution_history) <= config.max_execution_history
    assert len(automaton.events) <= config.max_execution_history
    kept = [obj["id"] for obj in read_jsonl(automaton.path)]
    archive = automaton.archive_path
    archived = [obj["id"] for obj in read_jsonl(archive)] if archive.exists() else []
    assert archived + kept == [f"o{i}" for i in range(5)]
    json.dumps(config.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("field", "given"),
    [
        *[
            (field, bad)
            for field in ("max_objects", "max_execution_history")
            for bad in (-1, sys.maxsize + 1, HUGE, 2.0, NAN, INF, False, "5", None)
        ],
        *[
            (field, bad)
            for field in ("gc_interval", "trim_interval")
            for bad in (0, 0.0, "0s", -1, NAN, INF, -INF, "1e400s", HUGE, True, None, [5])
        ],
        *[
            (field, bad)
            for field in ("memory_pressure_threshold", "spike_threshold")
            for bad in (-1, NAN, INF, MAX_SIZE + 1, "8EiB", "1e300", HUGE, True, None)
        ],
        *[("enable_gc", bad) for bad in (0, 1, "true", None, NAN)],
        *[("trim_fraction", bad) for bad in (0, -0.1, 1.5, NAN, INF, HUGE, True, "0.5")],
    ],
    ids=lambda value: "HUGE" if value is HUGE else repr(value),
)
def test_config_rejects_bad_limits_at_construction_in_one_line(field: str, given: object) -> None:
    with pytest.raises(ValueError) as info:
        OptimizationConfig(**{field: given})

    message = str(info.value)
    assert message.startswith(f"invalid OptimizationConfig {field}=")
    assert "\n" not in message
    assert len(message) < 300


def test_zero_history_keeps_none_and_trims_still_work(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 5, clock, max_objects=2, max_execution_history=0)

    events = automaton.on_step_boundary(0, HIGH)
    trimmed = automaton.trim()
    automaton.add({"id": "new"})

    assert [(e.kind, e.reason) for e in events] == [
        ("trim", "max_objects"),
        ("save", "trim"),
        ("gc", "interval"),
    ]
    assert trimmed == []
    assert [obj["id"] for obj in read_jsonl(automaton.archive_path)] == ["o0", "o1", "o2"]
    assert automaton.execution_history == []
    assert automaton.events == []
    assert automaton.event_counts == {"trim": 1, "save": 1, "gc": 1}


def test_zero_objects_keeps_none_in_memory_and_loses_none(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 3, clock, max_objects=0)

    automaton.on_step_boundary(0, LOW)
    automaton.add({"id": "new"})
    automaton.on_step_boundary(0, LOW)

    assert len(automaton) == 0
    assert read_jsonl(automaton.path) == []
    assert [obj["id"] for obj in read_jsonl(automaton.archive_path)] == ["o0", "o1", "o2", "new"]


def test_tiny_trim_fraction_still_trims_one_object(tmp_path: Path, clock: FakeClock) -> None:
    policy = OldestFirstTrimPolicy(
        OptimizationConfig(trim_fraction=1e-12, memory_pressure_threshold=0)
    )

    plan = policy.decide(StepContext(now_s=0.0, object_count=100, memory_bytes=1))

    assert plan == TrimPlan(1, ("memory_pressure",))


def test_automaton_rejects_a_config_of_the_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config must be an OptimizationConfig, got dict"):
        MemoryOptimizedAutomaton(tmp_path / "automaton.jsonl", {"max_objects": 5})  # type: ignore[arg-type]


def test_replace_validates_like_a_new_config() -> None:
    assert DEFAULT_CONFIG.replace(gc_interval="250ms").gc_interval == 0.25
    with pytest.raises(ValueError, match="max_objects=-3"):
        DEFAULT_CONFIG.replace(max_objects=-3)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_CONFIG.max_objects = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("level", "limits"),
    [
        (HIGH, (1000, 250, 3.0, 7.0)),
        (CRITICAL, (500, 100, 2.0, 5.0)),
        ("critical", (500, 100, 2.0, 5.0)),
        (MEDIUM, (2000, 500, 5.0, 10.0)),
        (LOW, (2000, 500, 5.0, 10.0)),
    ],
)
def test_for_level_profiles(level: PressureLevel | str, limits: tuple[int, ...]) -> None:
    config = OptimizationConfig.for_level(level)

    assert (
        config.max_objects,
        config.max_execution_history,
        config.gc_interval,
        config.trim_interval,
    ) == limits
    assert config.memory_pressure_threshold == 200 * MB
    assert config.enable_gc is True


def test_for_level_on_an_instance_tightens_and_never_loosens() -> None:
    base = OptimizationConfig(max_objects=300, gc_interval="10s", enable_gc=False)

    high = base.for_level(HIGH)

    assert (high.max_objects, high.max_execution_history) == (300, 250)
    assert (high.gc_interval, high.trim_interval) == (3.0, 7.0)
    assert high.enable_gc is False
    assert base.for_level(LOW) is base


def test_for_level_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="invalid pressure level 'extreme'"):
        OptimizationConfig.for_level("extreme")


# --- policies alone --------------------------------------------------------------------


def test_trim_policy_caps_then_adds_the_pressure_fraction_rounded_up() -> None:
    policy = OldestFirstTrimPolicy(OptimizationConfig(max_objects=25, memory_pressure_threshold=10))

    plan = policy.decide(StepContext(now_s=0.0, object_count=30, memory_bytes=11))

    assert plan == TrimPlan(5 + 3, ("max_objects", "memory_pressure"))
    assert plan.reason == "max_objects+memory_pressure"


def test_trim_policy_without_measurement_only_caps() -> None:
    policy = OldestFirstTrimPolicy(OptimizationConfig(max_objects=10, memory_pressure_threshold=0))

    assert policy.decide(StepContext(now_s=0.0, object_count=12)) == TrimPlan(2, ("max_objects",))
    assert policy.decide(StepContext(now_s=0.0, object_count=10)) == TrimPlan()


def test_gc_policy_alone() -> None:
    policy = PressureGcPolicy(OptimizationConfig(gc_interval="1s", spike_threshold=100))

    assert policy.decide(StepContext(0.0, 0, 0, LOW, spike_bytes=100)) is None
    assert policy.decide(StepContext(0.0, 0, 0, LOW, spike_bytes=101)) == "spike"
    assert policy.decide(StepContext(0.5, 0, 0, HIGH)) is None
    assert policy.decide(StepContext(1.0, 0, 0, HIGH)) == "interval"


# --- the automaton: trims --------------------------------------------------------------


def test_trim_keeps_newest_max_objects_and_archives_the_rest_in_order(
    tmp_path: Path, clock: FakeClock
) -> None:
    automaton = make_automaton(tmp_path, 25, clock, max_objects=10)

    trimmed = automaton.trim()

    assert [obj["i"] for obj in trimmed] == list(range(15))
    assert [obj["i"] for obj in automaton.objects] == list(range(15, 25))
    assert read_jsonl(tmp_path / "automaton.jsonl.trimmed.jsonl") == trimmed
    assert read_jsonl(tmp_path / "automaton.jsonl") == automaton.objects
    assert automaton.line_numbers == list(range(1, 11))
    assert [(e.kind, e.reason, e.count) for e in automaton.events] == [
        ("trim", "max_objects", 15),
        ("save", "trim", 10),
    ]
    assert automaton.trim() == []


def test_later_trims_append_to_the_archive(tmp_path: Path, clock: FakeClock) -> None:
    automaton = make_automaton(tmp_path, 12, clock, max_objects=10)
    automaton.trim()
    automaton.add({"id": "new1"})
    automaton.add({"id": "new2"})

    second = automaton.trim()

    assert [obj["id"] for obj in second] == ["o2", "o3"]
    archived = [obj["id"] for obj in read_jsonl(automaton.archive_path)]
    assert archived == ["o0", "o1", "o2", "o3"]
    assert [obj["id"] for obj in read_jsonl(automaton.path)][-2:] == ["new1", "new2"]


def test_cap_applies_at_every_boundary(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 10, clock, max_objects=10)

    assert automaton.on_step_boundary(0, LOW) == []
    automaton.add({"id": "extra"})
    events = automaton.on_step_boundary(0, LOW)

    assert [e.kind for e in events] == ["trim", "save"]
    assert [obj["id"] for obj in read_jsonl(automaton.archive_path)] == ["o0"]


def test_pressure_trim_removes_ten_percent_once_per_interval(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(
        tmp_path, 100, clock, memory_pressure_threshold="1MB", trim_interval="50ms"
    )

    def boundary(memory_bytes: int) -> list[tuple[str, int]]:
        events = automaton.on_step_boundary(memory_bytes, LOW)
        return [(e.kind, e.count) for e in events if e.kind == "trim"]

    assert boundary(MB) == []  # at the threshold, not above it
    assert boundary(MB + 1) == [("trim", 10)]
    assert len(automaton) == 90
    clock.advance(0.049)
    assert boundary(2 * MB) == []
    clock.advance(0.001)
    assert boundary(2 * MB) == [("trim", 9)]
    assert len(automaton) == 81
    assert [obj["i"] for obj in read_jsonl(automaton.archive_path)] == list(range(19))
    trim = automaton.events[-2]
    assert (trim.reason, trim.objects_before, trim.objects_after) == ("memory_pressure", 90, 81)
    assert (trim.bytes_before, trim.time_s) == (2 * MB, clock.now_s)


def test_crash_during_trim_save_loses_nothing(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    automaton = make_automaton(tmp_path, 5, clock, max_objects=3)
    before = automaton.path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        automaton.trim()
    monkeypatch.undo()

    assert automaton.path.read_bytes() == before
    assert [obj["id"] for obj in read_jsonl(automaton.archive_path)] == ["o0", "o1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".automaton.jsonl.lock",
        "automaton.jsonl",
        "automaton.jsonl.trimmed.jsonl",
    ]


def test_failed_archive_keeps_objects_in_memory(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    automaton = make_automaton(tmp_path, 5, clock, max_objects=3)

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        automaton.trim()
    monkeypatch.undo()

    assert len(automaton) == 5
    assert automaton.archive_path.read_bytes() == b""
    assert automaton.events == []


def test_files_that_share_a_stem_trim_into_their_own_archives(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = OptimizationConfig(max_objects=0)
    for name in ("ev.jsonl", "ev.json", "ev"):
        automaton = MemoryOptimizedAutomaton(tmp_path / name, config, clock=clock)
        automaton.add({"id": f"from-{name}"})
        automaton.trim()

    for name in ("ev.jsonl", "ev.json", "ev"):
        archive = tmp_path / f"{name}.trimmed.jsonl"
        assert [obj["id"] for obj in read_jsonl(archive)] == [f"from-{name}"]
    assert len(list(tmp_path.glob("*.trimmed.jsonl"))) == 3


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


def test_trim_holds_the_lock_from_the_archive_append_to_the_save(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    automaton = make_automaton(tmp_path, 5, clock, max_objects=3)
    automaton.save()
    seen: list[tuple[str, bool]] = []
    append = policies_module.append_jsonl_durably
    drop = automaton._drop_oldest

    def probing_append(path: Path, objects: Any) -> int:
        seen.append(("append", lock_is_held(automaton.path)))
        return append(path, objects)

    def probing_drop(count: int) -> list[dict[str, Any]]:
        seen.append(("drop", lock_is_held(automaton.path)))
        return drop(count)

    monkeypatch.setattr(policies_module, "append_jsonl_durably", probing_append)
    monkeypatch.setattr(automaton, "_drop_oldest", probing_drop)
    automaton.trim()

    assert seen == [("append", True), ("drop", True)]
    assert not lock_is_held(automaton.path)


def test_trim_of_a_file_another_writer_saved_writes_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    automaton = make_automaton(tmp_path, 5, clock, max_objects=3)
    other = MemoryOptimizedAutomaton(automaton.path, clock=clock)
    other.add({"id": "theirs"})
    other.save()
    file_before = automaton.path.read_bytes()

    with pytest.raises(ConcurrentWriteError, match=r"automaton\.jsonl: changed on disk"):
        automaton.trim()

    assert automaton.path.read_bytes() == file_before
    assert not automaton.archive_path.exists()
    assert len(automaton) == 5
    assert automaton.events == []


def test_an_unwritable_object_is_refused_at_add_and_trims_go_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    automaton = make_automaton(tmp_path, 3, clock, max_objects=2)

    with pytest.raises(
        ValueError, match=r"""cannot add object 'bad-\\ud800': \["id"\] holds a lone"""
    ):
        automaton.add({"id": "bad-\ud800"})
    with pytest.raises(ValueError, match=r"""cannot add object 'nan': \["v"\] is nan"""):
        automaton.add({"id": "nan", "v": float("nan")})
    automaton.add({"id": "good"})

    assert [obj["id"] for obj in automaton.trim()] == ["o0", "o1"]
    assert [obj["id"] for obj in read_jsonl(automaton.path)] == ["o2", "good"]


# --- the automaton under kill -9 and next to another writer ----------------------------

ROOT = Path(__file__).resolve().parents[1]
CRASH_CAP = 20
"""Objects the crash loop's file holds; every saved version has exactly this many."""

TRIM_FOREVER = """
import sys
from pytest_automem.automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig

automaton = MemoryOptimizedAutomaton(sys.argv[1], OptimizationConfig(max_objects=int(sys.argv[2])))
number = int(automaton.objects[-1]["id"][1:]) + 1
print("ready", flush=True)
while True:
    automaton.add({"id": f"o{number}", "pad": "x" * 300})
    number += 1
    automaton.trim()  # archives the oldest object, then saves
    automaton.save()
    print("round", flush=True)
"""


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports this checkout of the package."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def read_line(child: subprocess.Popen[str], timeout_s: float = 60.0) -> str:
    """The child's next stdout line; fails (with its stderr) if none comes."""
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout_s)
    line = child.stdout.readline() if ready else ""
    if not line:
        child.kill()
        pytest.fail(f"child gave no line; stderr: {child.communicate(timeout=60)[1]}")
    return line


def numbers(lines: list[bytes]) -> list[int]:
    """The object numbers of the lines that parse; a torn line (a kill mid-write) is skipped."""
    found = []
    for line in lines:
        try:
            found.append(int(json.loads(line)["id"][1:]))
        except ValueError:
            continue
    return found


def test_kill_9_during_saves_and_trims_loses_nothing_and_leaves_no_temp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "automaton.jsonl"
    path.write_text("".join(f'{{"id": "o{i}"}}\n' for i in range(CRASH_CAP)))
    archive = tmp_path / "automaton.jsonl.trimmed.jsonl"
    chooser = random.Random()
    archive_before = b""
    temps_seen = 0
    for kill in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", TRIM_FOREVER, str(path), str(CRASH_CAP)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert read_line(child) == "ready\n"
        for _ in range(chooser.randrange(3)):  # a few whole rounds, then a random moment
            assert read_line(child) == "round\n"
        time.sleep(chooser.uniform(0, 0.01))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        temps_seen += len(list(tmp_path.glob(".automaton.jsonl.*.tmp")))

        loaded = MemoryOptimizedAutomaton(path)  # the next open: complete, or it raises

        in_file = [int(obj["id"][1:]) for obj in loaded.objects]
        first = in_file[0]
        assert in_file == list(range(first, first + CRASH_CAP)), f"kill {kill}: torn file"
        archived = archive.read_bytes() if archive.exists() else b""
        assert archived.startswith(archive_before.rstrip(b"\n")), f"kill {kill}: archive cut"
        assert set(numbers(archived.splitlines())) >= set(range(first)), f"kill {kill}: row lost"
        left = {p.name for p in tmp_path.iterdir()}
        assert left <= {".automaton.jsonl.lock", path.name, archive.name}, f"kill {kill}: {left}"
        archive_before = archived
    assert first > 0, "no trim completed in 20 runs: the loop tested nothing"
    print(f"temp files left by the 20 kills, removed by the next open: {temps_seen}")


APPEND_AND_TRIM = """
import json, sys
from pytest_automem.automaton.store import ConcurrentWriteError
from pytest_automem.automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig

name, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = OptimizationConfig(max_objects=7)
print("ready", flush=True)
sys.stdin.readline()
committed, errors = [], []
while len(committed) < rounds:
    automaton = MemoryOptimizedAutomaton(path, config)  # load: sees every saved row
    new_id = f"{name}-{len(committed)}"
    automaton.add({"id": new_id})
    try:
        if not automaton.trim():  # a trim saves; without one, save
            automaton.save()
    except ConcurrentWriteError as error:
        errors.append(str(error))  # another writer saved since the load: load again
        continue
    committed.append(new_id)
print(json.dumps({"committed": committed, "errors": errors}), flush=True)
"""


def test_two_processes_appending_and_trimming_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_AND_TRIM, name, str(path), "40"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for name in ("one", "two")
    ]
    for writer in writers:
        assert read_line(writer) == "ready\n"
    for writer in writers:  # both start together
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]

    saved = [obj["id"] for obj in read_jsonl(path)]
    archived = [obj["id"] for obj in read_jsonl(tmp_path / "events.jsonl.trimmed.jsonl")]
    committed = [new_id for report in reports for new_id in report["committed"]]
    assert sorted(archived + saved) == sorted(committed)  # each row once: none lost, none twice
    assert len(saved) == 7
    errors = [error for report in reports for error in report["errors"]]
    assert all(error.startswith(f"{path}: changed on disk since") for error in errors)
    print(f"{len(errors)} conflicts, each a clear error and a retry")


# --- the automaton: history, GC, events ------------------------------------------------


def test_history_is_capped_dropping_the_oldest(tmp_path: Path, clock: FakeClock) -> None:
    automaton = make_automaton(tmp_path, 0, clock, max_execution_history=3)

    for i in range(10):
        automaton.add({"id": f"n{i}"})

    history = automaton.execution_history
    assert [entry["id"] for entry in history] == ["n7", "n8", "n9"]
    assert all(entry["action"] == "add" for entry in history)


def test_gc_runs_per_interval_at_medium_and_above(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 0, clock, gc_interval="10ms")

    for level in (MEDIUM, MEDIUM, HIGH, CRITICAL):
        automaton.on_step_boundary(0, level)
        clock.advance(0.005)

    assert len(gc_calls) == 2
    assert [(e.kind, e.reason) for e in automaton.events] == [("gc", "interval")] * 2


def test_gc_never_at_low_without_a_spike(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 0, clock, gc_interval="1ms", spike_threshold="5MB")

    for memory in (0, 5 * MB, 10 * MB, 9 * MB):  # rises of exactly 5 MB are not spikes
        automaton.on_step_boundary(memory, LOW)
        clock.advance(1.0)

    assert gc_calls == []
    assert automaton.events == []


def test_gc_after_a_spike_even_at_low(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    ticks = iter([1000, 700])
    automaton = MemoryOptimizedAutomaton(
        tmp_path / "automaton.jsonl",
        OptimizationConfig(spike_threshold="5MB"),
        clock=clock,
        memory_probe=lambda: next(ticks),
    )

    automaton.on_step_boundary(10 * MB, LOW)
    garbage = _cycle_garbage()
    [event] = automaton.on_step_boundary(15 * MB + 1, LOW)

    assert len(gc_calls) == 1
    assert garbage() is None
    assert event.count == gc_calls[0] >= 1  # what the collection found
    assert (event.kind, event.reason, event.bytes_before, event.bytes_after) == (
        "gc",
        "spike",
        15 * MB + 1,
        1000,
    )


def test_no_gc_when_disabled(tmp_path: Path, clock: FakeClock, gc_calls: list[int]) -> None:
    automaton = make_automaton(tmp_path, 0, clock, enable_gc=False, gc_interval="1ms")

    garbage = _cycle_garbage()
    automaton.on_step_boundary(0, CRITICAL)
    clock.advance(1.0)
    automaton.on_step_boundary(100 * MB, CRITICAL)

    assert gc_calls == []
    assert garbage() is not None


def test_trim_then_gc_in_one_boundary(
    tmp_path: Path, clock: FakeClock, gc_calls: list[int]
) -> None:
    automaton = make_automaton(tmp_path, 4, clock, max_objects=2)

    events = automaton.on_step_boundary(0, HIGH)

    assert [e.kind for e in events] == ["trim", "save", "gc"]
    assert [entry["action"] for entry in automaton.execution_history] == [
        "load",
        "trim",
        "save",
        "gc",
    ]


def test_event_to_dict_holds_plain_values_only(tmp_path: Path, clock: FakeClock) -> None:
    automaton = make_automaton(tmp_path, 3, clock)

    automaton.save()
    [save] = automaton.events

    assert save == Event(clock.now_s, "save", "requested", 3, 3, 3, file_bytes=save.file_bytes)
    plain = save.to_dict()
    assert plain == {
        "time_s": clock.now_s,
        "kind": "save",
        "reason": "requested",
        "objects_before": 3,
        "objects_after": 3,
        "count": 3,
        "file_bytes": automaton.path.stat().st_size,
    }
    assert json.loads(json.dumps(plain)) == plain


def test_policies_are_swappable(tmp_path: Path, clock: FakeClock, gc_calls: list[int]) -> None:
    class TrimTwo:
        def decide(self, context: StepContext) -> TrimPlan:
            return TrimPlan(2, ("custom",))

    class AlwaysCollect:
        def decide(self, context: StepContext) -> str | None:
            return "custom"

    path = tmp_path / "automaton.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n')
    automaton = MemoryOptimizedAutomaton(
        path, clock=clock, trim_policy=TrimTwo(), gc_policy=AlwaysCollect()
    )

    events = automaton.on_step_boundary(0, LOW)

    assert [(e.kind, e.reason) for e in events] == [
        ("trim", "custom"),
        ("save", "trim"),
        ("gc", "custom"),
    ]
    assert [obj["id"] for obj in automaton.objects] == ["c"]
