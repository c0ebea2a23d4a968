"""The gate's arithmetic: a regression is worse by more than a tolerance AND a floor.

Table-driven per metric at the defaults (base/defaults.py), then custom
rules, zero and negative baselines, new, removed and renamed tests, the
order of the report, odd node ids and the measurement context.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_automem.verdicts.gate import (
    RATE_RULE,
    ContextDifference,
    GateRules,
    MetricRule,
    Status,
    compare,
    compare_records,
    metric_values,
    regression_text,
)

KB = 1 << 10
MB = 1 << 20

REGRESSED, IMPROVED, UNCHANGED = Status.REGRESSED, Status.IMPROVED, Status.UNCHANGED


def record(
    peak: int = 0,
    growth: int = 0,
    rate: float | None = None,
    leaks: tuple[float, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A test's record with the contract's keys; ``leaks`` one scenario each."""
    made: dict[str, Any] = {
        "peak_bytes": peak,
        "growth_bytes": growth,
        "rate_bytes_per_s": rate,
        "max_pressure": "LOW",
        "samples": 100,
        "interval_p50_ms": 1.0,
        "interval_p99_ms": 1.1,
        "peak_source": "kernel-hwm",
        "verdict": "pass",
        "violations": [],
        **extra,
    }
    if leaks:
        made["scenarios"] = [
            {"name": f"s{i}", "leak_bytes_per_iteration": leak} for i, leak in enumerate(leaks)
        ]
    return made


def document(tests: dict[str, dict[str, Any]], **session: Any) -> dict[str, Any]:
    return {"version": 1, "session": {"python": "3.11.9", **session}, "tests": tests}


#: The size metrics at 10 % and a 1 MB floor: the arithmetic below is
#: written against it; the defaults' own values are checked on their own.
RULES = GateRules(peak=MetricRule(0.10, 1 * MB), growth=MetricRule(0.10, 1 * MB))


def one(before: dict[str, Any], after: dict[str, Any], rules: GateRules = RULES) -> Status:
    result = compare(document({"t.py::x": before}), document({"t.py::x": after}), rules)
    (comparison,) = result.comparisons
    return comparison.status


# ------------------------------------------------------------------ the rule per metric


def test_the_defaults_hold_real_suites_noise() -> None:
    """10 % and 4 MB for peak and growth (docs/ci.md, "The rule"): the largest
    run-to-run change beyond 10 % on three real suites was 3.4 MB."""
    defaults = GateRules()
    assert defaults.peak == defaults.growth == MetricRule(0.10, 4 * MB)
    assert defaults.rate is None
    at_defaults = GateRules()
    assert one(record(peak=40 * KB), record(peak=40 * KB + int(3.4 * MB)), at_defaults) is UNCHANGED
    assert one(record(peak=10 * MB), record(peak=14 * MB + 1), at_defaults) is REGRESSED
    assert one(record(growth=100 * MB), record(growth=111 * MB), at_defaults) is REGRESSED


SIZE_CASES = [
    # (baseline, current, expected): 10 % and 1 MB, both must be exceeded.
    pytest.param(10 * MB, 11 * MB, UNCHANGED, id="at-the-floor"),
    pytest.param(10 * MB, 11 * MB + 1, REGRESSED, id="past-floor-and-10pct"),
    pytest.param(100 * MB, 105 * MB, UNCHANGED, id="past-floor-within-10pct"),
    pytest.param(100 * MB, 110 * MB, UNCHANGED, id="at-10pct"),
    pytest.param(100 * MB, 110 * MB + 1, REGRESSED, id="past-10pct"),
    pytest.param(1 * MB, 2 * MB - 1, UNCHANGED, id="doubled-under-floor"),
    pytest.param(0, 1 * MB, UNCHANGED, id="zero-baseline-within-floor"),
    pytest.param(0, 1 * MB + 1, REGRESSED, id="zero-baseline-past-floor"),
    pytest.param(100 * MB, 89 * MB, IMPROVED, id="improved"),
    pytest.param(100 * MB, 90 * MB, UNCHANGED, id="improved-within-tolerance"),
    pytest.param(1 * MB, 0, UNCHANGED, id="improved-within-floor"),
]


@pytest.mark.parametrize(("baseline", "current", "expected"), SIZE_CASES)
def test_peak_rule(baseline: int, current: int, expected: Status) -> None:
    assert one(record(peak=baseline), record(peak=current)) is expected


@pytest.mark.parametrize(("baseline", "current", "expected"), SIZE_CASES)
def test_growth_rule(baseline: int, current: int, expected: Status) -> None:
    assert one(record(growth=baseline), record(growth=current)) is expected


@pytest.mark.parametrize(
    ("baseline", "current", "expected"),
    [
        # A negative baseline: the tolerance is a share of its size.
        pytest.param(-20 * MB, -18 * MB, UNCHANGED, id="less-freed-within-10pct"),
        pytest.param(-20 * MB, -18 * MB + 1, REGRESSED, id="less-freed-past-10pct"),
        pytest.param(-20 * MB, -22 * MB - 1, IMPROVED, id="more-freed"),
        pytest.param(-5 * MB, 1 * MB, REGRESSED, id="freed-then-kept"),
        pytest.param(-512 * KB, 512 * KB, UNCHANGED, id="sign-flip-within-floor"),
    ],
)
def test_negative_growth_baselines(baseline: int, current: int, expected: Status) -> None:
    assert one(record(growth=baseline), record(growth=current)) is expected


@pytest.mark.parametrize(
    ("baseline", "current", "expected"),
    [
        # 25 % and 1 MB/s.
        pytest.param(1 * MB, 2 * MB, UNCHANGED, id="at-floor"),
        pytest.param(1 * MB, 2 * MB + 1, REGRESSED, id="past-floor"),
        pytest.param(10 * MB, 12.5 * MB, UNCHANGED, id="at-25pct"),
        pytest.param(10 * MB, 12.5 * MB + 1, REGRESSED, id="past-25pct"),
        pytest.param(0.0, 1 * MB + 1, REGRESSED, id="zero-baseline"),
        pytest.param(None, 100 * MB, UNCHANGED, id="unmeasured-baseline"),
        pytest.param(1 * MB, None, UNCHANGED, id="unmeasured-current"),
        pytest.param(10 * MB, 7 * MB, IMPROVED, id="improved"),
    ],
)
def test_rate_when_asked_for(
    baseline: float | None, current: float | None, expected: Status
) -> None:
    rules = GateRules(rate=RATE_RULE)
    assert one(record(rate=baseline), record(rate=current), rules) is expected


def test_rate_is_not_gated_by_default() -> None:
    # A short test's rate moves with its own duration (docs/ci.md, "The rule").
    assert one(record(rate=1 * MB), record(rate=100 * MB)) is UNCHANGED


@pytest.mark.parametrize(
    ("baseline", "current", "expected"),
    [
        # 25 % and 4 KB per iteration; the worst scenario counts.
        pytest.param((1000.0,), (5096.0,), UNCHANGED, id="at-floor"),
        pytest.param((1000.0,), (5097.0,), REGRESSED, id="past-floor"),
        pytest.param((100 * KB,), (125 * KB,), UNCHANGED, id="at-25pct"),
        pytest.param((100 * KB,), (125 * KB + 1,), REGRESSED, id="past-25pct"),
        pytest.param((0.0, 10.0), (0.0, 20 * KB), REGRESSED, id="worst-scenario"),
        pytest.param((-8 * KB,), (-8 * KB,), UNCHANGED, id="negative-slope"),
        pytest.param((), (1 * MB,), UNCHANGED, id="no-scenario-in-baseline"),
        pytest.param((1 * MB,), (), UNCHANGED, id="no-scenario-now"),
    ],
)
def test_leak_at_defaults(
    baseline: tuple[float, ...], current: tuple[float, ...], expected: Status
) -> None:
    assert one(record(leaks=baseline), record(leaks=current)) is expected


def test_metric_values_reads_what_records_hold() -> None:
    values = metric_values(record(peak=3, growth=-4, rate=5.5, leaks=(1.0, 7.0, 2.0)))
    assert values == {"peak": 3.0, "growth": -4.0, "rate": 5.5, "leak": 7.0}
    assert metric_values({"peak_bytes": True, "scenarios": "?"}) == {
        "peak": None,
        "growth": None,
        "rate": None,
        "leak": None,
    }


# ------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("rule", "baseline", "current", "expected"),
    [
        pytest.param(MetricRule(0.5, 0), 10 * MB, 15 * MB, UNCHANGED, id="relative-only-at"),
        pytest.param(MetricRule(0.5, 0), 10 * MB, 15 * MB + 1, REGRESSED, id="relative-only"),
        pytest.param(MetricRule(0.0, 5 * MB), 100 * MB, 105 * MB, UNCHANGED, id="floor-only"),
        pytest.param(MetricRule(0.0, 0), 0, 1, REGRESSED, id="no-tolerance-zero-base"),
        pytest.param(MetricRule(0.0, 0), 5, 5, UNCHANGED, id="no-tolerance-same"),
    ],
)
def test_custom_rules(rule: MetricRule, baseline: int, current: int, expected: Status) -> None:
    rules = GateRules(peak=rule)
    assert one(record(peak=baseline), record(peak=current), rules) is expected


def test_each_metric_has_its_own_rule() -> None:
    strict_growth = GateRules(growth=MetricRule(0.0, 0))
    assert one(record(growth=0), record(growth=1), strict_growth) is REGRESSED
    assert one(record(peak=0), record(peak=1), strict_growth) is UNCHANGED


def test_a_regression_outranks_an_improvement_on_another_metric() -> None:
    assert one(record(peak=100 * MB, growth=0), record(peak=50 * MB, growth=5 * MB)) is REGRESSED


def test_the_message_figures_are_kept() -> None:
    result = compare(
        document({"a": record(peak=10 * MB)}), document({"a": record(peak=20 * MB)}), RULES
    )
    (change,) = result.comparisons[0].regressions
    assert (change.metric, change.baseline, change.current) == ("peak", 10 * MB, 20 * MB)
    assert (change.delta, change.allowed) == (10 * MB, 1 * MB)


# ------------------------------------------------------------------ every test classified

ODD_IDS = [
    "t.py::test_p[a|b]",
    "t.py::test_p[line\\nbreak]",
    "t.py::test_p[real\nnewline]",
    "t.py::test_p[🧠-ü-汉]",
    "t.py::T::test[`x`::y/z]",
]


def test_new_removed_renamed_and_order() -> None:
    baseline = document(
        {
            "t.py::same": record(peak=1 * MB),
            "t.py::old_name": record(peak=1 * MB),
            "t.py::bad": record(peak=10 * MB),
            "t.py::worse": record(peak=10 * MB),
            "t.py::better": record(peak=100 * MB),
        }
    )
    current = document(
        {
            "t.py::same": record(peak=1 * MB),
            "t.py::new_name": record(peak=1 * MB),
            "t.py::bad": record(peak=13 * MB),
            "t.py::worse": record(peak=40 * MB),
            "t.py::better": record(peak=50 * MB),
        }
    )
    result = compare(baseline, current, RULES)
    order = [(c.nodeid, c.status) for c in result.comparisons]
    assert order == [
        ("t.py::worse", Status.REGRESSED),  # 30 MB past a 1 MB rule: furthest first
        ("t.py::bad", Status.REGRESSED),
        ("t.py::new_name", Status.NEW),
        ("t.py::old_name", Status.REMOVED),
        ("t.py::better", Status.IMPROVED),
        ("t.py::same", Status.UNCHANGED),
    ]
    assert not result.passed
    assert [result.count(s) for s in Status] == [2, 1, 1, 1, 1]


def test_new_and_removed_tests_do_not_fail_the_gate() -> None:
    result = compare(document({"a": record()}), document({"b": record(peak=1 << 40)}))
    assert result.passed
    assert [c.status for c in result.comparisons] == [Status.NEW, Status.REMOVED]


def test_odd_node_ids_are_kept_exactly() -> None:
    baseline = document({nodeid: record(peak=0) for nodeid in ODD_IDS})
    current = document({nodeid: record(peak=100 * MB) for nodeid in ODD_IDS})
    result = compare(baseline, current)
    assert sorted(c.nodeid for c in result.comparisons) == sorted(ODD_IDS)
    assert all(c.status is Status.REGRESSED for c in result.comparisons)


def test_empty_runs_pass() -> None:
    result = compare(document({}), document({}))
    assert result.passed
    assert result.comparisons == ()


# ------------------------------------------------------------------ context


def test_same_context_has_no_difference() -> None:
    session = {"sampler_kind": "process-procfs", "platform": "linux", "cpu_count": 2}
    tests = {"a": record()}
    assert compare(document(tests, **session), document(tests, **session)).context_differences == ()


def test_context_differences_are_counted_per_key() -> None:
    baseline = document(
        {"a": record(), "b": record(), "gone": record()},
        sampler_kind="process-procfs",
        cpu_count=2,
        plugin_version="0.1.0",
    )
    current = document(
        {"a": record(), "b": record(peak_source="sampled"), "new": record()},
        python="3.12.1",
        sampler_kind="process-procfs",
        cpu_count=4,
    )
    differences = compare(baseline, current).context_differences
    assert differences == (
        ContextDifference("cpu_count", 2, 4, 2),
        ContextDifference("peak_source", "kernel-hwm", "sampled", 1),
        ContextDifference("python", "3.11.9", "3.12.1", 2),
    )
    # plugin_version is missing from the current file: not a difference the gate can see.
    assert "python differs: baseline '3.11.9', current '3.12.1' (2 tests)" in (
        differences[2].describe()
    )


def test_a_tests_own_context_overrides_its_session() -> None:
    """A merged file whose shards differed keeps each test's context in the test."""
    baseline = document({"a": record(), "b": record()}, sampler_kind="process-procfs")
    current = document(
        {"a": record(context={"sampler_kind": "tree-psutil"}), "b": record()},
        sampler_kind="process-procfs",
    )
    assert compare(baseline, current).context_differences == (
        ContextDifference("sampler_kind", "process-procfs", "tree-psutil", 1),
    )


# -- one test against its baseline record (the command and --automem-baseline alike) ----


def test_compare_records_is_the_rule_compare_applies_per_test() -> None:
    rules = GateRules()
    before, after = record(peak=10 * MB, growth=MB), record(peak=24 * MB, growth=MB)

    alone = compare_records("t::a", before, after, rules)
    [within] = compare(document({"t::a": before}), document({"t::a": after}), rules).comparisons

    assert alone == within
    assert alone.status is REGRESSED
    assert [change.metric for change in alone.regressions] == ["peak"]


def test_compare_records_leaves_out_what_either_run_did_not_measure() -> None:
    comparison = compare_records("t::a", record(rate=None), record(rate=50 * MB), GateRules())

    assert [change.metric for change in comparison.changes] == ["peak", "growth"]
    assert comparison.status is UNCHANGED


@pytest.mark.parametrize(
    ("metric", "before", "after", "text"),
    [
        ("peak", 10 * MB, 24 * MB, "peak 24.0 MB > baseline 10.0 MB (+14.0 MB, allowed +4.0 MB)"),
        ("growth", -2 * MB, 8 * MB, "growth 8.0 MB > baseline -2.0 MB (+10.0 MB, allowed +4.0 MB)"),
        (
            "leak",
            0,
            16 * KB,
            "leak 16.0 KB/iteration > baseline 0 B/iteration "
            "(+16.0 KB/iteration, allowed +4.0 KB/iteration)",
        ),
    ],
)
def test_regression_text_names_both_figures_the_change_and_what_was_allowed(
    metric: str, before: int, after: int, text: str
) -> None:
    fields = {"peak": "peak", "growth": "growth"}
    if metric == "leak":
        old, new = record(leaks=(before,)), record(leaks=(after,))
    else:
        old, new = record(**{fields[metric]: before}), record(**{fields[metric]: after})

    [change] = compare_records("t::a", old, new, GateRules()).regressions

    assert regression_text(change) == text
