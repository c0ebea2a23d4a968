"""The per-session plugin object: settings, the monitor, collection, outputs.

Registered by :mod:`pytest_automem.pytest_plugin.plugin` at configure time (by name, so
other plugins and tests can find it) and unregistered at unconfigure.  It
owns the session's one :class:`MemoryMonitor`, started when collection
finds a test to monitor: a session that monitors nothing starts no sampler
and registers no per-test hook.  What each test gets is decided at collection
(:mod:`pytest_automem.pytest_plugin.plan`); what happens as it runs is in
:mod:`pytest_automem.pytest_plugin.runtest`, imported only when something is monitored.

Records reach this object directly, or on an xdist controller as a plain
dict on each teardown report (``report.automem``).  At the end of the
session it writes the results file, attaches reports to JUnit and prints
the summary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..results.records import RecordStore
from .plan import PLAN_KEY, ItemPlan, MarkerError, is_current, plan_item

if TYPE_CHECKING:
    from ..automaton.scenario import Scenario, ScenarioResult
    from ..automaton.store import Automaton
    from ..measure.garbage import GcMode
    from ..measure.monitor import MeasurementWindow, MemoryMonitor
    from ..measure.pressure import PressureThresholds
    from ..verdicts.budget import MemoryBudget
    from ..verdicts.gate import GateRules
    from .runtest import ItemState, RunSettings, RuntestHooks
    from .samples import SamplesSettings

__all__ = ["AutomemSession"]

RUNTEST_PLUGIN_NAME = "automem-runtest"
REPORT_PLUGIN_NAME = "automem-reports"
WORKER_RECORDS_PLUGIN_NAME = "automem-worker-records"
#: The key under which an xdist worker hands its sampler kind to the controller.
WORKER_SAMPLER_KIND = "automem_sampler_kind"
#: The key under which an xdist worker hands over how many budgets of the
#: budgets file matched none of the tests it collected (every worker collects all).
WORKER_UNUSED_BUDGETS = "automem_unused_budgets"


class RecordsFromWorkers:
    """On an xdist controller: collects the records workers send on teardown reports.

    Each record is taken *off* its report: pytest's terminal reporter keeps
    every report until the session ends, and a record left on it cost ~3 KB
    a test there.
    """

    def __init__(self, records: RecordStore, samples: SamplesSettings | None) -> None:
        self._records = records
        self._samples = samples
        #: From the first worker down: the budgets file's entries no test matched.
        self.unused_budgets: int | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        line = report.__dict__.pop("automem", None)
        if report.when == "teardown" and isinstance(line, str):
            self._records.add_encoded(report.nodeid, line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Each worker writes its tests' samples to the controller's folder."""
        if self._samples is not None:
            from .samples import WORKER_SAMPLES

            node.workerinput[WORKER_SAMPLES] = self._samples.to_worker_input()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker's sampler kind and unmatched budgets: lean records leave the
        kind out, and the controller samples and collects nothing itself, yet
        the results file states the one and the summary the other."""
        output = getattr(node, "workeroutput", {})
        kind = output.get(WORKER_SAMPLER_KIND)
        if isinstance(kind, str) and self._records.sampler_kind is None:
            self._records.sampler_kind = kind
        unused = output.get(WORKER_UNUSED_BUDGETS)
        if type(unused) is int and self.unused_budgets is None:
            self.unused_budgets = unused


class AutomemSession:
    """Hooks of a pytest session with pytest-automem active."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        monitor_all: bool,
        interval_ms: float,
        thresholds: PressureThresholds,
        idle_interval_ms: float | None = None,
        gc_mode: GcMode,
        junit_properties: str,
        trace_all: bool = False,
        fresh_allocator: str = "budgeted",
        step_summary: bool = True,
        rerun_failures: bool = True,
        file_budgets: Mapping[str, MemoryBudget] | None = None,
        baseline_records: Mapping[str, Mapping[str, Any]] | None = None,
        baseline_rules: GateRules | None = None,
        samples: SamplesSettings | None = None,
    ) -> None:
        self.config = config
        self.monitor_all = monitor_all
        self.interval_ms = interval_ms
        #: The sampler's rest between windows (ini ``automem_idle_interval``).
        self.idle_interval_ms = idle_interval_ms
        self.thresholds = thresholds
        self.gc_mode = gc_mode
        self.junit_properties = junit_properties
        self.trace_all = trace_all
        self.fresh_allocator = fresh_allocator
        #: Re-run a call over its growth budget under tracing (ini ``automem_rerun_failures``).
        self.rerun_failures = rerun_failures
        #: Append to ``$GITHUB_STEP_SUMMARY`` (ini ``automem_step_summary``).
        self.step_summary = step_summary
        #: The budgets file's budgets by node id (ini ``automem_budgets``).
        self.file_budgets = file_budgets or {}
        #: The baseline's records by node id (``--automem-baseline``) and the
        #: rule each test in it is compared by.
        self.baseline_records = baseline_records or {}
        self.baseline_rules = baseline_rules
        #: Where and whose call samples are kept (:mod:`.samples`); None: nobody's.
        self.samples = samples
        #: Budgets of the file that no test collected in this run matched.
        self.unused_budgets = 0
        self._from_workers: RecordsFromWorkers | None = None
        options = config.option
        #: Records need every results key: an output reads them all (see
        #: RunSettings).  An xdist worker sees its controller's command line,
        #: so it knows whether the controller will write one.
        #: The file the records are written to as a whole document: the
        #: results file, else the dashboard, which renders the same document.
        document_path = options.automem_json or options.automem_html
        self.records_need_all_keys = bool(document_path or getattr(options, "xmlpath", None))
        #: The finished records (spooled to disk next to the results file).
        self.records = RecordStore(
            None if self.is_worker or not document_path else _folder_of(document_path)
        )
        self.written: list[tuple[str, str]] = []
        self._monitor: MemoryMonitor | None = None
        self._runtest: RuntestHooks | None = None

    # -- the sampler ---------------------------------------------------------

    @property
    def monitor(self) -> MemoryMonitor:
        """The session's monitor, started on first use (without waiting for a sample)."""
        if self._monitor is None:
            from ..measure.monitor import MemoryMonitor

            self._monitor = MemoryMonitor(
                interval_ms=self.interval_ms,
                idle_interval_ms=self.idle_interval_ms,
                record_stacks=True,
            ).start(wait=False)
        return self._monitor

    def start(self) -> None:
        """Called at configure: an xdist controller listens for the workers' records.

        Only there: every other session would pay for a hook call per report.
        """
        if self.is_xdist_controller:
            self._from_workers = RecordsFromWorkers(self.records, self.samples)
            self.config.pluginmanager.register(self._from_workers, WORKER_RECORDS_PLUGIN_NAME)

    def close(self, *, wait: bool = True) -> None:
        """Unregister the per-test hooks and stop the sampler.

        At session finish the sampler is killed without waiting for it to
        exit (``wait=False``); the close at unconfigure, after the summary,
        reaps it.
        """
        for name in (RUNTEST_PLUGIN_NAME, REPORT_PLUGIN_NAME, WORKER_RECORDS_PLUGIN_NAME):
            hooks = self.config.pluginmanager.get_plugin(name)
            if hooks is not None:
                self.config.pluginmanager.unregister(hooks, name)
        self._runtest = None
        if self._monitor is not None:
            self._monitor.close(wait=wait)
            if wait:
                self._monitor = None
        if wait and self.samples is not None and not self.is_worker:
            self.samples.remove_temporary()  # after every output that read it

    # -- collection ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        """Plan tests as their collector (a module, a class) reports them.

        A bad budget then fails that collector like any collection error,
        naming the test and the argument.  Once per collector, not once per
        name in a module (as ``pytest_pycollect_makeitem`` would be).
        """
        report = yield
        if report.passed:
            try:
                for node in report.result:
                    if isinstance(node, pytest.Item):
                        self._plan(node)
            except MarkerError as exc:
                return pytest.CollectReport(report.nodeid, "failed", str(exc), [])
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """If anything will be monitored: register the per-test hooks, start the sampler.

        A session that monitors nothing thus pays for no per-test hook at
        all.  The report hook is added only where a report can need it: some
        test can get a verdict, or records must travel with reports (xdist)
        or become JUnit properties.  The sampler starts now, without waiting
        for its first sample: it warms up while the first tests run.  With
        ``--collect-only`` nothing starts (budgets are still checked).
        """
        if self.is_xdist_controller:  # it runs no tests itself
            return
        if self.file_budgets:
            used = sum(item.nodeid in self.file_budgets for item in session.items)
            self.unused_budgets = len(self.file_budgets) - used
        monitored = self._monitored_plans(session.items)
        if not monitored or self.config.option.collectonly:  # --co still checks budgets
            return
        from .runtest import PhasedRuntestHooks, RuntestHooks, UnsentRecords  # only when monitoring

        settings = self.run_settings()
        manager = self.config.pluginmanager
        if self._runtest is None:
            hooks = PhasedRuntestHooks if any(p.measure_phases for p in monitored) else RuntestHooks
            records = UnsentRecords() if self.is_worker else self.records
            self._runtest = hooks(
                settings, self.monitor, self.current_plan, records, self._register_reports
            )
            manager.register(self._runtest, RUNTEST_PLUGIN_NAME)
        reports_needed = (
            settings.is_worker
            or (settings.junit and settings.junit_properties == "all")
            or not all(plan.flag_only for plan in monitored)
        )
        if reports_needed:
            self._register_reports()

    def _register_reports(self) -> None:
        """Register the report hooks, once: at collection when a report can
        need them, else when the first test with a budget runs (a fixture
        may add one).  A session whose tests ``--automem`` alone monitors
        has nothing to put on a report, and three report wrappers a test
        are a cost there."""
        manager = self.config.pluginmanager
        if self._runtest is None or manager.has_plugin(REPORT_PLUGIN_NAME):
            return
        from .runtest import ReportHooks

        manager.register(ReportHooks(self._runtest.settings, self._runtest), REPORT_PLUGIN_NAME)

    def _monitored_plans(self, items: list[pytest.Item]) -> list[ItemPlan]:
        """The plans of the monitored items, planning again any item no
        collector reported (one a plugin added) or whose budget mark changed
        since (``pytest_collection_modifyitems`` added one)."""
        monitored = []
        for item in items:
            try:
                plan = self.current_plan(item)
            except MarkerError as exc:
                raise pytest.UsageError(str(exc)) from None
            if plan.monitored:
                monitored.append(plan)
        return monitored

    def current_plan(self, item: pytest.Item) -> ItemPlan:
        """``item``'s plan for the mark it carries now, made again if that
        mark changed since it was planned (raises MarkerError)."""
        plan = item.stash.get(PLAN_KEY, None)
        if plan is not None and is_current(plan, item):
            return plan
        return self._plan(item)

    def _plan(self, item: pytest.Item) -> ItemPlan:
        """Plan ``item`` with the session's settings and keep the plan in its
        stash (raises MarkerError)."""
        plan = plan_item(
            item,
            monitor_all=self.monitor_all,
            flag_only_phases=self.records_need_all_keys,
            file_budgets=self.file_budgets,
            baseline_records=self.baseline_records,
        )
        item.stash[PLAN_KEY] = plan
        return plan

    def run_settings(self) -> RunSettings:
        from .runtest import RunSettings

        options = self.config.option
        junit = bool(getattr(options, "xmlpath", None))
        return RunSettings(
            thresholds=self.thresholds,
            gc_mode=self.gc_mode,
            fresh_allocator=self.fresh_allocator,
            rerun_failures=self.rerun_failures,
            trace_all=self.trace_all,
            junit_properties=self.junit_properties,
            junit=junit,
            is_worker=self.is_worker,
            records_need_all_keys=self.records_need_all_keys,
            baseline_rules=self.baseline_rules,
            samples=self.samples,
        )

    # -- results -------------------------------------------------------------

    def record_scenario(
        self, item: pytest.Item, scenario: Scenario, automaton: Automaton, result: ScenarioResult
    ) -> None:
        """Called by the ``run_scenario`` fixture: judged with the test's budget.

        A result over its ``leak_per_iteration`` budget is attributed once
        the call's window has closed (tracing's own memory must not count
        against the test): the scenario then runs a few more steps on the
        same automaton under tracing, paid only where a verdict needs it.
        Whether it is over is the verdict's own rule
        (:func:`~pytest_automem.verdicts.budget.leak_violation`), asked now
        because only such runs keep their automaton until then.
        """
        state = self._state_of(item)
        if state is None:
            return
        from ..verdicts.budget import leak_violation

        state.scenarios.append(result)
        if leak_violation(state.budget, result) is not None:
            state.to_attribute.append((scenario, automaton, result))

    def current_window(self, item: pytest.Item) -> MeasurementWindow | None:
        state = self._state_of(item)
        return state.window if state is not None else None

    def _state_of(self, item: pytest.Item) -> ItemState | None:
        return self._runtest.state_of(item) if self._runtest is not None else None

    def memory_failures(self) -> dict[str, dict[str, Any]]:
        return self.records.failures

    # -- end of session ------------------------------------------------------

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def is_xdist_controller(self) -> bool:
        """The xdist process that hands tests to workers and runs none itself."""
        return getattr(self.config.option, "dist", "no") != "no" and not self.is_worker

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the outputs once pytest's own (JUnit included) are written."""
        if self.is_worker:
            output = self.config.workeroutput  # type: ignore[attr-defined]
            output[WORKER_UNUSED_BUDGETS] = self.unused_budgets
            if self._monitor is not None:
                output[WORKER_SAMPLER_KIND] = self._monitor.sampler_kind
        self.close(wait=False)
        options = self.config.option
        if self.is_worker or not (self.records or options.automem_json or options.automem_html):
            return
        from ..outputs.session_outputs import (
            append_step_summary,
            junit_attachment,
            step_summary_markdown,
            write_report_files,
        )

        failures = self.memory_failures()
        report_files: dict[str, Path] = {}
        if options.automem_report_dir:  # without failures too: it removes stale temps
            report_files = write_report_files(Path(options.automem_report_dir), failures)
        kept = self._kept_samples_folder
        if kept is not None:
            from ..base.atomic import sync_folder

            sync_folder(kept)  # durable before the results file names them
        if options.automem_json:
            self.records.write_results(options.automem_json, self._session_info())
            self.written.append(("results", str(options.automem_json)))
        if kept is not None and kept.is_dir():
            self.written.append(("samples", _as_given(kept)))
        if options.automem_html:
            self._write_dashboard(options.automem_html)
        xml_path = getattr(options, "xmlpath", None)
        if xml_path and failures and Path(xml_path).exists():
            from ..outputs.junit import attach_to_junit

            attach_to_junit(
                xml_path,
                [
                    junit_attachment(nodeid, record, report_files.get(nodeid))
                    for nodeid, record in failures.items()
                ],
                prefix=getattr(options, "junitprefix", None) or None,
            )
        if xml_path:
            from ..base.atomic import remove_stale_temps

            remove_stale_temps(xml_path)  # of our rewrite, killed in an earlier run
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path and self.records and self.step_summary:
            try:
                append_step_summary(summary_path, step_summary_markdown(self.records))
            except OSError as exc:  # a link, a FIFO, no such folder: the CI's file, not ours
                self._warn_line(
                    "automem: WARNING: step summary not written: "
                    f"GITHUB_STEP_SUMMARY={summary_path}: {exc.strerror or exc}"
                )

    def _write_dashboard(self, path: str) -> None:
        """The dashboard of the document the results file holds (or would).

        Its curves are read from the session's samples folder; a temporary
        one (``--automem-html`` alone) is removed only after this."""
        from ..outputs.dashboard import DashboardRun, write_dashboard

        document = self.records.results_document(self._session_info())
        folder = self.samples.folder if self.samples is not None else None
        write_dashboard(path, [DashboardRun(os.path.basename(path), document, folder)])
        self.written.append(("dashboard", path))

    def _warn_line(self, line: str) -> None:
        """One line on the terminal, never an exception or a Python warning.

        An output the CI owns must not change the tests' outcome or pytest's
        exit code, and ``-W error`` (common in CI) would turn a warning into
        exactly that.
        """
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, yellow=True)
        else:
            print(line, file=sys.stderr)

    def _session_info(self) -> dict[str, Any]:
        info = {
            "monitor_all": self.monitor_all,
            "interval_target_ms": self.interval_ms,
            "idle_interval_ms": self._resting_interval_ms(),
            "thresholds_bytes": list(self.thresholds.boundaries()),
            "gc_mode": self.gc_mode.value,
            # An xdist controller samples nothing itself: its workers' records say.
            "sampler_kind": (self._monitor.sampler_kind if self._monitor is not None else None)
            or self.records.sampler_kind,
            "tests_monitored": len(self.records),
            "memory_failures": len(self.memory_failures()),
        }
        folder = self._kept_samples_folder
        if folder is not None:
            from ..results.results_file import samples_dir_entry

            options = self.config.option
            # Relative to the file the document goes to: the results file, else the dashboard.
            info["samples_dir"] = samples_dir_entry(
                folder, options.automem_json or options.automem_html
            )
        return info

    def _resting_interval_ms(self) -> float | None:
        """The sampler's interval between windows; None where it never rests.

        The monitor's own answer where this process sampled (it never rests
        without a kernel peak); an xdist controller, which samples nothing,
        states what its workers were configured with.
        """
        if self._monitor is not None:
            return self._monitor.resting_interval_ms
        idle = self.idle_interval_ms
        return idle if idle is not None and idle > self.interval_ms else None

    @property
    def _kept_samples_folder(self) -> Path | None:
        """The samples folder the document names; None without one, or for a
        temporary one (removed at the session's end: nothing may point at it)."""
        if self.samples is None or self.samples.temporary:
            return None
        return self.samples.folder

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        if self.records:
            from ..outputs.session_outputs import summary_lines

            lines = summary_lines(self.records, verbosity=self.config.get_verbosity())
            terminalreporter.section("automem: memory")
            for line in lines:
                terminalreporter.line(line)
            if self.config.get_verbosity() >= 0:
                for what, path in self.written:
                    terminalreporter.line(f"automem {what} written to {path}")
        unused = self.unused_budgets
        if self._from_workers is not None and self._from_workers.unused_budgets:
            unused = self._from_workers.unused_budgets
        if unused:
            # Tests renamed or deleted since the file was made, or deselected.
            terminalreporter.write_line(
                f"automem: {unused} of {len(self.file_budgets)} budgets in "
                "ini automem_budgets matched no test in this run",
                yellow=True,
            )


def _folder_of(path: str) -> str:
    """The folder a results file goes to (its records are spooled there)."""
    return os.path.dirname(os.path.abspath(path))


def _as_given(folder: Path) -> str:
    """A folder as the user would name it: relative to the current folder when inside it."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)
