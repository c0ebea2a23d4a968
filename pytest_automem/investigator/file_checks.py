"""Checks on an automaton file: what a saved ``automaton.jsonl`` says about a leak.

A leak often shows in the file an automaton saves before it shows in
memory, so these checks read that file: ids that occur more than once (objects added again
instead of updated), large arrays inside objects (bulk data kept in the
automaton), an execution history without a bound, few objects per megabyte,
and snapshot files piling up.  Each check returns :class:`.Finding` objects of
the one shape the renderers know; :func:`investigate_file` runs them all on
one file and returns an :class:`.Investigation`.

Every finding keeps every item it found, in its ``details`` and its
evidence: the JSON report is for machines and must not drop what a reader
of it searches for.  The text and Markdown renderers bound what they show
and count what they leave out (:mod:`.render`).
"""

from __future__ import annotations

import collections
import errno
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..automaton.store import Automaton, JsonObject
from ..base.defaults import (
    DEFAULT_KEEP,
    DEFAULT_MAX_EXECUTION_HISTORY,
    LARGE_ARRAY_MIN_BYTES,
    LARGE_ARRAY_MIN_ELEMENTS,
    MB,
    OBJECTS_PER_MB_TARGET,
    SNAPSHOTS_MAX_TOTAL_BYTES,
)
from ..base.units import format_size
from ..snapshots.files import list_snapshots
from .findings import Finding, Investigation, Severity

__all__ = [
    "FILE_CHECKS",
    "HISTORY_FIELDS",
    "OBJECTS_PER_MB_TARGET",
    "SNAPSHOT_CHECK",
    "check_duplicate_ids",
    "check_execution_history",
    "check_large_arrays",
    "check_object_efficiency",
    "check_snapshots",
    "investigate_file",
]

#: The checks :func:`investigate_file` always runs, by ``Finding.check`` name.
FILE_CHECKS = ("duplicate-ids", "large-arrays", "execution-history", "object-efficiency")
#: The check it adds when given a snapshot folder.
SNAPSHOT_CHECK = "snapshots"

#: Names of list fields that hold a history when an automaton saves one in an object.
HISTORY_FIELDS = frozenset({"history", "execution_history", "executionHistory", "events", "log"})
_LINES_SHOWN = 5
_ID_CHARS_SHOWN = 80
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


# --------------------------------------------------------------------------- helpers


def _quote(object_id: str) -> str:
    """An id as a JSON string (control characters escaped), shortened if long."""
    if len(object_id) > _ID_CHARS_SHOWN:
        object_id = object_id[: _ID_CHARS_SHOWN - 1] + "…"
    return json.dumps(object_id, ensure_ascii=False)


def _where(object_id: str, line: int | None) -> str:
    return f"object {_quote(object_id)} ({f'line {line}' if line else 'not saved yet'})"


def _path_text(parts: Sequence[str | int]) -> str:
    """A field path as a reader writes it: ``payload.samples``, ``batches[3].values``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _objects_with_lines(automaton: Automaton) -> Iterator[tuple[JsonObject, int | None]]:
    return zip(automaton.objects, automaton.line_numbers, strict=True)


# --------------------------------------------------------------------------- duplicate ids


def check_duplicate_ids(automaton: Automaton) -> list[Finding]:
    """Ids that occur on more than one line of the file as loaded.

    One finding naming every duplicated id (most copies first) with the first
    lines it occurs on, e.g. ``id "evt-7": lines 3, 19, 44``.
    """
    duplicates = automaton.duplicate_ids()
    if not duplicates:
        return []
    ranked = sorted(duplicates.items(), key=lambda item: (-len(item[1]), item[1][0]))
    extra = sum(len(lines) - 1 for _, lines in ranked)
    details = []
    for object_id, lines in ranked:
        shown = ", ".join(str(line) if line else "added" for line in lines[:_LINES_SHOWN])
        more = f" … ({len(lines)} in all)" if len(lines) > _LINES_SHOWN else ""
        details.append(f"id {_quote(object_id)}: lines {shown}{more}")
    ids_occur = f"{len(ranked)} ids occur" if len(ranked) != 1 else "1 id occurs"
    copies = f"{extra} extra cop{'ies' if extra != 1 else 'y'}"
    return [
        Finding(
            check="duplicate-ids",
            severity=Severity.WARNING,
            summary=f"{ids_occur} more than once in {automaton.path.name}: {copies}",
            evidence={
                "duplicated_ids": len(ranked),
                "extra_copies": extra,
                "lines": {object_id: list(lines) for object_id, lines in ranked},
            },
            recommendation="objects are added again instead of updated: deduplicate on add "
            "(look the id up and replace the object) and load with Automaton(path, strict=True) "
            "so a duplicate fails at once, naming both lines",
            details=tuple(details),
        )
    ]


# --------------------------------------------------------------------------- large arrays


def _str_size(text: str) -> int:
    """Bytes of ``text`` as a JSON string in UTF-8 (quotes and escapes included)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _scalar_size(value: object) -> int:
    """Bytes of a JSON scalar as compact JSON (other types: their JSON or str)."""
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, str):
        return _str_size(value)
    if isinstance(value, int):
        try:
            return len(str(value))
        except ValueError:  # beyond sys.get_int_max_str_digits(): only in-memory objects
            return math.ceil(value.bit_length() * math.log10(2)) + 1
    if isinstance(value, float):
        return len(repr(value)) if math.isfinite(value) else len(json.dumps(value))
    return _str_size(str(value))


class _Frame:
    """A container being sized: its running byte count and whether a list inside it
    was already reported."""

    __slots__ = ("children", "flagged", "path", "size", "value")

    def __init__(self, value: Any, path: tuple[str | int, ...]) -> None:
        self.value = value
        self.path = path
        self.children: Iterator[tuple[Any, Any]] = (
            iter(value.items()) if isinstance(value, dict) else enumerate(value)
        )
        self.size = 0
        self.flagged = False


def _large_lists(
    obj: JsonObject, min_elements: int, min_bytes: int
) -> list[tuple[tuple[str | int, ...], int, int]]:
    """``(path, elements, bytes)`` of every large list in ``obj``, inner lists first.

    One post-order walk (iterative: no recursion limit) sizes every container
    exactly as compact JSON, so the cost is linear in the object's size.  A
    list that is large only in bytes is not reported when a list inside it
    already was: its size is that list's.
    """
    found = []
    stack = [_Frame(obj, ())]
    while stack:
        frame = stack[-1]
        is_dict = isinstance(frame.value, dict)
        for key, child in frame.children:
            if is_dict:
                frame.size += _str_size(str(key)) + 1
            if isinstance(child, (dict, list, tuple)):
                stack.append(_Frame(child, (*frame.path, key)))
                break
            frame.size += _scalar_size(child)
        else:
            stack.pop()
            count = len(frame.value)
            size = frame.size + 2 + max(count - 1, 0)
            if not is_dict and (count >= min_elements or (size >= min_bytes and not frame.flagged)):
                found.append((frame.path, count, size))
                frame.flagged = True
            if stack:
                stack[-1].size += size
                stack[-1].flagged |= frame.flagged
    return found


def check_large_arrays(
    automaton: Automaton,
    *,
    min_elements: int = LARGE_ARRAY_MIN_ELEMENTS,
    min_bytes: int = LARGE_ARRAY_MIN_BYTES,
) -> list[Finding]:
    """Lists inside objects with ``min_elements`` elements or more, or ``min_bytes`` or more.

    Nested dicts and lists are searched; a list is named by its field path
    (``payload.samples``, ``batches[3].values``).  Its size is the exact
    size of its JSON encoding as :meth:`Automaton.save` writes it (compact,
    UTF-8), computed in one walk over each object rather than by encoding
    each list again, so the check costs about as much as reading the file.
    """
    arrays = []
    for obj, line in _objects_with_lines(automaton):
        for path, count, size in _large_lists(obj, min_elements, min_bytes):
            arrays.append((obj["id"], line, _path_text(path), count, size))
    if not arrays:
        return []
    arrays.sort(key=lambda entry: -entry[4])
    total = sum(entry[4] for entry in arrays)
    holders = len({(entry[0], entry[1]) for entry in arrays})
    largest = arrays[0]
    details = [
        f"{_where(object_id, line)}: {path} has {count:,} elements, {format_size(size)}"
        for object_id, line, path, count, size in arrays
    ]
    return [
        Finding(
            check="large-arrays",
            severity=Severity.WARNING,
            summary=f"{len(arrays)} large array{'s' if len(arrays) != 1 else ''} in "
            f"{holders} object{'s' if holders != 1 else ''} "
            f"hold{'s' if len(arrays) == 1 else ''} {format_size(total)} "
            f"(largest: {largest[2]} of {_quote(largest[0])}, {largest[3]:,} elements, "
            f"{format_size(largest[4])})",
            evidence={
                "arrays": len(arrays),
                "objects": holders,
                "total_bytes": total,
                "min_elements": min_elements,
                "min_bytes": min_bytes,
                "largest": [
                    {"id": object_id, "line": line, "path": path, "elements": count, "bytes": size}
                    for object_id, line, path, count, size in arrays
                ],
            },
            recommendation="move bulk data out of the automaton (a separate file or store, "
            "with a reference in the object), or trim the arrays to what the automaton "
            "needs (e.g. the newest N samples)",
            details=tuple(details),
        )
    ]


# --------------------------------------------------------------------------- history


def _history_lists(obj: JsonObject) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """``(path, length)`` of each list under a history-like field name, at any depth."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(obj, ())]
    while stack:
        value, path = stack.pop()
        children: Iterable[tuple[Any, Any]] = (
            value.items() if isinstance(value, dict) else enumerate(value)
        )
        for key, child in children:
            if not isinstance(child, (dict, list, tuple)):
                continue
            if isinstance(key, str) and key in HISTORY_FIELDS and not isinstance(child, dict):
                yield (*path, key), len(child)
            stack.append((child, (*path, key)))


def _history_fields(automaton: Automaton) -> list[tuple[str, int | None, str, int]]:
    """``(id, line, path, length)`` of every history-like list in the objects."""
    return [
        (obj["id"], line, _path_text(path), length)
        for obj, line in _objects_with_lines(automaton)
        for path, length in _history_lists(obj)
    ]


def check_execution_history(
    automaton: Automaton, *, limit: int = DEFAULT_MAX_EXECUTION_HISTORY
) -> list[Finding]:
    """An execution history longer than ``limit`` entries.

    Two places are checked: the automaton's own :attr:`~Automaton.execution_history`
    (what it did since it was created or loaded), and lists inside objects
    under a history-like name (:data:`HISTORY_FIELDS`, at any depth), which
    is what an unbounded history looks like in a saved file.  ``limit``
    defaults to ``OptimizationConfig().max_execution_history``.
    """
    return _history_findings(automaton, limit, _history_fields(automaton))


def _history_findings(
    automaton: Automaton, limit: int, all_fields: list[tuple[str, int | None, str, int]]
) -> list[Finding]:
    findings = []
    history = automaton.execution_history
    if len(history) > limit:
        actions = collections.Counter(str(entry.get("action")) for entry in history)
        findings.append(
            Finding(
                check="execution-history",
                severity=Severity.WARNING,
                summary=f"the automaton's execution history holds {len(history):,} entries "
                f"(limit {limit:,})",
                evidence={"entries": len(history), "limit": limit, "actions": dict(actions)},
                recommendation="cap it: MemoryOptimizedAutomaton(path, config=OptimizationConfig("
                f"max_execution_history={limit})) keeps only the newest {limit} entries",
                details=tuple(f"{action}: {count:,}" for action, count in actions.most_common()),
            )
        )
    fields = [entry for entry in all_fields if entry[3] > limit]
    if fields:
        fields.sort(key=lambda entry: -entry[3])
        longest = fields[0]
        findings.append(
            Finding(
                check="execution-history",
                severity=Severity.WARNING,
                summary=f"{len(fields)} history field{'s' if len(fields) != 1 else ''} in saved "
                f"objects hold{'s' if len(fields) == 1 else ''} more than {limit:,} entries "
                f"(longest: {longest[2]} of "
                f"{_quote(longest[0])}, {longest[3]:,} entries)",
                evidence={
                    "fields": len(fields),
                    "limit": limit,
                    "longest": [
                        {"id": object_id, "line": line, "path": path, "entries": length}
                        for object_id, line, path, length in fields
                    ],
                },
                recommendation="a history saved inside objects grows without a bound: keep "
                f"only the newest entries before saving (OptimizationConfig("
                f"max_execution_history={limit}) for the automaton's own history), or write "
                "the history to a log file of its own",
                details=tuple(
                    f"{_where(object_id, line)}: {path} has {length:,} entries"
                    for object_id, line, path, length in fields
                ),
            )
        )
    return findings


# --------------------------------------------------------------------------- efficiency


def _encoded_size(automaton: Automaton) -> int:
    """What the automaton's file would hold: each object's compact JSON line."""
    return sum(
        len(
            json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8", "surrogatepass"
            )
        )
        + 1
        for obj in automaton
    )


def check_object_efficiency(automaton: Automaton, memory_bytes: int | None) -> list[Finding]:
    """Objects per MB of ``memory_bytes`` not above :data:`OBJECTS_PER_MB_TARGET`.

    ``memory_bytes`` is a measured figure (e.g. the memory an automaton holds);
    None uses the automaton's file size (or, for an automaton never saved,
    the size its objects take as JSON lines).  No finding without objects or
    without a positive size: there is nothing to divide.
    """
    objects = len(automaton)
    if memory_bytes is None:
        try:
            memory_bytes, basis = automaton.path.stat().st_size, "file size"
        except FileNotFoundError:
            memory_bytes, basis = _encoded_size(automaton), "size as JSON lines"
    else:
        basis = "memory"
    if objects == 0 or memory_bytes <= 0:
        return []
    per_mb = objects / (memory_bytes / MB)
    if per_mb > OBJECTS_PER_MB_TARGET:
        return []
    return [
        Finding(
            check="object-efficiency",
            severity=Severity.WARNING,
            summary=f"{per_mb:.2f} objects per MB ({objects:,} objects in "
            f"{format_size(memory_bytes)} of {basis}; target > {OBJECTS_PER_MB_TARGET:g})",
            evidence={
                "objects": objects,
                "bytes": memory_bytes,
                "basis": basis,
                "objects_per_mb": round(per_mb, 3),
                "target": OBJECTS_PER_MB_TARGET,
            },
            recommendation="objects are large on average "
            f"({format_size(memory_bytes / objects)} each): keep bulk data (arrays, blobs, "
            "histories) out of them, with a reference to where it lives, and drop fields "
            "the automaton does not use",
        )
    ]


# --------------------------------------------------------------------------- snapshots


def _sizes(files: Iterable[Path]) -> list[tuple[Path, int]]:
    sized = []
    for path in files:
        try:
            sized.append((path, path.stat().st_size))
        except FileNotFoundError:  # pruned while we looked
            continue
    return sized


def check_snapshots(
    folder: str | os.PathLike[str],
    *,
    max_files: int = DEFAULT_KEEP,
    max_total_bytes: int = SNAPSHOTS_MAX_TOTAL_BYTES,
) -> list[Finding]:
    """More than ``max_files`` snapshot files in ``folder``, or more than ``max_total_bytes``.

    Only files named as :func:`~pytest_automem.snapshots.files.write_snapshot`
    names them count.  Raises FileNotFoundError or NotADirectoryError when
    ``folder`` is not a folder.
    """
    base = Path(folder)
    if not base.is_dir():
        code = errno.ENOTDIR if base.exists() else errno.ENOENT
        raise (NotADirectoryError if base.exists() else FileNotFoundError)(
            code, "not a folder" if base.exists() else "no such folder", str(base)
        )
    sized = _sizes(list_snapshots(base))
    total = sum(size for _, size in sized)
    findings = []
    keep = f"automem monitor --keep {max_files}, or cleanup_snapshots(folder, keep={max_files})"
    if len(sized) > max_files:
        surplus = sized[: len(sized) - max_files]
        findings.append(
            Finding(
                check=SNAPSHOT_CHECK,
                severity=Severity.WARNING,
                summary=f"{len(sized):,} snapshot files in {base} (more than {max_files:,}); "
                f"the oldest {len(surplus):,} take {format_size(sum(s for _, s in surplus))}",
                evidence={"files": len(sized), "max_files": max_files, "total_bytes": total},
                recommendation=f"prune old snapshots: {keep} deletes all but the newest "
                f"{max_files} (pytest_automem.snapshots.files)",
                details=tuple(
                    f"oldest: {path.name} ({format_size(size)})" for path, size in surplus
                ),
            )
        )
    if total > max_total_bytes:
        largest = sorted(sized, key=lambda entry: -entry[1])
        findings.append(
            Finding(
                check=SNAPSHOT_CHECK,
                severity=Severity.WARNING,
                summary=f"snapshot files in {base} take {format_size(total)} "
                f"(more than {format_size(max_total_bytes)})",
                evidence={
                    "files": len(sized),
                    "total_bytes": total,
                    "max_total_bytes": max_total_bytes,
                },
                recommendation=f"keep fewer snapshots ({keep}) or shorter windows "
                "(automem monitor --snapshot-every)",
                details=tuple(f"{path.name}: {format_size(size)}" for path, size in largest),
            )
        )
    return findings


# --------------------------------------------------------------------------- all of it


def _load(path: Path, strict: bool) -> Automaton:
    """Load ``path``; content it cannot hold is an AutomatonFormatError naming file:line.

    The automaton's loader already names file and line for every JSON error
    (through :mod:`pytest_automem.base.json_files`); a missing file is an
    error here, where ``Automaton(path)`` would start an empty automaton.
    """
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    return Automaton(path, strict=strict)


def investigate_file(
    path: str | os.PathLike[str],
    *,
    snapshots: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> Investigation:
    """Load the automaton at ``path`` and run every file check on it.

    The figures give the number of objects, the file size, how many ids are
    duplicated, the execution history's length, the longest history field in
    the objects, objects per MB and, with ``snapshots`` (a folder), the
    snapshot files there.  ``strict`` loads as ``Automaton(path, strict=True)``
    does: a duplicate id is then a format error rather than a finding.

    Raises :class:`~pytest_automem.automaton.store.AutomatonFormatError` (naming
    ``file:line``) for content that is not an automaton, and OSError for a
    missing or unreadable file or a ``snapshots`` path that is not a folder;
    the folder is checked before the file is read.
    """
    source = Path(path)
    if snapshots is not None:
        folder = Path(snapshots)
        if not folder.is_dir():
            check_snapshots(folder)  # raises the OSError that names it
    automaton = _load(source, strict)
    history_fields = _history_fields(automaton)
    file_bytes = source.stat().st_size
    findings = [
        *check_duplicate_ids(automaton),
        *check_large_arrays(automaton),
        *_history_findings(automaton, DEFAULT_MAX_EXECUTION_HISTORY, history_fields),
        *check_object_efficiency(automaton, None),
    ]
    longest = max((entry[3] for entry in history_fields), default=0)
    figures: dict[str, Any] = {
        "file": str(source),
        "objects": len(automaton),
        "file size": format_size(file_bytes),
        "objects per MB": round(len(automaton) / (file_bytes / MB), 1) if file_bytes else "n/a",
        "duplicate ids": len(automaton.duplicate_ids()),
        "longest history field": longest,
    }
    if snapshots is not None:
        findings.extend(check_snapshots(snapshots))
        sized = _sizes(list_snapshots(snapshots))
        figures["snapshot files"] = (
            f"{len(sized)} ({format_size(sum(size for _, size in sized))}) in {snapshots}"
        )
    findings.sort(key=lambda f: -f.severity)
    return Investigation(tuple(findings), figures, title=f"automem investigate: {source.name}")
