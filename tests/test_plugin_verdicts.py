"""End-to-end: the verdict rules (docs/pytest-plugin.md, "Verdict rules").

The marker that counts is the one on the item when it runs; a test that did
not finish gets no verdict; a verdict does not depend on the tests that ran
before it in the same process or on memory the allocators keep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
    )


def _results(pytester: pytest.Pytester, name: str = "results.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())["tests"]


# -- markers added after collection -------------------------------------------

_FOLDER_BUDGET_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.memory_budget(peak={peak!r}))
"""

_BIG_ALLOCATION = """
def test_big():
    block = bytearray(40 * 1024 * 1024)
    assert len(block)

def test_small():
    assert True
"""


def test_a_budget_added_in_modifyitems_counts(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(_FOLDER_BUDGET_CONFTEST.format(peak="20MB"))
    pytester.makepyfile(test_folder=_BIG_ALLOCATION)
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_big*memory budget exceeded: peak*"])
    tests = _results(pytester)
    assert tests["test_folder.py::test_big"]["verdict"] == "fail"
    assert tests["test_folder.py::test_small"]["verdict"] == "pass"
    assert tests["test_folder.py::test_small"]["budget"]["peak_bytes"] == 20 << 20


def test_a_bad_budget_added_in_modifyitems_names_the_test_and_argument(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(_FOLDER_BUDGET_CONFTEST.format(peak="lots"))
    pytester.makepyfile(test_folder=_BIG_ALLOCATION)
    result = _run(pytester)
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*test_folder.py::test_big*memory_budget*peak='lots'*"])


#: A test whose fixture gives it a budget (``request.applymarker``) before its call.
_LATE_BUDGET = """
import pytest

@pytest.fixture
def tight(request):
    request.applymarker(pytest.mark.memory_budget(peak="20MB"))

def test_big(tight):
    block = bytearray(40 * 1024 * 1024)
    assert len(block)
"""


def test_a_budget_added_while_the_test_runs_counts(pytester: pytest.Pytester) -> None:
    """A marker applied by a fixture (``request.applymarker``) before the call."""
    pytester.makepyfile(
        test_late=_LATE_BUDGET
        + """
@pytest.mark.memory_budget(peak="1GB")
def test_monitored_anyway():
    pass
"""
    )
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_big*memory budget exceeded: peak*"])
    assert _results(pytester)["test_late.py::test_big"]["verdict"] == "fail"


@pytest.mark.parametrize("options", [[], ["--automem-json=results.json"], ["--junitxml=junit.xml"]])
def test_a_budget_added_while_the_test_runs_is_reported_as_one_given_at_collection(
    pytester: pytest.Pytester, options: list[str]
) -> None:
    """When every test was monitored by ``--automem`` alone at collection,
    a budget a fixture adds still gets the failure report of a budgeted test
    (not a traceback of the plugin) and, in JUnit, the test's properties."""
    pytester.makepyfile(test_late=_LATE_BUDGET + "\ndef test_small():\n    pass\n")
    result = _run(pytester, "--automem", *options)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*memory budget exceeded: peak*", "*peak *MB*"])
    result.stdout.no_fnmatch_line("*raise MemoryBudgetExceeded*")
    if options == ["--junitxml=junit.xml"]:
        junit = (pytester.path / "junit.xml").read_text()
        assert junit.count('name="automem.verdict" value="fail"') == 1
        assert "automem.verdict" not in junit.split('name="test_small"')[1]


# -- interrupted tests ----------------------------------------------------------


@pytest.mark.parametrize("options", [["--automem-json=results.json"], ["--automem"]])
def test_an_interrupted_test_gets_no_verdict(pytester: pytest.Pytester, options: list[str]) -> None:
    pytester.makepyfile(
        test_interrupt="""
        import pytest

        def test_first():
            pass

        @pytest.mark.memory_budget(peak="1GB")
        def test_interrupted():
            raise KeyboardInterrupt

        def test_never_runs():
            pass
        """
    )
    args = ["--automem", *options]
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*(1 monitored tests)*"])
    if "--automem-json=results.json" in options:
        tests = _results(pytester)
        assert set(tests) == {"test_interrupt.py::test_first"}
        assert not Path(pytester.path / "results.json.tmp").exists()


# -- independent of order and of memory the allocators keep ---------------------

_ORDER = """
import pytest

def test_frees_many_small_objects():
    objects = [{"i": i} for i in range(600_000)]
    test_frees_many_small_objects.survivors = objects[::500]  # pin their pools
    del objects

@pytest.mark.memory_budget(peak="20MB")
def test_builds_small_objects():
    built = [(i, str(i)) for i in range(300_000)]
    assert len(built) == 300_000

@pytest.mark.memory_budget(growth="1MB")
def test_keeps_little_of_much():
    dicts = [{"k": i} for i in range(300_000)]
    test_keeps_little_of_much.kept = dicts[::1000]
    del dicts

@pytest.mark.memory_budget(growth="1MB")
def test_keeps_a_lot():
    test_keeps_a_lot.kept = [(i, str(i)) for i in range(40_000)]  # ~4 MB
"""


def _verdicts(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, Any]]:
    _run(pytester, "--automem-json=results.json", *args)
    return {nodeid.split("::")[1]: record for nodeid, record in _results(pytester).items()}


def test_verdicts_do_not_depend_on_what_ran_before(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_order=_ORDER)
    after = _verdicts(pytester)
    first = {
        name: _verdicts(pytester, f"test_order.py::{name}")[name]
        for name in ("test_builds_small_objects", "test_keeps_little_of_much", "test_keeps_a_lot")
    }
    in_worker = _verdicts(pytester, "-n", "2", "--dist", "loadfile")
    for name, alone in first.items():
        verdicts = (alone["verdict"], after[name]["verdict"], in_worker[name]["verdict"])
        assert len(set(verdicts)) == 1, (name, verdicts)
    assert first["test_builds_small_objects"]["verdict"] == "fail"
    assert first["test_keeps_little_of_much"]["verdict"] == "pass"
    assert first["test_keeps_a_lot"]["verdict"] == "fail"
    built_alone = first["test_builds_small_objects"]["peak_bytes"]
    built_after = after["test_builds_small_objects"]["peak_bytes"]
    assert abs(built_after - built_alone) < 0.1 * built_alone


def test_results_say_what_the_allocators_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_order=_ORDER)
    records = _verdicts(pytester)
    freed = records["test_keeps_little_of_much"]
    assert freed["growth_source"] == "retained-heap"
    assert freed["growth_bytes"] < 1 << 20
    assert isinstance(freed["rss_growth_bytes"], int)
    assert freed["allocator_cached_end_bytes"] > 1 << 20  # what RSS growth would have blamed
    built = records["test_builds_small_objects"]
    assert built["allocator_cached_start_bytes"] > 10 << 20  # the earlier test's freed objects
    assert built["peak_source"] == "tracemalloc"  # so the cache cannot hide the peak
