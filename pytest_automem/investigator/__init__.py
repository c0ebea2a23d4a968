"""The investigator: what grew, where it was allocated, and what to do about it.

* :mod:`.findings` — the shape of a diagnosis (Finding, Severity, Investigation);
* :mod:`.measured` — checks on what a run measured (windows, phases, scenarios);
* :mod:`.file_checks` — checks on an automaton file or object and snapshot folders;
* :mod:`.attribution` — our extension of ``tracemalloc``: retained bytes by
  allocation site and live object counts by type, between two points;
* :mod:`.leaks` — a scenario's leak attributed by tracing a few more steps;
* :mod:`.overall` — :func:`investigate`, which runs whatever applies;
* :mod:`.results_report` — a results file read back: failed tests, findings, worst tests;
* :mod:`.snapshot_report` — a snapshot file or folder: peaks and pressure;
* :mod:`.render` — text, JSON and Markdown.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module that defines it: importing one module
#: of the package (``verdicts`` reads two check names from :mod:`.measured`)
#: does not load the others.
_EXPORTS: dict[str, str] = {
    "FILE_CHECKS": "file_checks",
    "LEAK_FINDING_BYTES_PER_ITERATION": "measured",
    "RATE_CRITICAL_BYTES_PER_S": "measured",
    "RATE_TARGET_BYTES_PER_S": "measured",
    "RATE_WARNING_BYTES_PER_S": "measured",
    "SNAPSHOT_CHECK": "file_checks",
    "AllocationTracer": "attribution",
    "Attribution": "attribution",
    "Finding": "findings",
    "Investigation": "findings",
    "Severity": "findings",
    "attribute_iterations": "attribution",
    "attribute_scenario": "leaks",
    "check_duplicate_ids": "file_checks",
    "check_execution_history": "file_checks",
    "check_large_arrays": "file_checks",
    "check_object_efficiency": "file_checks",
    "check_snapshots": "file_checks",
    "investigate": "overall",
    "investigate_file": "file_checks",
    "investigate_measured": "measured",
    "render": "render",
    "render_json": "render",
    "render_markdown": "render",
    "render_text": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
