"""Benchmark: ``automem gate`` and ``automem merge`` on a 100,000-test results file.

Run with ``python benchmarks/gate_scale.py`` (``--tests N`` to change the
size).  Everything happens in a temporary folder.  Records look like the
plugin's with a budget: the contract's keys, three phase windows and, for
one test in ten, a scenario, about 1.5 KB a test.  Each command runs in a
fresh process (as CI runs it), and that process reports its wall time and
its peak RSS from ``resource.getrusage``.  Figures printed:

* the file sizes;
* ``gate`` of a baseline against a current run in which one test in a
  hundred regressed, with ``--junit`` and ``--summary``;
* ``gate`` against the current run split into four shards (merged first);
* ``merge`` of those four shards into one file.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.cli import main
from pytest_automem.measure._platform import MAXRSS_UNIT_BYTES
from pytest_automem.results.results_file import write_results

MB = 1 << 20
SHARDS = 4


def window(rng: random.Random, peak: int) -> dict[str, Any]:
    return {
        "peak_bytes": peak,
        "growth_bytes": rng.randrange(-MB, 2 * MB),
        "rate_bytes_per_s": None,
        "max_pressure": "LOW",
        "samples": rng.randrange(1, 500),
        "interval_p50_ms": 1.0,
        "interval_p99_ms": 1.2,
        "peak_source": "kernel-hwm",
        "sampler_kind": "process-procfs",
        "duration_s": rng.random(),
        "baseline_bytes": 60 * MB,
        "end_rss_bytes": 60 * MB,
        "peak_rss_bytes": 60 * MB + peak,
    }


def test_record(rng: random.Random, index: int, worse: bool) -> dict[str, Any]:
    peak = rng.randrange(0, 50 * MB) + (30 * MB if worse else 0)
    record = {
        **window(rng, peak),
        "verdict": "pass",
        "violations": [],
        "message": None,
        "phases": {phase: window(rng, peak // 2) for phase in ("setup", "call", "teardown")},
    }
    if index % 10 == 0:
        record["scenarios"] = [{"name": "loop", "iterations": 100, "leak_bytes_per_iteration": 0.0}]
    return record


def documents(tests: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A baseline and a current run of ``tests`` tests; one in a hundred regressed."""
    nodeids = [f"tests/test_m{i // 100:04}.py::test_case[{i}-a|b]" for i in range(tests)]
    session = {"python": "3.11.7", "platform": "linux", "sampler_kind": "process-procfs"}
    base_rng, cur_rng = random.Random(1), random.Random(1)
    baseline = {nodeid: test_record(base_rng, i, False) for i, nodeid in enumerate(nodeids)}
    current = {nodeid: test_record(cur_rng, i, i % 100 == 0) for i, nodeid in enumerate(nodeids)}
    return (
        {"version": 1, "session": session, "tests": baseline},
        {"version": 1, "session": session, "tests": current},
    )


def timed(args: list[str]) -> tuple[float, float, int]:
    """Run ``automem ARGS`` in a fresh process: (seconds, peak MB, exit code)."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    figures = json.loads(child.stdout.splitlines()[-1])
    return figures["seconds"], figures["peak_mb"], figures["code"]


def child(args: list[str]) -> None:
    """In the fresh process: run the command with its output discarded, report figures."""
    import contextlib
    import io

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT_BYTES / MB
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "code": code}))


def report(what: str, figures: tuple[float, float, int]) -> None:
    seconds, peak_mb, code = figures
    print(f"{what:<46} {seconds:6.2f} s   peak RSS {peak_mb:7.1f} MB   exit {code}")


def run(tests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        baseline, current = documents(tests)
        base, cur = root / "base.json", root / "cur.json"
        write_results(base, baseline)
        write_results(cur, current)
        shards = []
        nodeids = list(current["tests"])
        for shard in range(SHARDS):
            part = {nodeid: current["tests"][nodeid] for nodeid in nodeids[shard::SHARDS]}
            path = root / f"shard{shard}.json"
            write_results(path, {**current, "tests": part})
            shards.append(str(path))
        size_mb = cur.stat().st_size / MB
        print(f"{tests} tests, {size_mb:.0f} MB per results file ({SHARDS} shards for merge)")
        outputs = ["--junit", str(root / "gate.xml"), "--summary", str(root / "gate.md")]
        report(
            "gate BASE CUR --junit --summary",
            timed(["gate", "--baseline", str(base), "--current", str(cur), *outputs]),
        )
        report(
            f"gate BASE over {SHARDS} shards (merged first)",
            timed(["gate", "--baseline", str(base), "--current", *shards]),
        )
        report(
            f"merge {SHARDS} shards -o ALL",
            timed(["merge", *shards, "-o", str(root / "all.json")]),
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=100_000)
    return parser.parse_args()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        run(parse_args().tests)
