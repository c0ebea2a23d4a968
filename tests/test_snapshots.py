"""Snapshot files: written atomically, read back, pruned to the newest N."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import NESTED_TOO_DEEP, resident_block

from pytest_automem.monitor import MemoryMonitor
from pytest_automem.pressure import PressureLevel, PressureThresholds
from pytest_automem.snapshots import (
    SnapshotFormatError,
    cleanup_snapshots,
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
    assert header["version"] == 1
    assert header["peak_source"] in {"kernel-hwm", "sampled"}
