"""``automem investigate`` end to end: real subprocesses, exit codes, formats, JUnit.

Exit codes are the contract shared by every command (docs/guarantees.md,
"Exit codes"): 0 no findings, 1 findings, 2 a usage or input error reported
as exactly one line on stderr, 70 an internal error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_input_error, run_investigate
from junitparser import Failure, JUnitXml

from pytest_automem.base.defaults import DETAILS_SHOWN
from pytest_automem.cli import investigate_command, main
from pytest_automem.investigator.file_checks import FILE_CHECKS, SNAPSHOT_CHECK

#: Generous: a run takes a fraction of a second; this only stops a hang.
TIMEOUT_S = 60


automem = run_investigate


def write_jsonl(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")
    return path


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "clean.jsonl", [{"id": f"obj-{i}", "v": [1, 2, 3]} for i in range(20)]
    )


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """Duplicate ids and a large array; a fine history and (unless padded) efficiency."""
    return write_jsonl(
        tmp_path / "leaky.jsonl",
        [
            {"id": "evt-7"},
            {"id": "big", "payload": {"samples": list(range(20_000))}},
            {"id": "evt-7"},
        ]
        + [{"id": f"pad-{i}", "text": "x" * 20} for i in range(2000)],
    )


# --------------------------------------------------------------------------- exit codes


def test_clean_file_exits_0(clean: Path) -> None:
    result = automem(clean)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "objects: 20" in result.stdout


def test_findings_exit_1(leaky: Path) -> None:
    result = automem(leaky)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert 'id "evt-7": lines 1, 3' in result.stdout
    assert "payload.samples" in result.stdout


def test_internal_error_exits_70_never_1(
    clean: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug must not pass for "findings" (1) or for success: one documented code.
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("checks\nfell over")

    monkeypatch.setattr(investigate_command, "investigate_input", broken)
    assert main(["investigate", str(clean)]) == 70
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.splitlines()[-1]
    assert last == "automem investigate: internal error: RuntimeError: checks fell over"


def test_closed_stdout_ends_quietly(leaky: Path) -> None:
    # `automem investigate ... | head`: the reader went away; no traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest_automem", "investigate", str(leaky)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 128 + 13  # as a shell reports a tool killed by SIGPIPE


def test_missing_file_exits_2(tmp_path: Path) -> None:
    assert_input_error(automem(tmp_path / "missing.jsonl"), "missing.jsonl", "no such file")


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n\n{"id": "b", oops}\n', encoding="utf-8")
    line = assert_input_error(automem(bad), f"{bad}:3:", "invalid JSON")
    assert line.startswith("automem investigate: error: ")


def test_snapshots_path_that_is_a_file_exits_2(clean: Path) -> None:
    assert_input_error(automem(clean, "--snapshots", clean), "--snapshots", "not a folder")


def test_strict_makes_a_duplicate_an_input_error(leaky: Path) -> None:
    assert_input_error(automem(leaky, "--strict"), f"{leaky}:3:", "duplicate id")


def test_usage_error_exits_2(clean: Path) -> None:
    assert_input_error(automem(clean, "--format", "yaml"), "--format")


def test_snapshot_folder_checked(clean: Path, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    folder.mkdir()
    for i in range(51):
        (folder / f"snapshot-20260101T0000{i:02d}.000000-1-w.jsonl").write_text("{}\n")
    result = automem(clean, "--snapshots", folder)
    assert result.returncode == 1, result.stderr
    assert "51 snapshot files" in result.stdout
    assert automem(clean, "--snapshots", tmp_path / "empty-but-missing").returncode == 2


# --------------------------------------------------------------------------- formats


def test_json_format(leaky: Path) -> None:
    result = automem(leaky, "--format", "json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    checks = {finding["check"] for finding in document["findings"]}
    assert checks == {"duplicate-ids", "large-arrays"}
    [arrays] = [f for f in document["findings"] if f["check"] == "large-arrays"]
    assert arrays["evidence"]["largest"][0]["path"] == "payload.samples"
    assert arrays["evidence"]["largest"][0]["elements"] == 20_000
    assert document["figures"]["objects"] == 2003


def test_markdown_format(leaky: Path) -> None:
    result = automem(leaky, "--format", "markdown")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## ")
    assert "| figure | value |" in lines and "|---|---|" in lines
    assert any(line.startswith("### WARNING: ") and "more than once" in line for line in lines)


def test_clean_json_has_no_findings(clean: Path) -> None:
    result = automem(clean, "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["findings"] == []


def test_text_counts_exactly_what_it_left_out_and_json_keeps_every_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dups.jsonl", [{"id": f"dup-{i}"} for i in range(50)] * 2)

    text = automem(path)
    document = json.loads(automem(path, "--format", "json").stdout)

    assert text.returncode == 1, text.stderr
    shown = [line for line in text.stdout.splitlines() if line.strip().startswith('id "dup-')]
    [more] = [line.strip() for line in text.stdout.splitlines() if "more line" in line]
    assert len(shown) == DETAILS_SHOWN
    assert more == f"… and {50 - DETAILS_SHOWN} more lines"
    [finding] = document["findings"]
    assert len(finding["details"]) == 50
    assert set(finding["evidence"]["lines"]) == {f"dup-{i}" for i in range(50)}
    assert finding["evidence"]["lines"]["dup-49"] == [50, 100]


# --------------------------------------------------------------------------- JUnit


def read_junit(path: Path) -> dict[str, list[Failure]]:
    """Parse with both parsers; return each testcase's failures by name."""
    root = ET.parse(path).getroot()
    et_cases = {case.get("name"): case for case in root.iter("testcase")}
    cases: dict[str, list[Failure]] = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            assert case.name not in cases, f"duplicate testcase {case.name}"
            cases[case.name] = [r for r in case.result if isinstance(r, Failure)]
    assert set(cases) == set(et_cases)
    return cases


def test_junit_one_testcase_per_check(leaky: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "investigate.xml"
    result = automem(leaky, "--junit", out, "--format", "json")
    assert result.returncode == 1, result.stderr

    cases = read_junit(out)
    assert set(cases) == set(FILE_CHECKS)
    failed = {name for name, failures in cases.items() if failures}
    assert failed == {"duplicate-ids", "large-arrays"}
    for name in failed:
        [failure] = cases[name]
        assert failure.message and "\n" not in failure.message
        assert "what to do:" in (failure.text or "")
    assert 'id "evt-7": lines 1, 3' in (cases["duplicate-ids"][0].text or "")
    # No temp file left beside it.
    assert [p.name for p in out.parent.iterdir()] == ["investigate.xml"]


def test_junit_clean_file_all_pass_with_snapshots(clean: Path, tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    folder = tmp_path / "snaps"
    folder.mkdir()
    result = automem(clean, "--junit", out, "--snapshots", folder)
    assert result.returncode == 0, result.stderr
    cases = read_junit(out)
    assert set(cases) == {*FILE_CHECKS, SNAPSHOT_CHECK}
    assert not any(cases.values())


def test_junit_with_control_characters_and_emoji(tmp_path: Path) -> None:
    weird = ["bell\x07", "esc\x1b[31m", "nul\x00", "brain🧠", "line\nbreak", "\ufffe"]
    objects: list[dict[str, Any]] = []
    for object_id in weird:
        objects += [{"id": object_id}, {"id": object_id}]
    objects.append({"id": "🧠\x01", "data": {"samples\x02🧠": list(range(10_000))}})
    path = write_jsonl(tmp_path / "weird\x1bname.jsonl", objects)
    out = tmp_path / "junit.xml"

    result = automem(path, "--junit", out)

    assert result.returncode == 1, result.stderr
    cases = read_junit(out)
    [duplicates] = cases["duplicate-ids"]
    assert duplicates.message and "\n" not in duplicates.message
    assert "🧠" in (duplicates.text or "")
    [arrays] = cases["large-arrays"]
    assert "🧠" in (arrays.message or "") and "\n" not in (arrays.message or "")
    # The report on stdout survives the same ids.
    assert "brain🧠" in result.stdout


def test_junit_unwritable_path_exits_2(clean: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_input_error(automem(clean, "--junit", blocker / "out.xml"), "--junit")
