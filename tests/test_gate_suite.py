"""The gate on a real-looking suite: two runs of the same code give no regression,
and a test that keeps 20 MB more is the one regression reported.

The suite is generated: 300 tests over ten modules that allocate and keep,
churn (build and drop), fill a module-level cache once, spike inside one C
call, or do nearly nothing, with parametrized ids and a fixture, as a real
suite mixes them. Each run is a real pytest session under ``--automem``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TESTS_PER_MODULE = 30
MODULES = 10

MODULE = """
import pytest

MB = 1 << 20
CACHE = {{}}
KEPT = []


@pytest.fixture
def rows():
    return [{{"id": n, "name": f"row-{{n}}"}} for n in range(2_000)]


@pytest.mark.parametrize("n", range({per_kind}))
def test_allocates_and_keeps(n):
    KEPT.append(bytearray(64 * 1024))


@pytest.mark.parametrize("n", range({per_kind}))
def test_churns(n, rows):
    built = [dict(row, n=n) for row in rows for _ in range(5)]
    assert len(built) == 10_000


@pytest.mark.parametrize("n", range({per_kind}))
def test_fills_a_cache_once(n):
    CACHE.setdefault(n % 3, bytearray(512 * 1024))


@pytest.mark.parametrize("n", range({per_kind}))
def test_spikes_in_one_c_call(n):
    (b"x" * (24 * MB)).count(b"y")


@pytest.mark.parametrize("n", range({per_kind}))
def test_small(n):
    assert sum(range(100)) == 4950
"""


def _write_suite(folder: Path) -> None:
    for module in range(MODULES):
        source = MODULE.format(per_kind=TESTS_PER_MODULE // 5)
        (folder / f"test_suite_{module}.py").write_text(source, encoding="utf-8")


def _run(folder: Path, results: str) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--automem", f"--automem-json={results}"],
        cwd=folder, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    return folder / results


def _gate(baseline: Path, current: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", "gate", "--baseline", str(baseline),
         "--current", str(current), "--junit", str(current.with_suffix(".xml"))],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_two_runs_pass_and_a_test_keeping_20_mb_more_is_the_one_regression(
    tmp_path: Path,
) -> None:
    _write_suite(tmp_path)
    first = _run(tmp_path, "first.json")
    assert len(json.loads(first.read_text(encoding="utf-8"))["tests"]) == MODULES * TESTS_PER_MODULE
    second = _run(tmp_path, "second.json")
    same = _gate(first, second)
    assert same.returncode == 0, same.stdout
    assert "0 regressed" in same.stdout

    changed = tmp_path / "test_suite_3.py"
    source = changed.read_text(encoding="utf-8")
    source = source.replace(
        "def test_small(n):\n",
        "def test_small(n):\n    if n == 2:\n        KEPT.append(bytearray(20 * MB))\n",
    )
    changed.write_text(source, encoding="utf-8")
    third = _run(tmp_path, "third.json")
    regressed = _gate(first, third)
    assert regressed.returncode == 1, regressed.stdout
    assert "1 regressed" in regressed.stdout
    assert "test_suite_3.py::test_small[2]" in regressed.stdout
    cases = ET.parse(third.with_suffix(".xml")).getroot().iter("testcase")
    failed = [case for case in cases if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["test_small[2]"]
    assert "test_suite_3" in str(failed[0].get("classname"))
