"""Linux process controls through ``prctl(2)``: parent-death signal, child subreaper.

``automem monitor -- CMD`` uses them so that the command cannot outlive the
monitor: the command gets a parent-death signal, and the monitor becomes a
subreaper, so the command's orphaned descendants become its children (to
reap, and to stop) instead of init's.  Elsewhere both are unavailable and the
functions say so by returning ``None`` / ``False``; the caller's other means
(a process group, a guard process) still apply.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from functools import cache

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved once (never in a forked child: see below)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the libc this process runs on
    except OSError:
        return None
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return None
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


def parent_death_signal_setter(signum: int) -> Callable[[], None] | None:
    """A function to run in a forked child before ``exec``: die by ``signum``
    when this (the parent) process's thread that forked it exits.

    Resolved here, in the parent, so that the child only makes one call.
    ``PR_SET_PDEATHSIG`` fires when the parent *thread* exits, so fork from
    the thread that lives as long as the process (the main thread).  If the
    parent died before the child could ask, the child kills itself at once,
    as the signal would have.  The setting survives ``exec``, except of a
    set-user-ID or set-group-ID program, and is not inherited by the
    child's own children.  None where there is no ``prctl``.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def set_in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return set_in_child


def child_subreaper() -> bool | None:
    """Whether this process is a child subreaper; None where that is unknown."""
    prctl = _prctl()
    if prctl is None:
        return None
    value = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return None
    return bool(value.value)


def set_child_subreaper(enabled: bool) -> bool:
    """Make this process a subreaper (or stop being one); False where impossible.

    A subreaper becomes the parent of its descendants whose own parent
    exits, instead of init: they stay in its reach, to be reaped and stopped.
    """
    prctl = _prctl()
    if prctl is None:
        return False
    return prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) == 0
