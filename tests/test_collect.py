"""Garbage collection at measurement points: GcMode parsing and what each mode collects.

Real garbage, real collections: a reference cycle (freed only by the cyclic
collector) is watched through a weak reference, and one kept alive through a
``gc.collect(1)`` lands in the oldest generation, out of a young collection's
reach. The interpreter's automatic collector is paused meanwhile, so only the
collections a test runs itself happen.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from pytest_automem.measure import _platform
from pytest_automem.measure import garbage as collect
from pytest_automem.measure.garbage import Collector, GcMode, generational_young_collections

REAL_COLLECT = gc.collect


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("full", GcMode.FULL),
        ("FULL", GcMode.FULL),
        ("Full", GcMode.FULL),
        ("auto", GcMode.AUTO),
        ("AUTO", GcMode.AUTO),
        (" auto ", GcMode.AUTO),
        ("off", GcMode.OFF),
        ("Off", GcMode.OFF),
        (True, GcMode.FULL),
        (False, GcMode.OFF),
        (GcMode.AUTO, GcMode.AUTO),
        (GcMode.OFF, GcMode.OFF),
    ],
    ids=repr,
)
def test_gc_mode_parse(value: object, mode: GcMode) -> None:
    assert GcMode.parse(value) is mode  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sometimes", "'sometimes'"),
        ("", "''"),
        ("young", "'young'"),
        ("true", "'true'"),
        (1, "1"),
        (None, "None"),
    ],
    ids=repr,
)
def test_gc_mode_parse_rejects_bad_value_naming_it(value: object, shown: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        GcMode.parse(value)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert shown in message
    assert "full, auto or off" in message


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Pause the automatic collector so only explicit collections happen."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Node:
    """A member of a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _cycle_garbage(promoted: bool) -> weakref.ref[_Node]:
    """A cycle, now garbage; alive until a collection reaches its generation.

    ``promoted``: the cycle was alive during a generation-1 collection (run by
    someone else, as the interpreter or a test would), which moved it to the
    oldest generation, out of a young collection's reach.
    """
    node = _Node()
    if promoted:
        REAL_COLLECT(1)
    ref = weakref.ref(node)
    del node
    return ref


@pytest.fixture
def someone_else_collects() -> Callable[[], int]:
    """A full ``gc.collect()``, as another piece of code would run it."""
    return lambda: REAL_COLLECT(2)


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Count the allocator trims the collector asks for."""
    done: list[None] = []

    def release() -> bool:
        done.append(None)
        return True

    monkeypatch.setattr(_platform, "release_free_memory", release)
    return done


def test_auto_frees_young_garbage_with_young_collections(
    no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    for _ in range(3):
        garbage = _cycle_garbage(promoted=False)
        collector.collect()
        assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (3, 0)
    assert trims == []  # trimming is asked for separately
    assert collector.release_allocator_memory() is True
    assert len(trims) == 1
    assert collector.trims_allocator is True


def test_auto_is_the_default() -> None:
    assert Collector().mode is GcMode.AUTO


def test_auto_frees_a_cycle_promoted_to_the_oldest_generation_since_the_last_point(
    no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector("auto")
    collector.collect()
    garbage = _cycle_garbage(promoted=True)
    collector.collect()
    assert garbage() is None
    young = _cycle_garbage(promoted=False)
    collector.collect()  # nothing promoted since the last point: young again
    assert young() is None
    assert (collector.young_collections, collector.full_collections) == (2, 1)


def test_auto_frees_a_cycle_promoted_before_the_first_point(
    no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    garbage = _cycle_garbage(promoted=True)
    collector.collect()
    assert garbage() is None
    assert collector.full_collections == 1


def test_auto_with_the_real_collector_stays_young(no_automatic_gc: None) -> None:
    """The collector's own young collection bumps gc stats; it must not count as someone else's."""
    collector = Collector(GcMode.AUTO)
    for _ in range(3):
        collector.collect()
    assert (collector.young_collections, collector.full_collections) == (3, 0)


# -- a lazy end: young first, full only when garbage may have escaped and matters


def test_lazy_end_frees_young_garbage_with_a_young_collection(
    no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    collector.mark()
    garbage = _cycle_garbage(promoted=False)
    collector.collect_lazily(lambda: True)
    assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (1, 0)


def test_lazy_end_frees_a_cycle_promoted_during_the_window_when_it_still_looks_grown(
    no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    collector.mark()
    garbage = _cycle_garbage(promoted=True)
    collector.collect_lazily(lambda: True)
    assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (1, 1)


def test_lazy_end_stays_young_when_what_is_left_is_small(
    no_automatic_gc: None, trims: list[None]
) -> None:
    """Below the threshold a promoted cycle may stay: it can only make growth look bigger."""
    asked: list[bool] = []

    def still_grown() -> bool:
        asked.append(promoted() is not None)
        return False

    collector = Collector(GcMode.AUTO)
    collector.mark()
    promoted = _cycle_garbage(promoted=True)
    young = _cycle_garbage(promoted=False)
    collector.collect_lazily(still_grown)
    assert young() is None
    assert asked == [True]  # asked once, after the young collection
    assert (collector.young_collections, collector.full_collections) == (1, 0)
    REAL_COLLECT()


def test_mark_forgets_older_collections_run_before_the_window(
    someone_else_collects: Callable[[], int], no_automatic_gc: None, trims: list[None]
) -> None:
    """A probe serves many spans: collections between them are no reason to go full."""
    collector = Collector(GcMode.AUTO)
    someone_else_collects()  # during an earlier test, or between tests
    collector.mark()
    garbage = _cycle_garbage(promoted=False)
    collector.collect_lazily(lambda: True)
    assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (1, 0)


def test_lazy_end_never_asks_when_nothing_was_promoted(
    no_automatic_gc: None, trims: list[None]
) -> None:
    def forbidden() -> bool:
        raise AssertionError("asked whether the window still looks grown")

    collector = Collector(GcMode.AUTO)
    collector.mark()
    collector.collect_lazily(forbidden)
    collector.collect_lazily(forbidden)  # its own young collection is no older one
    assert (collector.young_collections, collector.full_collections) == (2, 0)


@pytest.mark.parametrize(("mode", "freed"), [(GcMode.FULL, True), (GcMode.OFF, False)])
def test_lazy_end_in_other_modes_collects_as_the_mode_says(
    mode: GcMode, freed: bool, no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(mode)
    collector.mark()
    garbage = _cycle_garbage(promoted=True)
    collector.collect_lazily(lambda: False)
    assert (garbage() is None) is freed
    REAL_COLLECT()


@pytest.mark.parametrize("mode", [GcMode.FULL, "full", True])
def test_full_always_collects_everything(
    mode: object, no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(mode)  # type: ignore[arg-type]
    for promoted in (False, True, True):
        garbage = _cycle_garbage(promoted=promoted)
        collector.collect()
        assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (0, 3)
    assert trims == []
    assert collector.release_allocator_memory() is True
    assert len(trims) == 1


@pytest.mark.parametrize("mode", [GcMode.OFF, "off", False])
def test_off_never_collects_nor_trims(
    mode: object, no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(mode)  # type: ignore[arg-type]
    garbage = _cycle_garbage(promoted=False)
    collector.collect()
    collector.collect()
    assert garbage() is not None
    assert collector.release_allocator_memory() is False
    assert trims == []
    assert (collector.young_collections, collector.full_collections) == (0, 0)
    assert collector.trims_allocator is False
    REAL_COLLECT()


def test_collector_rejects_a_bad_mode() -> None:
    with pytest.raises(ValueError, match="'never'"):
        Collector("never")


@pytest.mark.parametrize(
    ("implementation", "version", "free_threaded", "young"),
    [
        ("cpython", (3, 10), False, True),
        ("cpython", (3, 11), False, True),
        ("cpython", (3, 13), False, True),
        ("cpython", (3, 13), True, False),  # one generation, always a full collection
        ("cpython", (3, 14), False, False),  # incremental: collect(1) is an increment
        ("cpython", (3, 15), False, False),  # not tested yet: full until it is
        ("cpython", (4, 0), False, False),
        ("pypy", (3, 10), False, False),
        ("graalpy", (3, 11), False, False),
    ],
)
def test_young_collections_only_where_the_collector_is_known_generational(
    implementation: str, version: tuple[int, int], free_threaded: bool, young: bool
) -> None:
    assert generational_young_collections(implementation, version, free_threaded) is young


def test_this_interpreter_is_one_auto_knows() -> None:
    """The suite runs on CPython 3.11 with the GIL: AUTO goes young here."""
    assert collect._AUTO_GOES_YOUNG is generational_young_collections()


@pytest.fixture
def counter_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the older-collection counter (CPython's ``gc.get_stats`` shape) is asked."""

    def forbidden() -> int:
        raise AssertionError("the older-collection counter was consulted")

    monkeypatch.setattr(collect, "_older_collections", forbidden)


@pytest.mark.parametrize("mode", [GcMode.AUTO, "auto"])
def test_auto_means_full_where_young_collections_are_not_generational(
    mode: object,
    monkeypatch: pytest.MonkeyPatch,
    counter_forbidden: None,
    no_automatic_gc: None,
    trims: list[None],
) -> None:
    monkeypatch.setattr(collect, "_AUTO_GOES_YOUNG", False)

    collector = Collector(mode)  # type: ignore[arg-type]
    for _ in range(2):
        garbage = _cycle_garbage(promoted=True)
        collector.collect()
        assert garbage() is None

    assert collector.mode is GcMode.FULL
    assert (collector.young_collections, collector.full_collections) == (0, 2)


def test_full_never_consults_the_older_collection_counter(
    counter_forbidden: None, no_automatic_gc: None, trims: list[None]
) -> None:
    collector = Collector(GcMode.FULL)
    for _ in range(2):
        garbage = _cycle_garbage(promoted=True)
        collector.collect()
        assert garbage() is None
    assert (collector.young_collections, collector.full_collections) == (0, 2)
