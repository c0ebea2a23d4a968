"""What ``automem investigate`` was given, recognised by its content, as an investigation.

Four kinds of input, all written by automem: an automaton file (JSON lines,
each an object with an "id"), a results file (one JSON document with
"version" and "tests", from ``pytest --automem-json``), a snapshot file
(JSON lines led by a ``{"kind": "window"}`` header, from ``automem monitor
--snapshots``) and a folder of snapshot files.  The name of a file decides
nothing, since artifacts get renamed; its first line does.  Content that is
none of them is one input error naming the file, the line at fault and the
kinds expected; a near miss (a results file of another version, a bad line
in an automaton) is left to that kind's reader, which names its line.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..automaton.store import AutomatonFormatError
from ..base.json_files import JsonTextError, json_kind, parse_json
from ..investigator.file_checks import FILE_CHECKS, SNAPSHOT_CHECK, investigate_file
from ..investigator.findings import Investigation
from ..investigator.results_report import ResultsContentError, investigate_results
from ..investigator.snapshot_report import (
    SNAPSHOT_FILE_CHECKS,
    SNAPSHOT_FOLDER_CHECKS,
    investigate_snapshot_file,
    investigate_snapshot_folder,
)
from ..results.results_file import ResultsFormatError, member_line, parse_results
from ..snapshots.files import SnapshotFormatError
from .common import InputError

__all__ = ["EXPECTED", "InputKind", "Investigated", "investigate_input", "recognise"]

#: The kinds a file may be, as an error names them.
EXPECTED = (
    'expected an automaton file (JSON lines, each an object with an "id"), a results file '
    "(pytest --automem-json) or a snapshot file or folder (automem monitor --snapshots)"
)


class InputKind(enum.Enum):
    AUTOMATON = "automaton file"
    RESULTS = "results file"
    SNAPSHOT_FILE = "snapshot file"
    SNAPSHOT_FOLDER = "snapshot folder"


@dataclass(frozen=True)
class Investigated:
    """The report on one input, and the checks it ran (a JUnit test case each)."""

    kind: InputKind
    investigation: Investigation
    checks: tuple[str, ...]


def _first_line(path: Path) -> tuple[int, bytes]:
    """The first line that is not blank, and its number; ``(0, b"")`` for a blank file."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                return number, line
    return 0, b""


def _document_past_line(path: Path, first: int) -> bool:
    """Whether ``path`` holds one JSON document that goes on past line ``first``.

    Parsed whole, such a text is valid or fails on a later line; JSON lines
    whose first line is broken fail on that line.
    """
    try:
        parse_json(path.read_bytes(), encoding="utf-8-sig")
    except JsonTextError as exc:
        return exc.line is not None and exc.line > first
    return True


def recognise(path: Path) -> InputKind:
    """The kind of ``path``, by its content; InputError when it is none of them."""
    if path.is_dir():
        return InputKind.SNAPSHOT_FOLDER
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    number, line = _first_line(path)
    if not line:
        return InputKind.AUTOMATON  # an automaton that holds no objects yet
    try:
        value = parse_json(line, encoding="utf-8-sig" if number == 1 else "utf-8")
    except JsonTextError as exc:
        if line.strip() == b"{" or _document_past_line(path, number):
            # A JSON document over several lines: of ours, only a results
            # file is written so; its reader names the line at fault.
            return InputKind.RESULTS
        raise InputError(f"{path}:{number}: {exc}; {EXPECTED}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}:{number}: a JSON {json_kind(value)}; {EXPECTED}")
    if value.get("kind") == "window" and "id" not in value:
        return InputKind.SNAPSHOT_FILE
    if "id" in value:
        return InputKind.AUTOMATON
    if "version" in value or "tests" in value:
        return InputKind.RESULTS
    raise InputError(
        f'{path}:{number}: a JSON object with no "id", "version" or "kind"; {EXPECTED}'
    )


def _refuse_options(path: Path, kind: InputKind, snapshots: Path | None, strict: bool) -> None:
    """An option that does not apply to this kind is an error, not silently ignored."""
    if snapshots is not None and kind is not InputKind.AUTOMATON:
        raise InputError(
            f"--snapshots applies to an automaton file; {path} is a {kind.value} "
            "(give a snapshot folder itself to check it)"
        )
    if strict and kind in (InputKind.SNAPSHOT_FILE, InputKind.SNAPSHOT_FOLDER):
        raise InputError(
            f"--strict applies to an automaton or results file; {path} is a {kind.value}"
        )


def _results(path: Path, strict: bool) -> Investigated:
    data = path.read_bytes()
    try:
        document = parse_results(data, path, strict=strict)
        investigation = investigate_results(document, path)
    except ResultsFormatError as exc:
        raise InputError(str(exc)) from None
    except ResultsContentError as exc:
        line = member_line(data.decode("utf-8"), ("tests", exc.nodeid))
        raise InputError(f"{path}:{line}: {exc}") from None
    return Investigated(InputKind.RESULTS, investigation, tuple(document["tests"]))


def investigate_input(path: Path, *, snapshots: Path | None, strict: bool) -> Investigated:
    """Recognise ``path`` and run every check that applies to its kind.

    ``snapshots`` (a folder checked beside an automaton) applies to an
    automaton file only; ``strict`` to an automaton file (a duplicate id is
    an input error) and a results file (every test must carry the contract's
    keys).  Raises InputError for content of no kind or an option that does
    not apply, and OSError for a file or folder that cannot be read.
    """
    kind = recognise(path)
    _refuse_options(path, kind, snapshots, strict)
    try:
        if kind is InputKind.RESULTS:
            return _results(path, strict)
        if kind is InputKind.SNAPSHOT_FILE:
            return Investigated(kind, investigate_snapshot_file(path), SNAPSHOT_FILE_CHECKS)
        if kind is InputKind.SNAPSHOT_FOLDER:
            return Investigated(kind, investigate_snapshot_folder(path), SNAPSHOT_FOLDER_CHECKS)
        investigation = investigate_file(path, snapshots=snapshots, strict=strict)
    except (AutomatonFormatError, SnapshotFormatError) as exc:
        raise InputError(" ".join(str(exc).split())) from None
    checks: Sequence[str] = (*FILE_CHECKS, *([SNAPSHOT_CHECK] if snapshots is not None else []))
    return Investigated(kind, investigation, tuple(checks))
