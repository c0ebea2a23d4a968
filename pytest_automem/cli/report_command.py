"""``automem report``: results files as one self-contained HTML dashboard.

    automem report RESULTS.json [MORE.json ...] [--samples DIR] -o report.html

The newest run (the last file) is shown: a summary (tests, memory
failures, the highest peaks and growths, how it was measured), a table of
every test (sortable, filterable by name, verdict and pressure, a page at
a time), and per test its memory over time with the pressure bands, the
budget, the peak and the events, beside the investigator's text.  Give
earlier runs first (oldest first, the last runs of main, say) for a trend
per test and for the suite; the newest is compared with the one before as
``automem gate`` judges it, with the gate's defaults.

Curves come from the per-test samples the results file names (its
``samples_dir``, relative to the results file); --samples DIR reads them
from DIR instead.  A missing or unreadable samples file is no error: that
test shows without a plot, and the report says how many were missing.

The page needs no network: open it from a CI artifact.  It is written
atomically; a link at the output path is replaced, never written through.

Exit: 0 written; 2 bad input (a missing or malformed results file, named
with its line; an output path that is a folder or cannot be written);
70 an internal error.  Every automem command shares these codes
(docs/guarantees.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..base.units import format_count
from ..outputs.dashboard import DashboardRun, write_dashboard
from ..results.results_file import samples_folder
from .common import InputError, add_command, print_text
from .exit_codes import EXIT_OK
from .results_inputs import read_results_input

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "write an HTML dashboard of results files: tests, memory curves, trends"


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "report", SUMMARY, __doc__)
    parser.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="RESULTS.json",
        help="results files, oldest first; the last is the run shown",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        metavar="DIR",
        help="read the newest run's per-test samples from DIR (default: the folder its "
        "results file names)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="report.html", help="the HTML file"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.samples is not None and not args.samples.is_dir():
        raise InputError(f"--samples {args.samples}: not a folder")
    if args.output.is_dir():
        raise InputError(f"-o {args.output}: is a folder; give a file path")
    for path in args.paths:
        if args.output.exists() and path.exists() and args.output.samefile(path):
            raise InputError(f"-o {args.output}: is the results file {path}; give another path")
    documents = [read_results_input(path) for path in args.paths]
    newest = args.paths[-1]
    runs = [
        DashboardRun(path.name, document)
        for path, document in zip(args.paths[:-1], documents[:-1], strict=True)
    ]
    folder = args.samples or samples_folder(documents[-1], newest)
    runs.append(DashboardRun(newest.name, documents[-1], folder))
    try:
        summary = write_dashboard(args.output, runs)
    except OSError as exc:
        raise InputError(f"cannot write -o {args.output}: {exc.strerror or exc}") from None
    curves = format_count(summary.plots, "memory curve")
    if summary.samples_missing or summary.samples_bad:
        curves += (
            f" ({format_count(summary.samples_missing, 'samples file')} missing, "
            f"{summary.samples_bad} unreadable)"
        )
    tests = format_count(summary.tests, "test")
    print_text(
        f"automem report: {tests} from {format_count(len(runs), 'run')}, {curves} -> {args.output}"
    )
    return EXIT_OK
