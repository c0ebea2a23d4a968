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
import signal
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
_PR_SET_PDEATHSIG = 1
_PR_SET_TIMERSLACK = 29


def ring_size_bytes(capacity: int) -> int:
    """Bytes the shared mapping needs for ``capacity`` entries."""
    return HEADER_SIZE + capacity * ENTRY_SIZE


def _linux_prctl_setup() -> None:
    """Die with the parent (SIGKILL on its death) and sleep with 1 ns slack.

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
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
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

    ``os.getppid`` changes when the parent dies (we are re-parented); where
    that is not reliable (Windows) fall back to probing the pid.
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


def run(ring: Ring, read_rss: Callable[[], int], interval_ns: int, parent_pid: int) -> int:
    """Sample until asked to stop, the target exits or the parent dies.

    Sleeps to absolute deadlines so the rate does not drift with the time a
    read takes; a wake-up that is more than one interval late restarts the
    schedule instead of firing a burst of catch-up samples.
    """
    monotonic_ns = time.monotonic_ns
    sleep = time.sleep
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
            sleep((deadline - now) / 1e9)
        elif now - deadline > interval_ns:
            deadline = now


class UsageError(ValueError):
    """A bad command line; the message names the option."""


class Options:
    """The child's command line (written by the parent, see ``SamplerProcess``).

    A plain class: a dataclass would import ``dataclasses`` (and ``inspect``)
    into a child whose start is meant to take ~15 ms.
    """

    __slots__ = ("parent_pid", "reader", "ring", "target_pid")

    def __init__(self, ring: str, target_pid: int, parent_pid: int, reader: str) -> None:
        self.ring = ring
        self.target_pid = target_pid
        self.parent_pid = parent_pid
        self.reader = reader


_USAGE = (
    "usage: sampler.py --ring PATH|fd:N --target-pid PID --parent-pid PID [--reader procfs|psutil]"
)


def parse_args(argv: list[str]) -> Options:
    """Parse ``--name value`` pairs by hand: argparse would cost every
    session's child ~6 ms to import, for four options only the parent writes."""
    if len(argv) % 2:
        raise UsageError(f"{_USAGE}\nautomem sampler: option {argv[-1]} needs a value")
    given = dict(zip(argv[0::2], argv[1::2], strict=True))
    unknown = sorted(set(given) - {"--ring", "--target-pid", "--parent-pid", "--reader"})
    if unknown:
        raise UsageError(f"{_USAGE}\nautomem sampler: unknown option {unknown[0]}")
    for name in ("--ring", "--target-pid", "--parent-pid"):
        if name not in given:
            raise UsageError(f"{_USAGE}\nautomem sampler: {name} is required")
    reader = given.get("--reader", "procfs")
    if reader not in ("procfs", "psutil"):
        raise UsageError(f"automem sampler: --reader {reader!r}: expected procfs or psutil")
    pids = {}
    for name in ("--target-pid", "--parent-pid"):
        try:
            pids[name] = int(given[name])
        except ValueError:
            raise UsageError(
                f"automem sampler: {name} {given[name]!r}: expected a process id"
            ) from None
    return Options(given["--ring"], pids["--target-pid"], pids["--parent-pid"], reader)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sampler child; returns its exit status."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if sys.platform.startswith("linux"):
        _linux_prctl_setup()
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
    status = run(ring, read_rss, interval_ns, args.parent_pid)
    ring.set_status(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
