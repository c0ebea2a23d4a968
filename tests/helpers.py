"""Allocation helpers whose effect on RSS does not depend on the allocator.

glibc raises its mmap threshold after large frees, so a later ``bytearray``
may come from heap pages that are already resident and not move RSS at all.
An anonymous mapping whose pages we touch always adds exactly its size.
"""

from __future__ import annotations

import array
import contextlib
import json
import mmap
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_automem.measure.pressure import MeasurementBasis, PressureLevel, PressureThresholds
from pytest_automem.measure.window_result import WindowResult

#: JSON readers must turn Python's refusal of long integers (3.10.7 and later
#: refuse more than 4300 digits) into their own error; older Pythons accept them.
NEEDS_DIGIT_LIMIT = pytest.mark.skipif(
    not hasattr(sys, "get_int_max_str_digits"), reason="this Python has no digit limit"
)
#: A JSON number Python refuses to convert (see NEEDS_DIGIT_LIMIT).
TOO_MANY_DIGITS = "9" * 5000
#: JSON nested deeper than the decoder's recursion limit.
NESTED_TOO_DEEP = "[" * 100_000 + "]" * 100_000

PAGE = mmap.PAGESIZE
MB = 1 << 20


def resident_block(size: int) -> mmap.mmap:
    """A fresh anonymous mapping of ``size`` bytes, every page touched.

    Resident until ``.close()`` is called on it.
    """
    block = mmap.mmap(-1, size)
    for offset in range(0, size, PAGE):
        block[offset] = 1
    return block


def junit_cases(path: Path) -> dict[str | None, ET.Element]:
    """The test cases of a JUnit file pytest wrote, by name."""
    return {case.get("name"): case for case in ET.parse(path).iter("testcase")}


def run_planted(
    pytester: pytest.Pytester, **sources: str
) -> tuple[pytest.RunResult, dict[str, dict[str, Any]]]:
    """Run planted test files in a real inner session with JUnit and the
    results file; the result and each test's record by its name."""
    pytester.makepyfile(**sources)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly",
        "--junitxml=junit.xml", "--automem-json=results.json",
        timeout=180,
    )  # fmt: skip
    records = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["tests"]
    return result, {nodeid.rpartition("::")[2]: record for nodeid, record in records.items()}


def make_window(**overrides: Any) -> WindowResult:
    """A quiet 1 s window (842 samples at 1 ms, kernel peak); ``overrides`` change fields.

    For unit tests of whatever reads window results (budgets, the investigator).
    """
    fields: dict[str, Any] = {
        "pid": 4242,
        "duration_s": 1.0,
        "baseline_bytes": 300 * MB,
        "end_rss_bytes": 300 * MB,
        "peak_rss_bytes": 300 * MB,
        "peak_bytes": 0,
        "growth_bytes": 0,
        "rate_bytes_per_s": 0.0,
        "max_pressure": PressureLevel.LOW,
        "pressure_distribution": {"LOW": 1.0, "MEDIUM": 0.0, "HIGH": 0.0, "CRITICAL": 0.0},
        "thresholds": PressureThresholds(),
        "basis": MeasurementBasis.RELATIVE,
        "samples": 842,
        "samples_dropped": 0,
        "interval_target_ms": 1.0,
        "interval_p50_ms": 1.0,
        "interval_p99_ms": 1.05,
        "interval_max_ms": 2.0,
        "sampler_kind": "process-procfs",
        "peak_source": "kernel-hwm",
        "allocator_trimmed": True,
        "sample_times_ns": array.array("q"),
        "sample_rss_bytes": array.array("q"),
    }
    fields.update(overrides)
    return WindowResult(**fields)


#: Generous for a command that reads a few files: this only stops a hang.
INVESTIGATE_TIMEOUT_S = 60


def run_automem(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``automem ARGS`` as a real process (``env``: its whole environment)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=INVESTIGATE_TIMEOUT_S,
        check=False,
        env=env,
        cwd=cwd,
    )


def run_investigate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``automem investigate ARGS`` as a real process."""
    return run_automem("investigate", *args)


def assert_input_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The CLI's input-error contract: exit 2, nothing on stdout, one stderr line
    naming ``names``, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


#: Source of an ``alloc`` module for inner pytest sessions (pytester): the same
#: exact allocations, for tests that run a real session in a subprocess.
INNER_ALLOC = """
import mmap
import time

MB = 1 << 20


def resident(size):
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


def spike(size):
    (b"x" * size).count(b"y")
"""


#: A results file's measurement context, as a session on this machine kind writes it.
RESULTS_SESSION = {
    "written_at": "2026-12-01T00:00:00+00:00",
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "linux",
    "cpu_count": 2,
    "plugin_version": "0.1.0",
    "sampler_kind": "process-procfs",
}


def results_test(
    peak: int, growth: int, rate: float | None = None, leaks: dict[str, float] | None = None
) -> dict[str, Any]:
    """One test of a results file with the contract's keys: these figures,
    and a scenario per ``leaks`` entry (name to leak per iteration)."""
    return {
        "peak_bytes": peak,
        "growth_bytes": growth,
        "rate_bytes_per_s": rate,
        "max_pressure": "LOW",
        "samples": 10,
        "interval_p50_ms": 1.0,
        "interval_p99_ms": 1.1,
        "peak_source": "kernel-hwm",
        "verdict": "pass",
        "violations": [],
        "scenarios": [
            {"name": name, "leak_bytes_per_iteration": leak} for name, leak in (leaks or {}).items()
        ],
    }


#: Source of a spawner scenario that starts a process of its own at step 0,
#: writes "its pid, that process's pid" to the file named by
#: ``AUTOMEM_TEST_PIDS``, and runs on (a step every 10 ms) until stopped.
SCENARIO_WITH_A_CHILD = """
import os
import subprocess
import time
from pathlib import Path

KEEP = []

def scenario(automaton, step):
    if step == 0:
        KEEP.append(subprocess.Popen(["sleep", "600"]))
        Path(os.environ["AUTOMEM_TEST_PIDS"]).write_text(f"{os.getpid()} {KEEP[0].pid}")
    automaton.add({"id": f"o{step}"})
    time.sleep(0.01)
"""


#: Source of a spawner scenario: each step adds one object of about 4 KB, so
#: the normal profile's 2000-object cap allows 8 MB and the HIGH profile's
#: 1000 only 4 MB.  The first child, on the normal profile, also keeps 4 KB
#: a step outside its objects, which only a new process gives back, so it
#: crosses 12 MB (above the first child's start) at about 1500 steps
#: whatever its cap.
LEAK_BEYOND_THE_CAP = """
import time

HELD = []

def scenario(automaton, step):
    automaton.add({"id": f"o{step}", "payload": f"{step:08d}" + "x" * 4000})
    if automaton.config.max_objects == 2000:
        HELD.append(f"{step:08d}" + "y" * 4000)
    time.sleep(0.001)
"""


def kill_all(processes: Iterable[psutil.Process]) -> None:
    """SIGKILL each process still there: a test's clean-up, pass or fail."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
