"""The verdict on an investigation: which of its checks fail, and what each failure says.

``automem investigate`` fails (exit 1) when any check found something, and
its ``--junit`` file shows one test case per check, failed the same way: both
read the verdicts made here, so the exit code and the file cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..investigator.findings import Finding, Investigation

__all__ = ["CheckVerdict", "InvestigationVerdict", "judge_investigation"]


@dataclass(frozen=True)
class CheckVerdict:
    """One check: passed (no findings), or failed with its findings, most severe first."""

    check: str
    findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def message(self) -> str:
        """One line: the most severe finding's summary, and how many more there are."""
        if self.passed:
            return ""
        message = " ".join(self.findings[0].summary.split())
        more = len(self.findings) - 1
        return message + (f" (+{more} more)" if more else "")

    @property
    def severity_name(self) -> str:
        """The most severe finding's severity (``""`` for a check that passed)."""
        return self.findings[0].severity.name if self.findings else ""


@dataclass(frozen=True)
class InvestigationVerdict:
    """Every check's verdict, in the order the checks were named."""

    checks: tuple[CheckVerdict, ...]

    @property
    def passed(self) -> bool:
        """Whether no check found anything: any finding fails the investigation."""
        return all(verdict.passed for verdict in self.checks)


def judge_investigation(
    investigation: Investigation, checks: Sequence[str]
) -> InvestigationVerdict:
    """The verdict of every check in ``checks``, then of any other check that found something.

    A check that ran and found nothing passes; a finding from a check not
    named in ``checks`` still fails the investigation under its own name.
    """
    by_check: dict[str, list[Finding]] = {}
    for finding in investigation.findings:
        by_check.setdefault(finding.check, []).append(finding)
    names = dict.fromkeys([*checks, *by_check])
    return InvestigationVerdict(
        tuple(CheckVerdict(name, tuple(by_check.get(name, ()))) for name in names)
    )
