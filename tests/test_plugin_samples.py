"""Per-test samples end to end: which tests keep them, where, and what the files hold.

Real inner sessions in subprocesses (the sampler is a process), as in
``test_plugin.py``; the files are read back with the snapshot reader, the
results file through its own keys (``samples_dir``, ``samples_file``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import INNER_ALLOC

from pytest_automem.base.defaults import SAMPLES_MAX_POINTS
from pytest_automem.snapshots.files import Snapshot, is_snapshot_name, read_snapshot

pytest_plugins = ["pytester"]

MB = 1 << 20
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "results.schema.json"

#: Tests whose calls leave a mark on the curve: a long one held at 32 MB
#: (more samples than a file keeps), one that collects garbage, and a
#: scenario whose automaton trims at every step boundary.
EVENTFUL = """
import gc
import time

from alloc import MB, resident
from pytest_automem import OptimizationConfig


def test_long():
    held = resident(32 * MB)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.01)
    held.close()


def test_collects():
    cycle = []
    cycle.append(cycle)
    del cycle
    gc.collect()


def add_two(automaton, step):
    automaton.add({"id": f"a{step}"})
    automaton.add({"id": f"b{step}"})


def test_scenario(run_scenario):
    result = run_scenario(add_two, iterations=6, warmup=1, config=OptimizationConfig(max_objects=3))
    assert result.trims > 0
"""

#: A budgeted test, a test that fails on its own, and a passing one that
#: only ``--automem`` monitors.
MIXED = """
import pytest

from alloc import MB, spike


@pytest.mark.memory_budget(peak="256MB")
def test_budgeted():
    spike(8 * MB)


def test_failing():
    spike(8 * MB)
    assert False, "on purpose"


def test_passing():
    pass
"""

#: Node ids that are awkward file names: separators, brackets, non-ASCII,
#: and two of 300 characters that differ only at their end.
LONG = "x" * 299
HOSTILE_IDS = ["a/b", "a?b", "../up", "ünï cödé", "[x]", f"{LONG}1", f"{LONG}2"]
HOSTILE = f"""
import pytest

IDS = {HOSTILE_IDS!r}


@pytest.mark.parametrize("case", IDS, ids=IDS)
def test_case(case):
    pass
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=180
    )  # fmt: skip


def _results(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _kept(results_path: Path) -> dict[str, Snapshot]:
    """Each test's snapshot, found as a reader would: samples_dir, then samples_file."""
    document = _results(results_path)
    folder = results_path.parent / document["session"]["samples_dir"]
    return {
        nodeid: read_snapshot(folder / record["samples_file"])
        for nodeid, record in document["tests"].items()
        if "samples_file" in record
    }


def _short(nodeid: str) -> str:
    return nodeid.rpartition("::")[2]


def test_every_monitored_test_keeps_a_file_with_its_highest_sample_and_events(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(alloc=INNER_ALLOC, test_eventful=EVENTFUL)
    result = _run(
        pytester, "--automem", "--automem-interval=0.2ms", "--automem-samples=kept",
        "--automem-json=results.json",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    files = sorted((pytester.path / "kept").iterdir())
    assert len(files) == 3
    assert all(is_snapshot_name(path.name) for path in files)
    document = _results(pytester.path / "results.json")
    assert document["session"]["samples_dir"] == "kept"  # beside the results file: relative
    snapshots = {
        _short(nodeid): snap for nodeid, snap in _kept(pytester.path / "results.json").items()
    }
    assert set(snapshots) == {"test_long", "test_collects", "test_scenario"}

    for name, snapshot in snapshots.items():
        header = snapshot.header
        assert header["test"].endswith(f"::{name}") and header["source"] == "pytest"
        assert header["phase"] == "call"
        assert 0 < len(snapshot.rss_bytes) <= SAMPLES_MAX_POINTS
        assert max(snapshot.rss_bytes) == header["highest_sample_rss_bytes"], name

    long = snapshots["test_long"]
    assert long.header["downsampled_from"] == long.header["samples"] > SAMPLES_MAX_POINTS
    assert max(long.rss_bytes) - long.header["baseline_bytes"] >= 30 * MB
    assert list(long.t_ms) == sorted(long.t_ms) and long.t_ms[0] == 0.0

    collections = [
        event
        for event in snapshots["test_collects"].events
        if event.kind == "gc" and "during the call" in event.detail
    ]
    assert collections and "generation 2" in collections[0].detail
    assert collections[0].rss_before_bytes is not None
    assert collections[0].rss_after_bytes is not None

    scenario = snapshots["test_scenario"]
    trims = [event for event in scenario.events if "automaton policy" in event.detail]
    assert trims and all(event.kind == "trim" for event in trims)
    assert all(0 <= event.t_ms <= scenario.t_ms[-1] for event in trims)
    # The plugin's own collection and trim at the window's ends are marked too.
    assert any("after the call" in event.detail for event in scenario.events)


def test_without_samples_option_failing_and_budgeted_tests_keep_theirs_beside_results(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(alloc=INNER_ALLOC, test_mixed=MIXED)
    (pytester.path / "out").mkdir()
    stale = pytester.path / "out" / "results.samples"
    stale.mkdir()
    old = stale / "snapshot-20200101T000000.000000-1-old.jsonl"
    old.write_text("{}\n")
    mine = stale / "notes.txt"
    mine.write_text("the user's")

    result = _run(pytester, "--automem", "--automem-json=out/results.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["automem samples written to out/results.samples"])
    document = _results(pytester.path / "out" / "results.json")
    assert document["session"]["samples_dir"] == "results.samples"
    kept = {
        _short(nodeid): snap
        for nodeid, snap in _kept(pytester.path / "out" / "results.json").items()
    }
    assert set(kept) == {"test_budgeted", "test_failing"}
    assert "samples_file" not in document["tests"]["test_mixed.py::test_passing"]
    assert kept["test_failing"].header["verdict"] == "pass"  # no memory verdict: it failed itself
    assert kept["test_budgeted"].header["budget"]["peak_bytes"] == 256 * MB
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is needed to check results files against the schema"
    )
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document)) == []
    # An earlier run's file is gone; the user's own file is not ours to delete.
    assert not old.exists() and mine.read_text() == "the user's"
    assert len(list(stale.iterdir())) == 3


#: Notes the xdist controller's pid: the workers, not it, write the files.
CONTROLLER_PID = """
import os


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        with open("controller.pid", "w") as out:
            out.write(str(os.getpid()))
"""


def test_samples_under_xdist_are_written_by_the_workers(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(CONTROLLER_PID)
    pytester.makepyfile(alloc=INNER_ALLOC, test_mixed=MIXED)
    result = _run(
        pytester, "-n", "2", "--automem", "--automem-samples=kept", "--automem-json=results.json"
    )
    result.assert_outcomes(passed=2, failed=1)
    kept = _kept(pytester.path / "results.json")
    assert {_short(nodeid) for nodeid in kept} == {"test_budgeted", "test_failing", "test_passing"}
    controller = int((pytester.path / "controller.pid").read_text())
    assert all(snapshot.header["pid"] != controller for snapshot in kept.values())

    auto = _run(pytester, "-n", "2", "--automem", "--automem-json=auto/results.json")
    auto.assert_outcomes(passed=2, failed=1)
    auto_kept = _kept(pytester.path / "auto" / "results.json")
    assert {_short(nodeid) for nodeid in auto_kept} == {"test_budgeted", "test_failing"}


def test_hostile_node_ids_get_valid_distinct_file_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hostile=HOSTILE)
    result = _run(pytester, "--automem", "--automem-samples=kept", "--automem-json=r.json")
    result.assert_outcomes(passed=len(HOSTILE_IDS))
    files = list((pytester.path / "kept").iterdir())
    assert len(files) == len(HOSTILE_IDS)
    assert all(is_snapshot_name(path.name) and path.parent.name == "kept" for path in files)
    kept = _kept(pytester.path / "r.json")
    assert len(kept) == len(HOSTILE_IDS)
    assert all(snapshot.header["test"] == nodeid for nodeid, snapshot in kept.items())
    assert len({snapshot.path for snapshot in kept.values()}) == len(HOSTILE_IDS)


@pytest.mark.parametrize(
    ("setup", "value", "words"),
    [
        ("file", "taken", ["--automem-samples=taken", "is a file"]),
        ("link", "linked", ["--automem-samples=linked", "is a link"]),
        ("file", "taken/below", ["--automem-samples=taken/below", "is a file, not a folder"]),
        (None, "", ["--automem-samples", "needs a path"]),
    ],
)
def test_a_bad_samples_folder_fails_before_the_first_test(
    pytester: pytest.Pytester, setup: str | None, value: str, words: list[str]
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    open('ran', 'w').close()\n")
    if setup == "file":
        (pytester.path / "taken").write_text("a file")
    elif setup == "link":
        (pytester.path / "elsewhere").mkdir()
        (pytester.path / "linked").symlink_to(pytester.path / "elsewhere")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--automem", f"--automem-samples={value}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert all(word in errors[0] for word in words), errors[0]
    assert not (pytester.path / "ran").exists()


def test_a_bad_ini_samples_folder_names_the_ini_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nautomem_samples = taken\n")
    (pytester.path / "taken").write_text("a file")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini automem_samples" in result.stderr.str()
    assert "is a file" in result.stderr.str()


#: Adds the dashboard's option where this checkout does not have it yet, and
#: has a failing test note the folder the session keeps samples in.
DASHBOARD_ONLY = """
import pytest

from pytest_automem.pytest_plugin.samples import SAMPLES_DIR_KEY


@pytest.fixture
def samples_dir(request):
    return request.config.stash[SAMPLES_DIR_KEY]


def pytest_sessionfinish(session):
    folder = session.config.stash[SAMPLES_DIR_KEY]
    with open("seen.txt", "w") as seen:
        seen.write(f"{folder}\\n{len(list(folder.iterdir()))}\\n")
"""


def test_with_the_dashboard_alone_samples_live_in_a_temporary_folder_until_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(DASHBOARD_ONLY)
    pytester.makepyfile(
        alloc=INNER_ALLOC,
        test_d="""
        from alloc import MB, spike

        def test_failing():
            spike(4 * MB)
            assert False

        def test_passing():
            pass
        """,
    )
    result = _run(pytester, "--automem", "--automem-html=report.html")
    result.assert_outcomes(passed=1, failed=1)
    folder_text, count = (pytester.path / "seen.txt").read_text().split()
    assert int(count) == 1  # the failing test's file, there while outputs are written
    assert not Path(folder_text).exists()  # and removed at the very end


def test_a_file_where_the_results_samples_folder_goes_names_the_results_option(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "out.samples").write_text("a file")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--automem", "--automem-json=out.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "--automem-json=out.json" in errors[0], result.stderr.str()
    assert "out.samples is a file" in errors[0]


#: Records when the session makes the samples durable, against the results file.
SYNC_SPY = """
import os

from pytest_automem.base import atomic

_real = atomic.sync_folder


def _spy(folder):
    with open("synced.txt", "a") as seen:
        seen.write(f"{len(os.listdir(folder))} {os.path.exists('out/results.json')}\\n")
    _real(folder)


atomic.sync_folder = _spy
"""


def test_samples_are_synced_once_before_the_results_file_names_them(
    pytester: pytest.Pytester,
) -> None:
    """Files written without their own fsync become durable in one sync,
    before a results file can point at them."""
    pytester.makeconftest(SYNC_SPY)
    pytester.makepyfile(alloc=INNER_ALLOC, test_mixed=MIXED)

    result = _run(pytester, "--automem", "--automem-json=out/results.json")

    result.assert_outcomes(passed=2, failed=1)
    assert (pytester.path / "synced.txt").read_text() == "2 False\n"
    assert len(_kept(pytester.path / "out" / "results.json")) == 2


def test_a_temporary_folder_a_killed_session_left_is_removed_by_the_next(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """kill -9 skips the session's own clean-up; the next dashboard-only
    session removes what it left, and nothing that is not ours."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = temporary / f"automem-samples-{gone}-abc123"
    left.mkdir()
    (left / "snapshot-20261206T040000.000000-1-t.jsonl").write_text("{}\n")
    theirs = temporary / f"automem-samples-{gone}-def456"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("not ours")
    alive = temporary / f"automem-samples-{os.getpid()}-ghi789"
    alive.mkdir()
    pytester.makepyfile(test_x="def test_x():\n    pass\n")

    result = _run(pytester, "--automem", "--automem-html=d.html")

    result.assert_outcomes(passed=1)
    assert sorted(p.name for p in temporary.iterdir()) == sorted([theirs.name, alive.name])
