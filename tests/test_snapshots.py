"""Snapshot files: written atomically, read back, pruned to the newest N of our own."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NESTED_TOO_DEEP, assert_input_error, resident_block

from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.pressure import PressureLevel, PressureThresholds
from pytest_automem.snapshots.downsample import downsample_indices
from pytest_automem.snapshots.files import (
    SnapshotEvent,
    SnapshotFormatError,
    SnapshotLog,
    _file_name,
    cleanup_snapshots,
    is_snapshot_name,
    list_snapshots,
    read_snapshot,
    write_snapshot,
)

MB = 1 << 20


def _window(monitor: MemoryMonitor, hold_s: float = 0.03):
    window = monitor.window(thresholds=PressureThresholds(1 * MB, 8 * MB, 64 * MB))
    block = resident_block(10 * MB)
    time.sleep(hold_s)
    block.close()
    return window.stop()


def test_write_and_read_back(tmp_path: Path, monitor: MemoryMonitor) -> None:
    result = _window(monitor)
    path = write_snapshot(result, tmp_path / "snaps", label="tests/test_x.py::test[a b]")
    assert path.parent == tmp_path / "snaps"
    assert "tests_test_x.py_test_a_b" in path.name
    snap = read_snapshot(path)
    assert snap.header["peak_bytes"] == result.peak_bytes
    assert snap.header["thresholds_bytes"] == [1 * MB, 8 * MB, 64 * MB]
    assert len(snap.rss_bytes) == result.samples
    assert snap.t_ms[0] == 0.0
    assert list(snap.t_ms) == sorted(snap.t_ms)
    assert PressureLevel.HIGH in snap.pressure  # the 10 MB block was held for 30 ms
    for rss, level in zip(snap.rss_bytes, snap.pressure, strict=True):
        assert result.level_of(rss) is level
    assert list(tmp_path.joinpath("snaps").glob(".*tmp")) == []


def test_cleanup_keeps_newest(tmp_path: Path, monitor: MemoryMonitor) -> None:
    result = _window(monitor, hold_s=0.0)
    written = [write_snapshot(result, tmp_path, label=f"w{i}", keep=None) for i in range(5)]
    assert list_snapshots(tmp_path) == written
    removed = cleanup_snapshots(tmp_path, keep=2)
    assert removed == written[:3]
    assert list_snapshots(tmp_path) == written[3:]
    write_snapshot(result, tmp_path, label="last", keep=2)
    assert len(list_snapshots(tmp_path)) == 2
    (tmp_path / "unrelated.txt").write_text("keep me")
    cleanup_snapshots(tmp_path, keep=0)
    assert list_snapshots(tmp_path) == []
    assert (tmp_path / "unrelated.txt").exists()
    with pytest.raises(ValueError, match="keep"):
        cleanup_snapshots(tmp_path, keep=-1)


#: What a user may keep beside our snapshots: named like them, but not ours.
NOT_OURS = [
    "snapshot-0-baseline.jsonl",
    "snapshot-zzz.jsonl",
    "snapshot-20261125T153012.123456-4242-w0.jsonl.bak",
    "snapshot-20261325T153012.123456-4242-w0.jsonl",  # month 13
    "snapshot-20261125T153012-4242-w0.jsonl",  # no microseconds
    "snapshot-20261125T153012.123456-4242-.jsonl",  # no label
    "snapshot-20261125T153012.123456-pid-w0.jsonl",
    "snapshot-20261125T153012.123456-4242-" + "x" * 81 + ".jsonl",
    "snapshot-20261125T153012.123456-4242-a b.jsonl",
    "Snapshot-20261125T153012.123456-4242-w0.jsonl",
]


@pytest.mark.parametrize("name", NOT_OURS)
def test_names_not_ours(name: str) -> None:
    assert not is_snapshot_name(name)


@pytest.mark.parametrize("label", ["w0", "", "___", "x" * 200, "🧠", "tests/t.py::test[a b]", "-."])
def test_every_name_we_write_is_ours(label: str) -> None:
    now = dt.datetime(2026, 12, 5, 13, 0, 0, 1, tzinfo=dt.timezone.utc)
    assert is_snapshot_name(_file_name(label, now, 4242))


def _ours(folder: Path, when: str, label: str = "w0", pid: int = 4242) -> Path:
    path = folder / f"snapshot-{when}-{pid}-{label}.jsonl"
    path.write_text('{"kind": "window"}\n')
    return path


def test_pruning_leaves_what_is_not_ours(tmp_path: Path, monitor: MemoryMonitor) -> None:
    for name in NOT_OURS:
        (tmp_path / name).write_text("the user's\n")
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("the user's\n")
    link = tmp_path / "snapshot-20200101T000000.000000-1-link.jsonl"
    link.symlink_to(elsewhere)
    folder_like_ours = tmp_path / "snapshot-20200101T000000.000000-1-dir.jsonl"
    folder_like_ours.mkdir()
    old = _ours(tmp_path, "20200101T000000.000000")
    result = _window(monitor, hold_s=0.0)
    written = [write_snapshot(result, tmp_path, label=f"w{i}", keep=1) for i in range(3)]
    assert list_snapshots(tmp_path) == [written[-1]]
    assert not old.exists()
    for name in NOT_OURS:
        assert (tmp_path / name).read_text() == "the user's\n", name
    assert link.is_symlink() and elsewhere.read_text() == "the user's\n"
    assert folder_like_ours.is_dir()
    assert cleanup_snapshots(tmp_path, keep=0) == [written[-1]]
    assert len(list(tmp_path.iterdir())) == len(NOT_OURS) + 3


def test_newest_by_the_time_in_the_name_not_by_mtime(tmp_path: Path) -> None:
    # A copy or an artifact download resets mtimes; the name keeps the time written.
    older = _ours(tmp_path, "20261205T120000.000009", pid=99999)
    newer = _ours(tmp_path, "20261205T120000.000010", pid=1)
    os.utime(older, (2_000_000_000, 2_000_000_000))
    os.utime(newer, (1_000_000_000, 1_000_000_000))
    assert list_snapshots(tmp_path) == [older, newer]
    assert cleanup_snapshots(tmp_path, keep=1) == [older]
    assert list_snapshots(tmp_path) == [newer]


def test_the_file_just_written_is_kept_even_if_a_name_looks_newer(
    tmp_path: Path, monitor: MemoryMonitor
) -> None:
    # The clock went back, or another machine wrote here: the path returned exists.
    future = _ours(tmp_path, "20991231T235959.999999")
    written = write_snapshot(_window(monitor, hold_s=0.0), tmp_path, keep=1)
    assert written.exists()
    assert not future.exists()
    assert list_snapshots(tmp_path) == [written]


def test_write_snapshot_refuses_to_keep_nothing(tmp_path: Path, monitor: MemoryMonitor) -> None:
    result = _window(monitor, hold_s=0.0)
    with pytest.raises(ValueError, match="keep count 0: must be >= 1"):
        write_snapshot(result, tmp_path, keep=0)
    assert list(tmp_path.iterdir()) == []


def _automem_monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", "monitor", "--every", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("keep", ["0", "-1"])
def test_monitor_keep_below_one_is_a_usage_error(tmp_path: Path, keep: str) -> None:
    snaps = tmp_path / "snaps"
    command = [sys.executable, "-c", "pass"]
    result = _automem_monitor("--snapshots", str(snaps), "--keep", keep, "--", *command)
    assert "at least 1" in assert_input_error(result, f"--keep {keep}")
    assert not snaps.exists()


@pytest.fixture
def sleeping_child() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=60)


def test_monitor_summary_says_how_many_snapshots_are_kept(
    tmp_path: Path, sleeping_child: subprocess.Popen[bytes]
) -> None:
    # Watched by --pid until --duration, so no exit of the command races a rotation.
    snaps, out = tmp_path / "snaps", tmp_path / "summary.json"
    result = _automem_monitor(
        "--pid", str(sleeping_child.pid), "--duration", "500ms", "--snapshots", str(snaps),
        "--snapshot-every", "100ms", "--keep", "1", "--json", str(out),
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(out.read_text())
    windows = len(summary["windows"])
    assert windows >= 2
    assert summary["snapshots_kept"] == 1
    assert f"  snapshots: {snaps} ({windows} windows), newest 1 kept\n" in result.stdout
    assert len(list_snapshots(snaps)) == 1


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", ":1: empty snapshot"),
        ('{"kind": "other"}\n', ":1: first line is not a snapshot header"),
        ('{"kind": "window"}\nnot json\n', ":2: invalid JSON"),
        ('{"kind": "window"}\n[1, 2]\n', ":2: expected a JSON object"),
        (
            '{"kind": "window"}\n' + NESTED_TOO_DEEP + "\n",
            ":2: invalid JSON: nested too deeply",
        ),
        ('{"kind": "window"}\n\n{"t_ms": 1}\n', ":3: bad sample"),
        ('{"kind": "window"}\n{"t_ms": 1, "rss_bytes": 5, "pressure": "HUGE"}\n', ":2: bad sample"),
    ],
)
def test_bad_snapshot_names_file_and_line(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "snapshot-bad.jsonl"
    path.write_text(content)
    with pytest.raises(SnapshotFormatError) as info:
        read_snapshot(path)
    assert f"{path}{error}" in str(info.value)


def test_header_is_plain_json(tmp_path: Path, monitor: MemoryMonitor) -> None:
    path = write_snapshot(_window(monitor, hold_s=0.0), tmp_path)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["kind"] == "window"
    assert header["version"] == 2
    assert header["peak_source"] in {"kernel-hwm", "sampled"}


def test_events_and_downsampled_samples_round_trip(tmp_path: Path, monitor: MemoryMonitor) -> None:
    result = _window(monitor, hold_s=0.05)
    events = [
        SnapshotEvent(5.0, "trim", rss_before_bytes=30 * MB, rss_after_bytes=20 * MB),
        SnapshotEvent(1.5, "gc", rss_before_bytes=20 * MB, rss_after_bytes=18 * MB, detail="gen 2"),
    ]
    path = write_snapshot(
        result, tmp_path, events=events, max_points=8, header_extra={"test": "t.py::test"}
    )
    snap = read_snapshot(path)
    assert snap.header["test"] == "t.py::test"
    assert snap.header["downsampled_from"] == result.samples
    assert len(snap.rss_bytes) <= 8
    assert max(snap.rss_bytes) == max(result.sample_rss_bytes)
    assert [e.kind for e in snap.events] == ["gc", "trim"]  # in time order
    assert snap.events[0].detail == "gen 2"
    assert snap.events[1].effect_bytes == -10 * MB
    assert snap.object_counts == ()


def test_version_1_file_reads_without_events(tmp_path: Path) -> None:
    path = tmp_path / "snapshot-v1.jsonl"
    path.write_text(
        '{"kind": "window", "version": 1}\n'
        '{"t_ms": 0.0, "rss_bytes": 10, "measured_bytes": 10, "pressure": "LOW"}\n'
    )
    snap = read_snapshot(path)
    assert snap.rss_bytes == (10,)
    assert snap.events == ()
    assert not snap.torn_tail


def test_log_is_readable_while_written_and_after_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with SnapshotLog(path, label="spawn", pid=42, header_extra={"source": "spawner"}) as log:
        log.sample(0.0, 10 * MB, 10 * MB, PressureLevel.LOW, objects=100)
        log.event(SnapshotEvent(1.0, "spawn", rss_before_bytes=10 * MB, detail="HIGH profile"))
        snap = read_snapshot(path)  # while the writer is still open
        assert snap.object_counts == (100,)
        assert snap.events[0].kind == "spawn"
    with path.open("a") as handle:
        handle.write('{"t_ms": 2.0, "rss_by')  # a writer killed mid-line
    snap = read_snapshot(path)
    assert snap.torn_tail
    assert snap.header["source"] == "spawner"
    assert len(snap.rss_bytes) == 1


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"t_ms": 1, "event": "Bad Kind"}', ":2: bad event"),
        ('{"t_ms": 1, "event": "gc", "rss_before_bytes": -1}', ":2: bad event"),
        ('{"t_ms": 1, "event": "gc", "detail": 3}', ":2: bad event"),
        ('{"t_ms": 1, "rss_bytes": 5, "pressure": "LOW", "objects": 1.5}', ":2: bad sample"),
        ('{"t_ms": "soon", "rss_bytes": 5, "pressure": "LOW"}', ":2: bad sample"),
    ],
)
def test_bad_event_or_sample_names_file_and_line(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "snapshot-bad.jsonl"
    path.write_text('{"kind": "window"}\n' + line + "\n")
    with pytest.raises(SnapshotFormatError) as info:
        read_snapshot(path)
    assert f"{path}{error}" in str(info.value)


@pytest.mark.parametrize("count", [0, 1, 4, 5, 499, 500, 501, 10_000])
@pytest.mark.parametrize("max_points", [4, 5, 500])
def test_downsampling_keeps_the_peak_and_stays_bounded(count: int, max_points: int) -> None:
    values = [(i * 7919) % 1000 for i in range(count)]
    if count > 3:
        values[count // 3] = 5000  # one spike
    kept = downsample_indices(values, max_points)
    assert len(kept) <= max_points
    assert kept == sorted(set(kept))
    if count:
        assert kept[0] == 0 and kept[-1] == count - 1
        assert max(values[i] for i in kept) == max(values)
        assert min(values[i] for i in kept) == min(values)


@pytest.mark.parametrize("bad", [0, 3, -1, 2.5, None])
def test_downsampling_rejects_too_few_points(bad: object) -> None:
    with pytest.raises(ValueError, match="max_points"):
        downsample_indices([1, 2, 3], bad)  # type: ignore[arg-type]
