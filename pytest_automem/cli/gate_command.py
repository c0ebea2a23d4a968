"""``automem gate``: fail the pipeline on a memory regression, and on nothing else.

    automem gate --baseline BASE.json --current CUR.json [CUR2.json ...]
                 [--max-increase [METRIC=]PCT] [--min-delta [METRIC=]AMOUNT]
                 [--strict-context] [--junit OUT.xml] [--summary OUT.md]
                 [--prefer first|last]

Compares two runs' results files test by test: peak, growth and leak
(bytes per iteration, a test's worst scenario), and rate (bytes/s) when
asked for.  A test regresses on a metric when it got worse by more than
--max-increase of its baseline AND by more than --min-delta: both must be
exceeded, so neither a small test's page-sized noise nor a large test's
proportional noise fails the gate.  Improved is better by the same rule.
Defaults (docs/ci.md, "The rule", measured on real suites): peak and
growth 10 % and 4 MB, leak 25 % and 4 KB per iteration; rate is not gated
unless an option names it (then 25 % and 1 MB/s).  A bare value sets peak and
growth (``--min-delta 2MB``); ``METRIC=`` sets one metric
(``--min-delta growth=2MB``, ``--max-increase rate=50%``).  Options repeat.

Several --current files (the shards of a CI matrix) are merged first as
``automem merge`` does; --prefer settles a node id found in two of them.

The report goes to stdout: the verdict, the regressed tests worst first,
the new and removed node ids, every count.  When the measurement context
differs (sampler, peak source, Python, platform, CPU count, plugin
version), a warning line says how; --strict-context refuses to compare
instead.  --junit writes one test case per node id, a regressed one failed
with a one-line message; --summary writes Markdown for a CI step summary,
which is also appended to $GITHUB_STEP_SUMMARY when that is set; with
GITHUB_ACTIONS=true the worst 10 regressions become ::error annotations.

Exit: 0 no regression; 1 a regression; 2 bad input (a missing or unreadable
file, not a results file, a node id in two --current files without
--prefer, a bad option, contexts that differ under --strict-context, an
output that cannot be written); 70 an internal error (docs/guarantees.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..base.atomic import atomic_write_text
from ..base.units import parse_percent_fraction, parse_rate_bytes_per_s, parse_size_bytes
from ..outputs.gate_report import annotations, summary_markdown, text_report
from ..results.merge import PREFER_CHOICES
from ..verdicts.gate import METRICS, RATE_RULE, GateResult, GateRules, MetricRule, compare
from .common import InputError, add_command, print_text
from .exit_codes import EXIT_FINDING, EXIT_OK
from .results_inputs import read_merged, read_results_input

__all__ = ["register", "rules_from", "run"]

#: The command's line in ``automem --help``.
SUMMARY = "compare two runs' results: fail on a memory regression"
#: The metrics a value without ``METRIC=`` sets.
_SIZE_METRICS = ("peak", "growth")
#: How each metric's --min-delta is read.
_DELTA_PARSERS: dict[str, Callable[[str], float]] = {
    "peak": parse_size_bytes,
    "growth": parse_size_bytes,
    "rate": parse_rate_bytes_per_s,
    "leak": parse_size_bytes,
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "gate", SUMMARY, __doc__)
    parser.add_argument(
        "--baseline", type=Path, required=True, metavar="BASE.json", help="the reference run"
    )
    parser.add_argument(
        "--current",
        type=Path,
        nargs="+",
        required=True,
        metavar="CUR.json",
        help="the run to judge; several files are merged first",
    )
    parser.add_argument(
        "--max-increase",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help="relative tolerance, e.g. 10%% (peak and growth) or rate=50%%",
    )
    parser.add_argument(
        "--min-delta",
        action="append",
        default=[],
        metavar="[METRIC=]AMOUNT",
        help="absolute floor, e.g. 1MB (peak and growth), rate=2MB/s or leak=8KB",
    )
    parser.add_argument(
        "--strict-context",
        action="store_true",
        help="refuse (exit 2) when the runs were measured differently",
    )
    parser.add_argument("--junit", type=Path, metavar="OUT.xml", help="write a JUnit file")
    parser.add_argument(
        "--summary", type=Path, metavar="OUT.md", help="write a Markdown step summary"
    )
    parser.add_argument(
        "--prefer",
        choices=PREFER_CHOICES,
        help="for a node id in several --current files, keep the first or the last",
    )
    parser.set_defaults(run=run)


def _settings(option: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """``(metric, text)`` per value: ``growth=2MB`` names one, ``2MB`` both sizes."""
    settings: list[tuple[str, str]] = []
    for value in values:
        metric, equals, text = value.partition("=")
        if not equals:
            settings.extend((name, value) for name in _SIZE_METRICS)
        elif metric.strip() in METRICS:
            settings.append((metric.strip(), text))
        else:
            names = ", ".join(METRICS)
            raise InputError(f"{option} {value!r}: unknown metric {metric!r} (one of {names})")
    return settings


def _parsed(option: str, value: str, parse: Callable[[str], float]) -> float:
    try:
        return parse(value.strip())
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def rules_from(max_increase: Sequence[str], min_delta: Sequence[str]) -> GateRules:
    """The rules the options give, over the defaults; later values win."""
    rules = GateRules()
    for metric, text in _settings("--max-increase", max_increase):
        fraction = _parsed("--max-increase", text, parse_percent_fraction)
        changed = dataclasses.replace(_rule(rules, metric), max_increase_fraction=fraction)
        rules = dataclasses.replace(rules, **{metric: changed})
    for metric, text in _settings("--min-delta", min_delta):
        floor = _parsed("--min-delta", text, _DELTA_PARSERS[metric])
        changed = dataclasses.replace(_rule(rules, metric), min_delta=floor)
        rules = dataclasses.replace(rules, **{metric: changed})
    return rules


def _rule(rules: GateRules, metric: str) -> MetricRule:
    """The metric's rule to change: the rate's default rule when it was not gated."""
    return rules.rule(metric) or RATE_RULE


def _refuse_context(result: GateResult) -> None:
    differences = "; ".join(d.describe() for d in result.context_differences)
    raise InputError(f"--strict-context: the runs were measured differently: {differences}")


def _write_outputs(args: argparse.Namespace, result: GateResult) -> None:
    if args.junit is not None:
        from ..outputs.junit import write_gate_report

        try:
            write_gate_report(args.junit, result)
        except OSError as exc:
            raise InputError(f"cannot write --junit {args.junit}: {exc.strerror or exc}") from None
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.summary is None and not summary_path:
        return
    markdown = summary_markdown(result)
    if args.summary is not None:
        try:
            atomic_write_text(args.summary, markdown)
        except OSError as exc:
            raise InputError(
                f"cannot write --summary {args.summary}: {exc.strerror or exc}"
            ) from None
    if summary_path:
        from ..outputs.session_outputs import append_step_summary

        try:
            append_step_summary(summary_path, markdown)
        except OSError as exc:  # the CI's file, not ours: the verdict stands
            print(
                f"automem gate: WARNING: step summary not written: "
                f"GITHUB_STEP_SUMMARY={summary_path}: {exc.strerror or exc}",
                file=sys.stderr,
            )


def run(args: argparse.Namespace) -> int:
    rules = rules_from(args.max_increase, args.min_delta)
    baseline = read_results_input(args.baseline, "--baseline")
    current = read_merged(args.current, prefer=args.prefer, option="--current")
    result = compare(baseline, current, rules)
    if args.strict_context and result.context_differences:
        _refuse_context(result)
    _write_outputs(args, result)
    print_text(text_report(result))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in annotations(result):
            print_text(line)
    return EXIT_OK if result.passed else EXIT_FINDING
