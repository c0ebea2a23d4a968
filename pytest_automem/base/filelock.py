"""Advisory locks that let one writer at a time change a file and its companions.

An automaton is saved by renaming a temp file over it, so a lock taken on the
automaton file itself would sit on an inode the next writer no longer opens.
The lock therefore lives in a dedicated file, ``.<name>.lock`` beside the
target, created on the first write and never deleted or replaced: deleting it
would let two writers each lock a different file.  Its content is the
target's *generation*, a token every writer stores after it replaces the
target, so an in-memory copy can tell that someone else saved since it read.

``fcntl.flock`` locks belong to the open file description, so two automatons
of one process exclude each other just as two processes do, and the kernel
drops the lock of a process that dies, kill -9 included.  Windows has no
``fcntl``: there :data:`LOCKING_AVAILABLE` is False and the locks exclude
nobody (the generation is still kept, so a conflict that does not race is
still caught).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCKING_AVAILABLE", "HeldLock", "exclusive_lock", "lock_path_for", "shared_lock"]

LOCKING_AVAILABLE = fcntl is not None
"""Whether locks exclude other writers here (False on Windows)."""

_GENERATION_MAX_BYTES = 64
"""Generations are short ASCII tokens; a longer content is read cut, so never matches."""

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""A planted symlink at the lock path must not make us create or lock another file."""


def lock_path_for(target: str | os.PathLike[str]) -> Path:
    """``.<name>.lock`` beside ``target``: the lock file of that target."""
    path = Path(target)
    return path.with_name(f".{path.name}.lock")


@dataclass(frozen=True)
class HeldLock:
    """The open lock file of a target, locked by this process for a block."""

    path: Path
    fd: int

    def read_generation(self) -> str:
        """The generation the last writer stored ("" if none was ever stored)."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        return os.read(self.fd, _GENERATION_MAX_BYTES).decode("ascii", "replace")

    def write_generation(self, generation: str) -> None:
        """Store ``generation``; only the holder of the exclusive lock calls this."""
        data = generation.encode("ascii")
        os.lseek(self.fd, 0, os.SEEK_SET)
        written = os.write(self.fd, data)
        if written != len(data):
            raise OSError(f"{self.path}: short write of the generation")
        os.ftruncate(self.fd, len(data))


@contextlib.contextmanager
def exclusive_lock(target: str | os.PathLike[str]) -> Iterator[HeldLock]:
    """Hold the writers' lock of ``target`` for the block, creating its lock file.

    Blocks until every other holder (reader or writer) has let go.
    """
    lock_path = lock_path_for(target)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield HeldLock(lock_path, fd)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def shared_lock(target: str | os.PathLike[str]) -> Iterator[HeldLock | None]:
    """Hold the readers' lock of ``target`` for the block; None if it has no lock file.

    Readers never create the lock file, so reading leaves the folder as it
    was; a target without one has never been written by a locking writer.
    """
    lock_path = lock_path_for(target)
    try:
        fd = os.open(lock_path, os.O_RDONLY | _NO_FOLLOW)
    except FileNotFoundError:
        fd = None
    if fd is None:
        yield None
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield HeldLock(lock_path, fd)
    finally:
        os.close(fd)
