"""``automem budgets suggest``: per-test memory budgets from measured runs.

    automem budgets suggest RESULTS.json [MORE.json ...] [--margin 25%]
                            [--min 1MB] [-o automem-budgets.json]

For each test in the results files (pytest --automem-json): its worst
figure over the runs, raised by --margin and at least --min, as its peak,
growth and leak-per-iteration budget.  A test that ran no scenario gets no
leak budget.  The budgets file is written atomically; name it in the ini
setting automem_budgets and pytest enforces each entry as if the test
carried memory_budget(...) with those values (a marker on the test wins).

Exit: 0 written; 2 bad input (a missing or malformed results file, named
with its line; a bad --margin or --min; a file that cannot be written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..base.defaults import (
    DEFAULT_BUDGET_MARGIN_TEXT,
    DEFAULT_BUDGET_MIN_TEXT,
    DEFAULT_BUDGETS_PATH,
)
from ..base.units import parse_size_bytes
from ..results.baseline import worst_records
from ..results.budgets_file import (
    parse_margin,
    size_text_at_least,
    suggest_budgets,
    write_budgets,
)
from .common import typed
from .exit_codes import EXIT_OK
from .results_actions import add_results_action, read_inputs, write_failed

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "suggest per-test budgets from results files (ini automem_budgets)"


def register(commands: argparse._SubParsersAction) -> None:
    suggest = add_results_action(
        commands,
        "budgets",
        "suggest",
        summary=SUMMARY,
        action_help="write a budgets file from results files",
        doc=__doc__,
    )
    suggest.add_argument(
        "--margin",
        type=typed(parse_margin, "margin"),
        default=DEFAULT_BUDGET_MARGIN_TEXT,
        metavar="PCT",
        help="headroom above the worst figure (default %(default)s)",
    )
    suggest.add_argument(
        "--min",
        dest="min_bytes",
        type=typed(parse_size_bytes, "size"),
        default=DEFAULT_BUDGET_MIN_TEXT,
        metavar="SIZE",
        help=f"no budget below this (default {DEFAULT_BUDGET_MIN_TEXT})",
    )
    suggest.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path(DEFAULT_BUDGETS_PATH),
        metavar="PATH",
        help=f"the budgets file to write (default {DEFAULT_BUDGETS_PATH})",
    )
    suggest.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    runs = read_inputs(args.results)
    worst = worst_records(run.document["tests"] for run in runs)
    budgets = suggest_budgets(worst, margin=args.margin, min_bytes=args.min_bytes)
    suggested = {
        "from": [run.path for run in runs],
        "margin": f"{args.margin * 100:g}%",
        "min": size_text_at_least(args.min_bytes),
    }
    try:
        write_budgets(args.output, budgets, suggested)
    except OSError as exc:
        raise write_failed("-o", args.output, exc) from None
    count = len(budgets)
    print(f"budgets {args.output}: {count} test{'s' * (count != 1)} from {len(runs)} run(s)")
    return EXIT_OK
