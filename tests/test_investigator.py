"""The investigator: growth-rate targets, scenario findings, ordering, rendering.

Windows and scenario results are built directly with chosen figures (the
growth-rate targets: < 1 MB/s, warning > 5 MB/s, critical > 10 MB/s).
"""

from __future__ import annotations

import json
from typing import Any

import helpers
import pytest

from pytest_automem.automaton.scenario import ScenarioResult
from pytest_automem.investigator import Finding, Investigation, Severity, investigate
from pytest_automem.investigator.render import render_failure
from pytest_automem.measure.pressure import PressureLevel
from pytest_automem.measure.window_result import WindowResult

KB = 1 << 10
MB = 1 << 20


def make_window(**overrides: Any) -> WindowResult:
    """A 2 s window of 2000 samples at 1 ms, no growth; ``overrides`` change fields."""
    return helpers.make_window(**{"duration_s": 2.0, "samples": 2000, **overrides})


def growing(rate_mb_per_s: float, duration_s: float = 2.0) -> WindowResult:
    """A window that grew steadily at ``rate_mb_per_s`` for ``duration_s``."""
    growth = round(rate_mb_per_s * MB * duration_s)
    return make_window(
        duration_s=duration_s,
        rate_bytes_per_s=rate_mb_per_s * MB,
        growth_bytes=growth,
        peak_bytes=growth,
        end_rss_bytes=300 * MB + growth,
        peak_rss_bytes=300 * MB + growth,
        samples=round(duration_s * 1000),
    )


def make_scenario(
    name: str = "examples/event_log.py:step",
    *,
    rss: float = 0.0,
    heap: float | None = 0.0,
    trims: int = 0,
    final_objects: int = 0,
    final_history: int = 0,
    iterations: int = 100,
    warmup: int = 10,
) -> ScenarioResult:
    """A scenario result with the given RSS and heap slopes (bytes per iteration)."""
    return ScenarioResult(
        name=name,
        iterations=iterations,
        warmup=warmup,
        retained_bytes=tuple(round(rss * i) for i in range(iterations + warmup)),
        heap_bytes=()
        if heap is None
        else tuple(round(heap * i) for i in range(iterations + warmup)),
        rss_leak_bytes_per_iteration=rss,
        heap_leak_bytes_per_iteration=heap,
        leak_bytes_per_iteration=max(rss, heap or 0.0),
        peak_bytes=0,
        max_pressure=PressureLevel.LOW,
        pressure_distribution={"LOW": 1.0, "MEDIUM": 0.0, "HIGH": 0.0, "CRITICAL": 0.0},
        trims=trims,
        gc_runs=0,
        events=(),
        final_objects=final_objects,
        final_history=final_history,
        duration_s=0.5,
        window=make_window(),
    )


def checks(investigation: Investigation) -> list[tuple[str, Severity]]:
    return [(f.check, f.severity) for f in investigation.findings]


# -- growth rate ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate_mb_per_s", "duration_s", "severity"),
    [
        (0.0, 2.0, None),
        (0.5, 2.0, None),
        (1.0, 2.0, None),  # exactly the target: met
        (2.0, 2.0, Severity.INFO),
        (5.0, 2.0, Severity.INFO),  # warning is *above* 5 MB/s
        (6.0, 2.0, Severity.WARNING),
        (10.0, 2.0, Severity.WARNING),  # critical is *above* 10 MB/s
        (12.0, 2.0, Severity.CRITICAL),
        (12.0, 1.0, Severity.CRITICAL),
        (12.0, 0.5, Severity.CRITICAL),
        (-20.0, 2.0, None),  # shrinking
        (0.5, 0.4, None),
        (6.0, 0.4, None),
        (12.0, 0.3, None),  # too short for a trend, however steep
        (12.0, 0.49, None),
    ],
)
def test_growth_rate_severity(
    rate_mb_per_s: float, duration_s: float, severity: Severity | None
) -> None:
    investigation = investigate(window=growing(rate_mb_per_s, duration_s))
    rate_findings = [f for f in investigation.findings if f.check == "growth-rate"]
    if severity is None:
        assert rate_findings == []
        return
    (finding,) = rate_findings
    assert finding.severity is severity
    assert finding.summary.startswith(f"memory grew at {rate_mb_per_s:.1f} MB/s for ")
    assert "target < 1 MB/s, warning > 5 MB/s, critical > 10 MB/s" in finding.summary
    assert finding.evidence == {
        "rate_bytes_per_s": rate_mb_per_s * MB,
        "duration_s": duration_s,
    }
    assert finding.recommendation


def test_window_without_a_rate_gives_no_rate_finding() -> None:
    investigation = investigate(window=make_window(rate_bytes_per_s=None, samples=40))
    assert investigation.findings == ()
    assert "growth rate" not in investigation.figures
    assert "n/a" not in investigation.render_text()


def test_a_spike_that_retained_nothing_states_no_rate() -> None:
    # A slope of GB/s over a test that built and freed its memory is the
    # spike's shape, not growth: neither a figure nor a finding states it.
    spike = make_window(rate_bytes_per_s=1.3 * 1024 * MB, growth_bytes=0, duration_s=2.0)
    investigation = investigate(window=spike)
    assert "growth rate" not in investigation.figures
    assert [f for f in investigation.findings if f.check == "growth-rate"] == []


def test_window_figures_say_how_it_was_measured() -> None:
    figures = investigate(window=growing(2.0)).figures
    assert figures["growth rate"] == "2.0 MB/s"
    assert figures["growth"] == "4.0 MB after gc.collect()"
    assert figures["peak"] == "4.0 MB above the baseline (304.0 MB RSS)"
    assert figures["pressure"] == "LOW (thresholds 50.0MB,200.0MB,500.0MB)"
    assert figures["measured by"] == "kernel high-water mark, 1 ms sampler, 2000 samples"


def test_setup_and_teardown_growth_shown_when_worth_it() -> None:
    phases = {
        "setup": make_window(growth_bytes=3 * MB),
        "call": make_window(growth_bytes=50 * MB),
        "teardown": make_window(growth_bytes=100 * KB),
    }
    figures = investigate(window=make_window(), phases=phases).figures
    assert figures["setup growth"] == "3.0 MB"
    assert "call growth" not in figures
    assert "teardown growth" not in figures


def test_nothing_measured_gives_an_empty_investigation() -> None:
    investigation = investigate()
    assert investigation.findings == ()
    assert investigation.figures == {}


# -- scenarios -----------------------------------------------------------------


def test_leaking_scenario_is_named() -> None:
    investigation = investigate(
        scenarios=[make_scenario("examples/event_log.py:step", rss=64 * KB, heap=60 * KB)]
    )
    assert checks(investigation) == [("scenario-leak", Severity.WARNING)]
    (finding,) = investigation.findings
    assert "examples/event_log.py:step" in finding.summary
    assert finding.summary == (
        "scenario examples/event_log.py:step retains 64.0 KB per iteration "
        "(6.2 MB over 100 iterations)"
    )
    assert finding.evidence["leak_bytes_per_iteration"] == 64 * KB


def test_flat_scenario_gives_no_finding() -> None:
    assert investigate(scenarios=[make_scenario(rss=0.0, heap=0.0)]).findings == ()
    assert investigate(scenarios=[make_scenario(rss=-4 * KB, heap=None)]).findings == ()


def test_only_the_leaking_scenarios_are_named() -> None:
    scenarios = [
        make_scenario("m:flat"),
        make_scenario("m:leaks", rss=32 * KB, heap=32 * KB),
        make_scenario("m:also_flat", heap=None),
    ]
    findings = investigate(scenarios=scenarios).findings
    assert [f.check for f in findings] == ["scenario-leak"]
    assert "m:leaks" in findings[0].summary


@pytest.mark.parametrize(
    ("rss", "heap", "outside"),
    [
        (100 * KB, 0.0, True),
        (100 * KB, 1 * KB, True),
        (100 * KB, 24 * KB, True),
        (100 * KB, 25 * KB, False),  # exactly a quarter is "in the heap"
        (100 * KB, 100 * KB, False),
        (100 * KB, None, False),  # heap not readable: no claim
        (0.0, 0.0, False),
    ],
)
def test_growth_outside_the_heap(rss: float, heap: float | None, outside: bool) -> None:
    investigation = investigate(scenarios=[make_scenario(rss=rss, heap=heap)])
    found = [f for f in investigation.findings if f.check == "growth-outside-heap"]
    assert bool(found) is outside
    if outside:
        assert found[0].severity is Severity.WARNING
        assert found[0].summary.startswith(
            "RSS grows 100.0 KB/iteration but the Python and C heaps"
        )
        assert found[0].evidence == {
            "rss_leak_bytes_per_iteration": rss,
            "heap_leak_bytes_per_iteration": heap,
        }


def test_untrimmed_automaton_with_history_and_a_leak() -> None:
    result = make_scenario(rss=8 * KB, heap=8 * KB, final_objects=1200, final_history=600)
    investigation = investigate(scenarios=[result])
    assert checks(investigation) == [
        ("scenario-leak", Severity.WARNING),
        ("execution-history", Severity.INFO),
    ]
    history = investigation.findings[1]
    assert "1200 objects" in history.summary
    assert "600 history entries" in history.summary
    assert "max_execution_history" in history.recommendation


@pytest.mark.parametrize(
    ("trims", "history", "leak"),
    [(1, 600, 8 * KB), (0, 0, 8 * KB), (0, 600, 0.0)],
    ids=["trimmed", "no-history", "no-leak"],
)
def test_no_history_finding_without_all_three(trims: int, history: int, leak: float) -> None:
    result = make_scenario(rss=leak, heap=leak, trims=trims, final_history=history)
    assert "execution-history" not in {f.check for f in investigate(scenarios=[result]).findings}


# -- ordering, rendering, serialising -----------------------------------------


def everything() -> Investigation:
    """A growth-rate CRITICAL, two scenario WARNINGs and an INFO, from mixed inputs."""
    return investigate(
        window=growing(12.0),
        scenarios=[
            make_scenario("m:history", rss=8 * KB, heap=8 * KB, final_history=600),
            make_scenario("m:outside", rss=100 * KB, heap=0.0),
        ],
        phases={"setup": make_window(growth_bytes=2 * MB)},
    )


def test_findings_are_sorted_most_severe_first() -> None:
    investigation = everything()
    severities = [f.severity for f in investigation.findings]
    assert severities == sorted(severities, reverse=True)
    assert checks(investigation) == [
        ("growth-rate", Severity.CRITICAL),
        ("scenario-leak", Severity.WARNING),
        ("scenario-leak", Severity.WARNING),
        ("growth-outside-heap", Severity.WARNING),
        ("execution-history", Severity.INFO),
    ]


def test_sorting_keeps_scenario_order_within_a_severity() -> None:
    findings = [f for f in everything().findings if f.check == "scenario-leak"]
    assert "m:history" in findings[0].summary
    assert "m:outside" in findings[1].summary


def test_render_text_limits_the_findings() -> None:
    investigation = everything()
    text = investigation.render_text(limit=2)
    lines = text.splitlines()
    assert lines[0] == "memory report (pytest-automem)"
    assert "  measured by: kernel high-water mark, 1 ms sampler, 2000 samples" in lines
    assert "  setup growth: 2.0 MB" in lines
    shown = [line for line in lines if line.startswith("- [")]
    assert shown == [f"- [{f.severity.name}] {f.summary}" for f in investigation.findings[:2]]
    assert lines[-1] == "… and 3 more findings"
    assert text.count("    what to do: ") == 2


def test_render_text_within_the_limit_shows_everything() -> None:
    investigation = everything()
    text = investigation.render_text()
    assert "more findings" not in text
    assert text.count("\n- [") == len(investigation.findings)
    assert investigation.render_text(limit=5) == text


def test_render_text_of_a_finding_without_a_recommendation() -> None:
    investigation = Investigation((Finding("custom", Severity.INFO, "something"),), {})
    assert investigation.render_text() == "memory report (pytest-automem)\n- [INFO] something"


def test_to_dict_is_json_serialisable() -> None:
    investigation = everything()
    data = investigation.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert [f["check"] for f in data["findings"]] == [f.check for f in investigation.findings]
    assert data["findings"][0]["severity"] == "CRITICAL"
    assert set(data["findings"][0]) == {
        "check",
        "severity",
        "summary",
        "evidence",
        "recommendation",
        "details",
    }
    assert data["figures"] == investigation.figures


# -- a failure's report ----------------------------------------------------------


def test_render_failure_says_what_where_what_to_do_then_the_rest() -> None:
    located = Finding(
        "peak-location",
        Severity.WARNING,
        "memory crossed the peak budget (24.0 MB) at app.py:20 in build",
        evidence={"file": "app.py", "line": 20},
        recommendation="build it in pieces",
        details=("  -> app.py:20 in build", "     app.py:30 in test_x"),
    )
    other = Finding(
        "growth-rate", Severity.INFO, "memory grew at 2.0 MB/s", recommendation="cap it"
    )
    text = render_failure(
        ["peak 200.0 MB above the test's start, exact: kernel high-water mark"],
        Investigation((located, other), {"growth rate": "n/a"}),
        ["generic advice"],
    )
    assert text.splitlines() == [
        "peak 200.0 MB above the test's start, exact: kernel high-water mark",
        "",
        "where:",
        "  memory crossed the peak budget (24.0 MB) at app.py:20 in build",
        "      -> app.py:20 in build",
        "         app.py:30 in test_x",
        "",
        "what to do:",
        "  build it in pieces",
        "",
        "also found:",
        "  - [INFO] memory grew at 2.0 MB/s",
        "      what to do: cap it",
    ]


def test_render_failure_without_a_location_gives_the_budgets_advice() -> None:
    text = render_failure(["growth 30.0 MB retained"], Investigation((), {}), ["a", "a", "b"])
    assert text.splitlines() == ["growth 30.0 MB retained", "", "what to do:", "  a", "  b"]
    assert "where:" not in text


def test_allocation_sites_say_where() -> None:
    sites = Finding(
        "allocation-sites",
        Severity.WARNING,
        "the test's call: 30.0 MB retained, most at app.py:7",
        evidence={"sites": [{"filename": "app.py", "lineno": 7}]},
        recommendation="look at app.py:7",
    )
    text = render_failure(["growth 30.0 MB"], Investigation((sites,), {}), ["generic"])
    assert text.splitlines()[2:7] == [
        "where:",
        "  the test's call: 30.0 MB retained, most at app.py:7",
        "",
        "what to do:",
        "  look at app.py:7",
    ]
