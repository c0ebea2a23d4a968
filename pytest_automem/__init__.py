"""pytest-automem: memory budgets, exact peaks and leak diagnosis for pytest and CI.

The public API is imported lazily: pytest loads this package for every run
through its entry point, and a session that never asks for memory monitoring
should not pay for importing the monitor, the automaton or the investigator.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Automaton": "automaton.store",
    "AutomatonFormatError": "automaton.store",
    "ConcurrentWriteError": "automaton.store",
    "Event": "automaton.policies",
    "MemoryOptimizedAutomaton": "automaton.policies",
    "OptimizationConfig": "automaton.policies",
    "ScenarioResult": "automaton.scenario",
    "load_scenario": "automaton.scenario",
    "MemoryAwareSpawner": "automaton.spawner",
    "SpawnResult": "automaton.spawn_results",
    "run_scenario": "automaton.scenario",
    "MeasurementBasis": "measure.pressure",
    "MeasurementWindow": "measure.monitor",
    "MemoryMonitor": "measure.monitor",
    "PressureLevel": "measure.pressure",
    "PressureThresholds": "measure.pressure",
    "SamplerDiedError": "measure.sampler_parent",
    "WindowResult": "measure.window_result",
    "investigate": "investigator",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_automem' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
