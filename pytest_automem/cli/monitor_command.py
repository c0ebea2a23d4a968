"""``automem monitor``: watch a command or a running process in real time.

    automem monitor [options] -- CMD [ARG...]
    automem monitor --pid PID [options]

Samples the process's resident memory at the monitor's interval from a
sampler process of its own, prints a live line every ``--every``, writes one
snapshot file per window to ``--snapshots`` (a new window every
``--snapshot-every``, oldest files pruned to ``--keep``), and a summary JSON.
Pressure is measured on the process's whole RSS by default (``--basis``).

The whole process tree is measured: the command (or the ``--pid`` process)
and every process it starts, summed in every sample, so a shell's few MB
cannot hide a large job.  At most 128 processes are followed at once (the
rest are counted as not followed), and the summary says how many processes
were seen and lists each process's own peak (docs/monitor.md, "Process
trees").

While the command is the only process of its tree, its peak is its own,
from its ``exec`` on (docs/monitor.md says where it comes from and
why), and the summary says how it was measured: ``kernel-hwm`` (exact),
``kernel-hwm+sampled`` (exact up to the last reading of the mark, sampled
after it), ``sampled`` (no kernel mark on this platform) or ``unmeasured``
(it exited before the first reading; ``peak_rss_at_most_bytes`` bounds it).
Once it has had more processes, the peak is the sampled peak of the sum
(``sampled-tree``).

The command runs in a process group of its own.  SIGINT (Ctrl-C) and
SIGTERM to the monitor are forwarded to that group; ``--timeout`` sends it
SIGTERM.  Either way the command gets ``--grace`` to exit before the whole
group is killed with SIGKILL, and the summary is printed and ``--json``
written after that.  ``--duration`` only stops the watching: a command still
running then is left running.  Nothing the command started outlives the
monitor otherwise, even when the monitor is killed (docs/monitor.md,
"automem monitor").  ``--pid`` watches a process the monitor does not own:
it is never signalled, stopped or killed.

Exit (docs/guarantees.md, "Exit codes"): the command's own code, or 128+N
when signal N killed it; 0 when the watch ended otherwise (``--pid``,
``--duration``); 3 when ``--max-peak`` or ``--fail-on-pressure`` was
crossed and the command did not fail; 124 when ``--timeout`` stopped it;
130 / 143 when interrupted by SIGINT / SIGTERM; 2 bad input; 70 an
internal failure (the sampler died), after the summary of what was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_write_text
from ..base.defaults import (
    DEFAULT_GRACE,
    DEFAULT_KEEP,
)
from ..base.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration_s,
    parse_size_bytes,
)
from ..measure import _platform, command_group
from ..measure._platform import MemoryReadError, ProcessGoneError
from ..measure.command_group import CommandGroup
from ..measure.monitor import MeasurementWindow, MemoryMonitor
from ..measure.pressure import MeasurementBasis, PressureLevel
from ..measure.process_tree import TreeReport
from ..measure.sampler_parent import SamplerDiedError
from ..measure.stop_signals import StopSignals, shielded
from ..measure.window_result import WindowResult
from ..snapshots.files import write_snapshot
from ..verdicts.limits import CommandLimits, LimitsVerdict, judge_limits
from .common import (
    InputError,
    add_command,
    add_watch_options,
    redirect_stdout_to_devnull,
    typed,
)
from .exit_codes import (
    EXIT_INTERNAL,
    EXIT_LIMIT,
    EXIT_OK,
    EXIT_TIMEOUT,
    describe_returncode,
    for_signal,
    of_returncode,
    signal_name,
)

#: The command's line in ``automem --help``.
SUMMARY = "watch a command or process: live memory, snapshots, summary"
_POLL_S = 0.02


@dataclass(frozen=True)
class Watched:
    """What ended the watch: the process's exit (if we saw it) and why we stopped.

    ``exit_maxrss_bytes`` is ``wait4``'s ``ru_maxrss``: the command's
    kernel mark at its exit, but no lower than what the monitor's own forked
    copy held before ``exec``.  It is the command's own peak only when
    ``exit_maxrss_after_exec`` (it is above anything that copy could hold).
    """

    exit_code: int | None
    reason: str
    exit_maxrss_bytes: int | None = None
    exit_maxrss_after_exec: bool = False
    #: Why the monitor stopped the command before it ended on its own.
    stopped_by: StopCause | None = None
    #: The command outlived ``--grace`` and its group was killed with SIGKILL.
    killed_after_grace: bool = False
    #: ``--duration`` ended the watch and the command was left running.
    left_running: bool = False
    #: What failed inside the monitor (the sampler died), if anything did.
    internal_error: str | None = None

    @property
    def exit_peak_rss_bytes(self) -> int | None:
        """The command's exact peak at its exit, where ``wait4`` gives it."""
        return self.exit_maxrss_bytes if self.exit_maxrss_after_exec else None


@dataclass(frozen=True)
class StopCause:
    """Why the monitor stops a command that has not ended: what it sends first, and its code."""

    name: str
    signum: int
    exit_code: int
    text: str


@dataclass(frozen=True)
class Stop:
    """A stop under way: the group was sent ``cause.signum``; SIGKILL at ``deadline``,
    or as soon as we receive more than ``signals_seen`` signals."""

    cause: StopCause
    deadline: float
    signals_seen: int
    killed: bool = False


@dataclass(frozen=True)
class Spawned:
    """A started command and the most ``wait4`` may carry over from us into its peak."""

    group: CommandGroup
    inherited_bound_bytes: int | None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.group.process

    def after_exec(self, maxrss_bytes: int) -> bool:
        """Whether ``maxrss_bytes`` from ``wait4`` can only be the command's own.

        Python starts a command with ``vfork`` (or ``fork``) then ``exec``;
        at ``exec`` the kernel folds the old memory map's mark (ours, or our
        copy's) into the process's ``ru_maxrss``.  A figure above our own
        mark at the time, with room for the kernel's counter batching, was
        made after ``exec``.
        """
        if self.inherited_bound_bytes is None:
            return False
        margin = 2 * _platform.rss_counter_error_bytes()
        return maxrss_bytes > self.inherited_bound_bytes + margin


@dataclass(frozen=True)
class Peak:
    """The peak the summary reports, and how it was measured (see the module docstring)."""

    rss_bytes: int | None
    source: str
    at_most_bytes: int | None = None


class CommandMark:
    """The watched process's own kernel high-water mark, read while it runs.

    Why not ``wait4`` alone: its ``ru_maxrss`` starts from the monitor's
    forked copy (18 MB for a monitor on its own, 200 MB for one called by a
    process holding that much), so a small command looks as big as the
    monitor.  Reading ``VmHWM`` after the command exits is impossible: the
    kernel frees a process's memory map before it becomes a zombie, and the
    mark goes with it.  What does work:

    - ``VmHWM`` of the process, read while it runs, counts from ``exec``
      (``Popen`` returns once ``exec`` has happened): :meth:`read` takes it
      once the sampler runs, before the first window resets it (so a spike
      made before the sampler started is kept), and at every poll after.
    - At the exit, ``wait4``'s figure where it is above anything the
      monitor could have put in it (:meth:`Spawned.after_exec`): exact, and
      it covers the last instant.  Otherwise the last reading and the 1 ms
      samples after it make the peak, and the summary says so.

    Weighed and not taken: an exec wrapper with a small footprint (the
    wrapper's own ``ru_maxrss`` already holds our copy, and one that forks
    the command anew is a Python process of ~7 MB, or not our child); and
    stopping the command at its exit with ``ptrace`` or a seccomp filter
    (exact, but it would take the command's signals, its debuggers or its
    setuid programs from it).  A command that exits before the sampler's
    first sample (``true``, ~1 ms) is therefore reported as unmeasured,
    bounded by ``wait4``'s figure, rather than given the monitor's memory.
    """

    def __init__(self, pid: int) -> None:
        try:
            self._reader: _platform.ProcessMemory | None = _platform.open_process(pid)
        except MemoryReadError:
            self._reader = None
        #: The highest mark read; None until a reading succeeded.
        self.highest_bytes: int | None = None

    def read(self) -> None:
        """Take the mark now, if the process is still there and has one."""
        if self._reader is None:
            return
        try:
            mark = self._reader.peak_rss_bytes()
        except MemoryReadError:
            return
        if mark is not None:
            self.highest_bytes = max(mark, self.highest_bytes or 0)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "monitor", SUMMARY, __doc__)
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--pid",
        type=int,
        help="watch this running process instead of a command; the monitor does not own "
        "it, and never signals, stops or kills it",
    )
    add_watch_options(
        parser,
        basis_help="pressure on the whole RSS (absolute, default) or on growth "
        "since the start (relative)",
    )
    parser.add_argument(
        "--duration",
        type=typed(parse_duration_s, "--duration"),
        help="stop watching after this long; a command still running is left running "
        "(in its own process group, no longer watched; --timeout stops it instead)",
    )
    parser.add_argument(
        "--timeout",
        type=typed(parse_duration_s, "--timeout"),
        help="stop the command after this long: SIGTERM to its process group, SIGKILL "
        "after --grace; exit 124, as timeout(1)",
    )
    parser.add_argument(
        "--grace",
        type=typed(parse_duration_s, "--grace"),
        help="how long a command asked to stop (Ctrl-C, SIGTERM, --timeout) may take to "
        f"exit before its process group is killed with SIGKILL (default {DEFAULT_GRACE})",
    )
    parser.add_argument("--snapshots", type=Path, help="write snapshot files to this folder")
    parser.add_argument(
        "--snapshot-every",
        type=typed(parse_duration_s, "--snapshot-every"),
        help="start a new window (and snapshot file) this often",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        help=f"snapshot files to keep, newest first, at least 1 (default {DEFAULT_KEEP})",
    )
    parser.add_argument("--json", type=Path, help="write the summary as JSON to this file")
    parser.add_argument(
        "--max-peak",
        type=typed(parse_size_bytes, "--max-peak"),
        help="limit: exit 3 if the peak RSS exceeds this size (and the command did not fail)",
    )
    parser.add_argument(
        "--fail-on-pressure",
        type=typed(PressureLevel.parse, "--fail-on-pressure"),
        help="limit: exit 3 if this pressure level is reached (and the command did not fail)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...] to run")
    parser.set_defaults(run=run)


def _command_of(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if bool(command) == (args.pid is not None):
        raise InputError("give either a command after -- or --pid PID (exactly one)")
    if args.keep < 1:
        raise InputError(f"--keep {args.keep}: must be at least 1 (the newest snapshot is kept)")
    if args.snapshot_every is not None and args.snapshot_every <= 0:
        raise InputError("--snapshot-every: must be a positive duration")
    _check_stop_options(args, command)
    return command


def _check_stop_options(args: argparse.Namespace, command: list[str]) -> None:
    """``--timeout`` and ``--grace`` stop a command: they need one, and exclude ``--duration``."""
    for option, value in (("--timeout", args.timeout), ("--grace", args.grace)):
        if value is not None and not command:
            raise InputError(f"{option}: needs a command; a --pid process is never stopped")
    if args.timeout is not None and args.timeout <= 0:
        raise InputError("--timeout: must be a positive duration")
    if args.timeout is not None and args.duration is not None:
        raise InputError(
            "--timeout and --duration: give one (--duration leaves the command running, "
            "--timeout stops it)"
        )


def _grace_s(args: argparse.Namespace) -> float:
    """``--grace``, or its default (given only with a command, so None means unset)."""
    return parse_duration_s(DEFAULT_GRACE) if args.grace is None else float(args.grace)


def _start(command: list[str], *, die_with_monitor: bool = True) -> Spawned:
    """Start ``command`` in its own process group, noting our own mark on both
    sides of its ``exec``."""
    before = _platform.own_peak_rss_bytes()
    try:
        group = command_group.start(command, die_with_monitor=die_with_monitor)
    except (FileNotFoundError, PermissionError) as exc:
        raise InputError(f"cannot run {shlex.join(command)}: {exc.strerror or exc}") from None
    except subprocess.SubprocessError as exc:  # what Popen makes of a failed preexec step
        raise InputError(f"cannot run {shlex.join(command)}: {exc}") from None
    after = _platform.own_peak_rss_bytes()
    bound = None if before is None or after is None else max(before, after)
    return Spawned(group, bound)


def run(args: argparse.Namespace) -> int:
    command = _command_of(args)
    _check_outputs(args)
    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(StopSignals())
        if command:
            stack.enter_context(command_group.adopting_orphans())
        spawned = _start(command, die_with_monitor=args.duration is None) if command else None
        pid = spawned.process.pid if spawned else args.pid
        mark = CommandMark(pid)
        watched: Watched | None = None
        tree: TreeReport | None = None
        try:
            results, watched, tree = _monitor_and_watch(args, pid, spawned, mark, signals)
        finally:
            mark.close()
            if spawned is not None:
                _finish(spawned, watched, _grace_s(args))
        summary = _summary(args, command, pid, results, watched, mark.highest_bytes, tree)
        return _report(args, summary)  # a signal now is noted, and the report still made


def _finish(spawned: Spawned, watched: Watched | None, grace_s: float) -> None:
    """Leave nothing of the command's tree running, unless it was left running on purpose.

    On the normal paths the command has been reaped by now; on an error path
    (``watched`` is None) it may still run, and gets the graceful stop too.
    """
    if watched is not None and watched.left_running:
        spawned.group.release()
        return
    if spawned.process.returncode is None:
        spawned.group.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _reap(spawned, blocking=False) is None:
            if time.monotonic() >= deadline:
                spawned.group.signal(signal.SIGKILL)
                _reap(spawned, blocking=True)
                break
            time.sleep(_POLL_S)
    spawned.group.stop_everything(grace_s)


def _report(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    """Write ``--json``, print the summary, and return the exit code it carries.

    The JSON file comes first: a closed stdout (``| head``) must not cost it.
    A reader that went away is not an error of ours: the code stays the one
    the summary gives.
    """
    if args.json:
        atomic_write_text(args.json, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    try:
        print(_render(summary), flush=True)
    except BrokenPipeError:
        redirect_stdout_to_devnull()
    if summary["internal_error"] is not None:
        with contextlib.suppress(BrokenPipeError):
            print(
                f"automem monitor: internal error: {summary['internal_error']} "
                "(the summary covers what was measured until then)",
                file=sys.stderr,
            )
    return int(summary["monitor_exit_code"])


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before watching, not after, if an output cannot be written."""
    for option, folder in (("--snapshots", args.snapshots), ("--json", _parent(args.json))):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{option}: cannot create {folder}: {exc.strerror}") from None
    if args.json is not None and args.json.is_dir():
        raise InputError(f"--json: {args.json} is a folder")


def _parent(path: Path | None) -> Path | None:
    return None if path is None else path.parent


def _monitor_and_watch(
    args: argparse.Namespace,
    pid: int,
    spawned: Spawned | None,
    mark: CommandMark,
    signals: StopSignals,
) -> tuple[list[WindowResult], Watched, TreeReport | None]:
    try:
        with shielded():  # the sampler must outlive a Ctrl-C to our process group
            monitor = MemoryMonitor(pid, interval_ms=args.interval, tree=True).start()
    except ProcessGoneError:
        if spawned is None:
            raise InputError(f"--pid {pid}: no such process, or it has exited") from None
        watched = _reap(spawned, blocking=True)
        assert watched is not None
        return [], watched, None
    except SamplerDiedError as exc:
        return (*_watch(args, None, spawned, mark, signals, internal=_one_line(exc)), None)
    except MemoryReadError as exc:
        raise InputError(f"--pid {pid}: {exc}") from None
    try:
        mark.read()  # the mark since exec, before the first window resets it
        results, watched = _watch(args, monitor, spawned, mark, signals)
    finally:
        monitor.close()
    return results, watched, monitor.tree_report()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _open(args: argparse.Namespace, monitor: MemoryMonitor) -> MeasurementWindow | None:
    """A new window, or None if the process has just exited."""
    try:
        return monitor.window(
            thresholds=args.thresholds,
            basis=MeasurementBasis(args.basis),
            collect_garbage=False,
        )
    except ProcessGoneError:
        return None


def _watch(
    args: argparse.Namespace,
    monitor: MemoryMonitor | None,
    spawned: Spawned | None,
    mark: CommandMark,
    signals: StopSignals,
    internal: str | None = None,
) -> tuple[list[WindowResult], Watched]:
    """Sample until the process ends, ``--duration`` passes, or the monitor stops it.

    A stop (a signal to us, ``--timeout``, a dead sampler) is forwarded to
    the command's group, and the command sampled and waited for until it
    exits or ``--grace`` is over (then SIGKILL).  ``monitor`` is None, and
    ``internal`` says why, once the sampler is dead: the watch goes on
    without samples until the command is stopped.
    """
    results: list[WindowResult] = []
    window = None
    started = time.monotonic()
    next_live = started + args.every if args.every else None
    next_rotate = started + args.snapshot_every if args.snapshot_every else None
    watched: Watched | None = None
    stop: Stop | None = None
    try:
        window = _open(args, monitor) if monitor is not None else None
    except SamplerDiedError as exc:
        internal, monitor = _one_line(exc), None
    while watched is None:
        time.sleep(_POLL_S)
        now = time.monotonic()
        mark.read()
        try:
            duration_s = None if stop is not None else args.duration  # a stop goes on
            watched = _ended(monitor, spawned, started, now, duration_s)
            if watched is None and monitor is not None:
                _check_sampler(monitor)
                if window and next_live is not None and now >= next_live:
                    printed = _print_live(window, now - started)
                    next_live = next_live + args.every if printed else None
                if next_rotate is not None and now >= next_rotate:
                    if window is not None:
                        results.append(_close(args, window, len(results)))
                    mark.read()
                    window = _open(args, monitor)
                    next_rotate += args.snapshot_every
        except SamplerDiedError as exc:
            internal, monitor, window = _one_line(exc), None, None
        if watched is None:
            stop, watched = _advance_stop(args, signals, spawned, stop, now - started, internal)
    if window is not None:
        try:
            results.append(_close(args, window, len(results), watched.exit_peak_rss_bytes))
        except SamplerDiedError as exc:
            internal = _one_line(exc)
    if stop is not None:
        watched = replace(watched, stopped_by=stop.cause, killed_after_grace=stop.killed)
    return results, replace(watched, internal_error=internal)


def _check_sampler(monitor: MemoryMonitor) -> None:
    """Raise SamplerDiedError if the sampler is gone (a started command's exit is reaped)."""
    with contextlib.suppress(ProcessGoneError):
        monitor._check()


def _advance_stop(
    args: argparse.Namespace,
    signals: StopSignals,
    spawned: Spawned | None,
    stop: Stop | None,
    elapsed_s: float,
    internal: str | None,
) -> tuple[Stop | None, Watched | None]:
    """Begin a stop when one is due, or end its grace with SIGKILL.

    A second signal to us ends the grace at once.  With ``--pid`` there is
    nothing of ours to stop: the watch just ends.
    """
    now = time.monotonic()
    if stop is None:
        cause = _stop_cause(args, signals, elapsed_s, internal)
        if cause is None:
            return None, None
        if spawned is None:
            return None, Watched(None, cause.text, stopped_by=cause)
        spawned.group.signal(cause.signum)
        # The signal that began the stop is not a second one; any other is.
        began_by_signal = cause.signum in signals.received[:1]
        return Stop(cause, now + _grace_s(args), 1 if began_by_signal else 0), None
    overdue = now >= stop.deadline or len(signals.received) > stop.signals_seen
    if overdue and not stop.killed and spawned is not None:
        spawned.group.signal(signal.SIGKILL)
        return replace(stop, killed=True), None
    return stop, None


def _stop_cause(
    args: argparse.Namespace, signals: StopSignals, elapsed_s: float, internal: str | None
) -> StopCause | None:
    """Why the command must be stopped now, if it must: a signal to us first."""
    if signals.received:
        signum = signals.received[0]
        name = signal_name(signum)
        return StopCause(name, signum, for_signal(signum), f"{name} received")
    if internal is not None:
        return StopCause("internal-error", signal.SIGTERM, EXIT_INTERNAL, "internal error")
    if args.timeout is not None and elapsed_s >= args.timeout:
        text = f"--timeout {format_duration(args.timeout)} reached"
        return StopCause("--timeout", signal.SIGTERM, EXIT_TIMEOUT, text)
    return None


def _reap(spawned: Spawned, *, blocking: bool) -> Watched | None:
    """The child's exit, with ``wait4``'s peak figure; None if still running."""
    child = spawned.process
    pid, status, usage = os.wait4(child.pid, 0 if blocking else os.WNOHANG)
    if not pid:
        spawned.group.reap_orphans()
        return None
    child.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss * _platform.MAXRSS_UNIT_BYTES
    return Watched(
        child.returncode,
        describe_returncode(child.returncode),
        exit_maxrss_bytes=maxrss,
        exit_maxrss_after_exec=spawned.after_exec(maxrss),
    )


def _ended(
    monitor: MemoryMonitor | None,
    spawned: Spawned | None,
    started: float,
    now: float,
    duration_s: float | None,
) -> Watched | None:
    if spawned is not None:
        watched = _reap(spawned, blocking=False)
        if watched is not None:
            return watched
    elif monitor is not None:
        try:
            monitor._check()
        except ProcessGoneError:
            return Watched(None, "process exited")
    if duration_s is not None and now - started >= duration_s:
        reached = f"--duration {format_duration(duration_s)} reached"
        if spawned is None:
            return Watched(None, reached)
        pid = spawned.process.pid
        return Watched(None, f"{reached}; command left running (pid {pid})", left_running=True)
    return None


def _print_live(window: MeasurementWindow, elapsed_s: float) -> bool:
    """Print a live line on stderr; False once nobody reads it (``2>&1 | head``).

    A closed stderr ends the live lines, not the watch: the command goes on.
    """
    try:
        current = window.current_rss_bytes()
        peak = window.peak_rss_bytes()
    except ProcessGoneError:
        return True
    try:
        print(
            f"[automem] {elapsed_s:7.1f}s  rss {format_size(current):>9}  "
            f"peak {format_size(peak):>9}  pressure {window.pressure().name}",
            file=sys.stderr,
            flush=True,
        )
    except BrokenPipeError:
        return False
    return True


def _close(
    args: argparse.Namespace,
    window: MeasurementWindow,
    index: int,
    exit_peak_rss_bytes: int | None = None,
) -> WindowResult:
    result = window.stop(exit_peak_rss_bytes=exit_peak_rss_bytes)
    if args.snapshots is not None:
        write_snapshot(result, args.snapshots, label=f"pid{result.pid}-w{index}", keep=args.keep)
    return result


def _peak(results: list[WindowResult], watched: Watched, mark_bytes: int | None) -> Peak:
    """The process's peak from every source that is its own, and how exact it is."""
    exit_peak = watched.exit_peak_rss_bytes
    figures = [r.peak_rss_bytes for r in results]
    figures += [value for value in (mark_bytes, exit_peak) if value is not None]
    if not figures:
        return Peak(None, "unmeasured", watched.exit_maxrss_bytes)
    peak = max(figures)
    if exit_peak is not None or (results and results[-1].peak_source == "kernel-hwm"):
        return Peak(peak, "kernel-hwm")
    return Peak(peak, "sampled" if mark_bytes is None else "kernel-hwm+sampled")


def _summary(
    args: argparse.Namespace,
    command: list[str],
    pid: int,
    results: list[WindowResult],
    watched: Watched,
    mark_bytes: int | None,
    tree: TreeReport | None,
) -> dict[str, Any]:
    peak = _tree_peak(_peak(results, watched, mark_bytes), tree)
    whole_process = MeasurementBasis(args.basis) is MeasurementBasis.ABSOLUTE
    fallback_level = PressureLevel.LOW
    if whole_process and peak.rss_bytes is not None:
        fallback_level = args.thresholds.classify(peak.rss_bytes)
    max_pressure = max((r.max_pressure for r in results), default=fallback_level)
    verdict = judge_limits(
        CommandLimits(max_peak_bytes=args.max_peak, fail_on_pressure=args.fail_on_pressure),
        peak_rss_bytes=peak.rss_bytes,
        peak_rss_at_most_bytes=peak.at_most_bytes,
        max_pressure=max_pressure,
    )
    return {
        "version": 1,
        "command": command,
        "pid": pid,
        "ended": _ended_text(watched, args),
        "exit_code": None if watched.exit_code is None else of_returncode(watched.exit_code),
        "exit_signal": _signal_of(watched.exit_code),
        "stopped_by": watched.stopped_by.name if watched.stopped_by else None,
        "killed_after_grace": watched.killed_after_grace,
        "left_running": watched.left_running,
        "internal_error": watched.internal_error,
        "monitor_exit_code": _exit_code(watched, verdict),
        "peak_rss_bytes": peak.rss_bytes,
        "peak_source": peak.source,
        "peak_rss_at_most_bytes": peak.at_most_bytes,
        "max_pressure": max_pressure.name,
        "thresholds_bytes": list(args.thresholds.boundaries()),
        "snapshots": str(args.snapshots) if args.snapshots else None,
        "snapshots_kept": args.keep if args.snapshots else None,
        "findings": list(verdict.findings),
        "notes": list(verdict.notes),
        "windows": [r.to_dict() for r in results],
        **_tree_fields(tree),
    }


def _exit_code(watched: Watched, verdict: LimitsVerdict) -> int:
    """The monitor's exit code (docs/guarantees.md, "Exit codes"), first rule that applies.

    An internal failure beats everything (the figures are incomplete); a
    stop we made beats how the command then ended (130, 143, 124, as a
    shell or timeout(1) reports it); then the command's own failure, as a
    shell reports it; a limit crossed only where the command succeeded, as
    the command's own code says more about a failed run.
    """
    if watched.internal_error is not None:
        return EXIT_INTERNAL
    if watched.stopped_by is not None:
        return watched.stopped_by.exit_code
    if watched.exit_code:
        return of_returncode(watched.exit_code)
    return EXIT_LIMIT if verdict.crossed else EXIT_OK


def _signal_of(returncode: int | None) -> str | None:
    """The name of the signal that killed the command, if one did."""
    return signal_name(-returncode) if returncode is not None and returncode < 0 else None


def _ended_text(watched: Watched, args: argparse.Namespace) -> str:
    """How the watch ended, for the summary's first line: "SIGINT received: …"."""
    if watched.stopped_by is None or watched.exit_code is None:
        return watched.reason
    cause = watched.stopped_by
    sent = signal_name(cause.signum)
    text = f"{cause.text}, {sent} sent to the command's process group"
    if watched.killed_after_grace:
        text += f", SIGKILL after the {format_duration(_grace_s(args))} grace"
    return f"{text}; command {watched.reason}"


#: How each ``peak_source`` of the summary reads in its text.
_PEAK_SOURCE_TEXT = {
    "kernel-hwm": "kernel high-water mark",
    "kernel-hwm+sampled": "kernel high-water mark, then sampled to the exit",
    "sampled": "sampled",
    "sampled-tree": "sampled, tree of {processes_seen} processes",
}


def _render(summary: dict[str, Any]) -> str:
    who = shlex.join(summary["command"]) if summary["command"] else f"pid {summary['pid']}"
    windows = summary["windows"]
    if not windows:
        when = "" if summary["internal_error"] else " before its first sample"
        lines = [
            f"automem monitor: {who}: {summary['ended']}{when}",
            f"  {_peak_text(summary)}",
        ]
    else:
        lines = _render_windows(summary, windows) + _render_processes(summary)
    lines.extend(f"  FINDING: {finding}" for finding in summary["findings"])
    lines.extend(f"  NOTE: {note}" for note in summary["notes"])
    return "\n".join(lines)


def _peak_text(summary: dict[str, Any]) -> str:
    """The peak and how it was measured, or why it was not."""
    if summary["peak_rss_bytes"] is not None:
        source = _PEAK_SOURCE_TEXT[summary["peak_source"]].format(**summary)
        return f"peak RSS {format_size(summary['peak_rss_bytes'])} ({source})"
    text = "peak RSS not measured: the process exited before the monitor could read it"
    if summary["peak_rss_at_most_bytes"] is not None:
        at_most = format_size(summary["peak_rss_at_most_bytes"])
        text += f" (at most {at_most}, which wait4 reports with the monitor's own memory)"
    return text


def _render_windows(summary: dict[str, Any], windows: list[dict[str, Any]]) -> list[str]:
    who = shlex.join(summary["command"]) if summary["command"] else f"pid {summary['pid']}"
    first, last = windows[0], windows[-1]
    duration = sum(w["duration_s"] for w in windows)
    samples = sum(w["samples"] for w in windows)
    intervals = (
        f", p50 {last['interval_p50_ms']:.3f} ms, p99 {last['interval_p99_ms']:.3f} ms"
        if last["interval_p50_ms"] is not None
        else ""
    )
    lines = [
        f"automem monitor: {who}: {summary['ended']} after {format_duration(duration)}",
        f"  {_peak_text(summary)}, "
        f"start {format_size(first['baseline_bytes'])}, end {format_size(last['end_rss_bytes'])}",
        f"  max pressure {summary['max_pressure']}",
        f"  sampler: {first['interval_target_ms']:g} ms target, {samples} samples{intervals}",
    ]
    if last["rate_bytes_per_s"] is not None:
        lines.insert(2, f"  growth rate {format_rate(last['rate_bytes_per_s'])} (last window)")
    if summary["snapshots"]:
        pruned = (
            f", newest {summary['snapshots_kept']} kept"
            if len(windows) > summary["snapshots_kept"]
            else ""
        )
        lines.append(f"  snapshots: {summary['snapshots']} ({len(windows)} windows){pruned}")
    return lines


# -- the process tree ---------------------------------------------------------

#: Processes the summary's text names, largest peak first (the JSON has every one kept).
_PROCESSES_SHOWN = 5


def _tree_peak(peak: Peak, tree: TreeReport | None) -> Peak:
    """The peak of a tree that has had more than one process: the sampled
    maximum of its sum, never below what one of its processes held alone.

    The command's own figures (its kernel mark, ``wait4``'s) bound the
    tree's peak from below too, so ``peak`` is kept as a bound; only the
    sum's peak cannot come from a kernel mark.
    """
    if tree is None or tree.processes_seen <= 1:
        return peak
    figures = [value for value in (peak.rss_bytes, tree.largest_peak_bytes) if value is not None]
    return Peak(max(figures, default=None), "sampled-tree", peak.at_most_bytes)


def _tree_fields(tree: TreeReport | None) -> dict[str, Any]:
    """The summary's per-process keys (null when the watch saw no sample)."""
    if tree is None:
        return {
            "processes_seen": None,
            "processes_not_followed": None,
            "max_processes": None,
            "processes": [],
        }
    return tree.to_dict()


def _render_processes(summary: dict[str, Any]) -> list[str]:
    """How many processes the tree had, and the largest by peak, one a line."""
    seen = summary["processes_seen"]
    if seen is None:
        return []
    head = f"  processes: {seen} seen"
    if summary["processes_not_followed"]:
        head += (
            f", {summary['processes_not_followed']} not followed "
            f"(over the cap of {summary['max_processes']} at once)"
        )
    shown = summary["processes"][:_PROCESSES_SHOWN]
    lines = [head + (", largest peaks:" if shown else "")]
    for process in shown:
        state = "running" if process["running"] else "exited"
        lines.append(
            f"    pid {process['pid']:<8} {process['name']:<16} "
            f"peak {format_size(process['peak_rss_bytes']):>9}  {state}"
        )
    if seen > len(shown):
        lines.append(f"    and {seen - len(shown)} more")
    return lines
