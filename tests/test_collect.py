"""Garbage collection at measurement points: GcMode parsing and what each mode collects.

``gc.collect`` is replaced by a recorder, so the tests see which collection a
mode asks for; the interpreter's automatic collector is paused meanwhile, so
only the collections a test runs itself move ``gc.get_stats()``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest

from pytest_automem.measure import _platform
from pytest_automem.measure import garbage as collect
from pytest_automem.measure.garbage import Collector, GcMode, generational_young_collections

Calls = list[tuple[int, ...]]
#: Taken at import, before any test replaces it.
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


@pytest.fixture
def gc_calls(monkeypatch: pytest.MonkeyPatch, no_automatic_gc: None) -> Calls:
    """Record every ``gc.collect(...)`` the collector makes (and collect nothing)."""
    calls: Calls = []

    def recorder(*args: int) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(gc, "collect", recorder)
    return calls


@pytest.fixture
def someone_else_collects() -> Callable[[], int]:
    """The real ``gc.collect(2)``, as another piece of code would run it."""
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


def test_auto_does_young_collections_normally(gc_calls: Calls, trims: list[None]) -> None:
    collector = Collector(GcMode.AUTO)
    assert gc_calls == []
    collector.collect()
    collector.collect()
    collector.collect()
    assert gc_calls == [(1,), (1,), (1,)]
    assert (collector.young_collections, collector.full_collections) == (3, 0)
    assert trims == []  # trimming is asked for separately
    assert collector.release_allocator_memory() is True
    assert len(trims) == 1
    assert collector.trims_allocator is True


def test_auto_is_the_default() -> None:
    assert Collector().mode is GcMode.AUTO


def test_auto_goes_full_after_someone_else_ran_a_full_collection(
    someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector("auto")
    collector.collect()
    assert gc_calls == [(1,)]
    someone_else_collects()
    collector.collect()
    assert gc_calls == [(1,), ()]
    collector.collect()  # the full one is marked: back to young
    assert gc_calls == [(1,), (), (1,)]
    assert (collector.young_collections, collector.full_collections) == (2, 1)


def test_auto_goes_full_when_older_collections_ran_before_the_first_point(
    someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    someone_else_collects()
    collector.collect()
    assert gc_calls == [()]


def test_auto_with_the_real_collector_stays_young(no_automatic_gc: None) -> None:
    """The collector's own young collection bumps gc stats; it must not count as someone else's."""
    collector = Collector(GcMode.AUTO)
    for _ in range(3):
        collector.collect()
    assert (collector.young_collections, collector.full_collections) == (3, 0)


# -- a lazy end: young first, full only when garbage may have escaped and matters


def test_lazy_end_stays_young_when_no_older_collection_ran(
    gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    collector.mark()
    collector.collect_lazily(lambda: True)
    assert gc_calls == [(1,)]
    assert (collector.young_collections, collector.full_collections) == (1, 0)


def test_lazy_end_goes_full_when_an_older_collection_ran_and_it_still_looks_grown(
    someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(GcMode.AUTO)
    collector.mark()
    someone_else_collects()  # may have promoted the window's garbage
    collector.collect_lazily(lambda: True)
    assert gc_calls == [(1,), ()]
    assert (collector.young_collections, collector.full_collections) == (1, 1)


def test_lazy_end_stays_young_when_what_is_left_is_small(
    someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    asked: list[None] = []

    def still_grown() -> bool:
        asked.append(None)
        return False

    collector = Collector(GcMode.AUTO)
    collector.mark()
    someone_else_collects()
    collector.collect_lazily(still_grown)
    assert gc_calls == [(1,)]
    assert len(asked) == 1  # asked after the young collection


def test_mark_forgets_older_collections_run_before_the_window(
    someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    """A probe serves many spans: collections between them are no reason to go full."""
    collector = Collector(GcMode.AUTO)
    someone_else_collects()  # during an earlier test, or between tests
    collector.mark()
    collector.collect_lazily(lambda: True)
    assert gc_calls == [(1,)]


def test_lazy_end_never_asks_when_nothing_was_promoted(gc_calls: Calls, trims: list[None]) -> None:
    def forbidden() -> bool:
        raise AssertionError("asked whether the window still looks grown")

    collector = Collector(GcMode.AUTO)
    collector.mark()
    collector.collect_lazily(forbidden)
    collector.collect_lazily(forbidden)  # its own young collection is no older one
    assert gc_calls == [(1,), (1,)]


@pytest.mark.parametrize(("mode", "calls"), [(GcMode.FULL, [()]), (GcMode.OFF, [])])
def test_lazy_end_in_other_modes_collects_as_the_mode_says(
    mode: GcMode, calls: Calls, gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(mode)
    collector.mark()
    collector.collect_lazily(lambda: False)
    assert gc_calls == calls


@pytest.mark.parametrize("mode", [GcMode.FULL, "full", True])
def test_full_always_collects_everything(
    mode: object, someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(mode)  # type: ignore[arg-type]
    collector.collect()
    someone_else_collects()
    collector.collect()
    collector.collect()
    assert gc_calls == [(), (), ()]
    assert (collector.young_collections, collector.full_collections) == (0, 3)
    assert trims == []
    assert collector.release_allocator_memory() is True
    assert len(trims) == 1


@pytest.mark.parametrize("mode", [GcMode.OFF, "off", False])
def test_off_never_collects_nor_trims(
    mode: object, someone_else_collects: Callable[[], int], gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(mode)  # type: ignore[arg-type]
    collector.collect()
    someone_else_collects()
    collector.collect()
    assert collector.release_allocator_memory() is False
    assert gc_calls == []
    assert trims == []
    assert (collector.young_collections, collector.full_collections) == (0, 0)
    assert collector.trims_allocator is False


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
    gc_calls: Calls,
    trims: list[None],
) -> None:
    monkeypatch.setattr(collect, "_AUTO_GOES_YOUNG", False)

    collector = Collector(mode)  # type: ignore[arg-type]
    collector.collect()
    collector.collect()

    assert collector.mode is GcMode.FULL
    assert gc_calls == [(), ()]
    assert (collector.young_collections, collector.full_collections) == (0, 2)


def test_full_never_consults_the_older_collection_counter(
    counter_forbidden: None, gc_calls: Calls, trims: list[None]
) -> None:
    collector = Collector(GcMode.FULL)
    collector.collect()
    collector.collect()

    assert gc_calls == [(), ()]
