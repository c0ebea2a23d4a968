"""What the investigator reports: findings, and the investigation that holds them.

A :class:`Finding` is one diagnosis: which check, how severe, a one-line
summary, the evidence (figures, as plain values) and a concrete
recommendation.  Every check of the investigator returns findings of this
one shape, so the renderers (text, JSON, Markdown) treat them all alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..base.defaults import FINDINGS_SHOWN

__all__ = ["Finding", "Investigation", "Severity"]


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what, how bad, the figures behind it, what to do."""

    check: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    recommendation: str = ""
    #: Lines a reader wants under the summary (allocation sites, duplicate IDs…),
    #: most important first; renderers show the first few and count the rest.
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.name,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "recommendation": self.recommendation,
            "details": list(self.details),
        }


@dataclass(frozen=True)
class Investigation:
    """Findings, most severe first, plus the headline figures they came from."""

    findings: tuple[Finding, ...]
    figures: dict[str, Any]
    title: str = "memory report (pytest-automem)"

    @property
    def worst(self) -> Severity | None:
        """The most severe finding's severity, None when there are none."""
        return max((f.severity for f in self.findings), default=None)

    def merged(self, other: Investigation) -> Investigation:
        """Both investigations' findings (most severe first) and figures."""
        findings = sorted((*self.findings, *other.findings), key=lambda f: -f.severity)
        return Investigation(tuple(findings), {**self.figures, **other.figures}, self.title)

    def to_dict(self) -> dict[str, Any]:
        return {"figures": dict(self.figures), "findings": [f.to_dict() for f in self.findings]}

    def render_text(self, limit: int = FINDINGS_SHOWN) -> str:
        """Plain text for failure messages and the terminal (see :mod:`.render`)."""
        from .render import render_text

        return render_text(self, limit=limit)
