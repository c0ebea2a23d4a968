"""``automem analyze`` end to end: inputs, the three formats, exit codes, errors.

Most runs go through ``cli.main`` in process (the same code the console
script runs); the exit-code contract and a real ``automem monitor
--snapshots`` file are checked with real processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import assert_input_error, run_automem
from test_snapshot_analysis import EVENTS, LOW, MB, MEDIUM, linear, write_file

from pytest_automem.base.defaults import ANALYSIS_SNAPSHOTS_SHOWN
from pytest_automem.cli import main
from pytest_automem.measure.pressure import PressureLevel
from pytest_automem.snapshots.files import snapshot_path


def snapshot_in(folder: Path, label: str, samples, events=(), **options) -> Path:
    """A snapshot file in ``folder`` under a name the writers give."""
    folder.mkdir(exist_ok=True)
    return write_file(snapshot_path(folder, label, 42), samples, events, **options)


def analyze(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, *names: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("automem analyze: error: ")
    for name in names:
        assert name in lines[0]
    return lines[0]


# --------------------------------------------------------------------------- formats


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder: a 12 MB/s grower, a 2 MB/s one with events, a notes file, a near-miss name."""
    folder = tmp_path / "snaps"
    snapshot_in(folder, "fast", linear(12 * MB, 3.0))
    snapshot_in(folder, "slow", linear(2 * MB, 3.0), EVENTS, header={"test": "t.py::test_a|b"})
    (folder / "notes.txt").write_text("not a snapshot\n", encoding="utf-8")
    (folder / "snapshot-mine.jsonl").write_text("not ours either\n", encoding="utf-8")
    return folder


def test_text_report(capsys: pytest.CaptureFixture[str], mixed: Path) -> None:
    code, out, err = analyze(capsys, mixed)

    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith("automem analyze: 2 snapshots, ")
    assert "  verdict: 2 critical, 0 warnings" in lines
    assert (
        "  pressure (share of time): LOW 100.0%, MEDIUM 0.0%, HIGH 0.0%, CRITICAL 0.0%; "
        "HIGH or above never"
    ) in lines
    assert any(
        line.startswith("  steepest sustained growth: 12.") and "MB/s (critical) in " in line
        for line in lines
    )
    assert (
        "  events: gc 2 (freed 110.0 MB), level 1, spawn 1 (added 80.0 MB), trim 1 (freed 10.0 MB)"
        in lines
    )
    assert any("gc at 200.00 ms: 300.0 MB → 200.0 MB, freed 100.0 MB" in line for line in lines)
    assert any(
        line.startswith("  - [CRITICAL] ") and "sustained growth 12." in line for line in lines
    )
    # Worst first: the fast grower, then the slow one with its test's id.
    section = lines[lines.index("snapshots, worst first:") + 1 :]
    names = [line for line in section if line.startswith("  /")]
    assert "fast" in names[0] and "[t.py::test_a|b]" in names[1]
    assert "notes.txt" not in out and "snapshot-mine" not in out


def test_json_report_holds_every_figure(capsys: pytest.CaptureFixture[str], mixed: Path) -> None:
    code, out, _ = analyze(capsys, mixed, "--format", "json")

    assert code == 1
    document = json.loads(out)
    assert document["version"] == 1
    assert document["marks"]["rate_critical_bytes_per_s"] == 10 * MB
    assert document["verdict"]["worst"] == "CRITICAL"
    assert document["all"]["snapshots"] == 2
    assert document["all"]["pressure"]["share"]["LOW"] == 1.0
    by_label = {s["label"].split("-")[-1]: s for s in document["snapshots"]}
    fast, slow = by_label["fast"], by_label["slow"]
    assert fast["slope"]["band"] == "CRITICAL"
    assert fast["sustained"]["bytes_per_s"] == pytest.approx(12 * MB, rel=0.05)
    assert slow["slope"]["bytes_per_s"] == pytest.approx(2 * MB, rel=1e-3)
    assert slow["test"] == "t.py::test_a|b"
    assert [e["freed_bytes"] for e in slow["events"]] == [
        100 * MB,
        -80 * MB,
        10 * MB,
        10 * MB,
        None,
    ]
    assert {m["figure"] for m in fast["marks_passed"]} == {"slope", "sustained_rate"}
    assert slow["marks_passed"] == []


def test_markdown_report(capsys: pytest.CaptureFixture[str], mixed: Path) -> None:
    code, out, _ = analyze(capsys, mixed, "--format", "markdown")

    assert code == 1
    assert out.startswith("## automem analyze: 2 snapshots, ")
    assert "### Marks passed" in out
    assert "| figure | value |" in out
    # The test id's pipe cannot end its table cell.
    [row] = [line for line in out.splitlines() if "test_a" in line and line.startswith("| `")]
    assert "t.py::test_a\\|b" in row
    header = next(line for line in out.splitlines() if line.startswith("| snapshot |"))
    assert row.count(" | ") == header.count(" | ")


def test_output_file_is_written_instead_of_stdout(
    capsys: pytest.CaptureFixture[str], mixed: Path, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n", encoding="utf-8")
    link = tmp_path / "report.json"
    link.symlink_to(target)

    code, out, err = analyze(capsys, mixed, "--format", "json", "--output", link)

    assert (code, out, err) == (1, "", "")
    assert not link.is_symlink()
    assert json.loads(link.read_text(encoding="utf-8"))["all"]["snapshots"] == 2
    assert target.read_text(encoding="utf-8") == "keep me\n"


def test_output_that_cannot_be_written_is_one_line(
    capsys: pytest.CaptureFixture[str], mixed: Path, tmp_path: Path
) -> None:
    code, out, err = analyze(capsys, mixed, "--output", tmp_path)

    assert (code, out) == (2, "")
    one_error_line(err, "--output", str(tmp_path))


def test_output_on_a_snapshot_it_reads_is_refused_and_the_snapshot_kept(
    capsys: pytest.CaptureFixture[str], mixed: Path
) -> None:
    """The report written over its own input would lose the samples."""
    snapshot = sorted(mixed.glob("snapshot-2*.jsonl"))[0]
    before = snapshot.read_text(encoding="utf-8")

    code, out, err = analyze(capsys, mixed, "--output", snapshot)

    assert (code, out) == (2, "")
    one_error_line(err, "--output", str(snapshot), "reads")
    assert snapshot.read_text(encoding="utf-8") == before


def test_text_and_markdown_are_bounded_and_say_what_they_left_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    total = ANALYSIS_SNAPSHOTS_SHOWN + 15
    for index in range(total):
        rate = 7 * MB if index < 3 else 0  # three warnings
        snapshot_in(folder, f"w{index}", linear(rate, 1.2), [EVENTS[1]] * 2)

    code, text, _ = analyze(capsys, folder)
    _, markdown, _ = analyze(capsys, folder, "--format", "markdown")
    _, as_json, _ = analyze(capsys, folder, "--format", "json")

    assert code == 0  # warnings only
    more = f"… and {total - ANALYSIS_SNAPSHOTS_SHOWN} more snapshots (0 of them passed a mark)"
    assert more in text and more in markdown
    assert f"… and {2 * total - 10} more events" in text
    assert text.count("samples over") == ANALYSIS_SNAPSHOTS_SHOWN
    assert len(json.loads(as_json)["snapshots"]) == total


# --------------------------------------------------------------------------- exit codes


def test_warnings_exit_0_unless_fail_on_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    high = [(0.0, 300 * MB, PressureLevel.HIGH), (1000.0, 300 * MB, PressureLevel.HIGH)]
    snapshot_in(tmp_path / "s", "high", high)

    code, out, _ = analyze(capsys, tmp_path / "s")
    assert code == 0
    assert "[WARNING]" in out and "reached HIGH pressure (1.00 s at HIGH or above)" in out

    code, _, _ = analyze(capsys, tmp_path / "s", "--fail-on", "warning")
    assert code == 1


def test_fine_snapshots_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = snapshot_in(tmp_path / "s", "calm", [(0.0, 60 * MB, MEDIUM), (2000.0, 60 * MB, LOW)])

    code, out, _ = analyze(capsys, path, "--fail-on", "warning")

    assert code == 0
    assert "  verdict: no mark passed" in out.splitlines()


def test_files_without_samples_are_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    header_only = write_file(tmp_path / "empty.jsonl", [])

    code, out, _ = analyze(capsys, header_only)

    assert code == 0
    assert "    no samples" in out.splitlines()
    assert "  pressure (share of time): no time recorded (fewer than two samples)" in out


def test_exit_codes_from_a_real_process(tmp_path: Path) -> None:
    critical = snapshot_in(tmp_path / "c", "hot", [(0.0, 600 * MB, PressureLevel.CRITICAL)])
    fine = snapshot_in(tmp_path / "f", "calm", [(0.0, 6 * MB, LOW), (900.0, 6 * MB, LOW)])

    assert run_automem("analyze", fine).returncode == 0
    hot = run_automem("analyze", critical)
    assert hot.returncode == 1, hot.stderr
    assert "[CRITICAL]" in hot.stdout and "reached CRITICAL pressure" in hot.stdout
    assert_input_error(run_automem("analyze", tmp_path / "missing.jsonl"), "missing.jsonl")


# --------------------------------------------------------------------------- inputs


def test_empty_folder_is_an_input_error_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.jsonl").write_text("{}\n", encoding="utf-8")

    code, out, err = analyze(capsys, tmp_path / "empty")

    assert (code, out) == (2, "")
    one_error_line(err, str(tmp_path / "empty"), "no snapshot files")


def test_bad_line_names_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = snapshot_in(tmp_path / "s", "bad", [(0.0, MB, LOW)], tail='{"t_ms": 5}\n')

    code, out, err = analyze(capsys, path)

    assert (code, out) == (2, "")
    one_error_line(err, f"{path}:3", "rss_bytes")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("results.json", '{"version": 1, "tests": {}}\n', ("a results file", "automem report")),
        ("pretty.json", '{\n  "version": 1,\n  "tests": {}\n}\n', ("a results file",)),
        ("automaton.jsonl", '{"id": "a"}\n', ("an automaton file", "investigate")),
        ("other.jsonl", '{"name": "a"}\n', (":1: first line is not a snapshot header",)),
    ],
)
def test_a_file_of_another_kind_is_an_input_error_naming_its_kind(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str,
    words: tuple[str, ...],
) -> None:
    """A results file (written over several lines) or an automaton file given
    to analyze by mistake is named as what it is, with the command that reads it."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    code, _, err = analyze(capsys, path)

    assert code == 2
    one_error_line(err, str(path), *words)


def test_a_hostile_name_stays_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_file(tmp_path / "a\nb.jsonl", [(0.0, MB, LOW)], tail="nonsense\n")

    code, _, err = analyze(capsys, path)

    assert code == 2
    one_error_line(err, "a b.jsonl:3")


def test_files_and_folders_together_each_file_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = snapshot_in(tmp_path / "s", "one", linear(0, 1.0))
    log = write_file(
        tmp_path / "events.jsonl",
        linear(0, 1.0),
        [EVENTS[1]],
        header={"source": "spawner"},
        tail='{"t_ms": 1300.0, "event": "sp',
    )

    code, out, _ = analyze(capsys, tmp_path / "s", first, log, "--format", "json")

    assert code == 0
    document = json.loads(out)
    assert [s["file"] for s in document["snapshots"]] == [str(first), str(log)]
    spawner = document["snapshots"][1]
    assert (spawner["source"], spawner["torn_tail"]) == ("spawner", True)
    assert document["all"]["event_totals"] == [
        {"kind": "gc", "count": 1, "with_effect": 1, "freed_bytes": 100 * MB}
    ]


# --------------------------------------------------------------------------- a real monitor file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_real_monitor_snapshot(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    command = [sys.executable, "-c", "import time; x = b'x' * (60 << 20); time.sleep(1.2)"]
    watched = run_automem(
        "monitor", "--every", "0", "--snapshots", snaps, "--thresholds", "20MB,40MB,1GB",
        "--", *command,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr

    result = run_automem("analyze", snaps, "--format", "json")

    assert result.returncode == 0, result.stderr
    [snapshot] = json.loads(result.stdout)["snapshots"]
    assert snapshot["samples"] > 500
    assert snapshot["max_pressure"] == "HIGH"
    assert snapshot["pressure"]["seconds"]["HIGH"] > 0.5
    assert snapshot["sustained"] is not None
    warned = run_automem("analyze", snaps, "--fail-on", "warning")
    assert warned.returncode == 1
    assert "reached HIGH pressure" in warned.stdout
