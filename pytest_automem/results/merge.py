"""Several results documents become one: the shards of a CI matrix, or the runs of several machines.

Tests are united.  A node id in two documents is a conflict, named with both
files, unless ``prefer`` says which wins ("first" or "last" in the order
given): two shards should never run the same test, so a duplicate usually
means a misconfigured matrix, and silently keeping either figure would hide it.

The measurement context (the session's keys, less those that only count
this run: when it was written, how many tests, how many failed) must travel
with the figures it qualifies.  When every document has the same context,
the merged session keeps it and the records stay as they were.  When they
differ, the merged session keeps only the keys on which all agree, and each
test gets a ``context`` object: its file's context, overlaid by any
``context`` it already had from an earlier merge.  A reader's context for a
test is the session overlaid by the test's ``context``.

Kept samples stay reachable: each document's ``samples_dir`` is resolved
against its own file, the merged ``samples_dir`` is the folder those
folders share (the one folder, when every shard used the same), and each
record's ``samples_file`` is rewritten relative to it.  A record whose
document names no samples folder loses its ``samples_file``: nothing says
where that file is.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results_file import RESULTS_VERSION, samples_dir_entry, samples_folder

__all__ = ["PREFER_CHOICES", "MergeConflictError", "ResultsSource", "merge_results"]

#: ``--prefer``: which document's record wins for a node id in several.
PREFER_CHOICES = ("first", "last")
#: Session keys that describe one run, not how it measured: summed or renewed.
_PER_RUN_KEYS = frozenset(
    {"written_at", "tests_monitored", "memory_failures", "merged_from", "samples_dir"}
)


@dataclass(frozen=True)
class ResultsSource:
    """One results document and the path it was read from (named in conflicts)."""

    path: str
    document: Mapping[str, Any]


class MergeConflictError(ValueError):
    """A node id in two documents, and no ``prefer`` to choose between them."""


def _context(session: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key not in _PER_RUN_KEYS}


def _session(source: ResultsSource) -> Mapping[str, Any]:
    session = source.document.get("session")
    return session if isinstance(session, dict) else {}


def _common(contexts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    first, *others = contexts
    return {
        key: value
        for key, value in first.items()
        if all(key in other and other[key] == value for other in others)
    }


def _with_context(record: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    own = record.get("context")
    return {**record, "context": {**context, **own} if isinstance(own, dict) else dict(context)}


def _owner(
    nodeid: str, held: ResultsSource, incoming: ResultsSource, prefer: str | None
) -> ResultsSource:
    if prefer == "first":
        return held
    if prefer == "last":
        return incoming
    raise MergeConflictError(
        f"test {json.dumps(nodeid)} is in both {held.path} and {incoming.path} "
        "(--prefer first|last chooses one)"
    )


def merge_results(
    sources: Sequence[ResultsSource],
    *,
    prefer: str | None = None,
    written_to: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """One results document from ``sources`` (at least one), tests sorted by node id.

    ``prefer``: None refuses a node id found twice (:class:`MergeConflictError`
    naming it and both paths); "first" or "last" keeps that document's record.
    ``written_to``: where the merged document will be written, which its
    ``samples_dir`` is stated relative to (absolute without it).
    """
    if not sources:
        raise ValueError("merge_results needs at least one results document")
    if prefer not in (None, *PREFER_CHOICES):
        raise ValueError(f"prefer must be one of {', '.join(PREFER_CHOICES)}, not {prefer!r}")
    contexts = [_context(_session(source)) for source in sources]
    per_test = any(context != contexts[0] for context in contexts[1:])
    owners: dict[str, tuple[ResultsSource, int]] = {}
    for index, source in enumerate(sources):
        for nodeid in source.document.get("tests", {}):
            held = owners.get(nodeid)
            if held is None or _owner(nodeid, held[0], source, prefer) is source:
                owners[nodeid] = (source, index)
    tests: dict[str, Any] = {}
    for nodeid in sorted(owners):
        source, index = owners[nodeid]
        record = source.document["tests"][nodeid]
        tests[nodeid] = _with_context(record, contexts[index]) if per_test else record
    shared_samples = _rebase_samples(tests, {nodeid: owners[nodeid][0] for nodeid in tests})
    session = {
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        **_common(contexts),
        "tests_monitored": len(tests),
        "memory_failures": sum(1 for record in tests.values() if record.get("verdict") == "fail"),
        "merged_from": [os.fspath(source.path) for source in sources],
    }
    if shared_samples is not None:
        session["samples_dir"] = (
            samples_dir_entry(shared_samples, written_to)
            if written_to is not None
            else shared_samples.as_posix()
        )
    return {"version": RESULTS_VERSION, "session": session, "tests": tests}


def _rebase_samples(tests: dict[str, Any], owners: Mapping[str, ResultsSource]) -> Path | None:
    """Rewrite each record's ``samples_file`` relative to the folder all the
    documents' samples folders share; that folder, or None if no test has one.

    Records are copied before they change: the sources stay as they were.
    """
    files: dict[str, Path] = {}
    for nodeid, record in tests.items():
        name = record.get("samples_file")
        if not isinstance(name, str):
            continue
        folder = samples_folder(owners[nodeid].document, owners[nodeid].path)
        if folder is None:
            tests[nodeid] = {key: value for key, value in record.items() if key != "samples_file"}
        else:
            files[nodeid] = Path(os.path.normpath(folder / name))
    if not files:
        return None
    folders = {path.parent for path in files.values()}
    shared = folders.pop() if len(folders) == 1 else Path(os.path.commonpath(list(folders)))
    for nodeid, path in files.items():
        tests[nodeid] = {**tests[nodeid], "samples_file": path.relative_to(shared).as_posix()}
    return shared
