"""Bytes the process's allocators have handed out and not yet taken back.

Resident memory (RSS) cannot see a leak that lands in memory the allocator
had already freed and kept: after a long pytest session there is plenty of
that, and a slow leak fills it without moving RSS at all.  The allocators
themselves know exactly how much is in use:

* CPython's small-object allocator (pymalloc) reports "bytes in allocated
  blocks" in ``sys._debugmallocstats()``, which writes to the C stderr; we
  read it through a pipe;
* glibc's ``mallinfo2()`` reports the bytes in use for everything larger
  (``uordblks`` in its heaps, ``hblkhd`` in its own mmaps).

Each part is None where it is not available (another allocator, another
libc, ``PYTHONMALLOC=malloc``), and the total is None only if both are.

The same statistics say how much freed memory the allocators keep for reuse
(:class:`HeapReading`): what a test's allocations can fill without moving
RSS, and what RSS growth would wrongly blame a test for.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import sys
from dataclasses import dataclass
from functools import cache

__all__ = [
    "HeapReading",
    "heap_bytes",
    "libc_heap_bytes",
    "pymalloc_bytes",
    "read_heap",
    "release_free_memory",
]

_ALLOCATED = re.compile(rb"# bytes in allocated blocks\s*=\s*([\d,]+)")
#: Free blocks in pools that are partly in use.
_AVAILABLE = re.compile(rb"# bytes in available blocks\s*=\s*([\d,]+)")
_UNUSED_POOLS = re.compile(rb"([\d,]+) unused pools \* ([\d,]+) bytes")
_ARENAS = re.compile(rb"([\d,]+) arenas \* ([\d,]+) bytes/arena")

#: _debugmallocstats prints a few KB; a pipe holds 64 KB, so it cannot block.
_READ_CHUNK = 1 << 16


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Give the C allocator's free memory back to the OS (glibc ``malloc_trim``).

    glibc keeps freed memory mapped for reuse, so a test that allocated and
    freed 5 MB can leave RSS 5 MB higher without retaining anything.
    Returns False where there is no such call.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(0)
    return True


@cache
def _mallinfo2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    libc = _libc()
    function = getattr(libc, "mallinfo2", None) if libc is not None else None
    if function is None:  # not glibc, or glibc < 2.33
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function


def libc_heap_bytes() -> int | None:
    """Bytes in use in glibc's malloc (heaps plus its mmapped chunks)."""
    reading = _libc_reading()
    return reading.in_use_bytes if reading is not None else None


def pymalloc_bytes() -> int | None:
    """Bytes in live pymalloc blocks, or None without pymalloc."""
    output = _pymalloc_stats()
    match = _ALLOCATED.search(output) if output is not None else None
    return _number(match.group(1)) if match else None


def _number(text: bytes) -> int:
    return int(text.replace(b",", b""))


def _pymalloc_stats() -> bytes | None:
    """What ``sys._debugmallocstats()`` prints, or None without it."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        saved = os.dup(2)
        try:
            os.dup2(write_end, 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        os.close(write_end)
        write_end = -1
        output = _drain(read_end)
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    return output


def _drain(fd: int) -> bytes:
    chunks = []
    with contextlib.suppress(BlockingIOError):
        os.set_blocking(fd, False)
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
    return b"".join(chunks)


def heap_bytes() -> int | None:
    """pymalloc plus libc in-use bytes; None if neither can be read."""
    reading = read_heap()
    return reading.in_use_bytes if reading is not None else None


@dataclass(frozen=True)
class HeapReading:
    """The allocators at one moment: live bytes, and what they keep for reuse.

    ``cached_bytes`` is memory freed but kept by the allocators: pymalloc's
    free blocks and empty pools, and glibc's free chunks.  It is an upper
    bound on what is resident (an empty pool may never have been touched, and
    glibc counts chunks whose pages ``malloc_trim`` already returned).
    ``footprint_bytes`` is the address space the allocators hold
    (pymalloc's arenas, glibc's heap and mmapped chunks); resident memory
    outside it was mapped by something else.
    """

    in_use_bytes: int
    cached_bytes: int
    footprint_bytes: int


def read_heap() -> HeapReading | None:
    """The allocators' state now, or None where neither can be read."""
    pymalloc = _parse_pymalloc(_pymalloc_stats())
    libc = _libc_reading()
    if pymalloc is None and libc is None:
        return None
    parts = [part for part in (pymalloc, libc) if part is not None]
    return HeapReading(
        in_use_bytes=sum(p.in_use_bytes for p in parts),
        cached_bytes=sum(p.cached_bytes for p in parts),
        footprint_bytes=sum(p.footprint_bytes for p in parts),
    )


def _parse_pymalloc(output: bytes | None) -> HeapReading | None:
    """pymalloc's part of a reading, from ``_debugmallocstats``' text."""
    allocated = _ALLOCATED.search(output) if output else None
    if output is None or allocated is None:
        return None
    available = _AVAILABLE.search(output)
    unused = _UNUSED_POOLS.search(output)
    arenas = _ARENAS.search(output)
    free_in_pools = _number(available.group(1)) if available else 0
    empty_pools = _number(unused.group(1)) * _number(unused.group(2)) if unused else 0
    return HeapReading(
        in_use_bytes=_number(allocated.group(1)),
        cached_bytes=free_in_pools + empty_pools,
        footprint_bytes=_number(arenas.group(1)) * _number(arenas.group(2)) if arenas else 0,
    )


def _libc_reading() -> HeapReading | None:
    """glibc's part of a reading (``mallinfo2``)."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return HeapReading(
        in_use_bytes=int(info.uordblks + info.hblkhd),
        cached_bytes=int(info.fordblks),
        footprint_bytes=int(info.arena + info.hblkhd),
    )
