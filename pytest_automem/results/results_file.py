"""The results file (``--automem-json``): one JSON document per session.

    {"version": 1, "session": {...}, "tests": {nodeid: {...}}}

Per test at least: ``peak_bytes``, ``growth_bytes``, ``rate_bytes_per_s``,
``max_pressure``, ``samples``, ``interval_p50_ms``, ``interval_p99_ms``,
``peak_source``, ``verdict`` ("pass"/"fail") and ``violations``: the keys a
reader may rely on (docs/pytest-plugin.md, "Results file"), required by
``schema/results.schema.json``, which the tests check documents against.
Written once, atomically, at the end of the session on the controller.

The ``session`` object carries the measurement context (:data:`CONTEXT_KEYS`):
a baseline or a gate compares figures only with figures measured alike.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_writer, remove_stale_temps
from ..base.json_files import INVALID_JSON, JsonTextError, json_kind, parse_json

__all__ = [
    "CONTEXT_KEYS",
    "REQUIRED_TEST_KEYS",
    "RESULTS_VERSION",
    "ResultsFormatError",
    "build_results",
    "leak_bytes_per_iteration",
    "measurement_context",
    "member_line",
    "parse_results",
    "read_results",
    "samples_dir_entry",
    "samples_folder",
    "session_header",
    "versioned_document",
    "write_results",
    "write_results_lines",
]

RESULTS_VERSION = 1
REQUIRED_TEST_KEYS = (
    "peak_bytes",
    "growth_bytes",
    "rate_bytes_per_s",
    "max_pressure",
    "samples",
    "interval_p50_ms",
    "interval_p99_ms",
    "peak_source",
    "verdict",
    "violations",
)

#: What says how a run's figures were measured: figures measured differently
#: (another sampler, a sampled peak against the kernel's mark, another
#: Python) are not compared as like with like.  ``peak_sources`` is read off
#: the tests' ``peak_source`` where a session does not say it.
CONTEXT_KEYS = (
    "sampler_kind",
    "peak_sources",
    "python",
    "implementation",
    "platform",
    "cpu_count",
    "plugin_version",
)
_DISTRIBUTION = "pytest-automem"


def session_header(session: Mapping[str, Any]) -> dict[str, Any]:
    """The document's ``session`` object: where and when, then the session's own keys."""
    return {
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "cpu_count": os.cpu_count(),
        "plugin_version": _plugin_version(),
        **session,
    }


def _plugin_version() -> str | None:
    """The installed distribution's version; None when run from a source tree alone."""
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def measurement_context(document: Mapping[str, Any]) -> dict[str, Any]:
    """How the figures of a results document were measured (:data:`CONTEXT_KEYS`).

    A key a file predating it lacks is None, so two such files still compare
    equal on it.
    """
    session = document.get("session")
    session = session if isinstance(session, Mapping) else {}
    context = {key: session.get(key) for key in CONTEXT_KEYS}
    if context["peak_sources"] is None:
        tests = document.get("tests", {})
        sources = {record.get("peak_source") for record in tests.values()}
        context["peak_sources"] = sorted(source for source in sources if isinstance(source, str))
    return context


def samples_dir_entry(folder: str | os.PathLike[str], results_path: str | os.PathLike[str]) -> str:
    """The session's ``samples_dir`` as a results file at ``results_path``
    states ``folder``: a POSIX path relative to the file's folder when inside
    it (the two travel together as one CI artifact), else absolute."""
    absolute = Path(os.path.abspath(folder))
    try:
        return absolute.relative_to(Path(os.path.abspath(results_path)).parent).as_posix()
    except ValueError:
        return absolute.as_posix()


def samples_folder(
    document: Mapping[str, Any], results_path: str | os.PathLike[str]
) -> Path | None:
    """Where the samples files of the results document read from
    ``results_path`` are (each test's ``samples_file`` is relative to it);
    None when the document names no samples folder."""
    session = document.get("session")
    entry = session.get("samples_dir") if isinstance(session, Mapping) else None
    if not isinstance(entry, str) or not entry or "\0" in entry:
        return None
    return Path(os.path.abspath(results_path)).parent / entry


def figure(value: object) -> float | None:
    """A record's figure as a number; None for anything else (a bool included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def leak_bytes_per_iteration(record: Mapping[str, Any]) -> float | None:
    """A test's leak per iteration: the highest of its scenarios; None without one."""
    scenarios = record.get("scenarios")
    leaks = [
        leak
        for scenario in (scenarios if isinstance(scenarios, list) else ())
        if isinstance(scenario, Mapping)
        and (leak := figure(scenario.get("leak_bytes_per_iteration"))) is not None
    ]
    return max(leaks) if leaks else None


def build_results(
    records: Mapping[str, Mapping[str, Any]], session: Mapping[str, Any]
) -> dict[str, Any]:
    """The document: tests sorted by node id so two runs diff cleanly."""
    return {
        "version": RESULTS_VERSION,
        "session": session_header(session),
        "tests": {nodeid: dict(records[nodeid]) for nodeid in sorted(records)},
    }


def write_results(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """Write a whole document atomically (temp file, fsync, rename)."""
    tests = document.get("tests", {})
    write_results_lines(
        path,
        document.get("session", {}),
        ((nodeid, _dump(record)) for nodeid, record in tests.items()),
        header=False,
    )


def write_results_lines(
    path: str | os.PathLike[str],
    session: Mapping[str, Any],
    tests: Iterable[tuple[str, str]],
    *,
    header: bool = True,
) -> None:
    """Write the results file atomically from ``(nodeid, record as JSON)`` pairs,
    in their order (a session passes them sorted by node id).

    One test per line: readable and diffable, and each record is encoded by
    json's C encoder (``indent=`` would switch to the pure-Python one, about
    4x slower on a thousand tests).  ``header``: add the ``session`` keys
    every results file has (:func:`session_header`).  Temps that killed
    writes of ``path`` left are removed after (see
    :func:`~pytest_automem.base.atomic.remove_stale_temps`).
    """
    with atomic_writer(path) as handle:
        handle.write(f'{{\n"version": {RESULTS_VERSION},\n')
        handle.write(f'"session": {_dump(session_header(session) if header else session)},\n')
        handle.write('"tests": {')
        for index, (nodeid, line) in enumerate(tests):
            handle.write(f"{',' if index else ''}\n  {_dump(nodeid)}: {line}")
        handle.write("\n}}\n")
    remove_stale_temps(path)


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(", ", ": "))


class ResultsFormatError(ValueError):
    """Content that is not a results file this version reads; names the file and line."""


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file back; a malformed one raises ResultsFormatError naming file:line."""
    with open(path, "rb") as handle:
        return parse_results(handle.read(), path)


def parse_results(
    data: bytes, path: str | os.PathLike[str], *, strict: bool = False
) -> dict[str, Any]:
    """The results document in ``data`` (the bytes of the file at ``path``).

    Checks what every reader relies on: a version this code reads, a
    ``tests`` object, and an object per test; ``strict`` also requires the
    contract's keys (:data:`REQUIRED_TEST_KEYS`) in every test.  An error
    names the line of the member at fault (``results.json:2:`` for a
    version 2 file), so a near miss is found at once.
    """
    document = versioned_document(
        data, path, kind="results", version=RESULTS_VERSION, error=ResultsFormatError
    )
    tests = document.get("tests")
    if not isinstance(tests, dict):
        raise ResultsFormatError(
            f"{path}:{_line(data, 'tests')}: results file has no 'tests' object"
        )
    for nodeid, record in tests.items():
        if not isinstance(record, dict):
            problem = f"is a JSON {json_kind(record)}, not an object"
        elif strict and any(key not in record for key in REQUIRED_TEST_KEYS):
            problem = "has no " + ", ".join(key for key in REQUIRED_TEST_KEYS if key not in record)
        else:
            continue
        line = _line(data, "tests", nodeid)
        raise ResultsFormatError(f"{path}:{line}: test {json.dumps(nodeid)} {problem}")
    return document


def versioned_document(
    data: bytes,
    path: str | os.PathLike[str],
    *,
    kind: str,
    version: int,
    error: type[ValueError],
) -> dict[str, Any]:
    """The JSON object in ``data`` if it is a ``kind`` file of ``version``.

    What every file of ours with a ``"version"`` checks first; ``error`` is
    raised naming ``path`` and the line (``results.json:2:`` for a version
    2 file).
    """
    try:
        document = parse_json(data)
    except JsonTextError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else f"{path}"
        why = exc.detail if exc.kind == INVALID_JSON else str(exc)
        raise error(f"{where}: not a {kind} file: {why}") from None
    expected = f"not a version-{version} automem {kind} file"
    if not isinstance(document, dict):
        raise error(f"{path}:1: {expected} (a JSON {json_kind(document)})")
    found = document.get("version")
    if type(found) is not int or found != version:
        said = f"version {json.dumps(found)}" if "version" in document else 'no "version"'
        raise error(f"{path}:{_line(data, 'version')}: {expected} ({said})")
    return document


_DECODER = json.JSONDecoder()


def _line(data: bytes, *keys: str) -> int:
    return member_line(data.decode("utf-8"), keys)


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def member_line(text: str, keys: tuple[str, ...]) -> int:
    """The line on which the member at ``keys`` (``("tests", nodeid)``) of the
    JSON object in ``text`` starts; the line reached so far where there is none.

    Only called for an error, on text known to be JSON: json gives no
    positions for what it decodes, so the members are stepped over one by
    one with ``raw_decode``.
    """
    index, line = 0, 1
    for key in keys:
        index = _skip_space(text, index)
        if not text.startswith("{", index):
            return line
        index = _skip_space(text, index + 1)
        while not text.startswith("}", index):
            name, after = _DECODER.raw_decode(text, index)
            value_at = _skip_space(text, _skip_space(text, after) + 1)  # past the ":"
            if name == key:
                line, index = text.count("\n", 0, index) + 1, value_at
                break
            _, index = _DECODER.raw_decode(text, value_at)
            index = _skip_space(text, index)
            index = _skip_space(text, index + 1) if text.startswith(",", index) else index
        else:
            return line
    return line
