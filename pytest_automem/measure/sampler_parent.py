"""The parent's side of the sampler process: start it, read its ring, stop it.

One :class:`SamplerProcess` serves a whole pytest session (or one monitored
child process).  Reading the ring is lock-free: the sampler only appends and
publishes a count; the parent copies entries between two counts it has seen.
"""

from __future__ import annotations

import array
import contextlib
import mmap
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import _platform
from . import sampler_child as ring_layout
from ._platform import ProcessGoneError

if TYPE_CHECKING:
    from .process_tree import TreeReport

__all__ = ["RingReader", "SampleBlock", "SamplerDiedError", "SamplerProcess"]

_START_TIMEOUT_S = 10.0
_unpack_count = ring_layout.COUNT_FIELD.unpack_from
_STATUS_TEXT = {
    ring_layout.STATUS_STARTING: "starting",
    ring_layout.STATUS_RUNNING: "running",
    ring_layout.STATUS_STOPPED: "stopped",
    ring_layout.STATUS_TARGET_GONE: "stopped: the measured process exited",
    ring_layout.STATUS_PARENT_GONE: "stopped: its parent exited",
}


class SamplerDiedError(RuntimeError):
    """The sampler process is gone; measurements since then are missing."""


@dataclass(frozen=True)
class SampleBlock:
    """Samples copied out of the ring: parallel int64 arrays.

    ``dropped`` counts samples of the requested range that the ring had
    already overwritten (windows longer than the ring's capacity).
    """

    times_ns: array.array
    rss_bytes: array.array
    dropped: int

    def __len__(self) -> int:
        return len(self.times_ns)


def _ring_folder() -> str:
    """Prefer tmpfs (``/dev/shm``) so the mapping never touches a disk."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return tempfile.gettempdir()


class RingReader:
    """The parent's view of the shared mapping: it only reads.

    Kept apart from the process that writes it so the read protocol can be
    tested against a ring in plain memory, with a fake sampler writing into
    it between the reader's steps.
    """

    def __init__(self, buffer: mmap.mmap | bytearray) -> None:
        self.buffer = buffer
        self.capacity = _unpack_count(buffer, ring_layout.OFFSET_CAPACITY)[0]

    def field(self, offset: int) -> int:
        return _unpack_count(self.buffer, offset)[0]

    def write_count(self) -> int:
        """Samples published so far (monotonic)."""
        return _unpack_count(self.buffer, ring_layout.OFFSET_WRITE_COUNT)[0]

    def newest_rss_bytes(self) -> int | None:
        """The RSS of the newest sample; None before the first.

        Entry ``count - 1`` is never the slot the sampler may be rewriting
        (that is entry ``count - capacity``, and a ring holds 16 or more).
        """
        count = self.write_count()
        if count == 0:
            return None
        offset = ring_layout.HEADER_SIZE + ((count - 1) % self.capacity) * ring_layout.ENTRY_SIZE
        return int(ring_layout.ENTRY.unpack_from(self.buffer, offset)[1])

    def read(self, start_count: int, end_count: int) -> SampleBlock:
        """Copy samples ``[start_count, end_count)`` out of the ring.

        Lock-free: the sampler writes entry ``n`` into the slot of entry
        ``n - capacity`` *before* it publishes count ``n + 1``, so while the
        count reads ``n`` that slot may be half written.  The oldest entry
        safe to read is therefore ``count - capacity + 1``: bounded by the
        count seen before the copy, and again by the count re-read after it,
        which drops entries overwritten while we copied.  A block never holds
        a torn entry or mixes old and new; ``dropped`` counts what it lost.
        """
        first = max(start_count, self._oldest_readable(end_count))
        raw = self._copy(first, end_count)
        kept_from = min(end_count, max(first, self._oldest_readable(self.write_count())))
        flat = array.array("q")
        flat.frombytes(raw[(kept_from - first) * ring_layout.ENTRY_SIZE :])
        return SampleBlock(
            times_ns=flat[0::2],
            rss_bytes=flat[1::2],
            dropped=max(0, kept_from - start_count),
        )

    def _oldest_readable(self, write_count: int) -> int:
        """The oldest entry not in the slot the sampler may be writing now."""
        return write_count - self.capacity + 1

    def _copy(self, first: int, end: int) -> bytes:
        if end <= first:
            return b""
        begin_slot = first % self.capacity
        end_slot = begin_slot + (end - first)
        base = ring_layout.HEADER_SIZE
        size = ring_layout.ENTRY_SIZE
        if end_slot <= self.capacity:
            return self.buffer[base + begin_slot * size : base + end_slot * size]
        head = self.buffer[base + begin_slot * size : base + self.capacity * size]
        tail = self.buffer[base : base + (end_slot - self.capacity) * size]
        return head + tail


class SamplerProcess:
    """A running sampler child and the ring it writes.

    ``reader`` is ``"procfs"`` (Linux) or ``"psutil"`` (portable fallback).
    ``max_processes`` > 0 samples the target's tree (the sum over the target
    and its descendants, at most that many followed at once) and keeps each
    process's figures (:meth:`process_table`); 0, the target alone.
    """

    def __init__(
        self,
        target_pid: int,
        *,
        interval_ns: int,
        capacity: int,
        reader: str,
        wait: bool = True,
        max_processes: int = 0,
        trip_signal: int | None = None,
        idle_interval_ns: int = 0,
    ) -> None:
        """Start the child.  ``wait=False`` returns before its first sample.

        ``idle_interval_ns`` (above ``interval_ns``) lets the child rest at
        that interval while no window wants every sample (:meth:`set_wanted`).
        Only where a lifeline pipe can wake it (POSIX); elsewhere, and at 0,
        it samples at ``interval_ns`` throughout.

        ``trip_signal``: the signal the child sends the target when its RSS
        passes the threshold of :meth:`arm_trip` (None: no trip wire).

        Starting a Python child takes milliseconds; a pytest session need not wait
        for it (its first windows simply hold fewer samples), an API user who
        measures at once should.  On POSIX the child inherits the ring's
        descriptor and the file is unlinked at once; elsewhere it opens the
        file by path, so we wait for it before unlinking.  Whatever fails on
        the way, nothing is left open, running or on disk.
        """
        self.target_pid = target_pid
        self.interval_ns = interval_ns
        self.capacity = capacity
        self.reader = reader
        self.max_processes = max_processes
        self.trip_signal = trip_signal
        self._trip_generation = 0
        #: Only a lifeline pipe (POSIX) can wake a resting child.
        self.idle_interval_ns = (
            max(interval_ns, idle_interval_ns) if _platform.IS_POSIX else interval_ns
        )
        self._wanted = False
        #: ``time.monotonic_ns()`` at the start: time zero of the process table.
        self.started_ns = time.monotonic_ns()
        fd, ring_path = tempfile.mkstemp(prefix="automem-ring-", dir=_ring_folder())
        by_path = not _platform.IS_POSIX
        if not by_path:
            os.unlink(ring_path)  # our descriptors keep it for both sides
        try:
            with contextlib.ExitStack() as on_failure:
                self._buffer = self._map_ring(fd)
                on_failure.callback(self._buffer.close)
                self._ring = RingReader(self._buffer)
                self._stderr = on_failure.enter_context(tempfile.TemporaryFile())
                self._process, self._lifeline = self._spawn(ring_path if by_path else fd)
                on_failure.callback(self.close)
                self._started_s = time.monotonic()
                if wait or by_path:
                    self._wait_until_running()
                on_failure.pop_all()
        finally:
            os.close(fd)
            if by_path:
                os.unlink(ring_path)

    def _map_ring(self, fd: int) -> mmap.mmap:
        """Size the ring file and write its header, before the child maps it.

        The header is packed first, so a field out of range fails before
        anything is mapped.
        """
        header = ring_layout.HEADER.pack(
            ring_layout.MAGIC, self.capacity, self.interval_ns, 0,
            ring_layout.STATUS_STARTING, 0, 0, self.target_pid,
        )  # fmt: skip
        tree = ring_layout.COUNT_FIELD.pack(self.max_processes)
        idle = ring_layout.COUNT_FIELD.pack(self.idle_interval_ns)
        os.ftruncate(fd, ring_layout.ring_size_bytes(self.capacity, self.max_processes))
        os.pwrite(fd, header, 0)
        os.pwrite(fd, tree, ring_layout.OFFSET_MAX_PROCESSES)
        os.pwrite(fd, idle, ring_layout.OFFSET_IDLE_INTERVAL)
        return mmap.mmap(fd, 0)

    def _spawn(self, ring: str | int) -> tuple[subprocess.Popen[bytes], int | None]:
        """Start the child on the ring (a path, or a descriptor it inherits).

        On POSIX it also inherits the read end of a lifeline pipe whose write
        end we keep, close-on-exec so no other child we start inherits it:
        the child sees end-of-file the moment this process dies (see
        ``sampler._lifeline_waiter``, which says why not ``PR_SET_PDEATHSIG``),
        and a byte we write wakes it from a rest (:meth:`set_wanted`).  Our
        end does not block: a full pipe already holds a wake-up.
        """
        if isinstance(ring, str):
            return self._popen(self._command(ring), ()), None
        lifeline_read, lifeline = os.pipe()  # both close-on-exec
        try:
            process = self._popen(self._command(f"fd:{ring}", lifeline_read), (ring, lifeline_read))
        except BaseException:
            os.close(lifeline)
            raise
        finally:
            os.close(lifeline_read)
        os.set_blocking(lifeline, False)
        return process, lifeline

    def _popen(self, command: list[str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            close_fds=True,
            pass_fds=pass_fds,
        )

    def _command(self, ring: str, lifeline: int | None = None) -> list[str]:
        """``-I``: isolated from the environment.  ``-S`` as well for the procfs
        reader, which needs only the standard library: processing
        site-packages' ``.pth`` files is most of a child's start, CPU the
        test session may need.  The psutil reader needs site-packages."""
        flags = ["-I", "-S"] if self.reader == "procfs" else ["-I"]
        watch = [] if lifeline is None else ["--lifeline", str(lifeline)]
        if self.trip_signal is not None:
            watch += ["--trip-signal", str(self.trip_signal)]
        return [
            sys.executable, *flags, ring_layout.__file__,
            "--ring", ring,
            "--target-pid", str(self.target_pid),
            "--parent-pid", str(os.getpid()),
            "--reader", self.reader,
            *watch,
        ]  # fmt: skip

    @property
    def pid(self) -> int:
        return self._process.pid

    def arm_trip(self, rss_bytes: int) -> None:
        """Have the child signal the target once its RSS passes ``rss_bytes``
        (and again at new highs, a few times at most: ``sampler_child.TripWire``).

        The threshold is stored before the generation that publishes it, so
        the child never pairs a new generation with an old threshold.
        """
        if self.trip_signal is None:
            raise ValueError("this sampler was started without a trip signal")
        self._set_trip(max(1, rss_bytes))

    def disarm_trip(self) -> None:
        """No more signals, until the next :meth:`arm_trip`."""
        if self.trip_signal is not None:
            self._set_trip(0)

    def trips_sent(self) -> int:
        """Signals the child sent since the last arming it has seen."""
        return self._ring.field(ring_layout.OFFSET_TRIPS_SENT)

    def _set_trip(self, rss_bytes: int) -> None:
        self._trip_generation += 1
        ring_layout.COUNT_FIELD.pack_into(self._buffer, ring_layout.OFFSET_TRIP_RSS, rss_bytes)
        ring_layout.COUNT_FIELD.pack_into(
            self._buffer, ring_layout.OFFSET_TRIP_GENERATION, self._trip_generation
        )

    @property
    def rests(self) -> bool:
        """Whether the child rests between windows that want every sample."""
        return self.idle_interval_ns > self.interval_ns

    def set_wanted(self, wanted: bool) -> None:
        """Say whether a window that reads every sample is open.

        While one is, the child samples at ``interval_ns``; while none is,
        at ``idle_interval_ns``.  Wanting them again wakes a resting child
        at once, so such a window's samples start when it opens.
        """
        if wanted == self._wanted or self._buffer.closed:
            return
        self._wanted = wanted
        ring_layout.COUNT_FIELD.pack_into(self._buffer, ring_layout.OFFSET_WANTED, int(wanted))
        if wanted and self.rests and self._lifeline is not None:
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self._lifeline, b"\0")  # the stored flag first: the child reads it awake

    def mark_span(self, opened_ns: int) -> None:
        """Say when the open span began (``time.monotonic_ns()``), 0 when it ends.

        A span wants no samples while it is short; once it has been open for
        an idle interval the resting child goes to the full rate.  One store
        into the shared mapping, no system call: spans open for every test.
        """
        if self._buffer.closed:
            return
        ring_layout.COUNT_FIELD.pack_into(self._buffer, ring_layout.OFFSET_SPAN_OPENED, opened_ns)

    def write_count(self) -> int:
        """Samples published so far (monotonic); read at every window's ends."""
        return self._ring.write_count()

    def newest_rss_bytes(self) -> int | None:
        """The newest sample's RSS (a tree's: its sum); None before the first."""
        return self._ring.newest_rss_bytes()

    def processes_seen(self) -> int:
        """Processes of the tree seen so far (1 for a sampler of one process)."""
        if not self.max_processes:
            return 1
        return max(1, self._ring.field(ring_layout.OFFSET_PROCESSES_SEEN))

    def process_table(self) -> TreeReport | None:
        """Each process of the tree, as the sampler last published it; None
        for a sampler of one process, or a table the sampler left half written."""
        if not self.max_processes or self._buffer.closed:
            return None
        from .process_tree import read_process_table  # only a tree monitor needs it

        return read_process_table(self._buffer, self.target_pid, self.started_ns)

    def target_gone(self) -> bool:
        """True once the sampler saw the measured process exit."""
        return self._ring.field(ring_layout.OFFSET_STATUS) == ring_layout.STATUS_TARGET_GONE

    def status_text(self) -> str:
        return _STATUS_TEXT.get(self._ring.field(ring_layout.OFFSET_STATUS), "unknown")

    def _wait_until_running(self) -> None:
        """Block until the first sample is published; raise if the child dies."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while self.write_count() == 0:
            if self.target_gone():
                raise ProcessGoneError(f"process {self.target_pid} has exited")
            self.check_alive()
            if time.monotonic() > deadline:
                raise SamplerDiedError(
                    f"automem sampler (pid {self.pid}) published no sample within "
                    f"{_START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.001)

    def check_alive(self) -> None:
        """Raise :class:`SamplerDiedError` if the child is gone or never started sampling.

        The message carries the child's own last words from its stderr.
        """
        code = self._process.poll()
        if code is None:
            if self.write_count() == 0 and time.monotonic() - self._started_s > _START_TIMEOUT_S:
                raise SamplerDiedError(
                    f"automem sampler (pid {self.pid}) published no sample within "
                    f"{_START_TIMEOUT_S:.0f} s"
                )
            return
        raise SamplerDiedError(
            f"automem sampler process (pid {self.pid}) is gone "
            f"(exit code {code}, {self.status_text()}){self._last_words()}"
        )

    def _last_words(self) -> str:
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return f": {lines[-1]}" if lines else ""

    def read(self, start_count: int, end_count: int) -> SampleBlock:
        """Samples ``[start_count, end_count)``; see :meth:`RingReader.read`."""
        return self._ring.read(start_count, end_count)

    def close(self, *, wait: bool = True) -> None:
        """Stop the child now and reap it (``wait=False``: a later ``close()`` reaps it).

        It holds nothing to flush (it only writes shared memory), so it is
        killed rather than asked and polled for, and reaped with a blocking
        ``waitpid``: ``Popen.wait`` with a timeout polls with sleeps, which a
        session pays at its end.  The wait itself lasts until the kernel has
        freed the child's memory; a caller
        with other work to do meanwhile (a pytest session prints its
        summary) passes ``wait=False`` and finds the child dead later.
        """
        if not self._buffer.closed:
            ring_layout.COUNT_FIELD.pack_into(self._buffer, ring_layout.OFFSET_STOP, 1)
            if self._process.poll() is None:
                self._process.kill()  # SIGKILL: it cannot linger, so the wait cannot hang
            self._buffer.close()
            self._stderr.close()
            if self._lifeline is not None:
                os.close(self._lifeline)
        if wait:
            self._process.wait()
