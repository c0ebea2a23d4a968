"""The pytest surface: ini settings and fixtures.

Kept thin (the pytest-xdist pattern): parsing happens in the core modules,
this module only wires pytest's configuration to them.
"""

from __future__ import annotations

import pytest

from .pressure import PressureThresholds

DEFAULT_THRESHOLDS_TEXT = "50MB,200MB,500MB"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "automem_thresholds",
        "where MEDIUM, HIGH and CRITICAL memory pressure begin, e.g. 50MB,200MB,500MB",
        default=DEFAULT_THRESHOLDS_TEXT,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check the ini thresholds at start-up so a typo fails the run at once."""
    text = str(config.getini("automem_thresholds"))
    try:
        PressureThresholds.parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"ini option automem_thresholds: {exc}") from None


@pytest.fixture(scope="session")
def pressure_thresholds(pytestconfig: pytest.Config) -> PressureThresholds:
    """Pressure thresholds for this session (ini ``automem_thresholds``).

    Override in a conftest to change them for a directory.
    """
    return PressureThresholds.parse(str(pytestconfig.getini("automem_thresholds")))
