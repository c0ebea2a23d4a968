"""What a passing budgeted test costs, measured side by side in one run.

    python benchmarks/budgeted_cost.py [--tests 300] [--rounds 7] [--against PATH]

Generates a suite of N short tests that each carry a ``memory_budget`` they
stay within (a third ``peak=``, a third ``growth=``, a third both; each
builds and drops ~2 MB; every other one uses a function-scoped fixture), then
runs it round-robin (the order rotates each
round) as:

    plain     the plugin not loaded (``-p no:automem``; the marker is unknown)
    this      this checkout's plugin
    against   another checkout's plugin (``--against PATH``, e.g. a worktree
              of an earlier commit), put first on ``PYTHONPATH``

and prints, per configuration, the median wall time of pytest's session
("passed in"), the extra time per test over ``plain`` and the ratio to it.
A budgeted test pays for what makes its verdict exact (a garbage collection
and an allocator trim at each end, the kernel's mark reset, the trip wire
for its peak budget armed and disarmed); a failing test pays for its
diagnosis on top, which this does not measure.  Every run must pass all N
tests, or the script stops.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_BODY = """
@pytest.mark.memory_budget({budget})
def test_{n}({fixture}):
    built = [bytes(64) for _ in range(30_000)]
    assert len(built) == 30_000
"""
#: Every other test uses a function-scoped fixture: a budgeted test's
#: fixtures are measured one by one.
FIXTURE = """
@pytest.fixture
def rows():
    return list(range(1000))
"""
BUDGETS = ('peak="64MB"', 'growth="8MB"', 'peak="64MB", growth="8MB"')


def write_suite(folder: Path, tests: int) -> None:
    """Ten modules of budgeted tests that pass."""
    per_module = max(1, tests // 10)
    for module in range(0, tests, per_module):
        bodies = [
            TEST_BODY.format(n=n, budget=BUDGETS[n % len(BUDGETS)], fixture="rows" if n % 2 else "")
            for n in range(module, min(tests, module + per_module))
        ]
        source = "import pytest\n" + FIXTURE + "".join(bodies)
        (folder / f"test_budgeted_{module}.py").write_text(source)


def run_once(folder: Path, tests: int, plugin_path: Path | None) -> float:
    """pytest's own session time, in seconds."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    for other in ("benchmark", "xdist", "hypothesispytest", "memray"):
        args += ["-p", f"no:{other}"]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if plugin_path is None:
        args += ["-p", "no:automem", "-W", "ignore::pytest.PytestUnknownMarkWarning"]
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), env.get("PYTHONPATH", "")])
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, check=False)
    passed = re.search(r"(\d+) passed in ([\d.]+)s", done.stdout)
    if done.returncode != 0 or passed is None or int(passed.group(1)) != tests:
        sys.exit(f"budgeted_cost: a run did not pass all {tests} tests:\n{done.stdout[-2000:]}")
    return float(passed.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=300, help="budgeted tests (300)")
    parser.add_argument("--rounds", type=int, default=7, help="round-robin rounds (7)")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    options = parser.parse_args(argv)
    configurations: list[tuple[str, Path | None]] = [("plain", None), ("this", ROOT)]
    if options.against is not None:
        configurations.append((f"against {options.against}", options.against.resolve()))
    times: dict[str, list[float]] = {label: [] for label, _ in configurations}
    with tempfile.TemporaryDirectory(prefix="automem-budgeted-") as folder:
        write_suite(Path(folder), options.tests)
        for round_number in range(options.rounds):
            shift = round_number % len(configurations)
            for label, path in configurations[shift:] + configurations[:shift]:
                times[label].append(run_once(Path(folder), options.tests, path))
    plain = statistics.median(times["plain"])
    print(f"{options.tests} passing budgeted tests, median of {options.rounds} rounds")
    print(f"{'configuration':<48} {'session s':>10} {'ratio':>7} {'extra per test':>15}")
    for label, values in times.items():
        median = statistics.median(values)
        extra_ms = (median - plain) / options.tests * 1e3
        print(f"{label:<48} {median:>10.2f} {median / plain:>6.2f}x {extra_ms:>12.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
