"""Portable reader through psutil (macOS, Windows, BSD): no resettable peak."""

from __future__ import annotations

import psutil

from ...base.defaults import MB
from .common import MAXRSS_UNIT_BYTES, MemoryReadError, ProcessGoneError


class PsutilProcessMemory:
    """RSS through psutil; peaks must come from the sampler's maximum."""

    peak_source: str | None = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ProcessGoneError(f"process {pid} does not exist") from None

    def rss_bytes(self) -> int:
        try:
            return int(self._process.memory_info().rss)
        except psutil.NoSuchProcess:
            raise ProcessGoneError(f"process {self.pid} has exited") from None
        except (psutil.AccessDenied, OSError) as exc:
            raise MemoryReadError(f"cannot read memory of process {self.pid}: {exc}") from None

    def reset_peak(self, rss_bytes: int | None = None) -> bool:
        return False

    def peak_rss_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        """Nothing kept open."""


def own_peak_rss_bytes() -> int | None:
    """This process's peak RSS from ``getrusage``, or None where there is none.

    It may include what the process that started us held before our
    ``exec``: an upper bound, which is all its callers need.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT_BYTES


def rss_counter_error_bytes() -> int:
    """How far two readings of the same resident size may disagree: a page
    either way is all we can assume without the kernel's own counters."""
    return MB


def open_process(pid: int) -> PsutilProcessMemory:
    """Open a reader on ``pid`` (raises ProcessGoneError if it does not exist)."""
    return PsutilProcessMemory(pid)
