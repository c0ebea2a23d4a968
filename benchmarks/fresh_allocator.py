"""Benchmark: what a budgeted test's order-independent measurement costs.

Run with ``python benchmarks/fresh_allocator.py`` (``--rounds``).  A test
with a budget gets a window opened with ``fresh_allocator``: glibc's free
memory is handed back, pymalloc's free blocks are held for the length of the
call (:mod:`pytest_automem.allocator`) and growth is what the allocators'
live bytes gained.  Printed, measured side by side in one run:

* the cost of opening and closing an empty window with and without the
  fresh allocator, in the allocator state a short pytest session leaves
  (a few MB cached), and after a test freed 600,000 small objects while
  keeping every 500th (about 100 MB kept by pymalloc);
* in that second state, the peak and growth of a call that builds ~48 MB of
  small objects and drops them, with and without the fresh allocator, and
  the same call in the first state: the figure a verdict is judged on.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.monitor import MemoryMonitor

MB = 1 << 20


def _build_and_drop() -> None:
    built = [(i, str(i)) for i in range(300_000)]
    del built


def _empty_window_ms(monitor: MemoryMonitor, fresh: bool, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        monitor.window(fresh_allocator=fresh).stop()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _call(monitor: MemoryMonitor, fresh: bool) -> tuple[float, float, float]:
    start = time.perf_counter()
    window = monitor.window(fresh_allocator=fresh)
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
        print("state                     fresh  empty window (median)")
        for fresh in (False, True):
            ms = _empty_window_ms(monitor, fresh, args.rounds)
            print(f"short session             {fresh!s:5}  {ms:8.3f} ms")
        clean = {fresh: _call(monitor, fresh) for fresh in (False, True)}
        survivors = _fragment_pymalloc()
        for fresh in (False, True):
            ms = _empty_window_ms(monitor, fresh, max(3, args.rounds // 10))
            print(f"100 MB kept by pymalloc   {fresh!s:5}  {ms:8.3f} ms")
        print()
        print("call building ~48 MB        fresh   peak MB  growth MB  window ms")
        for fresh in (False, True):
            peak, growth, ms = clean[fresh]
            print(f"  in a short session        {fresh!s:5} {peak:8.1f} {growth:10.2f} {ms:10.1f}")
        for fresh in (False, True):
            peak, growth, ms = _call(monitor, fresh)
            print(f"  after the frees           {fresh!s:5} {peak:8.1f} {growth:10.2f} {ms:10.1f}")
        del survivors


if __name__ == "__main__":
    main()
