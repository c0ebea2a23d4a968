"""The sampler process: reads a process's RSS every interval into shared memory.

Or a process tree's: the target and every process it starts, summed, with
each process's own figures kept beside the ring (see ``ProcessTree``).

Why a separate process: a sampler thread inside the test process only runs
when it gets the GIL, which CPython hands over every 5 ms, so a test in a
pure-Python loop starves it (measured: 167–300 samples/s at a 1 ms target).
A process of its own has its own interpreter and keeps a 1 ms rate.

This module is the child's entry point and stands alone: it imports only the
standard library (psutil only when asked to read through it), so it starts
fast under ``python -I`` and cannot drag pytest into the child.  The parent
imports the ring layout from here; there is exactly one definition of it.

Ring layout (native-endian, all fields 8 bytes, in a shared file mapping)::

    header (HEADER_SIZE bytes)
      0  magic            b"AUTOMEM1"
      8  capacity         number of entries in the ring
     16  interval_ns      target sampling interval
     24  write_count      samples written so far (entry i lives at i % capacity)
     32  status           STATUS_* below
     40  stop_request     the parent writes 1 to ask the sampler to exit
     48  sampler_pid
     56  target_pid
     64  max_processes    0: the target alone; N: the target and its
                          descendants, at most N followed at once (a tree)
     72  table_generation the process table's sequence lock (odd: being written)
     80  processes_seen   (tree) distinct processes found in the tree
     88  not_followed     (tree) of those, processes never followed: over the cap
     96  table_used       (tree) slots of the process table in use
    104  trip_rss_bytes   the parent's trip wire: signal it when RSS passes this (0: none)
    112  trip_generation  the parent bumps it after each new trip_rss_bytes
    120  trips_sent       signals sent for the current generation
    128  idle_interval_ns the interval while no window wants samples (see below)
    136  wanted           the parent's count of open windows that want every sample
    144  span_opened_ns   when the parent's open span (a probe's) began; 0: none open
    entries, ENTRY_SIZE bytes each: (t_ns: int64 CLOCK_MONOTONIC, rss_bytes: int64)
    process table (tree only), table_slots(max_processes) slots of SLOT

Between windows that want samples the sampler may rest: while ``wanted`` is
0 it samples every ``idle_interval_ns`` (equal to ``interval_ns``: never
rests).  A parent that raises ``wanted`` from 0 writes a byte into the
lifeline pipe, which wakes the sampler at once; it samples, then keeps the
full rate while ``wanted`` stays above 0.  A span (a short test's call,
whose peak the kernel mark gives) wants no samples until it has been open
for an idle interval: from then on it gets the full rate too, so a long
test's curve and growth rate have every sample but its first ones.

Why rest at all: every wake-up of a Python process costs ~20 µs of CPU on a
virtual machine whatever the loop does, and under ``pytest -n`` the
samplers share the cores with the workers; a test's exact peak comes from
the kernel mark, not from the samples.

The sampler writes an entry, then publishes it by bumping ``write_count``
(see ``Ring.append``); while ``write_count`` is ``n`` it may be rewriting the
slot of entry ``n - capacity``, so readers take entries from
``n - capacity + 1`` on.  For a tree an entry's RSS is the sum over the
processes followed; each process's own figures are in the process table
(see ``ProcessTable``).
"""

from __future__ import annotations

import argparse
import mmap
import os
import select
import struct
import sys
import time
from collections.abc import Callable
from typing import NoReturn

MAGIC = b"AUTOMEM1"
HEADER = struct.Struct("=8sqqqqqqq")
HEADER_SIZE = 192
ENTRY = struct.Struct("=qq")
ENTRY_SIZE = ENTRY.size
COUNT_FIELD = struct.Struct("=q")
OFFSET_CAPACITY = 8
OFFSET_INTERVAL = 16
OFFSET_WRITE_COUNT = 24
OFFSET_STATUS = 32
OFFSET_STOP = 40
OFFSET_MAX_PROCESSES = 64
OFFSET_TABLE_GENERATION = 72
OFFSET_PROCESSES_SEEN = 80
OFFSET_NOT_FOLLOWED = 88
OFFSET_TABLE_USED = 96
OFFSET_TRIP_RSS = 104
OFFSET_TRIP_GENERATION = 112
OFFSET_TRIPS_SENT = 120
OFFSET_IDLE_INTERVAL = 128
OFFSET_WANTED = 136
OFFSET_SPAN_OPENED = 144
#: Signals one trip wire sends at most: the crossing, then each new high
#: :data:`TRIP_STEP_SHARE` above the last, so the last dump is near the peak.
MAX_TRIPS = 4
TRIP_STEP_SHARE = 0.125
#: A process table slot: pid, peak_rss, last_rss, first_seen_ns,
#: last_seen_ns, state, and the command name (``comm``, 15 bytes at most).
SLOT = struct.Struct("=qqqqqq16s")
PROCESS_RUNNING = 1
PROCESS_EXITED = 2
#: Table slots kept for processes that have exited, beyond the ``max_processes``
#: followed at once: the summary lists the largest of them.
EXITED_SLOTS = 32

STATUS_STARTING = 0
STATUS_RUNNING = 1
STATUS_STOPPED = 2
STATUS_TARGET_GONE = 3
STATUS_PARENT_GONE = 4

#: How often (in samples) the loop checks for a stop request and its parent.
_HOUSEKEEPING_EVERY = 16
_PR_SET_TIMERSLACK = 29
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def ring_size_bytes(capacity: int, max_processes: int = 0) -> int:
    """Bytes the shared mapping needs for ``capacity`` entries (and a tree's table)."""
    return table_offset(capacity) + table_slots(max_processes) * SLOT.size


def table_offset(capacity: int) -> int:
    """Where the process table starts: right after the ring's entries."""
    return HEADER_SIZE + capacity * ENTRY_SIZE


def table_slots(max_processes: int) -> int:
    """Slots of the process table: one per process followed, and the exited kept."""
    return max_processes + EXITED_SLOTS if max_processes else 0


def _linux_timer_slack() -> None:
    """Sleep with 1 ns timer slack.

    The default 50 µs timer slack lets the kernel batch our wake-ups; at a
    1 ms interval that is 5 % jitter for nothing.  ctypes is imported here,
    in the child only (the parent imports this module for the ring layout),
    and libc is reached through the process's own symbols: ``ctypes.util``,
    for ``find_library``, would nearly double the child's start (its
    imports, and ``ldconfig``).
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _procfs_reader(pid: int) -> Callable[[], int]:
    """RSS of ``pid`` from ``/proc/<pid>/statm`` on a descriptor kept open:
    the sampler reads it every interval."""
    fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    pread = os.pread

    def read() -> int:
        return int(pread(fd, 128, 0).split()[1]) * page

    return read


def _psutil_reader(pid: int) -> Callable[[], int]:
    """RSS of ``pid`` through psutil, for platforms without procfs."""
    import psutil

    memory_info = psutil.Process(pid).memory_info

    def read() -> int:
        return int(memory_info().rss)

    return read


def _parent_alive(parent_pid: int) -> bool:
    """True while the process that started us is alive.

    ``os.getppid`` is the parent *process* (its thread group), so it stays
    put when the thread that started us exits, and changes when the process
    dies: we are re-parented to a subreaper or init, a live process whose
    pid cannot be the dead parent's (or to 0, a parent outside our pid
    namespace; a namespace's init taking everyone with it when it dies).
    Where that is not reliable (Windows) fall back to probing the pid.
    """
    if os.name == "posix":
        return os.getppid() == parent_pid
    try:  # pragma: no cover - Windows only
        import psutil

        return bool(psutil.pid_exists(parent_pid))
    except ImportError:  # pragma: no cover
        return True


class Ring:
    """The sampler's view of the shared mapping: it only appends."""

    def __init__(self, buffer: mmap.mmap) -> None:
        self.buffer = buffer
        magic, capacity, *_ = HEADER.unpack_from(buffer, 0)
        if magic != MAGIC:
            raise ValueError("shared memory does not hold an automem ring")
        self.capacity = capacity
        self.count = 0

    def set_status(self, status: int) -> None:
        COUNT_FIELD.pack_into(self.buffer, OFFSET_STATUS, status)

    def stop_requested(self) -> bool:
        return COUNT_FIELD.unpack_from(self.buffer, OFFSET_STOP)[0] != 0

    def wanted(self, now_ns: int, idle_interval_ns: int) -> bool:
        """Whether the parent wants every sample now: a window is open, or a
        span has been open for ``idle_interval_ns`` or more."""
        if COUNT_FIELD.unpack_from(self.buffer, OFFSET_WANTED)[0]:
            return True
        opened_ns = COUNT_FIELD.unpack_from(self.buffer, OFFSET_SPAN_OPENED)[0]
        return opened_ns != 0 and now_ns - opened_ns >= idle_interval_ns

    def append(self, t_ns: int, rss_bytes: int) -> None:
        """Write the entry, then publish it by storing the new count.

        The reader trusts every entry below the count it reads, except the
        slot this write may be filling (see ``RingReader.read``), so the
        entry's bytes must be visible before the count's.  What orders them:
        two separate C-level copies, with interpreter work between them,
        that no compiler can reorder; and the CPU's store order, which on
        x86-64 (total store order) makes stores visible to other cores in
        program order, while the reader's loads (count, then entries, then
        count again) stay in program order too.  A weakly ordered CPU
        (ARM64) makes no such promise, and pure Python has no fence to ask
        for one.
        """
        offset = HEADER_SIZE + (self.count % self.capacity) * ENTRY_SIZE
        ENTRY.pack_into(self.buffer, offset, t_ns, rss_bytes)
        self.count += 1
        COUNT_FIELD.pack_into(self.buffer, OFFSET_WRITE_COUNT, self.count)


# -- a process tree -----------------------------------------------------------

#: How often the tree is looked for new processes, at least: a process that
#: starts and exits between two looks is not seen.
SCAN_INTERVAL_NS = 20_000_000
#: A look may take at most this share of the sampler's time: on a machine
#: with thousands of processes, listing them all takes longer, and the looks
#: are spaced further apart rather than delaying the samples.
_SCAN_TIME_SHARE = 0.05
#: Processes whose name and kernel mark are read at each look: bounds a
#: look's cost in a large tree (a read of ``status`` each); the
#: others wait for their turn, and their 1 ms samples keep their peak.
_DETAILS_PER_SCAN = 16


class _ProcfsProcess:
    """One process of a tree, read through procfs on kept descriptors.

    ``statm`` every sample (RSS); ``status`` at each look (name, and the
    kernel's high-water mark, ``VmHWM``, which catches what a process held
    between two samples).  Both follow the process through ``exec``.
    """

    __slots__ = ("_statm", "_status", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._statm = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._status = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(self._statm)
            raise

    def rss_bytes(self) -> int:
        """RSS now; 0 once the process has exited (a zombie's statm is all
        zeros, a reaped process's cannot be read)."""
        try:
            return int(os.pread(self._statm, 128, 0).split(None, 2)[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return 0

    def name_and_mark(self) -> tuple[bytes, int]:
        """The command name and the kernel's high-water mark (0 where unknown)."""
        try:
            status = os.pread(self._status, 4096, 0)
        except OSError:
            return b"", 0
        name = status[6 : status.find(b"\n")] if status.startswith(b"Name:\t") else b""
        start = status.find(b"VmHWM:")
        if start < 0:  # a zombie has no memory map
            return name, 0
        return name, int(status[start + 6 : status.find(b"\n", start)].split()[0]) * 1024

    def close(self) -> None:
        os.close(self._statm)
        os.close(self._status)


class _PsutilProcess:
    """One process of a tree, read through psutil (no procfs): no kernel mark,
    except Windows' peak working set."""

    __slots__ = ("_errors", "_memory_info", "_process", "pid")

    def __init__(self, pid: int) -> None:
        import psutil

        self.pid = pid
        self._process = psutil.Process(pid)
        self._memory_info = self._process.memory_info
        self._errors = (psutil.Error, OSError)

    def rss_bytes(self) -> int:
        try:
            return int(self._memory_info().rss)
        except self._errors:
            return 0

    def name_and_mark(self) -> tuple[bytes, int]:
        try:
            name = self._process.name().encode("utf-8", "replace")
            return name, int(getattr(self._memory_info(), "peak_wset", 0))
        except self._errors:
            return b"", 0

    def close(self) -> None:
        """Nothing kept open."""


def _procfs_pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _procfs_last_pid() -> Callable[[], int | None]:
    """The pid the kernel gave last, from ``/proc/loadavg`` on a kept descriptor.

    While it stays put no process has started anywhere (in our pid
    namespace, which also numbers the processes of those below it), so a
    look can skip listing ``/proc``: that listing is most of a look's cost
    (its caches are cold, as looks are 20 ms apart), and this read is one
    small ``pread``.
    """
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return lambda: None

    def last_pid() -> int | None:
        try:
            return int(os.pread(fd, 128, 0).rsplit(None, 1)[1])
        except (OSError, IndexError, ValueError):
            return None

    return last_pid


def _procfs_parent(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/<pid>/stat``; None if it cannot be read.

    The command name in parentheses may hold spaces and parentheses, so the
    fields are counted from the last ``)``: state, then the parent.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.read(fd, 512)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return int(stat[stat.rfind(b")") + 2 :].split(None, 2)[1])
    except (IndexError, ValueError):
        return None


class ProcessSource:
    """How a tree's processes are found and read: procfs, or psutil elsewhere."""

    __slots__ = ("last_pid", "open_process", "parent_of", "pids")

    def __init__(
        self,
        open_process: Callable[[int], _ProcfsProcess | _PsutilProcess],
        pids: Callable[[], set[int]],
        parent_of: Callable[[int], int | None],
        last_pid: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.open_process = open_process
        self.pids = pids
        self.parent_of = parent_of
        #: The pid given last, or None where unknown (then every look lists).
        self.last_pid = last_pid

    def open(self, pid: int) -> _ProcfsProcess | _PsutilProcess | None:
        """A reader on ``pid``; None if it has gone or cannot be read."""
        try:
            return self.open_process(pid)
        except Exception as exc:  # OSError, or psutil's NoSuchProcess and AccessDenied
            if isinstance(exc, OSError) or type(exc).__name__ in _PSUTIL_REFUSALS:
                return None
            raise


_PSUTIL_REFUSALS = {"NoSuchProcess", "ZombieProcess", "AccessDenied"}


def procfs_source() -> ProcessSource:
    return ProcessSource(_ProcfsProcess, _procfs_pids, _procfs_parent, _procfs_last_pid())


def psutil_source() -> ProcessSource:
    """psutil's listing and parents; imported here, in a child started with site-packages."""
    import psutil

    def parent_of(pid: int) -> int | None:
        try:
            return int(psutil.Process(pid).ppid())
        except psutil.Error:
            return None

    return ProcessSource(_PsutilProcess, lambda: set(psutil.pids()), parent_of)


class _Member:
    """A process followed (``running`` until it exits), its reader and its figures."""

    __slots__ = (
        "first_ns", "last_ns", "last_rss", "name", "peak_rss", "pid", "process", "running", "slot",
    )  # fmt: skip

    def __init__(
        self, process: _ProcfsProcess | _PsutilProcess, rss: int, now_ns: int, slot: int
    ) -> None:
        self.process = process
        self.running = True
        self.pid = process.pid
        self.name = b""
        self.peak_rss = self.last_rss = rss
        self.first_ns = self.last_ns = now_ns
        self.slot = slot

    def read_details(self) -> None:
        """Name and kernel mark: a process that ``exec``s changes its name,
        and its mark holds what it touched between two samples."""
        name, mark = self.process.name_and_mark()
        if name:
            self.name = name
        if mark > self.peak_rss:
            self.peak_rss = mark


class ProcessTable:
    """The sampler's side of the process table: one slot per process, written
    under a sequence lock.

    Why a table in the ring's own mapping rather than a file: the parent may
    read it at any moment (a live view, and at its close, just before it
    kills the sampler without waiting), nothing is left on disk whatever
    dies, and no file is written hundreds of times a second.  The table is
    rewritten at each look at the tree, and a process's slot as soon as the
    process exits, so the figures of a process that has exited are final
    and those of one still running are at most one look old.  A reader
    copies the table between two even readings of the generation (the
    stores are ordered as ``Ring.append`` says, with the same caveat).
    """

    def __init__(self, buffer: mmap.mmap, capacity: int, max_processes: int) -> None:
        self.buffer = buffer
        self.offset = table_offset(capacity)
        self.slots = table_slots(max_processes)
        self.generation = COUNT_FIELD.unpack_from(buffer, OFFSET_TABLE_GENERATION)[0] & ~1

    def publish(self, members: list[_Member], seen: int, not_followed: int, used: int) -> None:
        """Write ``members``' slots and the tree's counts, as one update."""
        buffer = self.buffer
        self.generation += 1
        COUNT_FIELD.pack_into(buffer, OFFSET_TABLE_GENERATION, self.generation)
        for member in members:
            SLOT.pack_into(
                buffer, self.offset + member.slot * SLOT.size,
                member.pid, member.peak_rss, member.last_rss, member.first_ns, member.last_ns,
                PROCESS_RUNNING if member.running else PROCESS_EXITED,
                member.name,
            )  # fmt: skip
        COUNT_FIELD.pack_into(buffer, OFFSET_PROCESSES_SEEN, seen)
        COUNT_FIELD.pack_into(buffer, OFFSET_NOT_FOLLOWED, not_followed)
        COUNT_FIELD.pack_into(buffer, OFFSET_TABLE_USED, used)
        self.generation += 1
        COUNT_FIELD.pack_into(buffer, OFFSET_TABLE_GENERATION, self.generation)


def _descendants(parents: dict[int, int], tree: set[int]) -> list[int]:
    """The pids of ``parents`` (pid to parent) that descend from ``tree``,
    each after its parent."""
    found: list[int] = []
    members = set(tree)
    waiting = dict(parents)
    while True:
        joined = [pid for pid, parent in waiting.items() if parent in members]
        if not joined:
            return found
        for pid in sorted(joined):
            found.append(pid)
            members.add(pid)
            del waiting[pid]


class ProcessTree:
    """The target and the processes it starts, followed and summed every sample.

    Per sample, one read per process followed (``statm`` on a kept
    descriptor): the cost grows with the tree, and the cap bounds it
    (``max_processes`` followed at once; more are counted, not followed).
    New processes are found by a look at the whole process table every
    :data:`SCAN_INTERVAL_NS` or more (see :data:`_SCAN_TIME_SHARE`): the
    processes whose parent is in the tree join it, recursively.  The
    kernel's per-process ``children`` lists would be cheaper, but they need
    ``CONFIG_PROC_CHILDREN``, which many kernels lack.  A process that exits
    drops out at the next sample (its ``statm`` reads zeros or fails); its
    children stay followed, whoever adopts them.
    """

    def __init__(
        self,
        root: _ProcfsProcess | _PsutilProcess,
        max_processes: int,
        table: ProcessTable,
        source: ProcessSource,
        now_ns: int,
        exclude: frozenset[int] = frozenset(),
    ) -> None:
        self.max_processes = max_processes
        self.table = table
        self.source = source
        self.members: list[_Member] = []
        #: Slot owners, exited processes included, for the table.
        self.slots: list[_Member | None] = [None] * table.slots
        #: Pids not to look at again while they exist: outside the tree, or done.
        self.ignored: set[int] = set(exclude)
        #: Pids in the tree but not followed (over the cap), oldest first.
        self.unfollowed: dict[int, None] = {}
        self.seen = 1  # the target
        self.not_followed = 0
        self.next_scan_ns = 0
        self.last_sample_ns = now_ns
        self._details_turn = 0
        self._last_pid: int | None = None
        rss = root.rss_bytes()
        if not rss or not self._follow(root, rss, now_ns):
            raise ProcessLookupError(f"process {root.pid} has exited")
        self.scan(now_ns)

    def sample(self) -> int:
        """The tree's RSS now: the sum over the processes followed (0: all gone)."""
        total = 0
        exited = None
        for member in self.members:
            rss = member.process.rss_bytes()
            if rss:
                member.last_rss = rss
                if rss > member.peak_rss:
                    member.peak_rss = rss
                total += rss
            elif exited is None:
                exited = [member]
            else:
                exited.append(member)
        if exited is not None:
            self._drop(exited)
            if not self.members and self.unfollowed:  # room at last for those over the cap
                self.scan(time.monotonic_ns())
                return self.sample()
        return total

    def after_sample(self, t_ns: int) -> None:
        """Called after each sample: looks at the tree when a look is due."""
        self.last_sample_ns = t_ns
        if t_ns >= self.next_scan_ns:
            self.scan(t_ns)

    def scan(self, now_ns: int) -> None:
        """Look for new processes in the tree, refresh names and marks, publish.

        The process list is read only if a process has started since the
        last look (see ``ProcessSource.last_pid``), or to see whether those
        over the cap still live.
        """
        started_ns = time.monotonic_ns()
        last_pid = self.source.last_pid()  # before the listing: nothing slips between
        if last_pid is None or last_pid != self._last_pid or self.unfollowed:
            self._discover(now_ns)
        self._last_pid = last_pid
        self._refresh_details()
        self._publish_running(now_ns)
        cost_ns = time.monotonic_ns() - started_ns
        self.next_scan_ns = now_ns + max(SCAN_INTERVAL_NS, int(cost_ns / _SCAN_TIME_SHARE))

    def _discover(self, now_ns: int) -> None:
        """Follow the processes that joined the tree since the last look."""
        listed = self.source.pids()
        in_tree = {member.pid for member in self.members} | set(self.unfollowed)
        parents: dict[int, int] = {}
        for pid in listed - in_tree - self.ignored:
            parent = self.source.parent_of(pid)
            if parent is not None:
                parents[pid] = parent
        found = _descendants(parents, in_tree)
        self.ignored = (self.ignored & listed) | (listed - in_tree - set(found))
        for pid in list(self.unfollowed):
            if pid not in listed:
                del self.unfollowed[pid]
        self.seen += len(found)
        for pid in [*self.unfollowed, *found]:
            self._take(pid, now_ns, pid in self.unfollowed)

    def finish(self) -> None:
        """Publish every process's figures as they stand (the sampler is stopping)."""
        self._publish_running(self.last_sample_ns)

    def _take(self, pid: int, now_ns: int, was_unfollowed: bool) -> None:
        """Follow ``pid`` if there is room, else count it as not followed."""
        if len(self.members) >= self.max_processes:
            if not was_unfollowed:
                self.unfollowed[pid] = None
                self.not_followed += 1
            return
        if was_unfollowed:
            del self.unfollowed[pid]
            self.not_followed -= 1
        self.ignored.add(pid)  # whatever happens now, it is not new again
        process = self.source.open(pid)
        if process is None:
            return
        rss = process.rss_bytes()
        if not rss or not self._follow(process, rss, now_ns):  # exited in between
            process.close()

    def _follow(self, process: _ProcfsProcess | _PsutilProcess, rss: int, now_ns: int) -> bool:
        slot = self._free_slot()
        if slot is None:
            return False
        member = _Member(process, rss, now_ns, slot)
        member.read_details()
        self.slots[slot] = member
        self.members.append(member)
        return True

    def _free_slot(self) -> int | None:
        """A slot never used, else the one of the exited process with the
        smallest peak (the table keeps the largest)."""
        exited = None
        for index, owner in enumerate(self.slots):
            if owner is None:
                return index
            if not owner.running and (exited is None or owner.peak_rss < exited.peak_rss):
                exited = owner
        return None if exited is None else exited.slot

    def _drop(self, exited: list[_Member]) -> None:
        """Stop following processes that have exited; publish their final figures."""
        for member in exited:
            self.members.remove(member)
            member.process.close()
            member.running = False
            member.last_ns = self.last_sample_ns
            self.ignored.add(member.pid)  # a zombie is still listed: not a new process
        self._publish(exited)

    def _refresh_details(self) -> None:
        """Names and marks of the next :data:`_DETAILS_PER_SCAN` processes, in turn."""
        members = self.members
        if len(members) <= _DETAILS_PER_SCAN:
            chosen = members
        else:
            start = self._details_turn % len(members)
            chosen = (members[start:] + members[:start])[:_DETAILS_PER_SCAN]
            self._details_turn = start + _DETAILS_PER_SCAN
        for member in chosen:
            member.read_details()

    def _publish_running(self, now_ns: int) -> None:
        """Publish the processes followed, seen alive at ``now_ns``."""
        for member in self.members:
            member.last_ns = now_ns
        self._publish(self.members)

    def _publish(self, members: list[_Member]) -> None:
        used = sum(1 for owner in self.slots if owner is not None)
        self.table.publish(members, self.seen, self.not_followed, used)


#: What a sleep of the sampler ended with.
SLEPT = 0
NUDGED = 1
PARENT_GONE = 2


def _lifeline_waiter(fd: int) -> Callable[[float], int]:
    """A sleep that ends at once when the parent process dies or nudges.

    ``fd`` is the read end of a pipe whose only write end the parent holds.
    When the parent process is gone (by SIGKILL too) the pipe reads as
    end-of-file, so ``select`` wakes the moment it dies: the sleep returns
    :data:`PARENT_GONE`.  Descriptors belong to the process, not a thread,
    so a thread's exit cannot close it (as ``PR_SET_PDEATHSIG`` fires when
    the parent *thread* exits, it would kill the sampler of a monitor
    started from a worker thread).  The ``getppid`` check every 16 samples
    stays, for a parent whose forks (``os.fork`` without ``exec``) keep a
    copy of the write end open after it died.  A byte the parent writes
    ends the sleep early instead (:data:`NUDGED`): a window that wants every
    sample opened while the sampler rested (see the module docstring).

    ``select`` takes descriptors below 1024 only and the parent's number may
    be higher, so we watch a duplicate: the lowest free number, in a child
    that has a handful open.
    """
    watched = os.dup(fd)
    os.close(fd)
    os.set_blocking(watched, False)
    descriptors = [watched]
    wait = select.select

    def sleep(seconds: float) -> int:
        readable, _, _ = wait(descriptors, [], [], seconds)
        if not readable:
            return SLEPT
        try:
            nudges = os.read(watched, 4096)
        except BlockingIOError:  # another reader took the bytes: nothing to wake for
            return NUDGED
        return NUDGED if nudges else PARENT_GONE

    return sleep


def _plain_waiter(seconds: float) -> int:
    """A sleep with no lifeline (Windows); ``_parent_alive`` alone watches the parent."""
    time.sleep(seconds)
    return SLEPT


class TripWire:
    """Signals the target when its RSS passes the parent's threshold.

    The parent (:class:`~pytest_automem.measure.sampler_parent.SamplerProcess`)
    writes a threshold, then bumps the generation; a new generation re-arms
    the wire.  On a crossing the target gets ``signal_number`` (it dumps
    every thread's stack: :mod:`pytest_automem.measure.stack_dumps`), and the
    wire moves up by :data:`TRIP_STEP_SHARE`, so that of at most
    :data:`MAX_TRIPS` dumps the last is taken near the highest sample.  The
    sampler writes ``trips_sent`` only, the parent the other two fields.
    """

    __slots__ = ("_buffer", "_generation", "_next_bytes", "_sent", "pid", "signal_number")

    def __init__(self, ring: Ring, pid: int, signal_number: int) -> None:
        self._buffer = ring.buffer
        self.pid = pid
        self.signal_number = signal_number
        self._generation = 0
        self._next_bytes = 0
        self._sent = 0

    def check(self, rss_bytes: int) -> None:
        generation = COUNT_FIELD.unpack_from(self._buffer, OFFSET_TRIP_GENERATION)[0]
        if generation != self._generation:
            self._generation = generation
            self._next_bytes = COUNT_FIELD.unpack_from(self._buffer, OFFSET_TRIP_RSS)[0]
            self._sent = 0
            COUNT_FIELD.pack_into(self._buffer, OFFSET_TRIPS_SENT, 0)
        if not self._next_bytes or rss_bytes <= self._next_bytes or self._sent >= MAX_TRIPS:
            return
        try:
            os.kill(self.pid, self.signal_number)
        except OSError:  # the target is exiting: the next read says so
            return
        self._sent += 1
        COUNT_FIELD.pack_into(self._buffer, OFFSET_TRIPS_SENT, self._sent)
        self._next_bytes = rss_bytes + int(rss_bytes * TRIP_STEP_SHARE)


def run(
    ring: Ring,
    read_rss: Callable[[], int],
    interval_ns: int,
    parent_pid: int,
    sleep: Callable[[float], int] = _plain_waiter,
    after_sample: Callable[[int], None] | None = None,
    trip: TripWire | None = None,
    idle_interval_ns: int | None = None,
) -> int:
    """Sample until asked to stop, the target exits or the parent dies.

    Sleeps to absolute deadlines so the rate does not drift with the time a
    read takes; a wake-up that is more than one interval late restarts the
    schedule instead of firing a burst of catch-up samples.  While no window
    wants every sample the interval is ``idle_interval_ns`` (None: never
    rest); a nudge ends the sleep, and the next sample is taken at once.
    ``sleep`` returns :data:`SLEPT`, :data:`NUDGED` or :data:`PARENT_GONE`.
    ``after_sample`` (a tree's housekeeping) is called with each sample's
    time once it is published; ``trip`` sees each sample's RSS.
    """
    monotonic_ns = time.monotonic_ns
    idle_ns = max(interval_ns, idle_interval_ns or 0)
    deadline = monotonic_ns()
    while True:
        t_ns = monotonic_ns()
        try:
            rss = read_rss()
        except (OSError, IndexError, ValueError):
            return STATUS_TARGET_GONE
        except Exception as exc:  # psutil.NoSuchProcess and friends
            if type(exc).__name__ in {"NoSuchProcess", "ZombieProcess"}:
                return STATUS_TARGET_GONE
            raise
        if rss == 0:  # a zombie's statm is all zeros: the target has exited
            return STATUS_TARGET_GONE
        ring.append(t_ns, rss)
        if trip is not None:
            trip.check(rss)
        if after_sample is not None:
            after_sample(t_ns)
        if ring.count % _HOUSEKEEPING_EVERY == 0:
            if ring.stop_requested():
                return STATUS_STOPPED
            if not _parent_alive(parent_pid):
                return STATUS_PARENT_GONE
        rests = idle_ns > interval_ns and not ring.wanted(t_ns, idle_ns)
        deadline += idle_ns if rests else interval_ns
        now = monotonic_ns()
        if now < deadline:
            woke = sleep((deadline - now) / 1e9)
            if woke == PARENT_GONE:
                return STATUS_PARENT_GONE
            if woke == NUDGED:
                deadline = monotonic_ns()
        elif now - deadline > interval_ns:
            deadline = now


class UsageError(ValueError):
    """A bad command line; the message names the option."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises :class:`UsageError` (one line)
    instead of exiting, so :func:`main` decides the exit status."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"automem sampler: {message}")


def _number(meaning: str) -> Callable[[str], int]:
    """An argparse ``type`` for an integer that means ``meaning``."""

    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {text!r}") from None

    return convert


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The child's command line, written by the parent (see ``SamplerProcess``)."""
    parser = _Parser(prog="sampler_child.py", allow_abbrev=False, add_help=False)
    parser.add_argument("--ring", required=True, help="PATH of the ring file, or fd:N")
    parser.add_argument("--target-pid", required=True, type=_number("a process id"))
    parser.add_argument("--parent-pid", required=True, type=_number("a process id"))
    parser.add_argument("--reader", choices=("procfs", "psutil"), default="procfs")
    parser.add_argument("--lifeline", type=_number("a file descriptor"), default=None)
    parser.add_argument("--trip-signal", type=_number("a signal number"), default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sampler child; returns its exit status."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if sys.platform.startswith("linux"):
        _linux_timer_slack()
    sleep = _plain_waiter if args.lifeline is None else _lifeline_waiter(args.lifeline)
    if not _parent_alive(args.parent_pid):
        return 0
    reader = _procfs_reader if args.reader == "procfs" else _psutil_reader
    if args.ring.startswith("fd:"):  # inherited descriptor (POSIX)
        buffer = mmap.mmap(int(args.ring[3:]), 0)
    else:
        with open(args.ring, "r+b") as handle:
            buffer = mmap.mmap(handle.fileno(), 0)
    ring = Ring(buffer)
    interval_ns = COUNT_FIELD.unpack_from(buffer, OFFSET_INTERVAL)[0]
    max_processes = COUNT_FIELD.unpack_from(buffer, OFFSET_MAX_PROCESSES)[0]
    tree = None
    try:
        if max_processes:
            tree = _open_tree(ring, args, max_processes)
            read_rss = tree.sample
        else:
            read_rss = reader(args.target_pid)
    except OSError as exc:
        print(f"automem sampler: cannot read process {args.target_pid}: {exc}", file=sys.stderr)
        ring.set_status(STATUS_TARGET_GONE)
        return 3
    ring.set_status(STATUS_RUNNING)
    after_sample = None if tree is None else tree.after_sample
    trip = None if args.trip_signal is None else TripWire(ring, args.target_pid, args.trip_signal)
    idle_interval_ns = COUNT_FIELD.unpack_from(buffer, OFFSET_IDLE_INTERVAL)[0]
    status = run(
        ring, read_rss, interval_ns, args.parent_pid, sleep, after_sample, trip, idle_interval_ns
    )
    if tree is not None:
        tree.finish()
    ring.set_status(status)
    return 0


def _open_tree(ring: Ring, args: argparse.Namespace, max_processes: int) -> ProcessTree:
    """The target's tree, found at once: a process it had already started counts
    from the first sample.  Raises ``OSError`` if the target cannot be read."""
    source = procfs_source() if args.reader == "procfs" else psutil_source()
    root = source.open(args.target_pid)
    if root is None:
        raise ProcessLookupError("it has exited or cannot be read")
    table = ProcessTable(ring.buffer, ring.capacity, max_processes)
    # Not the monitor and its sampler, when they run under the target (say,
    # ``automem monitor --pid $PPID`` from a shell): they are not its work.
    exclude = frozenset((os.getpid(), args.parent_pid))
    return ProcessTree(root, max_processes, table, source, time.monotonic_ns(), exclude)


if __name__ == "__main__":
    sys.exit(main())
