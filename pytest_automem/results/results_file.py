"""The results file (``--automem-json``): one JSON document per session.

    {"version": 1, "session": {...}, "tests": {nodeid: {...}}}

Per test at least: ``peak_bytes``, ``growth_bytes``, ``rate_bytes_per_s``,
``max_pressure``, ``samples``, ``interval_p50_ms``, ``interval_p99_ms``,
``peak_source``, ``verdict`` ("pass"/"fail") and ``violations``: the keys a
reader may rely on (docs/pytest-plugin.md, "Results file"), required by
``schema/results.schema.json``, which the tests check documents against.
Written once, atomically, at the end of the session on the controller.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ..base.atomic import atomic_writer, remove_stale_temps
from ..base.json_files import INVALID_JSON, JsonTextError, parse_json

__all__ = [
    "REQUIRED_TEST_KEYS",
    "RESULTS_VERSION",
    "build_results",
    "read_results",
    "session_header",
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


def session_header(session: Mapping[str, Any]) -> dict[str, Any]:
    """The document's ``session`` object: where and when, then the session's own keys."""
    return {
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        **session,
    }


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


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file back; a malformed one raises ValueError naming the file."""
    with open(path, "rb") as handle:
        text = handle.read()
    try:
        document = parse_json(text)
    except JsonTextError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else f"{path}"
        why = exc.detail if exc.kind == INVALID_JSON else str(exc)
        raise ValueError(f"{where}: not a results file: {why}") from None
    version = document.get("version") if isinstance(document, dict) else None
    if type(version) is not int or version != RESULTS_VERSION:
        raise ValueError(f"{path}: not a version-{RESULTS_VERSION} automem results file")
    if not isinstance(document.get("tests"), dict):
        raise ValueError(f"{path}: results file has no 'tests' object")
    return document
