"""The suite's own rule: a skip that names no missing environment fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def suite_rules(pytester: pytest.Pytester) -> pytest.Pytester:
    """An inner run under this suite's conftest, so its skip rule applies."""
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    return pytester


def test_a_skip_for_an_unlisted_reason_fails_the_run_naming_test_and_reason(
    suite_rules: pytest.Pytester,
) -> None:
    suite_rules.makepyfile(
        test_x="""
        import pytest

        def test_lazy():
            pytest.skip("flaky today")

        def test_fine():
            pass
        """
    )
    result = suite_rules.runpytest_subprocess("-p", "no:randomly", "-p", "no:benchmark")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["unexpected skip: test_x.py::test_lazy: flaky today"])


def test_a_skip_for_a_missing_environment_keeps_the_run_green(
    suite_rules: pytest.Pytester,
) -> None:
    suite_rules.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.skipif(True, reason="reads /proc")
        def test_procfs():
            pass

        @pytest.mark.xfail(reason="known", strict=True)
        def test_expected_failure():
            assert False
        """
    )
    result = suite_rules.runpytest_subprocess("-p", "no:randomly", "-p", "no:benchmark")
    result.assert_outcomes(skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "unexpected skip" not in result.stdout.str()


def test_skips_on_xdist_workers_fail_the_run_once_on_the_controller(
    suite_rules: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    suite_rules.makepyfile(
        test_x="""
        import pytest

        def test_lazy():
            pytest.skip("flaky today")
        """
    )
    result = suite_rules.runpytest_subprocess("-p", "no:randomly", "-p", "no:benchmark", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.str().count("unexpected skip: test_x.py::test_lazy: flaky today") == 1
