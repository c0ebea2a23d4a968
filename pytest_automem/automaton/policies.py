"""Trim and GC policies, their configuration, and the automaton that applies them.

A memory-optimized automaton that acts at step boundaries only: the
scenario runner calls :meth:`MemoryOptimizedAutomaton.on_step_boundary`
between steps (never from another thread in the middle of one) with the
measured memory and its pressure level, and the policies decide what to do:

* trim the oldest objects above ``max_objects``, every boundary;
* trim ``trim_fraction`` more while memory is above
  ``memory_pressure_threshold``, at most once per ``trim_interval``;
* ``gc.collect()`` every ``gc_interval`` at MEDIUM pressure or above, and
  after a spike (memory rose by more than ``spike_threshold`` since the last
  boundary); never at LOW without a spike, never with ``enable_gc=False``;
* cap the execution history at ``max_execution_history``.

Policies are small :class:`typing.Protocol` objects, each testable
alone and swappable through the automaton's constructor.  Time comes from an
injectable clock, so interval rules are tested without waiting.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ..base.defaults import (
    DEFAULT_GC_INTERVAL_S,
    DEFAULT_MAX_EXECUTION_HISTORY,
    DEFAULT_MAX_OBJECTS,
    DEFAULT_MEMORY_PRESSURE_THRESHOLD_BYTES,
    DEFAULT_SPIKE_THRESHOLD_BYTES,
    DEFAULT_TRIM_FRACTION,
    DEFAULT_TRIM_INTERVAL_S,
    PRESSURE_PROFILE_LIMITS,
)
from ..base.units import is_count, parse_duration_s, parse_size_bytes
from ..measure.pressure import PressureLevel
from .store import (
    Automaton,
    JsonObject,
    append_jsonl_durably,
    archive_path_for,
)

__all__ = [
    "DEFAULT_CONFIG",
    "MAX_COUNT",
    "MAX_SIZE_BYTES",
    "PRESSURE_PROFILES",
    "Event",
    "EventKind",
    "GcPolicy",
    "MemoryOptimizedAutomaton",
    "OldestFirstTrimPolicy",
    "OptimizationConfig",
    "PressureGcPolicy",
    "PressureProfile",
    "StepContext",
    "TrimPlan",
    "TrimPolicy",
]


@dataclass(frozen=True)
class PressureProfile:
    """The tighter limits that apply at one pressure level."""

    max_objects: int
    max_execution_history: int
    gc_interval: float
    trim_interval: float


PRESSURE_PROFILES: Mapping[PressureLevel, PressureProfile] = {
    PressureLevel[name]: PressureProfile(**limits)
    for name, limits in PRESSURE_PROFILE_LIMITS.items()
}
"""Pressure-specific limits; LOW and MEDIUM have none (the base config applies)."""


MAX_COUNT = sys.maxsize
"""The largest object or history limit: what a list (and a bounded deque) can hold."""

MAX_SIZE_BYTES = (1 << 63) - 1
"""The largest size a config holds (8 EiB): an int64, so every JSON reader takes it exactly."""


def _count(value: object) -> int:
    if not is_count(value):
        raise ValueError("expected an int >= 0")
    if value > MAX_COUNT:
        raise ValueError(f"expected an int <= {MAX_COUNT} (sys.maxsize)")
    return value


def _interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected seconds or a duration such as '5s' or '500ms'")
    try:
        seconds = parse_duration_s(value)
    except OverflowError:  # an int past float's range
        raise ValueError("must be a finite duration") from None
    if seconds <= 0:
        raise ValueError("an interval must be > 0")
    return seconds


def _size(value: object) -> int:
    """Bytes, exact for ints (``parse_size_bytes`` goes through float for numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected bytes or a size such as '200MB'")
    size = value if isinstance(value, int) else parse_size_bytes(value)
    if not 0 <= size <= MAX_SIZE_BYTES:
        raise ValueError(f"expected a size from 0 to {MAX_SIZE_BYTES} bytes (2**63 - 1)")
    return size


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected True or False")
    return value


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number in (0, 1]")
    if not 0 < value <= 1:
        raise ValueError("expected a number in (0, 1]")
    return float(value)


def short_repr(value: object) -> str:
    """``repr`` for a one-line error message, short even for an int too long to print.

    ``repr`` of an int past 4300 digits raises ValueError, which would
    replace the error being reported.
    """
    if isinstance(value, int) and value.bit_length() > 256:
        return f"<int of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NORMALISERS: dict[str, Callable[[object], Any]] = {
    "max_objects": _count,
    "max_execution_history": _count,
    "gc_interval": _interval,
    "trim_interval": _interval,
    "memory_pressure_threshold": _size,
    "enable_gc": _flag,
    "spike_threshold": _size,
    "trim_fraction": _fraction,
}


class _ForLevel:
    """``for_level`` that tightens the defaults on the class, the instance on an instance.

    A plain classmethod would silently ignore the instance in
    ``my_config.for_level(HIGH)``; this makes both spellings mean what they say.
    """

    def __get__(
        self, instance: OptimizationConfig | None, owner: type[OptimizationConfig]
    ) -> Callable[[PressureLevel | str], OptimizationConfig]:
        base = owner() if instance is None else instance
        return base.tightened_for


@dataclass(frozen=True)
class OptimizationConfig:
    """Limits of the memory-optimized automaton, with its defaults.

    Intervals are float seconds and sizes int bytes once constructed; text is
    accepted and normalised (``gc_interval="500ms"``,
    ``memory_pressure_threshold="200MB"``), so a config can come straight from
    an ini value or a marker.  Any other value raises ValueError naming the
    field and the value.

    ``OptimizationConfig.for_level(PressureLevel.HIGH)`` gives the HIGH
    profile (:data:`~pytest_automem.base.defaults.PRESSURE_PROFILE_LIMITS`);
    CRITICAL gives a tighter one; LOW and MEDIUM give the defaults.  Called on an
    instance, ``config.for_level(level)`` tightens that config instead: each
    profiled limit becomes the smaller of the config's and the profile's, so
    a profile never loosens a limit a user set lower.
    """

    max_objects: int = DEFAULT_MAX_OBJECTS
    max_execution_history: int = DEFAULT_MAX_EXECUTION_HISTORY
    gc_interval: float = DEFAULT_GC_INTERVAL_S
    trim_interval: float = DEFAULT_TRIM_INTERVAL_S
    memory_pressure_threshold: int = DEFAULT_MEMORY_PRESSURE_THRESHOLD_BYTES
    enable_gc: bool = True
    spike_threshold: int = DEFAULT_SPIKE_THRESHOLD_BYTES
    trim_fraction: float = DEFAULT_TRIM_FRACTION

    for_level = _ForLevel()

    def __post_init__(self) -> None:
        for name, normalise in _NORMALISERS.items():
            raw = getattr(self, name)
            try:
                value = normalise(raw)
            except ValueError as exc:
                raise ValueError(
                    f"invalid OptimizationConfig {name}={short_repr(raw)}: {exc}"
                ) from None
            object.__setattr__(self, name, value)

    def tightened_for(self, level: PressureLevel | str) -> OptimizationConfig:
        """This config with ``level``'s profile applied, never loosening a limit."""
        profile = PRESSURE_PROFILES.get(PressureLevel.parse(level))
        if profile is None:
            return self
        limits = dataclasses.asdict(profile)
        return self.replace(**{name: min(getattr(self, name), cap) for name, cap in limits.items()})

    def replace(self, **overrides: Any) -> OptimizationConfig:
        """A copy with ``overrides`` applied, validated like a new config."""
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, int | float | bool]:
        """Plain values, for results JSON and xdist reports."""
        return dataclasses.asdict(self)


DEFAULT_CONFIG = OptimizationConfig()


@dataclass(frozen=True)
class StepContext:
    """What a policy sees at a step boundary.

    ``memory_bytes`` is None for a manual :meth:`MemoryOptimizedAutomaton.trim`
    without a measurement; ``spike_bytes`` is how far memory rose since the
    previous boundary (0 at the first, negative when it fell).
    """

    now_s: float
    object_count: int
    memory_bytes: int | None = None
    pressure: PressureLevel = PressureLevel.LOW
    spike_bytes: int = 0


@dataclass(frozen=True)
class TrimPlan:
    """How many of the oldest objects to trim, and why (empty when none)."""

    count: int = 0
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """The reasons joined, e.g. ``"max_objects+memory_pressure"``."""
        return "+".join(self.reasons)


class TrimPolicy(Protocol):
    """Decides how many of the oldest objects to trim at a boundary.

    The automaton acts on every plan with a positive count; a policy that
    rate-limits itself records the time when it decides.
    """

    def decide(self, context: StepContext) -> TrimPlan: ...


class GcPolicy(Protocol):
    """Decides whether to run ``gc.collect()`` at a boundary: a reason, or None."""

    def decide(self, context: StepContext) -> str | None: ...


class OldestFirstTrimPolicy:
    """The default trim: cap at ``max_objects``, then a fraction more under pressure.

    The pressure trim takes ``trim_fraction`` of the objects left after the
    cap, rounded up and at least one so it always makes progress, and waits ``trim_interval``
    before the next one; the cap applies at every boundary because it is the
    limit that bounds memory.
    """

    def __init__(self, config: OptimizationConfig) -> None:
        self._config = config
        self._last_pressure_trim_s: float | None = None

    def decide(self, context: StepContext) -> TrimPlan:
        over_cap = max(0, context.object_count - self._config.max_objects)
        reasons = ["max_objects"] if over_cap else []
        remaining = context.object_count - over_cap
        extra = 0
        if remaining and self._pressure_trim_due(context):
            extra = max(1, math.ceil(round(remaining * self._config.trim_fraction, 9)))
            self._last_pressure_trim_s = context.now_s
            reasons.append("memory_pressure")
        return TrimPlan(over_cap + extra, tuple(reasons))

    def _pressure_trim_due(self, context: StepContext) -> bool:
        if context.memory_bytes is None:
            return False
        if context.memory_bytes <= self._config.memory_pressure_threshold:
            return False
        last = self._last_pressure_trim_s
        return last is None or context.now_s - last >= self._config.trim_interval


class PressureGcPolicy:
    """The default GC: periodic at MEDIUM or above, and after every spike.

    Any collection, whatever its reason, restarts the interval.
    """

    def __init__(self, config: OptimizationConfig) -> None:
        self._config = config
        self._last_gc_s: float | None = None

    def decide(self, context: StepContext) -> str | None:
        if not self._config.enable_gc:
            return None
        if context.spike_bytes > self._config.spike_threshold:
            reason = "spike"
        elif context.pressure >= PressureLevel.MEDIUM and self._interval_elapsed(context.now_s):
            reason = "interval"
        else:
            return None
        self._last_gc_s = context.now_s
        return reason

    def _interval_elapsed(self, now_s: float) -> bool:
        return self._last_gc_s is None or now_s - self._last_gc_s >= self._config.gc_interval


EventKind = Literal["trim", "gc", "save"]


@dataclass(frozen=True)
class Event:
    """One action of the memory-optimized automaton.

    ``count`` is what the action handled: objects trimmed, objects
    ``gc.collect()`` found unreachable, or objects saved.  ``bytes_before`` is
    the memory measured at the boundary and ``bytes_after`` the memory probe's
    reading after a GC; either is None where nothing was measured.
    ``file_bytes`` is the saved file's size.
    """

    time_s: float
    kind: EventKind
    reason: str
    objects_before: int
    objects_after: int
    count: int
    bytes_before: int | None = None
    bytes_after: int | None = None
    file_bytes: int | None = None

    def to_dict(self) -> dict[str, str | int | float]:
        """Plain values only (unknown fields left out), safe to send across xdist."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


class MemoryOptimizedAutomaton(Automaton):
    """An :class:`Automaton` that trims, collects and caps its history by policy.

    Policies run at :meth:`on_step_boundary` and :meth:`trim`; every trim
    first appends the trimmed objects to :attr:`archive_path` (durably), then
    drops them from memory, then saves the file atomically — so a crash at any
    point leaves every object on disk, at worst in both files.  The file's
    lock is held from the append to the end of the save, so another writer
    never appends between them, and a trim of a file that another writer
    saved meanwhile raises :class:`~.automaton.ConcurrentWriteError` before
    it writes anything.

    ``memory_probe``, when given, is read after each GC to fill the event's
    ``bytes_after``.  ``trim_policy`` and ``gc_policy`` default to
    :class:`OldestFirstTrimPolicy` and :class:`PressureGcPolicy` built from ``config``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: OptimizationConfig = DEFAULT_CONFIG,
        *,
        strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
        trim_policy: TrimPolicy | None = None,
        gc_policy: GcPolicy | None = None,
        memory_probe: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(config, OptimizationConfig):
            raise ValueError(f"config must be an OptimizationConfig, got {type(config).__name__}")
        self._config = config
        self._trim_policy = trim_policy or OldestFirstTrimPolicy(config)
        self._gc_policy = gc_policy or PressureGcPolicy(config)
        self._memory_probe = memory_probe
        self._events: collections.deque[Event] = collections.deque(
            maxlen=config.max_execution_history
        )
        self._event_counts: collections.Counter[str] = collections.Counter()
        self._last_memory_bytes: int | None = None
        super().__init__(path, strict=strict, clock=clock)

    @property
    def config(self) -> OptimizationConfig:
        """The limits this automaton applies."""
        return self._config

    @property
    def archive_path(self) -> Path:
        """``<full name>.trimmed.jsonl`` beside :attr:`path`: where trimmed objects go."""
        return archive_path_for(self.path)

    @property
    def events(self) -> list[Event]:
        """The newest trim, GC and save events, oldest first (a new list).

        Like the execution history, at most ``max_execution_history`` are
        kept — an automaton that runs for days must not leak through its own
        event log; :attr:`event_counts` keeps the totals.
        """
        return list(self._events)

    @property
    def event_counts(self) -> dict[str, int]:
        """How many events of each kind (``trim``, ``gc``, ``save``) ever happened."""
        return dict(self._event_counts)

    def _log(self, event: Event) -> Event:
        self._events.append(event)
        self._event_counts[event.kind] += 1
        return event

    def on_step_boundary(self, memory_bytes: int, pressure: PressureLevel) -> list[Event]:
        """Apply the policies between two steps; return the events this caused.

        ``memory_bytes`` is the measured memory (on the runner's basis) and
        ``pressure`` its level.  Trims come before GC, so a collection also
        frees what the trim released.
        """
        spike = 0 if self._last_memory_bytes is None else memory_bytes - self._last_memory_bytes
        self._last_memory_bytes = memory_bytes
        context = StepContext(
            now_s=self._clock(),
            object_count=len(self),
            memory_bytes=memory_bytes,
            pressure=PressureLevel.parse(pressure),
            spike_bytes=spike,
        )
        _, events = self._apply_trim(context)
        events.extend(self._apply_gc(context))
        return events

    def trim(self, memory_bytes: int | None = None) -> list[JsonObject]:
        """Apply the trim policy now; return the trimmed objects, oldest first.

        Without ``memory_bytes`` only the ``max_objects`` cap can apply; with
        it, the pressure trim too (subject to its interval, as at a boundary).
        """
        context = StepContext(
            now_s=self._clock(), object_count=len(self), memory_bytes=memory_bytes
        )
        trimmed, _ = self._apply_trim(context)
        return trimmed

    def save(self) -> int:
        """Save atomically (see :meth:`Automaton.save`) and record a ``save`` event."""
        size, _ = self._save("requested")
        return size

    def _save(self, reason: str) -> tuple[int, Event]:
        """Save and log it; return the size and the event (a log of size 0 keeps none)."""
        size = super().save()
        count = len(self)
        event = Event(self._clock(), "save", reason, count, count, count, file_bytes=size)
        return size, self._log(event)

    def _apply_trim(self, context: StepContext) -> tuple[list[JsonObject], list[Event]]:
        plan = self._trim_policy.decide(context)
        count = min(plan.count, len(self))
        if count <= 0:
            return [], []
        before = len(self)
        with self._write_lock():
            append_jsonl_durably(archive_path_for(self.path), self._objects[:count])
            trimmed = self._drop_oldest(count)
            self._record("trim", trimmed=count, objects=len(self), reason=plan.reason)
            event = Event(
                context.now_s,
                "trim",
                plan.reason,
                before,
                len(self),
                count,
                bytes_before=context.memory_bytes,
            )
            self._log(event)
            _, saved = self._save("trim")
        return trimmed, [event, saved]

    def _apply_gc(self, context: StepContext) -> list[Event]:
        reason = self._gc_policy.decide(context)
        if reason is None:
            return []
        collected = gc.collect()
        after = self._memory_probe() if self._memory_probe is not None else None
        self._record("gc", collected=collected, reason=reason)
        count = len(self)
        event = Event(
            context.now_s,
            "gc",
            reason,
            count,
            count,
            collected,
            bytes_before=context.memory_bytes,
            bytes_after=after,
        )
        self._log(event)
        return [event]

    def _record(self, action: str, **counts: Any) -> None:
        """Record like the base class, then drop the oldest entries above the cap."""
        super()._record(action, **counts)
        excess = len(self._history) - self._config.max_execution_history
        if excess > 0:
            del self._history[:excess]
