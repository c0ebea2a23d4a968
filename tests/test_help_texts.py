"""What a user reads first: ``automem`` alone, every ``--help``, ``pytest --markers``.

The help texts are built from the commands' docstrings, which also mark
code for Sphinx; these tests keep that markup out of the terminal, and keep
the marker's one line in step with the arguments a budget accepts.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pytest_automem.cli import (
    analyze_command,
    investigate_command,
    main,
    monitor_command,
    spawn_command,
)
from pytest_automem.verdicts import budget

#: Generous: the command only prints; this only stops a hang.
TIMEOUT_S = 60
#: reStructuredText a terminal would show raw: ``literal``, :role:`target`, `default role`.
MARKUP = re.compile(r"``|:[a-z]+:`|`")


def test_automem_alone_prints_usage_and_every_command_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_automem"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "usage: automem [-h] COMMAND ..."
    commands = (
        ("monitor", monitor_command),
        ("investigate", investigate_command),
        ("analyze", analyze_command),
        ("spawn", spawn_command),
    )
    for name, module in commands:
        [line] = [line for line in lines if line.split()[:1] == [name]]
        assert line.split(maxsplit=1)[1] == module.SUMMARY
    assert "automem COMMAND --help" in result.stderr


@pytest.mark.parametrize(
    "command", [[], ["monitor"], ["investigate"], ["analyze"], ["report"], ["spawn"]], ids=str
)
def test_help_has_no_markup(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: automem {' '.join(command)}".rstrip())
    assert [line for line in text.splitlines() if MARKUP.search(line)] == []


def test_markers_line_names_every_argument_a_budget_accepts(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers", "-p", "no:randomly")

    [line] = [line for line in result.outlines if "mark.memory_budget(" in line]
    signature = line.split("memory_budget(", 1)[1].split(")", 1)[0]
    names = [part.split("=")[0].strip() for part in signature.split(",")]
    assert names == list(budget._ARGUMENTS)
