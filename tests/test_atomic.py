"""Output files and links: a link at an output path is replaced or refused, never
written through, and no written file carries setuid, setgid or sticky bits.

Every writer of a user file (results, reports, snapshots, JUnit, the monitor's
summary) goes through :mod:`pytest_automem.base.atomic`; the planted-link tests run
the real writers, so that none of them bypasses it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import resident_block

from pytest_automem.base import atomic
from pytest_automem.base.atomic import (
    UnsafeOutputPathError,
    atomic_write_text,
    open_for_append_nofollow,
)
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.pressure import PressureThresholds
from pytest_automem.outputs.session_outputs import (
    append_step_summary,
    report_file_name,
    write_report_files,
)
from pytest_automem.results.results_file import write_results
from pytest_automem.snapshots import files as snapshots

MB = 1 << 20
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
SECRET = "the link's target: must stay as it is\n"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask, so that a new file's mode is known: 0o644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def setuid_target(tmp_path: Path) -> Path:
    """A setuid, setgid executable outside the output folder."""
    target = tmp_path / "elsewhere" / "setuid-tool"
    target.parent.mkdir()
    target.write_text(SECRET)
    target.chmod(0o6755)
    assert stat.S_IMODE(target.stat().st_mode) == 0o6755  # the filesystem keeps them
    return target


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _assert_target_untouched(target: Path) -> None:
    assert target.read_text() == SECRET
    assert _mode(target) == 0o6755


def _assert_plain_new_file(path: Path) -> None:
    """The link was replaced by a regular file of a new file's mode (0o666 less 0o022)."""
    assert not path.is_symlink()
    assert stat.S_ISREG(path.lstat().st_mode)
    assert _mode(path) & SPECIAL_BITS == 0
    assert _mode(path) == 0o644


def _window_result(monitor: MemoryMonitor):  # type: ignore[no-untyped-def]
    window = monitor.window(thresholds=PressureThresholds(1 * MB, 8 * MB, 64 * MB))
    block = resident_block(2 * MB)
    time.sleep(0.01)
    block.close()
    return window.stop()


def _write_results(folder: Path) -> Path:
    path = folder / "results.json"
    write_results(path, {"session": {}, "tests": {"t.py::a": {"peak_bytes": 1}}})
    return path


def _write_report(folder: Path) -> Path:
    record = {"message": "peak 9.0 MB > budget 1.0 MB", "report": "memory report"}
    return write_report_files(folder, {"t.py::a": record})["t.py::a"]


WRITERS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], Path]]] = {
    # name: (where the writer will write in a folder, the writer)
    "results": (lambda folder: folder / "results.json", _write_results),
    "report": (lambda folder: folder / report_file_name("t.py::a"), _write_report),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writer_replaces_a_link_to_a_setuid_file(
    writer: str, tmp_path: Path, setuid_target: Path, umask_022: None
) -> None:
    where, write = WRITERS[writer]
    folder = tmp_path / "out"
    folder.mkdir()
    where(folder).symlink_to(setuid_target)
    written = write(folder)
    assert written == where(folder)
    _assert_target_untouched(setuid_target)
    _assert_plain_new_file(written)


def test_snapshot_replaces_a_link_to_a_setuid_file(
    tmp_path: Path,
    setuid_target: Path,
    umask_022: None,
    monitor: MemoryMonitor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A snapshot's name holds the time it is written; fix it to plant the link.
    name = "snapshot-20261205T120000.000000-42-window.jsonl"
    monkeypatch.setattr(snapshots, "_file_name", lambda label, now, pid: name)
    folder = tmp_path / "snaps"
    folder.mkdir()
    (folder / name).symlink_to(setuid_target)
    written = snapshots.write_snapshot(_window_result(monitor), folder, keep=None)
    assert written == folder / name
    _assert_target_untouched(setuid_target)
    _assert_plain_new_file(written)
    assert snapshots.read_snapshot(written).header["kind"] == "window"


def test_existing_file_keeps_its_permissions_but_never_special_bits(
    tmp_path: Path, umask_022: None
) -> None:
    for before, after in ((0o6755, 0o755), (0o1640, 0o640), (0o4700, 0o700), (0o600, 0o600)):
        path = tmp_path / f"out-{before:o}.json"
        path.write_text("old\n")
        path.chmod(before)
        atomic_write_text(path, "new\n")
        assert path.read_text() == "new\n"
        assert _mode(path) == after, f"{before:o}"


def test_new_file_gets_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.json", "x\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.json") == 0o640


def test_append_refuses_a_link_and_names_the_path(tmp_path: Path, setuid_target: Path) -> None:
    link = tmp_path / "archive.jsonl"
    link.symlink_to(setuid_target)
    with pytest.raises(UnsafeOutputPathError, match="symbolic link") as info:
        open_for_append_nofollow(link)
    assert info.value.filename == str(link)
    assert str(link) in str(info.value)
    _assert_target_untouched(setuid_target)


def test_append_refuses_a_link_where_the_os_has_no_nofollow(
    tmp_path: Path, setuid_target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_NOFOLLOW", 0)  # as on Windows
    link = tmp_path / "archive.jsonl"
    link.symlink_to(setuid_target)
    with pytest.raises(UnsafeOutputPathError, match="symbolic link"):
        open_for_append_nofollow(link)
    _assert_target_untouched(setuid_target)


def test_append_refuses_a_fifo_without_waiting_for_a_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "archive.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeOutputPathError, match="not a regular file"):
        open_for_append_nofollow(fifo)


def test_append_creates_and_appends_to_a_regular_file(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "archive.jsonl"
    for line in (b"one\n", b"two\n"):
        fd = open_for_append_nofollow(path, readable=True)
        try:
            os.write(fd, line)
            assert os.pread(fd, 4, 0) == b"one\n"
            assert os.get_blocking(fd)
        finally:
            os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"
    assert _mode(path) == 0o644
    write_only = open_for_append_nofollow(path)
    try:
        with pytest.raises(OSError):
            os.pread(write_only, 1, 0)
    finally:
        os.close(write_only)


def test_step_summary_is_not_appended_through_a_link(tmp_path: Path, setuid_target: Path) -> None:
    link = tmp_path / "step_summary.md"
    link.symlink_to(setuid_target)
    with pytest.raises(UnsafeOutputPathError, match="symbolic link"):
        append_step_summary(link, "## pytest-automem: memory\n")
    _assert_target_untouched(setuid_target)


# -- stale temps: removed once their writer is dead, never a live writer's ----


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writer_removes_its_stale_temps_but_not_a_live_writers(tmp_path: Path, writer: str) -> None:
    where, write = WRITERS[writer]
    target = where(tmp_path)
    stale = tmp_path / f".{target.name}.dead_123.tmp"  # what a kill -9 leaves
    stale.write_text("half a file")
    similar = tmp_path / f".{target.name}.dead_12.tmp"  # not mkstemp's eight characters
    similar.write_text("someone else's")

    with atomic.atomic_writer(target) as live:
        live.write("the live writer's")
        (live_temp,) = {p for p in tmp_path.glob(f".{target.name}.*.tmp")} - {stale, similar}
        write(tmp_path)
        assert live_temp.exists()

    assert not stale.exists()
    assert similar.exists()
    assert target.read_text() == "the live writer's"


def test_remove_stale_temps_leaves_a_temp_whose_lock_is_held(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    held, free = tmp_path / ".out.json.held0000.tmp", tmp_path / ".out.json.free0000.tmp"
    for path in (held, free):
        path.write_text("x")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a live writer in another process does
        assert atomic.remove_stale_temps(target) == [free]
        assert held.exists()
    finally:
        os.close(fd)
    assert atomic.remove_stale_temps(target) == [held]


def test_writer_whose_fresh_temp_a_cleaner_removed_takes_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one moment a temp is unlocked: between mkstemp and flock.
    target = tmp_path / "out.json"
    real_flock, calls = fcntl.flock, []

    def cleaner_first(fd: int, operation: int) -> None:
        calls.append(operation)
        if len(calls) == 1:  # the writer's first lock: a cleaner got there first
            assert atomic.remove_stale_temps(target) != []
        real_flock(fd, operation)

    monkeypatch.setattr(atomic.fcntl, "flock", cleaner_first)
    with atomic.atomic_writer(target) as handle:
        handle.write("complete")
    assert target.read_text() == "complete"
    assert calls.count(fcntl.LOCK_EX) == 2  # the removed temp's, and the new one's
    assert list(tmp_path.iterdir()) == [target]


def test_no_temp_is_removed_where_there_is_no_flock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / ".out.json.abcdefgh.tmp"
    stale.write_text("x")
    monkeypatch.setattr(atomic, "fcntl", None)
    atomic.atomic_write_text(tmp_path / "out.json", "written")
    assert atomic.remove_stale_temps(tmp_path / "out.json") == []
    assert stale.exists()


def test_temp_of_a_writer_killed_with_sigkill_is_removed_by_the_next_write(
    tmp_path: Path,
) -> None:
    killed_mid_write = (
        "import os, signal, sys\n"
        "from pytest_automem.base.atomic import atomic_writer\n"
        "with atomic_writer(sys.argv[1]) as handle:\n"
        "    handle.write('half a file')\n"
        "    handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    target = tmp_path / "results.json"
    killed = subprocess.run(
        [sys.executable, "-c", killed_mid_write, str(target)], env=env, timeout=60, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".results.json.*.tmp"))) == 1  # what kill -9 left

    _write_results(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]


def test_writer_that_cannot_set_the_mode_leaves_no_descriptor_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(PermissionError), atomic.atomic_writer(target) as handle:
        handle.write("new\n")
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert target.read_text() == "old\n"


def test_sync_folder_makes_files_written_without_fsync_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One syncfs where the C library has it; else each regular file, then the folder."""
    for name in ("a.jsonl", "b.jsonl"):
        with atomic.atomic_writer(tmp_path / name, durable=False) as handle:
            handle.write("{}\n")
    (tmp_path / "link").symlink_to(tmp_path / "a.jsonl")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    real_syncfs = atomic._syncfs
    whole: list[bool] = []
    monkeypatch.setattr(atomic, "_syncfs", lambda fd: whole.append(real_syncfs(fd)) or whole[-1])

    atomic.sync_folder(tmp_path)
    if sys.platform.startswith("linux"):
        assert whole == [True] and synced == []  # one call for the whole file system
    monkeypatch.setattr(atomic, "_syncfs", lambda fd: False)
    synced.clear()
    atomic.sync_folder(tmp_path)
    assert len(synced) == 3  # two files (not the link), then the folder
    atomic.sync_folder(tmp_path / "missing")  # nothing to sync: no error
