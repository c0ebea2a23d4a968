"""``--automem-html`` end to end: a real inner session writes the dashboard at its end.

The dashboard renders the document ``--automem-json`` writes (also when no
results file is asked for), on the controller under xdist, and a path it
cannot write to stops the run before the first test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import external_references, node_ids_of, page_data
from helpers import INNER_ALLOC
from test_plugin_outputs import _memory_failure_and_a_pass

pytest_plugins = ["pytester"]

#: Beside test_s.py's memory failure and pass: ids a page must show as text.
NAMED_TESTS = """
import pytest

@pytest.mark.parametrize("name", ["</script><img src=x onerror=alert(1)>", "é ☃"])
@pytest.mark.memory_budget(peak="1GB")
def test_named(name):
    pass
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    _memory_failure_and_a_pass(pytester)
    pytester.makepyfile(test_named=NAMED_TESTS)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=180
    )  # fmt: skip


def _dashboard(path: Path) -> tuple[str, dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return text, page_data(text)


def _figures(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    columns = data["columns"]
    return {
        row[0]: tuple(row[columns.index(key)] for key in ("peak", "growth", "verdict"))
        for row in data["rows"]
    }


def test_html_alone_renders_the_sessions_results(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--automem-html=out/dashboard.html")

    result.assert_outcomes(failed=1, passed=3)
    assert "automem dashboard written to out/dashboard.html" in result.stdout.str()
    text, data = _dashboard(pytester.path / "out" / "dashboard.html")
    assert sorted(node_ids_of(data)) == sorted(
        [
            "test_s.py::test_over",
            "test_s.py::test_fine",
            "test_named.py::test_named[</script><img src=x onerror=alert(1)>]",
            "test_named.py::test_named[\\xe9 \\u2603]",
        ]
    )
    assert data["summary"]["failures"] == 1
    [over] = [index for index, nodeid in enumerate(node_ids_of(data)) if nodeid.endswith("over")]
    detail = data["details"][str(over)]
    assert detail["budget"] == {"peak_bytes": 8 << 20}
    assert detail["msg"].startswith("peak 40.0 MB > budget 8.0 MB")
    assert detail["report"].startswith("peak 40.0 MB above the test's start")
    assert external_references(text) == []
    assert "<img" not in text
    assert not (pytester.path / "results.json").exists()
    assert [p.name for p in (pytester.path / "out").iterdir()] == [
        "dashboard.html"
    ]  # no spool left


def _same_as_results_file(pytester: pytest.Pytester, *args: str) -> None:
    result = _run(pytester, *args, "--automem-json=results.json", "--automem-html=d.html")

    result.assert_outcomes(failed=1, passed=3)
    results = json.loads((pytester.path / "results.json").read_text())
    _, data = _dashboard(pytester.path / "d.html")
    verdicts = data["verdicts"]
    assert _figures(data) == {
        nodeid: (
            record["peak_bytes"],
            record["growth_bytes"],
            verdicts.index("fail" if record["verdict"] == "fail" else "pass"),
        )
        for nodeid, record in results["tests"].items()
    }
    context = dict(map(tuple, data["summary"]["context"]))
    assert context["sampler kind"] == results["session"]["sampler_kind"]


def test_html_renders_the_document_the_results_file_holds(pytester: pytest.Pytester) -> None:
    _same_as_results_file(pytester)


def test_html_under_xdist_is_written_once_on_the_controller(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    _same_as_results_file(pytester, "-n", "2")


@pytest.mark.parametrize(
    ("make", "value", "words"),
    [
        (lambda path: path.mkdir(), "out", ("--automem-html=out", "is a folder")),
        (
            lambda path: path.write_text("x"),
            "out/d.html",
            ("--automem-html=out/d.html", "is a file"),
        ),
        (lambda path: None, "", ("--automem-html", "needs a path")),
    ],
    ids=["folder", "under-a-file", "empty"],
)
def test_a_path_it_cannot_write_stops_the_run_before_the_first_test(
    pytester: pytest.Pytester, make: Any, value: str, words: tuple[str, ...]
) -> None:
    make(pytester.path / "out")
    pytester.makepyfile(test_ran="def test_ran(tmp_path_factory):\n    open('ran', 'w').close()\n")

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--automem-html={value}", timeout=120
    )  # fmt: skip

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert all(word in errors[0] for word in words), errors[0]
    assert not (pytester.path / "ran").exists()


#: A budgeted test over its peak budget that holds its memory long enough
#: for the sampler to see it on a loaded machine, and a passing one.
HELD_TESTS = """
import time

import pytest
from alloc import MB, resident


@pytest.mark.memory_budget(peak="8MB")
def test_over():
    block = resident(40 * MB)
    time.sleep(0.1)
    block.close()


@pytest.mark.memory_budget(peak="1GB")
def test_fine():
    time.sleep(0.02)
"""


def test_html_alone_plots_the_budgeted_tests_and_leaves_no_samples_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The samples the session keeps for budgeted and failing tests become the
    page's curves; the temporary folder they went through is gone afterwards."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    pytester.makepyfile(alloc=INNER_ALLOC, test_held=HELD_TESTS)

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--automem-html=d.html", timeout=180
    )  # fmt: skip

    result.assert_outcomes(failed=1, passed=1)
    _, data = _dashboard(pytester.path / "d.html")
    ids = node_ids_of(data)
    curve = data["details"][str(ids.index("test_held.py::test_over"))]["curve"]
    assert len(curve["t"]) == len(curve["m"]) >= 2
    assert max(curve["m"]) >= 30 << 20  # the 40 MB held for 100 ms, above the test's start
    assert "curve" in data["details"][str(ids.index("test_held.py::test_fine"))]
    assert data["summary"]["plots"] == 2
    assert list(temporary.iterdir()) == []


def test_html_with_every_tests_samples_and_no_results_file(pytester: pytest.Pytester) -> None:
    """``--automem-samples`` beside the dashboard alone: the page names the
    folder relative to itself and plots every test."""
    result = _run(pytester, "--automem", "--automem-samples=kept", "--automem-html=d.html")

    result.assert_outcomes(failed=1, passed=3)
    _, data = _dashboard(pytester.path / "d.html")
    assert data["summary"]["plots"] == 4
    assert len(list((pytester.path / "kept").iterdir())) == 4


@pytest.mark.parametrize(
    "options",
    [
        ("--automem-json=out/r.json", "--automem-html=out/r.json"),
        ("--junitxml=out/r.xml", "--automem-html=out/./r.xml"),
        ("--junitxml=r.json", "--automem-json=r.json"),
    ],
    ids=["json-html", "junit-html", "junit-json"],
)
def test_one_file_for_two_outputs_stops_the_run_before_the_first_test(
    pytester: pytest.Pytester, options: tuple[str, str]
) -> None:
    """The later writer would replace the other's file (the results lost under
    the dashboard): both options are named, and no test runs."""
    pytester.makepyfile(test_ran="def test_ran():\n    open('ran', 'w').close()\n")

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *options, timeout=120
    )  # fmt: skip

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert all(option.split("=")[0] in errors[0] for option in options), errors[0]
    assert "same file" in errors[0]
    assert not (pytester.path / "ran").exists()
