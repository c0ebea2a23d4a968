"""What the commands that write a file from results files share.

``automem baseline update`` and ``automem budgets suggest`` are both a
command, an action and results files; and each must leave its old output
untouched when any one input is bad: every file is read first, and the
first bad one is the one-line input error, naming it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from ..results.baseline import Run, read_runs
from ..results.results_file import ResultsFormatError
from .common import InputError, add_command

__all__ = ["add_results_action", "read_inputs", "write_failed"]


def add_results_action(
    commands: argparse._SubParsersAction,
    name: str,
    action: str,
    *,
    summary: str,
    action_help: str,
    doc: str | None,
) -> argparse.ArgumentParser:
    """``automem NAME ACTION RESULTS.json [MORE.json ...]``: the action's parser,
    for the command to add its options to."""
    parser = add_command(commands, name, summary, doc)
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    acting = add_command(actions, action, action_help, doc)
    acting.add_argument(
        "results", nargs="+", type=Path, metavar="RESULTS.json", help="results files (runs)"
    )
    return acting


def read_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Every run in ``paths``, or an InputError naming the file (and line) at fault."""
    try:
        return read_runs(paths)
    except ResultsFormatError as exc:
        raise InputError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None


def write_failed(option: str, path: str | os.PathLike[str], exc: OSError) -> InputError:
    """An output that could not be written, as the one-line error naming the option."""
    return InputError(f"cannot write {option} {os.fspath(path)}: {exc.strerror or exc}")
