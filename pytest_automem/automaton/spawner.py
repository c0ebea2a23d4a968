"""The memory-aware spawner: a worker in a child process, replaced under memory pressure.

:class:`MemoryAwareSpawner` runs a scenario against an automaton file in a
child process (:mod:`.spawn_child`), or any command (``for_command``), and
watches the child's whole process tree at the monitor's interval (1 ms).
The pressure level of that memory decides what happens:

* MEDIUM: the child is asked to collect garbage (a scenario child only: an
  arbitrary command may die of the signal);
* HIGH or CRITICAL, once the cooldown since the last replacement is over: a
  replacement is started with that level's profile (never a looser one than
  the child had), and the old child is retired: asked to stop (SIGTERM to its
  process group), given a grace period, then its group is killed.  A scenario
  child saves the automaton and exits first, and the replacement loads that
  file, so no object is lost (what the tighter profile trims goes to the
  archive); a command's replacement starts first, so the work never stops;
* a child that exits on its own without being asked has crashed (unless it
  finished its steps, or a command ended well): it is restarted with the same
  profile, at most ``max_restarts`` times within ``restart_window_s``.

Why the level is judged at the poll (every 10 ms) on the highest sample
since the last one: a spike between two polls still counts, and a decision
costs one comparison, not one per sample.

Nothing outlives the spawner: each child leads a process group of its own
with a parent-death signal and a guard process
(:mod:`~pytest_automem.measure.command_group`), and the spawner is a child
subreaper while it runs.  Every event (start, gc_request, gc, spawn, retire,
level, warning, crash, exit) is kept with its time and memory, handed to an
observer as it happens, and appended to the events file (snapshot format,
``"source": "spawner"``) with the curve as min/max buckets.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.defaults import (
    DEFAULT_CRASH_RESTARTS,
    DEFAULT_CRASH_WINDOW_S,
    DEFAULT_GRACE,
    DEFAULT_INTERVAL_MS,
    DEFAULT_SPAWN_COOLDOWN_S,
    MIN_RATE_WINDOW_S,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
    SPAWNER_EVENTS_KEPT,
    SPAWNER_RATE_WINDOW_S,
    SPAWNER_SAMPLE_BUCKET_S,
)
from ..base.stats import least_squares_slope
from ..base.units import format_rate, format_size, parse_duration_s, parse_interval_ms
from ..measure import command_group
from ..measure._platform import MemoryReadError
from ..measure.command_group import CommandGroup, describe_returncode
from ..measure.monitor import MemoryMonitor
from ..measure.pressure import MeasurementBasis, PressureLevel, PressureThresholds
from ..measure.sampler_parent import SamplerDiedError
from ..measure.stop_signals import shielded
from ..snapshots.files import SnapshotLog
from . import spawn_child
from .policies import OptimizationConfig
from .spawn_results import ChildRecord, SpawnEvent, SpawnResult, SpawnStatus
from .store import archive_path_for

__all__ = [
    "MemoryAwareSpawner",
    "SpawnInputError",
    "profile_environment",
    "scenario_spec",
]

#: How often the spawner looks at its child: samples, messages, decisions.
_POLL_S = 0.01
#: The growth-rate marks, lowest first, with the word a warning uses.
_RATE_MARKS = ((RATE_WARNING_BYTES_PER_S, "warning"), (RATE_CRITICAL_BYTES_PER_S, "critical"))


class SpawnInputError(ValueError):
    """The child could not load its scenario or automaton: the input is at fault."""


def profile_environment(
    config: OptimizationConfig, level: PressureLevel, generation: int
) -> dict[str, str]:
    """The variables a command worker gets: its level, its generation, its limits.

    ``AUTOMEM_LEVEL`` (LOW for the first worker), ``AUTOMEM_GENERATION``
    (0, 1, …), and the level's profile: ``AUTOMEM_MAX_OBJECTS``,
    ``AUTOMEM_MAX_EXECUTION_HISTORY``, ``AUTOMEM_GC_INTERVAL_S``,
    ``AUTOMEM_TRIM_INTERVAL_S`` (seconds).
    """
    limits = config.for_level(level)
    return {
        "AUTOMEM_LEVEL": level.name,
        "AUTOMEM_GENERATION": str(generation),
        "AUTOMEM_MAX_OBJECTS": str(limits.max_objects),
        "AUTOMEM_MAX_EXECUTION_HISTORY": str(limits.max_execution_history),
        "AUTOMEM_GC_INTERVAL_S": f"{limits.gc_interval:g}",
        "AUTOMEM_TRIM_INTERVAL_S": f"{limits.trim_interval:g}",
    }


def scenario_spec(scenario: str | Callable[..., object]) -> str:
    """A scenario as the child loads it: a spec as given, a function by its file.

    Only a function defined at the top of a file can be found again in
    another process; a lambda or a nested function is refused by name.
    """
    if isinstance(scenario, str):
        return scenario
    code = getattr(scenario, "__code__", None)
    name = getattr(scenario, "__qualname__", "")
    if code is None or not name or "<" in name or "." in name:
        raise ValueError(
            f"scenario {scenario!r}: give 'module:function', 'file.py:function' or a function "
            "defined at the top of a file (the child process loads it by its file)"
        )
    return f"{code.co_filename}:{name}"


@dataclass(frozen=True)
class _Launch:
    """What a worker needs to start one child: its limits, its place in the run, its pipe."""

    config: OptimizationConfig
    level: PressureLevel
    generation: int
    first_step: int
    thresholds: PressureThresholds
    baseline_bytes: int | None
    status_fd: int


@dataclass(frozen=True)
class _ScenarioWorker:
    """A scenario child: hands its state over through the saved file."""

    scenario: str
    automaton: Path
    steps: int | None
    #: The old child saves before the new one loads the file.
    retire_first: bool = True
    #: It collects garbage on request (SIGUSR1), at a step boundary.
    asks_gc: bool = True

    def describe(self) -> str:
        return f"scenario {self.scenario} on {self.automaton}"

    def launch(self, launch: _Launch) -> tuple[list[str], dict[str, str] | None]:
        spec = spawn_child.child_spec(
            scenario=self.scenario,
            automaton=str(self.automaton),
            config=launch.config,
            level=launch.level,
            first_step=launch.first_step,
            steps=self.steps,
            thresholds=launch.thresholds,
            baseline_bytes=launch.baseline_bytes,
        )
        argv = [sys.executable, "-m", spawn_child.__name__, spec, str(launch.status_fd)]
        return argv, None


@dataclass(frozen=True)
class _CommandWorker:
    """Any command: told its profile through the environment, replaced before retired."""

    command: tuple[str, ...]
    retire_first: bool = False
    asks_gc: bool = False

    def describe(self) -> str:
        return " ".join(self.command)

    def launch(self, launch: _Launch) -> tuple[list[str], dict[str, str] | None]:
        profile = profile_environment(launch.config, launch.level, launch.generation)
        return list(self.command), {**os.environ, **profile}


_Worker = _ScenarioWorker | _CommandWorker


class _Child:
    """A running child: its group, its sampler, its status pipe, what it said."""

    def __init__(
        self, generation: int, profile: PressureLevel, group: CommandGroup, status_fd: int | None
    ) -> None:
        self.generation = generation
        self.profile = profile
        self.group = group
        self.status_fd = status_fd
        self.monitor: MemoryMonitor | None = None
        self.sample_count = 0
        self.peak_rss_bytes = 0
        self.last_rss_bytes: int | None = None
        self.ready: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.error: str | None = None
        self.step: int | None = None
        self.objects: int | None = None
        self.first_step: int | None = None
        self.gc_requested_s: float | None = None
        #: Samples judged for pressure: from its ready (a load's transient is
        #: not pressure) until it was asked to stop (nor is an exit's teardown).
        self.judged_from_ns = 0
        self.judged_until_ns: int | None = None
        self.max_level = PressureLevel.LOW
        #: The level of its newest judged readings; None before the first.
        self.level: PressureLevel | None = None
        self.started_s = 0.0
        self._pending = b""

    @property
    def pid(self) -> int:
        return self.group.process.pid

    def returncode(self) -> int | None:
        return self.group.process.poll()

    def messages(self) -> list[dict[str, Any]]:
        """The status lines the child wrote since the last call (none for a command)."""
        if self.status_fd is None:
            return []
        chunks = [self._pending]
        while True:
            try:
                data = os.read(self.status_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        *lines, self._pending = b"".join(chunks).split(b"\n")
        return [message for message in map(_message, lines) if message is not None]

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None


class _Curve:
    """The watched memory as it arrives: peak, growth rate, and the events file's points.

    The file gets the lowest and the highest sample of every
    ``SPAWNER_SAMPLE_BUCKET_S`` (the exact peak among them); the rate is the
    least-squares slope of the newest ``SPAWNER_RATE_WINDOW_S`` of poll readings.
    """

    def __init__(self, log: SnapshotLog | None, origin_ns: int) -> None:
        self._log = log
        self._origin_ns = origin_ns
        self._bucket_end_ns: int | None = None
        self._low: tuple[int, int] | None = None
        self._high: tuple[int, int] | None = None
        self._readings: collections.deque[tuple[float, int]] = collections.deque()
        self.peak_rss_bytes = 0

    def add(self, times_ns: Sequence[int], rss_bytes: Sequence[int], judge: _Judge) -> None:
        bucket_ns = round(SPAWNER_SAMPLE_BUCKET_S * 1e9)
        for t_ns, rss in zip(times_ns, rss_bytes, strict=True):
            if self._bucket_end_ns is None or t_ns >= self._bucket_end_ns:
                self.flush(judge)
                self._bucket_end_ns = t_ns + bucket_ns
                self._low = self._high = (t_ns, rss)
            elif self._low is None or self._high is None:  # flushed early, at an event
                self._low = self._high = (t_ns, rss)
            else:
                self._low = min(self._low, (t_ns, rss), key=lambda point: point[1])
                self._high = max(self._high, (t_ns, rss), key=lambda point: point[1])
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if len(times_ns):
            self._reading(times_ns[-1], rss_bytes[-1])

    def _reading(self, t_ns: int, rss: int) -> None:
        t_s = (t_ns - self._origin_ns) / 1e9
        self._readings.append((t_s, rss))
        while self._readings and t_s - self._readings[0][0] > SPAWNER_RATE_WINDOW_S:
            self._readings.popleft()

    def rate_bytes_per_s(self) -> float | None:
        """The growth rate over the newest readings; None until they span long enough."""
        if len(self._readings) < 2:
            return None
        if self._readings[-1][0] - self._readings[0][0] < MIN_RATE_WINDOW_S:
            return None
        times, values = zip(*self._readings, strict=True)
        return least_squares_slope(times, values)

    def restart(self) -> None:
        """A new child: its growth is its own, not the jump from the old one."""
        self._readings.clear()

    def flush(self, judge: _Judge) -> None:
        """Write the open bucket's points to the events file."""
        if self._log is None or self._low is None or self._high is None:
            return
        for t_ns, rss in sorted({self._low, self._high}):
            measured = judge.measured(rss)
            self._log.sample(
                (t_ns - self._origin_ns) / 1e6,
                rss,
                measured,
                judge.thresholds.classify(measured),
                judge.objects,
            )
        self._low = self._high = None


@dataclass
class _Judge:
    """What a reading is judged on: thresholds, basis, baseline, object count."""

    thresholds: PressureThresholds
    basis: MeasurementBasis
    baseline_bytes: int | None = None
    objects: int | None = None

    def measured(self, rss_bytes: int) -> int:
        if self.basis is MeasurementBasis.ABSOLUTE:
            return rss_bytes
        return rss_bytes - (self.baseline_bytes if self.baseline_bytes is not None else rss_bytes)

    def level(self, rss_bytes: int) -> PressureLevel:
        return self.thresholds.classify(self.measured(rss_bytes))


def _check_events_path(events: Path | None, worker: _ScenarioWorker | _CommandWorker) -> None:
    """The events file must not be the automaton or its archive: writing it
    would destroy the state the children hand over."""
    if events is None or not isinstance(worker, _ScenarioWorker):
        return
    for what, path in (
        ("automaton", worker.automaton),
        ("archive", archive_path_for(worker.automaton)),
    ):
        if os.path.realpath(events) == os.path.realpath(path):
            raise ValueError(f"events file {events} is the {what} {path}: give it its own file")


def _seconds(value: float | str, what: str, *, positive: bool) -> float:
    seconds = parse_duration_s(value) if isinstance(value, str) else float(value)
    if seconds < 0 or (positive and seconds == 0):
        raise ValueError(f"invalid {what} {value!r}: must be {'> 0' if positive else '>= 0'}")
    return seconds


class MemoryAwareSpawner:
    """Runs a worker in a child process and replaces it when memory pressure rises.

    ``MemoryAwareSpawner(scenario, automaton)`` runs ``scenario`` (named
    ``module:function`` or ``path/to/file.py:function``) on the automaton
    file ``automaton``; :meth:`for_command` runs any command instead.
    :meth:`run` blocks until the run ends and returns a :class:`SpawnResult`.

    ``thresholds`` (or their text, ``"50MB,200MB,500MB"``) are judged on
    ``basis``: the child's whole resident memory (ABSOLUTE, the default), or
    what it holds above the first child's memory once that was ready
    (RELATIVE: independent of the interpreter's own size).  ``config`` is the
    first child's :class:`OptimizationConfig`; a replacement gets
    ``config.for_level(level)``.  ``duration`` ends the run (seconds or text
    such as ``"30s"``); ``steps`` ends a scenario after that many steps in
    all (a replacement continues the count).  ``cooldown`` is the least time
    between two replacements; ``grace`` how long a child asked to stop may
    take before its process group is killed.  ``max_restarts`` crashes
    within ``restart_window`` are restarted; one more ends the run.
    ``events_path``: write the events and the curve there (snapshot format).
    ``on_event`` and ``on_status`` are called as things happen and at every
    poll; ``should_stop`` is asked at every poll and ends the run (gracefully)
    when it returns a reason; ``should_hurry``, asked while a child is given
    its grace, ends the grace at once when it returns True.
    """

    def __init__(
        self,
        scenario: str,
        automaton: str | os.PathLike[str],
        *,
        steps: int | None = None,
        **options: Any,
    ) -> None:
        if steps is not None and (type(steps) is not int or steps < 0):
            raise ValueError(f"invalid steps {steps!r}: a count >= 0, or None for no limit")
        self._setup(_ScenarioWorker(scenario, Path(automaton), steps), **options)

    @classmethod
    def for_command(cls, command: Sequence[str], **options: Any) -> MemoryAwareSpawner:
        """A spawner of ``command`` (argv): its profile in ``AUTOMEM_*`` variables
        (:func:`profile_environment`), its memory the whole process tree."""
        if not command:
            raise ValueError("for_command: give the command to run (argv, not empty)")
        spawner = cls.__new__(cls)
        spawner._setup(_CommandWorker(tuple(command)), **options)
        return spawner

    def _setup(
        self,
        worker: _Worker,
        *,
        thresholds: PressureThresholds | str | None = None,
        basis: MeasurementBasis | str = MeasurementBasis.ABSOLUTE,
        config: OptimizationConfig | None = None,
        duration: float | str | None = None,
        cooldown: float | str = DEFAULT_SPAWN_COOLDOWN_S,
        grace: float | str = DEFAULT_GRACE,
        interval_ms: float | str = DEFAULT_INTERVAL_MS,
        max_restarts: int = DEFAULT_CRASH_RESTARTS,
        restart_window: float | str = DEFAULT_CRASH_WINDOW_S,
        events_path: str | os.PathLike[str] | None = None,
        on_event: Callable[[SpawnEvent], object] | None = None,
        on_status: Callable[[SpawnStatus], object] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        should_hurry: Callable[[], bool] | None = None,
    ) -> None:
        self.worker = worker
        if isinstance(thresholds, str):
            thresholds = PressureThresholds.parse(thresholds)
        self.thresholds = thresholds or PressureThresholds()
        self.basis = MeasurementBasis(basis)
        self.config = config or OptimizationConfig()
        self.duration_s = (
            None if duration is None else _seconds(duration, "duration", positive=True)
        )
        self.cooldown_s = _seconds(cooldown, "cooldown", positive=False)
        self.grace_s = _seconds(grace, "grace", positive=True)
        self.interval_ms = parse_interval_ms(interval_ms)
        if type(max_restarts) is not int or max_restarts < 0:
            raise ValueError(f"invalid max_restarts {max_restarts!r}: a count >= 0")
        self.max_restarts = max_restarts
        self.restart_window_s = _seconds(restart_window, "restart_window", positive=True)
        self.events_path = None if events_path is None else Path(events_path)
        _check_events_path(self.events_path, worker)
        self.on_event = on_event
        self.on_status = on_status
        self.should_stop = should_stop
        self.should_hurry = should_hurry

    def run(self) -> SpawnResult:
        """Run until the duration ends, the worker finishes, or the run is stopped.

        An exception here (Ctrl-C's KeyboardInterrupt included) still stops
        the child gracefully and leaves no process behind before it goes on.
        Raises :class:`SpawnInputError` when the child cannot load its
        scenario or automaton, a command cannot be run, or the events file
        cannot be written.
        """
        with contextlib.ExitStack() as stack:
            stack.enter_context(command_group.adopting_orphans())
            log = None
            if self.events_path is not None:
                log = stack.enter_context(self._events_log(self.events_path))
            return _Run(self, log).run()
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow

    def _events_log(self, path: Path) -> SnapshotLog:
        try:
            return SnapshotLog(path, label="spawner", pid=os.getpid(), header_extra=self._header())
        except OSError as exc:
            raise SpawnInputError(f"events file {path}: {exc.strerror or exc}") from None

    def _header(self) -> dict[str, Any]:
        return {
            "source": "spawner",
            "worker": self.worker.describe(),
            "thresholds_bytes": list(self.thresholds.boundaries()),
            "basis": self.basis.value,
            "interval_target_ms": self.interval_ms,
            "cooldown_s": self.cooldown_s,
            "sample_bucket_s": SPAWNER_SAMPLE_BUCKET_S,
        }


@dataclass
class _Ending:
    cause: str
    text: str


@dataclass
class _Run:
    """One run's state: the child now, the events so far, the decisions' clocks."""

    spawner: MemoryAwareSpawner
    log: SnapshotLog | None
    origin_ns: int = field(default_factory=time.monotonic_ns)
    events: collections.deque[SpawnEvent] = field(
        default_factory=lambda: collections.deque(maxlen=SPAWNER_EVENTS_KEPT)
    )
    event_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    records: list[ChildRecord] = field(default_factory=list)
    level: PressureLevel = PressureLevel.LOW
    max_level: PressureLevel = PressureLevel.LOW
    last_spawn_s: float | None = None
    crash_times: collections.deque[float] = field(default_factory=collections.deque)
    warned: set[int] = field(default_factory=set)
    generations: int = 0
    #: Children started and not yet closed (the old and the new during a handover).
    live: list[_Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        spawner = self.spawner
        baseline = 0 if spawner.basis is MeasurementBasis.ABSOLUTE else None
        self.judge = _Judge(spawner.thresholds, spawner.basis, baseline)
        self.curve = _Curve(self.log, self.origin_ns)

    def now_s(self) -> float:
        return (time.monotonic_ns() - self.origin_ns) / 1e9

    def record(self, kind: str, child: _Child | None, detail: str, **memory: int | None) -> None:
        rss = memory.get("rss_bytes", child.last_rss_bytes if child is not None else None)
        event = SpawnEvent(
            t_s=self.now_s(),
            kind=kind,
            level=self.level,
            rss_bytes=rss,
            rss_after_bytes=memory.get("rss_after_bytes"),
            pid=None if child is None else child.pid,
            detail=detail,
        )
        self.events.append(event)
        self.event_counts[kind] += 1
        if self.log is not None:
            self.curve.flush(self.judge)
            self.log.event(event.to_snapshot_event())
        if self.spawner.on_event is not None:
            self.spawner.on_event(event)

    # -- the run -------------------------------------------------------------

    def run(self) -> SpawnResult:
        child = self.start(PressureLevel.LOW, 0, "start")
        ending: _Ending | None = None
        try:
            while ending is None:
                time.sleep(_POLL_S)
                ending, child = self.poll(child)
        finally:
            if ending is None:  # an exception: stop everything, then let it go on
                ending = _Ending("stopped", "interrupted")
            self.finish(ending)
        if child.error is not None:
            raise SpawnInputError(child.error)
        return self.result(ending)

    def poll(self, child: _Child) -> tuple[_Ending | None, _Child]:
        """One look at the child; the ending, if the run ends, and the child now."""
        try:
            self.observe(child)
            returncode = child.returncode()
            if returncode is not None:
                self.observe(child)  # what it wrote and measured up to its end
        except SamplerDiedError as exc:
            return _Ending("internal-error", " ".join(str(exc).split())), child
        if returncode is not None:
            return self.exited(child, returncode)
        stop = self.spawner.should_stop() if self.spawner.should_stop else None
        if stop is not None:
            return _Ending("stopped", stop), child
        duration = self.spawner.duration_s
        if duration is not None and self.now_s() >= duration:
            return _Ending("duration", f"duration {duration:g} s reached"), child
        return None, self.act(child)

    def act(self, child: _Child) -> _Child:
        """At HIGH or CRITICAL, replace the child (after the cooldown); at MEDIUM, ask for a GC."""
        # The child's own level: until its first judged reading, the run's level
        # is its predecessor's, which says nothing about it.
        level = child.level
        if level is None or not self.is_ready(child):
            return child
        now = self.now_s()
        if level >= PressureLevel.HIGH:
            cooled = self.last_spawn_s is None or now - self.last_spawn_s >= self.spawner.cooldown_s
            if cooled:
                return self.replace(child, max(level, child.profile))
        elif level == PressureLevel.MEDIUM and self.spawner.worker.asks_gc:
            last = child.gc_requested_s
            interval = self.spawner.config.for_level(child.profile).gc_interval
            if last is None or now - last >= interval:
                child.gc_requested_s = now
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, spawn_child.GC_SIGNAL)
                self.record("gc_request", child, "asked to collect garbage at MEDIUM")
        return child

    def is_ready(self, child: _Child) -> bool:
        """A scenario child once it has loaded (its handlers are in place); a command at once."""
        if isinstance(self.spawner.worker, _ScenarioWorker):
            return child.ready is not None and child.final is None
        return child.last_rss_bytes is not None

    # -- watching ------------------------------------------------------------

    def observe(self, child: _Child) -> None:
        """Read the child's messages and new samples; note level changes and warnings."""
        for message in child.messages():
            self.on_message(child, message)
        if child.monitor is None:
            return
        block, child.sample_count = child.monitor.samples_since(child.sample_count)
        if not len(block):
            return
        if self.judge.baseline_bytes is None and not isinstance(
            self.spawner.worker, _ScenarioWorker
        ):
            self.judge.baseline_bytes = block.rss_bytes[0]
        self.curve.add(block.times_ns, block.rss_bytes, self.judge)
        child.peak_rss_bytes = max(child.peak_rss_bytes, max(block.rss_bytes))
        child.last_rss_bytes = block.rss_bytes[-1]
        judged = _judged(block.times_ns, block.rss_bytes, child)
        if judged and self.judge.baseline_bytes is not None and self.is_ready(child):
            level = self.judge.level(max(judged))
            child.level = level
            child.max_level = max(child.max_level, level)
            self.judge_level(child, level)
        self.check_rate(child)
        if self.spawner.on_status is not None:
            self.spawner.on_status(self.status(child))

    def status(self, child: _Child) -> SpawnStatus:
        return SpawnStatus(
            t_s=self.now_s(),
            pid=child.pid,
            generation=child.generation,
            level=self.level,
            rss_bytes=child.last_rss_bytes,
            rate_bytes_per_s=self.curve.rate_bytes_per_s(),
            profile=child.profile,
        )

    def judge_level(self, child: _Child, level: PressureLevel) -> None:
        if level == self.level:
            return
        before = self.level
        self.level = level
        self.max_level = max(self.max_level, level)
        self.record("level", child, f"{before.name} -> {level.name}")

    def check_rate(self, child: _Child) -> None:
        """A warning each time the growth rate passes a mark (again once it fell below)."""
        rate = self.curve.rate_bytes_per_s()
        if rate is None:
            return
        for mark, word in _RATE_MARKS:
            if rate >= mark and mark not in self.warned:
                self.warned.add(mark)
                self.record(
                    "warning",
                    child,
                    f"growth {format_rate(rate)} passed the {format_rate(mark)} {word} mark",
                )
            elif rate < mark:
                self.warned.discard(mark)

    def on_message(self, child: _Child, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "ready":
            child.ready = message
            child.judged_from_ns = message["t_ns"]
            self.curve.restart()  # its growth from here on, not its load
            child.objects = message["objects"]
            child.step = message["step"]
            if self.judge.baseline_bytes is None:
                self.judge.baseline_bytes = message["rss_bytes"]
            self.record(
                "ready",
                child,
                f"{child.profile.name} profile: loaded {message['loaded']} objects, "
                f"{message['trimmed']} trimmed to the archive",
            )
        elif kind == "progress":
            child.step, child.objects = message["step"], message["objects"]
        elif kind == "gc":
            self.record(
                "gc",
                child,
                f"collected {message['collected']} objects",
                rss_bytes=message["rss_before_bytes"],
                rss_after_bytes=message["rss_after_bytes"],
            )
        elif kind in ("saved", "finished"):
            child.final = message
            child.step, child.objects = message["step"], message["objects"]
        elif kind == "error":
            child.error = message["message"]
        self.judge.objects = child.objects

    # -- children ------------------------------------------------------------

    def start(
        self, profile: PressureLevel, first_step: int, kind: str, trigger_rss: int | None = None
    ) -> _Child:
        """Start a child with ``profile``'s limits; ``kind`` names the event (start, spawn).

        ``trigger_rss``: the reading of the replaced child that made the
        replacement, which the event carries.
        """
        spawner = self.spawner
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        argv: list[str] = []
        try:
            argv, env = spawner.worker.launch(
                _Launch(
                    config=spawner.config.for_level(profile),
                    level=profile,
                    generation=self.generations,
                    first_step=first_step,
                    thresholds=spawner.thresholds,
                    baseline_bytes=self.judge.baseline_bytes,
                    status_fd=write_fd,
                )
            )
            pass_fds = (write_fd,) if isinstance(spawner.worker, _ScenarioWorker) else ()
            group = command_group.start(argv, die_with_monitor=True, env=env, pass_fds=pass_fds)
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(read_fd)
            reason = getattr(exc, "strerror", None) or exc
            raise SpawnInputError(f"cannot run {shlex.join(argv)}: {reason}") from None
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        child = _Child(self.generations, profile, group, read_fd)
        self.live.append(child)
        child.first_step = child.step = first_step
        child.started_s = self.now_s()
        self.generations += 1
        self.curve.restart()
        try:
            with shielded():  # a Ctrl-C to our group must not end the sampler first
                child.monitor = MemoryMonitor(
                    child.pid, interval_ms=spawner.interval_ms, tree=True
                ).start(wait=False)
        except MemoryReadError:  # it exited at once (or is a zombie): the poll reports how
            child.monitor = None
        self.record(kind, child, self.describe_start(child), rss_bytes=trigger_rss)
        return child

    def describe_start(self, child: _Child) -> str:
        limits = self.spawner.config.for_level(child.profile)
        return (
            f"generation {child.generation}, {child.profile.name} profile "
            f"(max_objects {limits.max_objects}, history {limits.max_execution_history}, "
            f"gc {limits.gc_interval:g} s, trim {limits.trim_interval:g} s)"
        )

    def replace(self, old: _Child, profile: PressureLevel) -> _Child:
        """The old child retired and a new one with ``profile`` running, in the worker's order."""
        trigger = old.last_rss_bytes
        if self.spawner.worker.retire_first:
            self.stop_child(old, "retire", "retired for a replacement")
            new = self.start(profile, old.step or 0, "spawn", trigger)
        else:
            new = self.start(profile, 0, "spawn", trigger)
            self.stop_child(old, "retire", "retired for a replacement")
        self.last_spawn_s = self.now_s()  # the cooldown counts from the new child's start
        return new

    def stop_child(self, child: _Child, kind: str, why: str) -> None:
        """Ask the child's group to stop, wait out the grace, then kill it; record it."""
        returncode = child.returncode()
        killed = False
        if returncode is None:
            child.judged_until_ns = time.monotonic_ns()
            child.group.signal(signal.SIGTERM)
            returncode = self.wait(child, self.spawner.grace_s)
            if returncode is None:
                killed = True
                child.group.signal(signal.SIGKILL)
                returncode = child.group.process.wait()
        self.stop_leftovers(child)
        with contextlib.suppress(SamplerDiedError):
            self.observe_messages_only(child)
        ended = "killed" if killed else ("retired" if kind == "retire" else "stopped")
        detail = f"{why}: {self.describe_end(child, returncode, killed)}"
        self.record(kind, child, detail)
        self.close(child, returncode, ended)

    def stop_leftovers(self, child: _Child) -> None:
        """Stop what the child's tree left (its group, orphans we adopted), not our other
        processes: the other child of a handover, its guard, and every sampler."""
        ours: set[int] = set()
        for each in self.live:
            if each is not child:
                ours.update({each.pid, each.group.guard_pid or 0})
            if each.monitor is not None:
                ours.add(each.monitor.sampler_pid)
        child.group.stop_everything(self.spawner.grace_s, also_ours=ours)

    def observe_messages_only(self, child: _Child) -> None:
        for message in child.messages():
            self.on_message(child, message)

    def wait(self, child: _Child, timeout_s: float) -> int | None:
        """Its return code once it exits within ``timeout_s``, sampling meanwhile; else None.

        ``should_hurry`` ends the wait early (a second Ctrl-C): None, as if
        the grace were over.
        """
        deadline = time.monotonic() + timeout_s
        hurry = self.spawner.should_hurry
        while time.monotonic() < deadline and not (hurry is not None and hurry()):
            with contextlib.suppress(SamplerDiedError):
                self.observe(child)
            returncode = child.returncode()
            if returncode is not None:
                return returncode
            time.sleep(_POLL_S)
        return child.returncode()

    def describe_end(self, child: _Child, returncode: int, killed: bool) -> str:
        how = (
            "killed by SIGKILL after the grace period"
            if killed
            else describe_returncode(returncode)
        )
        if child.final is not None:
            how += f"; saved {child.final['objects']} objects at step {child.final['step']}"
        return how

    def exited(self, child: _Child, returncode: int) -> tuple[_Ending | None, _Child]:
        """The child ended without being asked: finished, a command's end, or a crash."""
        self.stop_leftovers(child)
        self.observe_messages_only(child)
        if child.error is not None:
            self.close(child, returncode, "crashed")
            return _Ending("input-error", child.error), child
        finished = child.final is not None and returncode == 0
        command_done = isinstance(self.spawner.worker, _CommandWorker) and returncode == 0
        if finished or command_done:
            text = "scenario finished its steps" if finished else "command exited with code 0"
            self.record("exit", child, text)
            self.close(child, returncode, "finished" if finished else "exited")
            return _Ending("finished" if finished else "exited", text), child
        return self.crashed(child, returncode)

    def crashed(self, child: _Child, returncode: int) -> tuple[_Ending | None, _Child]:
        now = self.now_s()
        last = (
            ""
            if child.last_rss_bytes is None
            else f", last memory {format_size(child.last_rss_bytes)}"
        )
        self.record("crash", child, f"{describe_returncode(returncode)}{last}")
        self.close(child, returncode, "crashed")
        self.crash_times.append(now)
        while self.crash_times and now - self.crash_times[0] > self.spawner.restart_window_s:
            self.crash_times.popleft()
        if len(self.crash_times) > self.spawner.max_restarts:
            window = self.spawner.restart_window_s
            text = (
                f"crash loop: {len(self.crash_times)} crashes within {window:g} s "
                f"(at most {self.spawner.max_restarts} restarts); "
                f"last {describe_returncode(returncode)}"
            )
            return _Ending("crash-loop", text), child
        return None, self.start(child.profile, child.step or 0, "start")

    def close(self, child: _Child, returncode: int | None, ended: str) -> None:
        self.curve.flush(self.judge)
        child.close()
        self.live.remove(child)
        ready = child.ready or {}
        final = child.final or {}
        self.records.append(
            ChildRecord(
                generation=child.generation,
                pid=child.pid,
                profile=child.profile,
                started_s=child.started_s,
                ended_s=self.now_s(),
                returncode=returncode,
                ended=ended,
                peak_rss_bytes=child.peak_rss_bytes,
                last_rss_bytes=child.last_rss_bytes,
                max_pressure=child.max_level,
                config=ready.get("config"),
                loaded_objects=ready.get("loaded"),
                trimmed_objects=ready.get("trimmed"),
                final_objects=final.get("objects"),
                first_step=child.first_step,
                final_step=final.get("step"),
            )
        )

    def finish(self, ending: _Ending) -> None:
        """Stop every child still running (the ``exit`` event), whatever ended the run.

        Usually one; two when an exception (a Ctrl-C) came in the middle of a
        handover.  The newest is stopped first: it is the one doing the work.
        """
        for child in reversed(list(self.live)):
            self.stop_child(child, "exit", ending.text)

    def result(self, ending: _Ending) -> SpawnResult:
        return SpawnResult(
            end_cause=ending.cause,
            ended=ending.text,
            events=tuple(self.events),
            event_counts=dict(self.event_counts),
            children=tuple(self.records),
            peak_rss_bytes=self.curve.peak_rss_bytes,
            max_pressure=self.max_level,
            final_level=self.level,
            thresholds=self.spawner.thresholds,
            basis=self.spawner.basis,
            baseline_bytes=self.judge.baseline_bytes or 0,
            duration_s=self.now_s(),
            events_path=self.spawner.events_path,
        )


def _judged(times_ns: Sequence[int], rss_bytes: Sequence[int], child: _Child) -> list[int]:
    """The readings of ``child`` its pressure is judged on (see ``_Child.judged_from_ns``)."""
    start, end = child.judged_from_ns, child.judged_until_ns
    return [
        rss
        for t_ns, rss in zip(times_ns, rss_bytes, strict=True)
        if t_ns >= start and (end is None or t_ns < end)
    ]


def _message(line: bytes) -> dict[str, Any] | None:
    """A status line as the child wrote it; anything else (a scenario writing
    to a descriptor it should not) is ignored rather than trusted."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "kind" in message else None
