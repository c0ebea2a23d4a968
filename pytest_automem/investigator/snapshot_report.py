"""Snapshot files as an investigation: how high memory went, and at which pressure.

``automem monitor --snapshots DIR`` leaves one file per window.  Given one
file, the report says how high the watched process went, when, and how
long it spent at each pressure level; given the folder, it runs the
folder's own checks (too many files, too many bytes) and names the windows
that reached HIGH pressure or above.  A window at HIGH or CRITICAL is the
one finding a snapshot holds: the thresholds are the user's own marks for
"too much".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base.units import format_size
from ..measure.pressure import PressureLevel
from ..snapshots.files import Snapshot, SnapshotFormatError, list_snapshots, read_snapshot
from .file_checks import SNAPSHOT_CHECK, check_snapshots
from .findings import Finding, Investigation, Severity

__all__ = [
    "SNAPSHOT_FILE_CHECKS",
    "SNAPSHOT_FOLDER_CHECKS",
    "SNAPSHOT_PRESSURE_CHECK",
    "check_snapshot_pressure",
    "investigate_snapshot_file",
    "investigate_snapshot_folder",
]

#: The check that names windows at HIGH pressure or above.
SNAPSHOT_PRESSURE_CHECK = "snapshot-pressure"
#: The checks a snapshot file and a snapshot folder run (JUnit's test cases).
SNAPSHOT_FILE_CHECKS = (SNAPSHOT_PRESSURE_CHECK,)
SNAPSHOT_FOLDER_CHECKS = (SNAPSHOT_CHECK, SNAPSHOT_PRESSURE_CHECK)


def _peak_rss_bytes(snapshot: Snapshot) -> int:
    """The window's peak: the header's (the kernel's mark, where it had one) or the samples'."""
    recorded = snapshot.header.get("peak_rss_bytes")
    sampled = max(snapshot.rss_bytes, default=0)
    return max(recorded, sampled) if type(recorded) is int else sampled


def _max_pressure(snapshot: Snapshot) -> PressureLevel:
    """The highest level of the samples, or of the header when there are none."""
    if snapshot.pressure:
        return max(snapshot.pressure)
    try:
        return PressureLevel.parse(snapshot.header.get("max_pressure", "LOW"))
    except ValueError as exc:
        raise SnapshotFormatError(f"{snapshot.path}:1: bad max_pressure: {exc}") from None


def _share_at_least(snapshot: Snapshot, level: PressureLevel) -> float:
    if not snapshot.pressure:
        return 0.0
    return sum(1 for p in snapshot.pressure if p >= level) / len(snapshot.pressure)


def check_snapshot_pressure(snapshots: Sequence[Snapshot]) -> list[Finding]:
    """One finding naming every window that reached HIGH pressure or above, worst first."""
    high = [(s, _max_pressure(s), _peak_rss_bytes(s)) for s in snapshots]
    high = [entry for entry in high if entry[1] >= PressureLevel.HIGH]
    if not high:
        return []
    high.sort(key=lambda entry: (-entry[1], -entry[2]))
    worst, level, peak = high[0]
    details = tuple(
        f"{s.path.name}: {lvl.name}, peak RSS {format_size(rss)}, "
        f"{_share_at_least(s, PressureLevel.HIGH):.0%} of {len(s.pressure):,} samples "
        "at HIGH or above"
        for s, lvl, rss in high
    )
    which = (
        worst.path.name
        if len(snapshots) == 1
        else f"{len(high)} of {len(snapshots)} windows (worst: {worst.path.name})"
    )
    return [
        Finding(
            check=SNAPSHOT_PRESSURE_CHECK,
            severity=Severity.CRITICAL if level is PressureLevel.CRITICAL else Severity.WARNING,
            summary=f"{which} reached {level.name} pressure, peak RSS {format_size(peak)}",
            evidence={
                "windows": len(snapshots),
                "windows_at_high_or_above": len(high),
                "files": [
                    {"file": s.path.name, "max_pressure": lvl.name, "peak_rss_bytes": rss}
                    for s, lvl, rss in high
                ],
            },
            recommendation="the process held more than the HIGH threshold: find what it holds "
            "at its peak (a test under pytest --automem with a memory_budget names the line), "
            "or raise automem monitor --thresholds if this much is expected",
            details=details,
        )
    ]


def _thresholds_text(header: dict[str, Any]) -> str:
    boundaries = header.get("thresholds_bytes")
    if not isinstance(boundaries, list) or not all(type(b) is int for b in boundaries):
        return "not recorded"
    return ", ".join(format_size(b) for b in boundaries)


def investigate_snapshot_file(path: str | os.PathLike[str]) -> Investigation:
    """One window read back: its figures, and whether it reached HIGH pressure.

    Raises SnapshotFormatError (naming ``file:line``) for content that is
    not a snapshot, OSError for a file that cannot be read.
    """
    snapshot = read_snapshot(path)
    header = snapshot.header
    figures: dict[str, Any] = {"file": str(snapshot.path)}
    for key, name in (("label", "label"), ("pid", "pid"), ("written_at", "written at")):
        if key in header:
            figures[name] = header[key]
    figures["samples"] = len(snapshot.rss_bytes)
    if snapshot.t_ms:
        figures["duration"] = f"{snapshot.t_ms[-1] / 1000:.3f} s"
        highest = max(range(len(snapshot.rss_bytes)), key=snapshot.rss_bytes.__getitem__)
        figures["highest sample"] = (
            f"{format_size(snapshot.rss_bytes[highest])} RSS at {snapshot.t_ms[highest]:.1f} ms"
        )
        growth = snapshot.rss_bytes[-1] - snapshot.rss_bytes[0]
        figures["growth, first to last sample"] = format_size(growth)
    figures["peak RSS"] = format_size(_peak_rss_bytes(snapshot))
    figures["max pressure"] = _max_pressure(snapshot).name
    figures["thresholds"] = _thresholds_text(header)
    for level in PressureLevel:
        share = sum(1 for p in snapshot.pressure if p is level)
        if share:
            figures[f"samples at {level.name}"] = f"{share / len(snapshot.pressure):.0%}"
    return Investigation(
        tuple(check_snapshot_pressure([snapshot])),
        figures,
        title=f"automem investigate: {snapshot.path.name} (snapshot file)",
    )


def investigate_snapshot_folder(folder: str | os.PathLike[str]) -> Investigation:
    """Every snapshot file in ``folder``: the folder's checks and the windows' pressure.

    A folder with no snapshot files in it is not one: SnapshotFormatError.
    """
    base = Path(folder)
    files = list_snapshots(base)
    if not files:
        raise SnapshotFormatError(
            f"{base}: no snapshot files in this folder "
            "(automem monitor --snapshots writes snapshot-<time>-<pid>-<label>.jsonl)"
        )
    snapshots = [read_snapshot(path) for path in files]
    total = sum(path.stat().st_size for path in files)
    peaks = [(_peak_rss_bytes(s), s.path.name) for s in snapshots]
    highest, name = max(peaks)
    figures: dict[str, Any] = {
        "folder": str(base),
        "snapshot files": f"{len(files)} ({format_size(total)})",
        "first written": snapshots[0].header.get("written_at", "not recorded"),
        "last written": snapshots[-1].header.get("written_at", "not recorded"),
        "highest peak RSS": f"{format_size(highest)} in {name}",
        "max pressure": max(_max_pressure(s) for s in snapshots).name,
    }
    findings = [*check_snapshots(base), *check_snapshot_pressure(snapshots)]
    findings.sort(key=lambda f: -f.severity)
    return Investigation(
        tuple(findings), figures, title=f"automem investigate: {base.name} (snapshot folder)"
    )
