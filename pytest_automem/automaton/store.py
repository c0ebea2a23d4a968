"""The automaton: JSON objects kept in file order, plus a history of what it did.

``automaton.jsonl`` holds one JSON object per line, each with a string ``id``;
blank lines are allowed.  The automaton keeps the objects oldest first, as the
file lists them, and records every action it performs (load, add, save, trim,
gc) in its execution history, so the investigator can tell object growth from
history growth.

Loading streams the file line by line: a 100,000-line file costs one JSON
decode per line and nothing quadratic.  A malformed line stops the load
with an :class:`AutomatonFormatError` naming ``file:line`` and the problem;
loading never changes the file.  Saving goes through :mod:`.atomic`, so a
crash leaves either the old file or the new one.

Every save and trim holds the file's advisory lock (:mod:`.filelock`) and
first checks that the file is still the version this automaton loaded or
last saved; if another writer saved in between it raises
:class:`ConcurrentWriteError` rather than overwrite that writer's objects.
Holding the lock also tells that no live writer owns a leftover temp file,
so opening and saving remove the temps a killed save left behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..base.atomic import atomic_write_lines, open_for_append_nofollow, remove_stale_temps
from ..base.defaults import MB
from ..base.filelock import LOCKING_AVAILABLE, HeldLock, exclusive_lock, shared_lock
from ..base.json_files import JsonTextError, json_kind, parse_json, strict_decoder

__all__ = [
    "Automaton",
    "AutomatonFormatError",
    "ConcurrentWriteError",
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

_CHUNK_BYTES = MB
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


class ConcurrentWriteError(RuntimeError):
    """The file changed on disk since this automaton loaded or last saved it.

    Raised by a save or trim, before anything is written, instead of
    overwriting the objects another writer saved.  Merging is not attempted:
    the other writer may have trimmed objects this one still holds, and only
    the caller knows which changes to keep.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path}: changed on disk since this automaton loaded or last saved it "
            "(another process or Automaton saved it); not overwriting it: "
            "load the file again and re-apply your changes"
        )
        self.path = path


@dataclass(frozen=True)
class _DiskVersion:
    """Which saved version of the file an automaton holds.

    ``generation`` is the token the last locking writer stored in the lock
    file ("" if none); ``file`` is the file's device, inode, size and mtime
    (None when absent), which also catches writers that take no lock.
    """

    generation: str
    file: tuple[int, int, int, int] | None


def _file_version(stat: os.stat_result | None) -> tuple[int, int, int, int] | None:
    if stat is None:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def object_problem(value: object) -> str | None:
    """Say why ``value`` cannot be an automaton object, or None if it can.

    Shared by loading and :meth:`Automaton.add` so both reject the same things
    with the same words.
    """
    if not isinstance(value, dict):
        return f"expected a JSON object, got {json_kind(value)}"
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
    return f"{json_kind(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def unwritable_problem(obj: object) -> str | None:
    """Why ``obj`` cannot be written as one line of JSON in UTF-8, or None if it can.

    :meth:`Automaton.add` asks this so that such an object is refused at
    once, with its id, rather than failing every later save and trim.  One
    ``json.dumps`` answers the common case; only a failure walks the object
    to say where the problem is.
    """
    try:
        _json_text(obj).encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return _find_unwritable(obj, "", set()) or "cannot be written as JSON"
    return None


def _json_text(obj: object) -> str:
    """Compact, strict JSON text: NaN and infinities raise instead of being written."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _find_unwritable(value: object, where: str, active: set[int]) -> str | None:
    """The first part of ``value`` strict JSON in UTF-8 cannot hold, said with its place.

    ``where`` is the place so far (``["v"][2]``); ``active`` holds the
    containers being walked, so a circular reference is named, not followed.
    """
    place = (where if len(where) <= 80 else where[:77] + "...") or "the object"
    if isinstance(value, str):
        return _surrogate_problem(value, place)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{place} is {value!r}: JSON has no NaN or infinity"
    if isinstance(value, float):
        return None
    if isinstance(value, int):
        return _int_problem(value, place)
    if value is None:
        return None
    if not isinstance(value, (dict, list, tuple)):
        return f"{place} is a {type(value).__name__} value, which JSON cannot hold"
    if id(value) in active:
        return f"{place} contains itself (a circular reference)"
    active.add(id(value))
    try:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict):
                problem = _key_problem(key, place)
                if problem is not None:
                    return problem
            problem = _find_unwritable(item, f"{where}[{_key_text(key)}]", active)
            if problem is not None:
                return problem
    except RecursionError:
        return f"{place} is nested too deeply"
    finally:
        active.discard(id(value))
    return None


def _int_problem(value: int, place: str) -> str | None:
    """Python refuses to print an int past its digit limit, so JSON cannot hold it."""
    try:
        int.__repr__(value)
    except ValueError:
        return f"{place} is an int of {value.bit_length()} bits, too long to write as text"
    return None


def _key_problem(key: object, place: str) -> str | None:
    """Why a dict key cannot be a JSON key (``json`` turns numbers and None into text)."""
    if isinstance(key, str):
        return _surrogate_problem(key, f"a key of {place}")
    if isinstance(key, float) and not math.isfinite(key):
        return f"a key of {place} is {key!r}: JSON has no NaN or infinity"
    if isinstance(key, int):
        return _int_problem(key, f"a key of {place}")
    if key is None or isinstance(key, float):
        return None
    return f"a key of {place} is a {type(key).__name__} value, which JSON cannot hold"


def _key_text(key: object) -> str:
    """A key or index as it reads in a place: ``"name"`` (ASCII-escaped) or ``2``."""
    return json.dumps(key) if isinstance(key, str) else repr(key)


def _surrogate_problem(text: str, place: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{place} holds a lone surrogate {text[exc.start]!r}, which UTF-8 cannot encode"
    return None


def _id_text(obj: JsonObject) -> str:
    """The object's id for a message: repr, shortened (escapes keep it printable)."""
    text = repr(obj.get("id"))
    return text if len(text) <= 80 else text[:77] + "..."


def dump_line(obj: JsonObject) -> str:
    """One object as one compact JSON line (no newline), as saved and archived.

    :meth:`Automaton.add` refuses what cannot be written, but the dicts are
    shared with the caller and may change after; such an object raises
    TypeError naming it here, before anything is written.
    """
    try:
        line = _json_text(obj)
        line.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        problem = unwritable_problem(obj)
        raise TypeError(f"object {_id_text(obj)} is not JSON-serialisable: {problem}") from None
    return line


def archive_path_for(path: str | os.PathLike[str]) -> Path:
    """Where trimmed objects of ``path`` go: ``<full name>.trimmed.jsonl`` beside it.

    The full name, suffix included, so ``ev.jsonl``, ``ev.json`` and ``ev``
    each get their own archive.
    """
    source = Path(path)
    return source.with_name(f"{source.name}.trimmed.jsonl")


def append_jsonl_durably(path: Path, objects: Iterable[JsonObject]) -> int:
    """Append ``objects`` to ``path`` as JSON lines, then fsync; return the bytes added.

    This runs before trimmed objects leave memory, so it must either land
    completely or not at all: on any failure (an object that cannot be
    serialised, a full disk) this call's own bytes are cut off again.  The
    caller holds the automaton's lock, so no other locking writer appends
    meanwhile; if the file still grew beyond our bytes (a writer that takes
    no lock), nothing is cut, since that would erase its rows: our partial
    rows stay, and the objects stay in memory, so at worst they are archived
    twice, never lost.  A torn last line left by an earlier crash gets a
    newline first, so the new lines stay parseable.  The folder entry of a
    new archive becomes durable with the atomic save that follows every trim
    (it fsyncs the same folder).
    """
    fd = open_for_append_nofollow(path, readable=True)  # a planted link is refused
    try:
        start = os.fstat(fd).st_size
        appender = _Appender(fd)
        try:
            if start and _byte_at(fd, start - 1) != b"\n":
                appender.write(b"\n")
            for chunk in _chunks(dump_line(obj) for obj in objects):
                appender.write(chunk)
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size == start + appender.written:
                    os.ftruncate(fd, start)
            raise
        return appender.written
    finally:
        os.close(fd)


class _Appender:
    """Writes to an ``O_APPEND`` descriptor, counting the bytes that landed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0

    def write(self, data: bytes) -> None:
        """``os.write`` until every byte is written (it may write fewer)."""
        view = memoryview(data)
        while view:
            count = os.write(self.fd, view)
            self.written += count
            view = view[count:]


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
        self._disk = _DiskVersion("", None)
        self._write_lock_held: HeldLock | None = None
        self._open()

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

        Raises ValueError if it is not a dict with a string ``id``, if it
        cannot be written as JSON in UTF-8 (a lone surrogate, NaN or an
        infinity, a set, ...), naming its id and the place, or, when strict,
        if its id is already present.
        """
        problem = object_problem(obj)
        if problem is not None:
            raise ValueError(f"cannot add {obj!r:.80}: {problem}")
        problem = unwritable_problem(obj)
        if problem is not None:
            raise ValueError(f"cannot add object {_id_text(obj)}: {problem}")
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
        Raises :class:`ConcurrentWriteError`, writing nothing, if another
        writer saved the file since this automaton loaded or last saved it.
        """
        with self._write_lock() as lock:
            try:
                atomic_write_lines(self._path, (dump_line(obj) for obj in self._objects))
            finally:
                stat = _stat_or_none(self._path)
                self._note_saved(lock, stat)
        size = stat.st_size if stat is not None else 0
        self._lines = array("q", range(1, len(self._objects) + 1))
        self._record("save", objects=len(self._objects), file_bytes=size)
        return size

    def _note_saved(self, lock: HeldLock, stat: os.stat_result | None) -> None:
        """After a save attempt: if the file was replaced, store a new generation.

        The generation is written after the rename, so a save killed before
        it changes nothing other automatons could mistake for a conflict; one
        killed between rename and generation is still caught by the file's
        changed inode.  A save that failed before the rename leaves all as it was.
        """
        version = _file_version(stat)
        if version == self._disk.file:
            return
        self._disk = _DiskVersion(os.urandom(16).hex(), version)
        lock.write_generation(self._disk.generation)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[HeldLock]:
        """Hold the file's lock for a save or trim, after checking no one else saved.

        Re-entrant, so a trim's own save runs under the trim's lock.  With
        the lock held no live writer can own a temp file of ours, so stale
        ones from killed saves are removed here.
        """
        if self._write_lock_held is not None:
            yield self._write_lock_held
            return
        with exclusive_lock(self._path) as lock:
            if LOCKING_AVAILABLE:
                remove_stale_temps(self._path)
            on_disk = _DiskVersion(lock.read_generation(), _file_version(_stat_or_none(self._path)))
            if on_disk != self._disk:
                raise ConcurrentWriteError(self._path)
            self._write_lock_held = lock
            try:
                yield lock
            finally:
                self._write_lock_held = None

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

    def _open(self) -> None:
        """Load the file if it exists, under the readers' lock, noting its version.

        Under that lock no writer is mid-save, so temps a killed save left
        are stale and removed (only where locks work, and only once a
        locking writer has made the lock file).
        """
        with shared_lock(self._path) as lock:
            generation = "" if lock is None else lock.read_generation()
            if lock is not None and LOCKING_AVAILABLE:
                remove_stale_temps(self._path)
            try:
                with open(self._path, "rb") as handle:
                    version = _file_version(os.fstat(handle.fileno()))
                    self._load(handle)
            except FileNotFoundError:
                version = None
        self._disk = _DiskVersion(generation, version)

    def _load(self, handle: IO[bytes]) -> None:
        """Read the file, validating each line; raise before keeping anything."""
        objects: list[JsonObject] = []
        lines = array("q")
        first_line: dict[str, int] = {}
        duplicates: dict[str, list[int]] = {}
        for line_no, obj in self._parse_lines(handle):
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

    def _parse_lines(self, handle: IO[bytes]) -> Iterable[tuple[int, JsonObject]]:
        """Yield ``(line number, object)`` for each non-blank line, streaming.

        ``json.loads`` makes fresh key strings for every line, so 100,000
        objects would hold 100,000 copies of ``"id"``; sharing one string per
        distinct key (for this load only) cuts memory per object by about a
        third at no cost in speed (see docs/automaton.md).

        What loads must also save: NaN, infinities and lone surrogates
        (``"\\ud800"``) are refused here, as :meth:`add` refuses them.  A
        surrogate can only come from a ``\\u`` escape, so only such lines are
        walked.
        """
        keys: dict[str, str] = {}

        def shared_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            return {keys.setdefault(key, key): value for key, value in pairs}

        decoder = strict_decoder(object_pairs_hook=shared_keys)
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            value = self._decode(decoder, raw, line_no)
            problem = object_problem(value)
            if problem is None and b"\\u" in raw:
                problem = _find_unwritable(value, "", set())
            if problem is not None:
                raise AutomatonFormatError(self._path, line_no, problem)
            yield line_no, value

    def _decode(self, decoder: json.JSONDecoder, raw: bytes, line_no: int) -> Any:
        """One line's JSON value; a UTF-8 byte-order mark is allowed on line 1."""
        encoding = "utf-8-sig" if line_no == 1 else "utf-8"
        try:
            return parse_json(raw.rstrip(b"\r\n"), decoder, encoding=encoding)
        except JsonTextError as exc:
            raise AutomatonFormatError(self._path, line_no, str(exc)) from None
