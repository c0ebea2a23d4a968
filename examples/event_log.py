"""An event log kept in an automaton — leaking as written, bounded by policies.

Every step records a batch of ten user events.  On a plain ``Automaton``
nothing is ever dropped: the objects and the execution history grow by a
few kilobytes per step, forever — the classic slow leak of a long-running
service.  The same scenario on a ``MemoryOptimizedAutomaton`` configured with
``BOUNDED`` keeps the newest 100 events (older ones are archived to
``automaton.jsonl.trimmed.jsonl``) and the newest 50 history entries, so memory
stops growing once the cap is reached.

Run either from the command line or from a test (see ``test_examples.py``)::

    run_scenario(record_events)                   # leaks: plain Automaton
    run_scenario(record_events, config=BOUNDED)   # flat: policies on
"""

from __future__ import annotations

from pytest_automem import Automaton, OptimizationConfig

EVENTS_PER_STEP = 10

#: Keep 10 steps' worth of events; the warm-up of 10 steps fills the cap.
BOUNDED = OptimizationConfig(max_objects=100, max_execution_history=50)


def record_events(automaton: Automaton, step: int) -> None:
    """One step of work: record a batch of user events."""
    for i in range(EVENTS_PER_STEP):
        automaton.add(
            {
                "id": f"evt-{step:06d}-{i}",
                "kind": "click" if i % 3 else "view",
                "user": f"user-{(step * 7 + i) % 997}",
                "page": f"/catalog/item/{step * EVENTS_PER_STEP + i}",
                "context": {"referrer": "search", "session": f"s-{step // 5}", "ab": i % 2},
                "note": "x" * 256,
            }
        )
