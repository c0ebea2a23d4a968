"""The bundled example scenarios, each held to a memory budget.

``test_leaky_event_log_is_caught`` is a deliberate leak: it is marked as an
expected failure, so a green run *proves* the leak was caught.  If the leak
ever went unnoticed, the strict xfail would turn the run red.

Run with ``python -m pytest examples --automem-json=results.json
--junitxml=junit.xml`` to get the results file and the JUnit report.
"""

from __future__ import annotations

import pytest
from event_log import BOUNDED, record_events
from warmup_cache import price_orders

#: Every example may retain at most this much per iteration after warm-up.
LEAK_BUDGET = "2KB"


@pytest.mark.memory_budget(leak_per_iteration=LEAK_BUDGET)
def test_bounded_event_log_stays_flat(run_scenario) -> None:
    result = run_scenario(record_events, config=BOUNDED, iterations=100, warmup=10)
    assert result.final_objects == BOUNDED.max_objects
    assert result.trims > 0


@pytest.mark.memory_budget(leak_per_iteration=LEAK_BUDGET)
def test_warmup_cache_is_not_a_leak(run_scenario) -> None:
    run_scenario(price_orders, iterations=100, warmup=10)


@pytest.mark.xfail(strict=True, reason="deliberate leak: the unbounded event log must be caught")
@pytest.mark.memory_budget(leak_per_iteration=LEAK_BUDGET)
def test_leaky_event_log_is_caught(run_scenario) -> None:
    run_scenario(record_events, iterations=100, warmup=10)
