"""Where every thread was at the moment the sampler saw memory cross a limit.

The sampler runs in its own process: it sees a crossing within a
millisecond, but it cannot read this process's Python stacks.  So it sends
this process a signal, and :mod:`faulthandler`'s handler, written in C,
writes every thread's stack to a file at once.  That holds in the middle of
one C call that keeps the GIL (``bytearray(200 * MB)``), where a Python
signal handler would run only after the call returned and the memory was
perhaps freed again.  Until a signal arrives nothing runs, so a test that
stays within its budget pays nothing for this.

Someone may also want to act on the signal in Python (the plugin takes a
tracing snapshot there, to name the allocation sites alive at that moment):
:attr:`StackRecorder.on_signal` is called by a Python handler that
faulthandler chains to.  It runs later than the dump, between two bytecodes
of the main thread, once a C call has returned.

The dump is faulthandler's text, parsed here into frozen values: per thread
its frames, innermost first, and the user's own frame pointed out (the
innermost one outside the standard library and the test harness).
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib.util
import os
import re
import signal
import sysconfig
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "STACK_SIGNAL",
    "Frame",
    "Harness",
    "StackDump",
    "StackRecorder",
    "ThreadStack",
    "parse_dumps",
]

#: The signal the sampler sends for a dump: a real-time one, which no common
#: library or test uses (SIGUSR1 and SIGUSR2 often are).  None where the
#: system has no real-time signals; there stacks are not recorded.
STACK_SIGNAL: int | None = (
    signal.SIGRTMIN + 3
    if hasattr(signal, "SIGRTMIN") and hasattr(faulthandler, "register")
    else None
)

_THREAD_HEADER = re.compile(r"^(Current thread|Thread) (0x[0-9a-fA-F]+)")
_FRAME_LINE = re.compile(r'^\s+File "(?P<path>.*)", line (?P<line>\d+|\?\?\?) in (?P<function>.*)$')

#: Packages whose frames are the harness's, not the user's.
_HARNESS_PACKAGES = ("_pytest", "pytest", "pluggy", "pytest_automem", "xdist", "execnet")


@dataclass(frozen=True)
class Frame:
    """One frame of a dumped stack (line 0 where faulthandler could not tell)."""

    path: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}"


@dataclass(frozen=True)
class ThreadStack:
    """One thread's stack, innermost frame first, and its user frame if any."""

    thread_id: int
    is_signalled_thread: bool
    frames: tuple[Frame, ...]
    user_frame: Frame | None

    @property
    def running_user_code(self) -> bool:
        """Whether the innermost frame is the user's: the thread was running
        their line (or a C call from it), not waiting in the library."""
        return bool(self.frames) and self.frames[0] is self.user_frame


@dataclass(frozen=True)
class StackDump:
    """Every thread's stack at one signal."""

    threads: tuple[ThreadStack, ...]

    def likely_thread(self) -> ThreadStack | None:
        """The thread most likely to have grown memory.

        A thread that was running the user's own code comes first; a thread
        parked in the library (``threading.Thread.join``, a queue) was only
        waiting.  Among equals, the order of the dump decides.
        """
        with_user = [stack for stack in self.threads if stack.user_frame is not None]
        running = [stack for stack in with_user if stack.running_user_code]
        chosen = running or with_user or list(self.threads)
        return chosen[0] if chosen else None


@dataclass(frozen=True)
class Harness:
    """Where frames that are not the user's live.

    The standard library's folder holds ``site-packages``; code installed
    there is the user's, unless it is one of the harness's own packages.
    """

    stdlib_dirs: tuple[str, ...]
    site_dirs: tuple[str, ...]
    package_dirs: tuple[str, ...]

    @classmethod
    def of_this_python(cls) -> Harness:
        paths = sysconfig.get_paths()
        packages = []
        for name in _HARNESS_PACKAGES:
            # Found, not imported: a session without xdist need not load it.
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                continue
            if spec is not None and spec.origin:
                packages.append(str(Path(spec.origin).parent))
        return cls(
            stdlib_dirs=tuple({paths["stdlib"], paths["platstdlib"]}),
            site_dirs=tuple({paths["purelib"], paths["platlib"]}),
            package_dirs=tuple(packages),
        )

    def owns(self, path: str) -> bool:
        """Whether a frame at ``path`` is the harness's (or no file's)."""
        if path.startswith("<"):  # <frozen importlib._bootstrap>, <string>
            return True
        if _under(path, self.package_dirs):
            return True
        return _under(path, self.stdlib_dirs) and not _under(path, self.site_dirs)


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


class StackRecorder:
    """Arms faulthandler on :data:`STACK_SIGNAL` for this process, into an unnamed file.

    :meth:`take` returns the dumps written since the last take.  The file is
    unnamed (deleted at creation), so a killed session leaves nothing behind.
    """

    def __init__(self, harness: Harness | None = None) -> None:
        if STACK_SIGNAL is None:
            raise OSError("stack dumps need real-time signals and faulthandler.register")
        #: Made at the first dump: a session whose tests never cross pays nothing.
        self._harness = harness
        self._file: IO[bytes] | None = None
        self._python_handler = False
        #: Called (from the main thread, between bytecodes) after each dump;
        #: what it raises is dropped, since it would surface in the test's code.
        self.on_signal: Callable[[], object] | None = None

    @property
    def signal_number(self) -> int:
        """What the sampler sends to ask for a dump."""
        assert STACK_SIGNAL is not None
        return STACK_SIGNAL

    def start(self) -> None:
        """Arm the dump.

        The signal's default action ends the process, and a sampler's signal
        may still be on its way when the recorder stops.  So where nothing
        handles it yet, a Python handler (for :attr:`on_signal`) takes it
        first (Python allows that from the main thread only), faulthandler
        chains to it, and :meth:`stop` sets the signal to be ignored rather
        than fatal.  Started from another thread, there is no Python handler,
        and the default action stays: the sampler signals only a process
        whose recorder runs.
        """
        signal_number = self.signal_number
        self._python_handler = threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal_number) in (signal.SIG_DFL, signal.SIG_IGN)
        )
        if self._python_handler:
            signal.signal(signal_number, self._handle)
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 -- open until stop()
        faulthandler.register(
            signal_number, file=self._file, all_threads=True, chain=self._python_handler
        )

    def _handle(self, signal_number: int, frame: object) -> None:
        callback = self.on_signal
        if callback is None:
            return
        # What it raises would surface in the test's code, wherever it was.
        with contextlib.suppress(Exception):
            callback()

    def stop(self) -> None:
        if self._file is None:
            return
        faulthandler.unregister(self.signal_number)
        if self._python_handler and threading.current_thread() is threading.main_thread():
            signal.signal(self.signal_number, signal.SIG_IGN)
        self._python_handler = False
        self.on_signal = None
        self._file.close()
        self._file = None

    def __enter__(self) -> StackRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def take(self) -> tuple[StackDump, ...]:
        """The dumps written since the last take, oldest first."""
        if self._file is None:
            return ()
        fd = self._file.fileno()
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if end == 0:
            return ()
        text = os.pread(fd, end, 0).decode("utf-8", "replace")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        if self._harness is None:
            self._harness = Harness.of_this_python()
        return parse_dumps(text, self._harness)


def parse_dumps(text: str, harness: Harness) -> tuple[StackDump, ...]:
    """faulthandler's text as dumps, oldest first: a new dump starts where a thread repeats."""
    dumps: list[list[ThreadStack]] = []
    seen: set[int] = set()
    for thread_id, signalled, frames in _thread_blocks(text):
        if thread_id in seen or not dumps:
            dumps.append([])
            seen = set()
        seen.add(thread_id)
        user = next((frame for frame in frames if not harness.owns(frame.path)), None)
        dumps[-1].append(ThreadStack(thread_id, signalled, frames, user))
    return tuple(StackDump(tuple(threads)) for threads in dumps)


def _thread_blocks(text: str) -> Iterable[tuple[int, bool, tuple[Frame, ...]]]:
    """Each thread block of the text: its id, whether it took the signal, its frames.

    Lines that are neither a header nor a frame (``<no Python frame>``, a
    truncation mark, a block cut short by a dump still being written) are
    passed over.
    """
    header: tuple[int, bool] | None = None
    frames: list[Frame] = []
    for line in text.splitlines():
        match = _THREAD_HEADER.match(line)
        if match:
            if header is not None:
                yield (*header, tuple(frames))
            header = (int(match[2], 16), match[1] == "Current thread")
            frames = []
            continue
        match = _FRAME_LINE.match(line)
        if match and header is not None:
            number = match["line"]
            frames.append(
                Frame(match["path"], int(number) if number.isdigit() else 0, match["function"])
            )
    if header is not None:
        yield (*header, tuple(frames))
