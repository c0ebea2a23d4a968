"""A process tree's memory: the figures of each process, and the tree as one reader.

A tree monitor (``MemoryMonitor(pid, tree=True)``, what ``automem
monitor`` uses) samples the sum of the RSS of a process and of every
process it starts, so that a shell's 3 MB cannot hide the 2 GB of the job
it runs.  The sampler follows each process on its own too, and keeps its
figures in a table beside the ring (``sampler.ProcessTable``);
:func:`read_process_table` copies them out as a :class:`TreeReport`.

Peaks: the kernel's high-water mark is per process, so the peak of a sum
can only be sampled.  :class:`TreeMemory` gives the windows the root's
exact mark while the root is the only process the tree has had, and no
mark once it has had more; every process's own peak (its samples, and its
mark read at each look at the tree) still bounds the tree's from below.
"""

from __future__ import annotations

import mmap
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import sampler_child as layout
from ._platform import ProcessGoneError, ProcessMemory

if TYPE_CHECKING:
    from .sampler_parent import SamplerProcess

__all__ = ["ProcessFigures", "TreeMemory", "TreeReport", "read_process_table"]

#: How long a reader waits for the sampler to finish rewriting the table
#: (a rewrite takes microseconds) before it gives up on this reading.
_TABLE_READ_TIMEOUT_S = 0.1
_unpack_field = layout.COUNT_FIELD.unpack_from


@dataclass(frozen=True)
class ProcessFigures:
    """One process of a tree as the sampler saw it.

    ``peak_rss_bytes`` is the highest of its samples and of its kernel mark
    read at each look at the tree (Linux).  Times are seconds since the
    monitor started.  A running process's figures are at most one look
    (20 ms) old; an exited one's are final.
    """

    pid: int
    name: str
    peak_rss_bytes: int
    last_rss_bytes: int
    first_seen_s: float
    last_seen_s: float
    running: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "peak_rss_bytes": self.peak_rss_bytes,
            "last_rss_bytes": self.last_rss_bytes,
            "first_seen_s": round(self.first_seen_s, 6),
            "last_seen_s": round(self.last_seen_s, 6),
            "running": self.running,
        }


@dataclass(frozen=True)
class TreeReport:
    """The processes of a tree: how many were seen, and each one kept, largest peak first.

    ``processes`` holds every process followed now and the largest of those
    that have exited (``sampler.EXITED_SLOTS`` of them at least); more may
    have been seen.  ``processes_not_followed`` were found while
    ``max_processes`` were already followed: counted, not measured.
    """

    root_pid: int
    processes: tuple[ProcessFigures, ...]
    processes_seen: int
    processes_not_followed: int
    max_processes: int

    @property
    def largest_peak_bytes(self) -> int | None:
        """The largest peak of any one process: a lower bound of the tree's peak."""
        return self.processes[0].peak_rss_bytes if self.processes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "processes_seen": self.processes_seen,
            "processes_not_followed": self.processes_not_followed,
            "max_processes": self.max_processes,
            "processes": [process.to_dict() for process in self.processes],
        }


def read_process_table(
    buffer: mmap.mmap | bytearray, root_pid: int, origin_ns: int
) -> TreeReport | None:
    """Copy the process table out of the ring's mapping; None if the sampler
    never let it be read whole (it died while rewriting it).

    Lock-free like the ring: the copy is kept only if the table's
    generation was even before it and unchanged after it, so no slot is
    half written.  ``origin_ns`` (``time.monotonic_ns()``) is time zero.
    """
    capacity = _unpack_field(buffer, layout.OFFSET_CAPACITY)[0]
    max_processes = _unpack_field(buffer, layout.OFFSET_MAX_PROCESSES)[0]
    start = layout.table_offset(capacity)
    end = start + layout.table_slots(max_processes) * layout.SLOT.size
    deadline = time.monotonic() + _TABLE_READ_TIMEOUT_S
    while True:
        before = _unpack_field(buffer, layout.OFFSET_TABLE_GENERATION)[0]
        if before % 2 == 0:
            raw = bytes(buffer[start:end])
            counts = bytes(buffer[layout.OFFSET_PROCESSES_SEEN : layout.OFFSET_TABLE_USED + 8])
            if _unpack_field(buffer, layout.OFFSET_TABLE_GENERATION)[0] == before:
                break
        if time.monotonic() > deadline:
            return None
        time.sleep(0.0001)
    seen, not_followed, _ = (_unpack_field(counts, offset)[0] for offset in (0, 8, 16))
    processes = [
        _figures(slot, origin_ns)
        for slot in layout.SLOT.iter_unpack(raw)
        if slot[0]  # an unused slot is zeros
    ]
    processes.sort(key=lambda process: (-process.peak_rss_bytes, process.pid))
    return TreeReport(root_pid, tuple(processes), seen, not_followed, max_processes)


def _figures(slot: tuple[Any, ...], origin_ns: int) -> ProcessFigures:
    pid, peak, last, first_ns, last_ns, state, name = slot
    return ProcessFigures(
        pid=pid,
        name=name.rstrip(b"\0").decode("utf-8", "replace"),
        peak_rss_bytes=peak,
        last_rss_bytes=last,
        first_seen_s=(first_ns - origin_ns) / 1e9,
        last_seen_s=(last_ns - origin_ns) / 1e9,
        running=state == layout.PROCESS_RUNNING,
    )


class TreeMemory:
    """A process tree as one :class:`~pytest_automem.measure._platform.ProcessMemory`.

    Its RSS is the sampler's newest sum (at most one interval old): reading
    every process again here would cost as much as a sample, and could not
    be more coherent.  Its kernel mark is the root's while the root is the
    only process the tree has had; after that there is none, and windows
    take the sampled maximum of the sum.
    """

    def __init__(self, root: ProcessMemory, sampler: SamplerProcess) -> None:
        self.pid = root.pid
        self._root = root
        self._sampler = sampler

    def is_single(self) -> bool:
        """True while the root is the only process the tree has had."""
        return self._sampler.processes_seen() <= 1

    @property
    def peak_source(self) -> str | None:
        return self._root.peak_source if self.is_single() else None

    def rss_bytes(self) -> int:
        sampler = self._sampler
        if sampler.target_gone():
            raise ProcessGoneError(f"process {self.pid} and the processes it started have exited")
        newest = sampler.newest_rss_bytes()
        return self._root.rss_bytes() if newest is None else newest

    def reset_peak(self, rss_bytes: int | None = None) -> bool:
        return self._root.reset_peak(rss_bytes) if self.is_single() else False

    def peak_rss_bytes(self) -> int | None:
        return self._root.peak_rss_bytes() if self.is_single() else None

    def close(self) -> None:
        self._root.close()
