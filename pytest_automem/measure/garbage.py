"""Garbage collection at measurement points, as cheap as correctness allows.

Growth is measured after ``gc.collect()``.  A full collection walks every
tracked object in the process, which in a pytest session with thousands of
collected tests costs many times a short test, paid twice per measured
window.  Almost always a young collection (generations 0 and 1, which walk
only what was made since the last one) finds the same garbage, because a window's garbage is young:
objects only reach the oldest generation when a generation-1 collection runs
while they are alive.  So :attr:`GcMode.AUTO` does a young collection unless
the interpreter ran a generation-1 or -2 collection since the last mark, and
a full one then.  What AUTO can miss is garbage that was already old when the
window opened (freed cycles from earlier tests): that can only make growth
look *smaller*, never raise a false alarm.

A window that does not collect at its start (a test monitored only by
``--automem``) marks the collector as it opens and collects lazily at its
end (:meth:`Collector.collect_lazily`): young, and fully only when an older
collection ran during the window and the window still looks 1 MiB grown.

That reasoning holds only for the generational collector of CPython 3.10 to
3.13 (default build).  CPython 3.14's collector is incremental: there is no
generation 1, and ``gc.collect(1)`` collects the young generation plus *an
increment* of the old one, so what it finds depends on where the increment
stands, and old-generation collections no longer mean what the counter above
assumes.  The free-threaded build has a single generation and only ever
collects fully.  Other implementations (PyPy) have other collectors and no
``gc.get_stats`` of this shape.  On all of these AUTO means FULL: correct
everywhere, cheap only where we know why it is.  (CPython plans to restore
the generational collector in later 3.14 releases and in 3.15,
python/cpython#148726; AUTO can go young there again once that is tested.)

After collecting, the C allocator's cached free memory is handed back to the
OS (glibc ``malloc_trim``): glibc
keeps freed memory mapped for reuse, so without this a test that allocated
and freed 5 MB can look 5 MB bigger, and growth would depend on what earlier
tests left in the allocator.  Both ends of a window are trimmed, so the
baseline and the end are measured alike.

``gc.freeze()`` would be cheaper still but hides frozen objects from
``gc.get_objects()``/``gc.get_referrers()`` and from the user's own
``gc.collect()`` — it changes what tests observe, so it is not used.
"""

from __future__ import annotations

import enum
import gc
import sys
import sysconfig
from collections.abc import Callable

__all__ = ["Collector", "GcMode", "allocator_callbacks", "generational_young_collections"]

#: Called around each hand-back of the C allocator's free memory, as
#: ``callback("start", False)`` then ``callback("stop", released)``.  The
#: allocator is one per process, like the collector, whose ``gc.callbacks``
#: this mirrors: a recorder of a window's events
#: (:mod:`pytest_automem.measure.gc_events`) listens only while it is open.
allocator_callbacks: list[Callable[[str, bool], None]] = []


class GcMode(enum.Enum):
    """How a measurement point collects garbage."""

    FULL = "full"
    AUTO = "auto"
    OFF = "off"

    @classmethod
    def parse(cls, value: GcMode | str | bool) -> GcMode:
        """Accept a mode, its name, or a bool (True = FULL, False = OFF)."""
        if isinstance(value, GcMode):
            return value
        if isinstance(value, bool):
            return cls.FULL if value else cls.OFF
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"invalid gc mode {value!r}: expected full, auto or off") from None


def generational_young_collections(
    implementation: str = sys.implementation.name,
    version: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
    free_threaded: bool = bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
) -> bool:
    """Whether ``gc.collect(1)`` is the young collection AUTO relies on here.

    True only for CPython 3.10–3.13 with the GIL: the three-generation
    collector the module docstring reasons about.  Everywhere else AUTO
    collects fully (see the module docstring for why).
    """
    return implementation == "cpython" and (3, 10) <= version < (3, 14) and not free_threaded


#: Decided once per interpreter; tests patch it to check the other collectors.
_AUTO_GOES_YOUNG = generational_young_collections()


class _OlderCollectionCounter:
    """Counts generation-1 and -2 collections as they happen (a gc callback).

    ``gc.get_stats()`` gives the same count but builds three dicts per call;
    measurement points ask often, so a counter is kept instead.
    The interpreter has one garbage collector, so there is one counter,
    registered on first use.
    """

    def __init__(self) -> None:
        stats = gc.get_stats()
        self.count = int(stats[1]["collections"]) + int(stats[2]["collections"])
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation", 0) >= 1:
            self.count += 1


_counter: _OlderCollectionCounter | None = None


def _older_collections() -> int:
    """How many generation-1 and -2 collections the interpreter has run."""
    global _counter
    if _counter is None:
        _counter = _OlderCollectionCounter()
    return _counter.count


class Collector:
    """Collects at measurement points; remembers what the interpreter did between them."""

    __slots__ = ("_older_seen", "full_collections", "mode", "trims_allocator", "young_collections")

    def __init__(self, mode: GcMode | str | bool = GcMode.AUTO) -> None:
        self.mode = GcMode.parse(mode)
        if self.mode is GcMode.AUTO and not _AUTO_GOES_YOUNG:
            self.mode = GcMode.FULL  # so results report the collection that ran
        self._older_seen = _older_collections() if self.mode is GcMode.AUTO else 0
        self.full_collections = 0
        self.young_collections = 0
        #: True once a collection also returned the C allocator's free memory.
        self.trims_allocator = False

    def collect(self) -> None:
        """Collect garbage per the mode, then mark this point."""
        if self.mode is GcMode.OFF:
            return
        if self.mode is GcMode.FULL:
            gc.collect()
            self.full_collections += 1
            return
        if _older_collections() != self._older_seen:
            gc.collect()
            self.full_collections += 1
        else:
            gc.collect(1)
            self.young_collections += 1
        self._older_seen = _older_collections()

    def mark(self) -> None:
        """Forget the older collections run so far: a window opens here.

        A window that does not collect at its start (a lazy end, see
        :meth:`collect_lazily`) marks instead, so only the collections the
        interpreter runs *during* the window count as a reason to go full.
        """
        if self.mode is GcMode.AUTO:
            self._older_seen = _older_collections()

    def collect_lazily(self, still_grown: Callable[[], bool]) -> None:
        """Collect at the end of a window that did not collect at its start.

        In AUTO: a young collection, then a full one only if the interpreter
        ran an older collection since the mark (which may have promoted the
        window's garbage out of a young collection's reach) *and*
        ``still_grown()`` says the window still looks grown by enough to
        matter.  Below that, the figure may count cyclic garbage the
        interpreter promoted during the window, never more than the figure
        itself; a full collection in a large pytest session walks millions
        of objects (tens of milliseconds), and on real suites it almost
        never lowered RSS (docs/monitor.md).  Other modes collect as
        :meth:`collect` does.
        """
        if self.mode is not GcMode.AUTO:
            self.collect()
            return
        promoted = _older_collections() != self._older_seen
        gc.collect(1)
        self.young_collections += 1
        if promoted and still_grown():
            gc.collect()
            self.full_collections += 1
        self._older_seen = _older_collections()

    def release_allocator_memory(self) -> bool:
        """Hand glibc's cached free memory back to the OS (not in mode OFF)."""
        if self.mode is GcMode.OFF:
            return False
        from ._platform import release_free_memory  # ctypes: only once measuring

        for callback in allocator_callbacks:
            callback("start", False)
        released = release_free_memory()
        for callback in allocator_callbacks:
            callback("stop", released)
        self.trims_allocator = released or self.trims_allocator
        return self.trims_allocator
