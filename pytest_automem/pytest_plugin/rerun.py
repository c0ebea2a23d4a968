"""A failing call run once more under tracing, to say where it grew.

The first run of a test's call is not traced: tracing would slow every
passing test.  When the call fails its growth budget, this runs it once
more, with the same fixture values, under ``tracemalloc`` and in a window
of its own; the investigator (:mod:`pytest_automem.investigator.rerun`)
reads the outcome.  Only failing tests pay, and the report says the
figures come from a re-run.  The ini setting ``automem_rerun_failures =
false`` turns it off for suites whose tests cannot run twice.
"""

from __future__ import annotations

import functools
import gc
import sys
import tracemalloc

import pytest

from ..investigator.attribution import AllocationTracer
from ..investigator.rerun import CacheUse, Rerun
from ..measure.garbage import GcMode
from ..measure.monitor import MemoryMonitor
from ..measure.pressure import PressureThresholds

__all__ = ["rerun_traced"]

#: What a re-run must let through: pytest's and the interpreter's own ends.
_PASSED_ON = (KeyboardInterrupt, SystemExit, GeneratorExit)
#: Caches of these top-level modules are the interpreter's and the harness's
#: (``re``'s compiled patterns, say), not what the test filled.
_NOT_THE_USERS = frozenset(sys.stdlib_module_names) | {
    "_pytest",
    "pytest",
    "pluggy",
    "pytest_automem",
}


def rerun_traced(
    item: pytest.Item,
    monitor: MemoryMonitor,
    *,
    first_growth_bytes: int,
    thresholds: PressureThresholds,
    gc_mode: GcMode,
) -> Rerun:
    """Run ``item``'s call once more under tracing and measure what it kept."""
    caches_before = _lru_caches()
    tracer = AllocationTracer()
    tracer.start()
    tracing_bytes = tracemalloc.get_tracemalloc_memory()
    window = monitor.window(thresholds=thresholds, collect_garbage=gc_mode)
    try:
        item.runtest()
    except BaseException as exc:  # the test's own failure, pytest's outcomes included
        window.stop()
        tracer.close()
        if isinstance(exc, _PASSED_ON):
            raise
        error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        return Rerun(first_growth_bytes, None, None, error=error.splitlines()[0])
    growth_bytes = window.stop().growth_bytes
    growth_bytes -= tracemalloc.get_tracemalloc_memory() - tracing_bytes
    attribution = tracer.stop()
    return Rerun(
        first_growth_bytes,
        growth_bytes,
        attribution,
        caches=_caches_used(caches_before, _lru_caches()),
    )


def _lru_caches() -> dict[int, tuple[functools._lru_cache_wrapper, int, int, int]]:
    """Every live ``lru_cache`` wrapper with its hits, misses and size now.

    The wrappers are kept (not their ids alone) so an id cannot be reused
    by another cache between the two looks.
    """
    caches = {}
    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            info = obj.cache_info()
            caches[id(obj)] = (obj, info.hits, info.misses, info.currsize)
    return caches


def _caches_used(
    before: dict[int, tuple[functools._lru_cache_wrapper, int, int, int]],
    after: dict[int, tuple[functools._lru_cache_wrapper, int, int, int]],
) -> tuple[CacheUse, ...]:
    """The caches the re-run called, with what it did to each."""
    used = []
    for key, (wrapper, hits, misses, entries) in after.items():
        _, hits_before, misses_before, _ = before.get(key, (wrapper, 0, 0, 0))
        if hits == hits_before and misses == misses_before:
            continue
        wrapped = getattr(wrapper, "__wrapped__", wrapper)
        module = str(getattr(wrapped, "__module__", "?"))
        if module.partition(".")[0] in _NOT_THE_USERS:
            continue
        name = f"{module}.{getattr(wrapped, '__qualname__', '?')}"
        used.append(
            CacheUse(
                function=name,
                hits=hits - hits_before,
                misses=misses - misses_before,
                entries=entries,
                max_entries=wrapper.cache_parameters()["maxsize"],
            )
        )
    used.sort(key=lambda cache: (-cache.entries, cache.function))
    return tuple(used)
