"""Output files and links: a link at an output path is replaced or refused, never
written through, and no written file carries setuid, setgid or sticky bits.

Every writer of a user file (results, reports, snapshots, JUnit, the monitor's
summary) goes through :mod:`pytest_automem.atomic`; the planted-link tests run
the real writers, so that none of them bypasses it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import resident_block

from pytest_automem import atomic, snapshots
from pytest_automem.atomic import (
    UnsafeOutputPathError,
    atomic_write_text,
    open_for_append_nofollow,
)
from pytest_automem.monitor import MemoryMonitor
from pytest_automem.pressure import PressureThresholds
from pytest_automem.report.session_outputs import (
    append_step_summary,
    report_file_name,
    write_report_files,
)
from pytest_automem.results import write_results

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
