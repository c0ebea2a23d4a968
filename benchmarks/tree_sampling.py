"""What sampling a process tree costs, with 1, 10 and 100 processes.

    python benchmarks/tree_sampling.py [--processes 1,10,100] [--seconds 2] [--portable]

For each tree size (a python root and ``sleep`` children), prints:

- the cost of one sample (a ``statm`` read per process, summed) and of one
  look at the tree (the process list, names and marks, the table), timed
  in this process on the sampler's own code;
- a real tree sampler at 1 ms for ``--seconds``: samples per second, the
  interval's p50 and p99, and the sampler process's CPU (user + system, in
  % of one core), beside the sampler of one process.

Linux only (procfs); ``--portable`` measures the psutil readers that macOS
and Windows get, on Linux.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from checkout import describe_checkout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.measure import sampler_child as sampler
from pytest_automem.measure.monitor import MemoryMonitor

ROOT = Path(__file__).resolve().parents[1]
CAPACITY = 16
#: Starts ARGV[1] sleepers, says so, and sleeps.
TREE_ROOT = """
import subprocess, sys, time
sleepers = [subprocess.Popen(["sleep", "600"]) for _ in range(int(sys.argv[1]))]
print("ready", flush=True)
time.sleep(600)
"""


@dataclass(frozen=True)
class Figures:
    label: str
    sample_us: float | None
    look_us: float | None
    samples_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_percent: float


def start_tree(processes: int) -> subprocess.Popen[str]:
    root = subprocess.Popen(
        [sys.executable, "-c", TREE_ROOT, str(processes - 1)], stdout=subprocess.PIPE, text=True
    )
    assert root.stdout is not None
    root.stdout.readline()
    return root


def stop_tree(root: subprocess.Popen[str]) -> None:
    for pid in children_of(root.pid):
        os.kill(pid, 9)
    root.kill()
    root.wait()


def children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and sampler._procfs_parent(int(name)) == pid:
            found.append(int(name))
    return found


def in_process_costs(root_pid: int, max_processes: int, portable: bool) -> tuple[float, float]:
    """Median µs of one sample and of one look, on the sampler's own tree code."""
    buffer = bytearray(sampler.ring_size_bytes(CAPACITY, max_processes))
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, CAPACITY, 1_000_000, 0, 0, 0, 0, root_pid)
    table = sampler.ProcessTable(buffer, CAPACITY, max_processes)  # type: ignore[arg-type]
    source = sampler.psutil_source() if portable else sampler.procfs_source()
    root = source.open(root_pid)
    assert root is not None
    tree = sampler.ProcessTree(root, max_processes, table, source, time.monotonic_ns())
    sample_us = median_us(tree.sample, batches=21, calls=200)
    look_us = median_us(lambda: tree.scan(time.monotonic_ns()), batches=21, calls=5)
    for member in tree.members:
        member.process.close()
    return sample_us, look_us


def median_us(call: object, *, batches: int, calls: int) -> float:
    assert callable(call)
    times = []
    for _ in range(batches):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        times.append((time.perf_counter_ns() - started) / calls / 1000)
    return statistics.median(times)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_sampler(
    root_pid: int, tree: bool, seconds: float, portable: bool
) -> tuple[float, float, float, float]:
    """Samples/s, p50 and p99 intervals (ms), and the sampler's CPU (% of a core)."""
    with MemoryMonitor(root_pid, tree=tree, portable=portable) as monitor:
        time.sleep(0.2)  # past the start and the first look
        cpu_before = cpu_seconds(monitor.sampler_pid)
        window = monitor.window()
        time.sleep(seconds)
        result = window.stop()
        cpu = cpu_seconds(monitor.sampler_pid) - cpu_before
    return (
        result.samples / result.duration_s,
        result.interval_p50_ms or 0.0,
        result.interval_p99_ms or 0.0,
        100 * cpu / result.duration_s,
    )


def measure(processes: int, seconds: float, portable: bool) -> list[Figures]:
    root = start_tree(processes)
    try:
        rows = []
        if processes == 1:
            plain = run_sampler(root.pid, False, seconds, portable)
            rows.append(Figures("1 (one-process sampler)", None, None, *plain))
        sample_us, look_us = in_process_costs(root.pid, max(processes, 1), portable)
        tree = run_sampler(root.pid, True, seconds, portable)
        rows.append(Figures(str(processes), sample_us, look_us, *tree))
        return rows
    finally:
        stop_tree(root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,10,100", help="tree sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each sampler runs")
    parser.add_argument("--portable", action="store_true", help="the psutil readers")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("tree_sampling.py: Linux only (procfs)", file=sys.stderr)
        return 2
    sizes = [int(size) for size in args.processes.split(",")]
    readers = "psutil" if args.portable else "procfs"
    print(f"tree sampling cost ({readers}), {describe_checkout(ROOT, 'pytest_automem')}")
    entries = len(os.listdir("/proc"))
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {entries} /proc entries")
    print()
    print(
        f"{'processes':<24} {'sample µs':>9} {'look µs':>8} {'samples/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'CPU %':>6}"
    )
    for size in sizes:
        for row in measure(size, args.seconds, args.portable):
            sample = "-" if row.sample_us is None else f"{row.sample_us:.1f}"
            look = "-" if row.look_us is None else f"{row.look_us:.0f}"
            print(
                f"{row.label:<24} {sample:>9} {look:>8} {row.samples_per_s:>9.0f} "
                f"{row.p50_ms:>7.3f} {row.p99_ms:>7.3f} {row.cpu_percent:>6.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
