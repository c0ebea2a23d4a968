"""The ``automem`` command line: one sub-command per module.

Exit codes are a contract: 0 fine, 1 a finding (or a failed gate), 2 a usage
or input error, reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import investigate_command, monitor_command
from .common import EXIT_USAGE, InputError


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"automem: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="automem",
        description="Memory monitoring, budgets and leak diagnosis (pytest-automem).",
    )
    commands = parser.add_subparsers(
        dest="subcommand", metavar="COMMAND", required=True, parser_class=_Parser
    )
    monitor_command.register(commands)
    investigate_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.run(args))
    except InputError as exc:
        print(f"automem {args.subcommand}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"automem {args.subcommand}: interrupted", file=sys.stderr)
        return 130
