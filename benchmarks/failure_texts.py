"""What a user reads when a test fails on memory: pytest-automem beside pytest-memray.

Runs the same three failing tests under each plugin and prints each
failure's text as pytest shows it, so the "Reading a failure" section of
docs/pytest-plugin.md can be regenerated after the failure text changes:

* a 200 MB spike over a 24 MB peak budget;
* a bytearray kept at module level, over a 1 MB growth budget;
* a leak of a few KB per iteration, over a 1 KB per-iteration budget.

pytest-memray must not go into the project's environment: install it in a
venv of its own and name that venv's Python::

    python -m venv /tmp/memray-venv
    /tmp/memray-venv/bin/pip install pytest-memray
    python benchmarks/failure_texts.py --memray-python /tmp/memray-venv/bin/python

pytest-automem runs under this interpreter, from this checkout (its folder
goes first on ``PYTHONPATH``).  Without ``--memray-python`` only automem's
texts are printed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: The code under test, shared by both plugins' test files.
APP = """
MB = 1 << 20
KEPT = []


def checksum_big_blob():
    blob = bytearray(200 * MB)
    return sum(blob[:: 1 << 16])


def remember(payload):
    KEPT.append(bytearray(payload))


def handle(registry, step):
    registry.append(bytearray(4096 + step))
"""

#: The three tests, one file per plugin: the same bodies, each plugin's markers.
AUTOMEM_TESTS = """
import pytest
from app import MB, checksum_big_blob, handle, remember

REGISTRY = []


@pytest.mark.memory_budget(peak="24MB")
def test_spike():
    checksum_big_blob()


@pytest.mark.memory_budget(growth="1MB")
def test_growth():
    remember(30 * MB)


def step(automaton, index):
    handle(REGISTRY, index)


@pytest.mark.memory_budget(leak_per_iteration="1KB")
def test_leak_per_iteration(run_scenario):
    run_scenario(step, iterations=40, warmup=5)
"""

MEMRAY_TESTS = """
import pytest
from app import MB, checksum_big_blob, handle, remember

REGISTRY = []


@pytest.mark.limit_memory("24 MB")
def test_spike():
    checksum_big_blob()


@pytest.mark.limit_leaks("1 MB")
def test_growth():
    remember(30 * MB)


@pytest.mark.limit_leaks("1 KB")
def test_leak_per_iteration():
    for index in range(45):
        handle(REGISTRY, index)
"""

CASES = (
    ("test_spike", 'a 200 MB spike over `peak="24MB"` (memray: `limit_memory("24 MB")`)'),
    ("test_growth", 'a 30 MB bytearray kept, over `growth="1MB"` (memray: `limit_leaks("1 MB")`)'),
    (
        "test_leak_per_iteration",
        '4 KB kept per iteration, over `leak_per_iteration="1KB"` '
        '(memray: `limit_leaks("1 KB")` over the same 45 calls)',
    ),
)

_HEADER = re.compile(r"^_{3,} (?P<name>\S+) _{3,}$")


def failure_texts(output: str) -> dict[str, str]:
    """Each failed test's text in pytest's FAILURES section, by test name."""
    texts: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_failures = False
    for line in output.splitlines():
        if line.startswith("=") and "FAILURES" in line:
            in_failures = True
            continue
        if not in_failures:
            continue
        if line.startswith("="):  # the next section of pytest's output
            break
        header = _HEADER.match(line)
        if header:
            current = texts.setdefault(header.group("name").split("::")[-1], [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip("\n") for name, lines in texts.items()}


def run(python: str, folder: Path, test_file: str, *args: str, env: dict[str, str]) -> str:
    """pytest's output for ``test_file`` under ``python``."""
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    completed = subprocess.run(
        [*command, test_file],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return completed.stdout + completed.stderr


def automem_output(folder: Path) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(folder)]))
    return run(sys.executable, folder, "test_automem.py", env=env)


def memray_output(folder: Path, python: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(folder))
    return run(python, folder, "test_memray.py", "--memray", "-p", "no:automem", env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memray-python", help="the Python of a venv with pytest-memray installed")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="failure-texts-") as name:
        folder = Path(name)
        (folder / "app.py").write_text(textwrap.dedent(APP).lstrip())
        (folder / "test_automem.py").write_text(textwrap.dedent(AUTOMEM_TESTS).lstrip())
        (folder / "test_memray.py").write_text(textwrap.dedent(MEMRAY_TESTS).lstrip())
        automem = failure_texts(automem_output(folder))
        memray = (
            failure_texts(memray_output(folder, options.memray_python))
            if options.memray_python
            else {}
        )
    for number, (test, title) in enumerate(CASES, 1):
        print(f"#### {number}. {title}\n")
        print("pytest-automem:\n\n```")
        print(automem.get(test, "(passed)"))
        print("```\n")
        if options.memray_python:
            print("pytest-memray:\n\n```")
            print(memray.get(test, "(passed)"))
            print("```\n")


if __name__ == "__main__":
    main()
