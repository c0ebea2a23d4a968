"""The package layout: public names, entry points, and arrows that point down only.

The folders are the layers of ``docs/architecture.md``.  These tests keep the
public surface working across moves and stop an import from reaching up a
layer (the gate and the dashboard will read results files without importing
the pytest plugin), which would otherwise only show as a slow import or a cycle.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import tomllib

import pytest_automem

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_automem"

# Which layers each layer may import, mirroring docs/architecture.md.  A
# module at the top of the package (``__init__``, ``__main__``) may import
# anything: it only wires the layers together.
#: Everything below the two top layers, which may import all of it.
_BELOW_TOP = frozenset(
    {"base", "measure", "results", "snapshots", "automaton", "verdicts", "investigator", "outputs"}
)
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "measure": frozenset({"base"}),
    "results": frozenset({"base"}),
    "snapshots": frozenset({"base", "measure"}),
    "automaton": frozenset({"base", "measure", "snapshots"}),
    "verdicts": frozenset({"base", "measure", "automaton", "results", "investigator"}),
    "investigator": frozenset({"base", "measure", "snapshots", "automaton"}),
    "outputs": _BELOW_TOP - {"outputs"},
    "pytest_plugin": _BELOW_TOP,
    "cli": _BELOW_TOP,
}

# Run as scripts by path (``python -I -S <file>``), so nothing of ours can be
# imported: the standard library only, and psutil (a runtime dependency) for the
# sampler's portable reader, whose child is started with site-packages.
RUN_BY_PATH = ("measure/sampler_child.py", "measure/group_guard.py")
SCRIPT_MAY_IMPORT = frozenset(sys.stdlib_module_names) | {"psutil"}

# ``measure/_platform/`` alone decides by platform (docs/architecture.md).  The
# exceptions: the sampler child may import nothing of ours, and the results
# file records the platform as measurement context without deciding by it.
PLATFORM_FACADE = "measure/_platform/"
PLATFORM_READ_ELSEWHERE = ("measure/sampler_child.py", "results/results_file.py")
#: ``module.attribute`` reads that say which platform this is.
PLATFORM_ATTRIBUTES = frozenset(
    {
        ("sys", "platform"),
        ("os", "name"),
        ("os", "uname"),
        ("platform", "system"),
        ("platform", "platform"),
        ("platform", "uname"),
        ("platform", "mac_ver"),
        ("platform", "win32_ver"),
    }
)


@dataclass(frozen=True)
class ImportEdge:
    """One import of ours, found anywhere in a module (functions included)."""

    source: str
    line: int
    target: str


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[ImportEdge]:
    where = str(path.relative_to(ROOT))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name[:-1]
    return _imports_in(path.read_text(encoding="utf-8"), where, package)


def _imports_in(source: str, where: str, package: list[str]) -> list[ImportEdge]:
    """Every import of ``pytest_automem`` in ``source``, relative ones resolved
    against ``package`` (the dotted parts of the package the module is in)."""
    edges = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            targets = [node.module or ""]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)]
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:
                targets = [".".join([*module, alias.name]) for alias in node.names]
            else:
                targets = [".".join(module)]
        else:
            continue
        edges.extend(
            ImportEdge(where, node.lineno, target)
            for target in targets
            if target == "pytest_automem" or target.startswith("pytest_automem.")
        )
    return edges


def _upward(layer: str, edges: list[ImportEdge]) -> list[str]:
    """The imports in ``edges`` that reach a layer ``layer`` may not import."""
    found = []
    for edge in edges:
        target = _layer(edge.target)
        if target is not None and target != layer and target not in ALLOWED[layer]:
            found.append(f"{edge.source}:{edge.line} imports {edge.target}")
    return found


def _layer(dotted_or_path: str) -> str | None:
    """The subpackage a module belongs to; None for a module at the top."""
    parts = dotted_or_path.removesuffix(".py").replace("/", ".").split(".")
    parts = parts[1:] if parts[0] == "pytest_automem" else parts
    return parts[0] if (PACKAGE / parts[0]).is_dir() else None


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_public_name_imports_as_the_object_not_a_module() -> None:
    for name in pytest_automem.__all__:
        value = getattr(pytest_automem, name)
        assert not isinstance(value, ModuleType), f"pytest_automem.{name} is a module"
    importlib.import_module("pytest_automem.investigator")
    assert callable(pytest_automem.investigate)


def _project_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_pytest11_entry_point_loads_the_plugin_module() -> None:
    target = _project_table()["entry-points"]["pytest11"]["automem"]
    plugin = importlib.import_module(target)
    assert callable(plugin.pytest_addoption)
    assert callable(plugin.pytest_configure)
    installed = importlib.metadata.entry_points(group="pytest11", name="automem")
    assert [entry.value for entry in installed] == [target], "reinstall: pip install -e ."


def test_the_console_script_target_exists() -> None:
    module, _, attribute = _project_table()["scripts"]["automem"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_every_subpackage_is_in_the_layer_table() -> None:
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders == set(ALLOWED)


def test_every_module_has_its_line_in_the_architecture() -> None:
    """docs/architecture.md is where a newcomer starts: no module may be missing."""
    listed = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }
    assert sorted(m for m in modules if f"`{m}`" not in listed) == []


def test_arrows_point_down_only() -> None:
    upward = []
    for path in _modules():
        layer = _layer(str(path.relative_to(PACKAGE)))
        if layer is not None:
            upward.extend(_upward(layer, _imports(path)))
    assert upward == []


def test_the_arrow_check_sees_a_lazy_import_reaching_up() -> None:
    """An import inside a function counts: most of ours are lazy."""
    source = "def late():\n    from ..pytest_plugin import plugin\n"
    edges = _imports_in(source, "results/probe.py", ["pytest_automem", "results"])
    assert _upward("results", edges) == ["results/probe.py:2 imports pytest_automem.pytest_plugin"]


@pytest.mark.parametrize("script", RUN_BY_PATH)
def test_scripts_run_by_path_import_nothing_of_ours(script: str) -> None:
    tree = ast.parse((PACKAGE / script).read_text(encoding="utf-8"))
    outside = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        outside.extend(
            f"{script}:{node.lineno} imports {name}"
            for name in names
            if name.startswith(".") or name.split(".")[0] not in SCRIPT_MAY_IMPORT
        )
    assert outside == []


def _platform_reads(source: str, where: str) -> list[str]:
    """Where ``source`` reads which platform it runs on (``sys.platform``,
    ``os.name``, ``platform.system()``…), attribute or ``from`` import."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            pair = next(
                (
                    (node.module, a.name)
                    for a in node.names
                    if (node.module, a.name) in PLATFORM_ATTRIBUTES
                ),
                ("", ""),
            )
        else:
            continue
        if pair in PLATFORM_ATTRIBUTES:
            found.append(f"{where}:{node.lineno} reads {'.'.join(pair)}")
    return found


def test_only_the_platform_facade_reads_the_platform() -> None:
    """Code outside ``measure/_platform/`` asks it what is possible instead."""
    reads = []
    for path in _modules():
        where = path.relative_to(PACKAGE).as_posix()
        if where.startswith(PLATFORM_FACADE) or where in PLATFORM_READ_ELSEWHERE:
            continue
        reads.extend(_platform_reads(path.read_text(encoding="utf-8"), where))
    assert reads == []


def test_the_platform_check_sees_each_way_of_reading_it() -> None:
    source = (
        "import os, sys\nfrom platform import system\ndef f():\n    return sys.platform, os.name\n"
    )
    assert _platform_reads(source, "cli/x.py") == [
        "cli/x.py:2 reads platform.system",
        "cli/x.py:4 reads sys.platform",
        "cli/x.py:4 reads os.name",
    ]
