"""Baselines: the results a gate compares later runs with.

A baseline is a results document (the same format, read by the same
reader, so a gate reads a baseline and a run alike), built from one run or
several.  Several runs of the same suite differ by noise; per test, the
baseline keeps the worst figure of each metric (:data:`WORST_KEYS` and the
leak per iteration of each scenario) over the runs that have the test, so
that noise is absorbed rather than reported as a regression later.  The
other keys of a test come from the first run that has it.

Its ``session`` keeps the measurement context (sampler, peak sources,
Python, platform, CPUs, plugin version), and under ``baseline`` the runs
that went in, each with its own context.  Runs measured differently are
refused unless the caller allows it; the baseline then says so
(``mixed_context``), and a key the runs disagree on is null.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .results_file import (
    CONTEXT_KEYS,
    RESULTS_VERSION,
    figure,
    measurement_context,
    read_results,
    write_results,
)

__all__ = [
    "WORST_KEYS",
    "MixedContextError",
    "Run",
    "build_baseline",
    "read_runs",
    "worst_records",
    "write_baseline",
]

#: The figures of a test whose worst value a baseline keeps (higher is worse).
WORST_KEYS = ("peak_bytes", "growth_bytes", "rate_bytes_per_s")
_LEAK_KEY = "leak_bytes_per_iteration"
_PEAK_SOURCES = "peak_sources"


class MixedContextError(ValueError):
    """Runs measured in different contexts, given where like must meet like."""


@dataclass(frozen=True)
class Run:
    """One results file that goes into a baseline or a budgets file."""

    path: str
    document: Mapping[str, Any]

    @property
    def context(self) -> dict[str, Any]:
        return measurement_context(self.document)


def read_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Every file read before anything is written: one bad file stops it all.

    Raises OSError or ResultsFormatError, each naming the file.
    """
    return [Run(os.fspath(path), read_results(path)) for path in paths]


def build_baseline(runs: Sequence[Run], *, allow_mixed_context: bool = False) -> dict[str, Any]:
    """The baseline document of ``runs`` (at least one).

    Raises MixedContextError naming the first run whose context differs from
    the first run's, and how, unless ``allow_mixed_context``.
    """
    contexts = [run.context for run in runs]
    mixed = False
    for run, context in zip(runs[1:], contexts[1:], strict=True):
        differences = _differences(contexts[0], context)
        if differences and not allow_mixed_context:
            raise MixedContextError(
                f"{run.path}: measured in another context than {runs[0].path} "
                f"({'; '.join(differences)}); give --allow-mixed-context to combine them anyway"
            )
        mixed = mixed or bool(differences)
    session = {
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        **_common_context(contexts),
        "baseline": {
            "runs": [
                {"file": run.path, "written_at": _written_at(run), **context}
                for run, context in zip(runs, contexts, strict=True)
            ],
            "mixed_context": mixed,
        },
    }
    return {
        "version": RESULTS_VERSION,
        "session": session,
        "tests": worst_records(run.document["tests"] for run in runs),
    }


def write_baseline(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """Written atomically: a reader (or a crash) sees the old baseline or the new one."""
    tests = document["tests"]
    write_results(path, {**document, "tests": {nodeid: tests[nodeid] for nodeid in sorted(tests)}})


def worst_records(runs_tests: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per node id, the test's record with the worst figure of every run that has it.

    ``baseline_runs`` counts those runs: a test in one run of three is kept,
    and the count says how much noise its figures may still hold.
    """
    kept: dict[str, dict[str, Any]] = {}
    for tests in runs_tests:
        for nodeid, record in tests.items():
            if nodeid in kept:
                kept[nodeid] = _worse(kept[nodeid], record)
            else:
                kept[nodeid] = {**_without_samples(record), "baseline_runs": 1}
    return kept


def _without_samples(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without its ``samples_file``: a baseline names no samples
    folder, and one run's curve is not the worst of several."""
    return {key: value for key, value in record.items() if key != "samples_file"}


def _worse(kept: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**kept, "baseline_runs": kept["baseline_runs"] + 1}
    for key in WORST_KEYS:
        merged[key] = _higher(kept.get(key), record.get(key))
    if record.get("scenarios"):
        merged["scenarios"] = _worse_scenarios(kept.get("scenarios") or [], record["scenarios"])
    return merged


def _higher(first: Any, second: Any) -> Any:
    """The higher of two figures; a missing one (None, not a number) yields to the other."""
    numbers = [value for value in (first, second) if figure(value) is not None]
    return max(numbers) if numbers else first


def _worse_scenarios(
    kept: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Per scenario name, the run with the higher leak per iteration."""
    by_name = {scenario.get("name"): scenario for scenario in kept}
    for scenario in other:
        previous = by_name.get(scenario.get("name"))
        if previous is None or _leak(scenario) > _leak(previous):
            by_name[scenario.get("name")] = scenario
    return list(by_name.values())


def _leak(scenario: Mapping[str, Any]) -> float:
    value = scenario.get(_LEAK_KEY)
    number = figure(value)
    return number if number is not None else float("-inf")


def _differences(first: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """How two contexts differ; a run without tests says nothing of its peak sources."""
    return [
        f"{key} {_shown(first[key])} against {_shown(other[key])}"
        for key in CONTEXT_KEYS
        if first[key] != other[key]
        and not (key == _PEAK_SOURCES and not (first[key] and other[key]))
    ]


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "unknown" if value is None else str(value)


def _common_context(contexts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each context key the runs agree on, null where they differ; every peak source."""
    common = {
        key: contexts[0][key] if all(c[key] == contexts[0][key] for c in contexts) else None
        for key in CONTEXT_KEYS
    }
    common[_PEAK_SOURCES] = sorted({source for c in contexts for source in c[_PEAK_SOURCES]})
    return common


def _written_at(run: Run) -> Any:
    session = run.document.get("session")
    return session.get("written_at") if isinstance(session, Mapping) else None
