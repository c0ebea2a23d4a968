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

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.name,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "recommendation": self.recommendation,
        }


@dataclass(frozen=True)
class Investigation:
    """Findings, most severe first, plus the headline figures they came from."""

    findings: tuple[Finding, ...]
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"figures": dict(self.figures), "findings": [f.to_dict() for f in self.findings]}

    def render_text(self, limit: int = 10) -> str:
        """Plain text for failure messages and the terminal; at most ``limit`` findings."""
        lines = ["memory report (pytest-automem)"]
        lines.extend(f"  {name}: {value}" for name, value in self.figures.items())
        shown = self.findings[:limit]
        for finding in shown:
            lines.append(f"- [{finding.severity.name}] {finding.summary}")
            if finding.recommendation:
                lines.append(f"    what to do: {finding.recommendation}")
        hidden = len(self.findings) - limit
        if hidden > 0:
            lines.append(f"… and {hidden} more finding{'s' if hidden > 1 else ''}")
        return "\n".join(lines)
