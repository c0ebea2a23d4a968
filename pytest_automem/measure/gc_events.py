"""Garbage collections and allocator trims as they happen, with their effect on RSS.

A kept curve of a test's memory (``--automem-samples``) explains itself
only with what moved it: a full collection that dropped 40 MB, the
plugin's own collection and ``malloc_trim`` at the window's ends.  A
:class:`CollectionRecorder` listens (``gc.callbacks`` and
:data:`~pytest_automem.measure.garbage.allocator_callbacks`) only while such a
window is open, and reads RSS before and after each event with the
monitor's own reader (a ``pread`` of ``statm``, about a microsecond).

Which collections are worth an event: during the test's call, only full
ones (generation 2).  Young collections run every few hundred allocations,
free young objects whose pages the allocators keep, and would bury the few
events that explain a curve.  At the window's ends (before the call starts,
after it ends) every collection is the plugin's own and is recorded
whatever its generation, with the trims beside it.  At most ``max_events``
are kept during the call (the first ones; :attr:`CollectionRecorder.dropped`
counts the rest), so a scenario that collects after each of a million
steps does not store a million events in the memory being measured.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..base.defaults import SAMPLES_MAX_EVENTS
from .garbage import allocator_callbacks

__all__ = ["CollectionRecorder", "RecordedEvent"]


@dataclass(frozen=True)
class RecordedEvent:
    """One collection or trim: when it began (``time.monotonic_ns()``, the
    sampler's clock), RSS before and after, and what it did."""

    started_ns: int
    #: ``gc`` or ``trim``.
    kind: str
    rss_before_bytes: int
    rss_after_bytes: int
    #: The collection's generation; -1 for a trim.
    generation: int = -1
    #: Objects the collection found unreachable; 0 for a trim.
    collected: int = 0
    #: A trim that had no ``malloc_trim`` to call released nothing.
    released: bool = True


class CollectionRecorder:
    """Records collections and trims between :meth:`start` and :meth:`stop`.

    :meth:`call_started` and :meth:`call_ended` mark the test's call: within
    it only full collections count (see the module docstring).
    """

    def __init__(
        self, read_rss: Callable[[], int], *, max_events: int = SAMPLES_MAX_EVENTS
    ) -> None:
        self._read_rss = read_rss
        self._max_events = max_events
        self._events: list[RecordedEvent] = []
        #: Collections of the call beyond ``max_events``, not kept.
        self.dropped = 0
        self._in_call = False
        self._started: tuple[int, int] | None = None
        #: ``time.monotonic_ns()`` at the call's start and end (0 until then).
        self.call_started_ns = 0
        self.call_ended_ns = 0

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        allocator_callbacks.append(self._on_trim)

    def call_started(self) -> None:
        self._in_call = True
        self.call_started_ns = time.monotonic_ns()

    def call_ended(self) -> None:
        self._in_call = False
        self.call_ended_ns = time.monotonic_ns()

    def stop(self) -> tuple[RecordedEvent, ...]:
        """Stop listening (idempotent); the events recorded, oldest first."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._on_trim in allocator_callbacks:
            allocator_callbacks.remove(self._on_trim)
        return tuple(self._events)

    def _begin(self) -> None:
        self._started = (time.monotonic_ns(), self._read_rss())

    def _end(self, kind: str, **what: int | bool) -> None:
        started, self._started = self._started, None
        if started is None:
            return
        if self._in_call and len(self._events) >= self._max_events:
            self.dropped += 1
            return
        self._events.append(RecordedEvent(started[0], kind, started[1], self._read_rss(), **what))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        generation = info.get("generation", 0)
        if self._in_call and generation < 2:
            return
        if phase == "start":
            self._begin()
        else:
            self._end("gc", generation=generation, collected=info.get("collected", 0))

    def _on_trim(self, phase: str, released: bool) -> None:
        if phase == "start":
            self._begin()
        else:
            self._end("trim", released=released)
