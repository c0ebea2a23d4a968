"""The memory-aware spawner: replacements under pressure, profiles, no process left behind.

Thresholds are on the relative basis (above the first child's memory once it
was ready), so the tests do not depend on the interpreter's own size, and
small (a few MB) so that a leak reaches them in a second or two.  Nothing
here asserts how long anything took: times are compared only with each other
(a cooldown against the spawns it separated).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import LEAK_BEYOND_THE_CAP, SCENARIO_WITH_A_CHILD, kill_all

from pytest_automem import MemoryAwareSpawner, OptimizationConfig, PressureLevel
from pytest_automem.automaton.spawn_results import SpawnEvent, SpawnResult
from pytest_automem.automaton.spawner import SpawnInputError
from pytest_automem.snapshots.files import read_snapshot

ROOT = Path(__file__).resolve().parents[1]
#: Generous: the machine is shared; a poll ends as soon as its condition holds.
WAIT_S = 60.0

LEAK = LEAK_BEYOND_THE_CAP


def write_scenario(folder: Path, source: str, name: str = "scenario_file.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


class Seen:
    """Events as they happen, each with the moment the test saw it."""

    def __init__(self) -> None:
        self.events: list[SpawnEvent] = []
        self.seen_at: list[float] = []

    def __call__(self, event: SpawnEvent) -> None:
        self.events.append(event)
        self.seen_at.append(time.monotonic())

    def ready_for(self, generation: int, seconds: float) -> bool:
        """Whether child ``generation`` has been ready for ``seconds``."""
        ready = [i for i, event in enumerate(self.events) if event.kind == "ready"]
        return (
            len(ready) > generation and time.monotonic() - self.seen_at[ready[generation]] > seconds
        )


def spawn(
    tmp_path: Path,
    source: str,
    *,
    until: Callable[[Seen], bool] | None = None,
    **options: Any,
) -> SpawnResult:
    """Run ``source``'s ``scenario`` under the spawner (relative basis) until ``until`` holds."""
    scenario = write_scenario(tmp_path, source)
    seen = Seen()
    options.setdefault("basis", "relative")
    options.setdefault("duration", "120s")
    return MemoryAwareSpawner(
        f"{scenario}:scenario",
        tmp_path / "automaton.jsonl",
        on_event=seen,
        should_stop=lambda: "enough" if until is not None and until(seen) else None,
        **options,
    ).run()


def test_a_leak_crossing_high_is_replaced_with_the_high_profile_and_no_object_is_lost(
    tmp_path: Path,
) -> None:
    automaton = tmp_path / "automaton.jsonl"
    events_path = tmp_path / "events.jsonl"
    result = spawn(
        tmp_path,
        LEAK,
        thresholds="2MB,12MB,40MB",
        cooldown="10ms",
        events_path=events_path,
        until=lambda seen: seen.ready_for(1, 1.0),
    )

    assert result.end_cause == "stopped", result.ended
    spawns = result.of_kind("spawn")
    assert len(spawns) == 1
    assert spawns[0].level is PressureLevel.HIGH
    old, new = result.children
    assert (old.profile, old.ended, old.returncode) == (PressureLevel.LOW, "retired", 0)
    assert old.max_pressure is PressureLevel.HIGH
    assert new.profile is PressureLevel.HIGH
    assert new.config == OptimizationConfig.for_level(PressureLevel.HIGH).to_dict()
    # The replacement holds: it never reached HIGH again, let alone CRITICAL.
    assert new.max_pressure < PressureLevel.HIGH
    # The state went across: the new child loaded what the old one saved, trimmed
    # the oldest beyond its cap to the archive, and went on from the next step.
    assert new.loaded_objects == old.final_objects
    assert new.trimmed_objects == old.final_objects - 1000
    assert new.first_step == old.final_step
    kept, archived = ids_in(automaton), ids_in(tmp_path / "automaton.jsonl.trimmed.jsonl")
    steps_done = new.final_step
    assert sorted(kept + archived) == sorted(f"o{i}" for i in range(steps_done))
    assert archived[: new.trimmed_objects] == [f"o{i}" for i in range(new.trimmed_objects)]
    assert len(kept) == 1000

    snapshot = read_snapshot(events_path)
    assert snapshot.header["source"] == "spawner"
    kinds = [event.kind for event in snapshot.events]
    for kind in ("start", "level", "gc_request", "retire", "spawn", "exit"):
        assert kind in kinds
    assert max(snapshot.rss_bytes) == result.peak_rss_bytes  # the exact peak survives
    assert not snapshot.torn_tail


CRITICAL_AFTER_HIGH = """
import time

HOLD = []
MB = 1 << 20

def scenario(automaton, step):
    automaton.add({"id": f"o{step}"})
    time.sleep(0.005)
    if HOLD or step < 20:
        return
    # The first child jumps to HIGH; its HIGH replacement jumps to CRITICAL;
    # the CRITICAL one holds.  A profile is known by its cap.
    if automaton.config.max_objects == 2000:
        HOLD.append(b"x" * (12 * MB))
    elif automaton.config.max_objects == 1000:
        HOLD.append(b"x" * (48 * MB))
"""


def test_critical_gets_the_critical_profile_once_the_cooldown_is_over(tmp_path: Path) -> None:
    cooldown_s = 4.0
    result = spawn(
        tmp_path,
        CRITICAL_AFTER_HIGH,
        thresholds="5MB,8MB,30MB",
        cooldown=cooldown_s,
        until=lambda seen: seen.ready_for(2, 1.0),
    )

    spawns = result.of_kind("spawn")
    assert [child.profile for child in result.children] == [
        PressureLevel.LOW,
        PressureLevel.HIGH,
        PressureLevel.CRITICAL,
    ]
    assert result.children[2].config == OptimizationConfig.for_level("CRITICAL").to_dict()
    assert result.children[2].max_pressure < PressureLevel.HIGH
    # The cooldown held: CRITICAL was reached while it ran, and the spawn waited.
    to_critical = [e for e in result.of_kind("level") if e.detail.endswith("-> CRITICAL")]
    assert to_critical and to_critical[0].t_s < spawns[0].t_s + cooldown_s
    assert spawns[1].t_s - spawns[0].t_s >= cooldown_s
    assert spawns[1].level is PressureLevel.CRITICAL


GARBAGE_AT_MEDIUM = """
import gc
import time

HOLD = []

def scenario(automaton, step):
    if step == 0:
        gc.disable()  # only a collection someone asks for frees the cycles below
        HOLD.append(b"x" * (4 << 20))
    cycle = []
    cycle.append(cycle)
    time.sleep(0.002)
"""


def test_medium_pressure_asks_the_child_to_collect_garbage(tmp_path: Path) -> None:
    result = spawn(
        tmp_path,
        GARBAGE_AT_MEDIUM,
        thresholds="2MB,64MB,128MB",
        config=OptimizationConfig(gc_interval="200ms", enable_gc=False),
        until=lambda seen: sum(event.kind == "gc" for event in seen.events) >= 2,
    )

    requests, answers = result.of_kind("gc_request"), result.of_kind("gc")
    assert len(requests) >= 2 and len(answers) >= 2
    assert all(event.level is PressureLevel.MEDIUM for event in requests)
    assert result.spawns == 0
    assert all(event.rss_bytes is not None for event in answers)
    assert all(event.rss_after_bytes is not None for event in answers)
    collected = [int(event.detail.split()[1]) for event in answers]
    assert sum(collected) > 0  # the child collected the cycles, on request only


GROWS_FAST = """
import time

HOLD = []

def scenario(automaton, step):
    if len(HOLD) < 80:
        HOLD.append(b"x" * (2 << 20))  # 2 MB every 50 ms: about 40 MB/s
    time.sleep(0.05)
"""


def test_growth_past_the_5_and_10_mb_s_marks_gives_a_warning_each(tmp_path: Path) -> None:
    result = spawn(
        tmp_path,
        GROWS_FAST,
        thresholds="1GB,2GB,3GB",
        until=lambda seen: sum(event.kind == "warning" for event in seen.events) >= 2,
    )

    warnings = result.of_kind("warning")
    assert [w.detail.split(" mark")[0].split("the ")[-1] for w in warnings[:2]] == [
        "5.0 MB/s warning",
        "10.0 MB/s critical",
    ]
    assert all(w.rss_bytes is not None for w in warnings)
    assert result.spawns == 0


IGNORES_STOP = """
import signal
import time

def scenario(automaton, step):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    automaton.add({"id": f"o{step}", "payload": f"{step:08d}" + "x" * 4000})
    time.sleep(0.001)
"""


def test_a_child_that_ignores_the_stop_is_killed_after_the_grace(tmp_path: Path) -> None:
    result = spawn(
        tmp_path,
        IGNORES_STOP,
        thresholds="2MB,6MB,40MB",
        cooldown="10ms",
        grace="300ms",
        until=lambda seen: seen.ready_for(1, 0.2),
    )

    retire = result.of_kind("retire")[0]
    assert "killed by SIGKILL after the grace period" in retire.detail
    first = result.children[0]
    assert (first.ended, first.returncode) == ("killed", -signal.SIGKILL)
    assert result.children[1].profile is PressureLevel.HIGH
    assert result.children[-1].ended == "killed"  # the last one too, at the end


CRASHES = """
def scenario(automaton, step):
    if step >= 3:
        raise RuntimeError("boom")
"""


def test_a_crashing_child_is_reported_and_not_restarted_forever(tmp_path: Path) -> None:
    result = spawn(tmp_path, CRASHES, max_restarts=2, restart_window="10min")

    assert result.end_cause == "crash-loop"
    crashes = result.of_kind("crash")
    assert len(crashes) == 3
    assert all("exited with code 1" in event.detail for event in crashes)
    assert all("last memory" in event.detail for event in crashes if event.rss_bytes)
    assert [child.ended for child in result.children] == ["crashed"] * 3
    assert [child.returncode for child in result.children] == [1, 1, 1]
    assert "3 crashes" in result.ended


def test_a_scenario_that_cannot_be_loaded_is_an_input_error(tmp_path: Path) -> None:
    spawner = MemoryAwareSpawner(f"{tmp_path / 'missing.py'}:scenario", tmp_path / "a.jsonl")
    with pytest.raises(SpawnInputError, match="no such file"):
        spawner.run()


def test_an_events_file_that_cannot_be_written_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    spawner = MemoryAwareSpawner(
        "m:f", tmp_path / "a.jsonl", events_path=tmp_path / "a_file" / "events.jsonl"
    )
    with pytest.raises(SpawnInputError, match=r"events file .*a_file"):
        spawner.run()


def test_a_command_that_cannot_be_run_is_an_input_error(tmp_path: Path) -> None:
    spawner = MemoryAwareSpawner.for_command([str(tmp_path / "no-such-program")])
    with pytest.raises(SpawnInputError, match=r"cannot run .*no-such-program"):
        spawner.run()


def test_a_finished_scenario_ends_the_run(tmp_path: Path) -> None:
    result = spawn(tmp_path, LEAK, steps=30)
    assert result.end_cause == "finished"
    assert result.children[0].final_step == 30
    assert ids_in(tmp_path / "automaton.jsonl") == [f"o{i}" for i in range(30)]


@pytest.mark.parametrize(
    ("option", "value"),
    [("cooldown", -1), ("grace", 0), ("max_restarts", -1), ("duration", "soon")],
)
def test_bad_settings_are_refused_naming_them(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option if option != "duration" else "soon"):
        MemoryAwareSpawner("m:f", tmp_path / "a.jsonl", **{option: value})


# -------------------------------------------------------------- no orphans, no zombies

DRIVER = """
import sys
from pytest_automem import MemoryAwareSpawner

MemoryAwareSpawner(sys.argv[1], sys.argv[2], duration="10min").run()
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


class Driver:
    """A process running the spawner, and the processes it started, to clean up."""

    def __init__(self, process: subprocess.Popen[bytes], pids: Path) -> None:
        self.process = process
        self.pids = pids
        self.tracked: list[psutil.Process] = []


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    """A process running the spawner; whatever it leaves is killed at the end, pass or fail."""
    scenario = write_scenario(tmp_path, SCENARIO_WITH_A_CHILD)
    script = write_scenario(tmp_path, DRIVER, "driver.py")
    pids = tmp_path / "pids"
    env = {**os.environ, "AUTOMEM_TEST_PIDS": str(pids), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(script), f"{scenario}:scenario", str(tmp_path / "a.jsonl")],
        env=env,
    )
    running = Driver(process, pids)
    try:
        yield running
    finally:
        kill_all(running.tracked)
        process.kill()
        process.wait()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killing_the_spawner_leaves_no_child_or_grandchild_behind(
    driver: Driver, signum: int
) -> None:
    process, pids = driver.process, driver.pids
    _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, "the scenario's pids")
    child_pid, grandchild_pid = map(int, pids.read_text().split())
    descendants = psutil.Process(process.pid).children(recursive=True)
    driver.tracked.extend(descendants)
    assert {child_pid, grandchild_pid} <= {p.pid for p in descendants}

    process.send_signal(signum)
    process.wait(timeout=WAIT_S)
    _wait_for(
        lambda: all(_gone(p.pid) for p in descendants),
        f"every descendant of the spawner to end after {signal.Signals(signum).name}",
    )


def test_result_is_plain_json(tmp_path: Path) -> None:
    data = json.loads(json.dumps(spawn(tmp_path, LEAK, steps=5).to_dict()))
    assert data["end_cause"] == "finished"
    assert data["events"][0]["kind"] == "start"


@pytest.mark.parametrize(
    ("events", "what"), [("a.jsonl", "automaton"), ("a.jsonl.trimmed.jsonl", "archive")]
)
def test_an_events_file_on_the_automaton_or_its_archive_is_refused(
    tmp_path: Path, events: str, what: str
) -> None:
    """Its header would replace the state the children hand over."""
    with pytest.raises(ValueError, match=f"is the {what}"):
        MemoryAwareSpawner("m:f", tmp_path / "a.jsonl", events_path=tmp_path / events)
