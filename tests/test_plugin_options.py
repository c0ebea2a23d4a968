"""Options, ini settings and marker arguments are checked at start-up, in full.

Each bad input stops the run before the first test with one line that names
the option, ini setting or marker argument at fault: a usage error (exit 4)
at configure, before any sampler starts, or a collection error naming the
test.  Inner sessions run in subprocesses, as in ``test_plugin.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import INNER_ALLOC

pytest_plugins = ["pytester"]

PASSING_TEST = "def test_x():\n    pass\n"

#: An inner conftest that records every sampler ring file the run creates, so
#: a test can tell whether a sampler started without racing other sessions'
#: rings in /dev/shm.
RING_SPY = """
import tempfile

_mkstemp = tempfile.mkstemp

def _spy(*args, **kwargs):
    fd, name = _mkstemp(*args, **kwargs)
    if str(kwargs.get("prefix", "")).startswith("automem-ring-"):
        with open("rings-created.txt", "a") as log:
            log.write(name + "\\n")
    return fd, name

tempfile.mkstemp = _spy
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
    )


def _run_in_process(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """For runs refused at configure: no sampler can start, so no process is needed."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def _assert_usage_error(result: pytest.RunResult, *words: str) -> str:
    """Exit 4, and one ``ERROR:`` line on stderr that contains every word."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    for word in words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    return errors[0]


def _results(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / "results.json").read_text())


# -- the sampling interval -----------------------------------------------------


@pytest.mark.parametrize("value", ["1e22ms", "1e9", "1h", "2s", "0", "nan", "fast"])
def test_bad_interval_option_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile(test_x=PASSING_TEST)
    _assert_usage_error(
        _run_in_process(pytester, "--automem", f"--automem-interval={value}"),
        "--automem-interval",
        repr(value),
    )


@pytest.mark.parametrize("value", ["1e30", "1e22ms", "1h", "0.01ms"])
def test_bad_interval_in_the_ini_file_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makeini(f"[pytest]\nautomem_interval = {value}\n")
    pytester.makepyfile(test_x=PASSING_TEST)
    line = _assert_usage_error(
        _run_in_process(pytester, "--automem"), "ini automem_interval", value
    )
    assert "--automem-interval" not in line


def test_a_rejected_interval_starts_no_sampler(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RING_SPY)
    pytester.makepyfile(test_x=PASSING_TEST)
    _assert_usage_error(_run(pytester, "--automem", "--automem-interval=1e22ms"))
    assert not (pytester.path / "rings-created.txt").exists()


def test_the_ring_spy_sees_a_sampler_start(pytester: pytest.Pytester) -> None:
    """The check above can fail: with a good interval, the spy sees the ring."""
    pytester.makeconftest(RING_SPY)
    pytester.makepyfile(test_x=PASSING_TEST)
    _run(pytester, "--automem").assert_outcomes(passed=1)
    rings = (pytester.path / "rings-created.txt").read_text().split()
    assert len(rings) == 1
    assert not Path(rings[0]).exists()


@pytest.mark.parametrize(
    ("args", "ini", "expected_ms"),
    [
        (("--automem-interval=1",), "", 1.0),
        (("--automem-interval=2.5",), "", 2.5),
        (("--automem-interval=500us",), "", 0.5),
        ((), "automem_interval = 2\n", 2.0),
        (("--automem-interval=3ms",), "automem_interval = 2\n", 3.0),
    ],
)
def test_a_bare_interval_is_milliseconds(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, expected_ms: float
) -> None:
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(test_x=PASSING_TEST)
    _run(pytester, "--automem", "--automem-json=results.json", *args).assert_outcomes(passed=1)
    assert _results(pytester)["session"]["interval_target_ms"] == expected_ms


# -- every ini setting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("automem_step_summary", "perhaps", ["true", "false"]),
        ("automem_junit_properties", "2", ["budgeted", "all", "none"]),
        ("automem_thresholds", "1MB,2MB,1e30MB", ["1e30MB"]),
        ("automem_thresholds", "1MB,2MB", ["three sizes"]),
        ("automem_gc", "sometimes", ["auto", "full", "off"]),
        ("automem_fresh_allocator", "maybe", ["budgeted", "always", "never"]),
        ("automem_idle_interval", "1h", ["sampling interval"]),
        ("automem_idle_interval", "often", ["sampling interval"]),
    ],
)
def test_bad_ini_setting_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, setting: str, value: str, words: list[str]
) -> None:
    pytester.makeini(f"[pytest]\n{setting} = {value}\n")
    pytester.makepyfile(test_x=PASSING_TEST)
    _assert_usage_error(_run_in_process(pytester), f"ini {setting}", value, *words)


@pytest.mark.parametrize("setting", ["automem_step_summary", "automem_junit_properties"])
def test_bad_bool_given_with_o_is_a_usage_error(pytester: pytest.Pytester, setting: str) -> None:
    pytester.makepyfile(test_x=PASSING_TEST)
    _assert_usage_error(_run_in_process(pytester, "-o", f"{setting}=perhaps"), f"ini {setting}")


@pytest.mark.parametrize("value", ["false", "no", "0", "off", "False"])
def test_every_spelling_of_false_turns_properties_off(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makeini(f"[pytest]\nautomem_junit_properties = {value}\n")
    pytester.makepyfile(test_x=PASSING_TEST)
    _run(pytester, "--automem", "--junitxml=junit.xml").assert_outcomes(passed=1)
    assert "automem." not in (pytester.path / "junit.xml").read_text()


# -- output paths --------------------------------------------------------------


def test_json_path_that_is_a_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "out").mkdir()
    pytester.makepyfile(test_x=PASSING_TEST)
    _assert_usage_error(
        _run_in_process(pytester, "--automem", "--automem-json=out"), "--automem-json", "out"
    )


def test_json_path_under_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "plain.txt").write_text("not a folder")
    pytester.makepyfile(test_x=PASSING_TEST)
    result = _run_in_process(pytester, "--automem", "--automem-json=plain.txt/results.json")
    _assert_usage_error(result, "--automem-json", "plain.txt")


def test_report_dir_that_is_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "plain.txt").write_text("not a folder")
    pytester.makepyfile(test_x=PASSING_TEST)
    result = _run_in_process(pytester, "--automem", "--automem-report-dir=plain.txt")
    _assert_usage_error(result, "--automem-report-dir", "plain.txt")
    assert (pytester.path / "plain.txt").read_text() == "not a folder"


def test_report_dir_under_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "plain.txt").write_text("not a folder")
    pytester.makepyfile(test_x=PASSING_TEST)
    result = _run_in_process(pytester, "--automem", "--automem-report-dir=plain.txt/reports")
    _assert_usage_error(result, "--automem-report-dir", "plain.txt")


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="running as root: a read-only folder refuses only an unprivileged user",
)
def test_json_path_in_a_read_only_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    locked = pytester.path / "locked"
    locked.mkdir(mode=0o555)
    pytester.makepyfile(test_x=PASSING_TEST)
    result = _run_in_process(pytester, "--automem", "--automem-json=locked/sub/results.json")
    _assert_usage_error(result, "--automem-json", "locked")


def test_output_folders_that_do_not_exist_yet_are_created_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(alloc=INNER_ALLOC)
    pytester.makepyfile(
        test_x="""
        import pytest
        from alloc import MB, resident

        kept = []

        @pytest.mark.memory_budget(growth="1MB")
        def test_keeps():
            kept.append(resident(8 * MB))
        """
    )
    result = _run(
        pytester, "--automem-json=new/deep/results.json", "--automem-report-dir=new/reports"
    )
    result.assert_outcomes(failed=1)
    assert json.loads((pytester.path / "new/deep/results.json").read_text())["tests"]
    assert list((pytester.path / "new/reports").iterdir())


def test_output_paths_are_checked_before_the_first_test(pytester: pytest.Pytester) -> None:
    (pytester.path / "out").mkdir()
    pytester.makepyfile(test_x="def test_x():\n    open('ran', 'w').close()\n")
    _assert_usage_error(_run(pytester, "--automem", "--automem-json=out"), "--automem-json")
    assert not (pytester.path / "ran").exists()


def test_xdist_controller_checks_the_output_paths(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    (pytester.path / "out").mkdir()
    pytester.makepyfile(test_x=PASSING_TEST)
    result = _run(pytester, "-n", "2", "--automem", "--automem-json=out")
    _assert_usage_error(result, "--automem-json")


# -- marker arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ("rate='1MB/1e-320s'", ["rate=", "1MB/1e-320s"]),
        ("peak=None", ["peak=None"]),
        ("peak='64MB', growth=None", ["growth=None"]),
        ("peak=2**63", ["peak=", "at most 1024TB"]),
        ("trace=True", ["at least one limit"]),
    ],
)
def test_bad_marker_argument_is_a_collection_error_naming_test_and_argument(
    pytester: pytest.Pytester, arguments: str, words: list[str]
) -> None:
    pytester.makepyfile(
        test_x=f"""
        import pytest

        @pytest.mark.memory_budget({arguments})
        def test_budgeted():
            pass
        """
    )
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "test_x.py::test_budgeted: @pytest.mark.memory_budget" in output
    for word in words:
        assert word in output
    assert "Traceback" not in output


# -- the sampler's rest between windows ---------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs a kernel peak")
@pytest.mark.parametrize(
    ("ini", "idle_ms"),
    [("", 10.0), ("automem_idle_interval = 50ms\n", 50.0), ("automem_idle_interval = 1\n", None)],
)
def test_the_results_say_how_the_sampler_rests(
    pytester: pytest.Pytester, ini: str, idle_ms: float | None
) -> None:
    """Where the kernel keeps exact peaks the sampler rests between windows
    (10 ms unless set); at the sampling interval itself it never does."""
    pytester.makeini(f"[pytest]\n{ini}")
    pytester.makepyfile(test_x=PASSING_TEST)
    _run(pytester, "--automem", "--automem-json=results.json").assert_outcomes(passed=1)
    assert _results(pytester)["session"]["idle_interval_ms"] == idle_ms
