"""One facade over the operating system: its memory readers, and what it offers.

The rest of the package asks this module for a :class:`ProcessMemory`, and
for what the platform makes possible (:data:`HAS_PROCFS`, :data:`IS_POSIX`,
:data:`MAXRSS_UNIT_BYTES`), and never looks at ``sys.platform``, ``os.name``
or ``OSError`` itself (the psutil pattern: pick the platform module once,
translate its errors into ours).  Only the sampler child, which may import
nothing of ours, and the results file, which records the platform, read it
themselves (docs/architecture.md, "Where the platform is known").

Linux reads ``/proc/<pid>/statm`` on a kept-open descriptor (about a
microsecond) and takes exact peaks from the kernel's resident high-water mark
(``VmHWM``), reset through ``/proc/<pid>/clear_refs``.  Everywhere else psutil
reads the resident size and there is no resettable peak, so peaks come from
the sampler's maximum and results say so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .common import MAXRSS_UNIT_BYTES, MemoryReadError, ProcessGoneError, ProcessMemory

__all__ = [
    "HAS_PROCFS",
    "IS_POSIX",
    "MAXRSS_UNIT_BYTES",
    "MemoryReadError",
    "ProcessGoneError",
    "ProcessMemory",
    "child_subreaper",
    "heap_bytes",
    "open_process",
    "own_peak_rss_bytes",
    "parent_death_signal_setter",
    "release_free_memory",
    "rss_counter_error_bytes",
    "set_child_subreaper",
]

#: Linux: memory is read from ``/proc`` and the kernel keeps a resettable
#: peak; elsewhere psutil reads it and peaks are sampled.
HAS_PROCFS = sys.platform.startswith("linux")
#: POSIX: process groups, and descriptors a child inherits by number.
IS_POSIX = os.name == "posix"

if HAS_PROCFS:
    from .linux import open_process as _open_native
    from .linux import own_peak_rss_bytes, rss_counter_error_bytes
else:  # pragma: no cover - exercised on macOS/Windows only
    from .portable import open_process as _open_native
    from .portable import own_peak_rss_bytes, rss_counter_error_bytes


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


def parent_death_signal_setter(signum: int) -> Callable[[], None] | None:
    """For a child to run before ``exec``: die by ``signum`` with us (see :mod:`.prctl`)."""
    from .prctl import parent_death_signal_setter as setter  # ctypes: only for a command

    return setter(signum)


def child_subreaper() -> bool | None:
    """Whether this process is a child subreaper (see :mod:`.prctl`)."""
    from .prctl import child_subreaper as read

    return read()


def set_child_subreaper(enabled: bool) -> bool:
    """Adopt our orphaned descendants, or stop doing so (see :mod:`.prctl`)."""
    from .prctl import set_child_subreaper as set_

    return set_(enabled)
