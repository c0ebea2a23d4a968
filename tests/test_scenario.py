"""The scenario runner: leak slopes (RSS and allocator bytes), policies, results, loading.

Memory assertions use generous bounds and no timings, so they hold on a
loaded 2-core CI box under ``-n 2``.  Every scenario reuses the module's
running monitor (``monitor=monitor``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import resident_block

from pytest_automem.automaton.policies import MemoryOptimizedAutomaton, OptimizationConfig
from pytest_automem.automaton.scenario import (
    MAX_STEPS,
    ScenarioLoadError,
    ScenarioResult,
    load_scenario,
    run_scenario,
)
from pytest_automem.automaton.store import Automaton
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.pressure import PressureLevel, PressureThresholds

KB = 1024
MB = 1 << 20
ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
REPEATS = 3
#: Bytes per iteration under which a run is "near zero".
FLAT = 1 * KB
#: Past float range, and past int-to-text's default digit limit.
HUGE = 10**5000


def _example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"automem_test_example_{name}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


event_log = _example("event_log.py")
warmup_cache = _example("warmup_cache.py")


@pytest.fixture
def blocks() -> Iterator[list[Any]]:
    """Resident blocks a scenario retains; all closed when the test ends."""
    kept: list[Any] = []
    yield kept
    for block in kept:
        block.close()


# -- the examples, in repeated runs -------------------------------------------


def test_event_log_leaks_in_every_repeated_run(monitor: MemoryMonitor) -> None:
    """~10 KB/iteration each time, although later runs refill memory freed earlier.

    RSS alone sees the first run only; the allocators' in-use bytes see all.
    """
    for run in range(REPEATS):
        result = run_scenario(event_log.record_events, monitor=monitor)
        assert result.leak_bytes_per_iteration > 5 * KB, (run, result.describe())
        assert result.leak_bytes_per_iteration < 100 * KB, (run, result.describe())
        assert result.final_objects == 110 * event_log.EVENTS_PER_STEP
        assert result.trims == 0 and result.gc_runs == 0 and result.events == ()


def test_bounded_event_log_is_flat_in_every_repeated_run(monitor: MemoryMonitor) -> None:
    for run in range(REPEATS):
        result = run_scenario(event_log.record_events, config=event_log.BOUNDED, monitor=monitor)
        assert result.leak_bytes_per_iteration < FLAT, (run, result.describe())
        assert result.trims > 0
        assert result.final_objects == 100
        assert result.final_history <= 50


def test_warmup_cache_is_flat_in_every_repeated_run(monitor: MemoryMonitor) -> None:
    for run in range(REPEATS):
        result = run_scenario(warmup_cache.price_orders, monitor=monitor)
        assert result.leak_bytes_per_iteration < FLAT, (run, result.describe())


# -- what each measure sees ---------------------------------------------------


def test_growth_outside_the_python_heap_is_seen_by_rss(
    monitor: MemoryMonitor, blocks: list[Any]
) -> None:
    size = 256 * KB

    def keep_a_block(automaton: Automaton, step: int) -> None:
        blocks.append(resident_block(size))

    result = run_scenario(keep_a_block, iterations=20, warmup=2, monitor=monitor)

    assert result.rss_leak_bytes_per_iteration == pytest.approx(size, rel=0.10)
    assert result.leak_bytes_per_iteration >= result.rss_leak_bytes_per_iteration
    if result.heap_leak_bytes_per_iteration is not None:
        assert result.heap_leak_bytes_per_iteration < 32 * KB, result.describe()
    # The kernel's high-water mark is at least every resident reading.
    assert result.peak_bytes >= max(result.retained_bytes)
    assert result.growth_bytes >= 20 * size * 0.9


@pytest.mark.parametrize(
    ("iterations", "at"),
    [(20, 3), (20, 5), (20, 9), (20, 10), (20, 11), (20, 16), (100, 50), (100, 73)],
    ids=lambda value: str(value),
)
def test_one_outlier_step_is_not_a_leak(
    monitor: MemoryMonitor, blocks: list[Any], iterations: int, at: int
) -> None:
    """A single step retaining 5 MB forever, ``at`` iterations after warm-up.

    In the middle of the run too, where over half of a whole-run Theil–Sen's
    pairs would span the level shift.
    """
    warmup = 5

    def one_big_step(automaton: Automaton, step: int) -> None:
        if step == warmup + at:
            blocks.append(resident_block(5 * MB))

    result = run_scenario(one_big_step, iterations=iterations, warmup=warmup, monitor=monitor)

    assert result.retained_bytes[-1] >= 4 * MB  # the block is there and RSS saw it
    assert result.leak_bytes_per_iteration < FLAT, result.describe()


def _cache_scenario(cache: list[bytes], fill: Callable[[int], bool]) -> Callable[..., None]:
    def scenario(automaton: Automaton, step: int) -> None:
        if fill(step):
            cache.append(b"\x01" * (200 * KB))  # pages written, allocator-visible

    return scenario


def test_cache_filled_during_warmup_only_is_not_a_leak(monitor: MemoryMonitor) -> None:
    cache: list[bytes] = []
    warmup = 10
    result = run_scenario(
        _cache_scenario(cache, lambda step: step < warmup),
        iterations=20,
        warmup=warmup,
        monitor=monitor,
    )
    assert len(cache) == warmup
    assert result.leak_bytes_per_iteration < FLAT, result.describe()


def test_cache_filled_after_warmup_is_a_leak(monitor: MemoryMonitor) -> None:
    cache: list[bytes] = []
    warmup = 10
    result = run_scenario(
        _cache_scenario(cache, lambda step: step >= warmup),
        iterations=20,
        warmup=warmup,
        monitor=monitor,
    )
    assert len(cache) == 20
    # 200 KB per iteration; either measure may see it, the verdict must.
    assert result.leak_bytes_per_iteration > 100 * KB, result.describe()


# -- the result ---------------------------------------------------------------


def test_result_shape_and_json(monitor: MemoryMonitor) -> None:
    from pytest_automem.measure._platform import heap_bytes

    warmup, iterations = 3, 7

    def nap(automaton: Automaton, step: int) -> None:
        time.sleep(0.005)  # make the run last > 20 ms; nothing is timed

    result = run_scenario(nap, iterations=iterations, warmup=warmup, monitor=monitor, name="nap")

    assert isinstance(result, ScenarioResult)
    assert result.name == "nap"
    assert (result.iterations, result.warmup) == (iterations, warmup)
    assert len(result.retained_bytes) == warmup + iterations
    expected_heap = warmup + iterations if heap_bytes() is not None else 0
    if sys.platform.startswith("linux"):
        assert expected_heap, "allocator in-use bytes should be readable on Linux"
    assert len(result.heap_bytes) == expected_heap
    assert result.duration_s > 0.02
    assert result.samples > 0
    assert result.max_pressure is PressureLevel.LOW
    assert "nap" in result.describe()

    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    for key in (
        "leak_bytes_per_iteration",
        "peak_bytes",
        "max_pressure",
        "trims",
        "gc_runs",
        "events",
        "retained_bytes",
        "measurement",
    ):
        assert key in data, key
    assert data["max_pressure"] == "LOW"
    assert data["retained_bytes"] == list(result.retained_bytes)
    assert data["measurement"]["samples"] == result.samples > 0
    assert data["measurement"]["peak_source"] in {"kernel-hwm", "sampled"}


def test_default_name_and_minimal_run(monitor: MemoryMonitor) -> None:
    result = run_scenario(event_log.record_events, iterations=2, warmup=0, monitor=monitor)
    assert result.name.endswith(":record_events")
    assert len(result.retained_bytes) == 2
    assert result.final_objects == 2 * event_log.EVENTS_PER_STEP


def test_runs_without_a_monitor_of_its_own() -> None:
    result = run_scenario(warmup_cache.price_orders, iterations=3, warmup=1)
    assert len(result.retained_bytes) == 4


# -- policies at step boundaries ----------------------------------------------


def _add_three(automaton: Automaton, step: int) -> None:
    for i in range(3):
        automaton.add({"id": f"s{step}-{i}", "step": step})


def test_policies_trim_at_step_boundaries(monitor: MemoryMonitor, tmp_path: Path) -> None:
    automaton = MemoryOptimizedAutomaton(
        tmp_path / "automaton.jsonl", OptimizationConfig(max_objects=5)
    )
    warmup, iterations = 1, 4
    steps = warmup + iterations

    result = run_scenario(
        _add_three, automaton=automaton, iterations=iterations, warmup=warmup, monitor=monitor
    )

    assert result.final_objects == len(automaton) == 5
    # Newest kept: the last step's 3 and two of the step before.
    assert [obj["id"] for obj in automaton.objects] == ["s3-1", "s3-2", "s4-0", "s4-1", "s4-2"]
    # Over the cap after every step but the first.
    assert result.trims == steps - 1
    archive = tmp_path / "automaton.jsonl.trimmed.jsonl"
    assert archive.exists()
    archived = [json.loads(line) for line in archive.read_text().splitlines() if line]
    assert len(archived) == 3 * steps - 5
    assert result.events
    assert all(type(event) is dict for event in result.events)
    kinds = [event["kind"] for event in result.events]
    assert kinds.count("trim") == result.trims
    json.dumps(list(result.events), allow_nan=False)


def test_events_and_counts_are_only_this_runs(monitor: MemoryMonitor, tmp_path: Path) -> None:
    automaton = MemoryOptimizedAutomaton(
        tmp_path / "automaton.jsonl", OptimizationConfig(max_objects=5)
    )
    for i in range(7):
        automaton.add({"id": f"pre-{i}"})
    assert len(automaton.trim()) == 2  # one trim (and a save) before the run
    before = len(automaton.events)
    assert before >= 1

    result = run_scenario(_add_three, automaton=automaton, iterations=2, warmup=0, monitor=monitor)

    assert result.trims == 2
    assert len(result.events) == len(automaton.events) - before


def test_config_without_automaton_runs_policies_on_a_fresh_one(monitor: MemoryMonitor) -> None:
    result = run_scenario(
        _add_three,
        config=OptimizationConfig(max_objects=4, max_execution_history=6),
        iterations=3,
        warmup=1,
        monitor=monitor,
    )
    assert result.final_objects == 4
    assert result.final_history <= 6
    assert result.trims == 3


def _gc_scenario(blocks: list[Any]) -> Callable[..., None]:
    def grow(automaton: Automaton, step: int) -> None:
        automaton.add({"id": f"g{step}"})
        # Keep memory above the (tiny) thresholds on the relative basis too.
        blocks.append(resident_block(64 * KB))
        time.sleep(0.002)  # lets a 1 ms gc_interval elapse; nothing is timed

    return grow


TINY = PressureThresholds(1, 2, 3)


def test_gc_policy_runs_under_pressure(
    monitor: MemoryMonitor, tmp_path: Path, blocks: list[Any]
) -> None:
    config = OptimizationConfig(gc_interval="1ms")
    automaton = MemoryOptimizedAutomaton(tmp_path / "automaton.jsonl", config)

    result = run_scenario(
        _gc_scenario(blocks),
        automaton=automaton,
        config=config,  # the same config as the automaton's: allowed
        thresholds=TINY,
        iterations=5,
        warmup=1,
        monitor=monitor,
    )

    assert result.max_pressure is PressureLevel.CRITICAL
    assert result.gc_runs > 0
    assert [e for e in result.events if e["kind"] == "gc"]
    assert result.trims == 0


def test_gc_policy_off(monitor: MemoryMonitor, tmp_path: Path, blocks: list[Any]) -> None:
    config = OptimizationConfig(gc_interval="1ms", enable_gc=False)
    automaton = MemoryOptimizedAutomaton(tmp_path / "automaton.jsonl", config)

    result = run_scenario(
        _gc_scenario(blocks),
        automaton=automaton,
        thresholds=TINY,
        iterations=5,
        warmup=1,
        monitor=monitor,
    )

    assert result.max_pressure is PressureLevel.CRITICAL
    assert result.gc_runs == 0
    assert not [e for e in result.events if e["kind"] == "gc"]


# -- failures -----------------------------------------------------------------


class Boom(Exception):
    pass


def test_scenario_exception_propagates_and_monitor_survives(monitor: MemoryMonitor) -> None:
    calls: list[int] = []

    def fails_at_three(automaton: Automaton, step: int) -> None:
        calls.append(step)
        if step == 3:
            raise Boom("step 3")

    with pytest.raises(Boom, match="step 3"):
        run_scenario(fails_at_three, iterations=5, warmup=1, monitor=monitor)
    assert calls == [0, 1, 2, 3]

    assert monitor.running
    with monitor.measure() as window:
        pass
    assert window.result is not None
    later = run_scenario(warmup_cache.price_orders, iterations=3, warmup=1, monitor=monitor)
    assert len(later.retained_bytes) == 4


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"iterations": 1}, "iterations"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": -5}, "iterations"),
        ({"warmup": -1}, "warmup"),
        ({"iterations": 10.0}, "iterations"),
        ({"iterations": "10"}, "iterations"),
        ({"iterations": True}, "iterations"),
        ({"warmup": 2.5}, "warmup"),
        ({"warmup": None}, "warmup"),
        ({"iterations": float("nan")}, "iterations"),
        ({"iterations": float("inf")}, "iterations"),
        ({"warmup": float("nan")}, "warmup"),
        ({"warmup": False}, "warmup"),
        ({"iterations": MAX_STEPS + 1}, "iterations"),
        ({"iterations": sys.maxsize}, "iterations"),
        ({"iterations": 10**20}, "iterations"),
        ({"iterations": HUGE}, "iterations"),
        ({"warmup": MAX_STEPS - 1}, r"warmup \+ iterations"),
        ({"warmup": 10**20}, "warmup"),
        ({"config": {"max_objects": 5}}, "config"),
        ({"config": {}}, "config"),
    ],
    ids=lambda value: "HUGE" if value == {"iterations": HUGE} else repr(value)[:40],
)
def test_bad_counts(monitor: MemoryMonitor, kwargs: dict[str, Any], named: str) -> None:
    """Rejected before the first step, in one line naming the argument.

    The scenario raises, so a count that slipped through fails the test at
    once instead of running for hours (or allocating its bookkeeping first).
    """
    calls: list[int] = []

    def must_not_run(automaton: Automaton, step: int) -> None:
        calls.append(step)
        raise Boom("the scenario ran")

    with pytest.raises(ValueError, match=f"^run_scenario: {named}") as info:
        run_scenario(must_not_run, monitor=monitor, **kwargs)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200
    assert calls == []


def test_zero_history_config_runs_and_still_counts(monitor: MemoryMonitor) -> None:
    config = OptimizationConfig(max_objects=0, max_execution_history=0)

    result = run_scenario(_add_three, config=config, iterations=2, warmup=0, monitor=monitor)

    assert (result.final_objects, result.final_history) == (0, 0)
    assert result.trims == 2
    assert result.events == ()


def test_config_with_a_plain_automaton(monitor: MemoryMonitor, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config="):
        run_scenario(
            _add_three,
            automaton=Automaton(tmp_path / "automaton.jsonl"),
            config=OptimizationConfig(),
            monitor=monitor,
        )


def test_config_differing_from_the_automatons_own(monitor: MemoryMonitor, tmp_path: Path) -> None:
    automaton = MemoryOptimizedAutomaton(
        tmp_path / "automaton.jsonl", OptimizationConfig(max_objects=5)
    )
    with pytest.raises(ValueError, match="differs"):
        run_scenario(
            _add_three,
            automaton=automaton,
            config=OptimizationConfig(max_objects=6),
            monitor=monitor,
        )
    assert len(automaton) == 0


# -- load_scenario ------------------------------------------------------------


def test_load_from_file_path() -> None:
    scenario = load_scenario(f"{EXAMPLES / 'event_log.py'}:record_events")
    assert callable(scenario)
    assert scenario.__name__ == "record_events"


def test_load_from_path_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    scenario = load_scenario("examples/event_log.py:record_events")
    assert scenario.__name__ == "record_events"


def test_loaded_file_scenario_runs(monitor: MemoryMonitor) -> None:
    scenario = load_scenario(f"{EXAMPLES / 'warmup_cache.py'}:price_orders")
    result = run_scenario(scenario, iterations=3, warmup=1, monitor=monitor)
    assert len(result.retained_bytes) == 4


def test_load_from_module() -> None:
    assert load_scenario("json:dumps") is json.dumps
    assert load_scenario("os.path:join") is __import__("os").path.join
    assert load_scenario("os:path.join") is __import__("os").path.join


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("spec", ["no_colon_here", "json:", ":dumps", ""])
def test_load_malformed_spec(spec: str) -> None:
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_load_missing_file(tmp_path: Path) -> None:
    spec = f"{tmp_path / 'absent.py'}:step"
    with pytest.raises(ScenarioLoadError, match="no such file") as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)


def test_load_missing_attribute(tmp_path: Path) -> None:
    path = _write(tmp_path / "scen_attr.py", "def step(automaton, step):\n    pass\n")
    for spec in (f"{path}:nope", "json:no_such_function"):
        with pytest.raises(ScenarioLoadError, match="no attribute") as caught:
            load_scenario(spec)
        assert repr(spec) in str(caught.value)


def test_load_not_callable(tmp_path: Path) -> None:
    path = _write(tmp_path / "scen_value.py", "LIMIT = 5\n")
    for spec in ("json:__doc__", f"{path}:LIMIT"):
        with pytest.raises(ScenarioLoadError, match="not callable") as caught:
            load_scenario(spec)
        assert repr(spec) in str(caught.value)


def test_load_module_that_does_not_exist() -> None:
    spec = "automem_no_such_module_xyz:step"
    with pytest.raises(ScenarioLoadError, match="cannot import") as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)


def test_load_file_that_raises_on_import(tmp_path: Path) -> None:
    path = _write(tmp_path / "scen_raises.py", "raise RuntimeError('broken at import')\n")
    spec = f"{path}:step"
    with pytest.raises(ScenarioLoadError, match="broken at import") as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)
    assert "automem_scenario_scen_raises" not in sys.modules


def test_load_file_with_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "scen_syntax.py", "def step(:\n")
    spec = f"{path}:step"
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)


@pytest.mark.parametrize(
    "source", ["raise RuntimeError('broken at import')\n", "def step(:\n"], ids=["raises", "syntax"]
)
def test_load_module_that_raises_on_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    name = f"automem_broken_{tmp_path.name.replace('-', '_')}"
    _write(tmp_path / f"{name}.py", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = f"{name}:step"
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario(spec)
    assert repr(spec) in str(caught.value)


# --------------------------------------------------------------------------- signature


def _one_argument(step: int) -> None:
    raise Boom("the scenario ran")


class _ScenarioObject:
    def __call__(self, automaton: Automaton, step: int, *, extra: int) -> None:
        raise Boom("the scenario ran")


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        (_one_argument, r"test_scenario:_one_argument\(step: 'int'\) -> 'None'"),
        (lambda step: None, r"test_scenario:<lambda>\(step\)"),
        (lambda automaton, step, extra: None, r"<lambda>\(automaton, step, extra\)"),
        (_ScenarioObject(), r"_ScenarioObject\(automaton: 'Automaton', step: 'int', \*, extra"),
        (42, "got 42"),
    ],
    ids=["function", "lambda-step", "three-arguments", "keyword-only", "not-callable"],
)
def test_a_scenario_that_cannot_take_automaton_and_step_is_refused_before_running(
    monitor: MemoryMonitor, scenario: Any, named: str
) -> None:
    with pytest.raises(TypeError, match=r"^run_scenario: .*scenario\(automaton, step\)") as info:
        run_scenario(scenario, iterations=2, warmup=0, monitor=monitor)
    message = str(info.value)
    assert re.search(named, message), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "scenario",
    [lambda *args: None, lambda automaton, step=0, more=1: None, functools.partial(_add_three)],
    ids=["varargs", "defaults", "partial"],
)
def test_callables_that_take_two_positional_arguments_run(
    monitor: MemoryMonitor, scenario: Any
) -> None:
    assert run_scenario(scenario, iterations=2, warmup=0, monitor=monitor).iterations == 2


def test_the_fixture_names_the_expected_signature(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_wrong(run_scenario):
            run_scenario(lambda step: None, iterations=2, warmup=0)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=120)

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E*TypeError: run_scenario: scenario test_the_fixture_names*:test_wrong.<locals>."
         "<lambda>(step) takes the wrong arguments (*): a scenario is called as "
         "scenario(automaton, step), step counting from 0"]
    )  # fmt: skip
    assert "takes 1 positional argument" not in result.stdout.str()
