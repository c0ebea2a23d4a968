"""Memory the allocators keep for reuse, taken out of a measurement.

After a test frees many small objects, pymalloc keeps their blocks resident
(a pool goes back to the OS only with its whole arena), and glibc keeps free
chunks.  The next test's allocations fill that memory without moving RSS,
so its kernel peak looks small; and a test that allocated and freed a lot
looks, in RSS, as if it kept what the allocators kept.  Its verdict would
depend on which tests ran before it (docs/pytest-plugin.md, "Verdict rules").

:class:`FreshHeap` brackets a measurement whose figures are judged:

* **growth** becomes what the test *retained*: the change in the
  allocators' live bytes, plus resident memory that grew outside the
  allocators (a mapping made by a C library), not the pages they keep;
* **the peak**: glibc's free memory is handed back at the start (the
  window's collector trims it), so glibc allocations show in the kernel's
  mark.  pymalloc's free memory cannot be handed back while its arenas hold
  other objects.  Where it could hide a budget violation (more than a set
  share of the budget), the call is traced (``tracemalloc``, one frame) and
  the peak is the most memory Python's allocators had handed out at once:
  a figure that does not depend on what was cached.

The cached blocks are not taken instead (held with placeholder objects for
the length of the call): every long-lived object made during a held call
would land in a new arena, so over 300 small budgeted tests the allocators'
footprint grows from 23 MB to 149 MB, and each hold takes longer than the
last (docs/pytest-plugin.md, "Verdicts").

The statistics are read twice per measurement, and only for windows opened
with a fresh allocator (by default, tests with a budget); tracing slows the
call several times over, and is paid only where cached memory could change
the verdict.  The results say how much freed memory the allocators kept at
both ends.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

from ._platform.heap import HeapReading, read_heap

__all__ = ["FreshHeap", "HeapFigures"]

#: tracemalloc's own tables take ~49 bytes per traced block (measured on
#: CPython 3.11: one million traced ints), and no block is smaller than 16
#: bytes: during a traced call, at most this many bytes of the kernel's
#: peak per traced byte are tracing's own.
_TRACING_BYTES_PER_TRACED_BYTE = 49 / 16


@dataclass(frozen=True)
class HeapFigures:
    """What a :class:`FreshHeap` measured between its start and its end."""

    #: Live bytes the allocators gained, plus resident memory gained outside them.
    retained_bytes: int
    #: Freed memory the allocators kept at the start: at most this much of
    #: the call's allocations could be missing from an untraced kernel peak.
    cached_start_bytes: int
    #: Freed memory the allocators kept at the end (what RSS growth would
    #: have wrongly counted as retained).
    cached_end_bytes: int
    #: The most bytes Python's allocators had handed out at once during the
    #: call, where it was traced; else None.
    traced_peak_bytes: int | None

    def peak_bytes(self, kernel_peak_bytes: int) -> int:
        """The call's peak, given the kernel's (or sampled) peak above the baseline.

        Untraced: the kernel's.  Traced: the traced peak, or what the kernel
        saw beyond the most tracing's own tables could take, whichever is
        larger, so memory outside Python's allocators (a C library's
        ``malloc``, a mapping) still counts, if only as a lower bound.
        """
        if self.traced_peak_bytes is None:
            return kernel_peak_bytes
        tracing_at_most = self.traced_peak_bytes * _TRACING_BYTES_PER_TRACED_BYTE
        return max(self.traced_peak_bytes, int(kernel_peak_bytes - tracing_at_most))


class FreshHeap:
    """The allocators' state at a measurement's start (see the module doc).

    Made right before the baseline is read; :meth:`finish` right after the
    end is read, :meth:`release` where a measurement is abandoned.  Where
    the allocators' statistics cannot be read (another allocator,
    ``PYTHONMALLOC=malloc``), :attr:`available` is False.
    """

    __slots__ = ("_start", "_tracing")

    def __init__(self, *, trace_above_bytes: int | None = None) -> None:
        """``trace_above_bytes``: trace the call when more freed memory than
        this is cached at the start (None: never).  Not when something else
        already traces: its figures would be disturbed."""
        self._start: HeapReading | None = read_heap()
        self._tracing = (
            self._start is not None
            and trace_above_bytes is not None
            and self._start.cached_bytes > trace_above_bytes
            and not tracemalloc.is_tracing()
        )
        if self._tracing:
            tracemalloc.start(1)

    @property
    def available(self) -> bool:
        return self._start is not None

    @property
    def cached_start_bytes(self) -> int | None:
        return self._start.cached_bytes if self._start is not None else None

    def finish(self, baseline_rss_bytes: int, end_rss_bytes: int) -> HeapFigures | None:
        """The figures, given the RSS read at the baseline and at the end.

        Retained = change in live bytes + growth of resident memory outside
        the allocators' footprint (never negative: the allocators may hold
        address space they have not touched).
        """
        traced_peak = self._stop_tracing()
        start, end = self._start, read_heap()
        if start is None or end is None:
            return None
        outside_growth = (end_rss_bytes - end.footprint_bytes) - (
            baseline_rss_bytes - start.footprint_bytes
        )
        return HeapFigures(
            retained_bytes=end.in_use_bytes - start.in_use_bytes + max(0, outside_growth),
            cached_start_bytes=start.cached_bytes,
            cached_end_bytes=end.cached_bytes,
            traced_peak_bytes=traced_peak,
        )

    def release(self) -> None:
        """Stop tracing, if this measurement started it (idempotent)."""
        self._stop_tracing()

    def _stop_tracing(self) -> int | None:
        if not self._tracing:
            return None
        self._tracing = False
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak
