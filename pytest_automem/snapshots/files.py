"""Snapshot files: a window's samples with their pressure, as JSON lines.

One file per window, named so that names sort by time
(``snapshot-20261125T153012.123456-4242-<label>.jsonl``).  The first line is a
header (``"kind": "window"``) with the window's summary and how it was
measured; every further line is one sample::

    {"t_ms": 12.004, "rss_bytes": 48349184, "measured_bytes": 31461376, "pressure": "LOW"}

``t_ms`` counts from the window's first sample.  Files are written atomically
and old ones are pruned (keep the newest N) so a long CI job cannot fill its
disk with snapshots.

Pruning touches only regular files whose whole name is one this module
writes (:func:`is_snapshot_name`), and orders them by the time in their
name, not by their mtime: a copy, an artifact download or a checkout
resets mtimes, while the name keeps the moment the window was written
(UTC, to the microsecond).  A user's ``snapshot-0-baseline.jsonl`` is
never ours to delete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_writer
from ..base.defaults import DEFAULT_KEEP
from ..base.json_files import JsonTextError, json_kind, parse_json
from ..base.units import is_count
from ..measure.pressure import MeasurementBasis, PressureLevel
from ..measure.window_result import WindowResult

__all__ = [
    "DEFAULT_KEEP",
    "Snapshot",
    "SnapshotFormatError",
    "cleanup_snapshots",
    "is_snapshot_name",
    "list_snapshots",
    "read_snapshot",
    "write_snapshot",
]

SNAPSHOT_VERSION = 1
_PREFIX = "snapshot-"
_SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_CHARS = 80
_TIME_FORMAT = "%Y%m%dT%H%M%S.%f"
#: Exactly the names :func:`_file_name` gives: time, pid, sanitised label.
_NAME = re.compile(
    rf"{_PREFIX}(?P<time>\d{{8}}T\d{{6}}\.\d{{6}})-(?P<pid>\d+)-"
    rf"(?P<label>[A-Za-z0-9_.-]{{1,{_LABEL_CHARS}}})"
    rf"{re.escape(_SUFFIX)}"
)


class SnapshotFormatError(ValueError):
    """A snapshot file is not what :func:`write_snapshot` writes; names file:line."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read back: the header dict and the samples."""

    path: Path
    header: dict[str, Any]
    t_ms: tuple[float, ...]
    rss_bytes: tuple[int, ...]
    pressure: tuple[PressureLevel, ...]


def _file_name(label: str, now: _dt.datetime, pid: int) -> str:
    safe = _UNSAFE.sub("_", label).strip("_")[:_LABEL_CHARS] or "window"
    return f"{_PREFIX}{now.strftime(_TIME_FORMAT)}-{pid}-{safe}{_SUFFIX}"


def _written_at(name: str) -> _dt.datetime | None:
    """The time in a name :func:`_file_name` gave, or None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return _dt.datetime.strptime(match["time"], _TIME_FORMAT)
    except ValueError:  # digits in the right places, but no date (month 13)
        return None


def is_snapshot_name(name: str) -> bool:
    """Whether ``name`` is exactly a name :func:`write_snapshot` gives its files."""
    return _written_at(name) is not None


def write_snapshot(
    result: WindowResult,
    folder: str | os.PathLike[str],
    *,
    label: str = "window",
    keep: int | None = DEFAULT_KEEP,
) -> Path:
    """Write ``result`` as a snapshot file in ``folder``; prune to ``keep`` files.

    The file just written is always one of the ``keep`` (at least 1), even
    if the clock went back and older names look newer: the path returned
    exists.  ``keep=None`` keeps everything.
    """
    if keep is not None and not is_count(keep, minimum=1):
        raise ValueError(
            f"invalid snapshot keep count {keep}: must be >= 1 (the file just written is "
            "kept), or None to keep every file"
        )
    now = _dt.datetime.now(_dt.timezone.utc)
    path = Path(folder) / _file_name(label, now, result.pid)
    header = {
        "kind": "window",
        "version": SNAPSHOT_VERSION,
        "label": label,
        "pid": result.pid,
        "written_at": now.isoformat(),
        "thresholds_bytes": list(result.thresholds.boundaries()),
        **result.to_dict(),
    }
    with atomic_writer(path) as handle:
        handle.write(json.dumps(header, sort_keys=True) + "\n")
        for line in _sample_lines(result):
            handle.write(line)
    if keep is not None:
        _prune([p for p in list_snapshots(folder) if p.name != path.name], keep - 1)
    return path


def _sample_lines(result: WindowResult) -> Iterator[str]:
    times = result.sample_times_ns
    if not times:
        return
    origin = times[0]
    offset = result.baseline_bytes if result.basis is MeasurementBasis.RELATIVE else 0
    classify = result.thresholds.classify
    for t_ns, rss in zip(times, result.sample_rss_bytes, strict=True):
        measured = rss - offset
        yield (
            f'{{"t_ms": {(t_ns - origin) / 1e6:.3f}, "rss_bytes": {rss}, '
            f'"measured_bytes": {measured}, "pressure": "{classify(measured).name}"}}\n'
        )


def list_snapshots(folder: str | os.PathLike[str]) -> list[Path]:
    """Our snapshot files in ``folder``, oldest first by the time in their names.

    Only regular files named exactly as :func:`write_snapshot` names them
    count; links, folders and other ``snapshot-*.jsonl`` files are not ours.
    """
    base = Path(folder)
    if not base.is_dir():
        return []
    dated = []
    for path in base.iterdir():
        written_at = _written_at(path.name)
        if written_at is not None and _is_regular_file(path):
            dated.append((written_at, path.name, path))
    return [path for _, _, path in sorted(dated)]


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:  # pruned by another writer while we looked
        return False


def cleanup_snapshots(folder: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> list[Path]:
    """Delete all but the newest ``keep`` of our snapshot files; return what was deleted.

    Only files :func:`list_snapshots` lists are candidates.  ``keep=0``
    deletes every one of them: this is an explicit clean-up, with no file
    just written to protect (:func:`write_snapshot` needs ``keep >= 1``).
    """
    if not is_count(keep):
        raise ValueError(f"invalid snapshot keep count {keep}: must be >= 0")
    return _prune(list_snapshots(folder), keep)


def _prune(files: list[Path], keep: int) -> list[Path]:
    """Delete all but the last ``keep`` of ``files`` (oldest first); return what went."""
    removed = []
    for path in files[: max(0, len(files) - keep)]:
        try:
            path.unlink()
        except FileNotFoundError:  # another writer pruned it first
            continue
        removed.append(path)
    return removed


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a snapshot file back; malformed content raises SnapshotFormatError."""
    source = Path(path)
    times: list[float] = []
    rss: list[int] = []
    levels: list[PressureLevel] = []
    header: dict[str, Any] | None = None
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = _parse_line(source, number, line)
            if header is None:
                if record.get("kind") != "window":
                    raise SnapshotFormatError(
                        f"{source}:{number}: first line is not a snapshot header"
                    )
                header = record
                continue
            try:
                times.append(float(record["t_ms"]))
                rss.append(int(record["rss_bytes"]))
                levels.append(PressureLevel.parse(record["pressure"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise SnapshotFormatError(f"{source}:{number}: bad sample: {exc}") from None
    if header is None:
        raise SnapshotFormatError(f"{source}:1: empty snapshot file")
    return Snapshot(source, header, tuple(times), tuple(rss), tuple(levels))


def _parse_line(source: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = parse_json(line)
    except JsonTextError as exc:
        raise SnapshotFormatError(f"{source}:{number}: {exc}") from None
    if not isinstance(record, dict):
        raise SnapshotFormatError(
            f"{source}:{number}: expected a JSON object, got {json_kind(record)}"
        )
    return record
