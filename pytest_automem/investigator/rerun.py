"""What a traced re-run of a failing test's call says about its growth.

A test's call runs untraced, because tracing makes allocation-heavy code
12-80x slower (docs/investigator.md) and every passing test would pay for
it.  When the call fails
its growth budget, the plugin runs the call once more under tracing (the
same test function, with the same fixture values) and hands the outcome
here.  Three things can happen, and each is said plainly:

* the re-run retained memory and tracing saw it: the allocation sites name
  the lines (:class:`~.attribution.Attribution`'s finding, its subject
  saying it was a re-run);
* the re-run's memory grew but tracing saw little of it: the memory came
  from C code (an extension, ctypes, a native library), which tracemalloc
  cannot see (``growth-without-object-growth``, in :mod:`.overall`);
* the re-run retained (almost) nothing: the first run's memory was kept
  once, as a cache or one-time initialisation keeps it.  Unbounded
  ``functools.lru_cache`` caches that the re-run hit are named, since they
  are the commonest such cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.defaults import GROWTH_NOISE_BYTES
from ..base.units import format_size
from .attribution import Attribution, grew_outside_traced_heap
from .findings import Finding, Severity

__all__ = ["RERUN_SUBJECT", "CacheUse", "Rerun", "growth_place", "rerun_findings"]

#: How an attribution from a re-run is introduced, in every output.
RERUN_SUBJECT = "a traced re-run of the test's call"
CHECK = "rerun"


@dataclass(frozen=True)
class CacheUse:
    """A ``functools.lru_cache`` the re-run used, as ``cache_info()`` reports it."""

    function: str
    hits: int
    misses: int
    entries: int
    #: None: unbounded.
    max_entries: int | None


@dataclass(frozen=True)
class Rerun:
    """The outcome of running a failing call once more under tracing."""

    #: Growth of the first, untraced run (what the budget judged).
    first_growth_bytes: int
    #: Growth of the re-run after garbage collection, tracing's own memory
    #: taken out; None when the re-run raised before it could be measured.
    growth_bytes: int | None
    attribution: Attribution | None
    #: ``ExceptionType: message`` when the re-run raised.
    error: str | None = None
    #: The user's ``lru_cache`` caches the re-run called, most entries first.
    caches: tuple[CacheUse, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "first_growth_bytes": self.first_growth_bytes,
            "growth_bytes": self.growth_bytes,
            "error": self.error,
            "caches": [cache.__dict__ for cache in self.caches],
        }


def rerun_findings(rerun: Rerun) -> tuple[Finding, ...]:
    """The findings of a re-run that do not come from its attribution: that it
    raised, or that it retained nothing (the growth happened once)."""
    if rerun.error is not None:
        return (_raised(rerun),)
    if rerun.growth_bytes is not None and _retained_nothing(rerun):
        return (_kept_once(rerun),)
    return ()


def growth_place(rerun: Rerun) -> str | None:
    """Where the growth went, in the words of a one-line failure message
    (``retained at app.py:12``), or None when the re-run could not say."""
    if rerun.error is not None or rerun.growth_bytes is None:
        return None
    if _retained_nothing(rerun):
        caches = [cache.function for cache in _holding_caches(rerun)]
        held = f" (lru_cache of {caches[0]})" if caches else ""
        return f"kept once, as a cache keeps it{held}"
    attribution = rerun.attribution
    if attribution is None:
        return None
    if grew_outside_traced_heap(rerun.growth_bytes, attribution.traced_growth_bytes):
        return "outside Python objects (C code, which tracing cannot see)"
    return f"retained at {attribution.sites[0].location()}" if attribution.sites else None


def _holding_caches(rerun: Rerun) -> list[CacheUse]:
    """The caches the re-run found filled: it hit them and they hold entries."""
    return [cache for cache in rerun.caches if cache.hits > 0 and cache.entries > 0]


def _retained_nothing(rerun: Rerun) -> bool:
    """The re-run kept less than a noise margin and under a tenth of the first run."""
    assert rerun.growth_bytes is not None
    traced = rerun.attribution.traced_growth_bytes if rerun.attribution is not None else 0
    kept = max(rerun.growth_bytes, traced)
    return kept < max(GROWTH_NOISE_BYTES, rerun.first_growth_bytes // 10)


def _raised(rerun: Rerun) -> Finding:
    return Finding(
        check=CHECK,
        severity=Severity.INFO,
        summary=f"the growth could not be attributed: {RERUN_SUBJECT} raised {rerun.error}",
        evidence=rerun.to_dict(),
        recommendation="mark the test memory_budget(..., trace=True) so its first run is "
        "traced and names the lines that allocated",
    )


def _kept_once(rerun: Rerun) -> Finding:
    assert rerun.growth_bytes is not None
    caches = _holding_caches(rerun)
    summary = (
        f"{RERUN_SUBJECT} retained {format_size(max(rerun.growth_bytes, 0))}, against "
        f"{format_size(rerun.first_growth_bytes)} the first time: the memory was kept once, "
        "as a cache or a one-time initialisation keeps it"
    )
    if caches:
        summary += f"; the re-run hit the lru_cache of {caches[0].function}"
    details = tuple(
        f"lru_cache {c.function}: {c.entries:,} entries "
        f"({'unbounded' if c.max_entries is None else f'at most {c.max_entries:,}'}), "
        f"{c.hits:,} hits in the re-run"
        for c in caches
    )
    return Finding(
        check=CHECK,
        severity=Severity.WARNING,
        summary=summary,
        evidence=rerun.to_dict(),
        recommendation="bound what fills on first use (lru_cache(maxsize=...), a size-limited "
        "dict), clear it in a fixture's teardown, or warm it before the test (a session "
        "fixture) if keeping it is intended",
        details=details,
    )
