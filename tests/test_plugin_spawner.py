"""The ``spawner`` fixture end to end: a leaking automaton replaced at HIGH, in an inner session."""

from __future__ import annotations

import pytest
from helpers import LEAK_BEYOND_THE_CAP

pytest_plugins = ["pytester"]


def test_a_leaking_automaton_is_replaced_at_high_and_stays_below_critical(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nautomem_thresholds = 2MB,12MB,40MB\n")
    pytester.makepyfile(leak_scenario=LEAK_BEYOND_THE_CAP)
    pytester.makepyfile(
        test_leaky="""
        from leak_scenario import scenario as leak

        from pytest_automem import PressureLevel


        def test_leak_is_contained(spawner):
            result = spawner(leak, steps=1900, cooldown="10ms", duration="120s")
            assert result.end_cause == "finished", result.ended
            assert [e.level for e in result.of_kind("spawn")] == [PressureLevel.HIGH]
            replacement = result.children[-1]
            assert replacement.profile is PressureLevel.HIGH
            assert replacement.config["max_objects"] == 1000
            assert replacement.max_pressure < PressureLevel.HIGH
            assert result.max_pressure < PressureLevel.CRITICAL
            print("spawned", result.spawns, "peak", result.peak_rss_bytes)


        def test_a_lambda_is_refused(spawner):
            import pytest
            with pytest.raises(ValueError, match="defined at the top of a file"):
                spawner(lambda automaton, step: None)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-s", "--junitxml=junit.xml", timeout=300
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*spawned 1 peak *"])
