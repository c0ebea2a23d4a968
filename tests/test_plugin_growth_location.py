"""A growth failure names where, without the user turning tracing on.

A call over its growth budget runs once more under tracing; each planted
leak is a real inner pytest session, and the failure text, the JUnit file
and the results file are checked for what they name: the line and the type
of a Python leak, C memory tracemalloc cannot see, a cache filled once, a
re-run that raises, and no re-run for a test that passes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from helpers import run_planted

BYTEARRAY_LEAK = """\
import unittest

import pytest

KEPT = []
CALLS = []


def keep_buffers():
    for _ in range(4):
        KEPT.append(bytearray(3 << 20))


@pytest.mark.memory_budget(growth="1MB")
def test_leaks_buffers():
    CALLS.append("leak")
    keep_buffers()


@pytest.mark.memory_budget(growth="1MB")
def test_within_budget():
    CALLS.append("fine")
    assert CALLS.count("fine") == 1  # a second run would fail: there is none


class TestInUnittest(unittest.TestCase):
    @pytest.mark.memory_budget(growth="1MB")
    def test_leaks_in_a_testcase(self):
        keep_buffers()
"""
LEAK_LINE = BYTEARRAY_LEAK.splitlines().index("        KEPT.append(bytearray(3 << 20))") + 1

ONCE_AND_C = """\
import ctypes
import functools

import pytest

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
BLOCKS = []
RUNS = []


@functools.lru_cache(maxsize=None)
def render(page):
    return bytearray(100_000)


@pytest.mark.memory_budget(growth="1MB")
def test_fills_a_cache():
    for page in range(100):
        render(page)


@pytest.mark.memory_budget(growth="4MB")
def test_leaks_c_memory():
    for _ in range(16):
        block = libc.malloc(1 << 20)
        libc.memset(block, 1, 1 << 20)
        BLOCKS.append(block)


@pytest.mark.memory_budget(growth="1MB")
def test_cannot_run_twice():
    RUNS.append(bytearray(8 << 20))
    assert len(RUNS) == 1, "already ran"
"""


def _run(pytester: pytest.Pytester, source: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    return run_planted(pytester, test_planted=source)


def _finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    (found,) = [f for f in record["findings"] if f["check"] == check]
    return found


def _junit_cases(pytester: pytest.Pytester) -> dict[str, ET.Element]:
    root = ET.parse(pytester.path / "junit.xml").getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_a_python_leak_names_its_line_and_type_in_every_output(
    pytester: pytest.Pytester,
) -> None:
    result, records = _run(pytester, BYTEARRAY_LEAK)
    result.assert_outcomes(failed=2, passed=1)
    where = f"test_planted.py:{LEAK_LINE}"
    output = result.stdout.str()
    cases = _junit_cases(pytester)
    for name in ("test_leaks_buffers", "test_leaks_in_a_testcase"):
        record = records[name]
        assert record["message"].endswith(f", retained at {where}"), record["message"]
        found = _finding(record, "allocation-sites")
        assert found["summary"].startswith("a traced re-run of the test's call: ")
        evidence = found["evidence"]
        assert evidence["sites"][0]["location"] == where
        assert evidence["types"][0]["type_name"] == "builtins.bytearray"
        assert evidence["types"][0]["count"] == 4
        failure = cases[name].find("failure")
        assert failure is not None and where in failure.get("message", "")
        assert f"{where}  +12.0 MB" in (cases[name].findtext("system-out") or "")
    assert "FAILED test_planted.py::test_leaks_buffers - memory budget exceeded: growth" in output
    assert "+12.0 MB in 4 builtins.bytearray" in output
    # The passing test ran once: its assertion would have failed a second run.
    assert records["test_within_budget"]["verdict"] == "pass"
    assert "re-run" not in json.dumps(records["test_within_budget"])


def test_c_memory_a_cache_and_a_rerun_that_raises_are_each_said(
    pytester: pytest.Pytester,
) -> None:
    result, records = _run(pytester, ONCE_AND_C)
    result.assert_outcomes(failed=3)
    output = result.stdout.str()

    assert records["test_fills_a_cache"]["message"].endswith(
        ", kept once, as a cache keeps it (lru_cache of test_planted.render)"
    )
    assert records["test_leaks_c_memory"]["message"].endswith(
        ", outside Python objects (C code, which tracing cannot see)"
    )
    cache = _finding(records["test_fills_a_cache"], "rerun")
    assert "the memory was kept once" in cache["summary"]
    assert "lru_cache of test_planted.render" in cache["summary"]
    assert cache["evidence"]["caches"][0]["entries"] == 100
    assert "lru_cache test_planted.render: 100 entries (unbounded), 100 hits" in output

    c_memory = _finding(records["test_leaks_c_memory"], "growth-without-object-growth")
    assert c_memory["summary"].startswith("a traced re-run of the test's call: memory grew")
    assert c_memory["evidence"]["growth_bytes"] >= 15 << 20
    assert "the growth is outside Python objects" in output

    cases = _junit_cases(pytester)
    for name, phrase in (
        ("test_fills_a_cache", "kept once, as a cache keeps it"),
        ("test_leaks_c_memory", "outside Python objects"),
    ):
        failure = cases[name].find("failure")
        assert failure is not None and phrase in failure.get("message", "")
    assert "lru_cache test_planted.render: 100 entries" in (
        cases["test_fills_a_cache"].findtext("system-out") or ""
    )
    assert "the growth is outside Python objects" in (
        cases["test_leaks_c_memory"].findtext("system-out") or ""
    )

    raised = _finding(records["test_cannot_run_twice"], "rerun")
    assert "raised AssertionError: already ran" in raised["summary"]
    # The test fails on its memory, as the first run measured it.
    assert records["test_cannot_run_twice"]["message"].startswith("growth 8.0 MB > budget")
