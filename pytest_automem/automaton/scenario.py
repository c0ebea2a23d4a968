"""The scenario runner: steps of work on an automaton, under the monitor.

A *scenario* is a callable ``scenario(automaton, step)`` doing one step of
work (``step`` counts from 0).  :func:`run_scenario` runs ``warmup +
iterations`` steps inside one measurement window.  After every step it:

1. hands the automaton's policies the memory now (``on_step_boundary`` of a
   :class:`MemoryOptimizedAutomaton`), so trims and GCs happen between
   steps, never in the middle of one;
2. collects garbage and records the *retained* memory above the baseline,
   twice: resident memory (what the OS sees) and the allocators' in-use
   bytes (which see a leak that refills memory freed earlier — after a long
   test session there is a lot of that, and RSS would not move).

The leak verdict is the robust (Theil–Sen) slope of retained memory over the
iterations after warm-up — the smaller of the slopes of the two halves, so
only growth sustained through the whole run counts — and of RSS and heap, the
larger: a cache that fills once adds no slope, and one outlier step cannot
make one.
"""

from __future__ import annotations

import array
import contextlib
import gc
import importlib
import importlib.util
import inspect
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.defaults import SCENARIO_ITERATIONS, SCENARIO_WARMUP, THEIL_SEN_MAX_POINTS
from ..base.stats import theil_sen_slope
from ..base.units import format_size, is_count
from ..measure._platform import heap_bytes
from ..measure.monitor import MeasurementWindow, MemoryMonitor
from ..measure.pressure import (
    MeasurementBasis,
    PressureLevel,
    PressureThresholds,
    measured_bytes,
)
from ..measure.window_result import WindowResult
from .policies import MemoryOptimizedAutomaton, OptimizationConfig, short_repr
from .store import Automaton

__all__ = [
    "MAX_STEPS",
    "PolicyAction",
    "Scenario",
    "ScenarioLoadError",
    "ScenarioResult",
    "load_scenario",
    "run_scenario",
]

Scenario = Callable[[Automaton, int], object]

MAX_STEPS = 1_000_000
"""The most ``warmup + iterations`` a run takes.

The runner keeps two 8-byte figures per step (16 MB at this bound) and
collects garbage after every step, so a million steps is already hours of
run; a larger count is a typo, and would otherwise fail only on allocation.
"""


@dataclass(frozen=True)
class PolicyAction:
    """What the automaton's policies did at one step boundary, stamped by the
    runner: when (``time.monotonic_ns()``, the sampler's clock), resident
    memory before and after, and each action as ``kind: reason``.

    The automaton's own events carry its clock and memory on the run's
    basis; these are on the window's time axis and in RSS, so a kept curve
    (``--automem-samples``) can mark them where they happened.
    """

    started_ns: int
    ended_ns: int
    rss_before_bytes: int
    rss_after_bytes: int
    #: ``trim`` when the boundary trimmed objects, else ``gc``.
    kind: str
    detail: str


@dataclass(frozen=True)
class ScenarioResult:
    """What a scenario run retained, peaked at and triggered.

    ``retained_bytes[i]`` is resident memory above the run's baseline after
    step ``i`` and a ``gc.collect()``; the first ``warmup`` entries are the
    warm-up steps.  ``heap_bytes[i]`` is the allocators' in-use bytes above
    their baseline at the same point (empty where they cannot be read).
    RSS climbing while the heap does not means growth outside the
    allocators (a C extension's own mmaps, fragmentation).
    ``leak_bytes_per_iteration`` is the larger of the two slopes.
    """

    name: str
    iterations: int
    warmup: int
    retained_bytes: tuple[int, ...]
    heap_bytes: tuple[int, ...]
    rss_leak_bytes_per_iteration: float
    heap_leak_bytes_per_iteration: float | None
    leak_bytes_per_iteration: float
    peak_bytes: int
    max_pressure: PressureLevel
    pressure_distribution: dict[str, float]
    trims: int
    gc_runs: int
    events: tuple[dict[str, Any], ...]
    final_objects: int
    final_history: int
    duration_s: float
    window: WindowResult = field(repr=False, compare=False)
    #: The policies' trims and GCs on the window's time axis, with their effect.
    policy_actions: tuple[PolicyAction, ...] = field(default=(), repr=False, compare=False)

    @property
    def samples(self) -> int:
        """Monitor samples taken during the run."""
        return self.window.samples

    @property
    def growth_bytes(self) -> int:
        """Retained memory after the last step, above the baseline."""
        return self.retained_bytes[-1] if self.retained_bytes else 0

    def describe(self) -> str:
        """One line for messages and the terminal."""
        return (
            f"{self.name}: {format_size(self.leak_bytes_per_iteration)}/iteration over "
            f"{self.iterations} iterations after {self.warmup} warm-up, peak "
            f"{format_size(self.peak_bytes)}, max pressure {self.max_pressure.name}, "
            f"{self.trims} trims, {self.gc_runs} GCs"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, for JSON results and xdist."""
        return {
            "name": self.name,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "leak_bytes_per_iteration": self.leak_bytes_per_iteration,
            "rss_leak_bytes_per_iteration": self.rss_leak_bytes_per_iteration,
            "heap_leak_bytes_per_iteration": self.heap_leak_bytes_per_iteration,
            "growth_bytes": self.growth_bytes,
            "peak_bytes": self.peak_bytes,
            "max_pressure": self.max_pressure.name,
            "pressure_distribution": dict(self.pressure_distribution),
            "trims": self.trims,
            "gc_runs": self.gc_runs,
            "final_objects": self.final_objects,
            "final_history": self.final_history,
            "duration_s": self.duration_s,
            "retained_bytes": list(self.retained_bytes),
            "heap_bytes": list(self.heap_bytes),
            "events": [dict(e) for e in self.events],
            "measurement": self.window.to_dict(),
        }


def _leak_slope(retained: tuple[int, ...], warmup: int) -> float:
    """Bytes retained per iteration after warm-up, sustained over the whole run.

    The Theil–Sen slope of each half of the iterations, and the smaller of
    the two.  A leak retains memory every iteration, so both halves climb.
    A one-time retention (a cache filled once, late) is a level shift: it
    lies in at most one half, and the other half's slope is flat.  Theil–Sen
    over the whole run would not do: a level shift in the middle makes over
    half of its pairwise slopes positive.  Within a half, Theil–Sen follows
    the page-sized staircase of RSS and ignores single outliers.
    """
    after = retained[warmup:]
    if len(after) < 2:
        return 0.0
    if len(after) < 8:
        return _slope(after, 0)
    middle = len(after) // 2
    return min(_slope(after[:middle], 0), _slope(after[middle:], middle))


def _slope(values: tuple[int, ...], offset: int) -> float:
    """Theil–Sen slope of ``values`` at x = offset, offset+1, …, subsampled if long."""
    step = max(1, -(-len(values) // THEIL_SEN_MAX_POINTS))
    xs = list(range(0, len(values), step))
    slope = theil_sen_slope([values[i] for i in xs], [offset + i for i in xs])
    return 0.0 if slope is None else float(slope)


def _check_scenario(scenario: object) -> None:
    """Refuse a scenario that cannot be called as ``scenario(automaton, step)``.

    Checked before the first step: otherwise a one-argument ``lambda step:``
    ends in a TypeError from deep inside the runner that names neither the
    scenario nor what it should take.  Callables whose signature Python
    cannot read (some built-ins) are left to the call.
    """
    if not callable(scenario):
        raise TypeError(
            f"run_scenario: the scenario must be a function called as scenario(automaton, step), "
            f"got {short_repr(scenario)}"
        )
    try:
        signature = inspect.signature(scenario)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, 0)
    except TypeError as exc:
        raise TypeError(
            f"run_scenario: scenario {_scenario_name(scenario)}{signature} takes the wrong "
            f"arguments ({exc}): a scenario is called as scenario(automaton, step), "
            "step counting from 0"
        ) from None


def _check_arguments(iterations: int, warmup: int, config: OptimizationConfig | None) -> None:
    """Reject bad arguments before the first step, each in one line naming it."""
    for name, value in (("iterations", iterations), ("warmup", warmup)):
        if not is_count(value):
            raise ValueError(f"run_scenario: {name} must be an int >= 0, got {short_repr(value)}")
        if value > MAX_STEPS:
            raise ValueError(
                f"run_scenario: {name} must be <= {MAX_STEPS}, got {short_repr(value)}"
            )
    if iterations < 2:
        raise ValueError(
            f"run_scenario: iterations must be >= 2 to measure a slope, got {iterations}"
        )
    if warmup + iterations > MAX_STEPS:
        raise ValueError(
            f"run_scenario: warmup + iterations must be <= {MAX_STEPS}, got {warmup} + {iterations}"
        )
    if config is not None and not isinstance(config, OptimizationConfig):
        raise ValueError(
            f"run_scenario: config must be an OptimizationConfig or None, "
            f"got {type(config).__name__}"
        )


@contextlib.contextmanager
def _automaton_for(
    automaton: Automaton | None, config: OptimizationConfig | None
) -> Iterator[Automaton]:
    """The automaton to run on: the caller's, or a fresh one in a temp folder.

    A fresh one is a :class:`MemoryOptimizedAutomaton` when ``config`` is
    given (policies on), else a plain :class:`Automaton` (no policies).
    """
    if automaton is not None:
        if config is not None:
            own = getattr(automaton, "config", None)
            if own is None:
                raise ValueError(
                    "run_scenario: config= applies policies, which a plain Automaton does not "
                    "have; pass a MemoryOptimizedAutomaton or omit automaton="
                )
            if own != config:
                raise ValueError(
                    "run_scenario: config= differs from the automaton's own config; "
                    "pass one or the other"
                )
        yield automaton
        return
    with tempfile.TemporaryDirectory(prefix="automem-scenario-") as folder:
        path = Path(folder) / "automaton.jsonl"
        yield MemoryOptimizedAutomaton(path, config) if config is not None else Automaton(path)


def _scenario_name(scenario: Scenario) -> str:
    module = getattr(scenario, "__module__", None) or "?"
    name = getattr(scenario, "__qualname__", None) or type(scenario).__name__
    return f"{module}:{name}"


def run_scenario(
    scenario: Scenario,
    *,
    automaton: Automaton | None = None,
    iterations: int = SCENARIO_ITERATIONS,
    warmup: int = SCENARIO_WARMUP,
    config: OptimizationConfig | None = None,
    thresholds: PressureThresholds | None = None,
    monitor: MemoryMonitor | None = None,
    basis: MeasurementBasis = MeasurementBasis.RELATIVE,
    name: str | None = None,
) -> ScenarioResult:
    """Run ``scenario`` for ``warmup + iterations`` steps under the monitor.

    ``monitor``: a running :class:`MemoryMonitor` of this process to reuse
    (the pytest fixture passes the session's); without one, a monitor is
    started for this call.  Pressure and the policies' memory reading are on
    ``basis`` — above the run's baseline by default.
    """
    _check_scenario(scenario)
    _check_arguments(iterations, warmup, config)
    thresholds = thresholds or PressureThresholds()
    with contextlib.ExitStack() as stack:
        if monitor is None:
            monitor = stack.enter_context(MemoryMonitor())
        target = stack.enter_context(_automaton_for(automaton, config))
        return _run(
            scenario, target, monitor, iterations, warmup, thresholds, basis,
            name or _scenario_name(scenario),
        )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow


def _run(
    scenario: Scenario,
    automaton: Automaton,
    monitor: MemoryMonitor,
    iterations: int,
    warmup: int,
    thresholds: PressureThresholds,
    basis: MeasurementBasis,
    name: str,
) -> ScenarioResult:
    boundary = getattr(automaton, "on_step_boundary", None)
    counts_before = dict(getattr(automaton, "event_counts", {}))
    events_before = list(getattr(automaton, "events", ()))
    steps = warmup + iterations
    # Preallocated before the baseline, so the runner's own bookkeeping (16 MB
    # at MAX_STEPS) counts in neither the growth nor the peak.
    retained = array.array("q", bytes(8 * steps))
    heap = array.array("q", bytes(8 * steps))
    actions: list[PolicyAction] = []
    window = monitor.window(thresholds=thresholds, basis=basis)
    started = time.perf_counter()
    heap_baseline = heap_bytes()
    done = 0
    try:
        for step in range(steps):
            scenario(automaton, step)
            if boundary is not None:
                boundary_ns = time.monotonic_ns()
                rss = window.current_rss_bytes()
                now = measured_bytes(rss, window.baseline_bytes, basis)
                caused = boundary(now, thresholds.classify(now))
                action = _policy_action(caused or [], boundary_ns, rss, window)
                if action is not None:
                    actions.append(action)
            gc.collect()
            retained[step] = window.current_rss_bytes() - window.baseline_bytes
            if heap_baseline is not None:
                heap[step] = (heap_bytes() or heap_baseline) - heap_baseline
            done = step + 1
    finally:
        result = window.stop()
    retained_bytes = tuple(retained[:done])
    heap_retained = tuple(heap[:done]) if heap_baseline is not None else ()
    counts = _counts_since(counts_before, getattr(automaton, "event_counts", {}))
    events = tuple(
        e.to_dict() for e in _new_events(events_before, getattr(automaton, "events", []))
    )
    rss_slope = _leak_slope(retained_bytes, warmup)
    heap_slope = _leak_slope(heap_retained, warmup) if heap_retained else None
    return ScenarioResult(
        name=name,
        iterations=iterations,
        warmup=warmup,
        retained_bytes=retained_bytes,
        heap_bytes=heap_retained,
        rss_leak_bytes_per_iteration=rss_slope,
        heap_leak_bytes_per_iteration=heap_slope,
        leak_bytes_per_iteration=max(rss_slope, heap_slope or 0.0),
        peak_bytes=result.peak_bytes,
        max_pressure=result.max_pressure,
        pressure_distribution=result.pressure_distribution,
        trims=counts.get("trim", 0),
        gc_runs=counts.get("gc", 0),
        events=events,
        final_objects=len(automaton.objects),
        final_history=len(automaton.execution_history),
        duration_s=time.perf_counter() - started,
        window=result,
        policy_actions=tuple(actions),
    )


def _policy_action(
    caused: list[Any], started_ns: int, rss_before: int, window: MeasurementWindow
) -> PolicyAction | None:
    """One boundary's trims and GCs (their save is part of the trim); None if none."""
    done = [event for event in caused if getattr(event, "kind", None) in ("trim", "gc")]
    if not done:
        return None
    return PolicyAction(
        started_ns=started_ns,
        ended_ns=time.monotonic_ns(),
        rss_before_bytes=rss_before,
        rss_after_bytes=window.current_rss_bytes(),
        kind="trim" if any(event.kind == "trim" for event in done) else "gc",
        detail="automaton policy: "
        + "; ".join(f"{event.kind} {event.count} ({event.reason})" for event in done),
    )


def _counts_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {kind: total - before.get(kind, 0) for kind, total in after.items()}


def _new_events(before: list[Any], after: list[Any]) -> list[Any]:
    """Events logged during the run (the log is bounded, so compare identities)."""
    seen = {id(event) for event in before}
    return [event for event in after if id(event) not in seen]


class ScenarioLoadError(ValueError):
    """A ``module:function`` or ``file.py:function`` spec that cannot be loaded."""


def load_scenario(spec: str) -> Scenario:
    """Load a scenario named ``module:function`` or ``path/to/file.py:function``."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ScenarioLoadError(
            f"invalid scenario {spec!r}: expected module:function or path/to/file.py:function"
        )
    module = (
        _load_file(spec, Path(target)) if target.endswith(".py") else _load_module(spec, target)
    )
    scenario = module
    for part in attribute.split("."):
        scenario = getattr(scenario, part, None)
        if scenario is None:
            raise ScenarioLoadError(f"scenario {spec!r}: {target} has no attribute {attribute!r}")
    if not callable(scenario):
        raise ScenarioLoadError(f"scenario {spec!r}: {attribute} is not callable")
    return scenario  # type: ignore[return-value]


def _load_module(spec: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a module may raise anything while importing
        raise ScenarioLoadError(f"scenario {spec!r}: cannot import {name}: {exc!r}") from None


def _load_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise ScenarioLoadError(f"scenario {spec!r}: no such file {path}")
    module_name = f"automem_scenario_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ScenarioLoadError(f"scenario {spec!r}: cannot load {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ScenarioLoadError(f"scenario {spec!r}: {path} failed to import: {exc!r}") from None
    return module
