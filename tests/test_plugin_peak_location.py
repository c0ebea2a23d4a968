"""A peak failure names where: the file:line the test was at when memory crossed the budget.

Each planted spike is a real inner pytest session (the sampler is a process
of its own): in one C call, in a pure-Python loop, and in a worker thread.
The failure text, the JUnit failure and ``<system-out>``, and the results
file all name the line.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from helpers import run_planted

from pytest_automem.measure.stack_dumps import STACK_SIGNAL

pytestmark = pytest.mark.skipif(
    STACK_SIGNAL is None, reason="no real-time signals for stack dumps (not Linux)"
)

INNER = """\
import threading

import pytest

MB = 1 << 20


def build_blob():
    blob = bytearray(200 * MB)
    return len(blob)


def build_floats():
    values = [float(i) for i in range(6_000_000)]
    return len(values)


@pytest.mark.memory_budget(peak="24MB")
def test_c_call():
    build_blob()


@pytest.mark.memory_budget(peak="24MB")
def test_python_loop():
    build_floats()


@pytest.mark.memory_budget(peak="24MB")
def test_in_a_thread():
    worker = threading.Thread(target=build_blob)
    worker.start()
    worker.join()


@pytest.mark.memory_budget(peak="400MB")
def test_within_budget():
    build_blob()


@pytest.mark.memory_budget(peak="24MB", trace=True)
def test_traced():
    build_blob()
"""
BLOB_LINE = INNER.splitlines().index("    blob = bytearray(200 * MB)") + 1
FLOATS_LINE = INNER.splitlines().index("    values = [float(i) for i in range(6_000_000)]") + 1
#: Where each failing test's memory crossed its budget (3.11 runs a list
#: comprehension in a function of its own; 3.12 inlines it).
EXPECTED = {
    "test_c_call": (BLOB_LINE, {"build_blob"}),
    "test_python_loop": (FLOATS_LINE, {"build_floats", "<listcomp>"}),
    "test_in_a_thread": (BLOB_LINE, {"build_blob"}),
    "test_traced": (BLOB_LINE, {"build_blob"}),
}


def _places(name: str) -> list[str]:
    line, functions = EXPECTED[name]
    return [f"test_blob.py:{line} in {function}" for function in functions]


def test_peak_failures_name_the_line_in_every_output(pytester: pytest.Pytester) -> None:
    result, records = run_planted(pytester, test_blob=INNER)
    result.assert_outcomes(failed=4, passed=1)
    output = result.stdout.str()

    cases = {
        case.get("name"): case
        for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    for name in EXPECTED:
        places = _places(name)
        # The one-line message: pytest's summary, the JUnit message, the JSON.
        assert f"FAILED test_blob.py::{name} - memory budget exceeded: peak" in output
        crossed = [f"crossed at {place}" for place in places]
        assert any(text in output for text in crossed), (name, output)
        failure = cases[name].find("failure")
        assert failure is not None
        assert any(text in failure.get("message", "") for text in crossed), failure.get("message")
        # The report: the stack, with the user's frame marked.
        system_out = cases[name].findtext("system-out") or ""
        assert any(f"-> {place}" in system_out for place in places), system_out
        assert any(text in records[name]["message"] for text in crossed)
        located = [f for f in records[name]["findings"] if f["check"] == "peak-location"]
        assert len(located) == 1 and located[0]["evidence"]["line"] == EXPECTED[name][0]
    assert "crossed at" not in json.dumps(records["test_within_budget"])
    # A traced call also names the allocation alive when memory crossed.
    (traced,) = [f for f in records["test_traced"]["findings"] if f["check"] == "peak-location"]
    (alive, *_) = traced["evidence"]["sites_alive"]
    assert alive["location"] == f"test_blob.py:{BLOB_LINE}"
    assert alive["size_diff_bytes"] >= 200 << 20
    assert all(not f["evidence"].get("sites_alive") for f in records["test_c_call"]["findings"])
