"""Snapshot files: a window's samples with their pressure, as JSON lines.

One file per window, named so that names sort by time
(``snapshot-20261125T153012.123456-4242-<label>.jsonl``).  The first line is a
header (``"kind": "window"``) with the window's summary and how it was
measured; every further line is one sample::

    {"t_ms": 12.004, "rss_bytes": 48349184, "measured_bytes": 31461376, "pressure": "LOW"}

``t_ms`` counts from the window's first sample.  Files are written atomically
and old ones are pruned (keep the newest N) so a long CI job cannot fill its
disk with snapshots — the original guide's "old snapshots cleaned up".
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_writer
from .pressure import MeasurementBasis, PressureLevel
from .window_result import WindowResult

__all__ = [
    "DEFAULT_KEEP",
    "Snapshot",
    "SnapshotFormatError",
    "cleanup_snapshots",
    "list_snapshots",
    "read_snapshot",
    "write_snapshot",
]

SNAPSHOT_VERSION = 1
DEFAULT_KEEP = 50
_PREFIX = "snapshot-"
_SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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
    safe = _UNSAFE.sub("_", label).strip("_")[:80] or "window"
    return f"{_PREFIX}{now.strftime('%Y%m%dT%H%M%S.%f')}-{pid}-{safe}{_SUFFIX}"


def write_snapshot(
    result: WindowResult,
    folder: str | os.PathLike[str],
    *,
    label: str = "window",
    keep: int | None = DEFAULT_KEEP,
) -> Path:
    """Write ``result`` as a snapshot file in ``folder``; prune to ``keep`` files.

    ``keep=None`` keeps everything.  Returns the path written.
    """
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
        cleanup_snapshots(folder, keep=keep)
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
    """Snapshot files in ``folder``, oldest first (names sort by time)."""
    base = Path(folder)
    if not base.is_dir():
        return []
    return sorted(
        p for p in base.iterdir() if p.name.startswith(_PREFIX) and p.name.endswith(_SUFFIX)
    )


def cleanup_snapshots(folder: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> list[Path]:
    """Delete all but the newest ``keep`` snapshot files; return what was deleted."""
    if keep < 0:
        raise ValueError(f"invalid snapshot keep count {keep}: must be >= 0")
    files = list_snapshots(folder)
    doomed = files[: max(0, len(files) - keep)]
    removed = []
    for path in doomed:
        try:
            path.unlink()
        except FileNotFoundError:
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
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SnapshotFormatError(f"{source}:{number}: invalid JSON: {exc.msg}") from None
    except ValueError as exc:  # an integer past Python's digit limit
        reason = str(exc).partition(":")[0]
        raise SnapshotFormatError(f"{source}:{number}: invalid JSON: {reason}") from None
    except RecursionError:
        raise SnapshotFormatError(f"{source}:{number}: invalid JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise SnapshotFormatError(f"{source}:{number}: expected a JSON object")
    return record
