"""What every sub-command shares: the one-line input error, option types, help text.

The exit codes live in :mod:`.exit_codes`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable
from typing import TypeVar

from ..base.defaults import (
    DEFAULT_INTERVAL_TEXT,
    DEFAULT_LIVE_EVERY,
    DEFAULT_THRESHOLDS_TEXT,
    INTERVAL_RANGE_TEXT,
)
from ..base.units import parse_duration_s, parse_interval_ms
from ..measure.pressure import MeasurementBasis, PressureThresholds

T = TypeVar("T")


#: ``:role:`target``` as Sphinx writes a reference: ``~`` keeps the last name only.
_ROLE = re.compile(r":[a-z]+:`(?P<tilde>~?)\.?(?P<target>[^`<]*?)\s*(?:<[^`]*>)?`")
#: ````literal```` as reStructuredText writes code.
_LITERAL = re.compile(r"``(?P<text>[^`]+)``")


class InputError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def typed(parse: Callable[[str], T], what: str) -> Callable[[str], T]:
    """Wrap a units parser as an argparse ``type``; argparse names the option."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = what
    return convert


def add_watch_options(parser: argparse.ArgumentParser, *, basis_help: str) -> None:
    """``--interval``, ``--thresholds``, ``--basis`` and ``--every``: how a command
    that watches a process (``monitor``, ``spawn``) samples, judges and reports it."""
    parser.add_argument(
        "--interval",
        default=DEFAULT_INTERVAL_TEXT,
        type=typed(parse_interval_ms, "--interval"),
        help=f"sampling interval, {INTERVAL_RANGE_TEXT}; a bare number is ms "
        f"(default {DEFAULT_INTERVAL_TEXT})",
    )
    parser.add_argument(
        "--thresholds",
        default=DEFAULT_THRESHOLDS_TEXT,
        type=typed(PressureThresholds.parse, "--thresholds"),
        help=f"where MEDIUM, HIGH, CRITICAL begin (default {DEFAULT_THRESHOLDS_TEXT})",
    )
    parser.add_argument(
        "--basis",
        choices=[b.value for b in MeasurementBasis],
        default="absolute",
        help=basis_help,
    )
    parser.add_argument(
        "--every",
        default=DEFAULT_LIVE_EVERY,
        type=typed(parse_duration_s, "--every"),
        help=f"print a live line this often on stderr; 0 for none (default {DEFAULT_LIVE_EVERY})",
    )


def print_text(text: str) -> None:
    """Print ``text``; characters stdout cannot encode become backslash escapes."""
    try:
        print(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        print(text.encode(encoding, "backslashreplace").decode(encoding))


def redirect_stdout_to_devnull() -> None:
    """Point file descriptor 1 at /dev/null, after the reader of stdout went away.

    Python flushes stdout once more at exit; on a broken pipe that flush
    prints a traceback of its own ("Exception ignored ..."), which this
    prevents.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with contextlib.suppress(OSError, ValueError):  # not a real file (a test's capture)
            os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def add_command(
    commands: argparse._SubParsersAction, name: str, summary: str, docstring: str | None
) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` is its module's docstring, as written.

    ``summary`` is its line in ``automem --help``; the docstring keeps its
    own line breaks (its examples and lists), without reStructuredText marks.
    """
    return commands.add_parser(
        name,
        help=summary,
        description=plain_help(docstring),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def plain_help(docstring: str | None) -> str:
    """A module docstring as ``--help`` shows it: reStructuredText markup removed.

    The sub-commands' docstrings are their help, and the same text is read
    in the source, where Sphinx-style ````--every```` and ``:class:`X``` mark
    code.  A terminal shows those marks as noise, so they go, here, for
    every command.
    """
    text = _ROLE.sub(_role_text, docstring or "")
    return _LITERAL.sub(lambda match: match["text"], text)


def _role_text(match: re.Match[str]) -> str:
    target = match["target"]
    return target.rsplit(".", 1)[-1] if match["tilde"] else target
