"""``automem baseline update``: make runs the baseline a gate compares with.

    automem baseline update RESULTS.json [MORE.json ...] [--baseline PATH]
                            [--allow-mixed-context]

Each RESULTS.json is a results file (pytest --automem-json).  The baseline
is a results file too, written atomically to --baseline (default
automem-baseline.json): a reader sees the old baseline or the new one, and
a bad input leaves the old one as it was.  From several runs, each test
keeps its worst figure of each metric (peak, growth, rate, leak per
iteration), which absorbs run-to-run noise; a test in only some of the runs
is kept, with the worst of those.

The baseline keeps the measurement context (sampler, peak source, Python,
platform, CPU count, plugin version) and lists the runs that went in.  Runs
measured in different contexts are refused unless --allow-mixed-context;
the baseline then lists each run's context.

Exit: 0 written; 2 bad input (a missing or malformed results file, named
with its line; contexts that differ; a baseline that cannot be written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..base.defaults import DEFAULT_BASELINE_PATH
from ..results.baseline import MixedContextError, build_baseline, write_baseline
from .common import InputError
from .exit_codes import EXIT_OK
from .results_actions import add_results_action, read_inputs, write_failed

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "make results files the baseline (each test's worst figures)"


def register(commands: argparse._SubParsersAction) -> None:
    update = add_results_action(
        commands,
        "baseline",
        "update",
        summary=SUMMARY,
        action_help="write the baseline from results files",
        doc=__doc__,
    )
    update.add_argument(
        "--baseline",
        type=Path,
        default=Path(DEFAULT_BASELINE_PATH),
        metavar="PATH",
        help=f"the baseline file to write (default {DEFAULT_BASELINE_PATH})",
    )
    update.add_argument(
        "--allow-mixed-context",
        action="store_true",
        help="combine runs measured in different contexts (each is listed in the baseline)",
    )
    update.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    runs = read_inputs(args.results)
    try:
        document = build_baseline(runs, allow_mixed_context=args.allow_mixed_context)
    except MixedContextError as exc:
        raise InputError(str(exc)) from None
    try:
        write_baseline(args.baseline, document)
    except OSError as exc:
        raise write_failed("--baseline", args.baseline, exc) from None
    tests, count = len(document["tests"]), len(runs)
    print(
        f"baseline {args.baseline}: {tests} test{'s' * (tests != 1)} "
        f"from {count} run{'s' * (count != 1)}"
        + (" (mixed contexts)" if document["session"]["baseline"]["mixed_context"] else "")
    )
    return EXIT_OK
