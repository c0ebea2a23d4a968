"""The pytest surface: options, ini settings, the marker and the fixtures.

Kept thin (the pytest-xdist pattern): settings are parsed here, once, and
handed to :class:`pytest_automem.pytest_plugin.session.AutomemSession`, which holds the
hooks.  Nothing heavy is imported until pytest configures the session.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from ..base.defaults import (
    DEFAULT_IDLE_INTERVAL_TEXT,
    DEFAULT_INTERVAL_TEXT,
    DEFAULT_THRESHOLDS_TEXT,
    GATE_MAX_INCREASE_PEAK,
    GATE_MIN_DELTA_PEAK_BYTES,
    INTERVAL_RANGE_TEXT,
)
from ..base.units import format_size
from ..measure.pressure import PressureThresholds

if TYPE_CHECKING:
    from ..automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig
    from ..automaton.scenario import Scenario, ScenarioResult
    from ..automaton.spawn_results import SpawnResult
    from ..automaton.store import Automaton
    from ..measure.monitor import MeasurementWindow
    from ..verdicts.budget import MemoryBudget
    from ..verdicts.gate import GateRules
    from .samples import SamplesSettings
    from .session import AutomemSession

PLUGIN_NAME = "automem-session"
FRESH_ALLOCATOR_CHOICES = ("budgeted", "always", "never")
#: ini ``automem_junit_properties``: which tests carry ``automem.*`` properties.
JUNIT_PROPERTIES_CHOICES = ("budgeted", "all", "none")
SESSION_KEY = pytest.StashKey["AutomemSession"]()
#: What pytest accepts for a ``bool`` ini setting.
FLAG_VALUES = "true or false (also yes/no, on/off, 1/0)"

T = TypeVar("T")

#: The gate's defaults as the baseline options' help states them.
_DEFAULT_INCREASE_TEXT = f"{GATE_MAX_INCREASE_PEAK:.0%}"
_DEFAULT_MIN_INCREASE_TEXT = format_size(GATE_MIN_DELTA_PEAK_BYTES).replace(" ", "")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("automem", "memory budgets and monitoring (pytest-automem)")
    group.addoption(
        "--automem",
        action="store_true",
        default=False,
        help="monitor every test's memory (default: only tests with a memory_budget marker "
        "or an automem fixture)",
    )
    group.addoption(
        "--automem-interval",
        default=None,
        metavar="DURATION",
        help=f"memory sampling interval, {INTERVAL_RANGE_TEXT}; a bare number is ms "
        f"(default: ini automem_interval, {DEFAULT_INTERVAL_TEXT})",
    )
    group.addoption(
        "--automem-json",
        default=None,
        metavar="PATH",
        help="write every monitored test's memory results to this JSON file",
    )
    group.addoption(
        "--automem-html",
        default=None,
        metavar="PATH",
        help="write an HTML dashboard of the monitored tests (the document --automem-json "
        "writes, with memory curves where samples were kept) to this file",
    )
    group.addoption(
        "--automem-samples",
        default=None,
        metavar="DIR",
        help="keep every monitored test's memory over time (downsampled, peak kept, with its "
        "GC and trim events) as one snapshot file per test in this folder (default: ini "
        "automem_samples; without either, only failing and budgeted tests' beside the "
        "results file)",
    )
    group.addoption(
        "--automem-trace",
        action="store_true",
        default=False,
        help="trace allocations of monitored tests (tracemalloc, 12-80x slower) to name "
        "the lines that retained memory",
    )
    group.addoption(
        "--automem-report-dir",
        default=None,
        metavar="DIR",
        help="write each memory failure's report to a file here (linked from JUnit)",
    )
    group.addoption(
        "--automem-baseline",
        default=None,
        metavar="PATH",
        help="fail each test whose memory regressed against its record in this results "
        "file (automem baseline update), as automem gate judges it (default: ini "
        "automem_baseline)",
    )
    group.addoption(
        "--automem-fail-on-increase",
        default=None,
        metavar="PCT",
        help="with --automem-baseline: the increase of peak and growth tolerated, as a share "
        # argparse formats help with %: a literal percent sign is written twice.
        "of the baseline figure (default: ini automem_fail_on_increase, "
        f"{_DEFAULT_INCREASE_TEXT.replace('%', '%%')})",
    )
    group.addoption(
        "--automem-min-increase",
        default=None,
        metavar="SIZE",
        help="with --automem-baseline: an increase of peak or growth up to this size is never "
        f"a regression (default: ini automem_min_increase, {_DEFAULT_MIN_INCREASE_TEXT})",
    )
    parser.addini(
        "automem_thresholds",
        "where MEDIUM, HIGH and CRITICAL memory pressure begin, e.g. " + DEFAULT_THRESHOLDS_TEXT,
        default=DEFAULT_THRESHOLDS_TEXT,
    )
    parser.addini(
        "automem_interval",
        f"memory sampling interval, {INTERVAL_RANGE_TEXT}; a bare number is ms "
        f"(default {DEFAULT_INTERVAL_TEXT})",
        default=DEFAULT_INTERVAL_TEXT,
    )
    parser.addini(
        "automem_idle_interval",
        "the sampler's interval between windows that read every sample, "
        f"{INTERVAL_RANGE_TEXT}; at or below automem_interval it never rests "
        f"(default {DEFAULT_IDLE_INTERVAL_TEXT})",
        default=DEFAULT_IDLE_INTERVAL_TEXT,
    )
    parser.addini(
        "automem_samples",
        "a folder, relative to the ini file: every monitored test's memory over time is kept "
        "there as one snapshot file per test (as --automem-samples)",
        default="",
    )
    parser.addini(
        "automem_gc",
        "garbage collection at measurement points: auto (young unless needed), full, off",
        default="auto",
    )
    parser.addini(
        "automem_fresh_allocator",
        "hand the C allocator's cached memory back before each call so peaks cannot hide "
        "in it: budgeted (tests with a memory_budget, default), always, never",
        default="budgeted",
    )
    parser.addini(
        "automem_rerun_failures",
        "run a call that fails its growth budget once more under tracing, to name the lines "
        "that kept the memory (true or false)",
        default="true",
    )
    parser.addini(
        "automem_step_summary",
        "append a Markdown memory summary to $GITHUB_STEP_SUMMARY when CI sets it (true or false)",
        default="true",
    )
    parser.addini(
        "automem_junit_properties",
        "which JUnit test cases carry automem.* properties: budgeted (tests with a budget "
        "or a memory failure), all, or none (for strict-schema readers)",
        default="budgeted",
    )
    parser.addini(
        "automem_budgets",
        "a budgets file (automem budgets suggest), relative to the ini file: each test in it "
        "is judged as if it carried memory_budget(...) with its values; a marker wins",
        default="",
    )
    parser.addini(
        "automem_baseline",
        "a results file (automem baseline update), relative to the ini file: each test in it "
        "fails when its memory regressed against its record there",
        default="",
    )
    parser.addini(
        "automem_fail_on_increase",
        "the increase of peak and growth over the baseline tolerated, as a share of the "
        f"baseline figure (default {_DEFAULT_INCREASE_TEXT})",
        default=_DEFAULT_INCREASE_TEXT,
    )
    parser.addini(
        "automem_min_increase",
        "an increase of peak or growth over the baseline up to this size is never a "
        f"regression (default {_DEFAULT_MIN_INCREASE_TEXT})",
        default=_DEFAULT_MIN_INCREASE_TEXT,
    )


def _setting(config: pytest.Config, option: str | None, ini: str) -> str:
    """The command-line value if given, else the ini value (never a CLI default)."""
    value = config.getoption(option) if option else None
    return str(value if value is not None else config.getini(ini))


def pytest_configure(config: pytest.Config) -> None:
    """Parse every setting and check every output path now.

    A typo or an unwritable path then fails the run with a usage error that
    names the option, before any test runs and before a sampler starts.
    """
    config.addinivalue_line(
        "markers",
        "memory_budget(peak=, growth=, rate=, pressure=, leak_per_iteration=, trace=False): "
        "fail the test if its memory exceeds these limits, at least one given "
        "(sizes like '64MB', rates like '1MB/s', pressure a level name) — pytest-automem",
    )
    from ..base.units import parse_interval_ms
    from ..measure.garbage import GcMode
    from .session import AutomemSession

    interval_option = (
        "--automem-interval"
        if config.getoption("automem_interval") is not None
        else "ini automem_interval"
    )
    interval_ms = _parsed(
        interval_option, parse_interval_ms, _setting(config, "automem_interval", "automem_interval")
    )
    idle_interval_ms = _parsed(
        "ini automem_idle_interval",
        parse_interval_ms,
        _setting(config, None, "automem_idle_interval"),
    )
    thresholds = _parsed(
        "ini automem_thresholds",
        PressureThresholds.parse,
        _setting(config, None, "automem_thresholds"),
    )
    gc_mode = _parsed("ini automem_gc", GcMode.parse, _setting(config, None, "automem_gc"))
    fresh_allocator = _fresh_allocator_setting(config)
    junit_properties = _junit_properties_setting(config)
    step_summary = _ini_flag(config, "automem_step_summary")
    _check_output_paths(config)
    samples = _samples_settings(config)
    session = AutomemSession(
        config,
        monitor_all=bool(config.getoption("automem")),
        interval_ms=interval_ms,
        idle_interval_ms=idle_interval_ms,
        thresholds=thresholds,
        gc_mode=gc_mode,
        junit_properties=junit_properties,
        trace_all=bool(config.getoption("automem_trace")),
        fresh_allocator=fresh_allocator,
        step_summary=step_summary,
        rerun_failures=_ini_flag(config, "automem_rerun_failures"),
        file_budgets=_file_budgets(config),
        baseline_records=_baseline_records(config),
        baseline_rules=_baseline_rules(config),
        samples=samples,
    )
    if samples is not None:
        from .samples import SAMPLES_DIR_KEY

        config.stash[SAMPLES_DIR_KEY] = samples.folder
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, PLUGIN_NAME)
    session.start()


def _parsed(source: str, parse: Callable[[str], T], text: str) -> T:
    """``parse(text)``, its ValueError as a usage error naming ``source``."""
    try:
        return parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


_TRUE = frozenset({"true", "yes", "y", "t", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "off", "0"})


def _ini_flag(config: pytest.Config, name: str) -> bool:
    """A true/false ini setting, parsed here: pytest's own ``bool`` type
    reports a bad value without the setting's name, and later versions
    raise it before the plugin can add one."""
    value = str(config.getini(name)).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise pytest.UsageError(f"ini {name}: invalid value {value!r}: expected {FLAG_VALUES}")


def _fresh_allocator_setting(config: pytest.Config) -> str:
    value = str(config.getini("automem_fresh_allocator")).strip().lower()
    if value not in FRESH_ALLOCATOR_CHOICES:
        choices = ", ".join(FRESH_ALLOCATOR_CHOICES)
        raise pytest.UsageError(
            f"ini automem_fresh_allocator: invalid value {value!r}: expected {choices}"
        )
    return value


def _junit_properties_setting(config: pytest.Config) -> str:
    """``budgeted``, ``all`` or ``none``; ``true`` and ``false`` (the
    setting's values before it had three) mean ``all`` and ``none``."""
    name = "automem_junit_properties"
    value = str(config.getini(name)).strip().lower()
    if value in JUNIT_PROPERTIES_CHOICES:
        return value
    if value in _TRUE or value in _FALSE:
        return "all" if value in _TRUE else "none"
    choices = ", ".join(JUNIT_PROPERTIES_CHOICES)
    raise pytest.UsageError(
        f"ini {name}: invalid value {value!r}: expected {choices} (or true/false)"
    )


def _file_budgets(config: pytest.Config) -> dict[str, MemoryBudget]:
    """The budgets of the file ini ``automem_budgets`` names, read once.

    A bad file stops the run before any test, naming the ini file, the
    budgets file and the line at fault.
    """
    text = str(config.getini("automem_budgets")).strip()
    if not text:
        return {}
    from ..results.budgets_file import BudgetsFormatError, read_budgets
    from ..verdicts.budget import MemoryBudget

    setting = f"ini automem_budgets in {config.inipath or 'the command line'}"
    budgets = _read_setting_file(
        setting, _ini_relative(config, text), read_budgets, BudgetsFormatError
    )
    return {
        nodeid: MemoryBudget(
            peak_bytes=budget.peak_bytes,
            growth_bytes=budget.growth_bytes,
            leak_bytes_per_iteration=budget.leak_bytes_per_iteration,
        )
        for nodeid, budget in budgets.items()
    }


def _ini_relative(config: pytest.Config, text: str) -> Path:
    """A path an ini setting gives: relative to the ini file."""
    folder = config.inipath.parent if config.inipath is not None else config.rootpath
    return folder / text


def _read_setting_file(
    setting: str, path: Path, read: Callable[[Path], T], error: type[ValueError]
) -> T:
    """``read(path)``; a missing file or bad content is a usage error naming ``setting``."""
    try:
        return read(path)
    except OSError as exc:
        raise pytest.UsageError(f"{setting}: {path}: {exc.strerror or exc}") from None
    except error as exc:
        raise pytest.UsageError(f"{setting}: {exc}") from None


def _source(config: pytest.Config, name: str) -> str:
    """How an error names a setting whose option and ini setting share
    ``name``: the option if given, else the ini setting."""
    if config.getoption(name) is not None:
        return "--" + name.replace("_", "-")
    return f"ini {name} in {config.inipath or 'the command line'}"


def _baseline_records(config: pytest.Config) -> dict[str, Any]:
    """The baseline's records by node id, read once (``--automem-baseline``).

    Under xdist each worker reads it too: the workers judge their tests.  A
    missing or malformed file stops the run before any test, naming the
    option (or ini setting), the file and the line at fault.
    """
    option = config.getoption("automem_baseline")
    text = str(option if option is not None else config.getini("automem_baseline")).strip()
    if not text:
        if option is not None:
            raise pytest.UsageError("--automem-baseline: needs a path")
        return {}
    from ..results.results_file import ResultsFormatError, read_results

    if option is not None:
        path, setting = Path(text), f"--automem-baseline={text}"
    else:
        path, setting = _ini_relative(config, text), _source(config, "automem_baseline")
    document = _read_setting_file(setting, path, read_results, ResultsFormatError)
    records: dict[str, Any] = document["tests"]
    return records


def _baseline_rules(config: pytest.Config) -> GateRules:
    """The gate's rules with peak's and growth's tolerance and floor as set.

    Parsed without a baseline too: a typo must not wait for the day a
    baseline is given.
    """
    from ..base.units import parse_percent_fraction, parse_size_bytes
    from ..verdicts.gate import GateRules, MetricRule

    fraction = _parsed(
        _source(config, "automem_fail_on_increase"),
        parse_percent_fraction,
        _setting(config, "automem_fail_on_increase", "automem_fail_on_increase"),
    )
    floor = _parsed(
        _source(config, "automem_min_increase"),
        parse_size_bytes,
        _setting(config, "automem_min_increase", "automem_min_increase"),
    )
    rule = MetricRule(fraction, floor)
    return GateRules(peak=rule, growth=rule)


def _check_output_paths(config: pytest.Config) -> None:
    """Fail now, not after the whole run, if an output cannot be written there.

    Only checks: the writers create missing folders when they write.  Under
    xdist the workers check too, which costs nothing and changes nothing.
    """
    json_path = config.getoption("automem_json")
    if json_path is not None:
        _check_file_target("--automem-json", json_path)
    html_path = config.getoption("automem_html")
    if html_path is not None:
        _check_file_target("--automem-html", html_path)
    report_dir = config.getoption("automem_report_dir")
    if report_dir is not None:
        _check_folder_target("--automem-report-dir", report_dir)
    _check_distinct_files(
        ("--junitxml", getattr(config.option, "xmlpath", None)),
        ("--automem-json", json_path),
        ("--automem-html", html_path),
    )


def _check_distinct_files(*outputs: tuple[str, str | None]) -> None:
    """Two outputs given one file: the later writer would replace the other's
    (the results file lost under the dashboard), so neither is written."""
    seen: dict[str, str] = {}
    for option, text in outputs:
        if not text:
            continue
        path = os.path.realpath(text)
        if path in seen:
            raise pytest.UsageError(
                f"{seen[path]} and {option}={text} name the same file; give each its own"
            )
        seen[path] = f"{option}={text}"


def _samples_settings(config: pytest.Config) -> SamplesSettings | None:
    """Where this session keeps tests' samples, and whose (:mod:`.samples`).

    ``--automem-samples`` (or ini ``automem_samples``): every monitored
    test's, in that folder.  Else, where an output shows them, failing and
    budgeted tests': beside the results file, or for the dashboard alone in
    a temporary folder.  An xdist worker writes where its controller said.
    A folder that cannot be one is a usage error naming the option, now.
    """
    from .samples import (
        WORKER_SAMPLES,
        SamplesSettings,
        auto_samples_folder,
        temporary_samples_folder,
    )

    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        given = worker_input.get(WORKER_SAMPLES)
        return SamplesSettings.from_worker_input(given) if given is not None else None
    option = config.getoption("automem_samples")
    ini = str(config.getini("automem_samples")).strip()
    if option is not None or ini:
        if option is not None:
            if not option.strip():
                raise pytest.UsageError("--automem-samples: needs a path")
            source, path = f"--automem-samples={option}", Path(option)
        else:
            source, path = _source(config, "automem_samples"), _ini_relative(config, ini)
        _check_samples_folder(source, path)
        return SamplesSettings(folder=path.absolute(), every_test=True)
    json_path = config.getoption("automem_json")
    if json_path is not None:
        folder = auto_samples_folder(json_path)
        _check_samples_folder(f"--automem-json={json_path}", folder)
        settings = SamplesSettings(folder=folder, every_test=False)
        settings.clear_stale()
        return settings
    if getattr(config.option, "automem_html", None):
        return SamplesSettings(folder=temporary_samples_folder(), every_test=False, temporary=True)
    return None


def _check_samples_folder(source: str, path: Path) -> None:
    """A samples folder must be a real folder (or creatable as one): a link
    there could send every test's file somewhere the user did not choose."""
    if path.is_symlink():
        raise pytest.UsageError(f"{source}: {path} is a link; give a folder")
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"{source}: {path} is a file; give a folder")
    _check_creatable(source, path.absolute())


def _check_file_target(option: str, text: str) -> None:
    path = _output_path(option, text)
    if path.is_dir():
        raise pytest.UsageError(f"{option}={text}: is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise pytest.UsageError(f"{option}={text}: the file is not writable")
    _check_creatable(f"{option}={text}", path.parent)


def _check_folder_target(option: str, text: str) -> None:
    path = _output_path(option, text)
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"{option}={text}: is a file; give a folder")
    _check_creatable(f"{option}={text}", path)


def _output_path(option: str, text: str) -> Path:
    if not text.strip():
        raise pytest.UsageError(f"{option}: needs a path")
    return Path(text).absolute()


def _check_creatable(source: str, folder: Path) -> None:
    """``folder`` exists or can be made: its nearest existing ancestor is a
    folder we may write in.  ``source`` names the setting (``--option=value``)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise pytest.UsageError(f"{source}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{source}: cannot write in {existing}")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session, PLUGIN_NAME)
        del config.stash[SESSION_KEY]


def _session(request: pytest.FixtureRequest) -> AutomemSession:
    return request.config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def pressure_thresholds(pytestconfig: pytest.Config) -> PressureThresholds:
    """Pressure thresholds (ini ``automem_thresholds``); override in a conftest."""
    return PressureThresholds.parse(str(pytestconfig.getini("automem_thresholds")))


class LiveMemory:
    """The running test's memory, as the ``memory_monitor`` fixture shows it.

    Reads the window of the phase now running (setup, call or teardown), so
    values are relative to that phase's baseline.
    """

    def __init__(self, session: AutomemSession, item: pytest.Item) -> None:
        self._session = session
        self._item = item

    @property
    def window(self) -> MeasurementWindow:
        window = self._session.current_window(self._item)
        if window is None:
            raise RuntimeError("memory_monitor is only live while its test runs")
        return window

    @property
    def current_bytes(self) -> int:
        """Memory now, above the phase's baseline."""
        return self.window.current_bytes()

    @property
    def peak_bytes(self) -> int:
        """Peak so far above the phase's baseline (the kernel's, where available)."""
        return self.window.peak_bytes()

    @property
    def samples(self) -> int:
        """Samples taken so far in this phase."""
        return len(self.window.samples())

    @property
    def pressure(self) -> Any:
        """Pressure level reached so far (judged on the peak)."""
        return self.window.max_pressure()

    @property
    def baseline_bytes(self) -> int:
        """Resident memory when the phase began (after garbage collection)."""
        return self.window.baseline_bytes


@pytest.fixture
def memory_monitor(request: pytest.FixtureRequest) -> LiveMemory:
    """Live view of this test's memory: current_bytes, peak_bytes, samples, pressure."""
    return LiveMemory(_session(request), request.node)


@pytest.fixture
def run_scenario(
    request: pytest.FixtureRequest, pressure_thresholds: PressureThresholds, tmp_path: Path
) -> Callable[..., ScenarioResult]:
    """``run_scenario(scenario, iterations=100, warmup=10, config=None, automaton=None)``.

    Runs under the session's monitor and this test's thresholds; the result
    is judged against the test's ``leak_per_iteration`` budget, and one over
    it is attributed to the lines that retained memory.  Without
    ``automaton=``, each call runs on a fresh automaton in ``tmp_path``
    (optimized when ``config=`` is given).
    """
    from ..automaton.policies import MemoryOptimizedAutomaton
    from ..automaton.scenario import run_scenario as run
    from ..automaton.store import Automaton

    session = _session(request)
    counter = itertools.count()

    def bound(scenario: Scenario, **options: Any) -> ScenarioResult:
        options.setdefault("monitor", session.monitor)
        options.setdefault("thresholds", pressure_thresholds)
        if options.get("automaton") is None:
            path = tmp_path / f"scenario-{next(counter)}" / "automaton.jsonl"
            path.parent.mkdir()
            config = options.pop("config", None)
            options["automaton"] = (
                MemoryOptimizedAutomaton(path, config) if config else Automaton(path)
            )
        result = run(scenario, **options)
        session.record_scenario(request.node, scenario, options["automaton"], result)
        return result

    return bound


@pytest.fixture
def automaton(tmp_path: Path) -> Automaton:
    """A fresh, empty :class:`Automaton` on ``tmp_path / "automaton.jsonl"``."""
    from ..automaton.store import Automaton

    return Automaton(tmp_path / "automaton.jsonl")


@pytest.fixture
def optimized_automaton(tmp_path: Path) -> Callable[..., MemoryOptimizedAutomaton]:
    """Factory: ``optimized_automaton(config=None, **overrides)`` on a fresh file each call."""
    from ..automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig

    counter = itertools.count()

    def make(
        config: OptimizationConfig | None = None, **overrides: Any
    ) -> MemoryOptimizedAutomaton:
        base = config or OptimizationConfig()
        chosen = base.replace(**overrides) if overrides else base
        return MemoryOptimizedAutomaton(tmp_path / f"automaton-{next(counter)}.jsonl", chosen)

    return make


@pytest.fixture
def spawner(tmp_path: Path, pressure_thresholds: PressureThresholds) -> Callable[..., SpawnResult]:
    """Factory: ``spawner(scenario, automaton=None, **options)`` runs the scenario under a
    :class:`~pytest_automem.MemoryAwareSpawner` and returns its :class:`SpawnResult`.

    ``scenario`` is a ``module:function`` / ``file.py:function`` spec or a
    module-level function (run in the child by its file).  Without
    ``automaton=``, each call gets a fresh file in ``tmp_path``.  The
    thresholds default to ``pressure_thresholds`` on the relative basis (above
    the first child's memory once ready), as a test's are above its baseline;
    every other option is the spawner's (``steps=``, ``duration=``,
    ``cooldown=``, ``config=``, …).  Every child is stopped before it returns.
    """
    from ..automaton.spawner import MemoryAwareSpawner, scenario_spec

    counter = itertools.count()

    def run(
        scenario: Any, automaton: str | os.PathLike[str] | None = None, **options: Any
    ) -> SpawnResult:
        if automaton is None:
            automaton = tmp_path / f"spawner-{next(counter)}" / "automaton.jsonl"
            automaton.parent.mkdir()
        options.setdefault("thresholds", pressure_thresholds)
        options.setdefault("basis", "relative")
        return MemoryAwareSpawner(scenario_spec(scenario), automaton, **options).run()

    return run
