"""``automem spawn`` end to end: real processes, exit codes, the summary and the events file.

Exit codes are the contract (docs/guarantees.md, "Exit codes"): 0 when the
run ended as planned, the last crash's code past the restart limit, 130/143
when interrupted, 2 a one-line input error.  Thresholds are on the relative
basis, so the tests do not depend on the interpreter's size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import SCENARIO_WITH_A_CHILD, assert_input_error, kill_all

from pytest_automem.snapshots.files import read_snapshot

#: Generous: a run takes a few seconds; this only stops a hang.
TIMEOUT_S = 120

#: The first child jumps to HIGH at step 20; a replacement (a tighter cap) does not.
JUMPS_ONCE = """
import time

HOLD = []

def scenario(automaton, step):
    automaton.add({"id": f"o{step}"})
    time.sleep(0.005)
    if step >= 20 and not HOLD and automaton.config.max_objects == 2000:
        HOLD.append(b"x" * (12 << 20))
"""


def automem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", "spawn", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=cwd,
    )  # fmt: skip


def scenario_file(folder: Path, source: str) -> str:
    path = folder / "scen.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return f"{path}:scenario"


def test_a_scenario_run_replaces_the_child_at_high_and_writes_its_files(tmp_path: Path) -> None:
    events, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    result = automem(
        scenario_file(tmp_path, JUMPS_ONCE), "--automaton", str(tmp_path / "a.jsonl"),
        "--steps", "150", "--thresholds", "4MB,8MB,64MB", "--basis", "relative",
        "--cooldown", "10ms", "--events", str(events), "--json", str(summary),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "ended: scenario finished its steps" in result.stdout
    assert "spawns: 1" in result.stdout
    assert "gen 1 pid" in result.stdout and "HIGH profile" in result.stdout
    assert "[automem]" in result.stderr and " spawn " in result.stderr
    data = json.loads(summary.read_text())
    assert data["spawner_exit_code"] == 0
    assert [child["profile"] for child in data["children"]] == ["LOW", "HIGH"]
    assert data["children"][1]["config"]["max_objects"] == 1000
    snapshot = read_snapshot(events)
    assert snapshot.header["source"] == "spawner"
    assert "spawn" in [event.kind for event in snapshot.events]
    assert max(snapshot.rss_bytes) == data["peak_rss_bytes"]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 150


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ([], ["SCENARIO"]),
        (["m:f"], ["--automaton"]),
        (["--"], ["--"]),
        (["m:f", "--automaton", "a.jsonl", "--", "true"], ["not both"]),
        (["m:f", "n:g", "--automaton", "a.jsonl"], ["one SCENARIO"]),
        (["--steps", "3", "--", "true"], ["--steps"]),
        (["m:f", "--automaton", "no/such/folder/a.jsonl"], ["--automaton", "no/such/folder"]),
        (["m:f", "--automaton", "a.jsonl", "--thresholds", "1MB"], ["--thresholds"]),
        (["m:f", "--automaton", "a.jsonl", "--events", "."], ["--events"]),
        (["--", "/no/such/command"], ["/no/such/command"]),
    ],
    ids=repr,
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    assert_input_error(automem(*args, cwd=tmp_path), *names)


def test_a_scenario_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = automem("no_such_module_xyz:f", "--automaton", "a.jsonl", cwd=tmp_path)
    assert_input_error(result, "no_such_module_xyz")


def test_a_crash_loop_exits_with_the_commands_code(tmp_path: Path) -> None:
    result = automem(
        "--max-restarts", "1", "--", sys.executable, "-c", "import sys; sys.exit(7)",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert "crash loop: 2 crashes" in result.stdout
    assert result.stderr.count(" crash ") == 2


def test_a_command_that_ends_well_ends_the_run_with_0(tmp_path: Path) -> None:
    result = automem("--", sys.executable, "-c", "pass", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "command exited with code 0" in result.stdout


def test_a_command_gets_its_profile_in_the_environment(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(
        textwrap.dedent(
            """
            import os, time
            env = {k: v for k, v in os.environ.items() if k.startswith("AUTOMEM_")}
            with open(f"gen{env['AUTOMEM_GENERATION']}.json", "w") as f:
                f.write(repr(env))
            hold = b"x" * (40 << 20) if env["AUTOMEM_LEVEL"] == "LOW" else b""
            time.sleep(600)
            """
        )
    )
    result = automem(
        "--thresholds", "30MB,45MB,400MB", "--cooldown", "10ms",
        "--duration", "3s", "--", sys.executable, str(worker),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "spawns: 1" in result.stdout
    # Absolute thresholds: a command's first reading may come after its start-up.
    first = eval((tmp_path / "gen0.json").read_text())
    second = eval((tmp_path / "gen1.json").read_text())
    assert first["AUTOMEM_LEVEL"] == "LOW" and first["AUTOMEM_MAX_OBJECTS"] == "2000"
    assert second == {
        "AUTOMEM_LEVEL": "HIGH",
        "AUTOMEM_GENERATION": "1",
        "AUTOMEM_MAX_OBJECTS": "1000",
        "AUTOMEM_MAX_EXECUTION_HISTORY": "250",
        "AUTOMEM_GC_INTERVAL_S": "3",
        "AUTOMEM_TRIM_INTERVAL_S": "7",
    }


@pytest.fixture
def spawn_running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, list]]:
    """``automem spawn`` running a scenario that runs on; everything killed at the end."""
    pids = tmp_path / "pids"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pytest_automem", "spawn",
            scenario_file(tmp_path, SCENARIO_WITH_A_CHILD),
            "--automaton", str(tmp_path / "a.jsonl"),
            "--events", str(tmp_path / "events.jsonl"),
        ],
        env={**os.environ, "AUTOMEM_TEST_PIDS": str(pids)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    tracked: list[psutil.Process] = []
    try:
        yield process, pids, tracked
    finally:
        kill_all(tracked)
        process.kill()
        process.communicate()


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_saves_stops_everything_and_exits_128_plus_n(
    spawn_running: tuple[subprocess.Popen[str], Path, list], tmp_path: Path, signum: int
) -> None:
    process, pids, tracked = spawn_running
    deadline = time.monotonic() + TIMEOUT_S
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "the scenario never started"
        time.sleep(0.05)
    tracked.extend(psutil.Process(process.pid).children(recursive=True))
    assert len(tracked) >= 4  # the child, its own child, the guard, the sampler

    process.send_signal(signum)
    out, err = process.communicate(timeout=TIMEOUT_S)

    assert process.returncode == 128 + signum, err
    assert f"ended: {signal.Signals(signum).name} received" in out
    assert "saved" in out
    assert all(_gone(each) for each in tracked)
    saved = (tmp_path / "a.jsonl").read_text().splitlines()
    assert saved and read_snapshot(tmp_path / "events.jsonl").events[-1].kind == "exit"


def test_a_killed_spawner_leaves_no_worker_or_worker_child_behind(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_automem", "spawn", "--every", "0", "--",
         "sh", "-c", "sleep 600 & sleep 600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    tracked: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while sum(_name(p) == "sleep" for p in tracked) < 2:
            assert time.monotonic() < deadline, "the worker never started its children"
            time.sleep(0.05)
            tracked = psutil.Process(process.pid).children(recursive=True)
        process.kill()
        process.wait(timeout=TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        while not all(_gone(each) for each in tracked):
            assert time.monotonic() < deadline, [p for p in tracked if not _gone(p)]
            time.sleep(0.05)
    finally:
        kill_all(tracked)
        process.kill()
        process.wait()


#: Notes each stop request in a file, and goes on regardless.
IGNORES_THE_STOP = """
import os
import signal
import time
from pathlib import Path

def scenario(automaton, step):
    if step == 0:
        marker = Path(os.environ["AUTOMEM_TEST_PIDS"])
        signal.signal(signal.SIGTERM, lambda *_: marker.write_text("asked"))
        marker.with_suffix(".started").write_text("")
    time.sleep(0.01)
"""


def test_a_second_interrupt_ends_the_grace_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "asked"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pytest_automem", "spawn", "--every", "0",
            scenario_file(tmp_path, IGNORES_THE_STOP), "--automaton", str(tmp_path / "a.jsonl"),
            "--grace", "10min",
        ],
        env={**os.environ, "AUTOMEM_TEST_PIDS": str(marker)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not marker.with_suffix(".started").exists():
            assert time.monotonic() < deadline, "the scenario never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        while not marker.exists():  # the child got the stop, and ignores it
            assert time.monotonic() < deadline, "the stop never reached the child"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT_S)  # a 10 min grace would hang here
    finally:
        process.kill()
        process.communicate()

    assert process.returncode == 130, err
    assert "killed by SIGKILL after the grace period" in err
    assert "gen 0 pid" in out and " killed," in out


@pytest.mark.parametrize(
    ("outputs", "names"),
    [
        (["--events", "a.jsonl"], ["--events", "--automaton", "same file"]),
        (["--json", "a.jsonl"], ["--json", "--automaton", "same file"]),
        (["--events", "out.json", "--json", "out.json"], ["--events", "--json", "same file"]),
        (["--events", "a.jsonl.trimmed.jsonl"], ["--events", "archive", "same file"]),
        (["--json", "scenario.py"], ["--json", "scenario", "same file"]),
    ],
    ids=["events-automaton", "json-automaton", "events-json", "events-archive", "json-scenario"],
)
def test_an_output_on_an_input_or_another_output_is_refused_before_anything_runs(
    tmp_path: Path, outputs: list[str], names: list[str]
) -> None:
    """The automaton (and its archive, and the scenario's code) would be
    overwritten by the events or the summary: nothing starts, nothing is lost."""
    automaton = tmp_path / "a.jsonl"
    automaton.write_text('{"id": "kept"}\n')
    scenario = tmp_path / "scenario.py"
    scenario.write_text(textwrap.dedent(JUMPS_ONCE))
    before = {path: path.read_text() for path in (automaton, scenario)}

    result = automem(
        "scenario.py:scenario", "--automaton", "a.jsonl", "--steps", "3", *outputs, cwd=tmp_path
    )

    assert_input_error(result, *names)
    assert {path: path.read_text() for path in before} == before
