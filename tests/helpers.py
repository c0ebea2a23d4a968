"""Allocation helpers whose effect on RSS does not depend on the allocator.

glibc raises its mmap threshold after large frees, so a later ``bytearray``
may come from heap pages that are already resident and not move RSS at all.
An anonymous mapping whose pages we touch always adds exactly its size.
"""

from __future__ import annotations

import mmap

PAGE = mmap.PAGESIZE


def resident_block(size: int) -> mmap.mmap:
    """A fresh anonymous mapping of ``size`` bytes, every page touched.

    Resident until ``.close()`` is called on it.
    """
    block = mmap.mmap(-1, size)
    for offset in range(0, size, PAGE):
        block[offset] = 1
    return block
