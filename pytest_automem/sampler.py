"""The sampler process: reads a process's RSS every interval into shared memory.

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
    entries, ENTRY_SIZE bytes each: (t_ns: int64 CLOCK_MONOTONIC, rss_bytes: int64)

The sampler writes an entry, then publishes it by bumping ``write_count``
(see ``Ring.append``); while ``write_count`` is ``n`` it may be rewriting the
slot of entry ``n - capacity``, so readers take entries from
``n - capacity + 1`` on.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
import sys
import time
from collections.abc import Callable

MAGIC = b"AUTOMEM1"
HEADER = struct.Struct("=8sqqqqqqq")
HEADER_SIZE = 128
ENTRY = struct.Struct("=qq")
ENTRY_SIZE = ENTRY.size
COUNT_FIELD = struct.Struct("=q")
OFFSET_CAPACITY = 8
OFFSET_INTERVAL = 16
OFFSET_WRITE_COUNT = 24
OFFSET_STATUS = 32
OFFSET_STOP = 40

STATUS_STARTING = 0
STATUS_RUNNING = 1
STATUS_STOPPED = 2
STATUS_TARGET_GONE = 3
STATUS_PARENT_GONE = 4

#: How often (in samples) the loop checks for a stop request and its parent.
_HOUSEKEEPING_EVERY = 16
_PR_SET_TIMERSLACK = 29


def ring_size_bytes(capacity: int) -> int:
    """Bytes the shared mapping needs for ``capacity`` entries."""
    return HEADER_SIZE + capacity * ENTRY_SIZE


def _linux_timer_slack() -> None:
    """Sleep with 1 ns timer slack.

    The default 50 µs timer slack lets the kernel batch our wake-ups; at a
    1 ms interval that is 5 % jitter for nothing.  ctypes is imported here,
    in the child only (the parent imports this module for the ring layout),
    and libc is reached through the process's own symbols: ``ctypes.util``,
    for ``find_library``, imports ~14 ms of modules into a start that
    should take ~16.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _procfs_reader(pid: int) -> Callable[[], int]:
    """RSS of ``pid`` from ``/proc/<pid>/statm`` on a kept fd (~1.4 µs)."""
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


def _lifeline_waiter(fd: int) -> Callable[[float], bool]:
    """A sleep that ends at once when the parent process dies; True then.

    ``fd`` is the read end of a pipe whose only write end the parent holds
    and never writes to: it reads as end-of-file, so ``select`` wakes, the
    moment the parent process is gone, by SIGKILL too.  Descriptors belong
    to the process, not a thread, so a thread's exit cannot close it (as
    ``PR_SET_PDEATHSIG`` fires when the parent *thread* exits, it would kill
    the sampler of a monitor started from a worker thread).  The sleep
    itself is the watch: a death is seen within the wake-up, at any
    interval, where the ``getppid`` check every 16 samples takes 16
    intervals.  That check stays, for a parent whose forks (``os.fork``
    without ``exec``) keep a copy of the write end open after it died.

    ``select`` takes descriptors below 1024 only and the parent's number may
    be higher, so we watch a duplicate: the lowest free number, in a child
    that has a handful open.
    """
    watched = [os.dup(fd)]
    os.close(fd)
    wait = select.select

    def sleep(seconds: float) -> bool:
        readable, _, _ = wait(watched, [], [], seconds)
        return bool(readable)

    return sleep


def _plain_waiter(seconds: float) -> bool:
    """A sleep with no lifeline (Windows); ``_parent_alive`` alone watches the parent."""
    time.sleep(seconds)
    return False


def run(
    ring: Ring,
    read_rss: Callable[[], int],
    interval_ns: int,
    parent_pid: int,
    sleep: Callable[[float], bool] = _plain_waiter,
) -> int:
    """Sample until asked to stop, the target exits or the parent dies.

    Sleeps to absolute deadlines so the rate does not drift with the time a
    read takes; a wake-up that is more than one interval late restarts the
    schedule instead of firing a burst of catch-up samples.  ``sleep``
    returns True when it saw the parent die.
    """
    monotonic_ns = time.monotonic_ns
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
        if ring.count % _HOUSEKEEPING_EVERY == 0:
            if ring.stop_requested():
                return STATUS_STOPPED
            if not _parent_alive(parent_pid):
                return STATUS_PARENT_GONE
        deadline += interval_ns
        now = monotonic_ns()
        if now < deadline:
            if sleep((deadline - now) / 1e9):
                return STATUS_PARENT_GONE
        elif now - deadline > interval_ns:
            deadline = now


class UsageError(ValueError):
    """A bad command line; the message names the option."""


class Options:
    """The child's command line (written by the parent, see ``SamplerProcess``).

    A plain class: a dataclass would import ``dataclasses`` (and ``inspect``)
    into a child whose start is meant to take ~15 ms.
    """

    __slots__ = ("lifeline", "parent_pid", "reader", "ring", "target_pid")

    def __init__(
        self, ring: str, target_pid: int, parent_pid: int, reader: str, lifeline: int | None
    ) -> None:
        self.ring = ring
        self.target_pid = target_pid
        self.parent_pid = parent_pid
        self.reader = reader
        self.lifeline = lifeline


_USAGE = (
    "usage: sampler.py --ring PATH|fd:N --target-pid PID --parent-pid PID"
    " [--reader procfs|psutil] [--lifeline FD]"
)
_OPTIONS = {"--ring", "--target-pid", "--parent-pid", "--reader", "--lifeline"}
_NUMBERS = {
    "--target-pid": "a process id",
    "--parent-pid": "a process id",
    "--lifeline": "a file descriptor",
}


def parse_args(argv: list[str]) -> Options:
    """Parse ``--name value`` pairs by hand: argparse would cost every
    session's child ~6 ms to import, for five options only the parent writes."""
    if len(argv) % 2:
        raise UsageError(f"{_USAGE}\nautomem sampler: option {argv[-1]} needs a value")
    given = dict(zip(argv[0::2], argv[1::2], strict=True))
    unknown = sorted(set(given) - _OPTIONS)
    if unknown:
        raise UsageError(f"{_USAGE}\nautomem sampler: unknown option {unknown[0]}")
    for name in ("--ring", "--target-pid", "--parent-pid"):
        if name not in given:
            raise UsageError(f"{_USAGE}\nautomem sampler: {name} is required")
    reader = given.get("--reader", "procfs")
    if reader not in ("procfs", "psutil"):
        raise UsageError(f"automem sampler: --reader {reader!r}: expected procfs or psutil")
    numbers = {}
    for name, meaning in _NUMBERS.items():
        if name not in given:
            continue
        try:
            numbers[name] = int(given[name])
        except ValueError:
            raise UsageError(
                f"automem sampler: {name} {given[name]!r}: expected {meaning}"
            ) from None
    return Options(
        given["--ring"],
        numbers["--target-pid"],
        numbers["--parent-pid"],
        reader,
        numbers.get("--lifeline"),
    )


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
    try:
        read_rss = reader(args.target_pid)
    except OSError as exc:
        print(f"automem sampler: cannot read process {args.target_pid}: {exc}", file=sys.stderr)
        ring.set_status(STATUS_TARGET_GONE)
        return 3
    ring.set_status(STATUS_RUNNING)
    status = run(ring, read_rss, interval_ns, args.parent_pid, sleep)
    ring.set_status(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
