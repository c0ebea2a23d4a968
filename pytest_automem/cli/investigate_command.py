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
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..automaton.store import AutomatonFormatError
from ..investigator.file_checks import FILE_CHECKS, SNAPSHOT_CHECK, investigate_file
from ..investigator.findings import Finding, Investigation
from ..investigator.render import FORMATS, render
from .common import InputError
from .exit_codes import EXIT_FINDING, EXIT_OK

__all__ = ["junit_report", "register", "run"]

_SUITE = "automem investigate"
_CLASSNAME = "automem.investigate"
_XML_DECLARATION = re.compile(r"\A<\?xml[^>]*\?>\s*")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "investigate",
        help="diagnose an automaton.jsonl: duplicate ids, large arrays, histories, snapshots",
        description=__doc__,
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
    if args.junit is not None:
        checks = [*FILE_CHECKS, *([SNAPSHOT_CHECK] if args.snapshots is not None else [])]
        try:
            _write_junit(args.junit, junit_report(investigation, checks))
        except OSError as exc:
            raise InputError(
                _one_line(f"cannot write --junit {args.junit}: {exc.strerror or exc}")
            ) from None
    _print(render(investigation, args.format))
    return EXIT_FINDING if investigation.findings else EXIT_OK


def _print(text: str) -> None:
    """Print ``text``; characters stdout cannot encode become backslash escapes."""
    try:
        print(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        print(text.encode(encoding, "backslashreplace").decode(encoding))


def _write_junit(path: Path, xml: str) -> None:
    from ..base.atomic import atomic_write_text

    atomic_write_text(path, xml)


def _failure_text(findings: Sequence[Finding]) -> str:
    lines: list[str] = []
    for finding in findings:
        if lines:
            lines.append("")
        lines.append(f"[{finding.severity.name}] {finding.summary}")
        lines.extend(f"  {detail}" for detail in finding.details)
        if finding.recommendation:
            lines.append(f"what to do: {finding.recommendation}")
    return "\n".join(lines) + "\n"


def junit_report(investigation: Investigation, checks: Sequence[str]) -> str:
    """The investigation as a JUnit document: one test case per check in ``checks``.

    A check with findings fails: the most severe finding's summary is the
    one-line message (with "(+N more)" when there are several), and every
    finding's summary, details and recommendation are the failure text.  The
    figures become suite properties.  All text passes through ``xml_safe``,
    so ids with control characters still give well-formed XML.
    """
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    from ..outputs.junit import xml_safe

    by_check: dict[str, list[Finding]] = {}
    for finding in investigation.findings:
        by_check.setdefault(finding.check, []).append(finding)
    names = list(dict.fromkeys([*checks, *by_check]))

    suite = TestSuite(xml_safe(_SUITE))
    for name, value in investigation.figures.items():
        suite.add_property(xml_safe(str(name)), xml_safe(str(value)))
    for name in names:
        case = TestCase(xml_safe(name), classname=_CLASSNAME)
        findings = by_check.get(name)
        if findings:
            message = _one_line(findings[0].summary)
            if len(findings) > 1:
                message += f" (+{len(findings) - 1} more)"
            failure = Failure(xml_safe(message), type_=findings[0].severity.name)
            failure.text = xml_safe(_failure_text(findings))
            case.result = [failure]
        suite.add_testcase(case)
    suite.update_statistics()
    document = JUnitXml()
    document.add_testsuite(suite)
    document.update_statistics()
    body = _XML_DECLARATION.sub("", document.tostring().decode("utf-8"))
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'
