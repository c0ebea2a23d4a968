"""Shared fixtures for the test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_automem.measure.monitor import MemoryMonitor


@pytest.fixture(scope="module")
def monitor() -> Iterator[MemoryMonitor]:
    """One sampler per test module, as the plugin keeps one per session."""
    with MemoryMonitor() as running:
        yield running
