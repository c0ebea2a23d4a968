"""Types shared by the platform readers: the reader protocol and its errors."""

from __future__ import annotations

import sys
from typing import Protocol

#: The unit of ``ru_maxrss`` (``getrusage``, ``wait4``): bytes on macOS, KiB elsewhere.
MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024


class MemoryReadError(RuntimeError):
    """Memory of a process could not be read (permissions, no such file…)."""


class ProcessGoneError(MemoryReadError):
    """The process being measured has exited."""


class ProcessMemory(Protocol):
    """Reads one process's memory.  Implementations never raise ``OSError``."""

    pid: int
    #: ``"kernel-hwm"`` when :meth:`reset_peak` / :meth:`peak_rss_bytes` use the
    #: kernel's high-water mark, ``None`` when the platform has no resettable peak.
    peak_source: str | None

    def rss_bytes(self) -> int:
        """Current resident set size in bytes."""
        ...

    def reset_peak(self, rss_bytes: int | None = None) -> bool:
        """Reset the kernel's peak to the current RSS; False where unsupported.

        ``rss_bytes``: the RSS the caller has just read, if any (saves a read
        when checking that the reset took).
        """
        ...

    def peak_rss_bytes(self) -> int | None:
        """Kernel peak RSS since the last reset, or None where unsupported."""
        ...

    def close(self) -> None:
        """Release kept-open descriptors."""
        ...
