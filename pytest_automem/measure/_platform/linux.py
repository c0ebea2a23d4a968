"""Linux reader: ``/proc/<pid>/statm`` for RSS, ``VmHWM`` for exact peaks."""

from __future__ import annotations

import contextlib
import errno
import os
import resource

from ...base.defaults import MB
from .common import MemoryReadError, ProcessGoneError

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: getrusage's scope for our own mark (used only where it exists: see ``_own``).
_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
_getrusage = resource.getrusage
_GONE_ERRNOS = {errno.ESRCH, errno.ENOENT}
_CLEAR_REFS_RESET_PEAK = b"5"
#: getrusage's peak may exceed RSS right after a reset by the kernel's
#: per-CPU counter batching; beyond this it is not the reset mark.
_USAGE_SLACK_BYTES = MB


def _translate(exc: OSError, pid: int, what: str) -> MemoryReadError:
    if exc.errno in _GONE_ERRNOS:
        return ProcessGoneError(f"process {pid} has exited (reading {what})")
    return MemoryReadError(f"cannot read {what} of process {pid}: {exc.strerror or exc}")


class LinuxProcessMemory:
    """Kept-open descriptors on one process's ``statm``, ``status``, ``clear_refs``.

    ``clear_refs`` needs the same user as the target; where it cannot be
    opened the reader still works and reports no resettable peak.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        base = f"/proc/{pid}"
        try:
            self._statm = os.open(f"{base}/statm", os.O_RDONLY | os.O_CLOEXEC)
            self._status = os.open(f"{base}/status", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _translate(exc, pid, "/proc status files") from None
        try:
            self._clear_refs: int | None = os.open(f"{base}/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._clear_refs = None
        self.peak_source: str | None = "kernel-hwm" if self._clear_refs is not None else None
        self._own = pid == os.getpid() and hasattr(resource, "RUSAGE_THREAD")

    def rss_bytes(self) -> int:
        try:
            data = os.pread(self._statm, 128, 0)
        except OSError as exc:
            raise _translate(exc, self.pid, "statm") from None
        fields = data.split(None, 2)  # size, resident, the rest
        rss_pages = int(fields[1]) if len(fields) >= 2 else 0
        if rss_pages == 0:  # empty or all-zero statm: a zombie, no memory left
            raise ProcessGoneError(f"process {self.pid} has exited")
        return rss_pages * _PAGE_SIZE

    def reset_peak(self, rss_bytes: int | None = None) -> bool:
        """Start a new high-water mark at the current RSS (``rss_bytes`` if
        the caller just read it).

        Reading our own mark costs one ``getrusage``; when it already equals
        the current RSS (memory has not fallen since the mark was last
        reset, the usual case in a test session) a reset would change
        nothing, so the write to ``clear_refs`` is skipped.
        """
        if self._clear_refs is None:
            return False
        own = self._own
        if own and rss_bytes is not None and _getrusage(_THREAD).ru_maxrss * 1024 <= rss_bytes:
            return True
        try:
            os.write(self._clear_refs, _CLEAR_REFS_RESET_PEAK)
        except OSError as exc:
            raise _translate(exc, self.pid, "clear_refs") from None
        if not own:
            return True
        current = self.rss_bytes() if rss_bytes is None else rss_bytes
        if _getrusage(_THREAD).ru_maxrss * 1024 > current + _USAGE_SLACK_BYTES:
            # getrusage also reports peaks clear_refs cannot reset (the
            # signal struct's maxrss, fed by exited threads): from now on,
            # read the mark itself from /proc/<pid>/status.
            self._own = False
        return True

    def peak_rss_bytes(self) -> int | None:
        if self._clear_refs is None:
            return None
        if self._own:
            # Our own mark, 20x cheaper than parsing /proc/self/status (valid
            # while reset_peak sees it follow the reset).
            return _getrusage(_THREAD).ru_maxrss * 1024
        try:
            data = os.pread(self._status, 4096, 0)
        except OSError as exc:
            raise _translate(exc, self.pid, "status") from None
        return _vm_hwm_bytes(data, self.pid)

    def close(self) -> None:
        for fd in (self._statm, self._status, self._clear_refs):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._clear_refs = None


def _vm_hwm_bytes(status: bytes, pid: int) -> int:
    """``VmHWM`` from a ``/proc/<pid>/status`` text, in bytes."""
    start = status.find(b"VmHWM:")
    if start < 0:
        # Kernel threads and zombies have no mm: nothing to measure.
        raise ProcessGoneError(f"process {pid} has no memory map (exited?)")
    end = status.find(b"\n", start)
    return int(status[start + 6 : end].split()[0]) * 1024


def own_peak_rss_bytes() -> int:
    """This process's own high-water mark: ``VmHWM`` of its memory map.

    Not ``getrusage``: its ``ru_maxrss`` also keeps what the process that
    started us held before our ``exec`` (the kernel folds the old memory
    map's mark into it), which can be far more than we ever held.
    """
    try:
        with open("/proc/self/status", "rb") as status:
            return _vm_hwm_bytes(status.read(), os.getpid())
    except OSError as exc:
        raise _translate(exc, os.getpid(), "status") from None


def rss_counter_error_bytes() -> int:
    """How far two readings of the same resident size may disagree.

    The kernel counts RSS per CPU and folds a CPU's count into the total
    only once it passes a batch of max(32, 2 x CPUs) pages, so a reading
    may be off by up to a batch per CPU.
    """
    cpus = os.cpu_count() or 1
    return cpus * max(32, 2 * cpus) * _PAGE_SIZE


def open_process(pid: int) -> LinuxProcessMemory:
    """Open a reader on ``pid`` (raises ProcessGoneError if it does not exist)."""
    return LinuxProcessMemory(pid)
