"""Shared fixtures for the test suite, and the rule that a skip must be explained.

A skipped test protects nothing, so a skip that is not a known, truly missing environment
feature (another platform, no procfs, no xdist in a minimal install, an unprivileged user
missing, ...) fails the session. Every accepted reason is listed once in
``ALLOWED_SKIP_REASONS`` with the environment that lacks something; any other skip fails the
run at the end with one line per test naming it and its reason. Inner ``pytester`` sessions
build their own configuration and do not load this conftest, so their skips are theirs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_automem.measure.monitor import MemoryMonitor

#: Skip reasons that name an environment truly lacking something, each with that environment.
ALLOWED_SKIP_REASONS: dict[str, str] = {
    # Not Linux: no kernel high-water mark, no clear_refs, no prctl, no procfs.
    "the kernel high-water mark is read on Linux only": "not Linux",
    "kernel high-water mark is Linux-only": "not Linux",
    "clear_refs is Linux-only": "not Linux",
    "wait4's figure is folded as the kernel's mark on Linux": "not Linux",
    "the parent-death signal and subreapers are Linux's": "not Linux",
    "PR_SET_PDEATHSIG is Linux's": "not Linux",
    "PR_SET_CHILD_SUBREAPER is Linux's": "not Linux",
    "reads /proc": "no procfs",
    "lists descriptors through /proc": "no procfs",
    # Not POSIX (Windows): no fork, no signals, no waitid.
    "signals and fork are POSIX": "not POSIX",
    "needs os.waitid to leave a zombie": "no os.waitid (not POSIX)",
    # The interpreter: another Python build or implementation.
    "this Python has no digit limit": "a Python before 3.11's int digit limit",
    "this interpreter does not use pymalloc": "a Python built without pymalloc",
    # The environment: tracing on from the start, another allocator, no own-process mark.
    "tracemalloc is already tracing in this process": "PYTHONTRACEMALLOC or -X tracemalloc set",
    "this allocator did not reuse the cached chunk: nothing to hide": "a malloc other than glibc's",
    "the mark is not read through getrusage here": "not Linux (the portable process handle)",
    "no real-time signals for stack dumps (not Linux)": "not Linux",
    # The process runs as root: no unprivileged user whom a read-only folder refuses.
    "running as root: a read-only folder refuses only an unprivileged user": "running as root",
    # A minimal install without the test extra.
    "could not import 'xdist': No module named 'xdist'": "pytest-xdist not installed",
    "jsonschema is needed to check results files against the schema": "jsonschema not installed",
    "PyYAML, from the test extra, is not installed": "PyYAML not installed",
    # No browser: the dashboard's script is checked in headless Chromium (Debian's package).
    "chromium is not installed": "no chromium",
}

#: One line per unexpected skip of this session (a test process runs one session).
_UNEXPECTED_SKIPS: list[str] = []


@pytest.fixture(scope="module")
def monitor() -> Iterator[MemoryMonitor]:
    """One sampler per test module, as the plugin keeps one per session."""
    with MemoryMonitor() as running:
        yield running


def _skip_reason(report: pytest.TestReport) -> str:
    """The reason a skip was given, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return message.removeprefix("Skipped: ")


def _is_controller_or_single(config: pytest.Config) -> bool:
    """xdist workers send their reports to the controller, which judges them all once."""
    return not hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note each skip whose reason is not on the allow-list (xfail outcomes are not skips)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason not in ALLOWED_SKIP_REASONS:
        _UNEXPECTED_SKIPS.append(f"unexpected skip: {report.nodeid}: {reason}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail a run that otherwise passed when any test was skipped for an unexpected reason."""
    failing = _UNEXPECTED_SKIPS and _is_controller_or_single(session.config)
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per unexpected skip: the test and its reason."""
    for line in _UNEXPECTED_SKIPS:
        terminalreporter.write_line(line, red=True)
