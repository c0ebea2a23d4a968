"""The automaton: JSON objects kept in file order, plus a history of what it did.

``automaton.jsonl`` holds one JSON object per line, each with a string ``id``;
blank lines are allowed.  The automaton keeps the objects oldest first, as the
file lists them, and records every action it performs (load, add, save, trim,
gc) in its execution history, so the investigator can tell object growth from
history growth.

Loading streams the file line by line: a 100,000-line file costs one JSON
decode per line and nothing quadratic.  A malformed line stops the load
with an :class:`AutomatonFormatError` naming ``file:line`` and the problem;
loading never writes, so nothing on disk changes.  Saving goes through
:mod:`.atomic`, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .atomic import atomic_write_lines

__all__ = [
    "Automaton",
    "AutomatonFormatError",
    "HistoryEntry",
    "JsonObject",
    "append_jsonl_durably",
    "archive_path_for",
]

JsonObject = dict[str, Any]
"""One automaton object: a JSON object with (at least) a string ``id``."""

HistoryEntry = dict[str, Any]
"""One execution-history entry: ``action``, ``time`` (seconds) and counts."""

_NO_LINE = 0
"""Line number stored for objects added in memory rather than read from the file."""

_CHUNK_BYTES = 1 << 20
"""Archive appends are written in chunks of about this size, not one blob per trim."""


class AutomatonFormatError(ValueError):
    """A line of an automaton file is not a JSON object with a string ``id``.

    The message reads ``path:line: what is wrong``; the parts are kept as
    attributes for callers that format their own report.
    """

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def object_problem(value: object) -> str | None:
    """Say why ``value`` cannot be an automaton object, or None if it can.

    Shared by loading and :meth:`Automaton.add` so both reject the same things
    with the same words.
    """
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_json_kind(value)}"
    if "id" not in value:
        return 'object has no "id"'
    object_id = value["id"]
    if not isinstance(object_id, str):
        return f'"id" must be a string, got {_describe(object_id)}'
    return None


def _describe(value: object) -> str:
    """A value's JSON type and, unless null, its JSON text (shortened)."""
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return f"{_json_kind(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def _json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def dump_line(obj: JsonObject) -> str:
    """One object as one compact JSON line (no newline), as saved and archived."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"object {obj.get('id')!r} is not JSON-serialisable: {exc}") from None


def archive_path_for(path: str | os.PathLike[str]) -> Path:
    """Where trimmed objects of ``path`` go: ``<name>.trimmed.jsonl`` beside it."""
    source = Path(path)
    return source.with_name(f"{source.stem}.trimmed.jsonl")


def append_jsonl_durably(path: Path, objects: Iterable[JsonObject]) -> int:
    """Append ``objects`` to ``path`` as JSON lines, then fsync; return the bytes added.

    This runs before trimmed objects leave memory, so it must either land
    completely or not at all: on any failure (an object that cannot be
    serialised, a full disk) the file is cut back to its old size.  A torn
    last line left by an earlier crash gets a newline first, so the new lines
    stay parseable.  The folder entry of a new archive becomes durable with
    the atomic save that follows every trim (it fsyncs the same folder).
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            if start and _byte_at(fd, start - 1) != b"\n":
                _write_all(fd, b"\n")
            for chunk in _chunks(dump_line(obj) for obj in objects):
                _write_all(fd, chunk)
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        return os.fstat(fd).st_size - start
    finally:
        os.close(fd)


def _byte_at(fd: int, offset: int) -> bytes:
    """Read one byte at ``offset`` (appends still go to the end under O_APPEND)."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, 1)


def _chunks(lines: Iterable[str]) -> Iterator[bytes]:
    """Group lines (newline-terminated, UTF-8) into writes of about a megabyte."""
    batch: list[str] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line) + 1
        if size >= _CHUNK_BYTES:
            yield ("\n".join(batch) + "\n").encode()
            batch, size = [], 0
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Automaton:
    """Objects from ``automaton.jsonl``, oldest first, and an execution history.

    ``strict=True`` refuses duplicate ids, on load (naming both lines) and in
    :meth:`add`; by default duplicates load and :meth:`duplicate_ids` reports
    them, since finding them is part of diagnosing a leak.

    ``clock`` gives the ``time`` of history entries, in seconds; it is
    ``time.monotonic`` so entries compare with each other and with policy
    events, not with wall time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._strict = strict
        self._clock = clock
        self._objects: list[JsonObject] = []
        self._lines = array("q")
        self._history: list[HistoryEntry] = []
        self._ids: set[str] | None = set() if strict else None
        if self._path.exists():
            self._load()

    @property
    def path(self) -> Path:
        """The ``automaton.jsonl`` this automaton loads from and saves to."""
        return self._path

    @property
    def strict(self) -> bool:
        """Whether duplicate ids are refused."""
        return self._strict

    @property
    def objects(self) -> list[JsonObject]:
        """The objects, oldest first (a new list; the objects themselves are shared)."""
        return list(self._objects)

    @property
    def line_numbers(self) -> list[int | None]:
        """Each object's line in the file (parallel to :attr:`objects`).

        None for objects added since the last load or save; after a save every
        object has the line it was written to.
        """
        return [line or None for line in self._lines]

    @property
    def execution_history(self) -> list[HistoryEntry]:
        """What the automaton did, oldest first (a new list of the entries)."""
        return list(self._history)

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[JsonObject]:
        return iter(self._objects)

    def duplicate_ids(self) -> dict[str, list[int]]:
        """Ids that occur more than once among the objects (as loaded, or since).

        Maps each such id to the line of every copy, oldest first; the first
        entry is where the id first appeared.  A copy added since the last
        load or save has line 0.
        """
        positions: dict[str, list[int]] = {}
        for obj, line in zip(self._objects, self._lines, strict=True):
            positions.setdefault(obj["id"], []).append(line)
        return {object_id: lines for object_id, lines in positions.items() if len(lines) > 1}

    def add(self, obj: JsonObject) -> None:
        """Append ``obj`` as the newest object.

        Raises ValueError if it is not a dict with a string ``id``, or, when
        strict, if its id is already present.
        """
        problem = object_problem(obj)
        if problem is not None:
            raise ValueError(f"cannot add {obj!r:.80}: {problem}")
        if self._ids is not None:
            if obj["id"] in self._ids:
                raise ValueError(f"cannot add object: duplicate id {obj['id']!r} (strict)")
            self._ids.add(obj["id"])
        self._objects.append(obj)
        self._lines.append(_NO_LINE)
        self._record("add", id=obj["id"], objects=len(self._objects))

    def save(self) -> int:
        """Write every object to :attr:`path` atomically; return the file's size in bytes.

        Lines are compact JSON in memory order.  If serialising or writing
        fails, the previous file is left as it was and no temp file remains.
        """
        atomic_write_lines(self._path, (dump_line(obj) for obj in self._objects))
        self._lines = array("q", range(1, len(self._objects) + 1))
        size = self._path.stat().st_size
        self._record("save", objects=len(self._objects), file_bytes=size)
        return size

    def _drop_oldest(self, count: int) -> list[JsonObject]:
        """Remove and return the ``count`` oldest objects (no archive, no history)."""
        dropped = self._objects[:count]
        del self._objects[:count]
        del self._lines[:count]
        if self._ids is not None:
            self._ids.difference_update(obj["id"] for obj in dropped)
        return dropped

    def _record(self, action: str, **counts: Any) -> None:
        """Append one history entry; subclasses may cap the history here."""
        entry: HistoryEntry = {"action": action, "time": self._clock()}
        entry.update(counts)
        self._history.append(entry)

    def _load(self) -> None:
        """Read the file, validating each line; raise before keeping anything."""
        objects: list[JsonObject] = []
        lines = array("q")
        first_line: dict[str, int] = {}
        duplicates: dict[str, list[int]] = {}
        for line_no, obj in self._parse_lines():
            object_id: str = obj["id"]
            first = first_line.setdefault(object_id, line_no)
            if first != line_no:
                if self._strict:
                    raise AutomatonFormatError(
                        self._path, line_no, f"duplicate id {object_id!r} (first on line {first})"
                    )
                duplicates.setdefault(object_id, [first]).append(line_no)
            objects.append(obj)
            lines.append(line_no)
        self._objects, self._lines = objects, lines
        if self._ids is not None:
            self._ids = set(first_line)
        self._record("load", objects=len(objects), duplicate_ids=len(duplicates))

    def _parse_lines(self) -> Iterable[tuple[int, JsonObject]]:
        """Yield ``(line number, object)`` for each non-blank line, streaming.

        ``json.loads`` makes fresh key strings for every line, so 100,000
        objects would hold 100,000 copies of ``"id"``; sharing one string per
        distinct key (for this load only) cuts memory per object by about a
        third at no cost in speed (see docs/automaton.md).
        """
        keys: dict[str, str] = {}

        def shared_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            return {keys.setdefault(key, key): value for key, value in pairs}

        decoder = json.JSONDecoder(object_pairs_hook=shared_keys)
        with open(self._path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                value = self._decode(decoder, raw, line_no)
                problem = object_problem(value)
                if problem is not None:
                    raise AutomatonFormatError(self._path, line_no, problem)
                yield line_no, value

    def _decode(self, decoder: json.JSONDecoder, raw: bytes, line_no: int) -> Any:
        """One line's JSON value; a UTF-8 byte-order mark is allowed on line 1."""
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\r\n")
            return decoder.decode(text)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg} (column {exc.colno})"
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8: {exc.reason} at byte {exc.start + 1}"
        except ValueError as exc:  # an integer past Python's digit limit
            reason = f"invalid JSON: {str(exc).partition(':')[0]}"
        except RecursionError:
            reason = "invalid JSON: nested too deeply"
        raise AutomatonFormatError(self._path, line_no, reason)
