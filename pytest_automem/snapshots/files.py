"""Snapshot files: memory over time with its pressure and events, as JSON lines.

One format for everything that records memory over time: ``automem
monitor --snapshots`` (one file per window), the pytest plugin's per-test
samples (``--automem-samples``) and the spawner's events file.  Files are
named so that names sort by time
(``snapshot-20261125T153012.123456-4242-<label>.jsonl``).  The first line is a
header (``"kind": "window"``) with the window's summary and how it was
measured; every further line is a sample or an event::

    {"t_ms": 12.004, "rss_bytes": 48349184, "measured_bytes": 31461376, "pressure": "LOW"}
    {"t_ms": 15.2, "event": "gc", "rss_before_bytes": 48349184, "rss_after_bytes": 30000000}

``t_ms`` counts from the window's first sample.  A sample may carry
``"objects"`` (how many objects the watched program held, where it knows).
An event names what happened (:data:`EVENT_KINDS`, or any other lower-case
word a newer writer uses), with the resident memory before and after it
where known and a free-text ``detail``.  Version 1 files (samples only) read
as version 2 files without events.

A window's samples may be downsampled (:mod:`.downsample`): the header then
says ``"downsampled_from"``, and the kept points still hold the exact
highest sample.  Whole files are written atomically and old ones are pruned
(keep the newest N) so a long CI job cannot fill its disk with snapshots; a
file written as things happen (:class:`SnapshotLog`, the spawner's) is
appended line by line, so a reader ignores a torn last line.

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
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_writer
from ..base.defaults import DEFAULT_KEEP
from ..base.json_files import JsonTextError, json_kind, parse_json
from ..base.units import is_count
from ..measure.pressure import MeasurementBasis, PressureLevel
from ..measure.window_result import WindowResult
from .downsample import downsample_indices

__all__ = [
    "DEFAULT_KEEP",
    "EVENT_KINDS",
    "SNAPSHOT_VERSION",
    "Snapshot",
    "SnapshotEvent",
    "SnapshotFormatError",
    "SnapshotLog",
    "cleanup_snapshots",
    "is_snapshot_name",
    "list_snapshots",
    "read_snapshot",
    "sample_line",
    "snapshot_path",
    "write_snapshot",
]

SNAPSHOT_VERSION = 2
#: The event kinds this package writes.  ``gc``: a garbage collection ran;
#: ``gc_request``: a watched child was asked to collect; ``trim``: memory was
#: returned to the OS or objects were trimmed; ``spawn``: a replacement was
#: started; ``retire``: an old process was stopped after a spawn; ``level``:
#: the pressure level changed; ``warning``: the growth rate passed a mark;
#: ``start``, ``exit``, ``crash``: a watched process began, ended, died;
#: ``ready``: a spawned child loaded its state and applied its profile.
EVENT_KINDS = (
    "start",
    "ready",
    "gc",
    "gc_request",
    "trim",
    "spawn",
    "retire",
    "level",
    "warning",
    "crash",
    "exit",
)
_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
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
class SnapshotEvent:
    """Something that happened at ``t_ms``, with its effect on resident memory."""

    t_ms: float
    kind: str
    rss_before_bytes: int | None = None
    rss_after_bytes: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not _EVENT_KIND.fullmatch(self.kind):
            raise ValueError(f"invalid event kind {self.kind!r}: a lower-case word")
        if not math.isfinite(self.t_ms):
            raise ValueError(f"invalid event time {self.t_ms!r}: must be finite")

    @property
    def effect_bytes(self) -> int | None:
        """After minus before (negative: memory went down), where both are known."""
        if self.rss_before_bytes is None or self.rss_after_bytes is None:
            return None
        return self.rss_after_bytes - self.rss_before_bytes

    def to_line(self) -> str:
        record: dict[str, Any] = {"t_ms": round(self.t_ms, 3), "event": self.kind}
        if self.rss_before_bytes is not None:
            record["rss_before_bytes"] = self.rss_before_bytes
        if self.rss_after_bytes is not None:
            record["rss_after_bytes"] = self.rss_after_bytes
        if self.detail:
            record["detail"] = self.detail
        return json.dumps(record) + "\n"


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read back: the header dict, the samples and the events.

    ``object_counts`` is empty when no sample recorded one, else one entry
    per sample (None where that sample had none).  ``torn_tail`` says the
    last line was cut off mid-write (a log whose writer was killed) and was
    left out.
    """

    path: Path
    header: dict[str, Any]
    t_ms: tuple[float, ...]
    rss_bytes: tuple[int, ...]
    pressure: tuple[PressureLevel, ...]
    events: tuple[SnapshotEvent, ...] = ()
    object_counts: tuple[int | None, ...] = ()
    torn_tail: bool = False

    @property
    def label(self) -> str:
        return str(self.header.get("label", self.path.stem))


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


def snapshot_path(folder: str | os.PathLike[str], label: str, pid: int) -> Path:
    """A new file name in ``folder`` for ``label``, sorting by the time now (UTC)."""
    return Path(folder) / _file_name(label, _dt.datetime.now(_dt.timezone.utc), pid)


def _header(label: str, pid: int, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "kind": "window",
        "version": SNAPSHOT_VERSION,
        "label": label,
        "pid": pid,
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        **(extra or {}),
    }


def write_snapshot(
    result: WindowResult,
    folder: str | os.PathLike[str],
    *,
    label: str = "window",
    keep: int | None = DEFAULT_KEEP,
    events: Sequence[SnapshotEvent] = (),
    max_points: int | None = None,
    header_extra: Mapping[str, Any] | None = None,
    durable: bool = True,
) -> Path:
    """Write ``result`` as a snapshot file in ``folder``; prune to ``keep`` files.

    The file just written is always one of the ``keep`` (at least 1), even
    if the clock went back and older names look newer: the path returned
    exists.  ``keep=None`` keeps everything.  ``max_points`` downsamples the
    samples (keeping the highest exactly); ``header_extra`` adds keys to
    the header (the plugin's ``"test"``, say); ``events`` are written after
    the samples, in time order.  ``durable=False``: atomic but not synced
    to disk (:func:`~pytest_automem.base.atomic.atomic_writer`), for files
    written by the hundred and again every run.
    """
    if keep is not None and not is_count(keep, minimum=1):
        raise ValueError(
            f"invalid snapshot keep count {keep}: must be >= 1 (the file just written is "
            "kept), or None to keep every file"
        )
    path = snapshot_path(folder, label, result.pid)
    kept = _kept_indices(result, max_points)
    header = _header(label, result.pid, header_extra)
    header["thresholds_bytes"] = list(result.thresholds.boundaries())
    header.update(result.to_dict())
    if len(kept) < len(result.sample_times_ns):
        header["downsampled_from"] = len(result.sample_times_ns)
    with atomic_writer(path, durable=durable) as handle:
        handle.write(json.dumps(header, sort_keys=True) + "\n")
        for line in _sample_lines(result, kept):
            handle.write(line)
        for event in sorted(events, key=lambda e: e.t_ms):
            handle.write(event.to_line())
    if keep is not None:
        _prune([p for p in list_snapshots(folder) if p.name != path.name], keep - 1)
    return path


def _kept_indices(result: WindowResult, max_points: int | None) -> Sequence[int]:
    count = len(result.sample_times_ns)
    if max_points is None:
        return range(count)
    return downsample_indices(result.sample_rss_bytes, max_points)


def sample_line(
    t_ms: float, rss_bytes: int, measured: int, level: PressureLevel, objects: int | None = None
) -> str:
    """One sample's line; ``measured`` is what the pressure level was judged on."""
    line = (
        f'{{"t_ms": {t_ms:.3f}, "rss_bytes": {rss_bytes}, '
        f'"measured_bytes": {measured}, "pressure": "{level.name}"'
    )
    return line + (f', "objects": {objects}}}\n' if objects is not None else "}\n")


def _sample_lines(result: WindowResult, kept: Sequence[int]) -> Iterator[str]:
    times = result.sample_times_ns
    if not times:
        return
    origin = times[0]
    offset = result.baseline_bytes if result.basis is MeasurementBasis.RELATIVE else 0
    classify = result.thresholds.classify
    rss_values = result.sample_rss_bytes
    for index in kept:
        measured = rss_values[index] - offset
        yield sample_line(
            (times[index] - origin) / 1e6, rss_values[index], measured, classify(measured)
        )


class SnapshotLog:
    """A snapshot file written as things happen: header first, then lines appended.

    For a long-running watcher (the spawner's events file): each line is
    flushed as it is written, so a reader sees the run so far, and a writer
    killed mid-line leaves a torn last line that :func:`read_snapshot`
    leaves out.  The file is created atomically with its header, so it never
    exists without one.  Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        label: str,
        pid: int,
        header_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        with atomic_writer(self.path) as handle:
            handle.write(json.dumps(_header(label, pid, header_extra), sort_keys=True) + "\n")
        self._handle = self.path.open("a", encoding="utf-8", errors="backslashreplace")

    def sample(
        self,
        t_ms: float,
        rss_bytes: int,
        measured: int,
        level: PressureLevel,
        objects: int | None = None,
    ) -> None:
        self._write(sample_line(t_ms, rss_bytes, measured, level, objects))

    def event(self, event: SnapshotEvent) -> None:
        self._write(event.to_line())

    def _write(self, line: str) -> None:
        self._handle.write(line)
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> SnapshotLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


class _Lines:
    """What :func:`read_snapshot` gathers, line by line."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rss: list[int] = []
        self.levels: list[PressureLevel] = []
        self.objects: list[int | None] = []
        self.events: list[SnapshotEvent] = []

    def add(self, source: Path, number: int, record: dict[str, Any]) -> None:
        try:
            if "event" in record:
                self.events.append(_event_of(record))
                return
            self.times.append(_finite(record["t_ms"]))
            self.rss.append(_int(record["rss_bytes"]))
            self.levels.append(PressureLevel.parse(record["pressure"]))
            objects = record.get("objects")
            self.objects.append(None if objects is None else _int(objects))
        except (KeyError, TypeError, ValueError) as exc:
            what = "event" if "event" in record else "sample"
            raise SnapshotFormatError(f"{source}:{number}: bad {what}: {exc}") from None


def _finite(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count of bytes or objects, got {value!r}")
    return value


def _event_of(record: dict[str, Any]) -> SnapshotEvent:
    before, after = record.get("rss_before_bytes"), record.get("rss_after_bytes")
    detail = record.get("detail", "")
    if not isinstance(record["event"], str) or not isinstance(detail, str):
        raise ValueError("event and detail must be strings")
    return SnapshotEvent(
        t_ms=_finite(record["t_ms"]),
        kind=record["event"],
        rss_before_bytes=None if before is None else _int(before),
        rss_after_bytes=None if after is None else _int(after),
        detail=detail,
    )


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a snapshot file back; malformed content raises SnapshotFormatError.

    A last line with no newline that does not parse was cut off by a killed
    writer: it is left out and ``torn_tail`` is set.  Any other bad line is
    an error naming file and line.
    """
    source = Path(path)
    lines = _Lines()
    header: dict[str, Any] | None = None
    torn = False
    with source.open(encoding="utf-8", errors="backslashreplace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = _parse_line(source, number, line)
            except SnapshotFormatError:
                if line.endswith("\n") or header is None:
                    raise
                torn = True
                break
            if header is None:
                if record.get("kind") != "window":
                    raise SnapshotFormatError(
                        f"{source}:{number}: first line is not a snapshot header"
                    )
                header = record
                continue
            lines.add(source, number, record)
    if header is None:
        raise SnapshotFormatError(f"{source}:1: empty snapshot file")
    objects = tuple(lines.objects) if any(o is not None for o in lines.objects) else ()
    return Snapshot(
        source,
        header,
        tuple(lines.times),
        tuple(lines.rss),
        tuple(lines.levels),
        events=tuple(sorted(lines.events, key=lambda e: e.t_ms)),
        object_counts=objects,
        torn_tail=torn,
    )


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
