"""Benchmark: what a budgeted test's order-independent measurement costs.

Run with ``python benchmarks/fresh_allocator.py`` (``--rounds``).  A test
with a budget gets a window opened with ``fresh_allocator``: glibc's free
memory is handed back, growth is what the allocators' live bytes gained,
and the call is traced when the allocators cached more than 5 % of its peak
limit (:mod:`pytest_automem.measure.allocator`).  Printed, measured side by side in
one run:

* the cost of opening and closing an empty window plain, with the fresh
  allocator, and with the fresh allocator tracing, in the allocator state a
  short session leaves and after a test freed 600,000 small objects while
  keeping every 500th (about 100 MB kept by pymalloc);
* the peak and growth of a call that builds ~48 MB of small objects and
  drops them, in both states and the three modes: the figures a verdict is
  judged on, and what the call then takes.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.measure.monitor import MeasurementWindow, MemoryMonitor

MB = 1 << 20


def _build_and_drop() -> None:
    built = [(i, str(i)) for i in range(300_000)]
    del built


#: The modes compared: (label, fresh_allocator, trace_peak_above_bytes).
_MODES = (("plain", False, None), ("fresh", True, None), ("fresh+traced", True, 0))


def _window(monitor: MemoryMonitor, fresh: bool, trace_above: int | None) -> MeasurementWindow:
    return monitor.window(fresh_allocator=fresh, trace_peak_above_bytes=trace_above)


def _empty_window_ms(
    monitor: MemoryMonitor, fresh: bool, trace_above: int | None, rounds: int
) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        _window(monitor, fresh, trace_above).stop()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _call(
    monitor: MemoryMonitor, fresh: bool, trace_above: int | None
) -> tuple[float, float, float]:
    start = time.perf_counter()
    window = _window(monitor, fresh, trace_above)
    _build_and_drop()
    result = window.stop()
    return result.peak_bytes / MB, result.growth_bytes / MB, (time.perf_counter() - start) * 1e3


def _fragment_pymalloc() -> list[dict[str, int]]:
    objects = [{"i": i} for i in range(600_000)]
    survivors = objects[::500]
    del objects
    gc.collect()
    return survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with MemoryMonitor() as monitor:
        print("state                     mode           empty window (median)")
        for label, fresh, trace in _MODES:
            ms = _empty_window_ms(monitor, fresh, trace, args.rounds)
            print(f"short session             {label:13}  {ms:8.3f} ms")
        clean = {label: _call(monitor, fresh, trace) for label, fresh, trace in _MODES}
        survivors = _fragment_pymalloc()
        for label, fresh, trace in _MODES:
            ms = _empty_window_ms(monitor, fresh, trace, max(3, args.rounds // 10))
            print(f"100 MB kept by pymalloc   {label:13}  {ms:8.3f} ms")
        print()
        print("call building ~48 MB       mode            peak MB  growth MB  window ms")
        for label, _, _ in _MODES:
            peak, growth, ms = clean[label]
            print(f"  in a short session       {label:13} {peak:8.1f} {growth:10.2f} {ms:10.1f}")
        for label, fresh, trace in _MODES:
            peak, growth, ms = _call(monitor, fresh, trace)
            print(f"  after the frees          {label:13} {peak:8.1f} {growth:10.2f} {ms:10.1f}")
        del survivors


if __name__ == "__main__":
    main()
