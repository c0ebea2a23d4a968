"""The bundled example scenarios, each held to a leak budget.

``test_leaky_event_log_is_caught`` is a deliberate leak: it is marked as an
expected failure, so a green run *proves* the leak was caught.  If the leak
ever went unnoticed, the strict xfail would turn the run red.
"""

from __future__ import annotations

import pytest
from event_log import BOUNDED, record_events
from warmup_cache import price_orders

from pytest_automem import run_scenario

#: The leak budget of every example: retained bytes per iteration after warm-up.
LEAK_BUDGET_BYTES = 2 * 1024


def test_bounded_event_log_stays_flat() -> None:
    result = run_scenario(record_events, config=BOUNDED, iterations=100, warmup=10)
    assert result.leak_bytes_per_iteration < LEAK_BUDGET_BYTES, result.describe()
    assert result.final_objects == BOUNDED.max_objects
    assert result.trims > 0


def test_warmup_cache_is_not_a_leak() -> None:
    result = run_scenario(price_orders, iterations=100, warmup=10)
    assert result.leak_bytes_per_iteration < LEAK_BUDGET_BYTES, result.describe()


@pytest.mark.xfail(strict=True, reason="deliberate leak: the unbounded event log must be caught")
def test_leaky_event_log_is_caught() -> None:
    result = run_scenario(record_events, iterations=100, warmup=10)
    assert result.leak_bytes_per_iteration < LEAK_BUDGET_BYTES, result.describe()
