"""Per-test samples kept as snapshot files: the folder, which tests, their events.

A test's memory over time is what a plot of it needs, and the results file
holds only its figures.  So each kept test's call becomes one snapshot file
(:mod:`pytest_automem.snapshots.files`, the format ``automem monitor``
writes), downsampled to :data:`~pytest_automem.base.defaults.SAMPLES_MAX_POINTS`
points with the exact highest sample among them, and its record names the
file (``samples_file``).  The file is written by the process that ran the
test (an xdist worker too), as the call ends.

Which tests: with ``--automem-samples=DIR`` every monitored test (those
``--automem`` alone monitors then get a full window instead of a span:
the opt-in cost); otherwise, when an output will show them, tests with a
budget (or a baseline record) and tests whose call failed, in the folder
beside the results file (``results.json`` -> ``results.samples/``), or
with the dashboard alone in a temporary folder the session removes at its
end (and the next such session removes, if a kill -9 left it: its name
carries the pid of the session that made it).  The folder a session uses
is in ``config.stash[SAMPLES_DIR_KEY]``.

Events stored with the samples: the garbage collections and allocator
trims a :class:`~pytest_automem.measure.gc_events.CollectionRecorder` saw
(full collections during the call; the plugin's own at the window's ends),
and the trims and GCs of the automaton's policies during ``run_scenario``,
all on the samples' time axis (``t_ms`` from the window's first sample; the
sampler and these stamps share ``time.monotonic_ns()``).  An event of the
window's start comes before its first sample: its ``t_ms`` is negative.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..automaton.scenario import PolicyAction, ScenarioResult
    from ..measure.gc_events import RecordedEvent
    from ..measure.window_result import WindowResult
    from ..snapshots.files import SnapshotEvent

__all__ = [
    "SAMPLES_DIR_KEY",
    "WORKER_SAMPLES",
    "SamplesSettings",
    "auto_samples_folder",
    "snapshot_events",
    "temporary_samples_folder",
    "write_test_samples",
]

#: The samples folder this session writes to (absolute); absent when none.
#: The dashboard reads it from here.
SAMPLES_DIR_KEY = pytest.StashKey[Path]()
#: The ``workerinput`` key under which an xdist controller hands its workers
#: the samples folder (workers write there; a temporary one is the controller's).
WORKER_SAMPLES = "automem_samples"
#: What a results file's samples folder is called: its stem and this.
_AUTO_SUFFIX = ".samples"


@dataclass(frozen=True)
class SamplesSettings:
    """Where a session keeps tests' samples, and whose."""

    folder: Path
    #: ``--automem-samples``: every monitored test; else budgeted and failing ones.
    every_test: bool
    #: Made by this session for the dashboard alone; removed at its end.
    temporary: bool = False

    def to_worker_input(self) -> dict[str, Any]:
        """Plain values for ``workerinput`` (the folder stays the controller's)."""
        return {"folder": str(self.folder), "every_test": self.every_test}

    @classmethod
    def from_worker_input(cls, value: Mapping[str, Any]) -> SamplesSettings:
        return cls(folder=Path(value["folder"]), every_test=bool(value["every_test"]))

    def keeps(self, *, judged: bool, failed: bool) -> bool:
        """Whether a test's call is kept: every one, or one with a budget or
        a baseline record (``judged``), or one that failed."""
        return self.every_test or judged or failed

    def clear_stale(self) -> None:
        """Delete the snapshot files an earlier run left in a results file's
        own samples folder (only files named as ours): its records no longer
        point at them.  A folder the user named is left as it is."""
        if self.every_test or self.temporary:
            return
        from ..snapshots.files import cleanup_snapshots

        cleanup_snapshots(self.folder, keep=0)

    def remove_temporary(self) -> None:
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)


#: A temporary samples folder: its prefix, then the pid of the session that made it.
_TEMPORARY_PREFIX = "automem-samples-"
_TEMPORARY_NAME = re.compile(rf"{_TEMPORARY_PREFIX}(?P<pid>[0-9]+)-[A-Za-z0-9_]+")


def temporary_samples_folder() -> Path:
    """A new folder in the system's temporary folder for a dashboard-only session.

    The session removes it at its end; one whose session was killed
    (kill -9) is removed here, by the next such session.
    """
    base = Path(tempfile.gettempdir())
    _remove_abandoned(base)
    return Path(tempfile.mkdtemp(prefix=f"{_TEMPORARY_PREFIX}{os.getpid()}-", dir=base))


def _remove_abandoned(base: Path) -> None:
    """Remove the temporary samples folders of sessions that are gone.

    Only a real folder named as :func:`temporary_samples_folder` names them,
    whose process no longer exists, and that holds nothing but our snapshot
    files: anything else is not ours to delete.
    """
    import psutil

    from ..snapshots.files import is_snapshot_name

    for folder in base.glob(f"{_TEMPORARY_PREFIX}*"):
        match = _TEMPORARY_NAME.fullmatch(folder.name)
        if match is None or folder.is_symlink() or psutil.pid_exists(int(match["pid"])):
            continue
        try:
            files = list(folder.iterdir())
            if all(is_snapshot_name(f.name) and not f.is_symlink() for f in files):
                for file in files:
                    file.unlink()
                folder.rmdir()
        except OSError:  # another user's, or removed meanwhile
            continue


def auto_samples_folder(results_path: str) -> Path:
    """The samples folder beside a results file: ``X/results.json`` -> ``X/results.samples``."""
    path = Path(results_path).absolute()
    return path.with_name(path.stem + _AUTO_SUFFIX)


def write_test_samples(
    folder: Path,
    nodeid: str,
    result: WindowResult,
    events: list[SnapshotEvent],
    header: Mapping[str, Any],
) -> str | None:
    """Write one test's call as a snapshot file in ``folder``; its name.

    A failure to write costs the test nothing but its samples: a warning
    line on stderr, and None (its record then names no file).
    """
    from ..base.defaults import SAMPLES_MAX_POINTS
    from ..snapshots.files import write_snapshot

    extra = {"test": nodeid, "source": "pytest", "phase": "call", **header}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = write_snapshot(
            result,
            folder,
            label=nodeid,
            keep=None,
            max_points=SAMPLES_MAX_POINTS,
            events=events,
            header_extra=extra,
            durable=False,  # synced all at once before the results file names them
        )
    except OSError as exc:
        print(
            f"automem: WARNING: samples of {nodeid} not written: {folder}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return None
    return path.name


def snapshot_events(
    result: WindowResult,
    opened_ns: int,
    recorded: Iterable[RecordedEvent],
    *,
    call_started_ns: int,
    call_ended_ns: int,
    scenarios: Iterable[ScenarioResult] = (),
) -> list[SnapshotEvent]:
    """The events of a kept call on its samples' time axis (see the module docstring).

    A collection the automaton's policy ran is its policy's event, not a
    second one: recorded collections within a policy action are left out.
    """
    from ..snapshots.files import SnapshotEvent

    times = result.sample_times_ns
    origin = times[0] if len(times) else opened_ns
    actions = [action for scenario in scenarios for action in scenario.policy_actions]
    events = [
        SnapshotEvent(
            t_ms=(action.started_ns - origin) / 1e6,
            kind=action.kind,
            rss_before_bytes=action.rss_before_bytes,
            rss_after_bytes=action.rss_after_bytes,
            detail=action.detail,
        )
        for action in actions
    ]
    for event in recorded:
        if not event.released or _within(event.started_ns, actions):
            continue
        where = _where(event.started_ns, call_started_ns, call_ended_ns)
        events.append(
            SnapshotEvent(
                t_ms=(event.started_ns - origin) / 1e6,
                kind=event.kind,
                rss_before_bytes=event.rss_before_bytes,
                rss_after_bytes=event.rss_after_bytes,
                detail=_detail(event, where),
            )
        )
    return events


def _within(started_ns: int, actions: list[PolicyAction]) -> bool:
    return any(action.started_ns <= started_ns <= action.ended_ns for action in actions)


def _where(started_ns: int, call_started_ns: int, call_ended_ns: int) -> str:
    if started_ns < call_started_ns:
        return "automem, before the call"
    if call_ended_ns and started_ns >= call_ended_ns:
        return "automem, after the call"
    return "during the call"


def _detail(event: RecordedEvent, where: str) -> str:
    if event.kind == "trim":
        return f"malloc_trim ({where})"
    return f"generation {event.generation}, {event.collected} unreachable objects ({where})"
