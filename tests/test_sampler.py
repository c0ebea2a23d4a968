"""The sampler process: protocol, lifecycle, dying with its parent, dying alone."""

from __future__ import annotations

import ast
import mmap
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_automem import sampler
from pytest_automem.monitor import MemoryMonitor
from pytest_automem.sampling import SamplerDiedError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        return "State:\tZ" not in status.read_text()
    return True


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_child_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(sampler.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the sampler must not import from the package"
            imported.add((node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"psutil", "__future__"}
    assert imported <= allowed, imported - allowed


def test_ring_round_trip_in_process(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    capacity = 4
    path.write_bytes(b"\0" * sampler.ring_size_bytes(capacity))
    with path.open("r+b") as handle:
        buffer = mmap.mmap(handle.fileno(), 0)
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, capacity, 1_000_000, 0, 0, 0, 0, 1)
    ring = sampler.Ring(buffer)
    for i in range(6):
        ring.append(1000 + i, 10 * i)
    count = sampler.COUNT_FIELD.unpack_from(buffer, sampler.OFFSET_WRITE_COUNT)[0]
    assert count == 6
    newest = sampler.ENTRY.unpack_from(buffer, sampler.HEADER_SIZE + (5 % capacity) * 16)
    assert newest == (1005, 50)
    buffer.close()


def test_ring_rejects_foreign_memory(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    path.write_bytes(b"\1" * sampler.ring_size_bytes(4))
    with path.open("r+b") as handle:
        buffer = mmap.mmap(handle.fileno(), 0)
    with pytest.raises(ValueError, match="automem ring"):
        sampler.Ring(buffer)
    buffer.close()


def test_close_stops_the_sampler_and_leaves_no_ring_file() -> None:
    before = set(Path("/dev/shm").glob("automem-ring-*")) if Path("/dev/shm").is_dir() else set()
    monitor = MemoryMonitor().start()
    pid = monitor.sampler_pid
    assert _pid_alive(pid)
    monitor.close()
    assert _wait_gone(pid)
    after = set(Path("/dev/shm").glob("automem-ring-*")) if Path("/dev/shm").is_dir() else set()
    assert after <= before
    monitor.close()  # idempotent


def test_close_without_waiting_kills_now_and_reaps_at_the_next_close() -> None:
    monitor = MemoryMonitor().start()
    child = monitor._sampler._process
    monitor.close(wait=False)
    assert not monitor.running
    assert _wait_gone(child.pid)  # killed, not yet reaped: a zombie at most
    assert child.returncode is None
    monitor.close()
    assert child.returncode == -signal.SIGKILL
    monitor.close()  # idempotent


def test_killed_sampler_is_a_clear_error_not_a_hang() -> None:
    monitor = MemoryMonitor().start()
    try:
        window = monitor.window(collect_garbage=False)
        os.kill(monitor.sampler_pid, signal.SIGKILL)
        assert _wait_gone(monitor.sampler_pid)
        time.sleep(0.06)  # windows ask the OS about the sampler at most every 50 ms
        with pytest.raises(SamplerDiedError, match=rf"pid {monitor.sampler_pid}.*exit code -9"):
            window.stop()
        with pytest.raises(SamplerDiedError, match="sampler process"):
            monitor.window()
    finally:
        monitor.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_sampler_dies_with_its_parent(tmp_path: Path, how: str) -> None:
    script = tmp_path / "parent.py"
    ending = "os.kill(os.getpid(), signal.SIGKILL)" if how == "sigkill" else "os._exit(0)"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            from pytest_automem.monitor import MemoryMonitor
            monitor = MemoryMonitor().start()
            print(monitor.sampler_pid, flush=True)
            {ending}
            """
        )
    )
    parent = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    sampler_pid = int(parent.stdout.strip())
    assert _wait_gone(sampler_pid), f"sampler {sampler_pid} outlived its parent"


def test_sampler_stops_when_the_target_exits() -> None:
    from pytest_automem._platform import ProcessGoneError

    child = subprocess.Popen(
        [sys.executable, "-c", "x = b'x' * (30 << 20); import time; time.sleep(0.3)"]
    )
    monitor = MemoryMonitor(child.pid).start()
    try:
        window = monitor.window()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = status
        deadline = time.monotonic() + 10
        while monitor._sampler.status_text() == "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "measured process exited" in monitor._sampler.status_text()
        result = window.stop(exit_peak_rss_bytes=usage.ru_maxrss * 1024)
        assert result.peak_rss_bytes >= 30 << 20
        assert result.samples > 0
        with pytest.raises(ProcessGoneError, match=f"process {child.pid} has exited"):
            monitor.window()
    finally:
        monitor.close()


def test_child_command_line_is_parsed() -> None:
    options = sampler.parse_args(["--ring", "fd:7", "--target-pid", "12", "--parent-pid", "3"])
    assert (options.ring, options.target_pid, options.parent_pid) == ("fd:7", 12, 3)
    assert options.reader == "procfs"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--ring", "x", "--target-pid", "1"], "--parent-pid is required"),
        (["--ring", "x", "--target-pid", "one", "--parent-pid", "2"], "--target-pid 'one'"),
        (["--ring", "x", "--target-pid", "1", "--parent-pid", "2", "--colour", "red"], "--colour"),
        (["--ring", "x", "--target-pid", "1", "--parent-pid", "2", "--reader", "s"], "--reader"),
        (["--ring"], "option --ring needs a value"),
    ],
)
def test_bad_child_command_line_is_a_one_line_error(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(sampler.UsageError, match=re.escape(words)):
        sampler.parse_args(argv)
    assert sampler.main(argv) == 2
    assert words in capsys.readouterr().err.splitlines()[-1]
