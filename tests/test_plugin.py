"""End-to-end tests of the pytest plugin: real inner sessions via pytester.

Inner sessions run in subprocesses (``runpytest_subprocess``): a sampler
process is involved, and each inner session must start from a clean
interpreter.  Memory in the inner tests is made with allocations above
glibc's largest mmap threshold (32 MB) or with touched anonymous mappings,
so RSS moves by exactly what the test allocates.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import junitparser
import pytest
from helpers import INNER_ALLOC

from pytest_automem.results.results_file import REQUIRED_TEST_KEYS

pytest_plugins = ["pytester"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
    )


def _results(pytester: pytest.Pytester, name: str = "results.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())


def _cases(pytester: pytest.Pytester, name: str = "junit.xml") -> dict[str, ET.Element]:
    root = ET.parse(pytester.path / name).getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


@pytest.fixture
def alloc(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(alloc=INNER_ALLOC)


def test_each_kind_of_budget_fails_with_its_reason(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makeini("[pytest]\nautomem_thresholds = 10MB,20MB,40MB\n")
    pytester.makepyfile(
        test_budgets="""
        import time
        import pytest
        from alloc import MB, resident, spike

        kept = []

        @pytest.mark.memory_budget(peak="16MB")
        def test_peak():
            spike(48 * MB)

        @pytest.mark.memory_budget(growth="8MB")
        def test_growth():
            kept.append(resident(24 * MB))

        @pytest.mark.memory_budget(rate="20MB/s")
        def test_rate():
            for _ in range(40):
                kept.append(resident(2 * MB))
                time.sleep(0.005)

        @pytest.mark.memory_budget(pressure="medium")
        def test_pressure():
            spike(48 * MB)

        def leaky(automaton, step):
            automaton.add({"id": f"e{step}", "payload": "x" * 8000})

        @pytest.mark.memory_budget(leak_per_iteration="1KB")
        def test_leak(run_scenario):
            run_scenario(leaky, iterations=40, warmup=5)

        @pytest.mark.memory_budget(peak="200MB", growth="8MB", pressure="HIGH")
        def test_inside():
            spike(16 * MB)
        """
    )
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(failed=5, passed=1)
    result.stdout.fnmatch_lines(
        [
            "MEMORY FAIL *::test_growth: growth * > budget 8.0 MB, outside Python objects*",
            "MEMORY FAIL *::test_leak: leak * > budget 1.0 KB/iteration (scenario *leaky*)",
            "MEMORY FAIL *::test_peak: peak * MB > budget 16.0 MB*",
            "MEMORY FAIL *::test_pressure: pressure CRITICAL > budget MEDIUM",
            "MEMORY FAIL *::test_rate: growth rate * > budget 20.0 MB/s",
        ],
        consecutive=False,
    )
    tests = _results(pytester)["tests"]
    verdicts = {nodeid.split("::")[-1]: record["verdict"] for nodeid, record in tests.items()}
    assert verdicts == {
        "test_peak": "fail",
        "test_growth": "fail",
        "test_rate": "fail",
        "test_pressure": "fail",
        "test_leak": "fail",
        "test_inside": "pass",
    }
    peak = tests["test_budgets.py::test_peak"]
    assert 47 << 20 <= peak["peak_bytes"] <= 52 << 20
    # Traced where the allocators cached more than 5 % of the budget (docs: "Verdicts").
    assert peak["peak_source"] in {"kernel-hwm", "tracemalloc"}
    # Each report opens with the failed figure and its basis, in words a user knows.
    assert peak["report"].startswith("peak ")
    assert "exact: kernel high-water mark" in peak["report"] or "traced: " in peak["report"]
    growth = tests["test_budgets.py::test_growth"]["report"]
    assert growth.startswith("growth ") and "after garbage collection" in growth
    assert "high-water" not in growth
    rate = tests["test_budgets.py::test_rate"]["report"]
    assert rate.startswith("growth rate ") and "least-squares slope of resident memory" in rate
    leak_report = tests["test_budgets.py::test_leak"]["report"]
    assert "slope of retained memory over 40 iterations after 5 warm-up" in leak_report
    assert " retains " not in leak_report  # the scenario-leak finding would say it again
    for record in tests.values():
        assert "n/a" not in (record["report"] or "")
    assert tests["test_budgets.py::test_growth"]["growth_bytes"] >= 23 << 20
    leak = tests["test_budgets.py::test_leak"]
    assert leak["scenarios"][0]["leak_bytes_per_iteration"] > 1024
    assert "leaky" in leak["violations"][0]
    assert tests["test_budgets.py::test_inside"]["violations"] == []


def test_failure_shows_the_report_and_one_line_reason(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_one="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="8MB")
        def test_big():
            spike(40 * MB)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "memory budget exceeded: peak * > budget 8.0 MB*",
            "",
            "peak * above the test's start (* resident), *",
            "*automem: memory*",
            "MEMORY FAIL test_one.py::test_big: peak*",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out
    # The one-line message once: not repeated as a list under it, nor as a figure.
    assert "- peak " not in out
    assert "growth rate" not in out
    assert "n/a" not in out


def test_bad_marker_argument_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.memory_budget(peak="lots")
        def test_one():
            pass

        def test_two():
            pass
        """
    )
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*ERROR collecting test_bad.py*", "*test_bad.py::test_one*memory_budget*peak='lots'*"]
    )


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ('memory_budget(pressure="severe")', "pressure='severe'"),
        ('memory_budget(peek="1MB")', "unknown argument peek="),
        ('memory_budget("1MB")', "keyword arguments only"),
        ("memory_budget()", "at least one limit"),
        ('memory_budget(rate="1MB")', "rate='1MB'"),
    ],
)
def test_each_bad_marker_names_the_argument(
    pytester: pytest.Pytester, marker: str, words: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.{marker}
        def test_one():
            pass
        """
    )
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert words in result.stdout.str()


def test_class_and_module_markers_apply_closest_wins(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_scoped="""
        import pytest
        from alloc import MB, spike

        pytestmark = pytest.mark.memory_budget(peak="8MB")

        def test_module_level():
            spike(40 * MB)

        @pytest.mark.memory_budget(peak="100MB")
        class TestRoomy:
            def test_in_class(self):
                spike(40 * MB)

            @pytest.mark.memory_budget(peak="4MB")
            def test_method_marker_wins(self):
                spike(40 * MB)
        """
    )
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(failed=2, passed=1)
    tests = _results(pytester)["tests"]
    assert tests["test_scoped.py::test_module_level"]["budget"]["peak_bytes"] == 8 << 20
    assert tests["test_scoped.py::TestRoomy::test_in_class"]["verdict"] == "pass"
    wins = tests["test_scoped.py::TestRoomy::test_method_marker_wins"]
    assert wins["budget"]["peak_bytes"] == 4 << 20
    assert wins["verdict"] == "fail"


def test_own_failure_is_kept_and_memory_verdict_added(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_own="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="8MB")
        def test_both():
            spike(40 * MB)
            assert 1 == 2, "the test's own failure"
        """
    )
    result = _run(pytester, "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: the test's own failure*",
            "*automem: memory budget exceeded too*",
            "memory budget exceeded: peak * > budget 8.0 MB*",
            "",
            "peak * above the test's start*",
        ]
    )
    failure = _cases(pytester)["test_both"].find("failure")
    assert failure is not None
    assert "the test's own failure" in failure.get("message", "")


def test_xfail_catches_a_memory_failure(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makepyfile(
        test_xf="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.xfail(strict=True, reason="deliberate spike")
        @pytest.mark.memory_budget(peak="8MB")
        def test_caught():
            spike(40 * MB)
        """
    )
    result = _run(pytester, "--automem-json=results.json")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["MEMORY XFAIL test_xf.py::test_caught: peak * (expected)"])
    result.stdout.no_fnmatch_line("MEMORY FAIL *")
    record = _results(pytester)["tests"]["test_xf.py::test_caught"]
    assert record["expected_failure"] is True
    assert record["verdict"] == "fail"


def test_a_fixtures_memory_shows_where_users_look(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makepyfile(
        test_fx="""
        import pytest
        from alloc import MB, resident, spike

        @pytest.fixture
        def big():
            yield resident(40 * MB)

        @pytest.mark.memory_budget(peak="24MB")
        def test_fixture_only(big):
            pass

        @pytest.mark.memory_budget(peak="8MB")
        def test_fixture_and_spike(big):
            spike(16 * MB)
        """
    )
    result = _run(pytester, "--junitxml=junit.xml", "--automem-json=results.json")
    result.assert_outcomes(failed=1, passed=1)
    # The top list ranks the test by its setup's 40 MB and names the phases.
    result.stdout.fnmatch_lines(
        [
            "highest peak (2 monitored tests):",
            "*test_fx.py::test_fixture_* (setup 4*MB in fixture big, call *, teardown *)",
            "*test_fx.py::test_fixture_* (setup 4*MB in fixture big, call *, teardown *)",
        ]
    )
    # The failure text names the setup's peak beside the call's figures...
    result.stdout.fnmatch_lines(
        [
            "memory budget exceeded: peak * > budget 8.0 MB*",
            "",
            "peak * above the test's start*",
            "setup peak 4*MB before the call (fixture big 4*MB; not in the call's figures), *",
        ]
    )
    # ...and the JUnit file and the results file carry the same text.
    record = _results(pytester)["tests"]["test_fx.py::test_fixture_and_spike"]
    assert "setup peak 4" in record["report"]
    fixtures = record["phases"]["setup"]["fixture_peaks_bytes"]
    assert fixtures["big"] >= 39 << 20
    assert max(fixtures, key=fixtures.__getitem__) == "big"
    failure = _cases(pytester)["test_fixture_and_spike"].find("failure")
    assert failure is not None
    assert _results_of_junit_failure(failure.text or "") == record["report"]
    assert failure.get("message") == f"memory budget exceeded: {record['message']}"


def test_junit_properties_message_report_and_attachment(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_j="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="8MB")
        def test_over():
            print("captured by pytest")
            spike(40 * MB)

        @pytest.mark.memory_budget(peak="100MB")
        def test_under():
            pass

        def test_unmonitored():
            pass
        """
    )
    result = _run(
        pytester,
        "--junitxml=junit.xml",
        "--automem-report-dir=reports",
        "-o",
        "junit_logging=system-out",
    )
    result.assert_outcomes(failed=1, passed=2)
    cases = _cases(pytester)
    over = cases["test_over"]
    props = _properties(over)
    for key in ("peak_bytes", "growth_bytes", "max_pressure", "samples", "peak_source", "verdict"):
        assert f"automem.{key}" in props
    assert props["automem.verdict"] == "fail"
    failure = over.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "\n" not in message
    assert message.startswith("memory budget exceeded: peak ")
    report = _results_of_junit_failure(failure.text or "")
    assert report.startswith("peak ") and "above the test's start" in report
    system_out = over.find("system-out")
    assert system_out is not None
    text = system_out.text or ""
    assert text.index("captured by pytest") < text.index("[[ATTACHMENT|")
    attachment = text.split("[[ATTACHMENT|", 1)[1].split("]]", 1)[0]
    assert Path(attachment).is_file()
    assert report in text
    attached = Path(attachment).read_text()
    assert attached.startswith(f"test_j.py::test_over\n{message}\n\n{report}")
    assert _properties(cases["test_under"])["automem.verdict"] == "pass"
    assert _properties(cases["test_unmonitored"]) == {}


def test_ini_switch_turns_junit_properties_off(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nautomem_junit_properties = false\n")
    pytester.makepyfile(test_p="def test_a(memory_monitor):\n    pass\n")
    _run(pytester, "--junitxml=junit.xml").assert_outcomes(passed=1)
    assert _properties(_cases(pytester)["test_a"]) == {}


@pytest.mark.parametrize(
    ("setting", "carried"),
    [
        (None, {"test_budgeted", "test_fixture", "test_over"}),
        ("budgeted", {"test_budgeted", "test_fixture", "test_over"}),
        ("all", {"test_budgeted", "test_fixture", "test_over", "test_blanket"}),
        ("true", {"test_budgeted", "test_fixture", "test_over", "test_blanket"}),
        ("none", set()),
    ],
)
def test_junit_properties_go_where_readers_look(
    pytester: pytest.Pytester, alloc: None, setting: str | None, carried: set[str]
) -> None:
    """By default only tests with a budget, an automem fixture or a memory
    failure carry properties: the results file holds every test's figures."""
    if setting is not None:
        pytester.makeini(f"[pytest]\nautomem_junit_properties = {setting}\n")
    pytester.makepyfile(
        test_p="""
        import pytest
        from alloc import MB, spike

        def test_blanket():
            pass

        def test_fixture(memory_monitor):
            pass

        @pytest.mark.memory_budget(peak="100MB")
        def test_budgeted():
            pass

        @pytest.mark.memory_budget(peak="8MB")
        def test_over():
            spike(40 * MB)
        """
    )
    result = _run(pytester, "--automem", "--junitxml=junit.xml", "--automem-json=r.json")
    result.assert_outcomes(passed=3, failed=1)
    cases = _cases(pytester)
    assert {name for name, case in cases.items() if _properties(case)} == carried
    results = json.loads((pytester.path / "r.json").read_text())
    assert len(results["tests"]) == 4  # the results file keeps them all


def test_phases_unittest_and_fixtures_are_monitored(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makepyfile(
        test_kinds="""
        import unittest
        import pytest
        from alloc import MB, resident, spike

        @pytest.fixture
        def big_fixture():
            block = resident(40 * MB)
            yield block
            spike(60 * MB)
            block.close()

        def test_uses_fixture(big_fixture):
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            spike(n * 40 * MB)

        class TestCaseStyle(unittest.TestCase):
            def test_unittest_method(self):
                spike(40 * MB)
        """
    )
    _run(pytester, "--automem", "--automem-json=results.json").assert_outcomes(passed=4)
    tests = _results(pytester)["tests"]
    assert set(tests) == {
        "test_kinds.py::test_uses_fixture",
        "test_kinds.py::test_param[1]",
        "test_kinds.py::test_param[2]",
        "test_kinds.py::TestCaseStyle::test_unittest_method",
    }
    phases = tests["test_kinds.py::test_uses_fixture"]["phases"]
    assert set(phases) == {"setup", "call", "teardown"}
    assert phases["setup"]["growth_bytes"] >= 39 << 20
    assert phases["teardown"]["peak_bytes"] >= 59 << 20
    assert tests["test_kinds.py::test_param[2]"]["peak_bytes"] >= 79 << 20
    assert tests["test_kinds.py::TestCaseStyle::test_unittest_method"]["peak_bytes"] >= 39 << 20
    # parametrize arguments are pseudo-fixtures with no work: no setup/teardown windows
    assert set(tests["test_kinds.py::test_param[1]"]["phases"]) == {"call"}
    # monitored only by --automem: garbage collected at the call's end only
    assert all(record["baseline_collected"] is False for record in tests.values())


def test_budgeted_tests_collect_at_both_ends_and_blanket_summary_is_brief(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_mixed="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="500MB")
        def test_budgeted():
            spike(30 * MB)

        def test_blanket_spike():
            spike(70 * MB)

        def test_blanket_small():
            pass
        """
    )
    _run(pytester, "--automem", "--automem-json=results.json").assert_outcomes(passed=3)
    tests = _results(pytester)["tests"]
    assert tests["test_mixed.py::test_budgeted"]["baseline_collected"] is True
    assert tests["test_mixed.py::test_blanket_small"]["baseline_collected"] is False
    # Without outputs the flag-only calls close in brief; the summary still ranks them.
    result = _run(pytester, "--automem")
    result.assert_outcomes(passed=3)
    lines = result.stdout.lines
    top = lines.index("highest peak (3 monitored tests):") + 1
    assert lines[top].endswith("test_mixed.py::test_blanket_spike")


def test_unmonitored_run_writes_nothing_and_starts_no_sampler(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import psutil

        def test_no_sampler_child():
            children = psutil.Process().children(recursive=True)
            assert not any("sampler_child.py" in " ".join(c.cmdline()) for c in children)
        """
    )
    before = sorted(p.name for p in pytester.path.iterdir())
    result = _run(pytester, "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    after = sorted(p.name for p in pytester.path.iterdir())
    pytester_own = {"stdout", "stderr", ".benchmarks"}
    new = {name for name in set(after) - set(before) if not name.startswith("runpytest-")}
    assert new - pytester_own == {"junit.xml"}
    assert "automem: memory" not in result.stdout.str()
    assert "automem." not in (pytester.path / "junit.xml").read_text()


def test_memory_monitor_fixture_is_live(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makepyfile(
        test_live="""
        from alloc import MB, resident

        def test_live(memory_monitor):
            block = resident(40 * MB)
            assert memory_monitor.current_bytes >= 39 * MB
            assert memory_monitor.peak_bytes >= 39 * MB
            assert memory_monitor.pressure.name == "LOW"
            assert memory_monitor.samples >= 0
            block.close()
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_thresholds_from_ini_and_conftest_override(pytester: pytest.Pytester, alloc: None) -> None:
    pytester.makeini("[pytest]\nautomem_thresholds = 1MB,2MB,3MB\n")
    pytester.makeconftest(
        """
        import pytest
        from pytest_automem import PressureThresholds

        @pytest.fixture(scope="session")
        def pressure_thresholds():
            return PressureThresholds.parse("100MB,200MB,300MB")
        """
    )
    pytester.makepyfile(
        test_t="""
        from alloc import MB, spike

        def test_override(memory_monitor, pressure_thresholds):
            assert pressure_thresholds.medium == 100 * MB
            spike(40 * MB)
        """
    )
    _run(pytester, "--automem-json=results.json").assert_outcomes(passed=1)
    record = _results(pytester)["tests"]["test_t.py::test_override"]
    assert record["max_pressure"] == "LOW"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("-o", "automem_thresholds=5MB,1MB,9MB"), "automem_thresholds"),
        (("--automem-interval=fast",), "--automem-interval"),
        (("-o", "automem_interval=0ms"), "ini automem_interval"),
        (("-o", "automem_gc=sometimes"), "automem_gc"),
        (("-o", "automem_fresh_allocator=maybe"), "automem_fresh_allocator"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], words: str
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert words in result.stderr.str()


def test_options_are_documented_in_help(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "*--automem *monitor every test*",
            "*--automem-interval=DURATION*",
            "*--automem-json=PATH*",
            "*automem_thresholds*",
            "*automem_interval*",
        ],
        consecutive=False,
    )


def test_xdist_gives_the_same_results_as_a_serial_run(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_x="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.parametrize("n", range(6))
        @pytest.mark.memory_budget(peak="30MB")
        def test_n(n):
            spike((40 if n % 2 else 10) * MB)
        """
    )
    serial = _run(pytester, "--automem-json=serial.json", "--junitxml=serial.xml")
    serial.assert_outcomes(failed=3, passed=3)
    parallel = _run(pytester, "-n", "2", "--automem-json=parallel.json", "--junitxml=parallel.xml")
    parallel.assert_outcomes(failed=3, passed=3)
    one = _results(pytester, "serial.json")["tests"]
    two = _results(pytester, "parallel.json")["tests"]
    assert sorted(one) == sorted(two)
    # The same measurement context, so a gate compares them as like with like.
    session_keys = ("sampler_kind", "python", "platform", "gc_mode")
    contexts = [
        {key: _results(pytester, name)["session"][key] for key in session_keys}
        for name in ("serial.json", "parallel.json")
    ]
    assert contexts[0] == contexts[1] and contexts[0]["sampler_kind"] is not None
    for nodeid in one:
        assert set(one[nodeid]) == set(two[nodeid])
        assert one[nodeid]["verdict"] == two[nodeid]["verdict"]
    serial_cases = _cases(pytester, "serial.xml")
    parallel_cases = _cases(pytester, "parallel.xml")
    for name, case in parallel_cases.items():
        assert set(_properties(case)) == set(_properties(serial_cases[name]))
        failure = case.find("failure")
        if failure is not None:
            assert "\n" not in failure.get("message", "")
            assert "above the test's start" in (case.findtext("system-out") or "")


def test_xdist_results_state_the_sampler_of_passing_blanket_tests(
    pytester: pytest.Pytester,
) -> None:
    """Lean records leave the sampler kind out and the controller samples
    nothing: the workers hand it over, so the gate sees one context."""
    pytest.importorskip("xdist")
    pytester.makepyfile(test_quiet="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    _run(pytester, "--automem", "--automem-json=serial.json").assert_outcomes(passed=2)
    parallel = _run(pytester, "-n", "2", "--automem", "--automem-json=parallel.json")
    parallel.assert_outcomes(passed=2)
    kinds = {
        _results(pytester, name)["session"]["sampler_kind"]
        for name in ("serial.json", "parallel.json")
    }
    assert len(kinds) == 1 and None not in kinds


def test_xdist_without_outputs_measures_blanket_tests_in_brief(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(automem_wraps=_AUTOMEM_WRAPS)
    pytester.makeconftest(
        """
        import pytest
        from automem_wraps import automem_wraps

        @pytest.fixture
        def block():
            return bytearray(1024)

        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(session):
            worker = getattr(session.config, "workerinput", None)
            if worker is not None:
                path = session.config.rootpath / f"hooks-{worker['workerid']}.txt"
                path.write_text(" ".join(automem_wraps(session)))
        """
    )
    pytester.makepyfile(
        test_x="""
        import pytest
        from alloc import MB, spike

        def test_spike(block):
            spike(60 * MB)

        @pytest.mark.parametrize("n", range(4))
        def test_small(n, block):
            pass
        """
    )
    result = _run(pytester, "-n", "2", "--automem")
    result.assert_outcomes(passed=5)
    # Every worker's records reached the controller's summary...
    lines = result.stdout.lines
    top = lines.index("highest peak (5 monitored tests):") + 1
    assert lines[top].endswith("test_x.py::test_spike")
    # ...though no output needs setup or teardown figures: pytest's setup and
    # teardown of each test run without the plugin's work, only the call is measured.
    wraps = [path.read_text() for path in pytester.path.glob("hooks-gw*.txt")]
    assert wraps == ["pytest_runtest_call", "pytest_runtest_call"]


def test_xdist_controller_keeps_no_record_on_the_reports_it_holds(
    pytester: pytest.Pytester,
) -> None:
    """pytest's terminal reporter holds every report until the session ends:
    a record left on them cost the controller ~3 KB a test (200 MB on a
    64,000-test suite).  The record arrives as one encoded line, which the
    controller spools and takes off the report."""
    pytest.importorskip("xdist")
    pytester.makeconftest(
        """
        def pytest_terminal_summary(terminalreporter, config):
            if hasattr(config, "workerinput"):
                return
            held = [
                report.nodeid
                for reports in terminalreporter.stats.values()
                for report in reports
                if hasattr(report, "automem")
            ]
            (config.rootpath / "held.txt").write_text(repr(held))
        """
    )
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            pass
        """
    )
    result = _run(pytester, "-n", "2", "--automem", "--automem-json=results.json")
    result.assert_outcomes(passed=6)
    assert (pytester.path / "held.txt").read_text() == "[]"
    tests = _results(pytester)["tests"]
    assert len(tests) == 6
    assert all(record["verdict"] == "pass" and "phases" in record for record in tests.values())


def test_junit_stays_valid_xml_whatever_the_report_holds(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(
        test_bytes="""
        import pytest
        from alloc import MB, spike

        def scenario_with_odd_name(automaton, step):
            automaton.add({"id": f"e{step}", "payload": "x" * 4000})

        scenario_with_odd_name.__qualname__ = "odd\\x1b[31m\\x00\\ud800🧠<&]]>"

        @pytest.mark.parametrize("label", ["ctl\\x07\\x1b", "emoji🧠", "amp&lt<"])
        @pytest.mark.memory_budget(peak="8MB", leak_per_iteration="1KB")
        def test_odd(label, run_scenario):
            run_scenario(scenario_with_odd_name, iterations=20, warmup=2)
            spike(40 * MB)
        """
    )
    result = _run(pytester, "--junitxml=junit.xml", "--automem-report-dir=reports")
    result.assert_outcomes(failed=3)
    raw = (pytester.path / "junit.xml").read_bytes()
    root = ET.fromstring(raw)  # a standard XML parser accepts it
    suites = junitparser.JUnitXml.fromfile(str(pytester.path / "junit.xml"))
    cases = [case for suite in suites for case in suite]
    assert len(cases) == 3
    for case in root.iter("testcase"):
        failure = case.find("failure")
        assert failure is not None
        assert "\n" not in failure.get("message", "")
        assert "odd" in (case.findtext("system-out") or "")
    assert "🧠" in raw.decode("utf-8")


def test_github_step_summary_is_appended_when_ci_sets_it(
    pytester: pytest.Pytester, alloc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(
        test_s="""
        import pytest
        from alloc import MB, spike

        @pytest.mark.memory_budget(peak="8MB")
        def test_over():
            spike(40 * MB)
        """
    )
    _run(pytester).assert_outcomes(failed=1)
    text = summary.read_text()
    assert "## pytest-automem: memory" in text
    assert "| `test_s.py::test_over` | peak " in text
    summary.unlink()
    _run(pytester, "-o", "automem_step_summary=false").assert_outcomes(failed=1)
    assert not summary.exists()


#: A module with ``automem_wraps(session)``: which of pytest's phase hooks the
#: plugin takes part in, i.e. which phases of each test it measures.
_AUTOMEM_WRAPS = """
def automem_wraps(session):
    hook = session.config.pluginmanager.hook
    phases = ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown")
    return [
        phase
        for phase in phases
        if any(
            (getattr(impl.plugin, "__name__", None) or type(impl.plugin).__module__)
            .startswith("pytest_automem")
            for impl in getattr(hook, phase).get_hookimpls()
        )
    ]
"""

_HOOKS_CONFTEST = """
import pytest
from automem_wraps import automem_wraps

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    print("automem wraps:", automem_wraps(session))
"""


def test_blanket_setup_and_teardown_are_measured_only_for_an_output(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makepyfile(automem_wraps=_AUTOMEM_WRAPS)
    pytester.makeconftest(_HOOKS_CONFTEST)
    pytester.makepyfile(
        test_fixture="""
        import pytest
        from alloc import MB, resident

        @pytest.fixture
        def block():
            block = resident(40 * MB)
            yield block
            block.close()

        def test_uses_block(block):
            pass
        """
    )
    # Nothing reads setup and teardown figures of flag-only tests: only the call is measured.
    result = _run(pytester, "--automem", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["automem wraps: ['pytest_runtest_call']", "*automem: memory*"])
    # The results file reports them: setup and teardown are measured.
    result = _run(pytester, "--automem", "-s", "--automem-json=results.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "automem wraps: ['pytest_runtest_setup', 'pytest_runtest_call',"
            " 'pytest_runtest_teardown']"
        ]
    )
    phases = _results(pytester)["tests"]["test_fixture.py::test_uses_block"]["phases"]
    assert set(phases) == {"setup", "call", "teardown"}
    assert phases["setup"]["growth_bytes"] >= 39 << 20


def test_an_item_a_plugin_adds_after_collection_is_monitored(
    pytester: pytest.Pytester, alloc: None
) -> None:
    pytester.makeconftest(
        """
        import pytest
        from alloc import MB, spike

        class LateItem(pytest.Item):
            def runtest(self):
                spike(40 * MB)

        def pytest_collection_modifyitems(session, items):
            items.append(LateItem.from_parent(session, name="late"))
        """
    )
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    _run(pytester, "--automem", "--automem-json=results.json").assert_outcomes(passed=2)
    tests = _results(pytester)["tests"]
    assert set(tests) == {"test_one.py::test_one", "::late"}
    assert tests["::late"]["peak_bytes"] >= 39 << 20


def test_a_bad_budget_on_a_late_item_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        class LateItem(pytest.Item):
            def runtest(self):
                pass

        def pytest_collection_modifyitems(session, items):
            late = LateItem.from_parent(session, name="late")
            late.add_marker(pytest.mark.memory_budget(peak="lots"))
            items.append(late)
        """
    )
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = _run(pytester, "--automem")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*::late*memory_budget*peak='lots'*"])


def test_a_long_blanket_call_is_measured_in_full(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_spans="""
        import time

        def test_short():
            pass

        def test_long():
            time.sleep(0.6)
        """
    )
    result = _run(pytester, "--automem", "--automem-json=results.json")
    result.assert_outcomes(passed=2)
    tests = _results(pytester)["tests"]
    # Both records keep the results contract, however briefly they were measured...
    for nodeid in ("test_spans.py::test_short", "test_spans.py::test_long"):
        assert set(REQUIRED_TEST_KEYS) <= set(tests[nodeid]), nodeid
    # ...and a long call is a full window over the same span: its samples and growth rate.
    long = tests["test_spans.py::test_long"]
    assert long["samples"] >= 300
    assert isinstance(long["rate_bytes_per_s"], float)


def test_collect_only_checks_budgets_but_starts_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(automem_wraps=_AUTOMEM_WRAPS)
    pytester.makeconftest(_HOOKS_CONFTEST)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = _run(pytester, "--automem", "--collect-only", "-s")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["automem wraps: []"])  # no test is run, none is measured
    assert "automem: memory" not in result.stdout.str()
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.memory_budget(peak="lots")
        def test_bad():
            pass
        """
    )
    result = _run(pytester, "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_bad.py::test_bad*memory_budget*peak*"])


def _results_of_junit_failure(text: str) -> str:
    """The report in a JUnit failure's text: what follows the one-line message."""
    message, _, report = text.partition("\n\n")
    assert message.startswith("memory budget exceeded: ")
    assert message not in report, "the one-line message is said once"
    return report.strip()
