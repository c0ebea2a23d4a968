"""``automem merge``: results files of several shards or machines become one.

    automem merge A.json B.json [C.json ...] -o ALL.json [--prefer first|last]

Tests are united and sorted by node id.  A node id in two files is an
error naming it and both files (two shards should never run the same
test), unless --prefer says which file's record wins: ``first`` or ``last``
in the order given.  When the files were measured differently (another
sampler, Python, platform, interval...), each test keeps its file's
measurement context in its own ``context`` object, so a later gate still
compares like with like; the merged session keeps what all agree on.
The output is written atomically.

Exit: 0 merged; 2 bad input (a missing or unreadable file, a file that is
not a results file, a node id in two files without --prefer, an output that
cannot be written); 70 an internal error (docs/guarantees.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..results.merge import PREFER_CHOICES
from ..results.results_file import write_results
from .common import InputError, add_command
from .exit_codes import EXIT_OK
from .results_inputs import read_merged

__all__ = ["register", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "join the results files of CI shards or machines into one"


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "merge", SUMMARY, __doc__)
    parser.add_argument(
        "paths", type=Path, nargs="+", metavar="RESULTS.json", help="results files to join"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="ALL.json", help="the merged file"
    )
    parser.add_argument(
        "--prefer",
        choices=PREFER_CHOICES,
        help="for a node id in several files, keep the first or the last file's record",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    merged = read_merged(args.paths, prefer=args.prefer, written_to=args.output)
    try:
        write_results(args.output, merged)
    except OSError as exc:
        raise InputError(f"cannot write -o {args.output}: {exc.strerror or exc}") from None
    tests = len(merged["tests"])
    print(f"automem merge: {tests} tests from {len(args.paths)} files -> {args.output}")
    return EXIT_OK
