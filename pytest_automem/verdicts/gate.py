"""The gate: two runs' results compared test by test, like with like.

A test *regresses* on a metric when ``current - baseline`` exceeds both a
relative tolerance (``max_increase_fraction`` of ``|baseline|``) and an
absolute floor (``min_delta``): per-test figures are steady, but not to the
byte, and a red pipeline must mean a real change.  It *improves* when it got
better by the same rule.  The absolute value of the baseline keeps the rule
sensible where growth is negative (a test that freed memory): the tolerance
is a share of the size of the figure, whichever way it points, and a zero
baseline leaves the floor alone to decide.

Functions here are pure: they read two results documents (plain dicts as
``results/results_file.py`` reads them) and never touch files, so the
command, a dashboard or a test can use them alike.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..base import defaults
from ..base.units import format_rate, format_size
from ..results.results_file import figure, leak_bytes_per_iteration

__all__ = [
    "CONTEXT_KEYS",
    "METRICS",
    "ContextDifference",
    "GateResult",
    "GateRules",
    "MetricChange",
    "MetricRule",
    "Status",
    "TestComparison",
    "compare",
    "compare_contexts",
    "compare_records",
    "figure_text",
    "metric_values",
    "regression_text",
    "signed_figure_text",
]

#: The metrics compared, by the name the command line uses, with the key
#: each has in a test's record (leak is derived from its scenarios).
METRICS: Mapping[str, str] = {
    "peak": "peak_bytes",
    "growth": "growth_bytes",
    "rate": "rate_bytes_per_s",
    "leak": "leak_bytes_per_iteration",
}
#: The measurement context: what makes two figures comparable.  Read from
#: the session, overlaid by a test's own ``context`` (a merged file whose
#: shards differed) and its ``peak_source``.
CONTEXT_KEYS = (
    "sampler_kind",
    "peak_source",
    "python",
    "implementation",
    "platform",
    "cpu_count",
    "plugin_version",
)


class Status(enum.IntEnum):
    """A test's outcome, ordered worst first (the order reports use)."""

    REGRESSED = 0
    NEW = 1
    REMOVED = 2
    IMPROVED = 3
    UNCHANGED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class MetricRule:
    """When a change of one metric counts: beyond both the fraction and the floor.

    ``min_delta`` is in the metric's own unit: bytes for peak and growth,
    bytes per second for rate, bytes per iteration for leak.
    """

    max_increase_fraction: float
    min_delta: float

    def allowed(self, baseline: float) -> float:
        """The largest change of ``baseline`` that is still noise."""
        return max(self.min_delta, self.max_increase_fraction * abs(baseline))


@dataclass(frozen=True)
class GateRules:
    """A rule per metric; the defaults are those of ``base/defaults.py``."""

    peak: MetricRule = MetricRule(
        defaults.GATE_MAX_INCREASE_PEAK, defaults.GATE_MIN_DELTA_PEAK_BYTES
    )
    growth: MetricRule = MetricRule(
        defaults.GATE_MAX_INCREASE_GROWTH, defaults.GATE_MIN_DELTA_GROWTH_BYTES
    )
    #: Not gated unless asked for (:data:`RATE_RULE`): a short test's rate
    #: moves with its own duration.  Between identical runs of real suites,
    #: rates differed by up to 7 MB/s (attrs) and 18 MB/s (python-dateutil),
    #: and by 2.5 MB/s among calls of 0.5 s or more, while their growth held
    #: steady; growth catches what a rate would.
    rate: MetricRule | None = None
    leak: MetricRule = MetricRule(
        defaults.GATE_MAX_INCREASE_LEAK, defaults.GATE_MIN_DELTA_LEAK_BYTES_PER_ITERATION
    )

    def rule(self, metric: str) -> MetricRule | None:
        """The metric's rule; None for a metric not gated."""
        rule: MetricRule | None = getattr(self, metric)
        return rule


#: The rate's rule once ``--max-increase rate=…`` or ``--min-delta rate=…`` asks
#: for it (the option then replaces its own part).
RATE_RULE = MetricRule(defaults.GATE_MAX_INCREASE_RATE, defaults.GATE_MIN_DELTA_RATE_BYTES_PER_S)


@dataclass(frozen=True)
class MetricChange:
    """One metric of one test, in both runs, and what the rule made of it."""

    metric: str
    baseline: float
    current: float
    allowed: float

    @property
    def delta(self) -> float:
        return self.current - self.baseline

    @property
    def status(self) -> Status:
        if self.delta > self.allowed:
            return Status.REGRESSED
        if -self.delta > self.allowed:
            return Status.IMPROVED
        return Status.UNCHANGED

    @property
    def excess(self) -> float:
        """The change as a multiple of what was allowed: how far past the rule."""
        return self.delta / self.allowed if self.allowed > 0 else float("inf")


@dataclass(frozen=True)
class TestComparison:
    """One node id: its status and the metrics both runs measured."""

    nodeid: str
    status: Status
    changes: tuple[MetricChange, ...] = ()

    __test__ = False  # a dataclass named Test*, not a pytest test class

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        """The regressed metrics, worst (furthest past its rule) first."""
        regressed = (c for c in self.changes if c.status is Status.REGRESSED)
        return tuple(sorted(regressed, key=lambda c: -c.excess))

    @property
    def worst_excess(self) -> float:
        return max((c.excess for c in self.changes), default=0.0)


@dataclass(frozen=True)
class ContextDifference:
    """A context key whose value differs between the runs, and for how many tests."""

    key: str
    baseline: object
    current: object
    tests: int

    def describe(self) -> str:
        return (
            f"{self.key} differs: baseline {self.baseline!r}, current {self.current!r} "
            f"({self.tests} test{'s' if self.tests != 1 else ''})"
        )


@dataclass(frozen=True)
class GateResult:
    """Every test compared, worst first, and how the two runs' contexts differ."""

    comparisons: tuple[TestComparison, ...]
    context_differences: tuple[ContextDifference, ...]

    @property
    def passed(self) -> bool:
        return not self.count(Status.REGRESSED)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.comparisons if c.status is status)

    def of_status(self, status: Status) -> Iterator[TestComparison]:
        return (c for c in self.comparisons if c.status is status)


def metric_values(record: Mapping[str, Any]) -> dict[str, float | None]:
    """A test's figure per metric; None where the run did not measure it
    (a rate over too short a window, a leak without a scenario)."""
    values: dict[str, float | None] = {
        metric: figure(record.get(key)) for metric, key in METRICS.items() if metric != "leak"
    }
    values["leak"] = leak_bytes_per_iteration(record)
    return values


def compare_records(
    nodeid: str, baseline: Mapping[str, Any], current: Mapping[str, Any], rules: GateRules
) -> TestComparison:
    """One test's record in each run, metric by metric: the one rule the
    command and the plugin's ``--automem-baseline`` both judge by.  A metric
    either run did not measure, or the rules do not gate, is left out."""
    before, after = metric_values(baseline), metric_values(current)
    changes = tuple(
        MetricChange(metric, old, new, rule.allowed(old))
        for metric in METRICS
        if (rule := rules.rule(metric)) is not None
        and (old := before[metric]) is not None
        and (new := after[metric]) is not None
    )
    statuses = {change.status for change in changes}
    status = min(statuses, default=Status.UNCHANGED)
    return TestComparison(nodeid, status, changes)


def figure_text(metric: str, value: float) -> str:
    """A metric's figure in its unit: sizes, a rate per second, a leak per iteration."""
    if metric == "rate":
        return format_rate(value)
    text = format_size(value)
    return f"{text}/iteration" if metric == "leak" else text


def signed_figure_text(metric: str, value: float) -> str:
    """A change of a metric, its sign always shown."""
    return ("+" if value >= 0 else "") + figure_text(metric, value)


def regression_text(change: MetricChange) -> str:
    """One line for a regressed metric: both figures, the change and what was allowed."""
    metric = change.metric
    return (
        f"{metric} {figure_text(metric, change.current)} > baseline "
        f"{figure_text(metric, change.baseline)} ({signed_figure_text(metric, change.delta)}, "
        f"allowed {signed_figure_text(metric, change.allowed)})"
    )


def _sort_key(comparison: TestComparison) -> tuple[int, float, str]:
    worst_first = -comparison.worst_excess if comparison.status is Status.REGRESSED else 0.0
    return (comparison.status, worst_first, comparison.nodeid)


def _tests(document: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    tests: Mapping[str, Mapping[str, Any]] = document.get("tests", {})
    return tests


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], rules: GateRules | None = None
) -> GateResult:
    """Compare two results documents test by test; regressed tests first, the
    furthest past its rule first, then new, removed, improved, unchanged."""
    rules = rules or GateRules()
    before, after = _tests(baseline), _tests(current)
    comparisons = [
        compare_records(nodeid, before[nodeid], record, rules)
        if nodeid in before
        else TestComparison(nodeid, Status.NEW)
        for nodeid, record in after.items()
    ]
    comparisons.extend(
        TestComparison(nodeid, Status.REMOVED) for nodeid in before if nodeid not in after
    )
    comparisons.sort(key=_sort_key)
    return GateResult(tuple(comparisons), compare_contexts(baseline, current))


def _session_context(document: Mapping[str, Any]) -> dict[str, object]:
    session = document.get("session")
    if not isinstance(session, dict):
        return {}
    return {key: session[key] for key in CONTEXT_KEYS if key in session}


def _test_context(session: Mapping[str, object], record: Mapping[str, Any]) -> dict[str, object]:
    own = record.get("context")
    context = {**session, **own} if isinstance(own, dict) else dict(session)
    if "peak_source" in record:
        context["peak_source"] = record["peak_source"]
    return context


def compare_contexts(
    baseline: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[ContextDifference, ...]:
    """Where the tests both runs measured were measured differently.

    A key one run does not record, or records as null (an older file, a
    value not known), is not a difference: the gate cannot tell.  Each
    distinct difference is reported once, with the number of tests it
    concerns.
    """
    before_session, after_session = _session_context(baseline), _session_context(current)
    before, after = _tests(baseline), _tests(current)
    found: dict[tuple[str, str, str], ContextDifference] = {}
    for nodeid, record in after.items():
        if nodeid not in before:
            continue
        old = _test_context(before_session, before[nodeid])
        new = _test_context(after_session, record)
        for key in CONTEXT_KEYS:
            if old.get(key) is not None and new.get(key) is not None and old[key] != new[key]:
                identity = (key, json.dumps(old[key]), json.dumps(new[key]))
                seen = found.get(identity)
                tests = seen.tests + 1 if seen is not None else 1
                found[identity] = ContextDifference(key, old[key], new[key], tests)
    return tuple(found[identity] for identity in sorted(found))
