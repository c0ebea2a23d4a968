"""Memory budgets and the verdicts they give.

``@pytest.mark.memory_budget(peak=..., growth=..., rate=..., pressure=...,
leak_per_iteration=...)`` is parsed into a frozen :class:`MemoryBudget` at
collection time — a bad limit fails before anything runs, naming the test and
the argument.  After the test's call phase, :func:`judge` compares the budget
with what the monitor measured and returns a :class:`Verdict`: per budget
that failed, a violation that reads at a glance, the figure with how it was
measured, and what to do when nothing else locates the cause::

    peak 131.2 MB > budget 64.0 MB, crossed at app.py:20 in build
    peak 131.2 MB above the test's start (190.4 MB resident), exact: kernel high-water mark

The violation is the test's one-line message; the figure and its basis are
said once, in the report under it, so no line repeats another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base.units import format_rate, format_size, parse_rate_bytes_per_s, parse_size_bytes
from ..investigator.measured import GROWTH_RATE_CHECK, SCENARIO_LEAK_CHECK
from ..measure.pressure import PressureLevel
from .gate import GateRules, TestComparison, compare_records, regression_text

if TYPE_CHECKING:
    from ..automaton.scenario import ScenarioResult
    from ..measure.window_result import WindowResult

__all__ = [
    "REGRESSION_PREFIX",
    "BudgetError",
    "MemoryBudget",
    "Verdict",
    "Violation",
    "baseline_comparison",
    "failure_message",
    "growth_measured",
    "growth_regressed",
    "judge",
    "leak_violation",
    "peak_measured",
    "regression_violations",
]

_LIMITS = ("peak", "growth", "rate", "pressure", "leak_per_iteration")
#: Not limits: how the test is examined.
_OPTIONS = ("trace",)
_ARGUMENTS = _LIMITS + _OPTIONS


class BudgetError(ValueError):
    """A ``memory_budget`` marker with a bad argument."""


@dataclass(frozen=True)
class MemoryBudget:
    """Limits for one test; None means "no limit on this" (a marker sets at least one)."""

    peak_bytes: int | None = None
    growth_bytes: int | None = None
    rate_bytes_per_s: float | None = None
    pressure: PressureLevel | None = None
    leak_bytes_per_iteration: int | None = None
    #: Trace allocations during the call (tracemalloc) to name the lines that
    #: retained memory; costs 12-80x on allocation-heavy code.
    trace: bool = False

    @classmethod
    def from_marker(cls, args: Sequence[Any], kwargs: Mapping[str, Any]) -> MemoryBudget:
        """Parse marker arguments; raise BudgetError naming the argument at fault."""
        if args:
            raise BudgetError(
                f"takes keyword arguments only ({', '.join(_ARGUMENTS)}), got positional {args!r}"
            )
        unknown = sorted(set(kwargs) - set(_ARGUMENTS))
        if unknown:
            raise BudgetError(
                f"unknown argument {unknown[0]}=: expected one of {', '.join(_ARGUMENTS)}"
            )
        parsed = {name: _parse_argument(name, value) for name, value in kwargs.items()}
        if not set(parsed) & set(_LIMITS):
            raise BudgetError(f"needs at least one limit: {', '.join(_LIMITS)}")
        return cls(
            peak_bytes=parsed.get("peak"),
            growth_bytes=parsed.get("growth"),
            rate_bytes_per_s=parsed.get("rate"),
            pressure=parsed.get("pressure"),
            leak_bytes_per_iteration=parsed.get("leak_per_iteration"),
            trace=bool(parsed.get("trace", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the results file."""
        return {
            "peak_bytes": self.peak_bytes,
            "growth_bytes": self.growth_bytes,
            "rate_bytes_per_s": self.rate_bytes_per_s,
            "pressure": self.pressure.name if self.pressure is not None else None,
            "leak_bytes_per_iteration": self.leak_bytes_per_iteration,
            "trace": self.trace,
        }


_PARSERS = {
    "peak": parse_size_bytes,
    "growth": parse_size_bytes,
    "rate": parse_rate_bytes_per_s,
    "pressure": PressureLevel.parse,
    "leak_per_iteration": parse_size_bytes,
    "trace": lambda value: _parse_flag(value),
}


def _parse_argument(name: str, value: object) -> Any:
    """One marker argument, parsed; None is refused, since a budget that
    limits nothing would pass every test and read as if it were checked."""
    if value is None:
        raise BudgetError(f"argument {name}=None: give a value or leave the argument out")
    try:
        return _PARSERS[name](value)
    except ValueError as exc:
        raise BudgetError(f"argument {name}={value!r}: {exc}") from None


def _parse_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class Violation:
    """One budget a test went over: the line, the figure, the advice."""

    #: One line: figure > budget, and where when known (the message's text).
    text: str
    #: The figure that failed with what it is and how it was measured, in
    #: words a user knows (not the sampler's internals).
    measured: str
    #: What to do when no finding of the investigator locates the cause.
    advice: str
    #: The investigator's check whose finding says the same as ``measured``
    #: (a failure's report leaves that finding out), if any.
    restated_by: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one test: pass, or fail with its violations."""

    failed: tuple[Violation, ...] = field(default_factory=tuple)

    @property
    def violations(self) -> tuple[str, ...]:
        """Each violation's one line, as the results file lists them."""
        return tuple(v.text for v in self.failed)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def name(self) -> str:
        """``"pass"`` or ``"fail"``, as the results file spells it."""
        return "pass" if self.passed else "fail"

    def headline(self) -> str:
        """One line: the first violation, and how many more there are."""
        if self.passed:
            return "within memory budget"
        more = len(self.failed) - 1
        return self.failed[0].text + (f" (and {more} more)" if more else "")

    def failure_message(self) -> str:
        """The one-line message of a test that failed on this verdict."""
        return failure_message(self.headline())

    def measured_lines(self) -> list[str]:
        """The failed figures with their basis, one per budget (none repeated)."""
        return list(dict.fromkeys(v.measured for v in self.failed))

    def restated_checks(self) -> set[str]:
        """The investigator's checks whose findings the failed figures already state."""
        return {v.restated_by for v in self.failed if v.restated_by is not None}

    def advice_lines(self) -> list[str]:
        """What to do for each budget that failed (none repeated)."""
        return list(dict.fromkeys(v.advice for v in self.failed))


#: How a violation against the baseline (``--automem-baseline``) begins: its
#: message says it is a regression, not a budget the test carries.
REGRESSION_PREFIX = "memory regression: "


def failure_message(headline: str) -> str:
    """The one-line message of a test that failed on memory, from its verdict's
    headline: pytest's report and the JUnit file say the same."""
    if headline.startswith(REGRESSION_PREFIX):
        return headline
    return f"memory budget exceeded: {headline}"


_PEAK_ADVICE = (
    "build the data in pieces or stream it, free what is done with earlier; "
    "raise the budget if this much is expected"
)
_GROWTH_ADVICE = (
    "look for what outlives the test: caches, module-level lists, registries, "
    "objects kept by a fixture; to name the lines that allocated what was kept, "
    "run with --automem-trace or mark the test memory_budget(..., trace=True)"
)
_RATE_ADVICE = "look for buffers, caches or histories that grow while the test runs and cap them"
_LEAK_ADVICE = (
    "something each step keeps is never released: check what the scenario's steps "
    "add to long-lived containers"
)
_REGRESSION_ADVICE = (
    "if the increase is intended, make this run the baseline (automem baseline update)"
)


def judge(
    budget: MemoryBudget | None,
    window: WindowResult,
    scenarios: Sequence[ScenarioResult] = (),
    *,
    peak_where: str | None = None,
    growth_where: str | None = None,
    against_baseline: TestComparison | None = None,
) -> Verdict:
    """Compare what was measured with ``budget`` (None: no limits).

    ``peak_where``: where the test was when its memory crossed the peak
    budget (``path:line in function``), named in the peak's violation;
    ``growth_where``: where the growth went (``retained at path:line``),
    named in the growth's.  ``against_baseline``: the test's figures
    compared with its baseline record (``--automem-baseline``); each
    regressed metric fails the test too, after the budget's violations.
    """
    failed = (
        []
        if budget is None
        else _budget_violations(budget, window, scenarios, peak_where, growth_where)
    )
    if against_baseline is not None:
        failed.extend(regression_violations(against_baseline, window, growth_where=growth_where))
    return Verdict(tuple(failed))


def _budget_violations(
    budget: MemoryBudget,
    window: WindowResult,
    scenarios: Sequence[ScenarioResult],
    peak_where: str | None,
    growth_where: str | None,
) -> list[Violation]:
    failed = []
    if budget.peak_bytes is not None and window.peak_bytes > budget.peak_bytes:
        where = f", crossed at {peak_where}" if peak_where else ""
        failed.append(
            Violation(
                f"peak {format_size(window.peak_bytes)} > budget "
                f"{format_size(budget.peak_bytes)}{where}",
                peak_measured(window),
                _PEAK_ADVICE,
            )
        )
    if growth_exceeded(budget, window):
        assert budget.growth_bytes is not None
        where = f", {growth_where}" if growth_where else ""
        failed.append(
            Violation(
                f"growth {format_size(window.growth_bytes)} > budget "
                f"{format_size(budget.growth_bytes)}{where}",
                growth_measured(window),
                _GROWTH_ADVICE,
            )
        )
    rate = window.rate_bytes_per_s
    if budget.rate_bytes_per_s is not None and rate is not None and rate > budget.rate_bytes_per_s:
        failed.append(
            Violation(
                f"growth rate {format_rate(rate)} > budget {format_rate(budget.rate_bytes_per_s)}",
                _rate_measured(window, rate),
                _RATE_ADVICE,
                GROWTH_RATE_CHECK,
            )
        )
    if budget.pressure is not None and window.max_pressure > budget.pressure:
        failed.append(
            Violation(
                f"pressure {window.max_pressure.name} > budget {budget.pressure.name}",
                f"pressure {window.max_pressure.name}: {_pressure_basis_text(window)} "
                f"(thresholds {window.thresholds.describe()})",
                _PEAK_ADVICE,
            )
        )
    for result in scenarios:
        leak = _leak(budget, result)
        if leak is not None:
            failed.append(leak)
    return failed


def _rate_measured(window: WindowResult, rate: float) -> str:
    return (
        f"growth rate {format_rate(rate)}: least-squares slope of resident memory "
        f"over {window.samples} samples ({window.duration_s:.1f} s)"
    )


#: How a peak was measured, by the window's ``peak_source``.
_PEAK_BASIS = {
    "kernel-hwm": "exact: kernel high-water mark",
    "tracemalloc": "traced: the most memory Python's allocators handed out at once; "
    "the kernel's high-water mark would have missed part of it, as the allocators were "
    "reusing memory that earlier tests freed",
}


def peak_measured(window: WindowResult) -> str:
    """The peak with its basis: what the highest point was and how it is known."""
    basis = _PEAK_BASIS.get(window.peak_source) or (
        f"the highest of {window.samples} readings taken every "
        f"{window.interval_target_ms:g} ms (a shorter spike can be missed)"
    )
    return (
        f"peak {format_size(window.peak_bytes)} above the test's start "
        f"({format_size(window.peak_rss_bytes)} resident), {basis}"
    )


def growth_measured(window: WindowResult) -> str:
    """The growth with its basis: what the test kept, and how that was counted."""
    size = format_size(window.growth_bytes)
    if window.gc_mode == "off":
        return (
            f"growth {size}: resident memory at the end minus at the start, garbage not collected"
        )
    if window.growth_source == "retained-heap":
        return (
            f"growth {size} retained after garbage collection: what the test's objects "
            "(and memory outside the allocators) still hold at its end; memory the "
            "allocators keep for reuse is not counted"
        )
    return f"growth {size} in resident memory, after garbage collection"


def regression_violations(
    comparison: TestComparison, window: WindowResult, *, growth_where: str | None = None
) -> tuple[Violation, ...]:
    """The test's metrics that regressed against its baseline record, as
    violations: the same verdict, message and report as a budget's.

    ``growth_where``: where the growth went, as :func:`judge` takes it.
    """
    found = []
    for change in comparison.regressions:
        text = REGRESSION_PREFIX + regression_text(change)
        if change.metric == "growth" and growth_where:
            text += f", {growth_where}"
        found.append(_regression_violation(change.metric, text, window))
    return tuple(found)


def _regression_violation(metric: str, text: str, window: WindowResult) -> Violation:
    """A regressed metric's violation: its figure's basis and advice are the budget's."""
    if metric == "peak":
        return Violation(text, peak_measured(window), f"{_PEAK_ADVICE}; {_REGRESSION_ADVICE}")
    if metric == "growth":
        return Violation(text, growth_measured(window), f"{_GROWTH_ADVICE}; {_REGRESSION_ADVICE}")
    if metric == "leak":
        measured = "leak per iteration: the largest slope of retained memory among its scenarios"
        return Violation(
            text, measured, f"{_LEAK_ADVICE}; {_REGRESSION_ADVICE}", SCENARIO_LEAK_CHECK
        )
    rate = window.rate_bytes_per_s or 0.0
    return Violation(
        text,
        _rate_measured(window, rate),
        f"{_RATE_ADVICE}; {_REGRESSION_ADVICE}",
        GROWTH_RATE_CHECK,
    )


def growth_regressed(comparison: TestComparison | None) -> bool:
    """Whether the test's growth regressed against its baseline record."""
    return comparison is not None and any(c.metric == "growth" for c in comparison.regressions)


def baseline_comparison(
    nodeid: str,
    baseline_record: Mapping[str, Any],
    rules: GateRules,
    window: WindowResult,
    scenarios: Sequence[ScenarioResult] = (),
) -> TestComparison:
    """The figures just measured against the test's baseline record, by the gate's rule."""
    current = {
        "peak_bytes": window.peak_bytes,
        "growth_bytes": window.growth_bytes,
        "rate_bytes_per_s": window.rate_bytes_per_s,
        "scenarios": [{"leak_bytes_per_iteration": s.leak_bytes_per_iteration} for s in scenarios],
    }
    return compare_records(nodeid, baseline_record, current, rules)


def growth_exceeded(budget: MemoryBudget | None, window: WindowResult) -> bool:
    """Whether the window's growth is over the budget's growth limit."""
    limit = budget.growth_bytes if budget is not None else None
    return limit is not None and window.growth_bytes > limit


def _pressure_basis_text(window: WindowResult) -> str:
    if window.basis.value == "absolute":
        return f"peak RSS {format_size(window.peak_rss_bytes)}"
    return f"peak {format_size(window.peak_bytes)} above the test's baseline"


def leak_violation(budget: MemoryBudget | None, result: ScenarioResult) -> str | None:
    """The violation of one scenario run against the budget's leak limit, or None.

    Decided as soon as the run ends: a run over its limit is attributed
    after the call (a few more steps under tracing), which needs its
    automaton kept, and only such runs are kept.  :func:`judge` reads the
    same decision for the test's verdict.
    """
    leak = _leak(budget, result)
    return None if leak is None else leak.text


def _leak(budget: MemoryBudget | None, result: ScenarioResult) -> Violation | None:
    limit = budget.leak_bytes_per_iteration if budget is not None else None
    if limit is None or result.leak_bytes_per_iteration <= limit:
        return None
    size = format_size(result.leak_bytes_per_iteration)
    return Violation(
        f"leak {size}/iteration > budget {format_size(limit)}/iteration (scenario {result.name})",
        f"leak {size} per iteration in scenario {result.name}: slope of retained memory "
        f"over {result.iterations} iterations after {result.warmup} warm-up",
        _LEAK_ADVICE,
        SCENARIO_LEAK_CHECK,
    )
