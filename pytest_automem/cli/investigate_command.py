"""``automem investigate``: diagnose a saved automaton file.

    automem investigate AUTOMATON.jsonl [--snapshots DIR]
                        [--format text|json|markdown] [--junit OUT.xml] [--strict]

Runs the leak investigator's file checks (duplicate ids, large arrays inside
objects, unbounded execution histories, objects per MB and, with
``--snapshots``, the snapshot files in DIR) and prints the report on stdout.
``--junit`` also writes a JUnit file with one test case per check, failed
where the check found something.  ``--strict`` loads the file as
``Automaton(path, strict=True)`` does: a duplicate id is then an input error.

Exit: 0 no findings; 1 findings; 2 bad input (a missing or unreadable file,
a line that is not a JSON object with a string "id", a --snapshots path that
is not a folder, a --junit file that cannot be written); 70 an internal
error.  Every ``automem`` command shares these codes (docs/guarantees.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..automaton.store import AutomatonFormatError
from ..investigator.file_checks import FILE_CHECKS, SNAPSHOT_CHECK, investigate_file
from ..investigator.render import FORMATS, render
from ..verdicts.findings import judge_investigation
from .common import InputError, plain_help
from .exit_codes import EXIT_FINDING, EXIT_OK

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "diagnose a file automem wrote: automaton, results, snapshots"
_SUITE = "automem investigate"
_CLASSNAME = "automem.investigate"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "investigate",
        help=SUMMARY,
        description=plain_help(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("automaton", type=Path, metavar="AUTOMATON.jsonl")
    parser.add_argument(
        "--snapshots", type=Path, metavar="DIR", help="also check the snapshot files in DIR"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="report format on stdout (default text)"
    )
    parser.add_argument(
        "--junit", type=Path, metavar="OUT.xml", help="write a JUnit file: one test case per check"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse duplicate ids on load (an input error, exit 2) as Automaton(strict=True)",
    )
    parser.set_defaults(run=run)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run(args: argparse.Namespace) -> int:
    try:
        investigation = investigate_file(
            args.automaton, snapshots=args.snapshots, strict=args.strict
        )
    except AutomatonFormatError as exc:
        raise InputError(_one_line(str(exc))) from None
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.automaton
        what = "--snapshots " if args.snapshots is not None and Path(name) == args.snapshots else ""
        raise InputError(_one_line(f"{what}{name}: {exc.strerror or exc}")) from None
    checks = [*FILE_CHECKS, *([SNAPSHOT_CHECK] if args.snapshots is not None else [])]
    verdict = judge_investigation(investigation, checks)
    if args.junit is not None:
        from ..outputs.junit import write_check_report

        try:
            write_check_report(
                args.junit,
                verdict.checks,
                suite=_SUITE,
                classname=_CLASSNAME,
                properties=investigation.figures,
            )
        except OSError as exc:
            raise InputError(
                _one_line(f"cannot write --junit {args.junit}: {exc.strerror or exc}")
            ) from None
    _print(render(investigation, args.format))
    return EXIT_OK if verdict.passed else EXIT_FINDING


def _print(text: str) -> None:
    """Print ``text``; characters stdout cannot encode become backslash escapes."""
    try:
        print(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        print(text.encode(encoding, "backslashreplace").decode(encoding))
