"""The results file: its JSON Schema, atomic writing, sorted output, reading back.

``schema/results.schema.json`` is the contract's machine-readable form
(docs/pytest-plugin.md, "Results file"); documents built from real measurement windows,
and one written by a real pytest session, must validate against it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import INNER_ALLOC, NEEDS_DIGIT_LIMIT, NESTED_TOO_DEEP, TOO_MANY_DIGITS, resident_block

from pytest_automem.investigator import investigate
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.window_result import WindowResult
from pytest_automem.results.results_file import (
    REQUIRED_TEST_KEYS,
    RESULTS_VERSION,
    build_results,
    read_results,
    write_results,
)
from pytest_automem.verdicts.budget import MemoryBudget, judge

MB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "schema" / "results.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

Validate = Callable[[Any], list[str]]


@pytest.fixture(scope="module")
def validate() -> Validate:
    """Errors of a document against the schema, as ``path: message`` lines (none = valid)."""
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is needed to check results files against the schema"
    )
    validator = jsonschema.Draft202012Validator(SCHEMA)

    def errors(document: Any) -> list[str]:
        return sorted(
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(document)
        )

    return errors


@pytest.fixture(scope="module")
def windows(monitor: MemoryMonitor) -> dict[str, WindowResult]:
    """Real windows: a quiet one, and one that made a 4 MB spike."""
    with monitor.measure() as quiet:
        pass
    with monitor.measure() as spiky:
        resident_block(4 * MB).close()
    assert quiet.result is not None and spiky.result is not None
    return {"quiet": quiet.result, "spiky": spiky.result}


def record(
    window: WindowResult, budget: MemoryBudget | None, phases: dict[str, WindowResult]
) -> dict[str, Any]:
    """A results entry as the plugin makes one (``session._record``)."""
    verdict = judge(budget, window)
    findings = investigate(window=window, phases=phases).findings
    return {
        **window.to_dict(),
        "verdict": verdict.name,
        "violations": list(verdict.violations),
        "message": None if verdict.passed else verdict.headline(),
        "failed_on_memory": not verdict.passed,
        "report": None if verdict.passed else "\n".join(verdict.violations),
        "budget": budget.to_dict() if budget else None,
        "phases": {name: phase.to_dict() for name, phase in phases.items()},
        "scenarios": [],
        "findings": [f.to_dict() for f in findings],
    }


@pytest.fixture(scope="module")
def records(windows: dict[str, WindowResult]) -> dict[str, dict[str, Any]]:
    """Three tests, deliberately not in node-id order: a pass, a fail, no budget."""
    quiet, spiky = windows["quiet"], windows["spiky"]
    return {
        "tests/test_z.py::test_last": record(quiet, None, {"call": quiet}),
        "tests/test_a.py::test_spike[4MB]": record(
            spiky,
            MemoryBudget.from_marker((), {"peak": "1MB", "pressure": "critical"}),
            {"setup": quiet, "call": spiky, "teardown": quiet},
        ),
        "tests/test_a.py::TestCase::test_ok": record(
            quiet, MemoryBudget.from_marker((), {"peak": "64MB"}), {"call": quiet}
        ),
    }


@pytest.fixture(scope="module")
def document(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return build_results(records, {"monitor_all": False, "gc_mode": "auto"})


# -- the schema ----------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema(validate: Validate) -> None:
    import jsonschema

    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_requires_exactly_the_contract_keys() -> None:
    assert SCHEMA["required"] == ["version", "session", "tests"]
    assert SCHEMA["$defs"]["test"]["required"] == list(REQUIRED_TEST_KEYS)


def test_schema_describes_every_key_the_plugin_writes(windows: dict[str, WindowResult]) -> None:
    described = set(SCHEMA["$defs"]["window"]["properties"]) | set(
        SCHEMA["$defs"]["test"]["properties"]
    )
    written = set(record(windows["quiet"], None, {}))
    assert written - described == set()


def test_document_from_real_windows_validates(
    validate: Validate, document: dict[str, Any], windows: dict[str, WindowResult]
) -> None:
    assert validate(document) == []
    failed = document["tests"]["tests/test_a.py::test_spike[4MB]"]
    assert failed["verdict"] == "fail"
    assert failed["violations"][0].startswith("peak ")
    assert windows["spiky"].peak_bytes > 3 * MB  # the kernel batches RSS counters


def test_document_survives_json_and_still_validates(
    validate: Validate, document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "results.json"
    write_results(path, document)
    assert validate(json.loads(path.read_text(encoding="utf-8"))) == []


def test_build_results_session_and_order(
    document: dict[str, Any], records: dict[str, dict[str, Any]]
) -> None:
    assert document["version"] == RESULTS_VERSION == 1
    assert list(document["tests"]) == sorted(records)
    session = document["session"]
    assert {"written_at", "python", "implementation", "platform"} <= set(session)
    assert session["monitor_all"] is False
    assert session["gc_mode"] == "auto"


def test_build_results_copies_records(records: dict[str, dict[str, Any]]) -> None:
    built = build_results(records, {})
    nodeid = next(iter(records))
    built["tests"][nodeid]["verdict"] = "changed"
    assert records[nodeid]["verdict"] != "changed"


FAILED_ID = "tests/test_a.py::test_spike[4MB]"


@pytest.mark.parametrize("key", REQUIRED_TEST_KEYS)
def test_missing_required_key_fails_validation(
    validate: Validate, document: dict[str, Any], key: str
) -> None:
    bad = copy.deepcopy(document)
    del bad["tests"][FAILED_ID][key]
    assert validate(bad) == [f"tests/{FAILED_ID}: '{key}' is a required property"]


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("peak_bytes", "131.2 MB", "peak_bytes"),
        ("peak_bytes", 1.5, "peak_bytes"),
        ("peak_bytes", None, "peak_bytes"),
        ("growth_bytes", True, "growth_bytes"),
        ("samples", "842", "samples"),
        ("samples", -1, "samples"),
        ("rate_bytes_per_s", "1MB/s", "rate_bytes_per_s"),
        ("max_pressure", "high", "max_pressure"),
        ("max_pressure", 2, "max_pressure"),
        ("interval_p50_ms", "1ms", "interval_p50_ms"),
        ("interval_p99_ms", [1.0], "interval_p99_ms"),
        ("peak_source", "kernel", "peak_source"),
        ("verdict", "ok", "verdict"),
        ("verdict", True, "verdict"),
        ("violations", "peak 2 MB > 1 MB", "violations"),
        ("violations", [1], "violations/0"),
        ("findings", [{"check": "x"}], "findings/0"),
        ("budget", "64MB", "budget"),
        ("phases", {"call": {"samples": "x"}}, "phases/call/samples"),
        ("message", 3, "message"),
        ("failed_on_memory", "no", "failed_on_memory"),
    ],
    ids=repr,
)
def test_wrong_type_fails_validation(
    validate: Validate, document: dict[str, Any], key: str, value: Any, where: str
) -> None:
    bad = copy.deepcopy(document)
    bad["tests"][FAILED_ID][key] = value
    errors = validate(bad)
    assert errors, "the schema accepted a bad document"
    assert all(error.startswith(f"tests/{FAILED_ID}/{where}: ") for error in errors), errors


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.pop("version"), id="no-version"),
        pytest.param(lambda d: d.__setitem__("version", 2), id="version-2"),
        pytest.param(lambda d: d.__setitem__("version", "1"), id="version-text"),
        pytest.param(lambda d: d.__setitem__("version", True), id="version-bool"),
        pytest.param(lambda d: d.pop("session"), id="no-session"),
        pytest.param(lambda d: d.__setitem__("session", []), id="session-list"),
        pytest.param(lambda d: d.pop("tests"), id="no-tests"),
        pytest.param(lambda d: d.__setitem__("tests", []), id="tests-list"),
        pytest.param(lambda d: d["tests"].__setitem__("t::x", "pass"), id="test-not-object"),
    ],
)
def test_bad_top_level_fails_validation(
    validate: Validate, document: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> None:
    bad = copy.deepcopy(document)
    change(bad)
    assert validate(bad) != []


def test_unknown_keys_are_allowed_for_forward_compatibility(
    validate: Validate, document: dict[str, Any]
) -> None:
    extended = copy.deepcopy(document)
    extended["dashboard"] = {"x": 1}
    for entry in extended["tests"].values():
        entry["new_figure"] = 1
    assert validate(extended) == []


def test_plugin_output_validates(validate: Validate, pytester: pytest.Pytester) -> None:
    """A real session's ``--automem-json``: every kind of item, pass and fail."""
    pytester.makepyfile(alloc=INNER_ALLOC)
    pytester.makepyfile(
        test_inner="""
        import unittest

        import pytest
        from alloc import MB, resident


        @pytest.mark.memory_budget(peak="1MB")
        def test_over():
            resident(4 * MB).close()


        @pytest.mark.memory_budget(peak="512MB", pressure="critical", rate="100MB/s")
        @pytest.mark.parametrize("n", [1, 2])
        def test_within(n):
            pass


        class TestCase(unittest.TestCase):
            def test_method(self):
                pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--automem", "--automem-json=out.json",
        timeout=60,
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    document = read_results(pytester.path / "out.json")
    assert validate(document) == []
    assert list(document["tests"]) == sorted(document["tests"])
    assert document["tests"]["test_inner.py::test_over"]["verdict"] == "fail"
    assert document["tests"]["test_inner.py::TestCase::test_method"]["verdict"] == "pass"


# -- writing -------------------------------------------------------------------


def test_write_is_sorted_by_node_id(records: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, build_results(records, {}))
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    positions = [text.index(json.dumps(nodeid)) for nodeid in sorted(records)]
    assert positions == sorted(positions)
    assert list(json.loads(text)["tests"]) == sorted(records)


def test_write_is_atomic(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"version": 1, "old": true}\n', encoding="utf-8")
    old = path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_results(path, document)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_write_creates_folders_and_a_readable_file(
    document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "ci" / "memory" / "results.json"
    write_results(path, document)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


# -- reading -------------------------------------------------------------------


def test_read_round_trips(document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, document)
    assert read_results(path) == document
    assert read_results(str(path)) == document


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{\n  "version": 1,\n  oops\n}\n', 3),
        ("", 1),
        ("<testsuite/>", 1),
        ('{"version": 1, "tests": {}}\n\ntrailing', 3),
    ],
    ids=["bad-token", "empty", "xml", "trailing"],
)
def test_read_rejects_non_json_naming_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{path}:{line}: not a results file"):
        read_results(path)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param(
            '{"version": 1, "tests": {"t": ' + TOO_MANY_DIGITS + "}}",
            "Exceeds the limit",
            marks=NEEDS_DIGIT_LIMIT,
            id="integer-past-the-digit-limit",
        ),
        pytest.param(NESTED_TOO_DEEP, "nested too deeply", id="nested-too-deeply"),
    ],
)
def test_read_rejects_json_python_cannot_hold_naming_the_file(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{path}: not a results file: {why}"):
        read_results(path)


def test_read_rejects_binary_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=str(path)):
        read_results(path)


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"version": 2, "tests": {}}, "not a version-1 automem results file"),
        ({"version": "1", "tests": {}}, "not a version-1 automem results file"),
        ({"tests": {}}, "not a version-1 automem results file"),
        ([1, {"tests": {}}], "not a version-1 automem results file"),
        ("results", "not a version-1 automem results file"),
        pytest.param(
            {"version": True, "tests": {}},
            "not a version-1 automem results file",
            id="version-true",
        ),
        ({"version": 1}, "has no 'tests' object"),
        ({"version": 1, "tests": []}, "has no 'tests' object"),
        ({"version": 1, "tests": None}, "has no 'tests' object"),
    ],
)
def test_read_rejects_wrong_version_or_missing_tests(
    tmp_path: Path, document: Any, why: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=why) as excinfo:
        read_results(path)
    assert str(path) in str(excinfo.value)


def test_read_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "absent.json")
