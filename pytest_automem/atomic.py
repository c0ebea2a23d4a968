"""Atomic writes of user files: temp file in the same folder, fsync, rename.

A reader (or a crash) sees either the old file or the new one, never half of
each.  Every file the product writes for a user goes through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write_lines", "atomic_write_text", "atomic_writer"]


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Yield a text file that replaces ``path`` only if the block completes.

    On any exception the temp file is removed and ``path`` is untouched.
    Text that cannot be encoded (a lone surrogate in a test id, say) is
    written as a visible backslash escape rather than failing the write.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _mode_for(target))
        with os.fdopen(
            fd, "w", encoding=encoding, errors="backslashreplace", newline="\n"
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def _mode_for(target: Path) -> int:
    """Keep an existing file's mode; give a new one the usual umask'd 0o666.

    ``mkstemp`` creates 0o600 files, which would silently make a user's
    report unreadable to the CI user that uploads it.
    """
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the OS lets us open a directory."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(text)


def atomic_write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Replace ``path`` with ``lines`` (each written followed by a newline)."""
    with atomic_writer(path) as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files a killed :func:`atomic_writer` left for ``path``.

    A writer that dies between ``mkstemp`` and ``os.replace`` (kill -9, power
    loss) leaves ``.<name>.XXXXXXXX.tmp`` beside ``path``.  Only regular files
    of exactly that naming (``mkstemp``'s eight random characters) are
    removed, never a symlink or another target's temp.  A live writer's temp
    looks the same, so call this only while holding a lock that every writer
    of ``path`` takes.  Returns what was removed.
    """
    target = Path(path)
    prefix, suffix = f".{target.name}.", ".tmp"
    random_chars = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if len(name) != len(prefix) + 8 + len(suffix):
            continue
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        if not set(name[len(prefix) : -len(suffix)]) <= random_chars:
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
