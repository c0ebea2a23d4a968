"""Attributing a scenario's leak: a few more steps, under tracing.

Tracing costs 12-80x on allocation-heavy code (benchmarks/attribution_cost.py),
so it is never on while a scenario is measured.  Once a scenario's slope is
over its budget, the same scenario runs a few more steps on the same
automaton under :func:`attribute_iterations`, and what those steps retained
is attributed to the lines that allocated it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.defaults import ATTRIBUTION_ITERATIONS, ATTRIBUTION_WARMUP, TRACE_FRAMES
from ..measure.pressure import PressureLevel
from .attribution import Attribution, attribute_iterations

if TYPE_CHECKING:
    from ..automaton.scenario import Scenario
    from ..automaton.store import Automaton

__all__ = ["ATTRIBUTION_ITERATIONS", "attribute_scenario"]


def attribute_scenario(
    scenario: Scenario,
    automaton: Automaton,
    *,
    start_step: int,
    iterations: int = ATTRIBUTION_ITERATIONS,
    warmup: int = ATTRIBUTION_WARMUP,
    frames: int = TRACE_FRAMES,
) -> Attribution:
    """Run ``warmup + iterations`` more steps under tracing; attribute what they kept.

    The automaton's count-based policies (``max_objects``, the history cap)
    still run between steps; pressure-based ones do not, as memory figures
    under tracing include tracemalloc's own.
    """
    boundary = getattr(automaton, "on_step_boundary", None)

    def step(number: int) -> None:
        scenario(automaton, number)
        if boundary is not None:
            boundary(0, PressureLevel.LOW)

    return attribute_iterations(
        step, start_step=start_step, iterations=iterations, warmup=warmup, frames=frames
    )
