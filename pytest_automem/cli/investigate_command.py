"""``automem investigate``: diagnose a file automem wrote.

    automem investigate PATH [--format text|json|markdown] [--junit OUT.xml]
                             [--strict] [--snapshots DIR]

PATH is recognised by its content, whatever its name:

  an automaton file    duplicate ids, large arrays inside objects, unbounded
                       execution histories, objects per MB; with --snapshots,
                       the snapshot files in DIR too
  a results file       (pytest --automem-json) the tests that failed on
                       memory, each with its message and findings, then the
                       other tests' findings, and the tests with the highest
                       peaks and the most growth
  a snapshot file      (automem monitor --snapshots) how high the window
                       went, when, and how long at each pressure level
  a snapshot folder    too many or too large snapshot files, and the
                       windows that reached HIGH pressure or above

The report goes to stdout in --format text (bounded: the first findings and
lines, and how many were left out), json (everything) or markdown.  --junit
also writes a JUnit file with one test case per check (per test, for a
results file), failed where something was found.  --strict refuses what a
lenient read accepts: a duplicate id in an automaton file, a test without
the contract's keys in a results file.  --snapshots applies to an automaton
file only.

Exit: 0 no findings; 1 findings (for a results file: a test that failed on
memory or has findings); 2 bad input (a missing or unreadable file, content
of no kind above, a line at fault in one of them, an option that does not
apply to the kind, a --junit file that cannot be written); 70 an internal
error.  Every automem command shares these codes (docs/guarantees.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..investigator.render import FORMATS, render
from ..verdicts.findings import judge_investigation
from .common import InputError, add_command, print_text
from .exit_codes import EXIT_FINDING, EXIT_OK
from .investigate_inputs import investigate_input

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "diagnose a file automem wrote: automaton, results, snapshots"
_SUITE = "automem investigate"
_CLASSNAME = "automem.investigate"


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "investigate", SUMMARY, __doc__)
    parser.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="an automaton, results or snapshot file, or a snapshot folder",
    )
    parser.add_argument(
        "--snapshots",
        type=Path,
        metavar="DIR",
        help="with an automaton file: also check the snapshot files in DIR",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="report format on stdout (default text)"
    )
    parser.add_argument(
        "--junit",
        type=Path,
        metavar="OUT.xml",
        help="write a JUnit file: one test case per check (per test for a results file)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse what a lenient read accepts (exit 2): duplicate ids in an automaton "
        "file, tests without the contract's keys in a results file",
    )
    parser.set_defaults(run=run)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run(args: argparse.Namespace) -> int:
    try:
        examined = investigate_input(args.path, snapshots=args.snapshots, strict=args.strict)
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.path
        what = "--snapshots " if args.snapshots is not None and Path(name) == args.snapshots else ""
        raise InputError(_one_line(f"{what}{name}: {exc.strerror or exc}")) from None
    investigation = examined.investigation
    verdict = judge_investigation(investigation, examined.checks)
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
    print_text(render(investigation, args.format))
    return EXIT_OK if verdict.passed else EXIT_FINDING
