"""``automem spawn``: run a worker in a child process, replaced when memory pressure rises.

    automem spawn SCENARIO --automaton PATH [options]
    automem spawn [options] -- CMD [ARG...]

SCENARIO (``module:function`` or ``path/to/file.py:function``) runs step
after step on the automaton file PATH in a child process, watched at 1 ms.
At MEDIUM pressure the child is asked to collect garbage; at HIGH or
CRITICAL, once ``--cooldown`` has passed since the last replacement, it
saves the automaton and exits, and a replacement loads the file with that
level's profile (HIGH: 1000 objects, 250 history entries, GC every 3 s,
trim every 7 s; CRITICAL: 500, 100, 2 s, 5 s); what the profile trims goes
to the archive beside the file.  With ``-- CMD``, any command is the
worker: the replacement starts first, with its profile in environment
variables (AUTOMEM_LEVEL, AUTOMEM_GENERATION, AUTOMEM_MAX_OBJECTS,
AUTOMEM_MAX_EXECUTION_HISTORY, AUTOMEM_GC_INTERVAL_S,
AUTOMEM_TRIM_INTERVAL_S), then the old one gets SIGTERM, ``--grace``, and
SIGKILL of its process group.  The memory watched is the worker's whole
process tree.

A child that crashes is restarted with the same profile, at most
``--max-restarts`` times within ``--restart-window``.  Events (start, ready,
level, gc_request, gc, warning at 5 and 10 MB/s of growth, retire, spawn,
crash, exit) are printed on stderr as they happen, with a live line every
``--every``; ``--events`` writes them with the memory curve as a snapshot
file that ``automem investigate`` and ``automem analyze`` read.  The run
ends when ``--duration`` has passed, the scenario's ``--steps`` are done, a
command worker exits with 0, or on Ctrl-C / SIGTERM: the worker is asked to
stop (a scenario child saves first), given ``--grace`` (a second Ctrl-C
ends it), then killed with its whole process group.  Nothing it started outlives the spawner, even a
spawner killed with SIGKILL (docs/spawner.md).

Exit (docs/guarantees.md, "Exit codes"): 0 when the run ended as planned
(duration, steps, the command's own exit 0); the last crash's code as a
shell reports it (128+N for signal N) when crashes passed the restart
limit; 130 / 143 when interrupted by SIGINT / SIGTERM; 2 bad input (a
scenario or automaton that cannot be loaded); 70 an internal failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..automaton.spawn_results import SpawnEvent, SpawnResult, SpawnStatus
from ..automaton.spawner import MemoryAwareSpawner, SpawnInputError
from ..automaton.store import archive_path_for
from ..base.atomic import atomic_write_text
from ..base.defaults import (
    DEFAULT_CRASH_RESTARTS,
    DEFAULT_CRASH_WINDOW_S,
    DEFAULT_GRACE,
    DEFAULT_SPAWN_COOLDOWN_S,
)
from ..base.units import format_rate, format_size, parse_duration_s
from ..measure.stop_signals import StopSignals
from .common import (
    InputError,
    add_command,
    add_watch_options,
    redirect_stdout_to_devnull,
    typed,
)
from .exit_codes import EXIT_INTERNAL, EXIT_OK, for_signal, of_returncode, signal_name

#: The command's line in ``automem --help``.
SUMMARY = "run a scenario or command in a child, replaced under memory pressure"


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "spawn", SUMMARY, __doc__)
    parser.add_argument("--automaton", type=Path, help="the automaton file a scenario runs on")
    parser.add_argument(
        "--steps", type=int, help="end a scenario after this many steps in all (default: none)"
    )
    parser.add_argument(
        "--duration",
        type=typed(parse_duration_s, "--duration"),
        help="end the run after this long (default: when the worker ends, or Ctrl-C)",
    )
    add_watch_options(
        parser,
        basis_help="pressure on the child's whole RSS (absolute, default) or above the "
        "first child's memory once it was ready (relative)",
    )
    parser.add_argument(
        "--cooldown",
        default=f"{DEFAULT_SPAWN_COOLDOWN_S:g}s",
        type=typed(parse_duration_s, "--cooldown"),
        help=f"least time between two replacements (default {DEFAULT_SPAWN_COOLDOWN_S:g}s)",
    )
    parser.add_argument(
        "--grace",
        default=DEFAULT_GRACE,
        type=typed(parse_duration_s, "--grace"),
        help="how long a worker asked to stop may take before its process group is killed "
        f"(default {DEFAULT_GRACE})",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=DEFAULT_CRASH_RESTARTS,
        help=f"crashes restarted within --restart-window (default {DEFAULT_CRASH_RESTARTS})",
    )
    parser.add_argument(
        "--restart-window",
        default=f"{DEFAULT_CRASH_WINDOW_S:g}s",
        type=typed(parse_duration_s, "--restart-window"),
        help=f"the window of --max-restarts (default {DEFAULT_CRASH_WINDOW_S:g}s)",
    )
    parser.add_argument(
        "--events", type=Path, help="write the events and the memory curve to this file"
    )
    parser.add_argument("--json", type=Path, help="write the summary as JSON to this file")
    parser.add_argument(
        "worker", nargs=argparse.REMAINDER, help="SCENARIO, or -- CMD [ARG...] to run"
    )
    parser.set_defaults(run=run, parser=parser)


class _Live:
    """What the terminal shows while the run goes on: events, and a live line."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._next_s = every_s
        self._held: list[SpawnEvent] | None = []
        self.closed = False

    def event(self, event: SpawnEvent) -> None:
        """Print an event; those before the first child is ready wait for it, so a
        scenario that cannot be loaded leaves its one error line alone on stderr."""
        if self._held is not None:
            self._held.append(event)
            if event.kind not in ("ready", "exit", "crash"):
                return
            held, self._held = self._held, None
            for each in held:
                self._print(each.text())
            return
        self._print(event.text())

    def status(self, status: SpawnStatus) -> None:
        if not self._every_s or status.t_s < self._next_s:
            return
        self._next_s = status.t_s + self._every_s
        rss = "?" if status.rss_bytes is None else format_size(status.rss_bytes)
        rate = "n/a"
        if status.rate_bytes_per_s is not None:
            rate = format_rate(round(status.rate_bytes_per_s))  # no "-0 B/s"
        self._print(
            f"{status.t_s:8.1f}s gen {status.generation} ({status.profile.name} profile)  "
            f"rss {rss:>9}  {status.level.name:<8}  growth {rate}"
        )

    def _print(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(f"[automem] {text}", file=sys.stderr, flush=True)
        except BrokenPipeError:
            self.closed = True  # nobody reads stderr: the run goes on


def _worker_of(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The scenario, or the command; options written after SCENARIO are parsed here.

    Everything from the first word that is not an option is the worker
    (so that ``-- CMD ARG`` stays whole); after a scenario, the rest are
    this command's options, parsed into ``args``.
    """
    worker = list(args.worker)
    if worker[:1] == ["--"]:
        return None, worker[1:] or _missing_command()
    if not worker:
        raise InputError("give a SCENARIO (module:function or file.py:function), or -- CMD")
    if "--" in worker:
        raise InputError("give either SCENARIO --automaton PATH or -- CMD [ARG...], not both")
    args.parser.parse_args(worker[1:], namespace=args)
    if args.worker:
        raise InputError(
            f"one SCENARIO only: {worker[0]} and {args.worker[0]} given (-- CMD runs a command)"
        )
    worker = worker[:1]
    if args.automaton is None:
        raise InputError(f"scenario {worker[0]}: --automaton PATH is required")
    return worker[0], []


def _missing_command() -> list[str]:
    raise InputError("-- needs a command to run after it")


def _check(args: argparse.Namespace, scenario: str | None) -> None:
    if scenario is None:
        for option, value in (("--automaton", args.automaton), ("--steps", args.steps)):
            if value is not None:
                raise InputError(f"{option}: applies to a scenario, not to -- CMD")
    if args.steps is not None and args.steps < 0:
        raise InputError(f"--steps {args.steps}: must be >= 0")
    if args.max_restarts < 0:
        raise InputError(f"--max-restarts {args.max_restarts}: must be >= 0")
    for option, value in (("--duration", args.duration), ("--grace", args.grace)):
        if value is not None and value <= 0:
            raise InputError(f"{option}: must be a positive duration")
    if args.restart_window <= 0:
        raise InputError("--restart-window: must be a positive duration")
    for option, path in (("--events", args.events), ("--json", args.json)):
        if path is not None and path.is_dir():
            raise InputError(f"{option}: {path} is a folder")
        if path is not None and not path.parent.is_dir():
            raise InputError(f"{option}: no such folder {path.parent}")
    if args.automaton is not None and not args.automaton.parent.is_dir():
        raise InputError(f"--automaton: no such folder {args.automaton.parent}")
    _check_own_files(args, scenario)


def _check_own_files(args: argparse.Namespace, scenario: str | None) -> None:
    """``--events`` and ``--json`` each get a file of their own: written over
    the automaton, its archive or the scenario's code, they would destroy it."""
    files: dict[str, str] = {}
    if args.automaton is not None:
        files[os.path.realpath(args.automaton)] = f"--automaton {args.automaton}"
        archive = archive_path_for(args.automaton)
        files[os.path.realpath(archive)] = f"the automaton's archive {archive}"
    module, _, _ = (scenario or "").rpartition(":")
    if module.endswith(".py"):
        files[os.path.realpath(module)] = f"the scenario's file {module}"
    for option, path in (("--events", args.events), ("--json", args.json)):
        if path is None:
            continue
        other = files.setdefault(os.path.realpath(path), f"{option} {path}")
        if other != f"{option} {path}":
            raise InputError(f"{option} {path} and {other} are the same file; give it its own")


def _spawner(
    args: argparse.Namespace,
    scenario: str | None,
    command: list[str],
    live: _Live,
    signals: StopSignals,
) -> MemoryAwareSpawner:
    options: dict[str, Any] = {
        "thresholds": args.thresholds,
        "basis": args.basis,
        "duration": args.duration,
        "cooldown": args.cooldown,
        "grace": args.grace,
        "interval_ms": args.interval,
        "max_restarts": args.max_restarts,
        "restart_window": args.restart_window,
        "events_path": args.events,
        "on_event": live.event,
        "on_status": live.status,
        "should_stop": lambda: _stop_reason(signals),
        "should_hurry": lambda: len(signals.received) > 1,  # a second Ctrl-C: no more grace
    }
    if scenario is None:
        return MemoryAwareSpawner.for_command(command, **options)
    return MemoryAwareSpawner(scenario, args.automaton, steps=args.steps, **options)


def _stop_reason(signals: StopSignals) -> str | None:
    return f"{signal_name(signals.received[0])} received" if signals.received else None


def run(args: argparse.Namespace) -> int:
    scenario, command = _worker_of(args)
    _check(args, scenario)
    live = _Live(args.every)
    with StopSignals() as signals:
        spawner = _spawner(args, scenario, command, live, signals)
        try:
            result = spawner.run()
        except SpawnInputError as exc:
            raise InputError(str(exc)) from None
        code = _exit_code(result, signals)
    summary = {"version": 1, "worker": spawner.worker.describe(), **result.to_dict()}
    summary["spawner_exit_code"] = code
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    try:
        print(_render(summary, result), flush=True)
    except BrokenPipeError:
        redirect_stdout_to_devnull()
    return code


def _exit_code(result: SpawnResult, signals: StopSignals) -> int:
    """The exit code (module docstring): an interrupt first, then how the run ended."""
    if result.end_cause == "stopped" and signals.received:
        return for_signal(signals.received[0])
    if result.end_cause == "internal-error":
        return EXIT_INTERNAL
    if result.end_cause == "crash-loop" and result.last_returncode is not None:
        return of_returncode(result.last_returncode)
    return EXIT_OK


def _render(summary: dict[str, Any], result: SpawnResult) -> str:
    lines = [
        f"automem spawn: {summary['worker']}",
        f"  ended: {result.ended}",
        f"  children: {len(result.children)}, spawns: {result.spawns}, crashes: "
        f"{result.crashes}, gc requests: {result.gc_requests}, warnings: "
        f"{result.event_counts.get('warning', 0)}",
        f"  peak {format_size(result.peak_rss_bytes)}, max pressure {result.max_pressure.name}, "
        f"final {result.final_level.name} (thresholds {result.thresholds.describe()}, "
        f"{result.basis.value})",
    ]
    for child in result.children:
        saved = "" if child.final_objects is None else f", saved {child.final_objects} objects"
        lines.append(
            f"  gen {child.generation} pid {child.pid} {child.profile.name} profile "
            f"{child.started_s:.1f}-{child.ended_s:.1f}s {child.ended}, peak "
            f"{format_size(child.peak_rss_bytes)}, max {child.max_pressure.name}{saved}"
        )
    if result.events_path is not None:
        lines.append(f"  events: {result.events_path} ({len(result.events)} events)")
    if result.end_cause == "internal-error":
        with contextlib.suppress(BrokenPipeError):
            print(f"automem spawn: internal error: {result.ended}", file=sys.stderr)
    return "\n".join(lines)
