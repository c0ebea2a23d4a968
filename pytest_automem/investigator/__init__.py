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

from .attribution import AllocationTracer, Attribution, attribute_iterations
from .file_checks import (
    FILE_CHECKS,
    SNAPSHOT_CHECK,
    check_duplicate_ids,
    check_execution_history,
    check_large_arrays,
    check_object_efficiency,
    check_snapshots,
    investigate_file,
)
from .findings import Finding, Investigation, Severity
from .leaks import attribute_scenario
from .measured import (
    LEAK_FINDING_BYTES_PER_ITERATION,
    RATE_CRITICAL_BYTES_PER_S,
    RATE_TARGET_BYTES_PER_S,
    RATE_WARNING_BYTES_PER_S,
    investigate_measured,
)
from .overall import investigate
from .render import render, render_json, render_markdown, render_text

__all__ = [
    "FILE_CHECKS",
    "LEAK_FINDING_BYTES_PER_ITERATION",
    "RATE_CRITICAL_BYTES_PER_S",
    "RATE_TARGET_BYTES_PER_S",
    "RATE_WARNING_BYTES_PER_S",
    "SNAPSHOT_CHECK",
    "AllocationTracer",
    "Attribution",
    "Finding",
    "Investigation",
    "Severity",
    "attribute_iterations",
    "attribute_scenario",
    "check_duplicate_ids",
    "check_execution_history",
    "check_large_arrays",
    "check_object_efficiency",
    "check_snapshots",
    "investigate",
    "investigate_file",
    "investigate_measured",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
]
