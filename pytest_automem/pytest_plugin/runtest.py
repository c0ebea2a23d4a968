"""Per-test measurement: a window per phase, the verdict, the test's record.

Imported and registered by the session only when collection found a test to
monitor (what each test gets is decided in :mod:`pytest_automem.pytest_plugin.plan`), so
a session that monitors nothing pays for no per-test hook.  Each monitored
test gets:

* a window around its call, with garbage collected at both ends;
* brief windows (peak and raw growth) around setup and teardown, when the
  test has fixtures that do work (direct parametrization does none) and
  something reports those phases (see ``plan_item``);
* its verdict, judged inside the call wrapper: a violation is raised there as
  :class:`MemoryBudgetExceeded`, so pytest treats it like any failure of the
  test (``xfail`` included);
* its record, a dict of plain values, kept once its last measured phase
  ends.

Short tests are thousands a session, so their path is kept lean: a test
monitored only because of ``--automem`` (no budget, no automem fixture),
with no phases measured and no output that needs every results key, costs
one hook wrapper, one span of the session's
:class:`~pytest_automem.measure.monitor.SpanProbe` (kernel reads, no samples, no
statistics, no object made) and its :data:`SUMMARY_KEYS` figures in the
record store's index (no record made).
:class:`PhasedRuntestHooks` (setup and teardown too) is registered only when
some test measures them, and :class:`ReportHooks`, which annotates reports,
only when some test can have a verdict (registered when the first budgeted
test runs, if collection saw none) or the records must travel with reports
(xdist) or every test's record feeds JUnit properties.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ..base.defaults import GROWTH_NOISE_BYTES, MIN_RATE_WINDOW_S
from ..base.units import format_size
from ..measure.garbage import GcMode
from ..measure.pressure import PressureThresholds
from ..results.records import encode_record, summary_record
from .plan import ItemPlan

if TYPE_CHECKING:
    from pathlib import Path

    from ..automaton.scenario import Scenario, ScenarioResult
    from ..automaton.store import Automaton
    from ..investigator.attribution import AllocationTracer, Attribution
    from ..investigator.findings import Investigation
    from ..investigator.overall import PeakStacks, SubjectAttribution
    from ..investigator.rerun import Rerun
    from ..measure.gc_events import CollectionRecorder, RecordedEvent
    from ..measure.monitor import HeadlineResult, MeasurementWindow, MemoryMonitor, SpanProbe
    from ..measure.stack_dumps import StackDump
    from ..measure.window_result import WindowResult
    from ..verdicts.budget import MemoryBudget, Verdict
    from ..verdicts.gate import GateRules, TestComparison
    from .samples import SamplesSettings

__all__ = [
    "SUMMARY_KEYS",
    "ItemState",
    "MemoryBudgetExceeded",
    "PhasedRuntestHooks",
    "RecordSink",
    "ReportHooks",
    "RunSettings",
    "RuntestHooks",
    "UnsentRecords",
]

#: What the terminal and step summaries read of a record: all a lean call
#: keeps when no output needs every results key.
SUMMARY_KEYS = ("peak_bytes", "growth_bytes", "max_pressure", "verdict", "message")
#: What the results file keeps of each phase: figures that a window's
#: result and a HeadlineResult both have.
PHASE_KEYS = (
    "peak_bytes",
    "growth_bytes",
    "max_pressure",
    "duration_s",
    "samples",
    "peak_source",
    "gc_mode",
)
#: A call this long is measured in full whatever the outputs: its growth rate
#: can be judged (the investigator's growth-rate findings need this long).
_FULL_CALL_AFTER_S = MIN_RATE_WINDOW_S
_FULL_CALL_AFTER_NS = int(_FULL_CALL_AFTER_S * 1e9)
#: Share of a peak limit that cached allocator memory may reach before the
#: call is traced: below it, the verdict can only change for a peak within
#: that share of its limit.
_TRACE_PEAK_SHARE = 0.05
#: What stops a test before it finishes (Ctrl-C, ``pytest.exit``): the verdict
#: rules give such a test no verdict and no record.
_UNFINISHED = (KeyboardInterrupt, pytest.exit.Exception)
#: What a call raises without failing: its samples are not kept for it.
_NOT_FAILURES = (pytest.skip.Exception, pytest.xfail.Exception)


class MemoryBudgetExceeded(AssertionError):
    """A test went over its ``memory_budget``; the message is the one-line reason."""


class ItemState:
    """One run of a monitored test: made when its setup starts (if setup is
    measured) or else when its call starts, kept until the next test starts.
    The lean call of a flag-only test needs none.

    A plain class with slots: mutable state, one per test, whose fields
    all start empty.
    """

    __slots__ = (
        "attributions",
        "expected_failure",
        "failed_on_memory",
        "findings",
        "fixture_peaks",
        "phases",
        "plan",
        "record",
        "recorder",
        "report_text",
        "samples_file",
        "scenarios",
        "to_attribute",
        "tracer",
        "verdict",
        "window",
    )

    def __init__(self, plan: ItemPlan) -> None:
        self.plan = plan
        self.window: MeasurementWindow | None = None
        self.phases: dict[str, WindowResult | HeadlineResult] = {}
        self.scenarios: list[ScenarioResult] = []
        self.verdict: Verdict | None = None
        self.failed_on_memory = False
        #: The test is marked xfail and failed on memory: pytest counts it as xfailed.
        self.expected_failure = False
        #: Each fixture's peak during setup, bytes by fixture name (budgeted tests).
        self.fixture_peaks: dict[str, int] = {}
        self.report_text: str | None = None
        self.findings: list[dict[str, Any]] = []
        self.record: dict[str, Any] | None = None
        self.tracer: AllocationTracer | None = None
        self.attributions: list[SubjectAttribution] = []
        #: Scenario runs over their leak budget, attributed after the call's window.
        self.to_attribute: list[tuple[Scenario, Automaton, ScenarioResult]] = []
        #: Records the call's collections and trims while its samples may be kept.
        self.recorder: CollectionRecorder | None = None
        #: The call's snapshot file, by name in the samples folder, once written.
        self.samples_file: str | None = None

    @property
    def budget(self) -> MemoryBudget | None:
        return self.plan.budget


@dataclass(frozen=True)
class RunSettings:
    """The session's settings that per-test measurement reads."""

    thresholds: PressureThresholds
    gc_mode: GcMode
    #: ``budgeted``, ``always`` or ``never`` (ini ``automem_fresh_allocator``).
    fresh_allocator: str
    #: A call over its growth budget runs once more under tracing
    #: (ini ``automem_rerun_failures``; :mod:`.rerun`).
    rerun_failures: bool
    trace_all: bool
    #: Which tests carry ``automem.*`` JUnit properties (ini
    #: ``automem_junit_properties``): ``budgeted``, ``all`` or ``none``.
    junit_properties: str
    #: JUnit is written (``--junitxml``): properties go on the test cases.
    junit: bool
    #: Records travel with the teardown report (an xdist worker).
    is_worker: bool
    #: Every record needs all the results keys: the results file and JUnit
    #: properties read them (on xdist, the controller writes them).
    records_need_all_keys: bool
    #: How a test in the baseline (``--automem-baseline``) is compared with
    #: its record there; None without a baseline.
    baseline_rules: GateRules | None = None
    #: Where and whose call samples are kept (:mod:`.samples`); None: nobody's.
    samples: SamplesSettings | None = None


class RecordSink(Protocol):
    """Where finished records go (:class:`~pytest_automem.results.records.RecordStore`
    in a session that writes outputs, :class:`UnsentRecords` on a worker)."""

    def add(self, nodeid: str, record: dict[str, Any]) -> None: ...

    def add_summary(
        self, nodeid: str, peak_bytes: int, growth_bytes: int, max_pressure: str
    ) -> None:
        """Keep the :func:`~pytest_automem.results.records.summary_record`
        of a test that passed with only its call measured."""


class UnsentRecords:
    """On an xdist worker: each finished record until its teardown report
    carries it to the controller, which keeps it."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}

    def add(self, nodeid: str, record: dict[str, Any]) -> None:
        self._records[nodeid] = record

    def add_summary(
        self, nodeid: str, peak_bytes: int, growth_bytes: int, max_pressure: str
    ) -> None:
        self.add(nodeid, summary_record(peak_bytes, growth_bytes, max_pressure))

    def take(self, nodeid: str) -> dict[str, Any] | None:
        return self._records.pop(nodeid, None)


# -- running ----------------------------------------------------------------


class RuntestHooks:
    """The window around each monitored test's call; the verdict; the record.

    Registered when no monitored test measures its setup and teardown (see
    :class:`PhasedRuntestHooks`): then a test costs one hook wrapper, not
    three.  Tests run one at a time in a process, so the running test's
    plan and state live here (``_item``, ``_plan``, ``_state``).  The
    state of the last test stays until the next one starts, so the report
    hooks (which run after each phase) can still read it.
    """

    #: Whether these hooks measure setup and teardown (a plan made after
    #: collection may ask for phases that no registered hook measures).
    measures_phases = False

    def __init__(
        self,
        settings: RunSettings,
        monitor: MemoryMonitor,
        plan_of: Callable[[pytest.Item], ItemPlan],
        records: RecordSink,
        register_reports: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._monitor = monitor
        #: The test's plan for the budget mark it carries now (raises MarkerError).
        self._plan_of = plan_of
        #: Where finished records go: the session's store, or on an xdist
        #: worker :class:`UnsentRecords` until a report carries them.
        self._records = records
        #: Registers :class:`ReportHooks` for a test with a budget (a fixture
        #: may add one to a session that had none); None once done.
        self._register_reports = register_reports
        #: The monitored test now running (None between tests or when it is not monitored).
        self._item: pytest.Item | None = None
        self._plan: ItemPlan | None = None
        self._state: ItemState | None = None
        #: Measures flag-only tests' calls in brief, unless every test is traced,
        #: carries JUnit properties (which need a state per test) or keeps its
        #: samples (which a span does not read).
        self._probe = (
            None
            if settings.trace_all
            or (settings.junit and settings.junit_properties == "all")
            or (settings.samples is not None and settings.samples.every_test)
            else monitor.probe(
                gc_mode=settings.gc_mode, fresh_allocator=settings.fresh_allocator == "always"
            )
        )

    def state_of(self, item: pytest.Item) -> ItemState | None:
        """The state of ``item`` while it runs (and until the next test starts)."""
        return self._state if item is self._item else None

    def _begin(self, item: pytest.Item) -> ItemPlan | None:
        """Start a test: its plan if it is monitored, else None.

        The plan is looked up for the mark the test carries now, so a
        budget a fixture or hook added since collection counts; a bad one
        raises MarkerError here, failing the test with its name and argument.
        """
        self._state = None
        self._item = None
        plan = self._plan_of(item)
        if not plan.monitored:
            return None
        self._item = item
        self._plan = plan
        return plan

    def _plan_at_call(self, item: pytest.Item) -> ItemPlan | None:
        """The plan of the test whose call starts (None if it is not monitored).

        Here the call starts the test; with phases measured, setup does
        (:meth:`PhasedRuntestHooks._plan_at_call`).
        """
        return self._begin(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """A test monitored only by ``--automem`` is measured right here, in
        a span of the session's probe: thousands of short tests a session,
        so no window and no further generator; any other in :meth:`_full_call`."""
        plan = self._plan_at_call(item)
        if plan is None:
            return (yield)
        probe = self._probe
        if not plan.flag_only or probe is None:
            return (yield from self._full_call(item, plan))
        probe.open()
        unfinished = failed = False
        try:
            return (yield)
        except _UNFINISHED:
            unfinished = True
            raise
        except _NOT_FAILURES:
            raise
        except BaseException:
            failed = True
            raise
        finally:
            if unfinished:
                probe.close()
                if self._state is not None:  # its setup was measured
                    self._abandon(self._state)
            else:
                self._finish_lean_call(item, plan, probe, failed=failed)

    def _full_call(self, item: pytest.Item, plan: ItemPlan) -> Generator[None, None, None]:
        """The call's window, its verdict and, once no phase is left, the record."""
        if not plan.flag_only and self._register_reports is not None:
            self._register_reports()
            self._register_reports = None
        state = self._state
        if state is None:
            state = self._state = ItemState(plan)
        budget = plan.budget
        if self.settings.trace_all or (budget is not None and budget.trace):
            from ..investigator.attribution import AllocationTracer

            state.tracer = AllocationTracer()
            state.tracer.start()
        if self.settings.samples is not None:
            from ..measure.gc_events import CollectionRecorder

            state.recorder = CollectionRecorder(self._monitor.rss_bytes)
            state.recorder.start()
        self._open(item, state, collect=True)
        if state.recorder is not None:
            state.recorder.call_started()
        unfinished = raised = failed = False
        try:
            outcome = yield
        except _UNFINISHED:
            unfinished = True
            raise
        except BaseException as exc:
            raised = True
            failed = not isinstance(exc, _NOT_FAILURES)
            raise
        finally:
            if unfinished:
                self._abandon(state)
            else:
                if state.recorder is not None:
                    state.recorder.call_ended()
                self._finish_call(item, state, call_raised=raised, call_failed=failed)
                if not self._phases_left(plan):
                    self._finish_test(item, state)
        if state.verdict is not None and not state.verdict.passed:
            raise MemoryBudgetExceeded(state.verdict.failure_message())
        return outcome

    def _phases_left(self, plan: ItemPlan) -> bool:
        """Whether teardown is still to be measured (it then completes the record)."""
        return plan.measure_phases and self.measures_phases

    def _finish_lean_call(
        self, item: pytest.Item, plan: ItemPlan, probe: SpanProbe, *, failed: bool
    ) -> None:
        """Record a lean call.

        A long one goes on as a full window (its growth rate can be judged),
        and so does a failed one whose samples are kept: its span's samples
        are still in the sampler's ring, read only now that it failed.
        Without an output that needs every results key, the record has only
        the :data:`SUMMARY_KEYS`; with one, the call's figures are a
        :class:`~pytest_automem.measure.monitor.HeadlineResult` with its samples'
        statistics, and the record is completed as any test's (at teardown
        if that is measured).
        """
        thresholds = _thresholds_for(item, self.settings.thresholds)
        if (failed and self.settings.samples is not None) or (
            time.monotonic_ns() - probe.opened_ns >= _FULL_CALL_AFTER_NS
        ):
            self._finish_long_flag_only_call(
                item, plan, probe.to_window(thresholds), call_failed=failed
            )
            return
        state = self._state
        if state is None:  # no setup measured: nothing else goes in the record
            if self.settings.records_need_all_keys:
                self._records.add(item.nodeid, lean_record(probe.close_headline(thresholds)))
            else:
                peak, growth = probe.close()
                self._records.add_summary(item.nodeid, peak, growth, thresholds.classify(peak).name)
            return
        from ..verdicts.budget import Verdict

        state.phases["call"] = probe.close_headline(thresholds)
        state.verdict = Verdict()  # no budget: nothing to judge
        if not self._phases_left(plan):
            self._finish_test(item, state)

    def _abandon(self, state: ItemState) -> None:
        """Close a call that did not finish without judging or recording it."""
        if state.tracer is not None:
            state.tracer.stop()
            state.tracer = None
        if state.recorder is not None:
            state.recorder.stop()
            state.recorder = None
        if state.window is not None:
            state.window.stop_headline()
            state.window = None
        self._state = None
        self._item = None

    def _finish_long_flag_only_call(
        self, item: pytest.Item, plan: ItemPlan, window: MeasurementWindow, *, call_failed: bool
    ) -> None:
        """A lean call that lasted :data:`_FULL_CALL_AFTER_S` or more, or
        failed with samples to keep, is measured in full: its growth rate
        can be judged, its samples kept."""
        state = self._state
        if state is None:
            state = self._state = ItemState(plan)
        state.window = window
        # Its failure, if any, is not ours: no verdict of ours to raise.
        self._finish_call(item, state, call_raised=False, call_failed=call_failed)
        if not self._phases_left(plan):
            self._finish_test(item, state)

    # -- windows -------------------------------------------------------------

    def _open(self, item: pytest.Item, state: ItemState, *, collect: bool) -> None:
        """Open a phase's window.  Only the call phase collects garbage (at
        its start too for tests with a budget or an automem fixture) and
        hands the allocator's cached memory back first (so a peak cannot hide
        in memory an earlier test freed): setup and teardown report peaks
        and raw growth, which keeps a short test cheap (docs/pytest-plugin.md)."""
        thresholds = _thresholds_for(item, self.settings.thresholds)
        state.window = self._monitor.window(
            thresholds=thresholds,
            collect_garbage=self.settings.gc_mode if collect else GcMode.OFF,
            fresh_allocator=collect and self._fresh_allocator_for(state),
            collect_at_start=collect and not state.plan.flag_only,
            trace_peak_above_bytes=_trace_peak_above_bytes(state.plan.budget, thresholds),
            stacks_above_bytes=_peak_limit_bytes(state.plan.budget) if collect else None,
            # Traced: the sites alive at the crossing too.
            on_stack_dump=state.tracer.mark_peak if state.tracer is not None else None,
        )

    def _fresh_allocator_for(self, state: ItemState) -> bool:
        """Whether the call starts by handing back the allocator's cached memory.

        Without it a peak can hide in memory an earlier test freed and glibc
        kept; with it each test pays for a ``malloc_trim``, which walks the heap.
        ``automem_fresh_allocator``: ``budgeted`` (tests whose figures are
        judged), ``always`` or ``never``.
        """
        mode = self.settings.fresh_allocator
        if mode == "budgeted":
            return state.plan.budget is not None or state.plan.baseline is not None
        return mode == "always"

    @staticmethod
    def _close_headline(state: ItemState, phase: str) -> None:
        assert state.window is not None
        state.phases[phase] = state.window.stop_headline()
        state.window = None

    # -- the call's verdict --------------------------------------------------

    def _finish_call(
        self, item: pytest.Item, state: ItemState, *, call_raised: bool, call_failed: bool = False
    ) -> None:
        """Close the call's window and judge it.  ``call_raised``: the test
        raised on its own, so a memory verdict only adds to its report;
        ``call_failed``: what it raised was a failure (not a skip), so its
        samples are kept where failing tests' are."""
        attribution = None
        if state.tracer is not None:
            # Before the window closes: what the window's own closing allocates
            # is not the test's.  Tracing's own memory is in the window's
            # figures either way (docs/investigator.md, "Cost").
            attribution = state.tracer.stop()
            state.tracer = None
        assert state.window is not None
        opened_ns = state.window.opened_ns
        recorder, state.recorder = state.recorder, None
        try:
            window = state.window.stop()  # its end's collections are recorded too
        finally:  # a dead sampler must not leave the recorder listening
            recorded = recorder.stop() if recorder is not None else ()
        peak_dumps = state.window.stack_dumps
        state.phases["call"] = window
        state.window = None
        if state.to_attribute:
            _attribute_leaks(state)
        if attribution is not None:
            from ..investigator.overall import SubjectAttribution

            state.attributions.append(
                SubjectAttribution("the test's call", attribution, max(window.growth_bytes, 0))
            )
        from ..verdicts.budget import growth_exceeded, growth_regressed, judge

        budget = state.plan.budget
        peak_where = _crossing_place(peak_dumps)
        comparison = self._against_baseline(item, state, window)
        state.verdict = judge(
            budget, window, state.scenarios, peak_where=peak_where, against_baseline=comparison
        )
        state.failed_on_memory = not (call_raised or state.verdict.passed)
        rerun = None
        if (
            state.failed_on_memory
            and attribution is None
            and not state.scenarios
            and self.settings.rerun_failures
            and (growth_exceeded(budget, window) or growth_regressed(comparison))
        ):
            from ..investigator.rerun import growth_place

            rerun = self._rerun(item, window)
            state.verdict = judge(
                budget,
                window,
                state.scenarios,
                peak_where=peak_where,
                growth_where=growth_place(rerun),
                against_baseline=comparison,
            )
        if _worth_investigating(state, window):
            from ..investigator import investigate

            investigation = investigate(
                automaton=_automaton_of(item),
                window=window,
                scenarios=state.scenarios,
                phases=state.phases,
                attributions=state.attributions,
                peak_stacks=_peak_stacks(state.plan.budget, peak_dumps, attribution),
                rerun=rerun,
            )
            if not state.verdict.passed:
                state.report_text = _failure_report(state, investigation)
            state.findings = [f.to_dict() for f in investigation.findings]
        samples = self.settings.samples
        judged = state.plan.budget is not None or state.plan.baseline is not None
        if samples is not None and samples.keeps(
            judged=judged, failed=call_failed or not state.verdict.passed
        ):
            state.samples_file = _keep_samples(
                samples.folder, item.nodeid, state, window, opened_ns, recorded, recorder
            )

    def _against_baseline(
        self, item: pytest.Item, state: ItemState, window: WindowResult
    ) -> TestComparison | None:
        """The call's figures against the test's baseline record, if it has one."""
        rules = self.settings.baseline_rules
        if state.plan.baseline is None or rules is None:
            return None
        from ..verdicts.budget import baseline_comparison

        return baseline_comparison(item.nodeid, state.plan.baseline, rules, window, state.scenarios)

    def _rerun(self, item: pytest.Item, window: WindowResult) -> Rerun:
        """The call once more under tracing, to name where it grew (:mod:`.rerun`)."""
        from .rerun import rerun_traced

        return rerun_traced(
            item,
            self._monitor,
            first_growth_bytes=window.growth_bytes,
            thresholds=_thresholds_for(item, self.settings.thresholds),
            gc_mode=self.settings.gc_mode,
        )

    # -- the record ----------------------------------------------------------

    def _finish_test(self, item: pytest.Item, state: ItemState) -> None:
        """Complete the record once teardown is measured and keep it (on an
        xdist worker, until :class:`ReportHooks` sends it)."""
        if "call" in state.phases:  # else setup failed or skipped: nothing ran
            state.record = record_of(state)
            self._records.add(item.nodeid, state.record)

    def expect_failure(self, item: pytest.Item, state: ItemState) -> None:
        """The test is marked xfail and failed on memory, as expected: its
        record says so, kept again if it was finished with the call."""
        state.expected_failure = True
        if state.record is not None:
            state.record["expected_failure"] = True
            self._records.add(item.nodeid, state.record)

    def take_record(self, item: pytest.Item) -> dict[str, Any] | None:
        """The finished record of ``item``, handed over (an xdist worker sends it)."""
        records = self._records
        return records.take(item.nodeid) if isinstance(records, UnsentRecords) else None


class PhasedRuntestHooks(RuntestHooks):
    """:class:`RuntestHooks` that also measure setup and teardown.

    Registered when some monitored test has setup or teardown work to
    measure (see :func:`plan_item`).  Setup starts the test, so the
    ``memory_monitor`` fixture can read the setup window.
    """

    measures_phases = True
    #: The state of a budgeted test whose setup runs: its fixtures are measured.
    _fixtures_of: ItemState | None = None
    #: Measures one fixture's setup at a time (made for the first budgeted test).
    _fixture_probe: SpanProbe | None = None

    def _plan_at_call(self, item: pytest.Item) -> ItemPlan | None:
        """The plan at the call: a fixture may have added a budget during setup."""
        if item is not self._item:
            return self._begin(item)
        plan = self._plan_of(item)
        if plan is not self._plan:
            self._plan = plan
            if self._state is not None:
                self._state.plan = plan
        return plan

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        plan = self._begin(item)
        if plan is None or not plan.measure_phases:  # the call makes the state, if needed
            return (yield)
        state = self._state = ItemState(plan)
        self._open(item, state, collect=False)
        if plan.budget is not None:
            self._fixtures_of = state
        try:
            return (yield)
        finally:
            self._fixtures_of = None
            self._close_headline(state, "setup")

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
        """Each fixture's peak, in a budgeted test's setup: the failure text
        and the top lists then name the fixture that used the memory.

        One span of a probe per fixture (kernel reads, nested in the setup's
        window); a fixture set up inside another's is counted in the outer one.
        """
        state = self._fixtures_of
        if state is None:
            return (yield)
        self._fixtures_of = None  # no nested spans: the outer fixture holds them
        probe = self._fixture_probe
        if probe is None:
            probe = self._fixture_probe = self._monitor.probe(gc_mode=GcMode.OFF)
        probe.open()
        try:
            return (yield)
        finally:
            peak, _ = probe.close()
            state.fixture_peaks[fixturedef.argname] = peak
            self._fixtures_of = state

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        state = self._state
        if state is None or item is not self._item or not state.plan.measure_phases:
            return (yield)
        self._open(item, state, collect=False)
        try:
            return (yield)
        finally:
            self._close_headline(state, "teardown")
            self._finish_test(item, state)


def record_of(state: ItemState) -> dict[str, Any]:
    """The results-file entry for one test: plain values only.

    Built at most twice per test (at the call report when JUnit properties
    need it, then with the phases at teardown).  A call measured by the
    lean path never gets here: its record has only :data:`SUMMARY_KEYS`.
    """
    call = state.phases["call"]
    record = state.record
    if record is None:
        from ..verdicts.budget import Verdict

        verdict = state.verdict or Verdict()
        record = {
            **call.to_dict(),
            "verdict": verdict.name,
            "violations": list(verdict.violations),
            "message": None if verdict.passed else verdict.headline(),
            "failed_on_memory": state.failed_on_memory,
            "expected_failure": state.expected_failure,
            "report": None if verdict.passed else verdict_text(state),
            "budget": state.plan.budget.to_dict() if state.plan.budget else None,
            "scenarios": [_scenario_summary(s) for s in state.scenarios],
            "findings": list(state.findings),
        }
    record["phases"] = {
        name: {key: record[key] for key in PHASE_KEYS} if name == "call" else result.to_dict()
        for name, result in state.phases.items()
    }
    if state.fixture_peaks and "setup" in record["phases"]:
        record["phases"]["setup"]["fixture_peaks_bytes"] = dict(state.fixture_peaks)
    if state.samples_file is not None:
        record["samples_file"] = state.samples_file
    return record


def lean_record(call: HeadlineResult) -> dict[str, Any]:
    """The record of a flag-only test whose setup and teardown were not
    measured, when an output needs every results key: the call's figures,
    a pass, and the call as its one phase, as :func:`record_of` would give
    without the keys that only a budget or an automem fixture fills."""
    figures = call.to_dict()
    return {
        **figures,
        "verdict": "pass",
        "violations": [],
        "message": None,
        "phases": {"call": {key: figures[key] for key in PHASE_KEYS}},
    }


def verdict_text(state: ItemState) -> str:
    """The report under the one-line message (made when the call was judged):
    the same text in the terminal, the JUnit file and the report file."""
    assert state.verdict is not None
    return state.report_text or ""


def _failure_report(state: ItemState, investigation: Investigation) -> str:
    """The failed figures with their basis and the setup's peak beside them,
    then where, what to do and what else was found (see ``render_failure``).

    Teardown has not run yet when the call's failure is reported, so its
    peak is in the terminal's top lists and the results file only.
    """
    from ..investigator.findings import Investigation
    from ..investigator.render import render_failure

    verdict = state.verdict
    assert verdict is not None
    restated = verdict.restated_checks()
    findings = tuple(f for f in investigation.findings if f.check not in restated)
    measured = [*verdict.measured_lines(), *_phase_lines(state)]
    return render_failure(
        measured, Investigation(findings, investigation.figures), verdict.advice_lines()
    )


def _phase_lines(state: ItemState) -> list[str]:
    """The setup's peak, when its fixtures used memory worth naming: the
    call's figures do not include it, and a fixture is often the cause."""
    setup = state.phases.get("setup")
    if setup is None or setup.peak_bytes < GROWTH_NOISE_BYTES:
        return []
    fixture = largest_fixture(state.fixture_peaks)
    named = f"fixture {fixture[0]} {format_size(fixture[1])}" if fixture else "the fixtures"
    return [
        f"setup peak {format_size(setup.peak_bytes)} before the call "
        f"({named}; not in the call's figures), {format_size(setup.growth_bytes)} "
        "of it still held when the call began"
    ]


def largest_fixture(peaks: dict[str, int]) -> tuple[str, int] | None:
    """The fixture whose setup peaked highest, if one used memory worth naming."""
    if not peaks:
        return None
    name = max(peaks, key=peaks.__getitem__)
    return (name, peaks[name]) if peaks[name] >= GROWTH_NOISE_BYTES else None


class ReportHooks:
    """Puts the verdict on the call's report and, on xdist workers, the record
    on the teardown report, encoded (xdist serialises it like the rest of the
    report; see :func:`~pytest_automem.results.records.encode_record`): a full
    record, or the summary keys of a flag-only call measured in brief."""

    def __init__(self, settings: RunSettings, runtest: RuntestHooks) -> None:
        self.settings = settings
        self._runtest = runtest

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        # The outermost wrapper: pytest's xfail handling has marked the
        # report (``wasxfail``) by the time it comes back here.
        report = yield
        if call.when == "call":
            state = self._runtest.state_of(item)
            if state is not None and state.verdict is not None:
                self._annotate_call_report(item, state, report)
        elif call.when == "teardown" and self.settings.is_worker:
            record = self._runtest.take_record(item)  # complete once teardown is measured
            if record is not None:
                report.automem = encode_record(record)  # type: ignore[attr-defined]
        return report

    def _annotate_call_report(
        self, item: pytest.Item, state: ItemState, report: pytest.TestReport
    ) -> None:
        verdict = state.verdict
        assert verdict is not None
        if getattr(report, "wasxfail", None) is not None:
            if state.failed_on_memory:
                self._runtest.expect_failure(item, state)
        elif not verdict.passed:
            text = f"{verdict.failure_message()}\n\n{verdict_text(state)}"
            if report.failed and state.failed_on_memory:
                report.longrepr = text
            else:
                report.sections.append(("automem: memory budget exceeded too", text))
        if self._carries_properties(state):
            from ..outputs.junit import junit_properties

            state.record = record_of(state)
            item.user_properties.extend(junit_properties(state.record))

    def _carries_properties(self, state: ItemState) -> bool:
        """Whether the test's JUnit case gets ``automem.*`` properties.

        By default (``budgeted``) only tests with a budget or an automem
        fixture, and tests that failed on memory: the cases a reader looks
        at.  Properties on every test made a suite's JUnit file five times
        bigger, and pytest holds them in memory until the session ends
        (about 8 KB a test); the results file holds every test's figures.
        """
        settings = self.settings
        if not settings.junit or settings.junit_properties == "none":
            return False
        return settings.junit_properties == "all" or not (
            state.plan.flag_only and state.verdict is not None and state.verdict.passed
        )


# -- helpers ------------------------------------------------------------------


def _peak_limit_bytes(budget: MemoryBudget | None) -> int | None:
    """Where the call's stacks are dumped: above its peak budget, if it has one."""
    return None if budget is None else budget.peak_bytes


def _crossing_place(dumps: tuple[StackDump, ...] | None) -> str | None:
    """Where the call was when it crossed its peak budget (only dumped then)."""
    if not dumps:
        return None
    from ..investigator.peak_location import crossing_place

    return crossing_place(dumps)


def _peak_stacks(
    budget: MemoryBudget | None,
    dumps: tuple[StackDump, ...] | None,
    attribution: Attribution | None,
) -> PeakStacks | None:
    """The dumps of a call whose stacks were recorded, for the investigator,
    with the sites alive at the last dump when the call was traced."""
    limit = _peak_limit_bytes(budget)
    if dumps is None or limit is None:
        return None
    from ..investigator.overall import PeakStacks

    sites = attribution.peak_sites if attribution is not None else ()
    return PeakStacks(dumps=dumps, limit_bytes=limit, sites_alive=sites)


def _trace_peak_above_bytes(
    budget: MemoryBudget | None, thresholds: PressureThresholds
) -> int | None:
    """How much cached allocator memory makes a test's call traced, or None.

    Only a peak can hide in memory the allocators cached (growth is read
    from their live bytes): when more is cached than
    :data:`_TRACE_PEAK_SHARE` of the smallest peak limit the budget sets
    (its ``peak``, or the boundary its ``pressure`` allows up to), the
    call is traced so that memory counts (:mod:`pytest_automem.measure.allocator`).
    """
    if budget is None:
        return None
    limits = [budget.peak_bytes] if budget.peak_bytes is not None else []
    if budget.pressure is not None:
        above = thresholds.boundary_above(budget.pressure)
        if above is not None:
            limits.append(above)
    return int(min(limits) * _TRACE_PEAK_SHARE) if limits else None


def _thresholds_for(item: pytest.Item, default: PressureThresholds) -> PressureThresholds:
    value = getattr(item, "funcargs", {}).get("pressure_thresholds")
    return value if isinstance(value, PressureThresholds) else default


def _attribute_leaks(state: ItemState) -> None:
    """Trace a few more steps of each scenario that went over its leak budget."""
    from ..investigator.leaks import attribute_scenario
    from ..investigator.overall import SubjectAttribution

    for scenario, automaton, result in state.to_attribute:
        attribution = attribute_scenario(
            scenario, automaton, start_step=result.warmup + result.iterations
        )
        measured = round(result.leak_bytes_per_iteration * attribution.iterations)
        state.attributions.append(
            SubjectAttribution(f"scenario {result.name}", attribution, measured)
        )
    state.to_attribute.clear()


def _automaton_of(item: pytest.Item) -> Automaton | None:
    """The automaton the test got from the ``automaton`` fixture, if any.

    Its objects and history are checked too (duplicate IDs, large arrays,
    an unbounded history): that is often *why* the test grew.
    """
    value = getattr(item, "funcargs", {}).get("automaton")
    return value if hasattr(value, "execution_history") else None


def _worth_investigating(state: ItemState, window: WindowResult) -> bool:
    """The investigator runs where it can say something: a failure, a long
    window (growth-rate findings need :data:`_FULL_CALL_AFTER_S`), or scenario results."""
    failed = state.verdict is not None and not state.verdict.passed
    interesting = bool(state.scenarios or state.attributions)
    return failed or interesting or window.duration_s >= _FULL_CALL_AFTER_S


def _keep_samples(
    folder: Path,
    nodeid: str,
    state: ItemState,
    window: WindowResult,
    opened_ns: int,
    recorded: tuple[RecordedEvent, ...],
    recorder: CollectionRecorder | None,
) -> str | None:
    """Write the call's samples and events (:mod:`.samples`); the file's name."""
    from .samples import snapshot_events, write_test_samples

    events = snapshot_events(
        window,
        opened_ns,
        recorded,
        call_started_ns=recorder.call_started_ns if recorder is not None else 0,
        call_ended_ns=recorder.call_ended_ns if recorder is not None else 0,
        scenarios=state.scenarios,
    )
    verdict = state.verdict
    header: dict[str, Any] = {
        "verdict": verdict.name if verdict is not None else "pass",
        "budget": state.plan.budget.to_dict() if state.plan.budget is not None else None,
        "highest_sample_rss_bytes": max(window.sample_rss_bytes, default=None),
    }
    if recorder is not None and recorder.dropped:
        header["events_dropped"] = recorder.dropped
    return write_test_samples(folder, nodeid, window, events, header)


def _scenario_summary(result: ScenarioResult) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("measurement", None)
    return data
