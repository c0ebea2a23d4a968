"""The budgets file: per test, the memory budget the plugin enforces (ini ``automem_budgets``).

    {
    "version": 1,
    "suggested": {"from": ["run1.json"], "margin": "25%", "min": "1MB"},
    "budgets": {
      "tests/test_app.py::test_load": {"peak": "12.5MB", "growth": "1.3MB"},
      ...
    }}

Keys of a budget are the ``memory_budget`` marker's size limits
(:data:`BUDGET_KEYS`), each a size as the marker takes one (an int of bytes
or text such as ``"64MB"``), at least one per test.  ``suggested`` says how
``automem budgets suggest`` made the file and is not read back.  One test
per line, so a review diff shows which budgets moved, and an error names
the line at fault.  Read and written here only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..base.atomic import atomic_writer, remove_stale_temps
from ..base.defaults import GB, KB, MB
from ..base.json_files import json_kind
from ..base.units import parse_percent_fraction, parse_size_bytes
from .results_file import leak_bytes_per_iteration, member_line, versioned_document

__all__ = [
    "BUDGETS_VERSION",
    "BUDGET_KEYS",
    "BudgetsFormatError",
    "FileBudget",
    "parse_budgets",
    "parse_margin",
    "read_budgets",
    "size_text_at_least",
    "suggest_budgets",
    "write_budgets",
]

BUDGETS_VERSION = 1
#: The limits a budgets file sets, named as the marker's arguments.
BUDGET_KEYS = ("peak", "growth", "leak_per_iteration")


class BudgetsFormatError(ValueError):
    """Content that is not a budgets file this version reads; names the file and line."""


@dataclass(frozen=True)
class FileBudget:
    """One test's limits from the file; None: no limit on that figure."""

    peak_bytes: int | None = None
    growth_bytes: int | None = None
    leak_bytes_per_iteration: int | None = None

    def to_sizes(self) -> dict[str, str]:
        """The file's form: the limits set, as size text no lower than the limit."""
        limits = zip(
            BUDGET_KEYS,
            (self.peak_bytes, self.growth_bytes, self.leak_bytes_per_iteration),
            strict=True,
        )
        return {key: size_text_at_least(value) for key, value in limits if value is not None}


def parse_margin(text: str) -> float:
    """``"25%"`` (or ``"25"``) as 0.25: the headroom above the worst figure
    measured, read as the gate reads its tolerances."""
    try:
        return parse_percent_fraction(text)
    except ValueError:
        raise ValueError(f"invalid margin {text!r}: expected a percentage such as '25%'") from None


def suggest_budgets(
    tests: Mapping[str, Mapping[str, Any]], *, margin: float, min_bytes: int
) -> dict[str, FileBudget]:
    """Per test, its worst figure raised by ``margin``, and at least ``min_bytes``.

    ``tests`` holds each test's worst figures (a baseline's records).  A test
    that ran no scenario gets no leak budget: it has no leak figure to keep.
    """
    budgets = {}
    for nodeid in sorted(tests):
        record = tests[nodeid]
        leak = leak_bytes_per_iteration(record)
        budgets[nodeid] = FileBudget(
            peak_bytes=_with_margin(record.get("peak_bytes"), margin, min_bytes),
            growth_bytes=_with_margin(record.get("growth_bytes"), margin, min_bytes),
            leak_bytes_per_iteration=_with_margin(leak, margin, min_bytes),
        )
    return budgets


def _with_margin(worst: Any, margin: float, min_bytes: int) -> int | None:
    if not isinstance(worst, (int, float)) or isinstance(worst, bool):
        return None
    return max(math.ceil(worst * (1 + margin)), min_bytes)


def size_text_at_least(num_bytes: int) -> str:
    """Size text the reader parses back to ``num_bytes`` or a little more.

    Rounded up, never down: a suggested budget must not fail the very run
    it was made from.
    """
    for unit, factor, places in (("GB", GB, 2), ("MB", MB, 1)):
        if num_bytes >= factor:
            scaled = -(-num_bytes * 10**places // factor)
            whole, part = divmod(scaled, 10**places)
            return f"{whole}.{part:0{places}d}{unit}" if part else f"{whole}{unit}"
    if num_bytes >= KB:
        return f"{-(-num_bytes // KB)}KB"
    return f"{num_bytes}B"


def write_budgets(
    path: str | os.PathLike[str],
    budgets: Mapping[str, FileBudget],
    suggested: Mapping[str, Any],
) -> None:
    """Write the file atomically, one test per line in node id order."""
    with atomic_writer(path) as handle:
        handle.write(f'{{\n"version": {BUDGETS_VERSION},\n')
        handle.write(f'"suggested": {json.dumps(suggested)},\n')
        handle.write('"budgets": {')
        for index, nodeid in enumerate(sorted(budgets)):
            entry = json.dumps(budgets[nodeid].to_sizes())
            handle.write(f"{',' if index else ''}\n  {json.dumps(nodeid)}: {entry}")
        handle.write("\n}}\n")
    remove_stale_temps(path)


def read_budgets(path: str | os.PathLike[str]) -> dict[str, FileBudget]:
    """The budgets in the file at ``path`` (raises OSError, BudgetsFormatError)."""
    with open(path, "rb") as handle:
        return parse_budgets(handle.read(), path)


def parse_budgets(data: bytes, path: str | os.PathLike[str]) -> dict[str, FileBudget]:
    """Node id to budget; an error names ``path``, the line and the test or key at fault."""
    document = versioned_document(
        data, path, kind="budgets", version=BUDGETS_VERSION, error=BudgetsFormatError
    )
    text = data.decode("utf-8")
    entries = document.get("budgets")
    if not isinstance(entries, dict):
        line = member_line(text, ("budgets",))
        raise BudgetsFormatError(f"{path}:{line}: budgets file has no 'budgets' object")
    budgets = {}
    for nodeid, entry in entries.items():
        try:
            budgets[nodeid] = _budget(entry)
        except ValueError as exc:
            line = member_line(text, ("budgets", nodeid))
            raise BudgetsFormatError(f"{path}:{line}: test {json.dumps(nodeid)}: {exc}") from None
    return budgets


def _budget(entry: object) -> FileBudget:
    if not isinstance(entry, dict):
        raise ValueError(f"is a JSON {json_kind(entry)}, not an object")
    unknown = sorted(set(entry) - set(BUDGET_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: expected {', '.join(BUDGET_KEYS)}")
    if not entry:
        raise ValueError(f"sets no limit: give at least one of {', '.join(BUDGET_KEYS)}")
    sizes = {}
    for key, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{key}: expected a size such as '64MB', got {json.dumps(value)}")
        try:
            sizes[key] = parse_size_bytes(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return FileBudget(
        peak_bytes=sizes.get("peak"),
        growth_bytes=sizes.get("growth"),
        leak_bytes_per_iteration=sizes.get("leak_per_iteration"),
    )
