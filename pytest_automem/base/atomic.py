"""Atomic writes of user files: temp file in the same folder, fsync, rename.

A reader (or a crash) sees either the old file or the new one, never half of
each.  Every file the product writes for a user goes through here.

Links at an output path are never written through.  A replace renames the
new file over the link itself (``rename`` does not follow a final link), so
the link's target is neither opened nor changed, and the new file's mode is
read with ``lstat``: a link has no mode of its own that we would want, so
the new file gets the mode of a new file.  Appends go through
:func:`open_for_append_nofollow`, which refuses a link.  No write ever
copies the setuid, setgid or sticky bit.

A writer holds an ``flock`` on its temp file until the rename, so the temp a
killed writer left (the kernel drops the lock of a dead process) can be told
from a live writer's and removed: :func:`remove_stale_temps`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "UnsafeOutputPathError",
    "atomic_write_lines",
    "atomic_write_text",
    "atomic_writer",
    "open_for_append_nofollow",
    "remove_stale_temps",
    "remove_stale_temps_in",
    "sync_folder",
]

#: Permission bits a written file may carry: never setuid, setgid or sticky.
_PERMISSION_BITS = 0o777


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, encoding: str = "utf-8", durable: bool = True
) -> Iterator[IO[str]]:
    """Yield a text file that replaces ``path`` only if the block completes.

    On any exception the temp file is removed and ``path`` is untouched.
    Text that cannot be encoded (a lone surrogate in a test id, say) is
    written as a visible backslash escape rather than failing the write.
    The temp file is locked (``flock``) until it has been renamed, so that
    :func:`remove_stale_temps` can tell it from one a killed writer left.

    ``durable=False`` skips the two ``fsync`` calls (file and folder), about
    0.7 ms: for files a run writes by the hundred and the next run writes
    again (per-test samples), where a power cut may cost the file but a
    reader must still never see half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _locked_temp(target)
    lock_fd = os.dup(fd) if fcntl is not None else None  # holds the lock past the close
    try:
        with os.fdopen(
            fd, "w", encoding=encoding, errors="backslashreplace", newline="\n"
        ) as handle:  # owns ``fd`` from here: a failure below closes it
            if hasattr(os, "fchmod"):
                os.fchmod(fd, _mode_for(target))
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    if durable:
        _fsync_dir(target.parent)


#: A cleaner may remove a fresh temp before its writer locks it; so few
#: writers race one cleaner that a handful of tries is plenty.
_TEMP_TRIES = 8


def _locked_temp(target: Path) -> tuple[int, str]:
    """A new temp file for ``target``, locked by us: ``(fd, name)``.

    Between ``mkstemp`` and ``flock`` the temp is unlocked, and a cleaner
    could take it for a dead writer's and remove it.  A cleaner removes only
    while it holds the lock, so once we hold it, the name still naming our
    file proves the temp is ours for good; if it does not, we take another.
    """
    for _ in range(_TEMP_TRIES):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        if fcntl is None:
            return fd, tmp_name
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _names_file(tmp_name, os.fstat(fd)):
            return fd, tmp_name
        os.close(fd)
    raise OSError(f"{target}: could not keep a temp file beside it (removed {_TEMP_TRIES} times)")


def _names_file(name: str, status: os.stat_result) -> bool:
    """Whether ``name`` (not followed if a link) is the file ``status`` describes."""
    try:
        current = os.stat(name, follow_symlinks=False)
    except OSError:
        return False
    return (current.st_dev, current.st_ino) == (status.st_dev, status.st_ino)


def _mode_for(target: Path) -> int:
    """The mode for the file that replaces ``target``.

    An existing regular file keeps its permission bits, so a user's report
    stays readable to the CI user that uploads it (``mkstemp`` creates
    0o600 files).  Anything else, a link included (read with ``lstat``, so a
    link's target is never looked at), gets a new file's ``0o666`` less the
    umask.  Setuid, setgid and sticky bits are never copied: a planted link
    or a stray setuid file must not turn our output into an executable that
    runs as someone else.
    """
    with contextlib.suppress(OSError):
        status = target.lstat()
        if stat.S_ISREG(status.st_mode):
            return status.st_mode & _PERMISSION_BITS
    return 0o666 & ~_current_umask()


def _current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, which for a moment lets
    another thread create files with no umask at all; Linux reports it in
    ``/proc/self/status`` instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & _PERMISSION_BITS
    except (OSError, ValueError, IndexError):
        pass  # not Linux, or a kernel older than 4.7
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


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


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """Make the files written into ``folder`` with ``durable=False`` durable at once.

    Files written by the hundred (a run's per-test samples) skip their own
    two ``fsync`` calls; one call before the file that names them is written
    makes all of them durable together.  Linux's ``syncfs`` flushes the
    folder's file system in one call; elsewhere each regular file in the
    folder is fsynced, then the folder.
    """
    target = Path(folder)
    try:
        dir_fd = os.open(target, os.O_RDONLY)
    except OSError:
        return
    try:
        if _syncfs(dir_fd):
            return
    finally:
        os.close(dir_fd)
    for entry in os.scandir(target):
        if entry.is_file(follow_symlinks=False):
            _fsync_file(Path(entry.path))
    _fsync_dir(target)


def _syncfs(fd: int) -> bool:
    """``syncfs(fd)`` where the C library has it; False when it has not, or failed."""
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    return syncfs(fd) == 0


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return  # removed or replaced meanwhile: nothing of ours to keep
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    """Remove the temp files killed :func:`atomic_writer` calls left for ``path``.

    A writer that dies between ``mkstemp`` and ``os.replace`` (kill -9, power
    loss) leaves ``.<name>.XXXXXXXX.tmp`` beside ``path``.  Returns what was
    removed; see :func:`remove_stale_temps_in` for what is.
    """
    target = Path(path)
    return remove_stale_temps_in(target.parent, lambda name: name == target.name)


def remove_stale_temps_in(
    folder: str | os.PathLike[str], is_target: Callable[[str], bool]
) -> list[Path]:
    """Remove the stale temps in ``folder`` of every file name ``is_target`` accepts.

    A temp is removed only if all of these hold:

    * its name is exactly ``.<target>.XXXXXXXX.tmp`` (``mkstemp``'s eight
      characters) for a target name ``is_target`` accepts, so a file of
      another naming, or another file's temp, is never touched;
    * it is a regular file, not a link or a folder;
    * its writer is dead: we take its ``flock`` without waiting.  Every
      :func:`atomic_writer` holds that lock until its rename, and the kernel
      drops the lock of a process that dies, kill -9 included.  A temp whose
      lock is held belongs to a live writer and is left alone.

    Where there is no ``flock`` (Windows) a live writer cannot be told from a
    dead one, so nothing is removed.  Returns what was removed.
    """
    removed: list[Path] = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        target = _temp_target(entry.name)
        if target is None or not is_target(target):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and _remove_if_unlocked(entry.path):
                removed.append(Path(entry.path))
    return removed


_TEMP_RANDOM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _temp_target(name: str) -> str | None:
    """The target name of a temp named ``.<target>.XXXXXXXX.tmp``, else None."""
    random_part, target = name[-12:-4], name[1:-13]
    if not (name.startswith(".") and name.endswith(".tmp") and target):
        return None  # from here on the name is long enough for the slices above
    if name[-13] != "." or not set(random_part) <= _TEMP_RANDOM_CHARS:
        return None
    return target


def _remove_if_unlocked(path: str) -> bool:
    """Unlink ``path`` if no live writer holds its lock; whether it was removed."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer's
        if not _names_file(path, status):
            return False  # renamed into place, or replaced, since we opened it
        os.unlink(path)
        return True
    finally:
        os.close(fd)


class UnsafeOutputPathError(OSError):
    """An output path we refuse to append to: a symbolic link, or not a regular file."""


#: Where the OS lacks them (Windows), a link is checked with ``lstat`` just
#: before opening instead, which a racing writer could defeat.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_for_append_nofollow(path: str | os.PathLike[str], *, readable: bool = False) -> int:
    """Open ``path`` for appending (created ``0o666`` less the umask if missing); return the fd.

    Appends are not atomic replaces: they write into whatever the path
    names.  So a symbolic link there is refused (``O_NOFOLLOW``) rather
    than followed, which would let a planted link make us write rows into
    any file we can write; and so is anything but a regular file (a FIFO
    is opened without blocking, so it cannot stall us first).  Both raise
    :class:`UnsafeOutputPathError` naming ``path``.  Links in the folders
    above ``path`` are followed: those are the user's choice of place.
    ``readable`` opens the file for reading too (``O_RDWR``).  The caller
    owns the descriptor (``os.fdopen`` it, or ``os.close`` it).
    """
    access = os.O_RDWR if readable else os.O_WRONLY
    flags = access | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | getattr(os, "O_BINARY", 0)
    if not _NOFOLLOW and os.path.islink(path):
        raise _unsafe(path)
    try:
        fd = os.open(path, flags, 0o666)  # not inherited by children (PEP 446)
    except OSError:
        if _is_special(path):  # ELOOP for a link, ENXIO for a FIFO without a reader
            raise _unsafe(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _unsafe(path)
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_special(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` exists as something other than a regular file or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _unsafe(path: str | os.PathLike[str]) -> UnsafeOutputPathError:
    link = os.path.islink(path)
    return UnsafeOutputPathError(
        errno.ELOOP if link else errno.EINVAL,
        f"refusing to append: it is {'a symbolic link' if link else 'not a regular file'}, "
        "and pytest-automem never writes through one",
        os.fspath(path),
    )
