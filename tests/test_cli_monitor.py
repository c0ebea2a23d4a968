"""``automem monitor`` end to end: real subprocesses, exit codes, output, files.

Exit codes are the contract (docs/guarantees.md, "Exit codes"): the command's
own code or 128+N, 3 a limit crossed, 2 a usage or input error reported as
exactly one line on stderr, 70 an internal failure, 124 a timeout, 130/143
an interrupt.  The last section checks the command's processes: signals
forwarded, a grace, and nothing left behind however the monitor ends.  Most tests run
``python -m pytest_automem monitor ...`` as a child process; the input errors
that need no child are also checked in process through ``cli.main``, and so
are the races between a command's exit and the monitor, made deterministic by
letting the command exit (a zombie, not yet reaped) at the racy moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import assert_input_error

from pytest_automem.base.units import format_size
from pytest_automem.cli import exit_codes, main, monitor_command
from pytest_automem.measure.monitor import DEFAULT_MAX_PROCESSES
from pytest_automem.snapshots.files import list_snapshots, read_snapshot

MIB = 1 << 20
LINUX = sys.platform.startswith("linux")
#: Generous: a run takes well under a second; this only stops a hang.
TIMEOUT_S = 60

#: Holds 60 MiB (every page written) for 0.3 s, then exits 0.
ALLOC_60MB = [
    sys.executable,
    "-c",
    "import time; x = b'x' * (60 << 20); time.sleep(0.3)",
]


def sleeper(seconds: float) -> list[str]:
    return [sys.executable, "-c", f"import time; time.sleep({seconds})"]


def automem(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``automem monitor ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture
def running_child() -> Iterator[subprocess.Popen[bytes]]:
    """A python child that sleeps far longer than any test runs; killed after."""
    child = subprocess.Popen(sleeper(60))
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=TIMEOUT_S)


# -- watching a command -------------------------------------------------------


def test_command_60mb_summary_and_json(tmp_path: Path) -> None:
    out = tmp_path / "out" / "summary.json"
    result = automem("--json", str(out), "--every", "0", "--", *ALLOC_60MB)
    assert_no_traceback(result)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == ""

    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["version"] == 1
    assert summary["command"] == ALLOC_60MB
    assert summary["exit_code"] == 0
    assert summary["ended"] == "exited with code 0"
    assert summary["findings"] == []
    assert summary["peak_rss_bytes"] >= 60 * MIB
    assert summary["snapshots"] is None
    window = summary["windows"][0]
    assert window["samples"] > 0
    assert "interval_p50_ms" in window
    assert window["interval_p50_ms"] is None or window["interval_p50_ms"] > 0
    assert window["peak_rss_bytes"] == summary["peak_rss_bytes"]

    assert result.stdout.startswith("automem monitor: ")
    assert "exited with code 0" in result.stdout
    assert f"peak RSS {format_size(summary['peak_rss_bytes'])}" in result.stdout
    assert "FINDING" not in result.stdout


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_command_peak_from_kernel_high_water_mark(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = automem("--json", str(out), "--every", "0", "--", *ALLOC_60MB)
    summary = _summary_of_success(result, out)
    assert summary["windows"][0]["peak_source"] == "kernel-hwm", (summary, result.stdout)
    assert "kernel high-water mark" in result.stdout
    # The kernel mark is exact to within a few pages, never below the block.
    assert 60 * MIB <= summary["peak_rss_bytes"] < 200 * MIB


#: Runs ``automem monitor ARGV[2:]`` in process after taking 200 MiB (every
#: page touched): a monitor far bigger than the command it watches, as when a
#: large test process or build tool calls it.  Unless ARGV[1] is "-", the
#: sampler starts only once that file exists (the command has done its part).
HOLDS_200MB_THEN_MONITORS = """
import mmap, os, sys, time
block = mmap.mmap(-1, 200 << 20)
for offset in range(0, len(block), mmap.PAGESIZE):
    block[offset] = 1
from pytest_automem.cli import main, monitor_command
flag, argv = sys.argv[1], sys.argv[2:]
real_start = monitor_command.MemoryMonitor.start

def start_after_flag(self, **kwargs):
    deadline = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.001)
    return real_start(self, **kwargs)

if flag != "-":
    monitor_command.MemoryMonitor.start = start_after_flag
sys.exit(main(argv))
"""


def _summary_of_success(result: subprocess.CompletedProcess[str], out: Path) -> dict[str, Any]:
    """The JSON summary of a monitor run that must have exited 0."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(out.read_text(encoding="utf-8"))


def automem_holding_200mb(
    *args: str, start_after: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``automem monitor ARGS`` run by a process that holds 200 MiB."""
    flag = "-" if start_after is None else str(start_after)
    return subprocess.run(
        [sys.executable, "-c", HOLDS_200MB_THEN_MONITORS, flag, "monitor", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_short_command_is_not_given_the_monitors_memory(tmp_path: Path) -> None:
    # wait4's ru_maxrss starts from the forked copy of the monitor (200 MiB
    # here); `true` exits long before the sampler's first sample.  Its peak
    # is either measured (well under 5 MB) or said to be unmeasured.
    out = tmp_path / "summary.json"
    result = automem_holding_200mb(
        "--json", str(out), "--every", "0", "--max-peak", "5MB", "--", "true"
    )
    assert_no_traceback(result)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "FINDING" not in result.stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["exit_code"] == 0
    if summary["peak_source"] == "unmeasured":
        assert summary["peak_rss_bytes"] is None
        assert "peak RSS not measured" in result.stdout
        # wait4's bound holds the monitor's forked copy (its private memory:
        # the shared 200 MiB block is not copied by fork), never under 5 MB.
        assert summary["peak_rss_at_most_bytes"] >= 5 * MIB
        assert "--max-peak not checked" in result.stdout
    else:
        assert summary["peak_rss_bytes"] < 5 * MIB
    assert "200." not in result.stdout.split("peak RSS", 1)[1].split("(", 1)[0]


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_sleep_peak_is_its_own_not_the_monitors(tmp_path: Path) -> None:
    # `/usr/bin/time -v sleep 0.5` gives ~1.6 MB; the monitor itself holds ~18 MB.
    out = tmp_path / "summary.json"
    result = automem("--json", str(out), "--every", "0", "--max-peak", "8MB", "--", "sleep", "0.5")
    assert_no_traceback(result)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "FINDING" not in result.stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert 0 < summary["peak_rss_bytes"] < 8 * MIB
    assert summary["peak_source"] in ("kernel-hwm", "kernel-hwm+sampled")
    assert summary["findings"] == []


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_big_command_under_bigger_monitor_keeps_its_exact_peak(tmp_path: Path) -> None:
    # wait4 cannot tell the command's 60 MiB from the monitor's 200 MiB; the
    # command's own mark, read while it runs, can.
    out = tmp_path / "summary.json"
    result = automem_holding_200mb("--json", str(out), "--every", "0", "--", *ALLOC_60MB)
    assert_no_traceback(result)
    summary = _summary_of_success(result, out)
    assert 60 * MIB <= summary["peak_rss_bytes"] < 100 * MIB
    assert summary["peak_source"] == "kernel-hwm+sampled"
    assert "then sampled" in result.stdout


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_spike_before_the_first_window_is_kept(tmp_path: Path) -> None:
    # 60 MiB made and freed before the sampler starts (it waits for the flag);
    # the monitor holds 200 MiB, so wait4 cannot tell.  The mark since exec can.
    flag = tmp_path / "spiked"
    spike_then_sleep = [
        sys.executable,
        "-c",
        "import pathlib, sys, time; x = b'x' * (60 << 20); del x; "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(0.5)",
        str(flag),
    ]
    out = tmp_path / "summary.json"
    result = automem_holding_200mb(
        "--json", str(out), "--every", "0", "--", *spike_then_sleep, start_after=flag
    )
    summary = _summary_of_success(result, out)
    assert 60 * MIB <= summary["peak_rss_bytes"] < 100 * MIB
    assert max(window["peak_rss_bytes"] for window in summary["windows"]) < 60 * MIB


@pytest.mark.skipif(not LINUX, reason="the kernel high-water mark is read on Linux only")
def test_command_bigger_than_monitor_gets_exact_exit_peak(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    command = [
        sys.executable,
        "-c",
        "import time; b = bytearray(100 * 2**20); time.sleep(0.3)",
    ]
    result = automem("--json", str(out), "--every", "0", "--", *command)
    summary = _summary_of_success(result, out)
    assert 100 * MIB <= summary["peak_rss_bytes"] < 150 * MIB
    assert summary["peak_source"] == "kernel-hwm"
    assert summary["peak_rss_at_most_bytes"] is None


def test_snapshot_rotation_keeps_newest(
    tmp_path: Path, running_child: subprocess.Popen[bytes]
) -> None:
    # Watched by --pid until --duration, so that no exit races a rotation
    # (see test_command_exiting_during_rotation for that race).
    snaps = tmp_path / "snaps"
    out = tmp_path / "summary.json"
    result = automem(
        "--pid", str(running_child.pid), "--duration", "600ms",
        "--snapshots", str(snaps), "--snapshot-every", "100ms", "--keep", "2",
        "--json", str(out), "--every", "0",
    )  # fmt: skip
    assert_no_traceback(result)
    summary = _summary_of_success(result, out)
    windows = summary["windows"]
    assert len(windows) >= 3
    assert all(window["samples"] > 0 for window in windows)
    assert summary["snapshots"] == str(snaps)
    assert f"({len(windows)} windows)" in result.stdout

    files = list_snapshots(snaps)
    assert len(files) == 2
    assert sorted(p.name for p in snaps.iterdir()) == [p.name for p in files]
    for path in files:
        snap = read_snapshot(path)
        assert snap.header["kind"] == "window"
        assert snap.header["pid"] == running_child.pid
        assert snap.header["samples"] == len(snap.rss_bytes)
        assert snap.header["thresholds_bytes"] == summary["thresholds_bytes"]
    # The newest two windows are the ones kept.
    last = len(windows) - 1
    assert files[0].name.endswith(f"-w{last - 1}.jsonl")
    assert files[1].name.endswith(f"-w{last}.jsonl")


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid to leave a zombie")
def test_command_exiting_during_rotation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Deterministic in process: the first rotation waits until the command has
    # exited (a zombie, not yet reaped) and the sampler has seen it go.
    children: list[subprocess.Popen[bytes]] = []
    real_start, real_close = monitor_command._start, monitor_command._close

    def start(command: list[str], **options: Any) -> monitor_command.Spawned:
        spawned = real_start(command, **options)
        children.append(spawned.process)
        return spawned

    def close_then_let_exit(
        args: Any, window: Any, index: int, exit_peak_rss_bytes: int | None = None
    ) -> Any:
        result = real_close(args, window, index, exit_peak_rss_bytes)
        if exit_peak_rss_bytes is None and index == 0:
            os.waitid(os.P_PID, children[0].pid, os.WEXITED | os.WNOWAIT)
            sampler = window._monitor._sampler
            for _ in range(5000):
                if sampler.target_gone():
                    break
                time.sleep(0.001)
        return result

    monkeypatch.setattr(monitor_command, "_start", start)
    monkeypatch.setattr(monitor_command, "_close", close_then_let_exit)
    argv = [
        "monitor", "--every", "0", "--snapshots", str(tmp_path / "snaps"),
        "--snapshot-every", "50ms", "--", *sleeper(0.5),
    ]  # fmt: skip
    try:
        assert main(argv) == 0
    finally:
        for child in children:
            child.wait(timeout=TIMEOUT_S)
    assert "exited with code 0" in capsys.readouterr().out


def test_max_peak_exceeded_exits_3() -> None:
    result = automem("--max-peak", "10MB", "--every", "0", "--", *ALLOC_60MB)
    assert_no_traceback(result)
    assert result.returncode == 3, (result.stdout, result.stderr)
    findings = [line for line in result.stdout.splitlines() if "FINDING" in line]
    assert len(findings) == 1
    assert "--max-peak" in findings[0]
    assert "peak RSS" in findings[0]


def test_max_peak_not_exceeded_is_fine() -> None:
    result = automem("--max-peak", "1GB", "--every", "0", "--", *sleeper(0.2))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "FINDING" not in result.stdout


def test_fail_on_pressure_reached_exits_3(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = automem(
        "--fail-on-pressure", "medium", "--thresholds", "1MB,2MB,3MB",
        "--json", str(out), "--every", "0",
        "--", *sleeper(0.2),
    )  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "FINDING" in result.stdout
    assert "--fail-on-pressure" in result.stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    # A python process holds far more than 3 MB: CRITICAL on the absolute basis.
    assert summary["max_pressure"] == "CRITICAL"
    assert summary["thresholds_bytes"] == [1 * MIB, 2 * MIB, 3 * MIB]
    assert len(summary["findings"]) == 1


def test_fail_on_pressure_not_reached_is_fine() -> None:
    result = automem(
        "--fail-on-pressure", "critical", "--thresholds", "1GB,2GB,3GB",
        "--every", "0", "--", *sleeper(0.2),
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "max pressure LOW" in result.stdout


def test_command_exit_code_passes_through(tmp_path: Path) -> None:
    # Lives long enough for the sampler to start (test_command_exiting_at_once: quick ones).
    out = tmp_path / "summary.json"
    failing = [sys.executable, "-c", "import time; time.sleep(0.2); raise SystemExit(5)"]
    result = automem("--json", str(out), "--every", "0", "--", *failing)
    assert_no_traceback(result)
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "exited with code 5" in result.stdout
    assert "FINDING" not in result.stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["exit_code"] == 5
    assert summary["exit_signal"] is None
    assert summary["monitor_exit_code"] == 5
    assert summary["findings"] == []


def test_command_killed_by_a_signal_exits_128_plus_n(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    killed = [sys.executable, "-c", "import os, time; time.sleep(0.2); os.kill(os.getpid(), 9)"]
    result = automem("--json", str(out), "--every", "0", "--", *killed)
    assert_no_traceback(result)
    assert result.returncode == 128 + 9, (result.stdout, result.stderr)
    assert "killed by SIGKILL" in result.stdout
    assert "-9" not in result.stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert (summary["exit_code"], summary["exit_signal"]) == (137, "SIGKILL")


def test_failed_command_code_beats_a_crossed_limit() -> None:
    # Both happened: the command's own code says more; the limit is still reported.
    failing = [sys.executable, "-c", "import time; time.sleep(0.2); raise SystemExit(5)"]
    result = automem("--max-peak", "1MB", "--every", "0", "--", *failing)
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "FINDING: peak RSS" in result.stdout


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid to leave a zombie")
@pytest.mark.parametrize(
    ("code", "expected_exit"),
    [(5, 5), (0, 0)],
    ids=["exit-5", "exit-0"],
)
def test_command_exiting_at_once(
    code: int,
    expected_exit: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # As a subprocess this is a race between the command and the sampler's
    # start (the command usually wins); make it deterministic in process: the
    # command has exited (a zombie, not yet reaped) before the monitor starts.
    # wait4's figure is then this pytest process's own mark: not reported as
    # the command's peak.
    children: list[subprocess.Popen[bytes]] = []
    real_start = monitor_command._start

    def start_and_let_exit(command: list[str], **options: Any) -> monitor_command.Spawned:
        spawned = real_start(command, **options)
        children.append(spawned.process)
        os.waitid(os.P_PID, spawned.process.pid, os.WEXITED | os.WNOWAIT)
        return spawned

    monkeypatch.setattr(monitor_command, "_start", start_and_let_exit)
    try:
        out = tmp_path / "summary.json"
        command = [sys.executable, "-c", f"raise SystemExit({code})"]
        argv = ["monitor", "--every", "0", "--json", str(out), "--", *command]
        assert main(argv) == expected_exit
    finally:
        for child in children:
            child.wait(timeout=TIMEOUT_S)
    stdout = capsys.readouterr().out
    assert f"exited with code {code}" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["peak_source"] == "unmeasured"
    assert summary["peak_rss_bytes"] is None
    assert "peak RSS not measured" in stdout


# -- watching a running process ----------------------------------------------


def test_pid_until_duration(running_child: subprocess.Popen[bytes]) -> None:
    result = automem("--pid", str(running_child.pid), "--duration", "300ms", "--every", "0")
    assert_no_traceback(result)
    assert result.returncode == 0, (result.stdout, result.stderr)
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"automem monitor: pid {running_child.pid}: --duration ")
    assert "reached" in first
    assert "FINDING" not in result.stdout
    assert running_child.poll() is None  # watching a pid never kills it


def test_pid_until_duration_in_process(
    running_child: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    argv = ["monitor", "--pid", str(running_child.pid), "--duration", "200ms", "--every", "0"]
    assert main([*argv, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "reached" in captured.out
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["command"] == []
    assert summary["pid"] == running_child.pid
    assert summary["exit_code"] is None
    assert summary["findings"] == []
    assert running_child.poll() is None


def test_pid_exiting_during_watch() -> None:
    # Exits on its own about a second in; the test does not reap it until after.
    child = subprocess.Popen(sleeper(1.0))
    try:
        result = automem("--pid", str(child.pid), "--duration", "20s", "--every", "0")
    finally:
        child.kill()
        child.wait(timeout=TIMEOUT_S)
    assert_no_traceback(result)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"pid {child.pid}: process exited" in result.stdout
    assert "FINDING" not in result.stdout


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid to leave a zombie")
def test_pid_already_exited_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Wait until it has exited without reaping it (it stays a zombie).
        waited = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert waited is not None
        result = automem("--pid", str(child.pid), "--duration", "1s", "--every", "0")
    finally:
        child.wait(timeout=TIMEOUT_S)
    assert_no_traceback(result)
    assert result.returncode in (0, 2), (result.stdout, result.stderr)
    if result.returncode == 2:
        assert_input_error(result, "--pid")


# -- live lines ---------------------------------------------------------------


def test_live_lines_on_stderr() -> None:
    result = automem("--every", "100ms", "--", *sleeper(0.5))
    assert result.returncode == 0, (result.stdout, result.stderr)
    live = [line for line in result.stderr.splitlines() if line.startswith("[automem]")]
    assert live, result.stderr
    for line in live:
        assert "rss" in line and "peak" in line and "pressure" in line
    assert "[automem]" not in result.stdout


def test_no_live_lines_with_every_zero() -> None:
    result = automem("--every", "0", "--", *sleeper(0.5))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "[automem]" not in result.stderr
    assert "[automem]" not in result.stdout


# -- input errors: exit 2, one line -------------------------------------------


@pytest.mark.parametrize("option", [["--timeout", "1s"], ["--grace", "1s"]], ids=" ".join)
def test_stop_options_refused_with_pid(
    option: list[str], running_child: subprocess.Popen[bytes]
) -> None:
    # A --pid process is never stopped: an option that would stop it is bad input.
    result = automem("--pid", str(running_child.pid), *option)
    assert_input_error(result, option[0], "--pid")
    assert running_child.poll() is None


def test_neither_command_nor_pid() -> None:
    assert_input_error(automem(), "--pid", "command")


def test_both_command_and_pid(running_child: subprocess.Popen[bytes]) -> None:
    result = automem("--pid", str(running_child.pid), "--", *sleeper(0.2))
    assert_input_error(result, "--pid", "command")
    assert running_child.poll() is None


def test_no_such_pid() -> None:
    assert_input_error(automem("--pid", "999999999"), "--pid 999999999", "no such process")


def test_command_not_found() -> None:
    result = automem("--", "definitely-not-a-command-xyz", "--flag")
    assert_input_error(result, "definitely-not-a-command-xyz")


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--interval", "fast"], "--interval"),
        (["--thresholds", "5MB,1MB,9MB"], "--thresholds"),
        (["--thresholds", "1MB,2MB"], "--thresholds"),
        (["--keep", "-1"], "--keep"),
        (["--max-peak", "lots"], "--max-peak"),
        (["--every", "often"], "--every"),
        (["--duration=-1s"], "--duration"),
        (["--snapshot-every", "0"], "--snapshot-every"),
        (["--fail-on-pressure", "extreme"], "--fail-on-pressure"),
        (["--basis", "weird"], "--basis"),
        (["--grace", "patience"], "--grace"),
        (["--grace=-1s"], "--grace"),
        (["--timeout", "soon"], "--timeout"),
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "1s", "--duration", "1s"], "--timeout"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_bad_option(args: list[str], name: str) -> None:
    # The command would run fine; the option must be refused before it starts.
    assert_input_error(automem(*args, "--", *sleeper(0.2)), name)


@pytest.mark.parametrize("interval", ["0", "0.01ms"])
def test_interval_below_minimum(interval: str) -> None:
    assert_input_error(automem("--interval", interval, "--", *sleeper(0.2)), "--interval")


def test_snapshots_folder_not_creatable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    result = automem("--snapshots", str(blocker / "snaps"), "--every", "0", "--", *sleeper(0.2))
    assert_input_error(result, "--snapshots")


def test_json_path_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    result = automem("--json", str(blocker / "out.json"), "--every", "0", "--", *sleeper(0.2))
    assert_no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1
    assert "--json" in result.stderr


# -- input errors in process --------------------------------------------------


def test_in_process_neither_command_nor_pid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("automem monitor: error: ")
    assert "--pid" in lines[0]


def test_in_process_keep_negative(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--keep", "-1", "--", "definitely-not-a-command-xyz"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "automem monitor: error: --keep -1: must be at least 1 (the newest snapshot is kept)"
    ]


def test_in_process_no_such_pid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--pid", "999999999"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["automem monitor: error: --pid 999999999: no such process, or it has exited"]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--interval", "fast"], "--interval"),
        (["--thresholds", "5MB,1MB,9MB"], "--thresholds"),
        (["--max-peak", "lots"], "--max-peak"),
    ],
)
def test_in_process_argparse_errors(
    args: list[str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["monitor", *args, "--", "definitely-not-a-command-xyz"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("automem: error: argument " + name)


# -- the command's processes: signals, grace, timeout, nothing left behind ----
#
# The monitor runs in a session of its own (as under a terminal or a CI
# runner), so that a Ctrl-C can be sent the way a terminal sends it: to the
# monitor's whole process group.  Every process of a run carries a unique
# environment variable, inherited from the test: the monitor, its sampler and
# guard, the command and everything the command starts.  "Nothing left" means
# no live process with that variable once the monitor has ended.

TOKEN_VARIABLE = "AUTOMEM_TEST_TOKEN"

#: Writes ARGV[2] on SIGINT or SIGTERM after 0.3 s of work (the state it must
#: save), then exits 0; touches ARGV[1] once its handlers are in place.
SAVES_STATE_ON_STOP = """
import pathlib, signal, sys, time
ready, state = map(pathlib.Path, sys.argv[1:3])

def save(name):
    time.sleep(0.3)
    state.write_text(name)
    raise SystemExit(0)

signal.signal(signal.SIGTERM, lambda signum, frame: save("SIGTERM"))
ready.touch()
try:
    time.sleep(120)
except KeyboardInterrupt:
    save("SIGINT")
"""

#: A process tree: the command, two children, and a grandchild whose parent
#: exits at once (an orphan).  Every member ignores the signals named in
#: ARGV[2] (comma-separated).  Writes the members' pids to ARGV[1] when all
#: have started.
TREE = """
import os, signal, subprocess, sys, time
ready, ignored = sys.argv[1], [name for name in sys.argv[2].split(",") if name]
for name in ignored:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
sleep = "import time; time.sleep(120)"
children = [subprocess.Popen([sys.executable, "-c", sleep]) for _ in range(2)]
orphaner = subprocess.run(
    [sys.executable, "-c", "import subprocess as s, sys; "
     "print(s.Popen(sys.argv[1:], stdout=s.DEVNULL, stderr=s.DEVNULL).pid)",
     sys.executable, "-c", sleep],
    capture_output=True, text=True, check=True,
)
pids = [os.getpid(), *(child.pid for child in children), int(orphaner.stdout)]
with open(ready + ".tmp", "w") as out:
    out.write(" ".join(map(str, pids)))
os.rename(ready + ".tmp", ready)
time.sleep(120)
"""


class MonitorRun:
    """``automem monitor ARGS`` in a session of its own, its processes marked with a token.

    Its output goes to files, not pipes: a command left running (or a
    process left behind by a bug) holds on to what it inherited, and a pipe
    would not reach end-of-file before it exits.
    """

    def __init__(self, token: str, folder: Path, *args: str) -> None:
        self._stdout, self._stderr = folder / "monitor.stdout", folder / "monitor.stderr"
        with open(self._stdout, "w") as stdout, open(self._stderr, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pytest_automem", "monitor", *args],
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, TOKEN_VARIABLE: token},
                start_new_session=True,
            )
        self.pid = self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def output(self) -> tuple[str, str]:
        """What the run printed so far: stdout, stderr."""
        return self._stdout.read_text("utf-8"), self._stderr.read_text("utf-8")

    def ended(self) -> bool:
        return self.process.poll() is not None

    def finish(self) -> tuple[str, str]:
        """Wait for the monitor to end; its stdout and stderr, with no traceback."""
        self.process.wait(timeout=TIMEOUT_S)
        stdout, stderr = self.output()
        assert "Traceback" not in stderr, stderr
        return stdout, stderr


def wait_for_file(path: Path, monitor: MonitorRun | None = None) -> str:
    """The text of ``path`` once it exists (generous deadline: this only stops a hang)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        if monitor is not None and monitor.ended():
            raise AssertionError(f"the monitor ended early: {monitor.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)
    return path.read_text(encoding="utf-8")


def marked_processes(token: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``token``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(TOKEN_VARIABLE) == token and (
                process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def left_behind(token: str) -> list[str]:
    """What is still running of a run marked ``token``, once it has had time to go."""
    deadline = time.monotonic() + TIMEOUT_S
    while (left := marked_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [f"{p.pid} {' '.join(p.cmdline())}" for p in left if p.is_running()]


@pytest.fixture
def token() -> Iterator[str]:
    """A unique mark for one run's processes; whatever is left is killed after."""
    mark = uuid.uuid4().hex
    try:
        yield mark
    finally:
        for process in marked_processes(mark):
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_stop_signal_forwarded_and_command_saves_its_state(
    signum: signal.Signals, tmp_path: Path, token: str
) -> None:
    # Reproduces issue 12, point 7: Ctrl-C killed the command with SIGKILL at
    # once (its 0.3 s save never happened) and the monitor exited 0; SIGTERM
    # killed the monitor itself, with no summary and no --json.
    ready, state, out = tmp_path / "ready", tmp_path / "state", tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--json", str(out),
        "--", sys.executable, "-c", SAVES_STATE_ON_STOP, str(ready), str(state),
    )  # fmt: skip
    wait_for_file(ready, monitor)
    os.kill(monitor.pid, signum)
    stdout, _ = monitor.finish()
    assert monitor.returncode == 128 + signum, stdout
    assert wait_for_file(state) == signum.name
    assert f"{signum.name} received, {signum.name} sent to the command's process group" in stdout
    assert "command exited with code 0" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["stopped_by"] == signum.name
    assert summary["exit_code"] == 0
    assert summary["killed_after_grace"] is False
    assert summary["monitor_exit_code"] == 128 + signum
    assert left_behind(token) == []


def test_timeout_stops_the_command_gracefully_and_exits_124(tmp_path: Path, token: str) -> None:
    ready, state, out = tmp_path / "ready", tmp_path / "state", tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--timeout", "1s", "--json", str(out),
        "--", sys.executable, "-c", SAVES_STATE_ON_STOP, str(ready), str(state),
    )  # fmt: skip
    stdout, _ = monitor.finish()
    assert monitor.returncode == 124, stdout
    assert wait_for_file(state) == "SIGTERM"
    assert "--timeout 1.00 s reached, SIGTERM sent" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert (summary["stopped_by"], summary["exit_code"]) == ("--timeout", 0)
    assert left_behind(token) == []


def test_grace_over_kills_the_whole_group(tmp_path: Path, token: str) -> None:
    # The tree ignores SIGTERM: after --grace, SIGKILL takes all of it.
    ready, out = tmp_path / "ready", tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--grace", "300ms", "--json", str(out),
        "--", sys.executable, "-c", TREE, str(ready), "SIGTERM",
    )  # fmt: skip
    wait_for_file(ready, monitor)
    monitor.send_signal(signal.SIGTERM)
    stdout, _ = monitor.finish()
    assert monitor.returncode == 143, stdout
    assert "SIGKILL after the 300.00 ms grace; command killed by SIGKILL" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["killed_after_grace"] is True
    assert summary["exit_signal"] == "SIGKILL"
    assert left_behind(token) == []


def test_second_signal_ends_the_grace_at_once(tmp_path: Path, token: str) -> None:
    # A grace far longer than the test's deadline: only the second Ctrl-C can end it.
    ready = tmp_path / "ready"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--grace", "1h",
        "--", sys.executable, "-c", TREE, str(ready), "SIGINT",
    )  # fmt: skip
    wait_for_file(ready, monitor)
    os.kill(monitor.pid, signal.SIGINT)
    os.kill(monitor.pid, signal.SIGTERM)  # another signal: two SIGINTs at once may merge
    stdout, _ = monitor.finish()
    assert monitor.returncode == 130, stdout
    assert "command killed by SIGKILL" in stdout
    assert left_behind(token) == []


def test_duration_stops_watching_and_leaves_the_command_running(tmp_path: Path, token: str) -> None:
    # Reproduces issue 12, point 7: --duration killed the command it was only
    # to stop watching, and left the command's children running with ppid 1.
    ready, out = tmp_path / "ready", tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--duration", "300ms", "--json", str(out),
        "--", sys.executable, "-c", TREE, str(ready), "",
    )  # fmt: skip
    stdout, _ = monitor.finish()
    assert monitor.returncode == 0, stdout
    pids = [int(pid) for pid in wait_for_file(ready).split()]
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["left_running"] is True
    assert f"command left running (pid {pids[0]})" in stdout
    for pid in pids:  # the whole tree, in the command's own group
        assert psutil.pid_exists(pid)
        assert os.getpgid(pid) == pids[0]


@pytest.mark.skipif(not LINUX, reason="the parent-death signal and subreapers are Linux's")
@pytest.mark.parametrize(
    "how", [signal.SIGKILL, signal.SIGTERM, "Ctrl-C"], ids=["SIGKILL", "SIGTERM", "ctrl-c"]
)
def test_nothing_left_after_the_monitor_is_ended(
    how: signal.Signals | str, tmp_path: Path, token: str
) -> None:
    # Reproduces issue 12, point 8: after kill -9 or SIGTERM of the monitor the
    # command kept running with ppid 1.  The tree ignores SIGINT, so a Ctrl-C
    # (to the monitor's whole group, as a terminal sends it) takes the grace
    # and SIGKILL path.
    ready = tmp_path / "ready"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--grace", "300ms",
        "--", sys.executable, "-c", TREE, str(ready), "SIGINT",
    )  # fmt: skip
    pids = [int(pid) for pid in wait_for_file(ready, monitor).split()]
    assert {p.pid for p in marked_processes(token)} >= {monitor.pid, *pids}
    if how == "Ctrl-C":
        os.killpg(monitor.pid, signal.SIGINT)
    else:
        os.kill(monitor.pid, how)
    stdout, _ = monitor.finish()
    expected = {"Ctrl-C": 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}[how]
    assert monitor.returncode == expected, stdout
    assert left_behind(token) == []


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
def test_command_dies_with_the_monitor_even_without_the_guard(tmp_path: Path, token: str) -> None:
    # The parent-death signal alone: the guard is killed with the monitor.
    ready = tmp_path / "ready"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--", sys.executable, "-c", TREE, str(ready), ""
    )
    command = int(wait_for_file(ready, monitor).split()[0])
    guards = [
        child
        for child in psutil.Process(monitor.pid).children()
        if any("group_guard" in part for part in child.cmdline())
    ]
    assert len(guards) == 1
    guards[0].kill()
    monitor.send_signal(signal.SIGKILL)
    monitor.finish()
    deadline = time.monotonic() + TIMEOUT_S
    while is_alive(command) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not is_alive(command)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(not LINUX, reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_orphans_of_the_command_are_adopted_by_the_monitor(tmp_path: Path, token: str) -> None:
    ready = tmp_path / "ready"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--", sys.executable, "-c", TREE, str(ready), ""
    )
    orphan = int(wait_for_file(ready, monitor).split()[-1])
    try:
        assert psutil.Process(orphan).ppid() == monitor.pid
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.finish()
    assert monitor.returncode == 143
    assert left_behind(token) == []


def test_pid_mode_never_stops_its_process(
    running_child: subprocess.Popen[bytes], tmp_path: Path, token: str
) -> None:
    out = tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--pid", str(running_child.pid), "--every", "20ms", "--json", str(out)
    )
    deadline = time.monotonic() + TIMEOUT_S
    while "[automem]" not in monitor.output()[1]:  # watching, with its handlers in place
        assert not monitor.ended() and time.monotonic() < deadline, monitor.output()
        time.sleep(0.01)
    monitor.send_signal(signal.SIGTERM)
    stdout, _ = monitor.finish()
    assert monitor.returncode == 143, stdout
    assert f"pid {running_child.pid}: SIGTERM received" in stdout
    assert json.loads(out.read_text(encoding="utf-8"))["stopped_by"] == "SIGTERM"
    assert running_child.poll() is None


def test_help_says_what_happens_to_the_processes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_automem", "monitor", "--help"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=True,
    )  # fmt: skip
    text = " ".join(result.stdout.split())
    assert "never signals, stops or kills it" in text  # --pid
    assert "a command still running is left running" in text  # --duration
    assert "exit 124, as timeout(1)" in text  # --timeout
    assert "killed with SIGKILL" in text  # --grace


def test_help_says_the_whole_process_tree_is_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["monitor", "--help"])
    text = " ".join(capsys.readouterr().out.split()).lower()
    assert "whole process tree" in text
    assert "summed in every sample" in text
    assert f"at most {DEFAULT_MAX_PROCESSES} processes are followed at once" in text
    assert "each process's own peak" in text


# -- internal failures and a closed stdout ------------------------------------


def sampler_of(monitor: MonitorRun) -> psutil.Process:
    """The monitor's sampler process, once it runs."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for child in psutil.Process(monitor.pid).children():
            with contextlib.suppress(psutil.Error):
                if any(part.endswith("sampler_child.py") for part in child.cmdline()):
                    return child
        time.sleep(0.01)
    raise AssertionError("no sampler")


def test_dead_sampler_exits_70_with_one_line_and_the_summary(tmp_path: Path, token: str) -> None:
    # Reproduces issue 12, point 9: a dead sampler gave a 25-line traceback
    # and no summary.  The command is stopped like on SIGTERM.
    ready, out = tmp_path / "ready", tmp_path / "summary.json"
    monitor = MonitorRun(
        token, tmp_path, "--every", "0", "--grace", "300ms", "--json", str(out),
        "--", sys.executable, "-c", TREE, str(ready), "",
    )  # fmt: skip
    wait_for_file(ready, monitor)
    sampler_of(monitor).kill()
    stdout, stderr = monitor.finish()
    assert monitor.returncode == 70, (stdout, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("automem monitor: internal error: ")
    assert "sampler" in lines[0]
    assert stdout.startswith("automem monitor: ")
    assert "peak RSS" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert "sampler" in summary["internal_error"]
    assert summary["monitor_exit_code"] == 70
    assert summary["peak_rss_bytes"] > 0
    assert left_behind(token) == []


def test_closed_stdout_is_not_an_error(tmp_path: Path) -> None:
    # `automem monitor ... | head`: the reader is gone before the summary.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest_automem", "monitor", "--every", "0",
             "--json", str(tmp_path / "summary.json"), "--", *sleeper(0.2)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 0
    assert json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))["exit_code"] == 0


@pytest.mark.parametrize(
    ("returncode", "code", "text"),
    [
        (0, 0, "exited with code 0"),
        (5, 5, "exited with code 5"),
        (-9, 137, "killed by SIGKILL"),
        (-15, 143, "killed by SIGTERM"),
        (-2, 130, "killed by SIGINT"),
    ],
)
def test_returncodes_as_a_shell_reports_them(returncode: int, code: int, text: str) -> None:
    assert exit_codes.of_returncode(returncode) == code
    assert exit_codes.describe_returncode(returncode) == text


def test_exit_codes_are_distinct_and_never_0_or_1_for_failures() -> None:
    codes = [
        exit_codes.EXIT_OK, exit_codes.EXIT_FINDING, exit_codes.EXIT_USAGE,
        exit_codes.EXIT_LIMIT, exit_codes.EXIT_INTERNAL, exit_codes.EXIT_TIMEOUT,
        exit_codes.for_signal(signal.SIGINT), exit_codes.for_signal(signal.SIGTERM),
    ]  # fmt: skip
    assert codes == [0, 1, 2, 3, 70, 124, 130, 143]
