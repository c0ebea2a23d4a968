"""A started command as a process group its owner can stop and never leaves behind.

The owner is ``automem monitor`` (its watched command) or the spawner (each
child it starts); "the monitor" below is either.

The command starts in a process group of its own, so that a signal meant for
it reaches everything it started (a shell's job, a test runner's workers)
and nothing of ours; a terminal's Ctrl-C reaches the monitor, which forwards
it.  Three layers keep the command from outliving the monitor:

1. while the monitor runs, it is a child subreaper: descendants whose parent
   exits become the monitor's children, so they are reaped and, at the end,
   stopped with the rest;
2. the command has a parent-death signal (SIGKILL), which the kernel sends
   when the monitor dies however it dies (Linux);
3. a guard process (:mod:`.group_guard`) kills the whole group when the
   monitor dies without releasing it, which covers what the parent-death
   signal does not: the command's own children.

What escapes: a descendant that left the group (``setsid``, a daemon) while
its parent still lives is outside the guard's reach if the monitor is
killed with SIGKILL; while the monitor lives, the subreaper adopts it once
its parent exits and the monitor stops it at the end.  A set-user-ID
program loses the parent-death signal at ``exec`` (the kernel's rule).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator, Mapping

import psutil

from . import _platform, group_guard


class CommandGroup:
    """A started command, the process group it leads, and the guard watching over it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        guard: subprocess.Popen[bytes] | None,
        guard_fd: int | None,
        children_before: frozenset[int],
    ) -> None:
        self.process = process
        self._guard = guard
        self._guard_fd = guard_fd
        self._children_before = children_before

    @property
    def pgid(self) -> int:
        """The command's process group: its own pid (POSIX)."""
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process in the command's group (gone: nothing to do)."""
        if not _platform.IS_POSIX:
            with contextlib.suppress(OSError):
                self.process.send_signal(signum)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def reap_orphans(self) -> None:
        """Reap adopted members of the group that have exited, not the command itself.

        Only a subreaper has such children.  ``WNOWAIT`` first: the command
        is reaped by its owner with ``wait4``, which keeps its peak figure.
        """
        if not hasattr(os, "waitid") or not hasattr(os, "P_PGID"):
            return
        while True:
            try:
                found = os.waitid(os.P_PGID, self.pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if found is None or found.si_pid in (0, self.process.pid):
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(found.si_pid, 0)

    @property
    def guard_pid(self) -> int | None:
        """The guard's pid, while it stands (None where there is none)."""
        return None if self._guard is None else self._guard.pid

    def stop_everything(self, grace_s: float, *, also_ours: Collection[int] = ()) -> None:
        """Stop what is left of the command's tree, reap it, and release the guard.

        Called once the command itself has been reaped (or, on an error
        path, whatever its state).  What is left: the group's members, and
        every child we adopted as a subreaper with its descendants, group or
        not.  They get SIGTERM and ``grace_s`` to exit, then SIGKILL; with
        nothing left, this returns at once.  ``also_ours``: children the owner
        started since this command (its other commands, their guards and
        samplers), which are not the command's orphans.
        """
        ours = set(also_ours)
        if self._leftovers(ours):
            self._signal_leftovers(signal.SIGTERM, ours)
            deadline = time.monotonic() + grace_s
            while self._leftovers(ours) and time.monotonic() < deadline:
                time.sleep(group_guard.ROUND_S)
            for _ in range(group_guard.KILL_ROUNDS):
                if not self._leftovers(ours):
                    break
                self._signal_leftovers(signal.SIGKILL, ours)
                time.sleep(group_guard.ROUND_S)
        self.release()

    def release(self) -> None:
        """Tell the guard to stand down (the group is stopped, or left running on purpose)."""
        if self._guard_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._guard_fd, group_guard.STAND_DOWN)
        os.close(self._guard_fd)
        self._guard_fd = None
        if self._guard is not None:
            self._guard.wait()

    def _ours(self) -> set[int]:
        """Our children that are not the command's orphans."""
        ours = {self.process.pid, *self._children_before}
        if self._guard is not None:
            ours.add(self._guard.pid)
        return ours

    def _leftovers(self, also_ours: set[int]) -> list[psutil.Process]:
        """Live processes of the command's tree, after reaping the dead we adopted."""
        self.reap_orphans()
        found: dict[int, psutil.Process] = {}
        if _platform.IS_POSIX:
            for process in psutil.process_iter():
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getpgid(process.pid) == self.pgid and _alive(process):
                        found[process.pid] = process
        ours = self._ours() | also_ours
        for child in _children():
            if child.pid in ours:
                continue
            if not _alive(child):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.pid, os.WNOHANG)
                continue
            with contextlib.suppress(psutil.Error):
                for process in [child, *child.children(recursive=True)]:
                    if _alive(process):
                        found[process.pid] = process
        return list(found.values())

    def _signal_leftovers(self, signum: int, also_ours: set[int]) -> None:
        """Signal each leftover by pid, not the group: a group whose last member
        is gone may lend its number to a stranger's group."""
        for process in self._leftovers(also_ours):
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 77`` for a number this platform has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_returncode(returncode: int) -> str:
    """How a process ended, in words: "exited with code 3" or "killed by SIGKILL"."""
    if returncode < 0:
        return f"killed by {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _children() -> list[psutil.Process]:
    try:
        return psutil.Process().children()
    except psutil.Error:
        return []


def start(
    command: list[str],
    *,
    die_with_monitor: bool,
    env: Mapping[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> CommandGroup:
    """Start ``command`` leading a process group of its own, and its guard.

    ``die_with_monitor``: give it a parent-death signal (not when it is meant
    to outlive the monitor, ``--duration``).  The fork happens in this
    thread; the parent-death signal fires when the thread that forked exits,
    so it is only given from the main thread.  ``env`` and ``pass_fds`` go
    to ``Popen`` (the spawner's children get their profile and a status
    pipe).  Raises what ``Popen`` raises when the command cannot be run.
    """
    children_before = _children_now()
    process = subprocess.Popen(
        command, env=env, pass_fds=pass_fds, **_group_options(die_with_monitor)
    )
    guard, guard_fd = (None, None)
    if _platform.IS_POSIX:
        try:
            guard, guard_fd = _start_guard(process.pid)
        except BaseException:
            process.kill()
            process.wait()
            raise
    return CommandGroup(process, guard, guard_fd, children_before)


def _group_options(die_with_monitor: bool) -> dict[str, object]:
    """Popen options: a new process group, and the parent-death signal if wanted."""
    if not _platform.IS_POSIX:
        return {}
    setter = None
    if die_with_monitor and threading.current_thread() is threading.main_thread():
        setter = _platform.parent_death_signal_setter(signal.SIGKILL)

    def in_child() -> None:  # between fork and exec
        os.setpgid(0, 0)
        if setter is not None:
            setter()

    return {"preexec_fn": in_child}


def _start_guard(pgid: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the guard on group ``pgid``; returns it and the lifeline's write end."""
    lifeline_read, lifeline = os.pipe()  # both close-on-exec: no other child inherits them
    try:
        guard = subprocess.Popen(
            [sys.executable, "-I", "-S", group_guard.__file__, str(pgid), str(lifeline_read)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            pass_fds=(lifeline_read,),
            start_new_session=True,
        )
    except BaseException:
        os.close(lifeline)
        raise
    finally:
        os.close(lifeline_read)
    return guard, lifeline


def _children_now() -> frozenset[int]:
    return frozenset(child.pid for child in _children())


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Be a child subreaper for the duration (Linux), then what we were before."""
    before = _platform.child_subreaper()
    changed = before is False and _platform.set_child_subreaper(True)
    try:
        yield
    finally:
        if changed:
            _platform.set_child_subreaper(False)
