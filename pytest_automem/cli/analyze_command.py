"""``automem analyze``: memory over time in snapshot files, against the growth marks.

    automem analyze SNAPSHOTS... [--format text|json|markdown] [--output FILE]
                                 [--fail-on critical|warning]

SNAPSHOTS are files and folders.  A folder means the snapshot files in it
(snapshot-<time>-<pid>-<label>.jsonl, as automem monitor --snapshots and the
plugin write them); other files there are left alone.  A file named on the
command line is read whatever its name: a spawner's --events log, say,
whose torn last line (a killed writer) is left out.

For each snapshot and for all of them together:

  pressure     the share of time at each level (each sample holds until
               the next, so irregular or downsampled samples count by the
               time they stand for), and the time at HIGH or above
  growth       the overall slope (Theil-Sen) and the steepest sustained
               rate, from one 0.5 s window's median memory to the next
               window's, against the marks: < 1 MB/s target, > 5 MB/s
               warning, > 10 MB/s critical
  efficiency   objects per MB of RSS where samples count objects
               (target >= 10)
  events       how many of each kind (gc, trim, spawn, level, ...), and
               each one's effect: memory before and after, bytes freed,
               the largest first

Text and Markdown are bounded (the worst snapshots, the first marks, the
largest events, and how many were left out); JSON holds everything.
--output writes the report to FILE (atomically) instead of stdout.

Exit: 0 no critical mark passed (warnings are shown); 1 a critical mark
passed: a snapshot reached CRITICAL pressure, or grew faster than
10 MB/s (with --fail-on warning, a warning mark fails too: HIGH pressure,
growth above 5 MB/s, fewer than 10 objects per MB); 2 bad input (a missing
path, a folder with no snapshot files, a file that is not a snapshot, a
bad line, named as file:line); 70 an internal error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..base.atomic import atomic_write_text
from ..investigator.findings import Severity
from ..outputs.analysis_report import FORMATS, render_analysis
from ..snapshots.analysis import analyze_snapshots
from ..snapshots.files import Snapshot, SnapshotFormatError, list_snapshots, read_snapshot
from ..verdicts.analysis import judge_analysis
from .common import InputError, add_command, print_text
from .exit_codes import EXIT_FINDING, EXIT_OK
from .investigate_inputs import InputKind, recognise

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "memory over time in snapshot files: pressure, growth rate, events"
#: ``--fail-on``'s choices, mildest first.
_FAIL_ON = {"warning": Severity.WARNING, "critical": Severity.CRITICAL}


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "analyze", SUMMARY, __doc__)
    parser.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="SNAPSHOTS",
        help="snapshot files and folders of snapshot files",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="report format (default text)"
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write the report to FILE instead of stdout"
    )
    parser.add_argument(
        "--fail-on",
        choices=tuple(_FAIL_ON),
        default="critical",
        help="exit 1 on a mark this bad or worse (default critical)",
    )
    parser.set_defaults(run=run)


def snapshot_files(paths: Sequence[Path]) -> list[Path]:
    """The files to read, in the order given, each once: a folder's snapshot files
    oldest first, a file as named.  Raises InputError for a path that is neither."""
    files: dict[Path, Path] = {}
    for path in paths:
        try:
            if path.is_dir():
                found = list_snapshots(path)
                if not found:
                    raise InputError(
                        f"{path}: no snapshot files in this folder "
                        "(snapshot-<time>-<pid>-<label>.jsonl)"
                    )
            elif path.exists():
                found = [path]
            else:
                raise InputError(f"{path}: no such file or folder")
            for file in found:
                files.setdefault(file.resolve(), file)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from None
    return list(files.values())


def _read_each(files: Sequence[Path]) -> Iterator[Snapshot]:
    """Each file read in turn, every failure one input error naming the file (and line)."""
    for file in files:
        try:
            yield read_snapshot(file)
        except OSError as exc:
            raise InputError(f"{file}: {exc.strerror or exc}") from None
        except SnapshotFormatError as exc:
            raise InputError(_other_kind(file) or str(exc)) from None


def _other_kind(file: Path) -> str | None:
    """What to say of a file automem wrote that is not a snapshot; None otherwise."""
    try:
        kind = recognise(file)
    except (InputError, OSError):
        return None
    if kind is InputKind.RESULTS:
        return f"{file}: a results file, not a snapshot file: automem report or investigate read it"
    if kind is InputKind.AUTOMATON:
        return f"{file}: an automaton file, not a snapshot file: automem investigate reads it"
    return None


def run(args: argparse.Namespace) -> int:
    files = snapshot_files(args.paths)
    if args.output is not None and os.path.realpath(args.output) in {
        os.path.realpath(file) for file in files
    }:
        raise InputError(f"--output {args.output}: is a snapshot file it reads; give another path")
    try:
        analysis = analyze_snapshots(_read_each(files))
    except SnapshotFormatError as exc:
        raise InputError(str(exc)) from None
    verdict = judge_analysis(analysis.snapshots)
    report = render_analysis(analysis, verdict, args.format)
    if args.output is None:
        print_text(report)
    else:
        try:
            atomic_write_text(args.output, report.rstrip("\n") + "\n")
        except OSError as exc:
            raise InputError(
                f"cannot write --output {args.output}: {exc.strerror or exc}"
            ) from None
    return EXIT_FINDING if verdict.fails(_FAIL_ON[args.fail_on]) else EXIT_OK
