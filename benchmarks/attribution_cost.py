"""Benchmark: what allocation attribution costs, per step and per verdict.

Run with ``python benchmarks/attribution_cost.py`` (``--steps``, ``--rounds``,
``--traces`` to change the sizes).  Figures printed, all measured side by side
in one run:

* time per step of a leaking scenario (each step appends 100 small dicts to
  a list) with no tracing, and under ``tracemalloc`` with 1, 10 (the
  investigator's default) and 25 frames — the modes run round-robin, each
  round on a fresh list, and the table gives the median over the rounds with
  the ratio against no tracing;
* the cost of one attribution point with about ``--traces`` live traces:
  ``AllocationTracer.stop()`` (``gc.collect()``, snapshot, grouping by
  site, diff, the types of the live objects at the sites that grew), its
  parts, and the standard library's own ``take_snapshot`` +
  ``compare_to("lineno")`` for comparison;
* what a verdict pays: the bundled leaking example (``examples/event_log.py``,
  100 iterations after 10 warm-up) measured by ``run_scenario`` without
  tracing, then attributed by ``attribute_scenario`` (5 traced steps after 1
  warm-up), which is what a test over its ``leak_per_iteration`` budget adds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.investigator.attribution import (
    AllocationTracer,
    _raw_traces,
)

T = TypeVar("T")
DICTS_PER_STEP = 100
MODES: tuple[tuple[str, int | None], ...] = (
    ("no tracing", None),
    ("tracemalloc frames=1", 1),
    ("frames=10 (default)", 10),
    ("frames=25", 25),
)


def leaking_step(leak: list[dict[str, object]], step: int) -> None:
    """One step of the scenario: 100 small dicts retained."""
    for n in range(DICTS_PER_STEP):
        leak.append({"step": step, "n": n, "name": f"item-{step}-{n}"})


def at_depth(depth: int, action: Callable[[], float]) -> float:
    """Run ``action`` ``depth`` Python frames deeper, as a test runs under pytest."""
    return action() if depth <= 0 else at_depth(depth - 1, action)


def time_steps(steps: int, frames: int | None, depth: int) -> float:
    """Seconds per step over ``steps`` steps on a fresh list, traced with ``frames``."""
    leak: list[dict[str, object]] = []

    def run() -> float:
        started = time.perf_counter()
        for step in range(steps):
            leaking_step(leak, step)
        return time.perf_counter() - started

    gc.collect()
    if frames is not None:
        tracemalloc.start(frames)
    try:
        elapsed = at_depth(depth, run)
    finally:
        if frames is not None:
            tracemalloc.stop()
    return elapsed / steps


def per_step_table(steps: int, rounds: int, depth: int) -> None:
    results: dict[str, list[float]] = {name: [] for name, _ in MODES}
    time_steps(steps // 10 or 1, None, depth)  # warm up the interpreter and the allocator
    for _ in range(rounds):
        for name, frames in MODES:
            results[name].append(time_steps(steps, frames, depth))
    base = statistics.median(results[MODES[0][0]])
    print(
        f"Leaking scenario: {DICTS_PER_STEP} dicts retained per step, {steps} steps "
        f"per round, {depth} frames deep, median of {rounds} rounds (round-robin)"
    )
    print(f"  {'mode':<24} {'µs/step':>10} {'× no tracing':>14}")
    for name, _ in MODES:
        median = statistics.median(results[name])
        print(f"  {name:<24} {median * 1e6:>10.1f} {median / base:>13.1f}×")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def point_cost(traces: int, repeat: int) -> None:
    steps = max(1, traces // (DICTS_PER_STEP * 3))  # a dict, its name and an int: 3 blocks
    stops, counted, stdlib_snapshot, stdlib_compare = [], [], [], []
    reduce_times, type_times, gc_times = [], [], []
    sites = 0
    for _ in range(repeat):
        leak: list[dict[str, object]] = []
        tracer = AllocationTracer(frames=10)
        tracer.start()
        try:
            first = tracemalloc.take_snapshot()
            for step in range(steps):
                leaking_step(leak, step)
            counted.append(len(tracemalloc.take_snapshot().traces))
            # The parts of stop(), each on its own (under tracing, as in stop()).
            gc_times.append(timed(gc.collect)[0])
            snap_s, second = timed(tracemalloc.take_snapshot)
            stdlib_snapshot.append(snap_s)
            reduce_s, reduced = timed(lambda t=tracer, s=second: t._reduce(_raw_traces(s)))
            reduce_times.append(reduce_s)
            assert tracer._before is not None
            keys = {key for _, _, key in tracer._grown(tracer._before, reduced)}
            type_times.append(timed(lambda t=tracer, k=keys: t._types_at(k))[0])
            stdlib_compare.append(timed(lambda s=second, f=first: s.compare_to(f, "lineno"))[0])
            del first, second
            stop_s, attribution = timed(tracer.stop)
        finally:
            # Only stops tracing if stop() did not get to (close() after a result is a no-op).
            tracer.close()
        stops.append(stop_s)
        sites = attribution.total_sites
        del leak
    ms = 1e3
    print(
        f"\nOne attribution point with ~{statistics.median(counted):,.0f} live traces "
        f"(frames=10, median of {repeat}; {sites} sites grew)"
    )
    print(f"  {'AllocationTracer.stop() in all':<44} {statistics.median(stops) * ms:>8.1f} ms")
    rows = (
        ("  gc.collect()", gc_times),
        ("  types of the objects at grown sites", type_times),
        ("  tracemalloc.take_snapshot()", stdlib_snapshot),
        ("  group by site (ours, one snapshot)", reduce_times),
        ("for comparison: stdlib compare_to(lineno)", stdlib_compare),
    )
    for label, values in rows:
        print(f"  {label:<44} {statistics.median(values) * ms:>8.1f} ms")
    print("  (all measured under tracing with 10 frames, as inside stop())")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per round and mode")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
    parser.add_argument("--traces", type=int, default=100_000, help="live traces at stop()")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the stop() timing")
    parser.add_argument(
        "--depth", type=int, default=30, help="extra frames under the step (pytest: ~33)"
    )
    args = parser.parse_args(argv)
    if tracemalloc.is_tracing():
        print("tracemalloc is already tracing (PYTHONTRACEMALLOC?); unset it", file=sys.stderr)
        return 2
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    per_step_table(args.steps, args.rounds, args.depth)
    point_cost(args.traces, args.repeat)
    verdict_cost(args.rounds)
    return 0


def verdict_cost(rounds: int) -> None:
    """The leaking example: measuring it vs attributing its leak once it failed."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import tempfile

    from event_log import record_events

    from pytest_automem import Automaton, MemoryMonitor, run_scenario
    from pytest_automem.investigator import attribute_scenario

    measure_s, attribute_s, located = [], [], ""
    with MemoryMonitor() as monitor, tempfile.TemporaryDirectory() as folder:
        for number in range(rounds):
            automaton = Automaton(Path(folder) / f"a{number}.jsonl")
            started = time.perf_counter()
            result = run_scenario(record_events, automaton=automaton, monitor=monitor)
            measure_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            attribution = attribute_scenario(record_events, automaton, start_step=110)
            attribute_s.append(time.perf_counter() - started)
            located = attribution.sites[0].location() if attribution.sites else "(none)"
    measured, attributed = statistics.median(measure_s), statistics.median(attribute_s)
    print(f"\nleaking example, median of {rounds}: leak {result.describe()}")
    print(f"  run_scenario, 110 steps, no tracing      {measured * 1e3:8.1f} ms")
    print(
        f"  attribute_scenario, 6 traced steps       {attributed * 1e3:8.1f} ms "
        f"({attributed / measured:.2f}x the measurement)"
    )
    print(f"  top site: {located}")


if __name__ == "__main__":
    sys.exit(main())
