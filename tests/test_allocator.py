"""Unit tests: the allocators' statistics and what a measurement retained."""

from __future__ import annotations

import tracemalloc

import pytest

from pytest_automem.measure import allocator
from pytest_automem.measure._platform import heap
from pytest_automem.measure._platform.heap import HeapReading, read_heap
from pytest_automem.measure.pressure import PressureLevel, PressureThresholds

NEEDS_PYMALLOC = pytest.mark.skipif(
    heap.pymalloc_bytes() is None, reason="this interpreter does not use pymalloc"
)
MB = 1 << 20

_STATS = b"""Small block threshold = 512, in 32 size classes.

class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           1             106           915

# arenas allocated current         =                    4
4 arenas * 1048576 bytes/arena     =            4,194,304

# bytes in allocated blocks        =            3,522,528
# bytes in available blocks        =              316,272
17 unused pools * 16384 bytes      =              278,528
"""


def test_pymalloc_statistics_are_read() -> None:
    reading = heap._parse_pymalloc(_STATS)
    assert reading == HeapReading(
        in_use_bytes=3_522_528, cached_bytes=316_272 + 278_528, footprint_bytes=4 * 1048576
    )


def test_unreadable_statistics_give_no_reading() -> None:
    assert heap._parse_pymalloc(None) is None
    assert heap._parse_pymalloc(b"no statistics here") is None


@NEEDS_PYMALLOC
def test_freed_small_objects_show_as_cached_not_in_use() -> None:
    objects = [{"i": i} for i in range(200_000)]
    survivors = objects[::200]
    before = read_heap()
    del objects
    after = read_heap()
    assert before is not None and after is not None
    assert after.cached_bytes - before.cached_bytes > 10 * MB
    assert before.in_use_bytes - after.in_use_bytes > 10 * MB
    assert survivors


def _reading(in_use: int, footprint: int, cached: int = 0) -> HeapReading:
    return HeapReading(in_use_bytes=in_use, cached_bytes=cached, footprint_bytes=footprint)


def _fake_readings(monkeypatch: pytest.MonkeyPatch, *readings: HeapReading) -> None:
    remaining = iter(readings)
    monkeypatch.setattr(allocator, "read_heap", lambda: next(remaining))


def test_retained_is_live_bytes_plus_growth_outside_the_allocators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_readings(
        monkeypatch,
        _reading(1000, 10_000, cached=5000),
        _reading(1500, 14_000, cached=3000),  # 4000 more footprint, 500 more live
    )
    # RSS grew by 6000: 4000 of it inside the allocators' new footprint, 2000 outside.
    figures = allocator.FreshHeap().finish(baseline_rss_bytes=100_000, end_rss_bytes=106_000)
    assert figures == allocator.HeapFigures(
        retained_bytes=500 + 2000, cached_start_bytes=5000, cached_end_bytes=3000,
        traced_peak_bytes=None,
    )  # fmt: skip


def test_pages_the_allocators_keep_are_not_retained(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_readings(monkeypatch, _reading(1000, 10_000), _reading(1000, 20_000))
    figures = allocator.FreshHeap().finish(baseline_rss_bytes=100_000, end_rss_bytes=108_000)
    assert figures is not None
    assert figures.retained_bytes == 0


def test_without_statistics_nothing_is_figured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "read_heap", lambda: None)
    fresh = allocator.FreshHeap(trace_above_bytes=0)
    assert not fresh.available
    assert not tracemalloc.is_tracing()
    assert fresh.finish(0, 0) is None


@pytest.mark.parametrize(("cached", "traced"), [(10 * MB, True), (1 * MB, False)])
def test_a_large_cache_makes_the_peak_traced(
    monkeypatch: pytest.MonkeyPatch, cached: int, traced: bool
) -> None:
    _fake_readings(monkeypatch, _reading(0, 0, cached=cached), _reading(0, 0))
    fresh = allocator.FreshHeap(trace_above_bytes=2 * MB)
    assert tracemalloc.is_tracing() is traced
    block = bytearray(8 * MB)
    del block
    figures = fresh.finish(0, 0)
    assert not tracemalloc.is_tracing()
    assert figures is not None
    if traced:
        assert figures.traced_peak_bytes is not None
        assert figures.traced_peak_bytes >= 8 * MB
    else:
        assert figures.traced_peak_bytes is None


def test_tracing_someone_else_started_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_readings(monkeypatch, _reading(0, 0, cached=10 * MB), _reading(0, 0))
    tracemalloc.start()
    try:
        figures = allocator.FreshHeap(trace_above_bytes=0).finish(0, 0)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    assert figures is not None and figures.traced_peak_bytes is None


@pytest.mark.parametrize(
    ("level", "boundary"),
    [
        (PressureLevel.LOW, 50 * MB),
        (PressureLevel.MEDIUM, 200 * MB),
        (PressureLevel.HIGH, 500 * MB),
        (PressureLevel.CRITICAL, None),
    ],
)
def test_the_boundary_above_a_level(level: PressureLevel, boundary: int | None) -> None:
    assert PressureThresholds().boundary_above(level) == boundary


def _figures(traced: int | None) -> allocator.HeapFigures:
    return allocator.HeapFigures(
        retained_bytes=0, cached_start_bytes=0, cached_end_bytes=0, traced_peak_bytes=traced
    )


def test_an_untraced_peak_is_the_kernels() -> None:
    assert _figures(None).peak_bytes(7 * MB) == 7 * MB


def test_a_traced_peak_still_counts_memory_outside_pythons_allocators() -> None:
    # 4 MB mapped outside Python's allocators, 64 KB traced.
    assert _figures(64 * 1024).peak_bytes(4 * MB + 64 * 1024) >= 3 * MB


def test_tracing_tables_do_not_inflate_a_traced_peak() -> None:
    # 57 MB of small objects traced; the kernel also saw ~40 MB of tracing's tables.
    assert _figures(57 * MB).peak_bytes(97 * MB) == 57 * MB
