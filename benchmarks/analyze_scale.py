"""Benchmark: ``automem analyze`` on many plugin-style snapshots, and on one long window.

Run with ``python benchmarks/analyze_scale.py`` (``--files N --points P
--span-s S`` for the folder, ``--long-s L`` for the long window).
Everything happens in a temporary folder.  Figures printed:

* the folder: its size, and the wall and CPU time of ``automem analyze`` on
  it (a real process, text report), with the report's size in bytes, which
  must stay small whatever the number of files;
* one window of 1 ms samples lasting ``--long-s`` seconds: the same times.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.measure.pressure import PressureLevel
from pytest_automem.snapshots.files import sample_line, snapshot_path

MB = 1 << 20


def write_snapshot_file(folder: Path, index: int, points: int, span_ms: float) -> None:
    """A test's curve as the plugin keeps it: a header, ``points`` samples, a slow climb."""
    header = {"kind": "window", "version": 2, "label": f"t{index}", "source": "pytest",
              "test": f"test_m.py::test_{index}", "downsampled_from": points * 4}  # fmt: skip
    lines = [json.dumps(header) + "\n"]
    for k in range(points):
        rss = 100 * MB + random.randrange(5 * MB) + k * 1000
        t_ms = span_ms * k / max(1, points - 1)
        lines.append(sample_line(t_ms, rss, rss - 100 * MB, PressureLevel.LOW))
    snapshot_path(folder, f"t{index}", 1).write_text("".join(lines), encoding="utf-8")


def timed_analyze(target: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the child, and bytes of the text report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest_automem", "analyze", str(target)],
        capture_output=True, check=False, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        raise SystemExit(result.stderr.decode())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(result.stdout)


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--span-s", type=float, default=2.0)
    parser.add_argument("--long-s", type=float, default=240.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        many = Path(scratch) / "many"
        many.mkdir()
        for index in range(args.files):
            write_snapshot_file(many, index, args.points, args.span_s * 1000)
        wall, cpu, report = timed_analyze(many)
        print(f"{args.files:,} files of {args.points} samples over {args.span_s:g} s "
              f"({folder_size(many) / MB:.0f} MB): {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"text report {report:,} B")  # fmt: skip
        long = Path(scratch) / "long"
        long.mkdir()
        samples = int(args.long_s * 1000)
        write_snapshot_file(long, 0, samples, args.long_s * 1000)
        wall, cpu, report = timed_analyze(long)
        print(f"one window of {samples:,} samples over {args.long_s:g} s "
              f"({folder_size(long) / MB:.0f} MB): {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"text report {report:,} B")  # fmt: skip


if __name__ == "__main__":
    main()
