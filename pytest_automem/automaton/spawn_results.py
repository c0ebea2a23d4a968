"""What a spawner run did: its events, its children and its end, as frozen values.

Kept apart from the supervision loop (:mod:`.spawner`) because these are
what callers read (the ``spawner`` fixture's tests, ``automem spawn``'s
summary and ``--json``) and what the events file is written from, while the
loop's machinery is the spawner's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.units import format_size
from ..measure.pressure import MeasurementBasis, PressureLevel, PressureThresholds
from ..snapshots.files import SnapshotEvent

__all__ = ["ChildRecord", "SpawnEvent", "SpawnResult", "SpawnStatus"]


@dataclass(frozen=True)
class SpawnEvent:
    """Something the spawner did or saw, at ``t_s`` seconds after it started.

    ``rss_bytes`` is the watched memory at that moment (for a ``gc``, before
    it; for a ``spawn``, the old child's), ``rss_after_bytes`` its effect
    where one is known (after a ``gc``; the new child's first reading),
    ``level`` the pressure level then and ``pid`` the child concerned.
    """

    t_s: float
    kind: str
    level: PressureLevel
    rss_bytes: int | None = None
    rss_after_bytes: int | None = None
    pid: int | None = None
    detail: str = ""

    def text(self) -> str:
        """One line for a terminal: time, kind, memory, and what happened."""
        memory = "" if self.rss_bytes is None else f" {format_size(self.rss_bytes)}"
        return f"{self.t_s:8.3f}s {self.kind:<10} {self.level.name:<8}{memory}  {self.detail}"

    def to_snapshot_event(self) -> SnapshotEvent:
        who = "" if self.pid is None else f"pid {self.pid}, "
        return SnapshotEvent(
            t_ms=self.t_s * 1000,
            kind=self.kind,
            rss_before_bytes=self.rss_bytes,
            rss_after_bytes=self.rss_after_bytes,
            detail=f"{who}{self.level.name}: {self.detail}",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": round(self.t_s, 6),
            "kind": self.kind,
            "level": self.level.name,
            "rss_bytes": self.rss_bytes,
            "rss_after_bytes": self.rss_after_bytes,
            "pid": self.pid,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ChildRecord:
    """One child of a run, from its start to its end.

    ``profile`` is the level whose limits it ran with (LOW: the base
    config).  ``returncode`` is ``subprocess``'s (negative: killed by that
    signal).  ``ended`` says how: ``retired`` (stopped for a replacement),
    ``killed`` (it outlived the grace period), ``crashed``, ``finished``,
    ``exited`` (a command ended on its own) or ``stopped`` (the run ended).
    ``peak_rss_bytes`` is its highest reading, its load included;
    ``max_pressure`` the highest level judged from its ready to its stop.
    For a scenario child, ``loaded_objects`` is what it loaded,
    ``trimmed_objects`` what its profile then trimmed to the archive, and
    ``final_objects`` / ``final_step`` what it saved when it stopped.
    """

    generation: int
    pid: int
    profile: PressureLevel
    started_s: float
    ended_s: float
    returncode: int | None
    ended: str
    peak_rss_bytes: int
    last_rss_bytes: int | None
    max_pressure: PressureLevel = PressureLevel.LOW
    config: Mapping[str, Any] | None = None
    loaded_objects: int | None = None
    trimmed_objects: int | None = None
    final_objects: int | None = None
    first_step: int | None = None
    final_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "pid": self.pid,
            "profile": self.profile.name,
            "started_s": round(self.started_s, 6),
            "ended_s": round(self.ended_s, 6),
            "returncode": self.returncode,
            "ended": self.ended,
            "peak_rss_bytes": self.peak_rss_bytes,
            "last_rss_bytes": self.last_rss_bytes,
            "max_pressure": self.max_pressure.name,
            "config": None if self.config is None else dict(self.config),
            "loaded_objects": self.loaded_objects,
            "trimmed_objects": self.trimmed_objects,
            "final_objects": self.final_objects,
            "first_step": self.first_step,
            "final_step": self.final_step,
        }


@dataclass(frozen=True)
class SpawnStatus:
    """The watched memory now, for a live line: handed to ``on_status`` every poll."""

    t_s: float
    pid: int
    generation: int
    level: PressureLevel
    rss_bytes: int | None
    rate_bytes_per_s: float | None
    profile: PressureLevel


@dataclass(frozen=True)
class SpawnResult:
    """What a run did: its events, its children, its memory, and why it ended.

    ``end_cause`` is one of ``duration``, ``finished`` (the scenario's steps
    are done), ``exited`` (a command ended on its own), ``stopped`` (the
    caller asked), ``crash-loop`` (a crash beyond the restart limit) or
    ``internal-error`` (the sampler died); ``ended`` says it in words.
    """

    end_cause: str
    ended: str
    events: tuple[SpawnEvent, ...]
    children: tuple[ChildRecord, ...]
    peak_rss_bytes: int
    max_pressure: PressureLevel
    final_level: PressureLevel
    thresholds: PressureThresholds
    basis: MeasurementBasis
    baseline_bytes: int
    duration_s: float
    events_path: Path | None = None
    #: How many events of each kind there were, those no longer in ``events`` included.
    event_counts: Mapping[str, int] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[SpawnEvent]:
        """The events of one kind, in time order."""
        return [event for event in self.events if event.kind == kind]

    @property
    def spawns(self) -> int:
        return self.event_counts.get("spawn", 0)

    @property
    def crashes(self) -> int:
        return self.event_counts.get("crash", 0)

    @property
    def gc_requests(self) -> int:
        return self.event_counts.get("gc_request", 0)

    @property
    def last_returncode(self) -> int | None:
        """The last child's ``subprocess`` return code (None if it never ended)."""
        return self.children[-1].returncode if self.children else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "end_cause": self.end_cause,
            "ended": self.ended,
            "spawns": self.spawns,
            "crashes": self.crashes,
            "gc_requests": self.gc_requests,
            "peak_rss_bytes": self.peak_rss_bytes,
            "max_pressure": self.max_pressure.name,
            "final_level": self.final_level.name,
            "thresholds_bytes": list(self.thresholds.boundaries()),
            "basis": self.basis.value,
            "baseline_bytes": self.baseline_bytes,
            "duration_s": round(self.duration_s, 6),
            "events_path": None if self.events_path is None else str(self.events_path),
            "event_counts": dict(self.event_counts),
            "events": [event.to_dict() for event in self.events],
            "children": [child.to_dict() for child in self.children],
        }
