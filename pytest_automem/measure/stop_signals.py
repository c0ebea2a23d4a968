"""SIGINT and SIGTERM as requests to stop, for a command that must finish its work first.

``automem monitor`` cannot die at the first Ctrl-C: the command it runs must
get the signal, a grace period, and the monitor must still print its summary
and write its files.  :class:`StopSignals` turns both signals into entries of
a list that the monitor's loop reads; :func:`shielded` starts helper processes
(the sampler) with both blocked, so that a Ctrl-C at a terminal, which goes to
the monitor's whole process group, does not kill the sampler that is to
measure the command's shutdown.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: The signals that ask the monitor to stop the command and end.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Blocked in helper processes: the stop signals and a terminal's hangup.
_SHIELDED = {*STOP_SIGNALS, signal.SIGHUP} if hasattr(signal, "SIGHUP") else set(STOP_SIGNALS)


class StopSignals:
    """While entered, SIGINT and SIGTERM are recorded in :attr:`received`, in order.

    The previous handlers come back on exit.  Only the main thread may set
    handlers; elsewhere nothing is installed and the defaults apply.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Block the stop signals (and SIGHUP) while starting helper processes.

    A child inherits the blocked mask through ``exec``, and Python does not
    unblock it, so the helper never dies of them; it has other ways to end
    (the sampler is killed by its owner, or sees its owner die).  A signal
    that arrives meanwhile waits, and reaches our handler once unblocked.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SHIELDED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
