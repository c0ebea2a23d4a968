"""The sampler process: protocol, lifecycle, dying with its parent, dying alone."""

from __future__ import annotations

import ast
import mmap
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_automem.measure import sampler_child as sampler
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.sampler_parent import (
    RingReader,
    SamplerDiedError,
    SamplerProcess,
    _ring_folder,
)


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


TORN_RSS = -1  # a half-written entry: its time is new, its RSS not yet


def _entry(index: int) -> tuple[int, int]:
    """What the fake sampler writes as entry ``index``: unique to that index."""
    return 1_000_000 + index, 4096 * (index + 1)


class InterleavedRing(bytearray):
    """A ring in plain memory whose sampler writes while the reader copies.

    The reader copies entries by slicing the buffer, after it has read the
    count; before each slice the fake sampler takes its next turn, as the
    real one may at any moment: it publishes some entries, then may leave
    the next one half written in the slot it is overwriting.
    """

    def __init__(self, capacity: int, published: int, turns: list[tuple[int, bool]]) -> None:
        super().__init__(sampler.ring_size_bytes(capacity))
        sampler.HEADER.pack_into(self, 0, sampler.MAGIC, capacity, 1_000_000, 0, 0, 0, 0, 1)
        self.ring = sampler.Ring(self)  # type: ignore[arg-type]
        self.turns = list(turns)
        self.torn_indexes: set[int] = set()
        for _ in range(published):
            self._publish_next()

    def _publish_next(self) -> None:
        self.ring.append(*_entry(self.ring.count))

    def _tear_next(self) -> None:
        index = self.ring.count
        offset = sampler.HEADER_SIZE + (index % self.ring.capacity) * sampler.ENTRY_SIZE
        sampler.ENTRY.pack_into(self, offset, _entry(index)[0], TORN_RSS)
        self.torn_indexes.add(index)

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, slice) and self.turns:
            publish, tear = self.turns.pop(0)
            for _ in range(publish):
                self._publish_next()
            if tear:
                self._tear_next()
        return super().__getitem__(key)


def _read_while_sampling(
    ring: InterleavedRing, start: int
) -> tuple[int, list[tuple[int, int]], int]:
    """Read ``[start, count)`` as a window's stop does; returns end, entries, dropped."""
    reader = RingReader(ring)
    end = reader.write_count()
    block = reader.read(start, end)
    return end, list(zip(block.times_ns, block.rss_bytes, strict=True)), block.dropped


def _assert_exact_newest(
    start: int, end: int, entries: list[tuple[int, int]], dropped: int
) -> None:
    """The block is the newest ``len`` entries before ``end``, each exactly as written."""
    assert dropped + len(entries) == end - start
    assert entries == [_entry(index) for index in range(end - len(entries), end)]


def test_read_never_returns_the_slot_the_sampler_is_overwriting() -> None:
    ring = InterleavedRing(capacity=8, published=20, turns=[(0, True)])
    end, entries, dropped = _read_while_sampling(ring, start=4)
    assert ring.torn_indexes == {20}  # in slot 4, where entry 12 was
    assert all(rss != TORN_RSS for _, rss in entries)
    _assert_exact_newest(4, end, entries, dropped)
    assert len(entries) == 7  # the slot in flight is not readable


def test_read_drops_entries_overwritten_while_it_copied() -> None:
    ring = InterleavedRing(capacity=8, published=20, turns=[(2, True)])
    end, entries, dropped = _read_while_sampling(ring, start=10)
    assert ring.torn_indexes == {22}  # in slot 6, where entry 14 was
    assert all(rss != TORN_RSS for _, rss in entries)
    _assert_exact_newest(10, end, entries, dropped)
    assert [t for t, _ in entries] == [_entry(i)[0] for i in range(15, 20)]
    assert dropped == 5  # 10..12 the ring no longer held, 13 and 14 overwritten meanwhile


@given(
    capacity=st.integers(1, 12),
    published=st.integers(0, 40),
    start_back=st.integers(0, 40),
    turns=st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=3),
)
def test_read_returns_only_entries_exactly_as_written(
    capacity: int, published: int, start_back: int, turns: list[tuple[int, bool]]
) -> None:
    ring = InterleavedRing(capacity, published, turns)
    start = max(0, published - start_back)
    end, entries, dropped = _read_while_sampling(ring, start)
    _assert_exact_newest(start, end, entries, dropped)
    if ring.ring.count == end:  # nothing published while it copied: all but the slot in flight
        assert len(entries) == min(end - start, capacity - 1)


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


def _ring_files() -> set[Path]:
    return set(Path(_ring_folder()).glob("automem-ring-*"))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_ring_that_cannot_be_set_up_leaves_no_file() -> None:
    before = _ring_files()
    with pytest.raises(struct.error):  # an interval beyond int64 ns
        SamplerProcess(os.getpid(), interval_ns=1 << 63, capacity=16, reader="procfs")
    assert _ring_files() <= before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists descriptors through /proc")
def test_a_sampler_that_dies_at_start_leaves_nothing_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last_words = "import sys; sys.exit('automem sampler: cannot start')"
    monkeypatch.setattr(
        SamplerProcess, "_command", lambda self, *args: [sys.executable, "-c", last_words]
    )
    files, fds = _ring_files(), _open_fds()
    with pytest.raises(SamplerDiedError) as raised:
        SamplerProcess(os.getpid(), interval_ns=1_000_000, capacity=16, reader="procfs")
    # Checked while the error, and through its traceback the half-built
    # object, is still held, as a caller reporting it holds it.
    assert _ring_files() <= files
    assert _open_fds() <= fds  # the ring's mapping, the child's stderr and pipes are closed
    assert str(raised.value).endswith("(exit code 1, starting): automem sampler: cannot start")


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


def test_sampler_outlives_the_thread_that_started_it() -> None:
    monitor = MemoryMonitor()
    starter = threading.Thread(target=monitor.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.1)  # a signal sent at the thread's exit has long arrived
        window = monitor.window(collect_garbage=False)
        time.sleep(0.05)
        result = window.stop()
        assert result.samples > 0
        assert _pid_alive(monitor.sampler_pid)
    finally:
        monitor.close()


def _parent_script(path: Path, body: str) -> Path:
    path.write_text(
        "import os, signal, sys, threading, time\n"
        "from pytest_automem.measure.monitor import MemoryMonitor\n" + textwrap.dedent(body)
    )
    return path


def _pids_from(script: Path) -> list[int]:
    """Run ``script``, which prints its sampler's pid (and others) and dies; return them."""
    parent = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert parent.stdout.strip(), parent.stderr
    return [int(pid) for pid in parent.stdout.split()]


def _assert_sampler_dies_with_its_parent(script: Path) -> None:
    """Run ``script`` (see :func:`_pids_from`): its sampler must be gone soon
    after it; the other processes it printed are killed afterwards."""
    sampler_pid, *others = _pids_from(script)
    try:
        assert _wait_gone(sampler_pid), f"sampler {sampler_pid} outlived its parent"
    finally:
        for pid in others:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")
@pytest.mark.parametrize(
    ("interval", "ending"),
    [
        ("1ms", "os.kill(os.getpid(), signal.SIGKILL)"),
        ("1ms", "os._exit(0)"),
    ],
)
def test_sampler_dies_with_its_parent(tmp_path: Path, interval: str, ending: str) -> None:
    script = _parent_script(
        tmp_path / "parent.py",
        f"""
        monitor = MemoryMonitor(interval_ms={interval!r}).start()
        print(monitor.sampler_pid, flush=True)
        {ending}
        """,
    )
    _assert_sampler_dies_with_its_parent(script)


@pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")
def test_sampler_wakes_when_its_parent_dies_whatever_its_interval(tmp_path: Path) -> None:
    # The target lives on, and the parent's death is seen within 10 s only
    # if the sampler wakes for it: a getppid() check every 16 samples of 1 s
    # would take 16 s.
    script = _parent_script(
        tmp_path / "parent.py",
        """
        import subprocess
        target = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        monitor = MemoryMonitor(target.pid, interval_ms="1s").start()
        print(monitor.sampler_pid, target.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    _assert_sampler_dies_with_its_parent(script)


@pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")
def test_sampler_started_from_a_thread_dies_with_its_process(tmp_path: Path) -> None:
    script = _parent_script(
        tmp_path / "parent.py",
        """
        monitor = MemoryMonitor()
        starter = threading.Thread(target=monitor.start)
        starter.start()
        starter.join()
        print(monitor.sampler_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    _assert_sampler_dies_with_its_parent(script)


@pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")
def test_sampler_dies_with_its_parent_while_a_fork_of_it_lives(tmp_path: Path) -> None:
    script = _parent_script(
        tmp_path / "parent.py",
        """
        monitor = MemoryMonitor().start()
        fork = os.fork()
        if fork == 0:  # a copy of the parent, holding all its descriptors but our pipes
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            time.sleep(30)
            os._exit(0)
        print(monitor.sampler_pid, fork, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    _assert_sampler_dies_with_its_parent(script)


def test_sampler_stops_when_the_target_exits() -> None:
    from pytest_automem.measure._platform import ProcessGoneError

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
    assert options.lifeline is None
    watched = sampler.parse_args(
        ["--ring", "fd:7", "--target-pid", "1", "--parent-pid", "2", "--lifeline", "9"]
    )
    assert watched.lifeline == 9


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["--ring", "x", "--target-pid", "1"],
            "the following arguments are required: --parent-pid",
        ),
        (
            ["--ring", "x", "--target-pid", "one", "--parent-pid", "2"],
            "argument --target-pid: expected a process id, got 'one'",
        ),
        (["--ring", "x", "--target-pid", "1", "--parent-pid", "2", "--colour", "red"], "--colour"),
        (["--ring", "x", "--target-pid", "1", "--parent-pid", "2", "--reader", "s"], "--reader"),
        (["--ring"], "argument --ring: expected one argument"),
        (
            ["--ring", "x", "--target-pid", "1", "--parent-pid", "2", "--lifeline", "w"],
            "argument --lifeline: expected a file descriptor, got 'w'",
        ),
    ],
)
def test_bad_child_command_line_is_a_one_line_error(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(sampler.UsageError, match=re.escape(words)):
        sampler.parse_args(argv)
    assert sampler.main(argv) == 2
    assert words in capsys.readouterr().err.splitlines()[-1]


def test_the_process_table_lies_after_the_entries_and_only_for_a_tree() -> None:
    entries = sampler.HEADER_SIZE + 4 * sampler.ENTRY_SIZE
    assert sampler.ring_size_bytes(4) == entries
    assert sampler.table_offset(4) == entries
    assert sampler.table_slots(0) == 0
    assert sampler.ring_size_bytes(4, 2) == entries + (2 + sampler.EXITED_SLOTS) * sampler.SLOT.size
    offsets = [
        sampler.OFFSET_MAX_PROCESSES,
        sampler.OFFSET_TABLE_GENERATION,
        sampler.OFFSET_PROCESSES_SEEN,
        sampler.OFFSET_NOT_FOLLOWED,
        sampler.OFFSET_TABLE_USED,
    ]
    assert offsets[0] >= sampler.HEADER.size
    assert len(set(offsets)) == len(offsets)
    assert max(offsets) + 8 <= sampler.HEADER_SIZE


def test_a_sampler_of_one_process_has_no_table() -> None:
    process = SamplerProcess(os.getpid(), interval_ns=1_000_000, capacity=16, reader="procfs")
    try:
        assert process.process_table() is None
        assert process.processes_seen() == 1
        newest = process.newest_rss_bytes()
        assert newest is not None and newest > 0
    finally:
        process.close()


#: Forks a child that holds 30 MiB, prints its pid, and sleeps.
_FORKS_AND_HOLDS = """
import os, sys, time
child = os.fork()
if child == 0:
    x = b"x" * (30 << 20)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_tree_sampler_publishes_each_process_and_samples_the_sum() -> None:
    root = subprocess.Popen(
        [sys.executable, "-c", _FORKS_AND_HOLDS], stdout=subprocess.PIPE, text=True
    )
    assert root.stdout is not None
    child = int(root.stdout.readline())
    process = SamplerProcess(
        root.pid, interval_ns=1_000_000, capacity=64, reader="procfs", max_processes=8
    )
    try:
        deadline = time.monotonic() + 30
        while (table := process.process_table()) is None or len(table.processes) < 2:
            assert time.monotonic() < deadline, "the tree sampler published no child"
            time.sleep(0.01)
        assert process.processes_seen() == 2
        rows = {row.pid: row for row in table.processes}
        assert set(rows) == {root.pid, child}
        assert rows[child].last_rss_bytes >= 30 << 20
        assert all(row.running and row.name.startswith("python") for row in rows.values())
        newest = process.newest_rss_bytes()
        assert newest is not None and newest >= rows[child].last_rss_bytes
    finally:
        process.close()
        os.kill(child, signal.SIGKILL)
        root.kill()
        root.wait()


# -- resting between windows ---------------------------------------------------


def _wanted_field(process: SamplerProcess) -> int:
    return sampler.COUNT_FIELD.unpack_from(process._buffer, sampler.OFFSET_WANTED)[0]


def _wait_for_samples(process: SamplerProcess, count: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process.write_count() < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@pytest.mark.skipif(os.name != "posix", reason="only a lifeline pipe can wake a resting sampler")
def test_a_resting_sampler_wakes_when_a_window_wants_samples() -> None:
    # It rests 60 s between samples: a sample within 10 s of asking, then
    # many more, come only from the wake-up and the full rate that follows.
    process = SamplerProcess(
        os.getpid(),
        interval_ns=1_000_000,
        capacity=1024,
        reader="procfs",
        idle_interval_ns=60_000_000_000,
    )
    try:
        assert process.rests
        resting = process.write_count()
        time.sleep(0.05)
        assert process.write_count() == resting  # no sample during the rest
        process.set_wanted(True)
        assert _wanted_field(process) == 1
        assert _wait_for_samples(process, resting + 20, timeout_s=10)
        process.set_wanted(False)
        assert _wanted_field(process) == 0
        time.sleep(0.05)  # the sample in flight lands, then it rests
        rested = process.write_count()
        time.sleep(0.1)
        assert process.write_count() == rested
    finally:
        process.close()


def test_a_sampler_without_an_idle_interval_never_rests() -> None:
    process = SamplerProcess(os.getpid(), interval_ns=1_000_000, capacity=64, reader="procfs")
    try:
        assert not process.rests
        assert process.idle_interval_ns == process.interval_ns
        process.set_wanted(True)  # harmless: it samples at full rate anyway
        assert _wait_for_samples(process, 20, timeout_s=10)
    finally:
        process.close()


def test_a_nudge_ends_the_sleep_and_restarts_the_schedule() -> None:
    """run(): a nudged sleep is followed at once by a sample; a sleep that
    saw the parent die ends the loop."""
    buffer = bytearray(sampler.ring_size_bytes(16))
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, 16, 1_000_000, 0, 0, 0, 0, 0)
    ring = sampler.Ring(buffer)  # type: ignore[arg-type]  # a bytearray maps like an mmap
    sleeps: list[float] = []
    wakes = iter([sampler.NUDGED, sampler.SLEPT, sampler.PARENT_GONE])

    def sleep(seconds: float) -> int:
        sleeps.append(seconds)
        return next(wakes)

    status = sampler.run(
        ring, lambda: 4096, 1_000_000, os.getpid(), sleep, idle_interval_ns=1_000_000_000
    )
    assert status == sampler.STATUS_PARENT_GONE
    assert ring.count == 3
    # Resting (nobody wants samples), to absolute deadlines an idle interval
    # apart (the fake sleeps return at once): the nudge restarted them, so
    # the second sleep is a whole interval again, not what was left of two.
    assert [round(seconds) for seconds in sleeps] == [1, 1, 2]


@pytest.mark.parametrize(("span_age_s", "rests"), [(None, True), (0.0, True), (2.0, False)])
def test_a_span_gets_every_sample_once_it_has_lasted_an_idle_interval(
    span_age_s: float | None, rests: bool
) -> None:
    buffer = bytearray(sampler.ring_size_bytes(16))
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, 16, 1_000_000, 0, 0, 0, 0, 0)
    if span_age_s is not None:
        opened_ns = time.monotonic_ns() - int(span_age_s * 1e9)
        sampler.COUNT_FIELD.pack_into(buffer, sampler.OFFSET_SPAN_OPENED, opened_ns)
    ring = sampler.Ring(buffer)  # type: ignore[arg-type]  # a bytearray maps like an mmap
    sleeps: list[float] = []

    def sleep(seconds: float) -> int:
        sleeps.append(seconds)
        return sampler.PARENT_GONE

    sampler.run(ring, lambda: 4096, 1_000_000, os.getpid(), sleep, idle_interval_ns=1_000_000_000)
    assert len(sleeps) == 1
    assert (sleeps[0] > 0.5) is rests  # an idle interval of 1 s, or the full rate's 1 ms
