"""What a passing budgeted test costs, measured side by side in one run.

    python benchmarks/budgeted_cost.py [--tests 300] [--rounds 7] [--against PATH]
        [--samples] [--flag-only]

Generates a suite of N short tests that each carry a ``memory_budget`` they
stay within (a third ``peak=``, a third ``growth=``, a third both; each
builds and drops ~2 MB; every other one uses a function-scoped fixture), then
runs it round-robin (the order rotates each
round) as:

    plain     the plugin not loaded (``-p no:automem``; the marker is unknown)
    this      this checkout's plugin
    against   another checkout's plugin (``--against PATH``, e.g. a worktree
              of an earlier commit), put first on ``PYTHONPATH``
    samples   this checkout with ``--automem-samples=DIR`` (``--samples``):
              every test's call kept as a snapshot file, its collections
              recorded as events; for a budgeted test the same as its
              samples kept beside a results file

``--flag-only`` runs the same tests without their markers under
``--automem`` (every configuration but ``plain``): what ``--automem-samples``
costs a test that ``--automem`` alone monitors, whose call it turns from a
brief span into a full window.

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
import shutil
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
#: Where ``--samples`` keeps the files: emptied before every run.
SAMPLES_OPTION = "--automem-samples={samples}"


def write_suite(folder: Path, tests: int, *, budgeted: bool = True) -> None:
    """Ten modules of tests that pass, budgeted (or without their markers)."""
    per_module = max(1, tests // 10)
    for module in range(0, tests, per_module):
        bodies = [
            TEST_BODY.format(n=n, budget=BUDGETS[n % len(BUDGETS)], fixture="rows" if n % 2 else "")
            for n in range(module, min(tests, module + per_module))
        ]
        if not budgeted:
            bodies = [re.sub(r"@pytest.mark.memory_budget\(.*\)\n", "", body) for body in bodies]
        source = "import pytest\n" + FIXTURE + "".join(bodies)
        (folder / f"test_budgeted_{module}.py").write_text(source)


def run_once(
    folder: Path, tests: int, plugin_path: Path | None, extra: tuple[str, ...] = ()
) -> float:
    """pytest's own session time, in seconds."""
    samples = folder / "samples"
    shutil.rmtree(samples, ignore_errors=True)  # each run writes its own files
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    args += [arg.replace("{samples}", str(samples)) for arg in extra]
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
    parser.add_argument(
        "--samples", action="store_true", help="add this checkout with --automem-samples"
    )
    parser.add_argument(
        "--flag-only", action="store_true", help="the tests without markers, under --automem"
    )
    options = parser.parse_args(argv)
    flags: tuple[str, ...] = ("--automem",) if options.flag_only else ()
    configurations: list[tuple[str, Path | None, tuple[str, ...]]] = [
        ("plain", None, ()),
        ("this", ROOT, flags),
    ]
    if options.against is not None:
        against = options.against.resolve()
        configurations.append((f"against {options.against}", against, flags))
    if options.samples:
        configurations.append(("this, --automem-samples", ROOT, (*flags, SAMPLES_OPTION)))
    times: dict[str, list[float]] = {label: [] for label, _, _ in configurations}
    with tempfile.TemporaryDirectory(prefix="automem-budgeted-") as folder:
        write_suite(Path(folder), options.tests, budgeted=not options.flag_only)
        for round_number in range(options.rounds):
            shift = round_number % len(configurations)
            for label, path, extra in configurations[shift:] + configurations[:shift]:
                times[label].append(run_once(Path(folder), options.tests, path, extra))
    plain = statistics.median(times["plain"])
    kind = "flag-only tests under --automem" if options.flag_only else "budgeted tests"
    print(f"{options.tests} passing {kind}, median of {options.rounds} rounds")
    print(f"{'configuration':<48} {'session s':>10} {'ratio':>7} {'extra per test':>15}")
    for label, values in times.items():
        median = statistics.median(values)
        extra_ms = (median - plain) / options.tests * 1e3
        print(f"{label:<48} {median:>10.2f} {median / plain:>6.2f}x {extra_ms:>12.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
