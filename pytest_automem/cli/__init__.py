"""The ``automem`` command line: one sub-command per module.

Exit codes are a contract shared by every sub-command (:mod:`.exit_codes`,
docs/guarantees.md): 0 fine, 1 a finding (or a failed gate), 2 a usage or
input error reported as one line on stderr, 3 a limit crossed, 70 an
internal failure; wrappers of a command pass its status through.
``automem`` with no command prints its usage and the commands on stderr
(exit 2).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence

from . import (
    analyze_command,
    baseline_command,
    budgets_command,
    gate_command,
    investigate_command,
    merge_command,
    monitor_command,
    report_command,
    spawn_command,
)
from .common import InputError, redirect_stdout_to_devnull
from .exit_codes import (
    EXIT_FINDING,
    EXIT_INTERNAL,
    EXIT_LIMIT,
    EXIT_OK,
    EXIT_USAGE,
    for_signal,
)

#: SIGPIPE's number (13 on Linux and macOS; Windows has no such signal).
_SIGPIPE = getattr(signal, "SIGPIPE", 13)
#: Every sub-command's module, by the name it is called with.
_COMMANDS = (
    ("monitor", monitor_command),
    ("spawn", spawn_command),
    ("investigate", investigate_command),
    ("analyze", analyze_command),
    ("merge", merge_command),
    ("gate", gate_command),
    ("baseline", baseline_command),
    ("budgets", budgets_command),
    ("report", report_command),
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"automem: error: {message}\n")


def _description() -> str:
    """What automem is, then each command on one line with what it does.

    Written here rather than left to argparse, which wraps a long command
    name's help onto a line of its own.
    """
    width = max(len(name) for name, _ in _COMMANDS)
    lines = [
        "Memory monitoring, budgets and leak diagnosis (pytest-automem).",
        "",
        "commands:",
        *(f"  {name:<{width}}  {module.SUMMARY}" for name, module in _COMMANDS),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="automem",
        usage="automem [-h] COMMAND ...",
        description=_description(),
        epilog="Run 'automem COMMAND --help' for a command's options.\n"
        f"Exit codes: {EXIT_OK} fine, {EXIT_FINDING} findings, {EXIT_USAGE} bad input, "
        f"{EXIT_LIMIT} a limit crossed, {EXIT_INTERNAL} an internal error\n"
        "(docs/guarantees.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="subcommand",
        prog="automem",
        metavar="COMMAND",
        required=True,
        parser_class=_Parser,
        help=argparse.SUPPRESS,
    )
    for _, module in _COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        # No command is a usage error (exit 2), but one a newcomer makes
        # first: the usage and the list of commands say what to type next.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(arguments)
    try:
        return int(args.run(args))
    except InputError as exc:
        # One line whatever it quotes: a path or node id may hold a newline.
        print(f"automem {args.subcommand}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"automem {args.subcommand}: interrupted", file=sys.stderr)
        return for_signal(signal.SIGINT)
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as exc:
        # A bug, not bad input: keep the traceback for the report, but end
        # with the one documented code (never 0 or 1, which mean something).
        traceback.print_exc()
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"automem {args.subcommand}: internal error: {reason}", file=sys.stderr)
        return EXIT_INTERNAL


def _stdout_closed() -> int:
    """The reader of our output went away (``automem … | head``): end quietly.

    Unix tools die of SIGPIPE there, which a shell reports as 141; we do
    the same, and point stdout at /dev/null so that the interpreter's final
    flush cannot print a traceback of its own.
    """
    redirect_stdout_to_devnull()
    return for_signal(_SIGPIPE)
