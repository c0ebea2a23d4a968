"""Where the plugin's overhead goes, stage by stage of a pytest run.

    python benchmarks/plugin_stages.py [--tests 1000] [--rounds 20] [--extra NAME=ARGS ...]

``plugin_overhead.py`` says how much a configuration costs; this script says
when.  It runs the same generated suite (A: plugin not loaded, B: loaded and
unused, C: ``--automem``, plus any ``--extra`` configuration) round-robin,
each with a small timestamping plugin (``-p``) that notes, in milliseconds
since the subprocess was started, when pytest reaches each stage:

    configure        our plugin and the others are imported, options parsed
    sessionstart     every plugin configured
    collected        collection finished (ours starts the sampler here)
    run finished     the run loop is over (session finish begins)
    unconfigure      outputs written, summary printed
    atexit           pytest has returned; interpreter shutdown begins
    exit             the process is gone

It prints the median of each stage and, per configuration, what each
segment between two stages costs over A.  Fixed costs (imports, the
sampler's start, shutdown) show up in their own segments; per-test costs in
"run".  ``--extra`` adds configurations, e.g. ``--extra "C10=--automem
--automem-interval=10ms"``.  Medians over 20 rounds move by ~1-2 ms on a
shared 2-core machine: compare segments, not single figures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugin_overhead import NOISY_PLUGINS, clean_env, generate_suite, installed_plugins

STAGES = ("configure", "sessionstart", "collected", "run finished", "unconfigure", "atexit")
SEGMENTS = (
    ("start", "configure", "start to configure (imports)"),
    ("configure", "sessionstart", "configure"),
    ("sessionstart", "collected", "collection"),
    ("collected", "run finished", "run"),
    ("run finished", "unconfigure", "session finish"),
    ("unconfigure", "atexit", "unconfigure"),
    ("atexit", "exit", "shutdown"),
)

#: The timestamping plugin: each stage appends "name ms" to $STAGES_OUT.
STAGE_PLUGIN = textwrap.dedent(
    """
    import atexit
    import os
    import time

    import pytest

    _T0 = float(os.environ["STAGES_T0"])
    _marks = []


    def _mark(name):
        _marks.append((name, (time.time() - _T0) * 1000))


    def _write():
        _mark("atexit")
        with open(os.environ["STAGES_OUT"], "w") as out:
            out.writelines(f"{name}\\t{ms}\\n" for name, ms in _marks)


    atexit.register(_write)


    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        _mark("configure")


    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(session):
        _mark("sessionstart")


    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(session):
        _mark("collected")


    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(session):
        _mark("run finished")


    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(config):
        _mark("unconfigure")
    """
)


def base_args() -> list[str]:
    """The benchmark's common arguments: noisy third-party plugins off, stages on."""
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "automem_stages"]
    plugins = installed_plugins()
    for name in NOISY_PLUGINS:
        if name in plugins:
            args += ["-p", f"no:{name}"]
    return args


def run_once(args: list[str], suite: Path, work: Path, env: dict[str, str]) -> dict[str, float]:
    """One run; the stage times in ms since the subprocess was started."""
    out = work / "stages.tsv"
    out.unlink(missing_ok=True)
    started = time.time()
    env = {**env, "STAGES_T0": repr(started), "STAGES_OUT": str(out)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *base_args(), *args],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
    )
    ended = (time.time() - started) * 1000
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"pytest {shlex.join(args)} failed (exit {proc.returncode}):\n{tail}")
    marks = {"start": 0.0, "exit": ended}
    for line in out.read_text().splitlines():
        name, ms = line.split("\t")
        marks[name] = float(ms)
    return marks


def parse_extra(values: list[str]) -> list[tuple[str, list[str]]]:
    extra = []
    for value in values:
        name, sep, args = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"--extra {value!r}: expected NAME=ARGS, e.g. C10=--automem")
        extra.append((name, shlex.split(args)))
    return extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=1000, help="tests in the suite (1000)")
    parser.add_argument("--rounds", type=int, default=20, help="round-robin rounds (20)")
    parser.add_argument(
        "--extra", action="append", default=[], metavar="NAME=ARGS", help="another configuration"
    )
    args = parser.parse_args()
    if args.tests < 20 or args.rounds < 1:
        parser.error("need --tests >= 20 and --rounds >= 1")
    configs = [("A", ["-p", "no:automem"]), ("B", []), ("C", ["--automem"])]
    configs += parse_extra(args.extra)
    with tempfile.TemporaryDirectory(prefix="automem-stages-") as tmp:
        work = Path(tmp)
        suite = generate_suite(work, args.tests)
        (work / "automem_stages.py").write_text(STAGE_PLUGIN)
        env = clean_env()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(work), env.get("PYTHONPATH", "")) if p)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in configs}
        for _name, config_args in configs:  # warm-up: bytecode caches; not counted
            run_once(config_args, suite, work, env)
        for r in range(args.rounds):
            shift = r % len(configs)
            for name, config_args in configs[shift:] + configs[:shift]:
                runs[name].append(run_once(config_args, suite, work, env))
    print(f"# stages of a pytest run, {args.tests} tests, {args.rounds} rounds (medians, ms)")
    names = [name for name, _ in configs]
    median = {
        name: {stage: statistics.median(r[stage] for r in runs[name]) for stage in runs[name][0]}
        for name in names
    }
    print(f"{'stage':24}" + "".join(f"{name:>10}" for name in names))
    for stage in (*STAGES, "exit"):
        print(f"{stage:24}" + "".join(f"{median[name][stage]:10.1f}" for name in names))
    print("\nsegment costs over A (ms)")
    print(f"{'segment':32}" + "".join(f"{name:>10}" for name in names[1:]))
    for first, last, label in SEGMENTS:
        base = median["A"][last] - median["A"][first]
        cells = "".join(f"{median[n][last] - median[n][first] - base:+10.1f}" for n in names[1:])
        print(f"{label:32}{cells}")
    total = "".join(f"{median[n]['exit'] - median['A']['exit']:+10.1f}" for n in names[1:])
    print(f"{'total':32}{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
