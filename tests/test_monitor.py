"""Measurement windows and the probe: growth, exact peaks, nesting, live view, bad input."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers import resident_block

from pytest_automem.measure import sampler_child
from pytest_automem.measure.garbage import GcMode
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.pressure import MeasurementBasis, PressureLevel, PressureThresholds
from pytest_automem.results.results_file import REQUIRED_TEST_KEYS

MB = 1 << 20
LINUX = sys.platform.startswith("linux")


def spike_inside_one_c_call(size: int) -> None:
    """Allocate and free ``size`` bytes without ever returning to Python."""
    (b"x" * size).count(b"y")


def test_kept_allocation_is_growth(monitor: MemoryMonitor) -> None:
    window = monitor.window()
    kept = resident_block(64 * MB)
    result = window.stop()
    assert 63 * MB <= result.growth_bytes <= 66 * MB
    assert result.peak_bytes >= result.growth_bytes
    kept.close()


def test_freed_allocation_is_not_growth_but_is_peak(monitor: MemoryMonitor) -> None:
    window = monitor.window()
    temporary = resident_block(64 * MB)
    temporary.close()
    result = window.stop()
    assert abs(result.growth_bytes) < 2 * MB
    assert result.peak_bytes >= 63 * MB


@pytest.mark.skipif(not LINUX, reason="kernel high-water mark is Linux-only")
def test_spike_inside_one_c_call_is_caught_exactly(monitor: MemoryMonitor) -> None:
    window = monitor.window()
    spike_inside_one_c_call(100 * MB)
    result = window.stop()
    assert result.peak_source == "kernel-hwm"
    # Exact up to the kernel's per-CPU counter batching (~0.4 %).
    assert 99 * MB <= result.peak_bytes <= 104 * MB
    assert result.max_pressure is PressureLevel.MEDIUM


@pytest.mark.skipif(not LINUX, reason="kernel high-water mark is Linux-only")
def test_nested_window_does_not_rob_outer_peak(monitor: MemoryMonitor) -> None:
    outer = monitor.window()
    spike_inside_one_c_call(80 * MB)
    inner = monitor.window()
    spike_inside_one_c_call(20 * MB)
    inner_result = inner.stop()
    outer_result = outer.stop()
    assert 19 * MB <= inner_result.peak_bytes < 40 * MB
    assert outer_result.peak_bytes >= 79 * MB


def test_sampling_continues_while_the_test_holds_the_gil(monitor: MemoryMonitor) -> None:
    window = monitor.window(collect_garbage=False)
    deadline = time.perf_counter() + 0.3
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    result = window.stop()
    # An in-process thread gets ~60 of 300; a generous bound keeps CI load harmless.
    assert result.samples >= 100
    assert result.interval_p50_ms is not None
    assert result.sampler_kind == "process-procfs"
    assert len(result.sample_times_ns) == result.samples
    assert list(result.sample_times_ns) == sorted(result.sample_times_ns)


def test_live_view_and_pressure(monitor: MemoryMonitor) -> None:
    thresholds = PressureThresholds(10 * MB, 20 * MB, 40 * MB)
    window = monitor.window(thresholds=thresholds)
    block = resident_block(25 * MB)
    assert window.current_bytes() >= 24 * MB
    assert window.pressure() is PressureLevel.HIGH
    assert window.peak_bytes() >= 24 * MB
    assert window.max_pressure() is PressureLevel.HIGH
    block.close()
    result = window.stop()
    assert result.max_pressure is PressureLevel.HIGH
    assert window.stop() is result  # idempotent


def test_absolute_basis_classifies_whole_rss(monitor: MemoryMonitor) -> None:
    thresholds = PressureThresholds(1 * MB, 2 * MB, 3 * MB)
    result = monitor.window(thresholds=thresholds, basis=MeasurementBasis.ABSOLUTE).stop()
    assert result.max_pressure is PressureLevel.CRITICAL  # any Python process is > 3 MB
    relative = monitor.window(thresholds=thresholds).stop()
    assert relative.max_pressure is PressureLevel.LOW


def test_result_is_plain_json_and_says_how_it_was_measured(monitor: MemoryMonitor) -> None:
    with monitor.measure() as window:
        time.sleep(0.02)
    result = window.result
    assert result is not None
    data = json.loads(json.dumps(result.to_dict()))
    window_keys = set(REQUIRED_TEST_KEYS) - {"verdict", "violations"}  # those are the plugin's
    assert window_keys <= set(data)
    assert data["samples"] >= 5
    assert "1 ms sampler" in result.how_measured()
    assert f"{result.samples} samples" in result.how_measured()


def test_growth_rate_sees_a_steady_climb(monitor: MemoryMonitor) -> None:
    window = monitor.window(collect_garbage=False)
    chunks = []
    for _ in range(20):
        chunks.append(resident_block(MB))
        time.sleep(0.005)
    result = window.stop()
    assert result.rate_bytes_per_s is not None
    assert result.rate_bytes_per_s > 20 * MB  # ~20 MB over ~0.1 s ≈ 200 MB/s
    for chunk in chunks:
        chunk.close()


def test_short_ring_drops_oldest_samples_and_says_so() -> None:
    with MemoryMonitor(capacity=16) as small:
        window = small.window(collect_garbage=False)
        time.sleep(0.08)
        result = window.stop()
    assert result.samples <= 16
    assert result.samples_dropped >= 30
    assert list(result.sample_times_ns) == sorted(result.sample_times_ns)


def test_portable_fallback_is_labelled_sampled() -> None:
    with MemoryMonitor(portable=True) as fallback, fallback.measure() as window:
        kept = resident_block(30 * MB)
        time.sleep(0.02)
    result = window.result
    assert result is not None
    assert result.sampler_kind == "process-psutil"
    assert result.peak_source == "sampled"
    assert "sampled peak" in result.how_measured()
    assert result.growth_bytes >= 29 * MB
    kept.close()


def test_monitor_of_another_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(40 << 20); time.sleep(30)"],
    )
    try:
        time.sleep(0.3)
        with MemoryMonitor(child.pid) as other:
            result = other.window(basis=MeasurementBasis.ABSOLUTE).stop()
        assert result.pid == child.pid
        assert result.baseline_bytes >= 40 * MB
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("bad", [0, -1, "0ms", "fast", float("nan"), "0.01ms"])
def test_bad_interval_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="sampling interval"):
        MemoryMonitor(interval_ms=bad)  # type: ignore[arg-type]


def test_text_interval_is_parsed() -> None:
    assert MemoryMonitor(interval_ms="2ms").interval_ms == 2.0
    assert MemoryMonitor(interval_ms=0.5).interval_ms == 0.5


def test_unstarted_monitor_says_so() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        MemoryMonitor().window()


def test_missing_process_is_a_clear_error() -> None:
    from pytest_automem.measure._platform import ProcessGoneError

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessGoneError, match=str(child.pid)):
        MemoryMonitor(child.pid).start()


def _peak_of_20mb_after_caching(monitor: MemoryMonitor, *, fresh: bool, probe: bool) -> int:
    x = b"a" * (40 * MB)  # raises glibc's mmap threshold to 40 MB...
    del x
    for _ in range(2):  # ...so these come from the heap and stay cached when freed
        y = b"b" * (20 * MB)
        del y
    if probe:
        span = monitor.probe(fresh_allocator=fresh)
        span.open()
        z = b"c" * (20 * MB)
        del z
        return span.close()[0]
    window = monitor.window(fresh_allocator=fresh)
    z = b"c" * (20 * MB)
    del z
    return window.stop().peak_bytes


@pytest.mark.parametrize("probe", [False, True], ids=["window", "probe"])
def test_fresh_allocator_keeps_a_peak_from_hiding_in_cached_memory(
    monitor: MemoryMonitor, probe: bool
) -> None:
    if _peak_of_20mb_after_caching(monitor, fresh=False, probe=probe) >= 19 * MB:
        pytest.skip("this allocator did not reuse the cached chunk: nothing to hide")
    assert _peak_of_20mb_after_caching(monitor, fresh=True, probe=probe) >= 19 * MB


class _Cycle:
    """Cyclic garbage: only the collector frees it."""

    def __init__(self, payload: int) -> None:
        self.me = self
        self.payload = bytearray(payload)


def _collections_during(action: Any) -> int:
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    gc.callbacks.append(count)
    try:
        action()
    finally:
        gc.callbacks.remove(count)
    return len(seen)


def test_end_only_window_collects_when_growth_is_worth_it(monitor: MemoryMonitor) -> None:
    end_only = {"collect_garbage": "auto", "fresh_allocator": False, "collect_at_start": False}
    gc.disable()  # only the window's own collections are counted
    try:
        quiet = monitor.window(**end_only)
        small = _Cycle(1024)
        assert _collections_during(quiet.stop_headline) == 0  # well under 64 KiB of growth

        big = monitor.window(**end_only)
        for _ in range(64):
            _Cycle(256 * 1024)  # 16 MB of garbage no reference count frees
        assert _collections_during(lambda: setattr(big, "result", big.stop())) >= 1
        assert big.result is not None
        assert big.result.baseline_collected is False
        assert big.result.growth_bytes < 4 * MB  # the garbage was collected before the end
    finally:
        gc.enable()
        del small


@pytest.mark.skipif(not LINUX, reason="clear_refs is Linux-only")
def test_kernel_mark_reset_is_skipped_only_when_it_changes_nothing(
    monitor: MemoryMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from types import SimpleNamespace

    from pytest_automem.measure._platform import linux

    process = monitor._process
    if not getattr(process, "_own", False):
        pytest.skip("the mark is not read through getrusage here")
    marks_kib: list[int] = []  # what getrusage reports, one value per call
    # The mark is faked (a background thread, xdist's for one, moves the real
    # one between two reads); what reaches clear_refs is read back from a pipe
    # standing in for it.
    monkeypatch.setattr(
        linux, "_getrusage", lambda who: SimpleNamespace(ru_maxrss=marks_kib.pop(0))
    )
    clear_refs = process._clear_refs
    received, process._clear_refs = os.pipe()
    os.set_blocking(received, False)
    try:
        rss = 100 * MB
        marks_kib[:] = [(rss + 64 * MB) // 1024, rss // 1024]  # above the RSS, then reset
        assert process.reset_peak(rss)
        assert os.read(received, 64) == b"5"  # it had to be reset
        marks_kib[:] = [rss // 1024]  # already at the current RSS
        assert process.reset_peak(rss)
        with pytest.raises(BlockingIOError):  # nothing more was written
            os.read(received, 64)
        assert marks_kib == [] and process._own  # each mark read once; still trusted
    finally:
        os.close(process._clear_refs)
        os.close(received)
        process._clear_refs = clear_refs
    monkeypatch.undo()
    window = monitor.window(collect_garbage=False, fresh_allocator=False)
    spike_inside_one_c_call(32 * MB)
    assert window.stop_headline().peak_bytes >= 31 * MB


# -- the probe -----------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="kernel high-water mark is Linux-only")
def test_probe_spans_are_exact_and_independent(monitor: MemoryMonitor) -> None:
    probe = monitor.probe(gc_mode=GcMode.OFF)
    probe.open()
    spike_inside_one_c_call(100 * MB)
    peak, growth = probe.close()
    assert 99 * MB <= peak <= 104 * MB
    assert abs(growth) < 2 * MB
    # The next span starts a new mark: the first span's spike is not its peak.
    probe.open()
    kept = resident_block(24 * MB)
    peak, growth = probe.close()
    assert 23 * MB <= growth <= 26 * MB
    assert growth <= peak < 40 * MB
    kept.close()


@pytest.mark.skipif(not LINUX, reason="kernel high-water mark is Linux-only")
def test_probe_nests_with_windows_both_ways(monitor: MemoryMonitor) -> None:
    probe = monitor.probe(gc_mode=GcMode.OFF)
    outer = monitor.window()
    spike_inside_one_c_call(80 * MB)
    probe.open()  # resets the mark: the window keeps its peak
    spike_inside_one_c_call(20 * MB)
    inner = monitor.window()  # resets it again: the span keeps its own
    inner.stop()
    peak, _ = probe.close()
    assert 19 * MB <= peak < 40 * MB
    assert outer.stop().peak_bytes >= 79 * MB


def _promoted_cycle() -> _Cycle:
    """A 16 MiB resident cycle, moved to the oldest generation while alive.

    ``gc.collect(1)`` is what the interpreter does on its own in a busy test:
    a young collection can no longer free the cycle once it is garbage. The
    payload is its own mapping, so RSS shows it exactly when the cycle is
    alive, whatever the C allocator cached before.
    """
    cycle = _Cycle(0)
    cycle.payload = resident_block(16 * MB)  # type: ignore[assignment]
    gc.collect(1)
    assert gc.is_tracked(cycle)
    return cycle


_WINDOW_KINDS = {
    "collected-baseline": {"collect_garbage": "auto"},
    "end-only": {"collect_garbage": "auto", "fresh_allocator": False, "collect_at_start": False},
}


@pytest.mark.parametrize("kind", list(_WINDOW_KINDS))
def test_window_frees_a_cycle_promoted_during_it_before_reading_the_end(
    monitor: MemoryMonitor, kind: str
) -> None:
    window = monitor.window(**_WINDOW_KINDS[kind])
    cycle = _promoted_cycle()
    del cycle
    assert window.stop().growth_bytes < 4 * MB


@pytest.mark.parametrize("kind", list(_WINDOW_KINDS))
def test_window_counts_a_promoted_cycle_still_referenced_at_its_end(
    monitor: MemoryMonitor, kind: str
) -> None:
    window = monitor.window(**_WINDOW_KINDS[kind])
    cycle = _promoted_cycle()
    assert window.stop().growth_bytes >= 15 * MB
    del cycle
    gc.collect()


def test_probe_collects_garbage_promoted_during_the_span(monitor: MemoryMonitor) -> None:
    """Cyclic garbage an older collection promoted during the span is out of a
    young collection's reach: a span still grown by a megabyte goes full."""
    probe = monitor.probe(gc_mode=GcMode.AUTO)
    probe.open()
    cycle = _promoted_cycle()
    del cycle
    _, growth = probe.close()
    assert growth < 4 * MB


def test_probe_counts_a_promoted_cycle_still_referenced_at_its_end(
    monitor: MemoryMonitor,
) -> None:
    probe = monitor.probe(gc_mode=GcMode.AUTO)
    probe.open()
    cycle = _promoted_cycle()
    _, growth = probe.close()
    assert growth >= 15 * MB
    del cycle
    gc.collect()


def _full_collections_during(action: Any) -> int:
    """How many full (generation 2) collections the interpreter ran during ``action``."""
    generations: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            generations.append(info["generation"])

    gc.callbacks.append(note)
    try:
        action()
    finally:
        gc.callbacks.remove(note)
    return generations.count(2)


def test_probe_span_does_not_go_full_for_collections_before_it(monitor: MemoryMonitor) -> None:
    """Older collections between spans (other tests, pytest) are no reason to
    walk the whole heap at a span's end."""
    probe = monitor.probe(gc_mode=GcMode.AUTO)
    gc.collect(1)  # an older collection before the span
    probe.open()
    kept = resident_block(4 * MB)
    closed: list[tuple[int, int]] = []
    gc.disable()  # only the probe's own collections run
    try:
        assert _full_collections_during(lambda: closed.append(probe.close())) == 0
    finally:
        gc.enable()
    assert closed[0][1] >= 3 * MB
    kept.close()


def test_probe_span_goes_on_as_a_window(monitor: MemoryMonitor) -> None:
    probe = monitor.probe(gc_mode=GcMode.OFF)
    probe.open()
    spike_inside_one_c_call(60 * MB)
    time.sleep(0.02)
    window = probe.to_window(PressureThresholds.parse("10MB,200MB,500MB"))
    kept = resident_block(16 * MB)
    result = window.stop()
    assert result.baseline_bytes == probe.baseline_bytes
    assert result.peak_bytes >= (59 * MB if LINUX else 15 * MB)
    assert 15 * MB <= result.growth_bytes <= 18 * MB
    assert result.samples >= 5  # the samples since the span opened
    assert result.max_pressure is PressureLevel.MEDIUM
    assert monitor._open_windows == []
    kept.close()


def test_probe_without_a_kernel_mark_reports_the_sampled_peak() -> None:
    with MemoryMonitor(portable=True) as fallback:
        probe = fallback.probe(gc_mode=GcMode.OFF)
        probe.open()
        held = resident_block(30 * MB)
        time.sleep(0.05)  # long enough for the sampler to see it
        held.close()
        peak, growth = probe.close()
    # Freed before the end: only the samples can show the peak.
    assert peak >= 29 * MB
    assert abs(growth) < 2 * MB


#: Waits for ARGV[1], forks a child that holds 20 MiB for 0.3 s, waits for it, exits.
_FORKS_THEN_EXITS = """
import os, pathlib, sys, time
flag = pathlib.Path(sys.argv[1])
while not flag.exists():
    time.sleep(0.005)
child = os.fork()
if child == 0:
    x = b"x" * (20 << 20)
    time.sleep(0.3)
    os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.skipif(not LINUX, reason="wait4's figure is folded as the kernel's mark on Linux")
def test_tree_window_counts_an_exit_peak_as_a_bound_not_as_the_trees_kernel_mark(
    tmp_path: Any,
) -> None:
    # The root's wait4 figure is one process's: a tree of two has no kernel
    # mark for its sum, so the window's peak stays "sampled" (it used to say
    # "kernel-hwm") while never going below that figure.
    flag = tmp_path / "go"
    root = subprocess.Popen([sys.executable, "-c", _FORKS_THEN_EXITS, str(flag)])
    monitor = MemoryMonitor(root.pid, tree=True).start()
    try:
        window = monitor.window()
        flag.touch()
        os.wait4(root.pid, 0)
        root.returncode = 0
        deadline = time.monotonic() + 30
        while not monitor._sampler.target_gone():
            assert time.monotonic() < deadline, "the sampler never saw the tree exit"
            time.sleep(0.01)
        result = window.stop(exit_peak_rss_bytes=500 * MB)
        report = monitor.tree_report()
    finally:
        monitor.close()
    assert report is not None and report.processes_seen == 2
    assert result.peak_rss_bytes >= 500 * MB
    assert result.peak_source == "sampled"
    assert result.sampler_kind == "process-tree-procfs"


# -- the sampler rests between windows -----------------------------------------


def _wanted(monitor: MemoryMonitor) -> int:
    handle = monitor._sampler_handle
    assert handle is not None
    return sampler_child.COUNT_FIELD.unpack_from(handle._buffer, sampler_child.OFFSET_WANTED)[0]


def _span_opened_ns(monitor: MemoryMonitor) -> int:
    handle = monitor._sampler_handle
    assert handle is not None
    field = sampler_child.OFFSET_SPAN_OPENED
    return sampler_child.COUNT_FIELD.unpack_from(handle._buffer, field)[0]


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs a kernel peak")
def test_windows_want_every_sample_and_spans_do_not() -> None:
    with MemoryMonitor(idle_interval_ms=10) as monitor:
        assert monitor.resting_interval_ms == 10.0
        assert _wanted(monitor) == 0
        outer = monitor.window()
        inner = monitor.window()
        assert _wanted(monitor) == 1
        inner.stop()
        assert _wanted(monitor) == 1  # the outer one still reads samples
        outer.stop()
        outer.stop()  # closed twice: counted once
        assert _wanted(monitor) == 0
        probe = monitor.probe()
        probe.open()
        assert _wanted(monitor) == 0
        assert _span_opened_ns(monitor) == probe.opened_ns  # the sampler judges its age
        probe.close()
        assert _span_opened_ns(monitor) == 0
        probe.open()
        window = probe.to_window(PressureThresholds())
        assert _wanted(monitor) == 1  # a long span goes on as a window
        assert _span_opened_ns(monitor) == 0
        window.stop()
        assert _wanted(monitor) == 0


def test_a_monitor_without_a_kernel_peak_never_rests() -> None:
    """Peaks are the samples' maximum there: every sample counts."""
    with MemoryMonitor(idle_interval_ms=10, portable=True) as monitor:
        assert monitor.resting_interval_ms is None
    with MemoryMonitor() as monitor:
        assert monitor.resting_interval_ms is None
