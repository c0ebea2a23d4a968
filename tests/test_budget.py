"""Memory budgets: marker arguments parsed from tables, and the verdicts ``judge`` gives.

Windows and scenario results are built directly with chosen figures, so every
message is checked word for word and nothing depends on this machine's memory.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import make_window

from pytest_automem.automaton.scenario import ScenarioResult
from pytest_automem.measure.pressure import PressureLevel, PressureThresholds
from pytest_automem.measure.window_result import WindowResult
from pytest_automem.verdicts.budget import (
    BudgetError,
    MemoryBudget,
    Verdict,
    Violation,
    baseline_comparison,
    growth_regressed,
    judge,
    leak_violation,
    peak_measured,
)
from pytest_automem.verdicts.gate import GateRules, TestComparison

KB = 1 << 10
MB = 1 << 20
GB = 1 << 30


def make_scenario(
    name: str, leak: float, *, iterations: int = 50, warmup: int = 5
) -> ScenarioResult:
    """A scenario result whose verdict slope is ``leak`` bytes per iteration."""
    return ScenarioResult(
        name=name,
        iterations=iterations,
        warmup=warmup,
        retained_bytes=(0,) * (iterations + warmup),
        heap_bytes=(),
        rss_leak_bytes_per_iteration=leak,
        heap_leak_bytes_per_iteration=None,
        leak_bytes_per_iteration=leak,
        peak_bytes=0,
        max_pressure=PressureLevel.LOW,
        pressure_distribution={"LOW": 1.0, "MEDIUM": 0.0, "HIGH": 0.0, "CRITICAL": 0.0},
        trims=0,
        gc_runs=0,
        events=(),
        final_objects=0,
        final_history=0,
        duration_s=0.1,
        window=make_window(),
    )


# -- MemoryBudget.from_marker: valid arguments ---------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"peak": 1000}, MemoryBudget(peak_bytes=1000)),
        ({"peak": 0}, MemoryBudget(peak_bytes=0)),
        ({"peak": "64MB"}, MemoryBudget(peak_bytes=64 * MB)),
        ({"peak": "64MiB"}, MemoryBudget(peak_bytes=64 * MB)),
        ({"peak": "64 mb"}, MemoryBudget(peak_bytes=64 * MB)),
        ({"peak": "2GB"}, MemoryBudget(peak_bytes=2 * GB)),
        ({"peak": "100"}, MemoryBudget(peak_bytes=100)),
        ({"growth": "512KiB"}, MemoryBudget(growth_bytes=512 * KB)),
        ({"growth": "1.5MB"}, MemoryBudget(growth_bytes=3 * MB // 2)),
        ({"growth": 4096}, MemoryBudget(growth_bytes=4096)),
        ({"rate": "1MB/s"}, MemoryBudget(rate_bytes_per_s=float(MB))),
        ({"rate": "512KiB/s"}, MemoryBudget(rate_bytes_per_s=512.0 * KB)),
        ({"rate": "60MB/min"}, MemoryBudget(rate_bytes_per_s=float(MB))),
        ({"rate": 1000}, MemoryBudget(rate_bytes_per_s=1000.0)),
        ({"rate": 0}, MemoryBudget(rate_bytes_per_s=0.0)),
        ({"pressure": "high"}, MemoryBudget(pressure=PressureLevel.HIGH)),
        ({"pressure": "HIGH"}, MemoryBudget(pressure=PressureLevel.HIGH)),
        ({"pressure": "Critical"}, MemoryBudget(pressure=PressureLevel.CRITICAL)),
        ({"pressure": " medium "}, MemoryBudget(pressure=PressureLevel.MEDIUM)),
        ({"pressure": "low"}, MemoryBudget(pressure=PressureLevel.LOW)),
        ({"pressure": PressureLevel.MEDIUM}, MemoryBudget(pressure=PressureLevel.MEDIUM)),
        ({"leak_per_iteration": "4KB"}, MemoryBudget(leak_bytes_per_iteration=4 * KB)),
        ({"leak_per_iteration": 0}, MemoryBudget(leak_bytes_per_iteration=0)),
        (
            {
                "peak": "64MB",
                "growth": "512KiB",
                "rate": "1MB/s",
                "pressure": "medium",
                "leak_per_iteration": 1024,
            },
            MemoryBudget(
                peak_bytes=64 * MB,
                growth_bytes=512 * KB,
                rate_bytes_per_s=float(MB),
                pressure=PressureLevel.MEDIUM,
                leak_bytes_per_iteration=1024,
            ),
        ),
    ],
    ids=repr,
)
def test_valid_marker_arguments(kwargs: dict[str, Any], expected: MemoryBudget) -> None:
    assert MemoryBudget.from_marker((), kwargs) == expected


def test_budget_to_dict_is_plain() -> None:
    budget = MemoryBudget.from_marker((), {"peak": "1MB", "pressure": "high"})
    assert budget.to_dict() == {
        "peak_bytes": MB,
        "growth_bytes": None,
        "rate_bytes_per_s": None,
        "pressure": "HIGH",
        "leak_bytes_per_iteration": None,
        "trace": False,
    }


@pytest.mark.parametrize("value", [True, False])
def test_trace_is_a_flag(value: bool) -> None:
    assert MemoryBudget.from_marker((), {"peak": "1MB", "trace": value}).trace is value


@pytest.mark.parametrize("value", ["yes", 1, None.__class__])
def test_trace_must_be_a_bool(value: object) -> None:
    with pytest.raises(BudgetError, match="trace="):
        MemoryBudget.from_marker((), {"trace": value})


# -- MemoryBudget.from_marker: invalid arguments -------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "must_name"),
    [
        # bad size text
        ((), {"peak": "64 megs"}, ["peak=", "64 megs"]),
        ((), {"peak": "lots"}, ["peak=", "lots"]),
        ((), {"peak": ""}, ["peak=''"]),
        ((), {"growth": "64MBs"}, ["growth=", "64MBs"]),
        ((), {"leak_per_iteration": "1 KB per step"}, ["leak_per_iteration=", "1 KB per step"]),
        ((), {"peak": [64]}, ["peak=[64]"]),
        # negative / non-finite
        ((), {"peak": -1}, ["peak=-1"]),
        ((), {"growth": "-5MB"}, ["growth=", "-5MB"]),
        ((), {"leak_per_iteration": -4096}, ["leak_per_iteration=-4096"]),
        ((), {"peak": float("inf")}, ["peak=inf"]),
        ((), {"rate": -1}, ["rate=-1"]),
        ((), {"rate": "-1MB/s"}, ["rate=", "-1MB/s"]),
        # bool is not a number of bytes
        ((), {"peak": True}, ["peak=True"]),
        ((), {"growth": False}, ["growth=False"]),
        ((), {"rate": True}, ["rate=True"]),
        ((), {"pressure": True}, ["pressure=True"]),
        ((), {"leak_per_iteration": True}, ["leak_per_iteration=True"]),
        # unknown keyword, alone or beside valid ones
        ((), {"peek": "64MB"}, ["peek="]),
        ((), {"peak": "64MB", "max_rss": "1GB"}, ["max_rss="]),
        # positional arguments, no arguments
        (("64MB",), {}, ["positional", "64MB"]),
        ((64 * MB,), {"growth": "1MB"}, ["positional", str(64 * MB)]),
        ((), {}, ["at least one limit"]),
        # bad pressure name
        ((), {"pressure": "severe"}, ["pressure=", "severe"]),
        ((), {"pressure": "HIGHER"}, ["pressure=", "HIGHER"]),
        ((), {"pressure": 2}, ["pressure=2"]),
        # rate without a time unit
        ((), {"rate": "1MB"}, ["rate=", "1MB"]),
        ((), {"rate": "1MB/"}, ["rate=", "1MB/"]),
        ((), {"rate": "1MB/fortnight"}, ["rate=", "1MB/fortnight"]),
        ((), {"rate": "/s"}, ["rate=", "/s"]),
        ((), {"rate": "1MB/0s"}, ["rate=", "1MB/0s"]),
        # non-finite or absurd figures, which no results file could hold
        ((), {"rate": "1MB/1e-320s"}, ["rate=", "1MB/1e-320s"]),
        ((), {"rate": float("nan")}, ["rate=nan"]),
        ((), {"rate": 1e300}, ["rate=1e+300"]),
        ((), {"peak": 2**63}, ["peak=", str(2**63)]),
        pytest.param((), {"growth": 10**400}, ["growth=", "at most"], id="growth=10**400"),
        ((), {"leak_per_iteration": "1e30MB"}, ["leak_per_iteration=", "1e30MB"]),
        # None is no limit: a budget must say what it limits
        ((), {"peak": None}, ["peak=None", "leave the argument out"]),
        ((), {"peak": "64MB", "growth": None}, ["growth=None"]),
        ((), {"pressure": None, "rate": "2MB/s"}, ["pressure=None"]),
        ((), {"trace": None, "peak": "1MB"}, ["trace=None"]),
        ((), {"trace": True}, ["at least one limit"]),
    ],
    ids=repr,
)
def test_invalid_marker_arguments_name_the_argument(
    args: tuple[Any, ...], kwargs: dict[str, Any], must_name: list[str]
) -> None:
    with pytest.raises(BudgetError) as excinfo:
        MemoryBudget.from_marker(args, kwargs)
    assert isinstance(excinfo.value, ValueError)
    message = str(excinfo.value)
    for text in must_name:
        assert text in message, f"{text!r} not in {message!r}"


def test_every_argument_name_is_listed_for_an_unknown_one() -> None:
    with pytest.raises(BudgetError, match="peak, growth, rate, pressure, leak_per_iteration"):
        MemoryBudget.from_marker((), {"heap": "1MB"})


# -- judge ---------------------------------------------------------------------

#: Every limit set; ``make_window()`` and a non-leaking scenario are within all of them.
FULL_BUDGET = MemoryBudget(
    peak_bytes=64 * MB,
    growth_bytes=8 * MB,
    rate_bytes_per_s=1.0 * MB,
    pressure=PressureLevel.MEDIUM,
    leak_bytes_per_iteration=64 * KB,
)
QUIET = [make_scenario("examples/quiet.py:step", 0.0)]


@pytest.mark.parametrize(
    ("window", "scenarios", "expected", "measured"),
    [
        pytest.param(
            make_window(peak_bytes=round(131.2 * MB), peak_rss_bytes=300 * MB + round(131.2 * MB)),
            QUIET,
            "peak 131.2 MB > budget 64.0 MB",
            "peak 131.2 MB above the test's start (431.2 MB resident), "
            "exact: kernel high-water mark",
            id="peak",
        ),
        pytest.param(
            make_window(growth_bytes=10 * MB, peak_bytes=10 * MB),
            QUIET,
            "growth 10.0 MB > budget 8.0 MB",
            "growth 10.0 MB in resident memory, after garbage collection",
            id="growth",
        ),
        pytest.param(
            make_window(growth_bytes=10 * MB, peak_bytes=10 * MB, growth_source="retained-heap"),
            QUIET,
            "growth 10.0 MB > budget 8.0 MB",
            "growth 10.0 MB retained after garbage collection: what the test's objects "
            "(and memory outside the allocators) still hold at its end; memory the "
            "allocators keep for reuse is not counted",
            id="growth-retained",
        ),
        pytest.param(
            make_window(rate_bytes_per_s=3.0 * MB),
            QUIET,
            "growth rate 3.0 MB/s > budget 1.0 MB/s",
            "growth rate 3.0 MB/s: least-squares slope of resident memory over 842 samples (1.0 s)",
            id="rate",
        ),
        pytest.param(
            make_window(
                peak_bytes=10 * MB,
                max_pressure=PressureLevel.HIGH,
                thresholds=PressureThresholds(1 * MB, 5 * MB, 20 * MB),
            ),
            QUIET,
            "pressure HIGH > budget MEDIUM",
            "pressure HIGH: peak 10.0 MB above the test's baseline (thresholds 1.0MB,5.0MB,20.0MB)",
            id="pressure",
        ),
        pytest.param(
            make_window(),
            [make_scenario("examples/leaky.py:step", 100 * KB, iterations=80, warmup=8)],
            "leak 100.0 KB/iteration > budget 64.0 KB/iteration (scenario examples/leaky.py:step)",
            "leak 100.0 KB per iteration in scenario examples/leaky.py:step: slope of "
            "retained memory over 80 iterations after 8 warm-up",
            id="leak",
        ),
    ],
)
def test_each_limit_violated_alone_gives_one_violation(
    window: WindowResult, scenarios: list[ScenarioResult], expected: str, measured: str
) -> None:
    verdict = judge(FULL_BUDGET, window, scenarios)
    assert verdict.violations == (expected,)
    assert verdict.measured_lines() == [measured]
    assert len(verdict.advice_lines()) == 1
    # The rate's and the leak's figures are what those findings of the
    # investigator say: a failure's report leaves them out.
    restated = {"rate": {"growth-rate"}, "leak": {"scenario-leak"}}
    kind = expected.split(" ")[0] if not expected.startswith("growth rate") else "rate"
    assert verdict.restated_checks() == restated.get(kind, set())
    assert not verdict.passed
    assert verdict.name == "fail"
    assert verdict.headline() == expected


def test_the_peak_message_from_the_docs() -> None:
    window = make_window(peak_bytes=round(131.2 * MB))
    verdict = judge(MemoryBudget.from_marker((), {"peak": "64MB"}), window)
    assert verdict.violations == ("peak 131.2 MB > budget 64.0 MB",)


def test_sampled_peak_says_so() -> None:
    window = make_window(peak_bytes=2 * MB, peak_source="sampled", samples=10)
    verdict = judge(MemoryBudget(peak_bytes=MB), window)
    assert verdict.violations == ("peak 2.0 MB > budget 1.0 MB",)
    assert verdict.measured_lines()[0].endswith(
        "the highest of 10 readings taken every 1 ms (a shorter spike can be missed)"
    )


def test_traced_peak_says_what_was_measured_and_why() -> None:
    window = make_window(peak_bytes=2 * MB, peak_source="tracemalloc")
    (measured,) = judge(MemoryBudget(peak_bytes=MB), window).measured_lines()
    assert "traced: the most memory Python's allocators handed out at once" in measured
    assert "reusing memory that earlier tests freed" in measured


def test_growth_basis_never_names_the_peaks_basis() -> None:
    for source in ("rss", "retained-heap"):
        window = make_window(growth_bytes=10 * MB, growth_source=source)
        (measured,) = judge(MemoryBudget(growth_bytes=MB), window).measured_lines()
        assert "high-water" not in measured
        assert "after garbage collection" in measured
    window = make_window(growth_bytes=10 * MB, gc_mode="off")
    (measured,) = judge(MemoryBudget(growth_bytes=MB), window).measured_lines()
    assert measured.endswith("garbage not collected")


@pytest.mark.parametrize(
    "window",
    [
        pytest.param(make_window(), id="quiet"),
        pytest.param(make_window(peak_bytes=64 * MB), id="peak-equal"),
        pytest.param(make_window(growth_bytes=8 * MB), id="growth-equal"),
        pytest.param(make_window(growth_bytes=-50 * MB), id="shrank"),
        pytest.param(make_window(rate_bytes_per_s=1.0 * MB), id="rate-equal"),
        pytest.param(make_window(rate_bytes_per_s=-5.0 * MB), id="rate-negative"),
        pytest.param(make_window(rate_bytes_per_s=None), id="rate-none"),
        pytest.param(make_window(max_pressure=PressureLevel.MEDIUM), id="pressure-equal"),
    ],
)
def test_within_budget_passes(window: WindowResult) -> None:
    scenarios = [make_scenario("a:at_limit", 64 * KB), make_scenario("b:shrinks", -KB)]
    verdict = judge(FULL_BUDGET, window, scenarios)
    assert verdict == Verdict()
    assert verdict.passed
    assert verdict.name == "pass"
    assert verdict.headline() == "within memory budget"


def test_none_rate_never_violates_even_a_zero_rate_budget() -> None:
    """Windows under 100 samples have no rate; that is not a violation."""
    window = make_window(rate_bytes_per_s=None, samples=12)
    assert judge(MemoryBudget(rate_bytes_per_s=0.0), window).passed
    assert not judge(MemoryBudget(rate_bytes_per_s=0.0), make_window(rate_bytes_per_s=1.0)).passed


@pytest.mark.parametrize(
    ("measured", "limit", "violates"),
    [
        (PressureLevel.LOW, PressureLevel.LOW, False),
        (PressureLevel.MEDIUM, PressureLevel.LOW, True),
        (PressureLevel.HIGH, PressureLevel.HIGH, False),
        (PressureLevel.CRITICAL, PressureLevel.HIGH, True),
        (PressureLevel.CRITICAL, PressureLevel.CRITICAL, False),
        (PressureLevel.LOW, PressureLevel.CRITICAL, False),
    ],
)
def test_pressure_above_the_budget_level_violates_equal_does_not(
    measured: PressureLevel, limit: PressureLevel, violates: bool
) -> None:
    verdict = judge(MemoryBudget(pressure=limit), make_window(max_pressure=measured))
    assert (not verdict.passed) is violates
    if violates:
        assert verdict.violations[0].startswith(f"pressure {measured.name} > budget {limit.name}")


def test_leak_lists_only_the_leaking_scenarios_by_name() -> None:
    scenarios = [
        make_scenario("pkg.mod:flat", 0.0),
        make_scenario("pkg.mod:slow_leak", 80 * KB),
        make_scenario("pkg.mod:at_limit", 64 * KB),
        make_scenario("tests/scen.py:fast_leak", 2.5 * MB),
        make_scenario("pkg.mod:shrinks", -10 * KB),
    ]
    verdict = judge(MemoryBudget(leak_bytes_per_iteration=64 * KB), make_window(), scenarios)
    assert len(verdict.violations) == 2
    slow, fast = verdict.violations
    assert slow.startswith("leak 80.0 KB/iteration > budget 64.0 KB/iteration")
    assert slow.endswith("(scenario pkg.mod:slow_leak)")
    assert fast.startswith("leak 2.5 MB/iteration > budget 64.0 KB/iteration")
    assert fast.endswith("(scenario tests/scen.py:fast_leak)")
    joined = "\n".join(verdict.violations)
    for quiet in ("flat", "at_limit", "shrinks"):
        assert quiet not in joined


@pytest.mark.parametrize(
    ("budget", "leak", "attributed"),
    [
        pytest.param(MemoryBudget(leak_bytes_per_iteration=64 * KB), 64 * KB, False, id="at"),
        pytest.param(MemoryBudget(leak_bytes_per_iteration=64 * KB), 64 * KB + 1, True, id="over"),
        pytest.param(MemoryBudget(peak_bytes=1 * MB), 1 * GB, False, id="no-leak-limit"),
        pytest.param(None, 1 * GB, False, id="no-budget"),
    ],
)
def test_a_run_is_kept_for_attribution_exactly_when_the_verdict_fails_it(
    budget: MemoryBudget | None, leak: float, attributed: bool
) -> None:
    # The session decides at the run's end which runs to keep for attribution;
    # the test's verdict comes after the call.  Both read leak_violation.
    result = make_scenario("pkg.mod:step", leak)
    violation = leak_violation(budget, result)
    assert (violation is not None) == attributed
    assert judge(budget, make_window(), [result]).violations == (
        (violation,) if violation is not None else ()
    )


def test_leak_limit_without_scenarios_passes() -> None:
    assert judge(MemoryBudget(leak_bytes_per_iteration=0), make_window()).passed


def test_several_violations_in_a_fixed_order_and_headline_counts_the_rest() -> None:
    window = make_window(
        peak_bytes=300 * MB,
        growth_bytes=100 * MB,
        rate_bytes_per_s=20.0 * MB,
        max_pressure=PressureLevel.HIGH,
    )
    scenarios = [make_scenario("m:a", MB), make_scenario("m:b", 2 * MB)]
    verdict = judge(FULL_BUDGET, window, scenarios)
    kinds = [v.split(" ")[0] for v in verdict.violations]
    assert kinds == ["peak", "growth", "growth", "pressure", "leak", "leak"]
    assert verdict.violations[2].startswith("growth rate ")
    assert verdict.name == "fail"
    assert verdict.headline() == f"{verdict.violations[0]} (and 5 more)"


@pytest.mark.parametrize(
    ("violations", "headline"),
    [
        ((), "within memory budget"),
        (("peak 2.0 MB > budget 1.0 MB",), "peak 2.0 MB > budget 1.0 MB"),
        (("first", "second"), "first (and 1 more)"),
        (("first", "second", "third"), "first (and 2 more)"),
    ],
)
def test_verdict_headline(violations: tuple[str, ...], headline: str) -> None:
    verdict = Verdict(tuple(Violation(text, f"measured {text}", "advice") for text in violations))
    assert verdict.headline() == headline
    assert verdict.name == ("pass" if not violations else "fail")


def test_no_budget_always_passes() -> None:
    window = make_window(peak_bytes=10 * GB, growth_bytes=10 * GB, rate_bytes_per_s=1e12)
    verdict = judge(None, window, [make_scenario("m:huge", 1.0 * GB)])
    assert verdict.passed
    assert verdict.violations == ()
    assert verdict.name == "pass"


# -- against the baseline (--automem-baseline) ------------------------------------------


def _against(baseline_peak: int, window: WindowResult) -> TestComparison:
    baseline = {"peak_bytes": baseline_peak, "growth_bytes": window.growth_bytes}
    return baseline_comparison("t::a", baseline, GateRules(), window)


def test_a_regression_fails_the_verdict_with_its_own_message() -> None:
    window = make_window(peak_bytes=24 * MB)

    verdict = judge(None, window, against_baseline=_against(10 * MB, window))

    assert verdict.violations == (
        "memory regression: peak 24.0 MB > baseline 10.0 MB (+14.0 MB, allowed +4.0 MB)",
    )
    assert verdict.failure_message() == verdict.violations[0]
    assert verdict.measured_lines() == [peak_measured(window)]
    assert any("automem baseline update" in line for line in verdict.advice_lines())


def test_a_budget_and_a_baseline_both_apply_the_budget_first() -> None:
    window = make_window(peak_bytes=24 * MB)

    verdict = judge(
        MemoryBudget(peak_bytes=16 * MB), window, against_baseline=_against(10 * MB, window)
    )

    assert [v.split()[0:3] for v in verdict.violations] == [
        ["peak", "24.0", "MB"],
        ["memory", "regression:", "peak"],
    ]
    assert verdict.failure_message().startswith("memory budget exceeded: peak 24.0 MB > budget")


def test_within_the_baseline_rule_passes() -> None:
    window = make_window(peak_bytes=13 * MB)

    assert judge(None, window, against_baseline=_against(10 * MB, window)).passed


def test_a_growth_regression_is_named_for_the_rerun_and_says_where() -> None:
    window = make_window(growth_bytes=30 * MB)
    comparison = baseline_comparison(
        "t::a", {"peak_bytes": 0, "growth_bytes": MB}, GateRules(), window
    )

    assert growth_regressed(comparison)
    assert not growth_regressed(None)
    verdict = judge(None, window, against_baseline=comparison, growth_where="retained at a.py:3")
    assert verdict.violations[0].endswith(", retained at a.py:3")
