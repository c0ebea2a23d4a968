"""The spawner's child: one automaton, one scenario, steps until told to stop.

Run by the spawner (:mod:`.spawner`) as ``python -m
pytest_automem.automaton.spawn_child SPEC FD``: ``SPEC`` is a JSON object
(:func:`child_spec`), ``FD`` the write end of a pipe on which the child
reports, one JSON object a line, what its parent cannot see from outside:

* ``{"kind": "ready", ...}`` once the automaton is loaded and the profile's
  limits applied (``objects``, ``trimmed`` to the archive, ``config``,
  ``rss_bytes``);
* ``{"kind": "progress", "step": N, "objects": N}`` about every 50 ms;
* ``{"kind": "gc", ...}`` after a collection the parent asked for;
* ``{"kind": "saved", ...}`` before it exits on a stop request, or
  ``{"kind": "finished", ...}`` when the last step is done;
* ``{"kind": "error", "message": ...}`` when the scenario or the automaton
  cannot be loaded (exit code :data:`EXIT_BAD_INPUT`).

Requests come as signals, handled at step boundaries only (never in the
middle of a step): SIGTERM asks the child to save the automaton and exit 0;
SIGUSR1 asks for a ``gc.collect()``.  A scenario that raises ends the child
with exit code 1 and its traceback on stderr: the parent reports a crash.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

from ..measure import _platform
from ..measure.pressure import PressureLevel, PressureThresholds
from .policies import MemoryOptimizedAutomaton, OptimizationConfig
from .scenario import ScenarioLoadError, load_scenario
from .store import AutomatonFormatError

#: The child's exit code when its scenario or automaton cannot be loaded:
#: the user's input is at fault, not a crash worth a restart.
EXIT_BAD_INPUT = 2
#: How often the child reports its step and object count.
PROGRESS_EVERY_S = 0.05
#: The signal that asks for a garbage collection at the next step boundary.
GC_SIGNAL = signal.SIGUSR1


def child_spec(
    *,
    scenario: str,
    automaton: str,
    config: OptimizationConfig,
    level: PressureLevel,
    first_step: int,
    steps: int | None,
    thresholds: PressureThresholds,
    baseline_bytes: int | None,
) -> str:
    """The ``SPEC`` argument: everything the child needs, as plain JSON.

    ``baseline_bytes`` is what pressure is measured above: 0 for the whole
    resident memory, None for the child's own memory once it is ready (the
    first child of a run measured on the relative basis).
    """
    return json.dumps(
        {
            "scenario": scenario,
            "automaton": automaton,
            "config": config.to_dict(),
            "level": level.name,
            "first_step": first_step,
            "steps": steps,
            "thresholds": list(thresholds.boundaries()),
            "baseline_bytes": baseline_bytes,
        }
    )


class _Requests:
    """Flags the signal handlers set, read at step boundaries."""

    def __init__(self) -> None:
        self.stop = False
        self.gc = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(GC_SIGNAL, self._on_gc)

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop = True

    def _on_gc(self, signum: int, frame: object) -> None:
        self.gc = True


class _Reporter:
    """JSON lines on the status pipe; a parent that is gone is not our error."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, kind: str, **fields: Any) -> None:
        data = (json.dumps({"kind": kind, **fields}) + "\n").encode()
        with contextlib.suppress(OSError):  # BrokenPipeError: the parent is gone
            os.write(self._fd, data)


def _load(spec: dict[str, Any], report: _Reporter) -> tuple[Any, MemoryOptimizedAutomaton] | None:
    try:
        scenario = load_scenario(spec["scenario"])
        config = OptimizationConfig(**spec["config"])
        automaton = MemoryOptimizedAutomaton(spec["automaton"], config)
    except (ScenarioLoadError, AutomatonFormatError, ValueError, OSError) as exc:
        report.send("error", message=" ".join(str(exc).split()))
        return None
    return scenario, automaton


def _apply_profile(automaton: MemoryOptimizedAutomaton) -> int:
    """Trim to the profile's cap at once (to the archive); hand the freed memory back.

    Without the hand-back, a replacement that loaded more than its cap
    would keep the load's high-water memory, and its very first readings
    would say the pressure it was started to relieve.
    """
    trimmed = len(automaton.trim())
    if trimmed:
        gc.collect()
        _platform.release_free_memory()
    return trimmed


def run(spec: dict[str, Any], report: _Reporter) -> int:
    requests = _Requests()
    requests.install()
    loaded = _load(spec, report)
    if loaded is None:
        return EXIT_BAD_INPUT
    scenario, automaton = loaded
    reader = _platform.open_process(os.getpid())
    baseline = _get_ready(automaton, reader, spec, report)
    thresholds = PressureThresholds(*spec["thresholds"])
    step, last = spec["first_step"], spec["steps"]
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    while not requests.stop and (last is None or step < last):
        scenario(automaton, step)
        step += 1
        if requests.gc:
            requests.gc = False
            _collect(reader, report)
        measured = reader.rss_bytes() - baseline
        automaton.on_step_boundary(measured, thresholds.classify(measured))
        if time.monotonic() >= next_progress:
            report.send("progress", step=step, objects=len(automaton))
            next_progress = time.monotonic() + PROGRESS_EVERY_S
    automaton.save()
    report.send("saved" if requests.stop else "finished", step=step, objects=len(automaton))
    return 0


def _get_ready(
    automaton: MemoryOptimizedAutomaton,
    reader: _platform.ProcessMemory,
    spec: dict[str, Any],
    report: _Reporter,
) -> int:
    """Apply the profile, report ready; return what pressure is measured above."""
    loaded = len(automaton)
    trimmed = _apply_profile(automaton)
    rss = reader.rss_bytes()
    report.send(
        "ready",
        pid=os.getpid(),
        level=spec["level"],
        loaded=loaded,
        objects=len(automaton),
        trimmed=trimmed,
        config=automaton.config.to_dict(),
        rss_bytes=rss,
        step=spec["first_step"],
        t_ns=time.monotonic_ns(),
    )
    return rss if spec["baseline_bytes"] is None else int(spec["baseline_bytes"])


def _collect(reader: _platform.ProcessMemory, report: _Reporter) -> None:
    """The collection the parent asked for, reported with its effect."""
    before = reader.rss_bytes()
    collected = gc.collect()
    report.send(
        "gc", collected=collected, rss_before_bytes=before, rss_after_bytes=reader.rss_bytes()
    )


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    report = _Reporter(int(argv[1]))
    try:
        return run(spec, report)
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
