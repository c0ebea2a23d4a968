"""The memory monitor: one sampler per process, measurement windows on top.

:class:`MemoryMonitor` owns one sampler process for its whole life (a pytest
session, or one monitored child).  Each test or scenario opens a
:class:`MeasurementWindow`; closing it gives a frozen
:class:`~pytest_automem.measure.window_result.WindowResult`:
baseline and end (both after ``gc.collect()``), the exact peak, growth, growth
rate, pressure, and how all of it was measured.

Peaks: on Linux the kernel's resident high-water mark is reset when a window
opens and read when it closes, which catches spikes far shorter than any
sampling interval ("kernel-hwm").  Windows may nest (a scenario inside a
test); before a nested window resets the mark, the mark so far is folded into
every window already open, so the outer one keeps its peak.  Elsewhere the
peak is the sampler's maximum ("sampled").

:class:`SpanProbe` measures many short spans one after the other (the
calls of tests ``--automem`` alone monitors) with the same exact peak and
growth, and nothing else: no object per span, no samples, no statistics.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base.defaults import DEFAULT_CAPACITY, DEFAULT_INTERVAL_MS, DEFAULT_MAX_PROCESSES, KB, MB
from ..base.units import parse_interval_ms
from . import _platform
from .allocator import FreshHeap, HeapFigures
from .garbage import Collector, GcMode
from .pressure import (
    MeasurementBasis,
    PressureLevel,
    PressureThresholds,
    distribution_of_values,
    measured_bytes,
)
from .sampler_parent import SampleBlock, SamplerDiedError, SamplerProcess
from .window_result import WindowResult, growth_rate, interval_stats_ms

if TYPE_CHECKING:
    from .process_tree import TreeMemory, TreeReport
    from .stack_dumps import StackDump, StackRecorder

__all__ = [
    "HeadlineResult",
    "MeasurementWindow",
    "MemoryMonitor",
    "SamplerDiedError",
    "SpanProbe",
]

#: RSS growth at a window's end above which the allocator's free memory is
#: returned first.  Not below ``_LAZY_COLLECT_BYTES`` (``SpanProbe.close``).
_TRIM_TRIGGER_BYTES = 256 * KB
#: RSS growth at a window's end above which a window that did not collect
#: garbage at its start collects before the end is read (see ``_end_rss``).
_LAZY_COLLECT_BYTES = 64 * KB
#: RSS growth left after a lazy end's young collection from which a full
#: collection follows, if the interpreter ran an older one during the window
#: (``Collector.collect_lazily``): one pymalloc arena.
_FULL_COLLECT_BYTES = MB
_NOT_STARTED = "MemoryMonitor is not started: call start() or use it as a context"
#: How often (at most) windows ask the OS whether the sampler still lives.
_LIVENESS_CHECK_S = 0.05
#: Windows that collect no garbage share one collector: it never changes.
_NO_COLLECTION = Collector(GcMode.OFF)


@dataclass(frozen=True)
class HeadlineResult:
    """A window's headline figures, for phases and calls reported in brief.

    Made by :meth:`MeasurementWindow.stop_headline` for every measured setup
    and teardown, and by :meth:`SpanProbe.close_headline` for a short call
    whose record needs every results key.
    """

    peak_bytes: int
    growth_bytes: int
    duration_s: float
    samples: int
    peak_source: str
    gc_mode: str
    #: Judged on the peak, on the window's thresholds and basis.
    max_pressure: PressureLevel
    baseline_collected: bool = False
    #: From the span's samples, for a call whose record needs every results
    #: key (:meth:`SpanProbe.close_headline`); None otherwise.
    rate_bytes_per_s: float | None = None
    interval_p50_ms: float | None = None
    interval_p99_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "growth_bytes": self.growth_bytes,
            "max_pressure": self.max_pressure.name,
            "duration_s": self.duration_s,
            "samples": self.samples,
            "peak_source": self.peak_source,
            "gc_mode": self.gc_mode,
            "baseline_collected": self.baseline_collected,
            "rate_bytes_per_s": self.rate_bytes_per_s,
            "interval_p50_ms": self.interval_p50_ms,
            "interval_p99_ms": self.interval_p99_ms,
        }


def _end_rss(
    process: _platform.ProcessMemory,
    collector: Collector,
    baseline: int,
    baseline_collected: bool,
) -> int:
    """A window's RSS at its end, after collecting garbage and handing back
    freed memory the allocator kept.

    A window without a collected baseline collects only when RSS grew by
    more than :data:`_LAZY_COLLECT_BYTES`: a collection lowers RSS only
    by freeing whole pymalloc arenas (1 MiB) or blocks large enough for
    the allocator to hand back, so below that it would cost a collection
    to change nothing of the window's own (what it could free is older
    garbage, which would only make the growth look smaller).  Such a
    window collects young, and fully only when it still looks grown by
    :data:`_FULL_COLLECT_BYTES` or more (:meth:`Collector.collect_lazily`).
    glibc keeps freed memory mapped for reuse, so a test that allocated
    and freed 5 MB can look 5 MB bigger.  The trim (``malloc_trim``) is
    only done when RSS is up by more than
    :data:`_TRIM_TRIGGER_BYTES`.  A window opened with ``fresh_allocator``
    trimmed at its start too, so both ends are measured alike; one
    without may also hand back memory cached before it opened, so its
    growth errs low, never high.
    """
    if baseline_collected:
        collector.collect()
    else:
        end = process.rss_bytes()
        if end - baseline <= _LAZY_COLLECT_BYTES or collector is _NO_COLLECTION:
            return end  # nothing to collect, and too little growth to trim
        collector.collect_lazily(
            lambda: _trimmed_rss(process, collector, baseline) - baseline >= _FULL_COLLECT_BYTES
        )
    return _trimmed_rss(process, collector, baseline)


def _trimmed_rss(process: _platform.ProcessMemory, collector: Collector, baseline: int) -> int:
    """RSS once glibc handed back its free memory, if RSS is up enough to try."""
    end = process.rss_bytes()
    if end - baseline > _TRIM_TRIGGER_BYTES and collector.release_allocator_memory():
        end = process.rss_bytes()
    return end


class _OpenSpan:
    """What a window and a probe's span share: the monitor's handles, the
    baseline, where the samples start, and the mark nested windows fold in.

    Before a window resets the kernel's mark, the mark so far is folded into
    every open window and span (``MemoryMonitor._reset_peak``).
    """

    __slots__ = (
        "_collector",
        "_fresh",
        "_kernel_peak_so_far",
        "_monitor",
        "_process",
        "_sampler",
        "_start_count",
        "baseline_bytes",
        "opened_ns",
    )

    def _fold_kernel_peak(self, peak_rss_bytes: int) -> None:
        self._kernel_peak_so_far = max(self._kernel_peak_so_far, peak_rss_bytes)

    def _finish_fresh(self, end_rss_bytes: int) -> HeapFigures | None:
        """The allocator figures of a span opened with a fresh allocator (and release it)."""
        fresh, self._fresh = self._fresh, None
        return fresh.finish(self.baseline_bytes, end_rss_bytes) if fresh is not None else None

    def _release_fresh(self) -> None:
        if self._fresh is not None:
            self._fresh.release()
            self._fresh = None

    def _sampled_peak_rss(self, end_count: int) -> int:
        """The highest sample since the span opened: the peak where there is no kernel mark."""
        return max(self._sampler.read(self._start_count, end_count).rss_bytes, default=0)


class MeasurementWindow(_OpenSpan):
    """An open window over the monitor's samples; :meth:`stop` closes it.

    While open it answers live questions (current, peak so far, pressure so
    far) — that is what the ``memory_monitor`` fixture hands a test.
    """

    __slots__ = (
        "_baseline_collected",
        "_stacks_armed",
        "basis",
        "result",
        "stack_dumps",
        "thresholds",
    )

    def __init__(
        self,
        monitor: MemoryMonitor,
        thresholds: PressureThresholds,
        basis: MeasurementBasis,
        gc_mode: GcMode,
        fresh_allocator: bool = True,
        collect_at_start: bool = True,
        trace_peak_above_bytes: int | None = None,
        stacks_above_bytes: int | None = None,
        on_stack_dump: Callable[[], object] | None = None,
    ) -> None:
        # The sampler's liveness is asked of the OS only when due: windows
        # open for every measured phase.
        if (
            monitor._sampler_handle is None
            or not monitor._watches_itself
            or time.monotonic() - monitor._checked_at >= _LIVENESS_CHECK_S
        ):
            monitor._check()
        process = monitor._process_handle
        sampler = monitor._sampler_handle
        assert process is not None and sampler is not None  # checked: the monitor runs
        collector = _NO_COLLECTION if gc_mode is GcMode.OFF else Collector(gc_mode)
        if collect_at_start:
            collector.collect()
        fresh = _fresh_heap(monitor, collector, trace_peak_above_bytes) if fresh_allocator else None
        baseline = process.rss_bytes()
        monitor._reset_peak(process, baseline)
        self._set(
            monitor=monitor,
            thresholds=thresholds,
            basis=basis,
            collector=collector,
            baseline_bytes=baseline,
            start_count=sampler.write_count(),
            opened_ns=time.monotonic_ns(),
            baseline_collected=collect_at_start and collector.mode is not GcMode.OFF,
            kernel_peak_so_far=0,
            fresh=fresh,
        )
        if stacks_above_bytes is not None:
            trip_rss = stacks_above_bytes + (baseline if basis is MeasurementBasis.RELATIVE else 0)
            self._stacks_armed = monitor._arm_stacks(trip_rss, on_stack_dump)

    @classmethod
    def _continuing(
        cls, probe: SpanProbe, thresholds: PressureThresholds, basis: MeasurementBasis
    ) -> MeasurementWindow:
        """The span ``probe`` has open, as a window: same baseline, mark and samples."""
        window = cls.__new__(cls)
        window._set(
            monitor=probe._monitor,
            thresholds=thresholds,
            basis=basis,
            collector=probe._collector,
            baseline_bytes=probe.baseline_bytes,
            start_count=probe._start_count,
            opened_ns=probe.opened_ns,
            baseline_collected=False,
            kernel_peak_so_far=probe._kernel_peak_so_far,
            fresh=probe._fresh,
        )
        probe._fresh = None
        return window

    def _set(
        self,
        *,
        monitor: MemoryMonitor,
        thresholds: PressureThresholds,
        basis: MeasurementBasis,
        collector: Collector,
        baseline_bytes: int,
        start_count: int,
        opened_ns: int,
        baseline_collected: bool,
        kernel_peak_so_far: int,
        fresh: FreshHeap | None,
    ) -> None:
        self._monitor = monitor
        self._process = monitor._process_handle
        self._sampler = monitor._sampler_handle
        self.thresholds = thresholds
        self.basis = basis
        self._collector = collector
        self.baseline_bytes = baseline_bytes
        self._start_count = start_count
        #: ``time.monotonic_ns()`` when the window opened.
        self.opened_ns = opened_ns
        self._baseline_collected = baseline_collected
        self._kernel_peak_so_far = kernel_peak_so_far
        self._fresh = fresh
        self.result: WindowResult | None = None
        self._stacks_armed = False
        #: Every thread's stack when memory crossed ``stacks_above_bytes``, then
        #: at new highs (oldest first), filled by :meth:`stop`; None where no
        #: stacks were asked for or this monitor cannot record them.
        self.stack_dumps: tuple[StackDump, ...] | None = None

    # -- live view -----------------------------------------------------------

    def current_rss_bytes(self) -> int:
        """The process's resident memory now (read directly, not sampled)."""
        return self._monitor._process.rss_bytes()

    def current_bytes(self) -> int:
        """Memory now on this window's basis (above baseline when relative)."""
        return measured_bytes(self.current_rss_bytes(), self.baseline_bytes, self.basis)

    def samples(self) -> SampleBlock:
        """The samples taken since the window opened (a copy)."""
        end = self._monitor._sampler.write_count()
        return self._monitor._sampler.read(self._start_count, end)

    def peak_rss_bytes(self) -> int:
        """Highest resident memory seen so far (kernel peak where available).

        With a kernel peak this is two small reads; without one it scans the
        samples taken so far.
        """
        kernel = self._monitor._process.peak_rss_bytes()
        if kernel is None:
            kernel = max(self.samples().rss_bytes, default=0)
        return max(kernel, self._kernel_peak_so_far, self.baseline_bytes)

    def peak_bytes(self) -> int:
        """Peak so far relative to the baseline."""
        return self.peak_rss_bytes() - self.baseline_bytes

    def pressure(self) -> PressureLevel:
        """Pressure level of the memory right now."""
        return self.thresholds.classify(self.current_bytes())

    def max_pressure(self) -> PressureLevel:
        """Highest pressure level reached so far (judged on the peak)."""
        return self.thresholds.classify(
            measured_bytes(self.peak_rss_bytes(), self.baseline_bytes, self.basis)
        )

    # -- closing -------------------------------------------------------------

    def stop(self, *, exit_peak_rss_bytes: int | None = None) -> WindowResult:
        """Close the window and compute its result (idempotent).

        If the measured process has exited, the window ends at its last
        sample.  Its kernel peak then survives only in ``wait4``'s
        ``ru_maxrss``; a caller that reaped the process passes it as
        ``exit_peak_rss_bytes``.
        """
        if self.result is not None:
            return self.result
        monitor = self._monitor
        end_count = monitor._sampler.write_count()
        end_ns = time.monotonic_ns()
        monitor._forget(self)
        if self._stacks_armed:
            self.stack_dumps = monitor._take_stacks()
        try:
            monitor._check()
            kernel_peak = monitor._process.peak_rss_bytes()
            end_rss: int | None = _end_rss(
                self._process, self._collector, self.baseline_bytes, self._baseline_collected
            )
        except _platform.ProcessGoneError:
            kernel_peak, end_rss = exit_peak_rss_bytes, None
        block = monitor._sampler.read(self._start_count, end_count)
        heap = None
        if end_rss is None:
            self._release_fresh()
            end_rss = block.rss_bytes[-1] if len(block) else self.baseline_bytes
        else:
            heap = self._finish_fresh(end_rss)
        self.result = self._build_result(block, kernel_peak, end_rss, end_ns, heap)
        return self.result

    def stop_headline(self) -> HeadlineResult:
        """Close the window with its headline figures only (peak, growth, samples).

        No samples are copied and no statistics computed: a test's setup and
        teardown are measured thousands of times a session and only these
        figures are reported for them (the calls of tests ``--automem``
        alone monitors go through :class:`SpanProbe` instead).  Garbage is
        collected and the end measured per the window's mode, as in
        :meth:`stop`.  The sampler's liveness was checked when the window
        opened: no sample is read here unless the platform has no kernel peak.
        """
        monitor = self._monitor
        end_count = self._sampler.write_count()
        end_ns = time.monotonic_ns()
        monitor._forget(self)
        process = self._process
        kernel_peak = process.peak_rss_bytes()
        end_rss = _end_rss(process, self._collector, self.baseline_bytes, self._baseline_collected)
        heap = self._finish_fresh(end_rss)
        if kernel_peak is None:  # no kernel mark: the sampled maximum it is
            kernel_peak = self._sampled_peak_rss(end_count)
        baseline = self.baseline_bytes
        peak_rss = max(kernel_peak, self._kernel_peak_so_far, baseline, end_rss)
        self._kernel_peak_so_far = peak_rss
        peak, growth = _peak_and_growth(peak_rss, end_rss, baseline, heap)
        return HeadlineResult(
            peak_bytes=peak,
            growth_bytes=growth,
            duration_s=(end_ns - self.opened_ns) / 1e9,
            samples=end_count - self._start_count,
            peak_source=_peak_source(heap, peak, process.peak_source or "sampled"),
            gc_mode=self._collector.mode.value,
            max_pressure=self.thresholds.classify(
                measured_bytes(baseline + peak, baseline, self.basis)
            ),
            baseline_collected=self._baseline_collected,
        )

    def _build_result(
        self,
        block: SampleBlock,
        kernel_peak: int | None,
        end_rss: int,
        end_ns: int,
        heap: HeapFigures | None,
    ) -> WindowResult:
        sampled_peak = max(block.rss_bytes, default=0)
        if kernel_peak is not None:
            self._fold_kernel_peak(kernel_peak)
            if self._monitor.tree and not self._monitor._peak_is_per_process():
                kernel_peak = None  # a bound from below, not the tree's peak
        peak_rss = max(sampled_peak, self._kernel_peak_so_far, self.baseline_bytes, end_rss)
        peak, growth = _peak_and_growth(peak_rss, end_rss, self.baseline_bytes, heap)
        p50, p99, gap_max = interval_stats_ms(block.times_ns)
        offset = self.baseline_bytes if self.basis is MeasurementBasis.RELATIVE else 0
        measured = sorted(block.rss_bytes)
        if offset:
            measured = [value - offset for value in measured]
        return WindowResult(
            pid=self._monitor.pid,
            duration_s=(end_ns - self.opened_ns) / 1e9,
            baseline_bytes=self.baseline_bytes,
            end_rss_bytes=end_rss,
            peak_rss_bytes=peak_rss,
            peak_bytes=peak,
            growth_bytes=growth,
            rss_growth_bytes=end_rss - self.baseline_bytes,
            growth_source="retained-heap" if heap else "rss",
            allocator_cached_start_bytes=heap.cached_start_bytes if heap else None,
            allocator_cached_end_bytes=heap.cached_end_bytes if heap else None,
            rate_bytes_per_s=growth_rate(block.times_ns, block.rss_bytes),
            max_pressure=self.thresholds.classify(
                measured_bytes(self.baseline_bytes + peak, self.baseline_bytes, self.basis)
            ),
            pressure_distribution=distribution_of_values(measured, self.thresholds),
            thresholds=self.thresholds,
            basis=self.basis,
            samples=len(block),
            samples_dropped=block.dropped,
            interval_target_ms=self._monitor.interval_ms,
            interval_p50_ms=p50,
            interval_p99_ms=p99,
            interval_max_ms=gap_max,
            sampler_kind=self._monitor.sampler_kind,
            peak_source=_peak_source(
                heap, peak, "kernel-hwm" if kernel_peak is not None else "sampled"
            ),
            allocator_trimmed=self._collector.trims_allocator,
            gc_mode=self._collector.mode.value,
            baseline_collected=self._baseline_collected,
            sample_times_ns=block.times_ns,
            sample_rss_bytes=block.rss_bytes,
        )

    def __enter__(self) -> MeasurementWindow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SpanProbe(_OpenSpan):
    """Peak and growth of one span at a time: the monitor's cheapest measurement.

    Made for thousands of short spans a session, the calls of tests that
    ``--automem`` alone monitors.  One probe serves every span in turn, and
    a span costs its kernel reads (RSS and the mark at each end; the mark is
    reset only when it is above RSS) and little else: no object is made,
    no sample read, no statistic computed: these spans are most of what a
    flag_only ``--automem`` run measures.

    The figures are a window's: the kernel mark is reset when a span opens
    and read when it closes (the sampled maximum where there is no mark),
    and the end is measured as :meth:`MeasurementWindow.stop_headline` does.
    An open span takes part in nesting like a window.  A span that turns
    out to need more (a long call, whose growth rate can be judged) goes on
    as a full window: :meth:`to_window`.
    """

    __slots__ = ("_fresh_allocator",)

    def __init__(self, monitor: MemoryMonitor, gc_mode: GcMode, fresh_allocator: bool) -> None:
        self._fresh = None
        monitor._check()
        self._monitor = monitor
        self._process = monitor._process_handle
        self._sampler = monitor._sampler_handle
        self._collector = _NO_COLLECTION if gc_mode is GcMode.OFF else Collector(gc_mode)
        self._fresh_allocator = fresh_allocator
        self._kernel_peak_so_far = 0
        self._start_count = 0
        self.baseline_bytes = 0
        #: ``time.monotonic_ns()`` when the span opened.
        self.opened_ns = 0

    def open(self) -> None:
        """Start a span (the previous one must be closed or continued)."""
        if self._fresh_allocator:
            self._fresh = _fresh_heap(self._monitor, self._collector, None)
        process = self._process
        self.baseline_bytes = baseline = process.rss_bytes()
        monitor = self._monitor
        monitor._reset_peak(process, baseline)
        self._kernel_peak_so_far = 0
        monitor._open_windows.append(self)
        self._start_count = self._sampler.write_count()
        self._collector.mark()
        self.opened_ns = time.monotonic_ns()
        self._sampler.mark_span(self.opened_ns)  # a span that lasts gets every sample

    def close(self) -> tuple[int, int]:
        """End the span: its ``(peak_bytes, growth_bytes)`` above the baseline."""
        peak, growth, _ = self._close()
        return peak, growth

    def close_headline(
        self, thresholds: PressureThresholds, basis: MeasurementBasis = MeasurementBasis.RELATIVE
    ) -> HeadlineResult:
        """End the span with the figures a results file keeps of a call.

        Besides :meth:`close`'s, the duration, pressure, and what the span's
        samples give: their number, interval percentiles and growth rate.
        A short span has few samples, so reading them costs little.
        """
        end_count = self._sampler.write_count()
        end_ns = time.monotonic_ns()
        peak, growth, heap = self._close()
        samples = end_count - self._start_count
        rate = p50 = p99 = None
        if samples >= 2:  # else there is no interval, nor a slope
            block = self._sampler.read(self._start_count, end_count)
            samples = len(block)
            p50, p99, _ = interval_stats_ms(block.times_ns)
            rate = growth_rate(block.times_ns, block.rss_bytes)
        baseline = self.baseline_bytes
        return HeadlineResult(
            peak_bytes=peak,
            growth_bytes=growth,
            duration_s=(end_ns - self.opened_ns) / 1e9,
            samples=samples,
            peak_source=_peak_source(heap, peak, self._process.peak_source or "sampled"),
            gc_mode=self._collector.mode.value,
            max_pressure=thresholds.classify(measured_bytes(baseline + peak, baseline, basis)),
            rate_bytes_per_s=rate,
            interval_p50_ms=p50,
            interval_p99_ms=p99,
        )

    def _close(self) -> tuple[int, int, HeapFigures | None]:
        """End the span: peak and growth above the baseline, and the allocator figures."""
        self._monitor._open_windows.remove(self)
        self._sampler.mark_span(0)
        process = self._process
        peak = process.peak_rss_bytes()
        baseline = self.baseline_bytes
        end = process.rss_bytes()
        if end - baseline > _LAZY_COLLECT_BYTES:  # below, _end_rss would only read again
            end = _end_rss(process, self._collector, baseline, False)
        heap = self._finish_fresh(end)
        if peak is None:  # no kernel mark: the sampled maximum it is
            peak = self._sampled_peak_rss(self._sampler.write_count())
        peak = max(peak, self._kernel_peak_so_far, baseline, end)
        return (*_peak_and_growth(peak, end, baseline, heap), heap)

    def to_window(
        self, thresholds: PressureThresholds, basis: MeasurementBasis = MeasurementBasis.RELATIVE
    ) -> MeasurementWindow:
        """The open span as a window (stop that instead of closing the probe)."""
        monitor = self._monitor
        monitor._open_windows.remove(self)
        self._sampler.mark_span(0)
        window = MeasurementWindow._continuing(self, thresholds, basis)
        monitor._opened(window)
        return window


def _peak_and_growth(
    peak_rss_bytes: int, end_rss_bytes: int, baseline_bytes: int, heap: HeapFigures | None
) -> tuple[int, int]:
    """A span's ``(peak_bytes, growth_bytes)`` above its baseline
    (``peak_rss_bytes`` already counts the end).

    With the allocators read (:mod:`.allocator`), growth is what they
    retained and a traced call's peak counts what cached memory absorbed.
    What a span retained it held, so the peak is never below the growth,
    whichever sources the two have.
    """
    if heap is None:
        return peak_rss_bytes - baseline_bytes, end_rss_bytes - baseline_bytes
    growth = heap.retained_bytes
    return max(heap.peak_bytes(peak_rss_bytes - baseline_bytes), growth), growth


def _peak_source(heap: HeapFigures | None, peak_bytes: int, measured_by: str) -> str:
    """``tracemalloc`` where the traced peak is the figure, else how RSS was measured."""
    traced = heap.traced_peak_bytes if heap is not None else None
    return "tracemalloc" if traced is not None and traced >= peak_bytes else measured_by


def _fresh_heap(
    monitor: MemoryMonitor, collector: Collector, trace_above_bytes: int | None
) -> FreshHeap | None:
    """Hand back glibc's free memory and read the allocators (see :mod:`.allocator`).

    Only for a monitor watching its own process (another process's
    allocators are out of reach) and a collector that may touch memory.
    """
    if collector.mode is GcMode.OFF or not monitor._watches_itself:
        return None
    collector.release_allocator_memory()
    fresh = FreshHeap(trace_above_bytes=trace_above_bytes)
    return fresh if fresh.available else None


class MemoryMonitor:
    """One sampler process watching one process (by default, this one).

    ``interval_ms`` accepts a number of ms or text such as ``"1ms"``.
    ``portable=True`` forces the psutil fallback (what macOS and Windows get)
    so it can be exercised and compared on Linux.

    ``tree=True`` watches another process and every process it starts: the
    samples are the sum over the tree (at most ``max_processes`` followed at
    once), each process's own figures are in :meth:`tree_report`, and once
    the tree has had more than one process its peaks are sampled (a kernel
    mark is per process; see :mod:`pytest_automem.measure.process_tree`).

    ``record_stacks=True`` (a monitor of this process, started from the main
    thread, where the system has real-time signals) lets a window ask for
    every thread's stack at the moment memory crosses a threshold
    (``window(stacks_above_bytes=...)``): the sampler sends a signal and
    :mod:`faulthandler` writes the stacks, mid C call too.

    ``idle_interval_ms`` lets the sampler rest at that interval while no
    :class:`MeasurementWindow` is open: the spans of a :class:`SpanProbe`
    take their peak from the kernel mark and read samples only when asked
    to after the fact, so between windows the full rate buys little and
    costs a wake-up per interval (under ``pytest -n``, CPU the workers
    share).  A window that opens wakes the sampler and has the full rate at
    once.  Only where the kernel keeps an exact peak: elsewhere peaks are
    the samples' maximum, and the sampler never rests.
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        interval_ms: float | str = DEFAULT_INTERVAL_MS,
        capacity: int = DEFAULT_CAPACITY,
        portable: bool = False,
        tree: bool = False,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        record_stacks: bool = False,
        idle_interval_ms: float | str | None = None,
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        #: A process watching itself cannot find itself gone.
        self._watches_itself = self.pid == os.getpid()
        if tree and self._watches_itself:
            # Its windows collect garbage and read allocators in this process,
            # which a sum over other processes would not follow.
            raise ValueError("tree=True watches another process's tree: give its pid")
        if max_processes < 1:
            raise ValueError(f"invalid max_processes {max_processes}: need at least 1 process")
        self.tree = tree
        self.max_processes = max_processes
        self._tree_report: TreeReport | None = None
        self._tree_memory: TreeMemory | None = None
        self.interval_ms = parse_interval_ms(interval_ms)
        #: The interval between windows (see the class docstring); None: never rest.
        self.idle_interval_ms = (
            None if idle_interval_ms is None else parse_interval_ms(idle_interval_ms)
        )
        if capacity < 16:
            raise ValueError(f"invalid sampler capacity {capacity}: need at least 16 samples")
        self.capacity = capacity
        self.portable = portable or not _platform.HAS_PROCFS
        self._sampler_handle: SamplerProcess | None = None
        #: A sampler stopped by ``close(wait=False)``, to reap at the next close.
        self._unreaped: SamplerProcess | None = None
        self._process_handle: _platform.ProcessMemory | None = None
        self._open_windows: list[_OpenSpan] = []
        #: Of those, the windows that read every sample (not a probe's spans).
        self._sampled_windows = 0
        self._checked_at = -math.inf
        self.record_stacks = record_stacks
        self._stacks: StackRecorder | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, *, wait: bool = True) -> MemoryMonitor:
        """Start the sampler process (idempotent); returns self for chaining.

        ``wait=False`` returns before the sampler's first sample, without
        waiting for a Python process to start; the first windows then hold
        fewer samples.  The target is
        checked either way: a process that has exited raises ProcessGoneError.
        """
        if self._sampler_handle is not None:
            return self
        root = self._process_handle = _platform.open_process(self.pid, portable=self.portable)
        try:
            root.rss_bytes()  # a zombie or kernel thread fails here
            self._stacks = self._start_stack_recorder()
            self._sampler_handle = SamplerProcess(
                self.pid,
                interval_ns=round(self.interval_ms * 1e6),
                capacity=self.capacity,
                reader="psutil" if self.portable else "procfs",
                wait=wait,
                max_processes=self.max_processes if self.tree else 0,
                trip_signal=None if self._stacks is None else self._stacks.signal_number,
                idle_interval_ns=self._idle_interval_ns(root),
            )
        except BaseException:
            self._stop_stack_recorder()
            root.close()
            self._process_handle = None
            raise
        if self.tree:
            from .process_tree import TreeMemory

            self._process_handle = self._tree_memory = TreeMemory(root, self._sampler_handle)
        return self

    def _idle_interval_ns(self, root: _platform.ProcessMemory) -> int:
        """The sampler's resting interval: 0 (never rests) without a kernel
        peak to stand in for the samples, or for a tree, whose peak is sampled."""
        if self.idle_interval_ms is None or root.peak_source is None or self.tree:
            return 0
        return round(self.idle_interval_ms * 1e6)

    def close(self, *, wait: bool = True) -> None:
        """Stop the sampler and release descriptors (idempotent).

        ``wait=False`` does not wait for the sampler process to exit (see
        :meth:`SamplerProcess.close`); a later ``close()`` reaps it.
        """
        if self.tree and self._sampler_handle is not None:
            self.tree_report()  # kept for after the close
        sampler = self._sampler_handle or self._unreaped
        if sampler is not None:
            sampler.close(wait=wait)
        self._sampler_handle = None
        self._unreaped = None if wait else sampler
        self._stop_stack_recorder()
        if self._process_handle is not None:
            self._process_handle.close()
            self._process_handle = None
        self._tree_memory = None
        self._open_windows.clear()
        self._sampled_windows = 0

    def _start_stack_recorder(self) -> StackRecorder | None:
        """The recorder of stack dumps, where asked for and possible.

        Only for a monitor that watches its own process, started from the
        main thread: the dump's signal is made harmless there first
        (:meth:`StackRecorder.start`), so a late one cannot end the process.
        """
        if not (self.record_stacks and self._watches_itself):
            return None
        if threading.current_thread() is not threading.main_thread():
            return None
        from .stack_dumps import STACK_SIGNAL, StackRecorder

        if STACK_SIGNAL is None:
            return None
        recorder = StackRecorder()
        recorder.start()
        return recorder

    def _stop_stack_recorder(self) -> None:
        if self._stacks is not None:
            self._stacks.stop()
            self._stacks = None

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._sampler_handle is not None

    @property
    def resting_interval_ms(self) -> float | None:
        """The sampler's interval between windows; None while it never rests
        (or before it starts)."""
        sampler = self._sampler_handle or self._unreaped
        if sampler is None or not sampler.rests:
            return None
        return sampler.idle_interval_ns / 1e6

    @property
    def sampler_pid(self) -> int:
        return self._sampler.pid

    @property
    def sampler_kind(self) -> str:
        """``process-procfs`` on Linux, ``process-psutil`` for the fallback
        (``process-tree-procfs`` and ``process-tree-psutil`` for a tree)."""
        scope = "process-tree" if self.tree else "process"
        return f"{scope}-psutil" if self.portable else f"{scope}-procfs"

    def tree_report(self) -> TreeReport | None:
        """Each process of the tree (``tree=True``), as the sampler last
        published it; after :meth:`close`, as it stood then.  None for a
        monitor of one process."""
        sampler = self._sampler_handle
        if self.tree and sampler is not None:
            self._tree_report = sampler.process_table() or self._tree_report
        return self._tree_report

    def _peak_is_per_process(self) -> bool:
        """False for a tree that has had more than one process: a kernel
        mark (or ``wait4``'s) is one process's, and bounds the tree's peak
        from below only."""
        tree = self._tree_memory
        return tree is None or tree.is_single()

    @property
    def _sampler(self) -> SamplerProcess:
        if self._sampler_handle is None:
            raise RuntimeError(_NOT_STARTED)
        return self._sampler_handle

    @property
    def _process(self) -> _platform.ProcessMemory:
        if self._process_handle is None:
            raise RuntimeError(_NOT_STARTED)
        return self._process_handle

    def _check(self) -> None:
        """Raise ProcessGoneError if the target exited, SamplerDiedError if the sampler did.

        Asking the OS whether the sampler lives costs a ``waitpid``; windows
        open and close thousands of times a second in a test suite, so that
        question is asked at most every :data:`_LIVENESS_CHECK_S`.
        """
        sampler = self._sampler_handle
        if sampler is None:
            raise RuntimeError(_NOT_STARTED)
        if not self._watches_itself and sampler.target_gone():
            started = " and the processes it started have" if self.tree else " has"
            raise _platform.ProcessGoneError(f"process {self.pid}{started} exited")
        now = time.monotonic()
        if now - self._checked_at >= _LIVENESS_CHECK_S:
            sampler.check_alive()
            self._checked_at = now

    def samples_since(self, count: int) -> tuple[SampleBlock, int]:
        """The samples published since the sampler's ``count``-th, and the count now.

        For a watcher that follows the curve as it grows (the spawner) and
        needs no window: each call copies only what is new.  Raises
        SamplerDiedError once the sampler is gone (asked at most every
        :data:`_LIVENESS_CHECK_S`); a sampler that ended because the watched
        process did is not an error: its samples are all there.
        """
        sampler = self._sampler
        now = time.monotonic()
        if now - self._checked_at >= _LIVENESS_CHECK_S and not sampler.target_gone():
            sampler.check_alive()
            self._checked_at = now
        end = sampler.write_count()
        return sampler.read(count, end), end

    # -- windows -------------------------------------------------------------

    def window(
        self,
        *,
        thresholds: PressureThresholds | None = None,
        basis: MeasurementBasis = MeasurementBasis.RELATIVE,
        collect_garbage: GcMode | str | bool | None = None,
        fresh_allocator: bool = True,
        collect_at_start: bool = True,
        trace_peak_above_bytes: int | None = None,
        stacks_above_bytes: int | None = None,
        on_stack_dump: Callable[[], object] | None = None,
    ) -> MeasurementWindow:
        """Open a measurement window now.

        ``collect_garbage`` (a :class:`GcMode`, its name, or a bool) says how
        the baseline and the end are collected.  It defaults to ``auto``
        when watching this process (see :mod:`pytest_automem.measure.garbage`) and to
        ``off`` for another process, whose garbage we cannot collect.

        ``fresh_allocator`` takes the memory the allocators keep for reuse
        out of the measurement (:mod:`pytest_automem.measure.allocator`): glibc's is
        handed back at the start, and growth is what the allocators' live
        bytes gained.  Without it, memory freed earlier and kept for reuse
        can absorb the window's allocations (the peak understated) and
        memory a window freed but the allocators kept counts as growth.
        ``trace_peak_above_bytes``: when more freed memory than this is
        cached at the start, trace the window so its peak counts what the
        cache absorbed.  The plugin does both for tests with a budget,
        where the figures are judged.

        ``collect_at_start=False`` collects garbage at the end only, and
        only if RSS grew.  A young collection walks every object made since
        the last one: in a pytest session, everything pytest made since the
        previous test, the largest cost of a short monitored test.
        Skipping it can only make growth look smaller (the interpreter may
        free older garbage during the window), never raise a false alarm.
        The plugin does so for tests without a budget or automem fixture.

        ``stacks_above_bytes`` (on the window's basis): when memory passes
        it, every thread's stack is dumped at once, and again at new highs,
        into :attr:`MeasurementWindow.stack_dumps` (a monitor started with
        ``record_stacks=True``; :mod:`pytest_automem.measure.stack_dumps`).
        Nothing runs until then: the sampler watches the threshold.
        ``on_stack_dump`` is called after each dump, from the main thread
        between two bytecodes (:attr:`StackRecorder.on_signal`).
        """
        if collect_garbage is None:
            mode = GcMode.AUTO if self.pid == os.getpid() else GcMode.OFF
        else:
            mode = GcMode.parse(collect_garbage)
        window = MeasurementWindow(
            self,
            thresholds=thresholds or PressureThresholds(),
            basis=basis,
            gc_mode=mode,
            fresh_allocator=fresh_allocator,
            collect_at_start=collect_at_start,
            trace_peak_above_bytes=trace_peak_above_bytes,
            stacks_above_bytes=stacks_above_bytes,
            on_stack_dump=on_stack_dump,
        )
        self._opened(window)
        return window

    def rss_bytes(self) -> int:
        """The watched process's resident memory now, read as windows read it
        (a ``pread`` of ``statm`` on Linux): cheap enough to stamp events with."""
        return self._process.rss_bytes()

    def probe(self, *, gc_mode: GcMode = GcMode.AUTO, fresh_allocator: bool = False) -> SpanProbe:
        """A :class:`SpanProbe`: the cheapest way to measure many short spans.

        ``gc_mode`` says how garbage is collected at a span's end (only when
        RSS grew, as for a window opened with ``collect_at_start=False``);
        ``fresh_allocator`` hands the allocator's cache back at each open.
        """
        return SpanProbe(self, gc_mode, fresh_allocator)

    @contextlib.contextmanager
    def measure(self, **kwargs: Any) -> Iterator[MeasurementWindow]:
        """``with monitor.measure() as w: ...`` then read ``w.result``."""
        window = self.window(**kwargs)
        try:
            yield window
        finally:
            window.stop()

    def _reset_peak(self, process: _platform.ProcessMemory, rss_bytes: int) -> None:
        """Reset the kernel peak for a new window or span at ``rss_bytes``,
        first folding the peak so far into the open ones (they keep it)."""
        if self._open_windows:
            current_peak = process.peak_rss_bytes()
            if current_peak is not None:
                for other in self._open_windows:
                    other._fold_kernel_peak(current_peak)
        process.reset_peak(rss_bytes)

    def _opened(self, window: MeasurementWindow) -> None:
        """Count ``window`` open; the first one open has the sampler sample at full rate."""
        self._open_windows.append(window)
        self._sampled_windows += 1
        if self._sampled_windows == 1 and self._sampler_handle is not None:
            self._sampler_handle.set_wanted(True)

    def _forget(self, window: _OpenSpan) -> None:
        if window not in self._open_windows:  # closed twice
            return
        self._open_windows.remove(window)
        if isinstance(window, MeasurementWindow):
            self._sampled_windows -= 1
            if self._sampled_windows == 0 and self._sampler_handle is not None:
                self._sampler_handle.set_wanted(False)

    def _arm_stacks(self, rss_bytes: int, on_dump: Callable[[], object] | None) -> bool:
        """Have every thread's stack dumped when RSS passes ``rss_bytes``,
        then ``on_dump`` called; False where this monitor records no stacks."""
        if self._stacks is None or self._sampler_handle is None:
            return False
        self._stacks.take()  # a dump for a window that was never stopped
        self._stacks.on_signal = on_dump
        self._sampler_handle.arm_trip(rss_bytes)
        return True

    def _take_stacks(self) -> tuple[StackDump, ...]:
        """Disarm, and the dumps taken since the arming."""
        if self._stacks is None:
            return ()
        if self._sampler_handle is not None:
            self._sampler_handle.disarm_trip()
        self._stacks.on_signal = None
        return self._stacks.take()
