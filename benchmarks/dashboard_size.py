"""Benchmark: the HTML dashboard's size and write time for 5,000 and 100,000 tests.

Run with ``python benchmarks/dashboard_size.py`` (``--tests 5000,100000`` to
change the sizes; ``--runs 3`` for that many results files, oldest first,
so the trends and the gate's comparison are in the page too).  Everything
happens in a temporary folder.  Records look like the plugin's: the
contract's keys with node ids of ~60 characters, one test in fifty failing
on memory (with its one-line message and a ~600-byte report), and one in
twenty with a samples file of 500 points and three events (the curves
embedded are capped, failing tests first).

Each dashboard is written by ``automem report`` in a fresh process, as CI
runs it; printed per size: the results file's size, the HTML's size (and
per test), the curves embedded, the command's wall time and peak RSS, and,
where Chromium is installed, how long the page takes to draw its summary
and first page of rows once loaded (navigation start to the script's end).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.measure._platform import MAXRSS_UNIT_BYTES
from pytest_automem.results.results_file import write_results
from pytest_automem.snapshots.files import SnapshotEvent

MB = 1 << 20
#: One test in this many fails on memory / has a samples file.
FAILING_EVERY = 50
SAMPLES_EVERY = 20
POINTS = 500


def record(rng: random.Random, index: int, shift: float) -> dict[str, Any]:
    peak = int(rng.randrange(0, 60 * MB) * shift)
    failing = index % FAILING_EVERY == 0
    message = f"peak {peak / MB:.1f} MB > budget 8.0 MB, crossed at app/module.py:{index % 300}"
    result: dict[str, Any] = {
        "peak_bytes": peak,
        "growth_bytes": rng.randrange(-MB, 4 * MB),
        "rate_bytes_per_s": rng.random() * MB,
        "max_pressure": "MEDIUM" if peak >= 50 * MB else "LOW",
        "samples": rng.randrange(1, 2000),
        "interval_p50_ms": 1.0,
        "interval_p99_ms": round(1.0 + rng.random() * 0.4, 3),
        "peak_source": "kernel-hwm",
        "duration_s": round(rng.random() * 2, 4),
        "verdict": "fail" if failing else "pass",
        "violations": [message] if failing else [],
        "message": message if failing else None,
        "report": (message + "\n\nwhere:\n" + "  frame line in a stack\n" * 25)
        if failing
        else None,
        "budget": {"peak_bytes": 8 * MB, "growth_bytes": None} if failing else None,
    }
    if index % SAMPLES_EVERY == 0:
        result["samples_file"] = f"t{index}.jsonl"
    return result


def node_id(index: int) -> str:
    module = f"tests/unit/test_module_{index % 400:03d}.py"
    return f"{module}::TestThing::test_case_{index}[param-{index % 7}]"


def write_samples(folder: Path, tests: int, rng: random.Random) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(0, tests, SAMPLES_EVERY):
        lines = [json.dumps({"kind": "window", "version": 2, "label": node_id(index), "pid": 1,
                             "baseline_bytes": 60 * MB, "pressure_basis": "relative",
                             "thresholds_bytes": [50 * MB, 200 * MB, 500 * MB]})]  # fmt: skip
        top = rng.randrange(MB, 80 * MB)
        for point in range(POINTS):
            rss = 60 * MB + int(top * point / POINTS) + rng.randrange(0, MB)
            lines.append(json.dumps({"t_ms": point * 2.0, "rss_bytes": rss, "pressure": "LOW"}))
        for t_ms, kind in ((100.0, "gc"), (400.0, "trim"), (700.0, "level")):
            lines.append(
                SnapshotEvent(t_ms, kind, 70 * MB, 65 * MB, "benchmark").to_line().rstrip()
            )
        (folder / f"t{index}.jsonl").write_text("\n".join(lines) + "\n")


def run_report(paths: list[Path], out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, and the command's line, from a fresh process."""
    code = (
        "import resource, sys, time\n"
        "from pytest_automem.cli import main\n"
        "start = time.perf_counter()\n"
        "code = main(sys.argv[1:])\n"
        "wall = time.perf_counter() - start\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(f'@@ {wall} {rss}', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    args = [sys.executable, "-c", code, "report", *map(str, paths), "-o", str(out)]
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run(args, capture_output=True, text=True, check=True, cwd=root)
    wall, rss = result.stderr.strip().rsplit("@@ ", 1)[1].split()
    return float(wall), int(rss) * MAXRSS_UNIT_BYTES / MB, result.stdout.strip()


def open_in_chromium(page: Path) -> str:
    """How long headless Chromium's page script took to draw the summary and the
    first page of rows (``data-automem-ready-ms``), or why it is not known."""
    browser = shutil.which("chromium")
    if browser is None:
        return "no chromium"
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()]
    dom = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300).stdout
    found = re.search(r'data-automem-ready-ms="(\d+)"', dom)
    errors = "data-automem-errors" in dom.split(">", 2)[1]
    if found is None or errors:
        return "did not render"
    return f"ready {int(found.group(1)) / 1000:.2f} s after navigation"


def measure(tests: int, runs: int, folder: Path) -> None:
    rng = random.Random(tests)
    write_samples(folder / "samples", tests, rng)
    paths = []
    for run in range(runs):
        shift = 1.0 + 0.1 * run
        records = {node_id(i): record(rng, i, shift) for i in range(tests)}
        session = {"python": "3.11.7", "sampler_kind": "process-procfs", "samples_dir": "samples"}
        path = folder / f"run{run}.json"
        write_results(path, {"version": 1, "session": session, "tests": records})
        paths.append(path)
    out = folder / f"dashboard-{tests}.html"
    wall, rss_mb, line = run_report(paths, out)
    size = out.stat().st_size
    print(
        f"{tests:>7,} tests, {runs} run(s): results file {paths[-1].stat().st_size / MB:6.1f} MB, "
        f"HTML {size / MB:6.2f} MB ({size / tests:5.0f} B/test), written in {wall:5.2f} s, "
        f"peak RSS {rss_mb:5.0f} MB  [{line.split(': ', 1)[1].split(' -> ')[0]}]"
    )
    print(f"         in headless Chromium: {open_in_chromium(out)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", default="5000,100000", help="comma-separated test counts")
    parser.add_argument("--runs", type=int, default=1, help="results files per size (trends)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")
    for tests in (int(part) for part in args.tests.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            measure(tests, args.runs, Path(folder))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(this script's own CPU: {usage.ru_utime + usage.ru_stime:.1f} s)")


if __name__ == "__main__":
    main()
