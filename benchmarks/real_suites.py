"""Plugin overhead on real projects' test suites, plain and with automem, side by side.

    python benchmarks/real_suites.py [--suites attrs,packaging] [--rounds 3] [--quick]
        [--cache DIR] [--automem PATH] [--profile SUITE]

The synthetic suite of ``plugin_overhead.py`` has tests of a few microseconds
each; real suites have fixtures, imports, hypothesis, temporary files and
memory that grows.  The issue's targets are judged here, on pinned releases of
well-known projects whose sdists ship their tests:

1. downloads each project's sdist (exact version, pinned below) from PyPI with
   ``pip download --no-deps --no-binary :all:`` into a cache folder outside
   the repository (default ``~/.cache/automem-real-suites``) and extracts it;
2. makes a scratch venv per project in the cache, and installs there the
   project, its test dependencies (pinned), pytest, pytest-xdist and
   pytest-automem built as a wheel from ``--automem PATH`` (default: this
   repository), non-editable, so what is measured is what users install;
3. runs each suite plain (A) and with automem (B), alternately, in
   ``--rounds`` rounds (the order flips each round, A B then B A, so drift
   on the machine falls on both sides), in two configurations, each serial
   and with ``-n 2``:

       plain      ``pytest``               vs ``pytest --automem``
       ci         ``pytest --junitxml=Y``  vs ``pytest --automem --automem-json=X --junitxml=Y``

   Both sides get ``-p no:cacheprovider``, ``-p no:randomly`` and the same
   deselections (listed per suite below, each with why).  One uncounted
   warm-up run of each side comes first (bytecode caches, page cache).

Printed per suite and configuration: the median wall times and their ratio,
the median of the per-round ratios with their range, the peak RSS of the
pytest process on each side (``wait4``'s ``ru_maxrss``: the largest of the
pytest process and the children it reaped, so under ``-n 2`` the largest of
controller and workers; serial runs are the ones to read), the memory held
per test, (peak with - peak without) / tests, the JUnit file's size on each
side, and every test whose outcome (passed, failed, skipped, error) differs
between the two sides of a round, read from both JUnit files of the ``ci``
configuration.  The ``plain`` configuration writes no JUnit (that would make
it the ``ci`` one); its outcome counts from pytest's summary line are
compared instead.

``--profile SUITE`` instead runs that suite once serially with ``--automem``
under ``cProfile`` and prints where the plugin's time goes (cProfile inflates
Python-heavy code; read the shares, not the seconds).

Standard library only, plus pip and venv.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from checkout import describe_checkout

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path.home() / ".cache" / "automem-real-suites"

#: The runner's own versions, the same in every venv so suites compare.
RUNNER = ("pytest==9.0.3", "pytest-xdist==3.8.0")


@dataclass(frozen=True)
class Suite:
    """A pinned release whose sdist holds its tests, and how to run them."""

    name: str
    version: str
    #: Test dependencies, pinned (the projects' own test groups, minus
    #: coverage, type checkers and other tools the tests do not import).
    test_deps: tuple[str, ...]
    #: Arguments naming what to run, relative to the extracted sdist.
    args: tuple[str, ...]
    #: Node ids (or ``-k``-free prefixes) deselected on both sides, with why.
    deselect: tuple[tuple[str, str], ...] = ()
    #: Install the released wheel of the same version instead of the sdist
    #: (for a project whose sdist needs a compiler).  None does so far.
    from_wheel: bool = False

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


SUITES: tuple[Suite, ...] = (
    Suite(
        "attrs",
        "26.1.0",
        ("hypothesis==6.155.2", "pympler==1.1", "cloudpickle==3.1.3"),
        ("tests",),
        (
            (
                "tests/test_converters.py::TestPipe::test_wrapped_annotation",
                "fails plain here: the wrapped converter's return annotation is not copied",
            ),
        ),
    ),
    Suite(
        "packaging",
        "26.4",
        ("hypothesis==6.155.2", "pretend==1.0.9", "tomli_w==1.2.0"),
        ("tests",),
    ),
    Suite(
        "python-dateutil",
        "4.0.0",
        # pytest-cov only registers the ``no_cover`` marker that the tests use
        # (unknown marks are errors in this suite); no run passes ``--cov``.
        ("hypothesis==6.155.2", "freezegun==1.5.5", "attrs==26.1.0", "pytest-cov==7.0.0"),
        ("tests",),
        (
            (
                "tests/test_tz.py::test_gettz_link[tzpath-Europe/Monaco-Europe/Paris]",
                "fails plain here: this machine's tzdata no longer links Monaco to Paris",
            ),
            (
                "tests/test_tzfile.py::test_gettz_local_abbreviation_without_time_zone_data",
                "fails plain here: depends on the machine's local time zone setup",
            ),
            (
                "tests/test_tzpath_data.py::test_dst_matches_tzdata_zi[tzpath]",
                "fails plain here: the system tzdata differs from the bundled tzdata.zi",
            ),
        ),
    ),
    Suite(
        "pyparsing",
        "3.3.3",
        ("railroad-diagrams==3.0.1", "jinja2==3.1.6"),
        ("tests",),
    ),
)


# -- preparing a suite: download, extract, venv, install ------------------------


class SetupFailed(Exception):
    """A download or install failed; the message is one line naming the project."""


def run_quiet(command: Sequence[str | Path], what: str, cwd: Path | None = None) -> None:
    """Run a setup command; on failure raise SetupFailed with its last error line."""
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines or ["no output"]
        raise SetupFailed(f"{what}: {errors[-1].strip()}")


def download_sdist(suite: Suite, cache: Path) -> Path:
    """The sdist of the pinned release, downloaded once into the cache."""
    folder = cache / "sdists"
    folder.mkdir(parents=True, exist_ok=True)
    found = find_sdist(suite, folder)
    if found is None:
        run_quiet(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                suite.pin,
                "-d",
                folder,
            ],
            f"cannot download {suite.pin}",
        )
        found = find_sdist(suite, folder)
    if found is None:
        raise SetupFailed(f"cannot download {suite.pin}: pip wrote no sdist")
    return found


def find_sdist(suite: Suite, folder: Path) -> Path | None:
    normalized = re.sub(r"[-_.]+", "_", suite.name).lower()
    for path in folder.glob("*.tar.gz"):
        stem = path.name[: -len(".tar.gz")]
        name, _, version = stem.rpartition("-")
        if re.sub(r"[-_.]+", "_", name).lower() == normalized and version == suite.version:
            return path
    return None


def extract(sdist: Path, cache: Path) -> Path:
    """The sdist's top folder under ``cache/src``, extracted once."""
    target = cache / "src"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        if not (target / top).is_dir():
            archive.extractall(target, filter="data")
    return target / top


def build_automem_wheel(source: Path, cache: Path) -> Path:
    """A wheel of pytest-automem built from a copy of ``source``.

    Built from a copy so the checkout is never written to (setuptools leaves
    ``build/`` and egg-info behind), and installed as a wheel so the suites
    run the plugin as users get it, not an editable checkout.
    """
    copy = cache / "automem-src"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(
        source,
        copy,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "dist", "*.egg-info"),
    )
    wheels = cache / "automem-wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    run_quiet(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, copy],
        f"cannot build pytest-automem from {source}",
    )
    shutil.rmtree(copy, ignore_errors=True)
    found = sorted(wheels.glob("pytest_automem-*.whl"))
    if not found:
        raise SetupFailed(f"cannot build pytest-automem from {source}: no wheel")
    return found[0]


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def prepare_venv(suite: Suite, sdist: Path, cache: Path, wheel: Path) -> Path:
    """The suite's scratch venv with everything installed; returns its python.

    The project and its test dependencies are installed once (a stamp file
    records what); the automem wheel is reinstalled every time, since the
    code under test changes between runs while its version does not.
    """
    venv = cache / "venvs" / f"{suite.name}-{suite.version}"
    python = venv_python(venv)
    wanted = [suite.pin if suite.from_wheel else str(sdist), *suite.test_deps, *RUNNER]
    stamp = venv / "automem-real-suites.stamp"
    if not python.exists():
        run_quiet([sys.executable, "-m", "venv", venv], f"cannot create a venv for {suite.pin}")
    if not stamp.exists() or stamp.read_text() != "\n".join(wanted):
        run_quiet(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
            f"cannot install {suite.pin} and its test dependencies",
        )
        stamp.write_text("\n".join(wanted))
    run_quiet(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
        f"cannot install pytest-automem into the venv of {suite.pin}",
    )
    run_quiet(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
            wheel,
        ],
        f"cannot install pytest-automem into the venv of {suite.pin}",
    )
    return python


@dataclass
class Prepared:
    suite: Suite
    python: Path
    source: Path
    plugins: frozenset[str]


def installed_plugins(python: Path) -> frozenset[str]:
    """The pytest11 entry-point names installed in a venv."""
    code = (
        "import importlib.metadata as m;"
        "print('\\n'.join(e.name for e in m.entry_points(group='pytest11')))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return frozenset(out.split())


# -- runs ----------------------------------------------------------------------


SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


@dataclass
class Run:
    """One pytest run: wall time, peak RSS, the summary's counts, its JUnit outcomes."""

    wall_s: float
    cpu_s: float
    maxrss_kib: int
    counts: dict[str, int]
    junit_bytes: int | None = None
    outcomes: dict[str, str] | None = None

    @property
    def tests(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "deselected")


class RunFailed(Exception):
    """pytest did not run the suite (exit code other than 0 or 1)."""


@dataclass
class Timed:
    wall_s: float
    #: User + system CPU of the process and the children it reaped (the
    #: plugin's sampler, xdist's workers): less sensitive than wall time to
    #: other work on a shared machine.
    cpu_s: float
    maxrss_kib: int
    output: str
    code: int


def timed_run(command: list[str], cwd: Path, env: dict[str, str]) -> Timed:
    """Wall time, CPU time, peak RSS, output and exit code of one subprocess.

    ``wait4`` gives this child's own rusage, so each run's peak is its own,
    not the running maximum over every child that RUSAGE_CHILDREN keeps.
    """
    with tempfile.TemporaryFile(mode="w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Timed(wall, cpu, usage.ru_maxrss, out.read(), process.returncode)


def summary_counts(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 failed, 120 passed, ... in 4.2s")."""
    for line in reversed(output.splitlines()):
        if re.search(r" in [\d.]+s", line):
            return {
                kind.rstrip("s") if kind.startswith("error") else kind: int(n)
                for n, kind in SUMMARY.findall(line)
            }
    return {}


def junit_outcomes(path: Path) -> dict[str, str]:
    """Test id -> passed / failed / skipped / error, from a JUnit XML file."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test can appear twice (an error in teardown after a pass): the worst counts.
        if outcomes.get(test_id) not in ("error", "failed"):
            outcomes[test_id] = outcome
    return outcomes


@dataclass(frozen=True)
class Config:
    """One comparison: A (plain) against B (automem), serial or with -n 2."""

    key: str
    label: str
    xdist: bool
    junit: bool

    def side_args(self, automem: bool, out: Path) -> list[str]:
        args = ["-n", "2"] if self.xdist else []
        if self.junit:
            args.append(f"--junitxml={out / 'junit.xml'}")
        if automem:
            args.append("--automem")
            if self.junit:
                args.append(f"--automem-json={out / 'automem.json'}")
        return args


CONFIGS = (
    Config("plain", "--automem vs plain", xdist=False, junit=False),
    Config("ci", "CI: --automem --automem-json --junitxml vs --junitxml", xdist=False, junit=True),
    Config("plain -n2", "--automem vs plain, -n 2", xdist=True, junit=False),
    Config("ci -n2", "CI configuration, -n 2", xdist=True, junit=True),
)


def base_command(prepared: Prepared) -> list[str]:
    """What both sides share: the suite, quiet output, no cache, the deselections."""
    command = [str(prepared.python), "-m", "pytest", *prepared.suite.args, "-q"]
    command += ["-p", "no:cacheprovider"]
    if "randomly" in prepared.plugins:
        command += ["-p", "no:randomly"]
    for node_id, _why in prepared.suite.deselect:
        command.append(f"--deselect={node_id}")
    return command


def clean_env() -> dict[str, str]:
    """The environment without anything that would change pytest's setup."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "VIRTUAL_ENV", "COV_", "HYPOTHESIS"))
        and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP")
    }
    env["PYTHONHASHSEED"] = "0"  # the same collection order every run, on both sides
    return env


#: ``--keep-results DIR``: where each automem run's results file is copied.
KEEP_RESULTS: list[Path] = []


def run_side(prepared: Prepared, config: Config, automem: bool, scratch: Path) -> Run:
    """One run of one side; outputs go to a fresh folder under ``scratch``."""
    out = Path(tempfile.mkdtemp(dir=scratch))
    command = base_command(prepared) + config.side_args(automem, out)
    timed = timed_run(command, prepared.source, clean_env())
    if timed.code not in (0, 1):
        tail = " | ".join(timed.output.strip().splitlines()[-3:])
        side = "automem" if automem else "plain"
        raise RunFailed(f"{prepared.suite.name} [{config.key}, {side}] exit {timed.code}: {tail}")
    run = Run(timed.wall_s, timed.cpu_s, timed.maxrss_kib, summary_counts(timed.output))
    junit = out / "junit.xml"
    if config.junit and junit.exists():
        run.junit_bytes = junit.stat().st_size
        run.outcomes = junit_outcomes(junit)
    results = out / "automem.json"
    if KEEP_RESULTS and results.exists():
        _keep_results(results, KEEP_RESULTS[0], f"{prepared.suite.name}-{config.key}")
    shutil.rmtree(out, ignore_errors=True)
    return run


def _keep_results(results: Path, folder: Path, stem: str) -> None:
    """Copy a run's results file as ``STEM-N.json`` (N counts up), for the gate's
    false-alarm count across runs of the same code."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem.replace(" ", "")
    number = 1 + sum(1 for _ in folder.glob(f"{stem}-*.json"))
    shutil.copyfile(results, folder / f"{stem}-{number}.json")


@dataclass
class Pairs:
    """The rounds of one suite in one configuration: plain (A) and automem (B)."""

    plain: list[Run] = field(default_factory=list)
    automem: list[Run] = field(default_factory=list)


def run_config(prepared: Prepared, config: Config, rounds: int, scratch: Path) -> Pairs:
    """Alternate the two sides for ``rounds`` rounds, flipping the order each round."""
    pairs = Pairs()
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for automem in order:
            run = run_side(prepared, config, automem, scratch)
            (pairs.automem if automem else pairs.plain).append(run)
            side = "automem" if automem else "plain"
            print(
                f"    {config.key:10} round {r + 1} {side:8} {run.wall_s:7.2f} s "
                f"{run.cpu_s:7.2f} s CPU "
                f"{run.maxrss_kib / 1024:6.1f} MB  {format_counts(run.counts)}",
                flush=True,
            )
    return pairs


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no summary"


# -- figures -------------------------------------------------------------------


@dataclass
class Figures:
    """What one configuration of one suite printed as a row."""

    suite: str
    config: Config
    tests: int
    plain_s: float
    automem_s: float
    paired: list[float]
    plain_cpu_s: float
    automem_cpu_s: float
    plain_rss_mb: float
    automem_rss_mb: float
    plain_junit_kb: float | None
    automem_junit_kb: float | None
    changes: list[str]

    @property
    def ratio(self) -> float:
        return self.automem_s / self.plain_s

    @property
    def held_per_test_kb(self) -> float:
        return (self.automem_rss_mb - self.plain_rss_mb) * 1024 / max(self.tests, 1)


def outcome_changes(pairs: Pairs) -> list[str]:
    """Tests whose outcome differs between the two sides of a round, by name."""
    changes: dict[str, set[str]] = {}
    for plain, automem in zip(pairs.plain, pairs.automem, strict=True):
        if plain.outcomes is not None and automem.outcomes is not None:
            for test_id in sorted(set(plain.outcomes) | set(automem.outcomes)):
                a = plain.outcomes.get(test_id, "absent")
                b = automem.outcomes.get(test_id, "absent")
                if a != b:
                    changes.setdefault(test_id, set()).add(f"{a} -> {b}")
        elif plain.counts != automem.counts:
            key = f"summary: {format_counts(plain.counts)} -> {format_counts(automem.counts)}"
            changes.setdefault(key, set())
    return [f"{t}: {', '.join(sorted(v))}" if v else t for t, v in sorted(changes.items())]


def figures(suite: Suite, config: Config, pairs: Pairs) -> Figures:
    def median_kb(runs: list[Run]) -> float | None:
        sizes = [r.junit_bytes for r in runs if r.junit_bytes is not None]
        return statistics.median(sizes) / 1024 if sizes else None

    return Figures(
        suite=suite.name,
        config=config,
        tests=statistics.median(r.tests for r in pairs.plain),
        plain_s=statistics.median(r.wall_s for r in pairs.plain),
        automem_s=statistics.median(r.wall_s for r in pairs.automem),
        paired=[b.wall_s / a.wall_s for a, b in zip(pairs.plain, pairs.automem, strict=True)],
        plain_cpu_s=statistics.median(r.cpu_s for r in pairs.plain),
        automem_cpu_s=statistics.median(r.cpu_s for r in pairs.automem),
        plain_rss_mb=statistics.median(r.maxrss_kib for r in pairs.plain) / 1024,
        automem_rss_mb=statistics.median(r.maxrss_kib for r in pairs.automem) / 1024,
        plain_junit_kb=median_kb(pairs.plain),
        automem_junit_kb=median_kb(pairs.automem),
        changes=outcome_changes(pairs),
    )


def table(rows: list[Figures]) -> Iterator[str]:
    """The results as a Markdown table (also readable in a terminal)."""
    yield (
        "| suite | tests | configuration | plain s | automem s | ratio | paired [range] "
        "| CPU ratio | peak RSS MB plain / automem | held KB/test | JUnit KB plain / automem "
        "| outcome changes |"
    )
    yield "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for f in rows:
        paired = statistics.median(f.paired)
        junit = (
            f"{f.plain_junit_kb:.0f} / {f.automem_junit_kb:.0f}"
            if f.plain_junit_kb is not None and f.automem_junit_kb is not None
            else "-"
        )
        yield (
            f"| {f.suite} | {f.tests} | {f.config.key} | {f.plain_s:.2f} | {f.automem_s:.2f} "
            f"| {f.ratio:.3f}× | {paired:.3f}× [{min(f.paired):.3f}–{max(f.paired):.3f}] "
            f"| {f.automem_cpu_s / f.plain_cpu_s:.3f}× "
            f"| {f.plain_rss_mb:.1f} / {f.automem_rss_mb:.1f} | {f.held_per_test_kb:.2f} "
            f"| {junit} | {len(f.changes)} |"
        )


# -- profile -------------------------------------------------------------------


PROFILE_REPORT = """
import pstats, sys
stats = pstats.Stats(sys.argv[1])
total = stats.total_tt
raw = stats.stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
ours = {k: v for k, v in raw.items() if "pytest_automem" in k[0]}
own = sum(v[2] for v in ours.values())
print(f"profiled run: {total:.2f} s of CPU in Python functions (cProfile)")
print(f"time inside pytest_automem functions themselves (tottime): {own:.3f} s, "
      f"{own / total:.1%}")
# Entry points: our functions called from outside our package; their cumulative
# time is everything the plugin costs, the calls it makes included.
entry = 0.0
for key, (cc, nc, tt, ct, callers) in ours.items():
    outside = {c: v for c, v in callers.items() if "pytest_automem" not in c[0]}
    if outside:
        entry += sum(v[3] for v in outside.values())
print(f"cumulative time of pytest_automem entered from outside it: {entry:.3f} s, "
      f"{entry / total:.1%} (upper bound: recursion and nested entries count twice)")
for key, (cc, nc, tt, ct, callers) in raw.items():
    if key[2] in ("<built-in method gc.collect>",):
        from_us = {c: v for c, v in callers.items() if "pytest_automem" in c[0]}
        print(f"gc.collect: {nc} calls, {tt:.3f} s in all ({tt / total:.1%}); from "
              f"pytest_automem: {sum(v[1] for v in from_us.values())} calls, "
              f"{sum(v[3] for v in from_us.values()):.3f} s")
        for c, v in sorted(from_us.items(), key=lambda kv: -kv[1][3]):
            print(f"    {v[1]:6d} calls {v[3]:8.3f} s  from {c[2]} ({c[0].split('/')[-1]}:{c[1]})")
print("top pytest_automem functions by cumulative time:")
print(f"{'calls':>9} {'tottime s':>10} {'cumtime s':>10} {'share':>7}  function")
for key, (cc, nc, tt, ct, callers) in sorted(ours.items(), key=lambda kv: -kv[1][3])[:25]:
    where = key[0].split("pytest_automem/")[-1]
    print(f"{nc:9d} {tt:10.3f} {ct:10.3f} {ct / total:7.1%}  {key[2]} ({where}:{key[1]})")
"""


def profile(prepared: Prepared, scratch: Path) -> None:
    """Run the suite serially under cProfile with automem, in both configurations.

    Only the automem side is profiled: the plugin's share is read off the
    profile itself (its functions and the calls they make), not by
    subtracting two noisy runs.
    """
    for config in (c for c in CONFIGS if not c.xdist):
        out = Path(tempfile.mkdtemp(dir=scratch))
        stats = out / "automem.prof"
        command = base_command(prepared) + config.side_args(True, out)
        command[1:3] = ["-m", "cProfile", "-o", str(stats), "-m", "pytest"]
        timed = timed_run(command, prepared.source, clean_env())
        counts = format_counts(summary_counts(timed.output))
        print(f"\n### {config.label}: {shlex.join(command[1:])}")
        print(f"cProfile run: {timed.wall_s:.1f} s wall, exit {timed.code}, {counts}")
        report = subprocess.run(
            [str(prepared.python), "-c", PROFILE_REPORT, str(stats)],
            capture_output=True,
            text=True,
            check=False,
        )
        print(report.stdout + report.stderr, flush=True)


# -- main ----------------------------------------------------------------------


def automem_source(path: Path) -> str:
    """The plugin's source folder and its git commit, when it is a checkout."""
    return describe_checkout(path, "pytest_automem")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ",".join(s.name for s in SUITES)
    parser.add_argument("--suites", default=names, help=f"comma-separated subset of {names}")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--quick", action="store_true", help="one round, serial only")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"({DEFAULT_CACHE})")
    parser.add_argument(
        "--automem", type=Path, default=REPO, help="pytest-automem source to install (this repo)"
    )
    parser.add_argument(
        "--profile", metavar="SUITE", help="profile one suite with --automem instead of timing"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--keep-results",
        type=Path,
        metavar="DIR",
        help="copy each CI run's results file here as SUITE-CONFIG-N.json (for the gate)",
    )
    args = parser.parse_args()
    known = {s.name for s in SUITES}
    wanted = [n.strip() for n in args.suites.split(",") if n.strip()]
    unknown = [n for n in [*wanted, *([args.profile] if args.profile else [])] if n not in known]
    if unknown:
        parser.error(f"--suites/--profile: unknown suite {unknown[0]!r}; known: {names}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.selected = [s for s in SUITES if s.name in ([args.profile] if args.profile else wanted)]
    return args


def prepare(suite: Suite, cache: Path, wheel: Path) -> Prepared:
    sdist = download_sdist(suite, cache)
    source = extract(sdist, cache)
    python = prepare_venv(suite, sdist, cache, wheel)
    return Prepared(suite, python, source, installed_plugins(python))


def main() -> int:
    args = parse_args()
    if args.keep_results is not None:
        KEEP_RESULTS.append(args.keep_results.resolve())
    rounds = 1 if args.quick else args.rounds
    configs = [c for c in CONFIGS if not (args.quick and c.xdist)]
    cache = args.cache.expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(
        f"# real suites — {'profile' if args.profile else f'{rounds} round(s)'}, "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores; load average at start {load_average()}"
    )
    print(f"# pytest-automem from {automem_source(args.automem.resolve())}; cache {cache}")
    try:
        wheel = build_automem_wheel(args.automem.resolve(), cache)
    except SetupFailed as exc:
        print(f"real_suites: {exc}", file=sys.stderr)
        return 2
    print(f"# wheel {wheel.name}", flush=True)
    rows: list[Figures] = []
    failed = False
    scratch = Path(tempfile.mkdtemp(prefix="runs-", dir=cache))
    try:
        for suite in args.selected:
            try:
                prepared = prepare(suite, cache, wheel)
            except SetupFailed as exc:
                print(f"real_suites: {exc}", file=sys.stderr, flush=True)
                failed = True
                continue
            print(f"\n## {suite.pin} ({prepared.source})", flush=True)
            for node_id, why in suite.deselect:
                print(f"#   deselected {node_id}: {why}")
            if args.profile:
                profile(prepared, scratch)
                continue
            try:
                rows += run_suite(prepared, configs, rounds, scratch)
            except RunFailed as exc:
                print(f"real_suites: {exc}", file=sys.stderr, flush=True)
                failed = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rows:
        report(rows, args.json)
    print(f"\nload average at end {load_average()}; took {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def run_suite(
    prepared: Prepared, configs: list[Config], rounds: int, scratch: Path
) -> list[Figures]:
    """Warm up once per side, then every configuration's alternating rounds."""
    for automem in (False, True):
        run_side(prepared, configs[0], automem, scratch)
    return [
        figures(prepared.suite, config, run_config(prepared, config, rounds, scratch))
        for config in configs
    ]


def report(rows: list[Figures], json_path: Path | None) -> None:
    print(
        "\nratio = median automem / median plain; paired = median of per-round ratios "
        "[min–max]; CPU ratio = median user+system CPU of pytest and its reaped children "
        "(the sampler, xdist workers); held KB/test = (median peak RSS automem − plain) / tests "
        "(1 KB = 1024 B); outcome changes from JUnit (ci) or summary counts (plain)\n"
    )
    for line in table(rows):
        print(line)
    changed = [f for f in rows if f.changes]
    print("\noutcome changes:" if changed else "\noutcome changes: none")
    for f in changed:
        for change in f.changes:
            print(f"  {f.suite} [{f.config.key}] {change}")
    if json_path:
        json_path.write_text(
            json.dumps(
                [
                    {
                        "suite": f.suite,
                        "config": f.config.key,
                        "tests": f.tests,
                        "plain_s": f.plain_s,
                        "automem_s": f.automem_s,
                        "paired": f.paired,
                        "plain_cpu_s": f.plain_cpu_s,
                        "automem_cpu_s": f.automem_cpu_s,
                        "plain_rss_mb": f.plain_rss_mb,
                        "automem_rss_mb": f.automem_rss_mb,
                        "plain_junit_kb": f.plain_junit_kb,
                        "automem_junit_kb": f.automem_junit_kb,
                        "changes": f.changes,
                    }
                    for f in rows
                ],
                indent=2,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
