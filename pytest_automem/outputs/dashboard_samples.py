"""The memory curves a dashboard plots: per-test snapshot files, found and read leniently.

A results file names where its tests' samples are (``session.samples_dir``,
relative to the results file's folder, and each record's ``samples_file``,
relative to that folder).  A curve that cannot be had is never an error:
the samples are an aid to reading the figures, which the results file
holds on its own; the dashboard shows that test without a plot and counts
what was missing or bad.  A name that leaves the samples folder (absolute,
or with ``..``) counts as bad: a results file from a CI artifact must not
make the dashboard read the reader's other files.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..base.defaults import (
    DASHBOARD_MAX_EVENTS,
    DASHBOARD_MAX_POINTS,
    DASHBOARD_MAX_SAMPLES_FILE_BYTES,
)
from ..measure.pressure import MeasurementBasis, PressureThresholds, measured_bytes
from ..snapshots.downsample import downsample_indices
from ..snapshots.files import Snapshot, SnapshotEvent, SnapshotFormatError, read_snapshot

__all__ = [
    "Curve",
    "CurveUnavailable",
    "Unavailable",
    "read_curve",
    "samples_folder",
    "thresholds_of",
]


class Unavailable(enum.Enum):
    """Why a test has no curve: its file is not there, or is not a snapshot we read."""

    MISSING = "missing"
    BAD = "bad"


class CurveUnavailable(Exception):
    """A test's samples could not be read; ``why`` says which kind, the message what."""

    def __init__(self, why: Unavailable, message: str) -> None:
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class Curve:
    """One test's memory over time, on the basis its pressure was judged on.

    ``measured_bytes``: above the test's start for a relative basis, the whole
    resident memory for an absolute one; ``thresholds_bytes`` are where
    MEDIUM, HIGH and CRITICAL begin on that basis.
    """

    t_ms: tuple[float, ...]
    measured_bytes: tuple[int, ...]
    thresholds_bytes: tuple[int, int, int]
    basis: MeasurementBasis
    events: tuple[SnapshotEvent, ...]
    events_left_out: int
    downsampled_from: int | None

    def to_data(self) -> dict[str, Any]:
        """Compact plain values for the page's embedded JSON."""
        return {
            "t": [round(t, 1) for t in self.t_ms],
            "m": list(self.measured_bytes),
            "th": list(self.thresholds_bytes),
            "basis": self.basis.value,
            "ev": [
                [round(e.t_ms, 1), e.kind, e.rss_before_bytes, e.rss_after_bytes, e.detail]
                for e in self.events
            ],
            "evMore": self.events_left_out,
            "from": self.downsampled_from,
        }


def samples_folder(
    results_path: Path | None, session: Mapping[str, Any], override: Path | None
) -> Path | None:
    """Where a run's samples are: ``override`` (``--samples``), else the
    session's ``samples_dir`` relative to the results file's folder; None
    when neither says."""
    if override is not None:
        return override
    named = session.get("samples_dir")
    if not isinstance(named, str) or not named or "\0" in named:
        return None
    folder = Path(named)
    if folder.is_absolute() or results_path is None:
        return folder
    return results_path.parent / folder


def read_curve(folder: Path, name: object, fallback_thresholds: PressureThresholds) -> Curve:
    """The curve in ``folder/name``; CurveUnavailable when it cannot be had.

    ``fallback_thresholds``: the session's, for a file whose header has none.
    """
    path = folder / _inside_name(name)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise CurveUnavailable(Unavailable.MISSING, f"{path}: no such file") from None
    except OSError as exc:
        raise CurveUnavailable(Unavailable.BAD, f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode):
        raise CurveUnavailable(Unavailable.BAD, f"{path}: not a regular file")
    if status.st_size > DASHBOARD_MAX_SAMPLES_FILE_BYTES:
        raise CurveUnavailable(Unavailable.BAD, f"{path}: {status.st_size} bytes, too large")
    try:
        snapshot = read_snapshot(path)
    except (OSError, SnapshotFormatError) as exc:
        raise CurveUnavailable(Unavailable.BAD, str(exc)) from None
    return _curve(snapshot, fallback_thresholds)


def _inside_name(name: object) -> PurePosixPath:
    """A record's ``samples_file`` as a path that stays inside the samples folder."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise CurveUnavailable(Unavailable.BAD, f"samples_file {name!r}: not a file name")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise CurveUnavailable(
            Unavailable.BAD, f"samples_file {name!r}: outside the samples folder"
        )
    return relative


def _curve(snapshot: Snapshot, fallback: PressureThresholds) -> Curve:
    header = snapshot.header
    basis = _basis(header)
    baseline = header.get("baseline_bytes")
    baseline = baseline if type(baseline) is int else 0
    measured = [measured_bytes(rss, baseline, basis) for rss in snapshot.rss_bytes]
    kept = (
        downsample_indices(measured, DASHBOARD_MAX_POINTS)
        if len(measured) > DASHBOARD_MAX_POINTS
        else range(len(measured))
    )
    downsampled_from = header.get("downsampled_from")
    if len(kept) < len(measured):
        downsampled_from = len(measured)
    events = snapshot.events
    return Curve(
        t_ms=tuple(snapshot.t_ms[i] for i in kept),
        measured_bytes=tuple(measured[i] for i in kept),
        thresholds_bytes=thresholds_of(header.get("thresholds_bytes"), fallback).boundaries(),
        basis=basis,
        events=events[:DASHBOARD_MAX_EVENTS],
        events_left_out=max(0, len(events) - DASHBOARD_MAX_EVENTS),
        downsampled_from=downsampled_from if type(downsampled_from) is int else None,
    )


def _basis(header: Mapping[str, Any]) -> MeasurementBasis:
    """The header's basis (a window's ``pressure_basis``); relative, as tests are, if unsaid."""
    try:
        return MeasurementBasis(header.get("pressure_basis", header.get("basis")))
    except ValueError:
        return MeasurementBasis.RELATIVE


def thresholds_of(given: object, fallback: PressureThresholds) -> PressureThresholds:
    """A header's ``thresholds_bytes`` (three increasing sizes), else ``fallback``."""
    if isinstance(given, list) and len(given) == 3:
        try:
            return PressureThresholds(*given)
        except (TypeError, ValueError):
            pass
    return fallback
