"""The per-session plugin object: monitors tests, judges budgets, collects results.

Registered by :mod:`pytest_automem.plugin` at configure time (by name, so
other plugins and tests can find it) and unregistered at unconfigure.  It
owns the session's one :class:`MemoryMonitor`, started when collection
finds a test to monitor: a session that monitors nothing starts no sampler.

Each monitored test gets one window per phase (setup and teardown only when
it has fixtures).  The
budget is judged on the call phase, inside the ``pytest_runtest_call``
wrapper: a violation is raised there as :class:`MemoryBudgetExceeded`, so
pytest treats it like any failure of the test (``xfail`` included).  A test
that already failed keeps its own failure; the memory verdict is added to its
report as a section.

Results travel to the controller (or to this same object without xdist) as a
plain dict on the teardown report (``report.automem``), which xdist
serialises like the rest of the report.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .budget import BudgetError, MemoryBudget, Verdict, judge
from .collect import GcMode
from .pressure import PressureThresholds
from .report.session_outputs import (
    append_step_summary,
    junit_attachment,
    step_summary_markdown,
    summary_lines,
    write_report_files,
)
from .results import REQUIRED_TEST_KEYS

if TYPE_CHECKING:
    from .automaton import Automaton
    from .investigator.attribution import AllocationTracer
    from .investigator.overall import Attributed
    from .monitor import BriefResult, MeasurementWindow, MemoryMonitor, WindowResult
    from .scenario import Scenario, ScenarioResult

__all__ = ["ITEM_STATE", "AutomemSession", "ItemState", "MemoryBudgetExceeded"]

MARKER = "memory_budget"
#: Fixtures whose use makes a test monitored without ``--automem``.
MONITORING_FIXTURES = frozenset(
    {"memory_monitor", "run_scenario", "automaton", "optimized_automaton"}
)
#: A test's call must add this many objects of a type for the type to be reported.
_MIN_TYPE_GROWTH = 10
#: What the results file keeps of each phase (a BriefResult's figures).
PHASE_KEYS = ("peak_bytes", "growth_bytes", "duration_s", "samples", "peak_source", "gc_mode")


RUNTEST_PLUGIN_NAME = "automem-runtest"


class MemoryBudgetExceeded(AssertionError):
    """A test went over its ``memory_budget``; the message is the one-line reason."""


@dataclass
class ItemState:
    """What the plugin knows about one test while it runs."""

    budget: MemoryBudget | None
    monitored: bool
    #: Without fixtures (autouse ones included) setup and teardown do no
    #: work of the test's: they are not measured, saving two windows a test.
    has_fixtures: bool = True
    window: MeasurementWindow | None = None
    phases: dict[str, WindowResult | BriefResult] = field(default_factory=dict)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    verdict: Verdict | None = None
    failed_on_memory: bool = False
    report_text: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    tracer: AllocationTracer | None = None
    attributions: list[Attributed] = field(default_factory=list)
    #: Scenario runs over their leak budget, attributed after the call's window.
    to_attribute: list[tuple[Scenario, Automaton, ScenarioResult]] = field(default_factory=list)


ITEM_STATE = pytest.StashKey[ItemState]()


def parse_budget(item: pytest.Item) -> MemoryBudget | None:
    """The closest ``memory_budget`` marker as a budget (None without one).

    Raises BudgetError whose message names the test and the argument.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    try:
        return MemoryBudget.from_marker(marker.args, marker.kwargs)
    except BudgetError as exc:
        raise BudgetError(f"{item.nodeid}: @pytest.mark.{MARKER}: {exc}") from None


class AutomemSession:
    """Hooks of a pytest session with pytest-automem active."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        monitor_all: bool,
        interval_ms: float,
        thresholds: PressureThresholds,
        gc_mode: GcMode,
        junit_properties: bool,
        trace_all: bool = False,
        fresh_allocator: str = "budgeted",
    ) -> None:
        self.config = config
        self.monitor_all = monitor_all
        self.interval_ms = interval_ms
        self.thresholds = thresholds
        self.gc_mode = gc_mode
        self.junit_properties = junit_properties
        self.trace_all = trace_all
        self.fresh_allocator = fresh_allocator
        self.records: dict[str, dict[str, Any]] = {}
        self.written: list[tuple[str, str]] = []
        self._monitor: MemoryMonitor | None = None

    # -- the sampler ---------------------------------------------------------

    @property
    def monitor(self) -> MemoryMonitor:
        """The session's monitor, started on first use (without waiting for a sample)."""
        if self._monitor is None:
            from .monitor import MemoryMonitor

            self._monitor = MemoryMonitor(interval_ms=self.interval_ms).start(wait=False)
        return self._monitor

    def close(self) -> None:
        hooks = self.config.pluginmanager.get_plugin(RUNTEST_PLUGIN_NAME)
        if hooks is not None:
            self.config.pluginmanager.unregister(hooks, RUNTEST_PLUGIN_NAME)
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None

    # -- collection ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Collector, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        """Parse budgets as test functions are made: a bad one is a collection error."""
        result = yield
        items = result if isinstance(result, list) else [result]
        for item in items:
            if isinstance(item, pytest.Function):
                try:
                    self._prepare(item)
                except BudgetError as exc:
                    raise collector.CollectError(str(exc)) from None
        return result

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if ITEM_STATE not in item.stash:
                try:
                    self._prepare(item)  # unittest methods and other non-Python items
                except BudgetError as exc:
                    raise pytest.UsageError(str(exc)) from None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """If anything will be monitored: register the per-test hooks, start the sampler.

        A session that monitors nothing thus pays for no per-test hook at
        all.  The sampler starts now so that it warms up meanwhile.
        """
        if not self.is_worker_or_runner(session):
            return
        if any(self._state(item) is not None for item in session.items):
            if not self.config.pluginmanager.has_plugin(RUNTEST_PLUGIN_NAME):
                self.config.pluginmanager.register(RuntestHooks(self), RUNTEST_PLUGIN_NAME)
            _ = self.monitor

    def is_worker_or_runner(self, session: pytest.Session) -> bool:
        """False on an xdist controller, which runs no tests itself."""
        return getattr(session.config.option, "dist", "no") == "no" or self.is_worker

    def _prepare(self, item: pytest.Item) -> None:
        budget = parse_budget(item)
        fixtures = set(getattr(item, "fixturenames", ()))
        monitored = self.monitor_all or budget is not None or bool(fixtures & MONITORING_FIXTURES)
        item.stash[ITEM_STATE] = ItemState(
            budget=budget, monitored=monitored, has_fixtures=bool(fixtures)
        )
        names = getattr(item, "fixturenames", None)
        if budget is not None and isinstance(names, list) and "pressure_thresholds" not in names:
            # A test with a budget is judged on its directory's thresholds, so a
            # conftest override must apply.  Requesting the fixture costs ~60 µs
            # a test, which blanket --automem monitoring does not pay: there the
            # ini thresholds apply unless the test asks for the fixture itself.
            names.append("pressure_thresholds")

    # -- running -------------------------------------------------------------

    def _state(self, item: pytest.Item) -> ItemState | None:
        state = item.stash.get(ITEM_STATE, None)
        return state if state is not None and state.monitored else None

    def _thresholds_for(self, item: pytest.Item) -> PressureThresholds:
        value = getattr(item, "funcargs", {}).get("pressure_thresholds")
        return value if isinstance(value, PressureThresholds) else self.thresholds

    def _open(self, item: pytest.Item, state: ItemState, *, collect: bool) -> MeasurementWindow:
        """Open a phase's window.  Only the call phase collects garbage and
        hands the allocator's cached memory back first (so a peak cannot hide
        in memory an earlier test freed): setup and teardown report peaks
        and raw growth, which keeps a short test cheap (docs/pytest-plugin.md)."""
        state.window = self.monitor.window(
            thresholds=self._thresholds_for(item),
            collect_garbage=self.gc_mode if collect else "off",
            fresh_allocator=collect and self._fresh_allocator_for(state),
        )
        return state.window

    def _fresh_allocator_for(self, state: ItemState) -> bool:
        """Whether the call starts by handing back the allocator's cached memory.

        Without it a peak can hide in memory an earlier test freed and glibc
        kept; with it each test pays ~30 µs (``malloc_trim`` walks the heap).
        ``automem_fresh_allocator``: ``budgeted`` (tests whose figures are
        judged), ``always`` or ``never``.
        """
        if self.fresh_allocator == "budgeted":
            return state.budget is not None
        return self.fresh_allocator == "always"

    def _close(self, state: ItemState, phase: str) -> WindowResult:
        assert state.window is not None
        result = state.window.stop()
        state.phases[phase] = result
        state.window = None
        return result

    def _close_brief(self, state: ItemState, phase: str) -> None:
        assert state.window is not None
        state.phases[phase] = state.window.stop_brief()
        state.window = None

    def _measure_phase(self, item: pytest.Item, phase: str) -> Generator[None, None, None]:
        """Run one phase (setup or teardown) inside a window of its own."""
        state = self._state(item)
        if state is None or not state.has_fixtures:
            return (yield)
        self._open(item, state, collect=False)
        try:
            return (yield)
        finally:
            self._close_brief(state, phase)

    def runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._measure_phase(item, "setup"))

    def runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        state = self._state(item)
        if state is None:
            return (yield)
        if self.trace_all or (state.budget is not None and state.budget.trace):
            from .investigator.attribution import AllocationTracer

            state.tracer = AllocationTracer(min_type_count=_MIN_TYPE_GROWTH)
            state.tracer.start()
        self._open(item, state, collect=True)
        try:
            outcome = yield
        except BaseException:
            self._finish_call(item, state)
            raise
        self._finish_call(item, state)
        if state.verdict is not None and not state.verdict.passed:
            raise MemoryBudgetExceeded(f"memory budget exceeded: {state.verdict.headline()}")
        return outcome

    def _finish_call(self, item: pytest.Item, state: ItemState) -> None:
        attribution = None
        if state.tracer is not None:
            # Before the window closes: what the window's own closing allocates
            # is not the test's.  Tracing's own memory is in the window's
            # figures either way (docs/investigator.md, "Cost").
            attribution = state.tracer.stop()
            state.tracer = None
        window = self._close(state, "call")
        if state.to_attribute:
            self._attribute_leaks(state)
        if attribution is not None:
            from .investigator.overall import Attributed

            state.attributions.append(
                Attributed("the test's call", attribution, max(window.growth_bytes, 0))
            )
        state.verdict = judge(state.budget, window, state.scenarios)
        if _worth_investigating(state, window):
            from .investigator import investigate

            investigation = investigate(
                automaton=_automaton_of(item),
                window=window,
                scenarios=state.scenarios,
                phases=state.phases,
                attributions=state.attributions,
            )
            state.report_text = investigation.render_text()
            state.findings = [f.to_dict() for f in investigation.findings]

    def runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._measure_phase(item, "teardown"))

    def runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        state = self._state(item)
        if state is None:
            return report
        if call.when == "call" and state.verdict is not None:
            self._annotate_call_report(item, state, report, call)
        elif call.when == "teardown" and "call" in state.phases:
            report.automem = self._record(state)  # type: ignore[attr-defined]
            item.stash[ITEM_STATE] = ItemState(  # the next run of this item starts afresh
                budget=state.budget, monitored=True, has_fixtures=state.has_fixtures
            )
        return report

    def _annotate_call_report(
        self,
        item: pytest.Item,
        state: ItemState,
        report: pytest.TestReport,
        call: pytest.CallInfo[None],
    ) -> None:
        assert state.verdict is not None
        failed_on_memory = call.excinfo is not None and call.excinfo.errisinstance(
            MemoryBudgetExceeded
        )
        state.failed_on_memory = bool(failed_on_memory)
        if report.failed and failed_on_memory:
            report.longrepr = (
                f"memory budget exceeded: {state.verdict.headline()}\n\n{self._verdict_text(state)}"
            )
        elif not state.verdict.passed:
            report.sections.append(
                ("automem: memory budget exceeded too", self._verdict_text(state))
            )
        if self.junit_properties and getattr(self.config.option, "xmlpath", None):
            record = self._record(state)
            item.user_properties.extend(
                (f"automem.{key}", _property_value(record[key])) for key in REQUIRED_TEST_KEYS
            )

    def _verdict_text(self, state: ItemState) -> str:
        assert state.verdict is not None
        lines = [f"- {v}" for v in state.verdict.violations]
        return "\n".join([*lines, "", state.report_text or ""]).rstrip()

    def _record(self, state: ItemState) -> dict[str, Any]:
        """The results-file entry for one test: plain values only.

        Built once per test (the call phase's part at the call report, the
        phases added at teardown): a thousand short tests must not pay twice.
        """
        if state.record is None:
            verdict = state.verdict or Verdict()
            state.record = {
                **state.phases["call"].to_dict(),
                "verdict": verdict.name,
                "violations": list(verdict.violations),
                "message": None if verdict.passed else verdict.headline(),
                "failed_on_memory": state.failed_on_memory,
                "report": None if verdict.passed else self._verdict_text(state),
                "budget": state.budget.to_dict() if state.budget else None,
                "scenarios": [_scenario_summary(s) for s in state.scenarios],
                "findings": list(state.findings),
            }
        state.record["phases"] = {
            name: {key: state.record[key] for key in PHASE_KEYS}
            if name == "call"
            else result.to_dict()
            for name, result in state.phases.items()
        }
        return state.record

    # -- results -------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "automem", None)
        if report.when == "teardown" and isinstance(record, dict):
            self.records[report.nodeid] = record

    def record_scenario(
        self, item: pytest.Item, scenario: Scenario, automaton: Automaton, result: ScenarioResult
    ) -> None:
        """Called by the ``run_scenario`` fixture: judged with the test's budget.

        A result over its ``leak_per_iteration`` budget is attributed once
        the call's window has closed (tracing's own memory must not count
        against the test): the scenario then runs a few more steps on the
        same automaton under tracing, paid only where a verdict needs it.
        """
        state = item.stash.get(ITEM_STATE, None)
        if state is None:
            return
        state.scenarios.append(result)
        limit = state.budget.leak_bytes_per_iteration if state.budget else None
        if limit is not None and result.leak_bytes_per_iteration > limit:
            state.to_attribute.append((scenario, automaton, result))

    def _attribute_leaks(self, state: ItemState) -> None:
        """Trace a few more steps of each scenario that went over its leak budget."""
        from .investigator.leaks import attribute_scenario
        from .investigator.overall import Attributed

        for scenario, automaton, result in state.to_attribute:
            attribution = attribute_scenario(
                scenario, automaton, start_step=result.warmup + result.iterations
            )
            measured = round(result.leak_bytes_per_iteration * attribution.iterations)
            state.attributions.append(Attributed(f"scenario {result.name}", attribution, measured))
        state.to_attribute.clear()

    def current_window(self, item: pytest.Item) -> MeasurementWindow | None:
        state = item.stash.get(ITEM_STATE, None)
        return state.window if state is not None else None

    def memory_failures(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.records.items() if v["verdict"] == "fail"}

    # -- end of session ------------------------------------------------------

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the outputs once pytest's own (JUnit included) are written."""
        self.close()
        if self.is_worker:
            return
        options = self.config.option
        failures = self.memory_failures()
        report_files: dict[str, Path] = {}
        if options.automem_report_dir and failures:
            report_files = write_report_files(Path(options.automem_report_dir), failures)
        if options.automem_json:
            from .results import build_results, write_results

            write_results(options.automem_json, build_results(self.records, self._session_info()))
            self.written.append(("results", str(options.automem_json)))
        xml_path = getattr(options, "xmlpath", None)
        if xml_path and failures and Path(xml_path).exists():
            from .report.junit import attach_to_junit

            attach_to_junit(
                xml_path,
                [
                    junit_attachment(nodeid, record, report_files.get(nodeid))
                    for nodeid, record in failures.items()
                ],
                prefix=getattr(options, "junitprefix", None) or None,
            )
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path and self.records and self.config.getini("automem_step_summary"):
            append_step_summary(summary_path, step_summary_markdown(self.records))

    def _session_info(self) -> dict[str, Any]:
        sampler = next(iter(self.records.values()), {})
        return {
            "monitor_all": self.monitor_all,
            "interval_target_ms": self.interval_ms,
            "thresholds_bytes": list(self.thresholds.boundaries()),
            "gc_mode": self.gc_mode.value,
            "sampler_kind": sampler.get("sampler_kind"),
            "tests_monitored": len(self.records),
            "memory_failures": len(self.memory_failures()),
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.records:
            return
        lines = summary_lines(self.records, verbosity=self.config.get_verbosity())
        terminalreporter.section("automem: memory")
        for line in lines:
            terminalreporter.line(line)
        if self.config.get_verbosity() >= 0:
            for what, path in self.written:
                terminalreporter.line(f"automem {what} written to {path}")


def _automaton_of(item: pytest.Item) -> Automaton | None:
    """The automaton the test got from the ``automaton`` fixture, if any.

    Its objects and history are checked too (duplicate IDs, large arrays,
    an unbounded history): that is often *why* the test grew.
    """
    value = getattr(item, "funcargs", {}).get("automaton")
    return value if hasattr(value, "execution_history") else None


def _worth_investigating(state: ItemState, window: WindowResult) -> bool:
    """The investigator runs where it can say something: a failure, a long
    window (growth-rate findings need 0.5 s), or scenario results."""
    failed = state.verdict is not None and not state.verdict.passed
    interesting = bool(state.scenarios or state.attributions)
    return failed or interesting or window.duration_s >= 0.5


def _scenario_summary(result: ScenarioResult) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("measurement", None)
    return data


def _property_value(value: object) -> str | int | float | bool:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if value is None:
        return ""
    return value if isinstance(value, (str, int, float, bool)) else str(value)


class RuntestHooks:
    """The per-test hooks, registered only when collection found a test to monitor.

    Each delegates to the session; kept apart so that pytest never calls
    into the plugin per test in a session that monitors nothing.
    """

    def __init__(self, session: AutomemSession) -> None:
        self._session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._session.runtest_setup(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._session.runtest_call(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._session.runtest_teardown(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        return (yield from self._session.runtest_makereport(item, call))
