"""Collection: what each test gets measured with (its plan).

A plan is decided once per test, as its collector (a module, a class)
reports it: whether the test is monitored, its budget (a bad marker is that
collector's error, naming the test and the argument), whether its setup and
teardown are measured, and whether it is monitored only because of
``--automem``.  This module is all a session with the plugin installed but
unused imports beyond the surface; the per-test hooks
(:mod:`pytest_automem.pytest_plugin.runtest`) are imported only when something is
monitored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..verdicts.budget import MemoryBudget

__all__ = [
    "MARKER",
    "MONITORING_FIXTURES",
    "PLAN_KEY",
    "ItemPlan",
    "MarkerError",
    "is_current",
    "parse_budget",
    "plan_item",
]

MARKER = "memory_budget"
#: Fixtures whose use makes a test monitored without ``--automem``.
MONITORING_FIXTURES = frozenset(
    {"memory_monitor", "run_scenario", "automaton", "optimized_automaton"}
)


class MarkerError(ValueError):
    """A ``memory_budget`` marker that cannot be parsed; names the test and the argument."""


@dataclass(frozen=True)
class ItemPlan:
    """What collection decided about one test."""

    budget: MemoryBudget | None
    monitored: bool
    #: Setup and teardown run fixtures that do work (autouse ones included).
    #: Without any they do no work of the test's and are not measured.
    measure_phases: bool
    #: Monitored only because of ``--automem``: no budget to judge and no
    #: automem fixture whose results the investigator reads.
    flag_only: bool
    #: The ``memory_budget`` mark the plan was made from.  A conftest or a
    #: fixture may add one later; the plan is remade when the test's closest
    #: mark is no longer this one (see :func:`is_current`).
    marker: pytest.Mark | None = None
    #: The test's record in the baseline (``--automem-baseline``): its
    #: figures are compared with it after the call, by the gate's rule.
    baseline: Mapping[str, Any] | None = None


#: Plans without a budget, shared by kind: a session holds one plan per
#: test, and most tests are of a few kinds.
_PLANS = {
    (monitored, phases, flag_only): ItemPlan(
        budget=None, monitored=monitored, measure_phases=phases, flag_only=flag_only
    )
    for monitored in (False, True)
    for phases in (False, True)
    for flag_only in (False, True)
}
#: Where each collected test keeps its plan.
PLAN_KEY = pytest.StashKey[ItemPlan]()


def is_current(plan: ItemPlan, item: pytest.Item) -> bool:
    """Whether ``plan`` was made from the mark that now counts for ``item``.

    The verdict rules say the marker on the item *when it runs* counts:
    ``pytest_collection_modifyitems`` hooks and fixtures (``request.applymarker``)
    add marks after the collector reported the test.
    """
    return item.get_closest_marker(MARKER) is plan.marker


def parse_budget(item: pytest.Item, marker: pytest.Mark) -> MemoryBudget:
    """``marker`` (the test's closest ``memory_budget``) as a budget.

    Raises MarkerError whose message names the test and the argument.
    """
    from ..verdicts.budget import BudgetError, MemoryBudget  # only once a test has a budget

    try:
        return MemoryBudget.from_marker(marker.args, marker.kwargs)
    except BudgetError as exc:
        raise MarkerError(f"{item.nodeid}: @pytest.mark.{MARKER}: {exc}") from None


def plan_item(
    item: pytest.Item,
    *,
    monitor_all: bool,
    flag_only_phases: bool,
    file_budgets: Mapping[str, MemoryBudget] | None = None,
    baseline_records: Mapping[str, Mapping[str, Any]] | None = None,
) -> ItemPlan:
    """Decide how ``item`` is measured (raises MarkerError).

    ``file_budgets``: the budgets file's (ini ``automem_budgets``) by node
    id, applied as if the test carried that marker; a marker on the test
    wins.  A test not in the file costs one dict lookup.

    ``baseline_records``: the baseline's records by node id
    (``--automem-baseline``).  A test in it is measured as a budgeted one
    (a full window, garbage collected at its start, the allocator's cache
    handed back), so its figures do not depend on the tests before it; one
    not in it costs one dict lookup.

    ``flag_only_phases``: measure the setup and teardown of tests monitored
    only by ``--automem`` too.  Only the results file and JUnit properties
    report those phases (written by the controller under xdist); without
    them nothing would read the figures, and measuring them would cost every such test two hook
    wrappers and two windows.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        budget: MemoryBudget | None = parse_budget(item, marker)
    else:
        budget = file_budgets.get(item.nodeid) if file_budgets else None
    baseline = baseline_records.get(item.nodeid) if baseline_records else None
    names = getattr(item, "fixturenames", None) or ()
    judged = budget is not None or baseline is not None
    uses_automem = judged or not MONITORING_FIXTURES.isdisjoint(names)
    monitored = monitor_all or uses_automem
    measure_phases = (
        monitored and (uses_automem or flag_only_phases) and _has_fixture_work(item, names)
    )
    if not judged:  # one shared plan per kind: thousands of tests, a few kinds
        plan = _PLANS[monitored, measure_phases, not uses_automem]
    else:
        plan = ItemPlan(
            budget=budget,
            monitored=monitored,
            measure_phases=measure_phases,
            flag_only=False,
            marker=marker,
            baseline=baseline,
        )
    if budget is not None and isinstance(names, list) and "pressure_thresholds" not in names:
        # A test with a budget is judged on its directory's thresholds, so a
        # conftest override must apply.  Requesting the fixture costs every
        # test a fixture setup, which monitoring by --automem alone does not
        # pay: there the ini thresholds apply unless the test asks for the
        # fixture itself.
        names.append("pressure_thresholds")
    return plan


def _direct_parameter_function() -> object:
    """The function behind pytest's pseudo-fixtures for direct parametrization."""
    try:
        from _pytest.python import get_direct_param_fixture_func
    except ImportError:  # another pytest: every fixture then counts as work
        return None
    return get_direct_param_fixture_func


_DIRECT_PARAMETER = _direct_parameter_function()


def _has_fixture_work(item: pytest.Item, names: Any) -> bool:
    """Whether the test's setup and teardown run fixtures.

    Arguments of ``@pytest.mark.parametrize`` are pseudo-fixtures that only
    hand over a value; a test whose fixtures are all of those has nothing
    to measure in setup and teardown.  Where pytest's fixture details cannot
    be read, every name counts as a fixture.
    """
    if not names:
        return False
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", None)
    if definitions is None or _DIRECT_PARAMETER is None:
        return True
    for name in names:
        defs = definitions.get(name)
        if not defs or getattr(defs[-1], "func", None) is not _DIRECT_PARAMETER:
            return True
    return False
