"""The investigator: what grew, where it was allocated, and what to do about it.

* :mod:`.findings` — the shape of a diagnosis (Finding, Severity, Investigation);
* :mod:`.measured` — checks on what a run measured (windows, phases, scenarios).
"""

from __future__ import annotations

from .findings import Finding, Investigation, Severity
from .measured import (
    LEAK_FINDING_BYTES_PER_ITERATION,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_TARGET_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
    investigate,
)

__all__ = [
    "LEAK_FINDING_BYTES_PER_ITERATION",
    "RATE_CRITICAL_BYTES_PER_S",
    "RATE_TARGET_BYTES_PER_S",
    "RATE_WARNING_BYTES_PER_S",
    "Finding",
    "Investigation",
    "Severity",
    "investigate",
]
