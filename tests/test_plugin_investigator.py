"""The investigator where CI users look: failure text, JUnit, the results file.

Each test plants one condition in a real inner pytest session and checks
that the report names it: a Python leak at a known line (file and line
exactly), a C-level leak that tracemalloc cannot see, an unbounded
execution history, duplicate IDs.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

pytest_plugins = ["pytester"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=180
    )


def _line_of(source: str, marker: str) -> int:
    """1-based line of ``marker`` in the dedented test source pytester writes."""
    import textwrap

    lines = textwrap.dedent(source).strip("\n").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if marker in line)


def _record(pytester: pytest.Pytester, nodeid: str) -> dict[str, Any]:
    return json.loads((pytester.path / "results.json").read_text())["tests"][nodeid]


SCENARIO_LEAK = """
import pytest

SEEN = []


def remember(automaton, step):
    automaton.add({"id": f"event-{step}"})
    SEEN.append(bytearray(16_000))  # LEAK-HERE


@pytest.mark.memory_budget(leak_per_iteration="2KB")
def test_scenario_leak(run_scenario):
    run_scenario(remember, iterations=30, warmup=3)
"""


def test_python_leak_in_a_scenario_is_attributed_to_its_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leak=SCENARIO_LEAK)
    line = _line_of(SCENARIO_LEAK, "LEAK-HERE")
    result = _run(pytester, "--automem-json=results.json", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    where = f"test_leak.py:{line}"
    result.stdout.fnmatch_lines(
        [f"*most at {where} *", f"*{where}  +* in * blocks  | SEEN.append*"]
    )
    record = _record(pytester, "test_leak.py::test_scenario_leak")
    sites = [
        site
        for finding in record["findings"]
        if finding["check"] == "allocation-sites"
        for site in finding["evidence"]["sites"]
    ]
    assert sites[0]["location"] == where
    assert sites[0]["size_diff_bytes"] > 40_000  # 5 traced steps x 16 KB
    case = next(ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"))
    assert where in (case.findtext("system-out") or "")


TRACED = """
import pytest

KEPT = []


class Order:
    def __init__(self, n):
        self.n = n
        self.lines = [n] * 50


@pytest.mark.memory_budget(growth="256KB")
def test_keeps_orders():
    for n in range(3000):
        KEPT.append(Order(n))  # KEEP-HERE
"""


def test_automem_trace_names_the_line_and_the_type(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_traced=TRACED)
    line = _line_of(TRACED, "KEEP-HERE")
    result = _run(pytester, "--automem-trace", "--automem-json=results.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the test's call: * retained, most at test_traced.py:*"], consecutive=False
    )
    finding = next(
        f
        for f in _record(pytester, "test_traced.py::test_keeps_orders")["findings"]
        if f["check"] == "allocation-sites"
    )
    locations = [site["location"] for site in finding["evidence"]["sites"]]
    assert f"test_traced.py:{line}" in locations  # the append that keeps them
    assert locations[0] == f"test_traced.py:{_line_of(TRACED, '[n] * 50')}"  # the bulk
    assert not any("ctypes" in where or "pytest_automem" in where for where in locations)
    live = {t["type_name"]: t["count"] for t in finding["evidence"]["types"]}
    assert live["test_traced.Order"] == 3000
    assert "re-run" not in result.stdout.str()  # the first run was traced: no second


def test_without_tracing_a_failing_call_is_rerun_traced_unless_turned_off(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_traced=TRACED)
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*a traced re-run of the test's call: * retained, most at test_traced.py:*"]
    )
    pytester.makeini("[pytest]\nautomem_rerun_failures = false\n")
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    assert "retained, most at" not in result.stdout.str()
    assert "re-run" not in result.stdout.str()


C_LEAK = """
import ctypes
import pytest

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
LEAKED = []


@pytest.mark.memory_budget(growth="4MB", trace=True)
def test_c_level_leak():
    for _ in range(16):
        size = 1 << 20
        block = libc.malloc(size)  # never freed, invisible to tracemalloc
        libc.memset(block, 1, size)
        LEAKED.append(block)
"""


def test_c_level_leak_is_growth_outside_python_objects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cleak=C_LEAK)
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*growth * > budget 4.0 MB*", "*traced Python heap only*outside Python objects*"],
        consecutive=False,
    )
    checks = {f["check"] for f in _record(pytester, "test_cleak.py::test_c_level_leak")["findings"]}
    assert "growth-without-object-growth" in checks


HISTORY = """
import pytest


@pytest.mark.memory_budget(growth="64KB")
def test_history_grows(automaton):
    for step in range(3000):
        automaton.add({"id": f"e{step % 2000}", "payload": "x" * 200})
"""


def test_automaton_fixture_is_checked_for_history_and_duplicates(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_hist=HISTORY)
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(failed=1)
    checks = {f["check"] for f in _record(pytester, "test_hist.py::test_history_grows")["findings"]}
    assert {"execution-history", "duplicate-ids"} <= checks
    result.stdout.fnmatch_lines(["*max_execution_history*"], consecutive=False)
