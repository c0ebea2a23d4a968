"""Memory budgets and the verdicts they give.

``@pytest.mark.memory_budget(peak=..., growth=..., rate=..., pressure=...,
leak_per_iteration=...)`` is parsed into a frozen :class:`MemoryBudget` at
collection time — a bad limit fails before anything runs, naming the test and
the argument.  After the test's call phase, :func:`judge` compares the budget
with what the monitor measured and returns a :class:`Verdict` whose
violations read at a glance::

    peak 131.2 MB > budget 64.0 MB (kernel high-water mark, 1 ms sampler, 842 samples)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base.units import format_rate, format_size, parse_rate_bytes_per_s, parse_size_bytes
from ..measure.pressure import PressureLevel

if TYPE_CHECKING:
    from ..automaton.scenario import ScenarioResult
    from ..measure.window_result import WindowResult

__all__ = ["BudgetError", "MemoryBudget", "Verdict", "failure_message", "judge", "leak_violation"]

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
class Verdict:
    """The outcome of judging one test: pass, or fail with its violations."""

    violations: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def name(self) -> str:
        """``"pass"`` or ``"fail"``, as the results file spells it."""
        return "pass" if self.passed else "fail"

    def headline(self) -> str:
        """One line: the first violation, and how many more there are."""
        if self.passed:
            return "within memory budget"
        more = len(self.violations) - 1
        return self.violations[0] + (f" (and {more} more)" if more else "")

    def failure_message(self) -> str:
        """The one-line message of a test that failed on this verdict."""
        return failure_message(self.headline())


def failure_message(headline: str) -> str:
    """The one-line message of a test that failed on memory, from its verdict's
    headline: pytest's report and the JUnit file say the same."""
    return f"memory budget exceeded: {headline}"


def judge(
    budget: MemoryBudget | None,
    window: WindowResult,
    scenarios: Sequence[ScenarioResult] = (),
    *,
    peak_where: str | None = None,
    growth_where: str | None = None,
) -> Verdict:
    """Compare what was measured with ``budget`` (None: no limits, always passes).

    ``peak_where``: where the test was when its memory crossed the peak
    budget (``path:line in function``), named in the peak's violation;
    ``growth_where``: the line that kept most of the growth (``path:line``),
    named in the growth's.
    """
    if budget is None:
        return Verdict()
    how = window.how_measured()
    violations = []
    if budget.peak_bytes is not None and window.peak_bytes > budget.peak_bytes:
        where = f", crossed at {peak_where}" if peak_where else ""
        violations.append(
            f"peak {format_size(window.peak_bytes)} > budget {format_size(budget.peak_bytes)} "
            f"({how}){where}"
        )
    if growth_exceeded(budget, window):
        assert budget.growth_bytes is not None
        where = f", retained at {growth_where}" if growth_where else ""
        violations.append(
            f"growth {format_size(window.growth_bytes)} > budget "
            f"{format_size(budget.growth_bytes)} (after gc.collect(), {how}){where}"
        )
    rate = window.rate_bytes_per_s
    if budget.rate_bytes_per_s is not None and rate is not None and rate > budget.rate_bytes_per_s:
        violations.append(
            f"growth rate {format_rate(rate)} > budget {format_rate(budget.rate_bytes_per_s)} "
            f"(least-squares slope over {window.samples} samples)"
        )
    if budget.pressure is not None and window.max_pressure > budget.pressure:
        violations.append(
            f"pressure {window.max_pressure.name} > budget {budget.pressure.name} "
            f"({_pressure_basis_text(window)}; "
            f"thresholds {window.thresholds.describe()})"
        )
    for result in scenarios:
        leak = leak_violation(budget, result)
        if leak is not None:
            violations.append(leak)
    return Verdict(tuple(violations))


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
    limit = budget.leak_bytes_per_iteration if budget is not None else None
    if limit is None or result.leak_bytes_per_iteration <= limit:
        return None
    return (
        f"leak {format_size(result.leak_bytes_per_iteration)}/iteration > budget "
        f"{format_size(limit)}/iteration (scenario {result.name}, slope of retained memory "
        f"over {result.iterations} iterations after {result.warmup} warm-up)"
    )
