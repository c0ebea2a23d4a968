"""Benchmark: load, save and trim a 100,000-object automaton.jsonl; memory per object.

Run with ``python benchmarks/automaton_io.py`` (``--objects N`` to change the
size).  Everything happens in a temporary folder.  Figures printed:

* file size and bytes per line;
* load and save time (best of ``--repeat`` runs; saves include the fsync);
* the trim of a full file down to the default ``max_objects`` (archive append
  of the rest, fsync, atomic save);
* memory per loaded object, two ways: resident-set growth measured with
  psutil after ``gc.collect()`` (what the OS sees, first load in a fresh
  process), and the bytes ``tracemalloc`` still traces after the load (what
  Python allocated, independent of allocator reuse).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_automem.automaton.policies import MemoryOptimizedAutomaton
from pytest_automem.automaton.store import Automaton

KINDS = ("state", "transition", "event", "snapshot")


def realistic_line(index: int) -> str:
    """One object of a few fields, about 200 bytes as a JSON line."""
    obj = {
        "id": f"obj-{index:08d}",
        "kind": KINDS[index % len(KINDS)],
        "step": index,
        "created_at": f"2024-05-{1 + index % 28:02d}T12:{index % 60:02d}:{index % 59:02d}Z",
        "score": round((index * 7919 % 10007) / 10007, 6),
        "tags": ["alpha", "beta", f"group-{index % 97}"],
        "payload": {"source": f"worker-{index % 8}", "retries": index % 5, "ok": index % 3 != 0},
    }
    return json.dumps(obj, separators=(",", ":"))


def write_file(path: Path, count: int) -> None:
    """Write the test file line by line, keeping no objects alive."""
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(realistic_line(index))
            handle.write("\n")


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """Fastest of ``repeat`` runs in seconds: the run least disturbed by the machine."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def rss_per_object(path: Path) -> tuple[int, int]:
    """Resident growth of one load, after GC; returns (bytes, objects)."""
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    automaton = Automaton(path)
    gc.collect()
    grown = process.memory_info().rss - before
    return grown, len(automaton)


def traced_per_object(path: Path) -> tuple[int, int, int]:
    """Bytes tracemalloc traces for a loaded automaton; returns (kept, peak, objects)."""
    gc.collect()
    tracemalloc.start()
    try:
        automaton = Automaton(path)
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return kept, peak, len(automaton)


def trim_time(path: Path) -> tuple[float, int]:
    """Time of one trim of the full file to the default max_objects; (seconds, trimmed)."""
    automaton = MemoryOptimizedAutomaton(path)
    start = time.perf_counter()
    trimmed = automaton.trim()
    return time.perf_counter() - start, len(trimmed)


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="automem-bench-") as folder:
        path = Path(folder) / "automaton.jsonl"
        write_file(path, args.objects)
        size = path.stat().st_size
        rss_bytes, count = rss_per_object(path)
        load_s = best_of(args.repeat, lambda: Automaton(path))
        loaded = Automaton(path)
        save_s = best_of(args.repeat, loaded.save)
        del loaded
        traced, traced_peak, _ = traced_per_object(path)
        trim_s, trimmed = trim_time(path)

    print(f"automaton.jsonl with {count:,} objects, Python {sys.version.split()[0]}")
    print_table(
        [
            ("file size", f"{size / 2**20:.1f} MiB ({size / count:.0f} B/line)"),
            (
                f"load (best of {args.repeat})",
                f"{load_s:.3f} s ({load_s / count * 1e6:.2f} µs/obj)",
            ),
            (
                f"save (best of {args.repeat})",
                f"{save_s:.3f} s ({save_s / count * 1e6:.2f} µs/obj)",
            ),
            (f"trim to 2000 ({trimmed:,} archived)", f"{trim_s:.3f} s"),
            ("RSS growth per object", f"{rss_bytes / count:.0f} B"),
            ("traced bytes per object", f"{traced / count:.0f} B"),
            ("traced peak during load", f"{traced_peak / 2**20:.1f} MiB"),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
