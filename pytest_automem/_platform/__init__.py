"""One facade over the operating system's memory readers.

The rest of the package asks this module for a :class:`ProcessMemory` and
never looks at ``sys.platform`` or ``OSError`` itself (the psutil pattern:
pick the platform module once, translate its errors into ours).

Linux reads ``/proc/<pid>/statm`` on a kept-open descriptor (about a
microsecond) and takes exact peaks from the kernel's resident high-water mark
(``VmHWM``), reset through ``/proc/<pid>/clear_refs``.  Everywhere else psutil
reads the resident size and there is no resettable peak, so peaks come from
the sampler's maximum and results say so.
"""

from __future__ import annotations

import sys

from .common import MemoryReadError, ProcessGoneError, ProcessMemory

__all__ = [
    "PLATFORM_KIND",
    "MemoryReadError",
    "ProcessGoneError",
    "ProcessMemory",
    "heap_bytes",
    "open_process",
    "own_peak_rss_bytes",
    "release_free_memory",
    "rss_counter_error_bytes",
]

if sys.platform.startswith("linux"):
    from .linux import PLATFORM_KIND, own_peak_rss_bytes, rss_counter_error_bytes
    from .linux import open_process as _open_native
else:  # pragma: no cover - exercised on macOS/Windows only
    from .portable import PLATFORM_KIND, own_peak_rss_bytes, rss_counter_error_bytes
    from .portable import open_process as _open_native


def open_process(pid: int, *, portable: bool = False) -> ProcessMemory:
    """A reader on ``pid``: the platform's native one, or psutil's if ``portable``.

    ``portable=True`` lets Linux runs exercise the fallback that macOS and
    Windows users get.
    """
    if portable:
        from .portable import open_process as _open_portable

        return _open_portable(pid)
    return _open_native(pid)


def heap_bytes() -> int | None:
    """Bytes the allocators hold for live objects (see :mod:`.heap`)."""
    from .heap import heap_bytes as read  # ctypes: only once a caller needs the heap

    return read()


def release_free_memory() -> bool:
    """Hand the C allocator's cached free memory back to the OS (see :mod:`.heap`)."""
    from .heap import release_free_memory as release

    return release()
