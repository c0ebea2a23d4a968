"""The guard: kills a command's process group when the monitor that started it dies.

``automem monitor -- CMD`` runs CMD in a process group of its own and starts
this script beside it (``python -I -S group_guard.py PGID FD``, in a session
of its own, so that a signal to the monitor's group does not reach it).  It
blocks reading ``FD``, the read end of a pipe whose only write end the
monitor holds:

- the monitor writes :data:`STAND_DOWN` once it has stopped the group
  itself (or leaves the command running on purpose, ``--duration``): the
  guard exits and touches nothing;
- the pipe reads as end-of-file when the monitor dies without doing so (by
  SIGKILL, or any signal it does not handle): the guard sends SIGKILL to the
  group, until no member is left, and exits.

Why a process of its own: the command's parent-death signal reaches the
command alone, not the processes it started, and a subreaper (the monitor)
that is killed adopts no one.  A pipe end belongs to a process, not a
thread, and the kernel closes it however the process dies.

This module stands alone (standard library only), like the sampler.
"""

from __future__ import annotations

import os
import signal
import sys
import time

#: What the monitor writes to release the guard.
STAND_DOWN = b"."
#: SIGKILL the group this many times at most, until no member is left: a
#: member that was forking may have a child the first signal missed.  The
#: monitor's own kill rounds (:mod:`.command_group`) read these too: this
#: script may import nothing of ours, so they live here.
KILL_ROUNDS = 100
#: The pause between two rounds, for the kernel to deliver and reap.
ROUND_S = 0.01


def monitor_died(fd: int) -> bool:
    """Block until the monitor releases us (False) or dies (True)."""
    return os.read(fd, 1) != STAND_DOWN


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group ``pgid`` until the group is empty.

    Zombies stay members until their parent reaps them, so the rounds are
    bounded: a group left with zombies only is as stopped as it gets.
    """
    for _ in range(KILL_ROUNDS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(ROUND_S)


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # only the lifeline decides
    pgid, fd = int(argv[0]), int(argv[1])
    if monitor_died(fd):
        kill_group(pgid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
