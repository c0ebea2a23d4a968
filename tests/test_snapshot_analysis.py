"""Snapshot analysis figures on synthetic snapshot files with known answers.

Each file is written line by line as the writers write them (header, sample
lines, event lines), with irregular sample times where the answer depends on
weighting by time rather than by count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_automem.investigator.findings import Severity
from pytest_automem.measure.pressure import PressureLevel
from pytest_automem.snapshots.analysis import analyze_snapshot, analyze_snapshots
from pytest_automem.snapshots.files import (
    SnapshotEvent,
    SnapshotFormatError,
    read_snapshot,
    sample_line,
)
from pytest_automem.verdicts.analysis import RateBand, judge_analysis, rate_band

MB = 1 << 20
LOW, MEDIUM, HIGH, CRITICAL = PressureLevel

#: One sample: (t_ms, rss_bytes, level) or (t_ms, rss_bytes, level, objects).
Sample = tuple


def write_file(
    path: Path,
    samples: Sequence[Sample],
    events: Sequence[SnapshotEvent] = (),
    *,
    version: int = 2,
    header: dict | None = None,
    tail: str = "",
) -> Path:
    """A snapshot file as the writers lay it out; ``tail`` is appended raw."""
    head = {"kind": "window", "version": version, "label": path.stem, "pid": 1, **(header or {})}
    lines = [json.dumps(head) + "\n"]
    for t_ms, rss, level, *objects in samples:
        lines.append(sample_line(t_ms, rss, rss, level, *(objects or [None])))
    lines.extend(event.to_line() for event in events)
    path.write_text("".join(lines) + tail, encoding="utf-8")
    return path


def linear(rate_bytes_per_s: float, seconds: float, *, base: int = 100 * MB) -> list[Sample]:
    """Samples of a straight line, at irregular times (1 ms, then 7 ms, then 3 ms, ...)."""
    steps_ms = (1.0, 7.0, 3.0, 0.5, 12.0)
    samples, t_ms, index = [], 0.0, 0
    while t_ms <= seconds * 1000:
        samples.append((t_ms, int(base + rate_bytes_per_s * t_ms / 1000), LOW))
        t_ms += steps_ms[index % len(steps_ms)]
        index += 1
    return samples


def analyzed(tmp_path: Path, samples: Sequence[Sample], events: Sequence[SnapshotEvent] = ()):
    return analyze_snapshot(read_snapshot(write_file(tmp_path / "s.jsonl", samples, events)))


# --------------------------------------------------------------------------- pressure


def test_pressure_distribution_weighs_time_not_samples(tmp_path: Path) -> None:
    # 1 s at each level: one LOW sample, 500 MEDIUM samples, one HIGH sample,
    # three CRITICAL samples; the last sample ends the curve.
    samples = [(0.0, 10 * MB, LOW)]
    samples += [(1000.0 + 2 * i, 60 * MB, MEDIUM) for i in range(500)]
    samples += [(2000.0, 300 * MB, HIGH)]
    samples += [(3000.0, 600 * MB, CRITICAL), (3100.0, 600 * MB, CRITICAL)]
    samples += [(3950.0, 600 * MB, CRITICAL), (4000.0, 10 * MB, LOW)]

    result = analyzed(tmp_path, samples)

    for level in PressureLevel:
        assert result.pressure.share(level) == pytest.approx(0.25)
    assert result.pressure.high_or_above_s == pytest.approx(2.0)
    assert result.pressure.critical_s == pytest.approx(1.0)
    assert result.duration_s == pytest.approx(4.0)
    assert result.max_pressure is CRITICAL
    assert result.samples == len(samples)


def test_a_lone_sample_has_no_time_but_its_level_counts(tmp_path: Path) -> None:
    result = analyzed(tmp_path, [(0.0, 600 * MB, CRITICAL)])

    assert result.pressure.total_s == 0
    assert result.pressure.share(CRITICAL) is None
    assert result.slope_bytes_per_s is None
    assert result.sustained is None
    [mark] = judge_analysis([result]).marks
    assert (mark.severity, mark.figure) == (Severity.CRITICAL, "pressure")


def test_a_file_without_samples_has_only_its_events(tmp_path: Path) -> None:
    result = analyzed(tmp_path, [], [SnapshotEvent(5.0, "crash", 1000, detail="exit 3")])

    assert (result.samples, result.peak_rss_bytes, result.max_pressure) == (0, None, None)
    assert result.pressure.total_s == 0
    assert [e.event.kind for e in result.events] == ["crash"]
    assert judge_analysis([result]).marks == ()


def test_samples_out_of_time_order_are_put_in_order(tmp_path: Path) -> None:
    samples = [(2000.0, 10 * MB, LOW), (0.0, 300 * MB, HIGH), (1000.0, 10 * MB, LOW)]

    result = analyzed(tmp_path, samples)

    assert result.pressure.share(HIGH) == pytest.approx(0.5)


# --------------------------------------------------------------------------- growth


@pytest.mark.parametrize(
    ("rate", "band", "severity"),
    [(2 * MB, RateBand.ABOVE_TARGET, None), (12 * MB, RateBand.CRITICAL, Severity.CRITICAL)],
    ids=["2MB/s", "12MB/s"],
)
def test_known_slope_overall_and_sustained(
    tmp_path: Path, rate: int, band: RateBand, severity: Severity | None
) -> None:
    result = analyzed(tmp_path, linear(rate, 5.0))

    assert result.slope_bytes_per_s == pytest.approx(rate, rel=1e-3)
    assert result.sustained is not None
    assert result.sustained.rate_bytes_per_s == pytest.approx(rate, rel=0.05)
    assert result.sustained.window_s == 0.5
    assert rate_band(result.slope_bytes_per_s) is band
    assert judge_analysis([result]).worst is severity


def test_rate_marks_at_their_boundaries() -> None:
    assert rate_band(0.99 * MB) is RateBand.TARGET
    assert rate_band(1 * MB) is RateBand.ABOVE_TARGET
    assert rate_band(5 * MB) is RateBand.ABOVE_TARGET
    assert rate_band(5 * MB + 1) is RateBand.WARNING
    assert rate_band(10 * MB) is RateBand.WARNING
    assert rate_band(10 * MB + 1) is RateBand.CRITICAL


def test_a_single_sample_spike_or_dip_is_no_sustained_rate(tmp_path: Path) -> None:
    # 3 s flat at 1 ms, one sample 500 MB higher, one 90 MB lower.
    samples = [(float(t), 100 * MB, LOW) for t in range(3001)]
    samples[1500] = (1500.0, 600 * MB, LOW)
    samples[2200] = (2200.0, 10 * MB, LOW)

    result = analyzed(tmp_path, samples)

    assert result.sustained is not None
    assert result.sustained.rate_bytes_per_s == 0
    assert result.slope_bytes_per_s == 0
    assert judge_analysis([result]).marks == ()


def test_a_step_reads_as_its_size_over_the_rate_window(tmp_path: Path) -> None:
    # 100 MB more from 1.5 s on (kept): 100 MB per 0.5 s window, not per millisecond.
    samples = [(float(t), (100 if t < 1500 else 200) * MB, LOW) for t in range(0, 3001, 2)]

    result = analyzed(tmp_path, samples)

    assert result.sustained is not None
    assert result.sustained.rate_bytes_per_s == pytest.approx(200 * MB, rel=0.02)


def test_no_rate_below_the_rate_window(tmp_path: Path) -> None:
    short = analyzed(tmp_path, linear(50 * MB, 0.4))
    assert (short.slope_bytes_per_s, short.sustained) == (None, None)

    medium = analyzed(tmp_path, linear(50 * MB, 0.8))
    assert medium.slope_bytes_per_s == pytest.approx(50 * MB, rel=1e-3)
    assert medium.sustained is None


def test_warning_rate_is_a_warning_not_critical(tmp_path: Path) -> None:
    result = analyzed(tmp_path, linear(7 * MB, 3.0))

    verdict = judge_analysis([result])
    assert verdict.worst is Severity.WARNING
    assert not verdict.fails(Severity.CRITICAL)
    assert verdict.fails(Severity.WARNING)
    assert {mark.figure for mark in verdict.marks} == {"slope", "sustained_rate"}


# --------------------------------------------------------------------------- objects


def test_object_efficiency_weighted_by_time(tmp_path: Path) -> None:
    # 5 objects per MB for 3 s (two samples), 20 per MB for 1 s (five samples):
    # (5 * 3 + 20 * 1) / 4 = 8.75; by sample count it would be 15.7.
    samples = [(0.0, 100 * MB, LOW, 500), (1000.0, 100 * MB, LOW, 500)]
    samples += [(3000.0 + 200 * i, 100 * MB, LOW, 2000) for i in range(5)]
    samples += [(4000.0, 100 * MB, LOW)]

    result = analyzed(tmp_path, samples)

    assert result.objects_per_mb == pytest.approx(8.75)
    assert result.lowest_objects_per_mb == pytest.approx(5.0)
    [mark] = judge_analysis([result]).marks
    assert (mark.severity, mark.figure) == (Severity.WARNING, "objects_per_mb")


def test_no_efficiency_without_object_counts(tmp_path: Path) -> None:
    result = analyzed(tmp_path, linear(0, 1.0))

    assert result.objects_per_mb is None
    assert judge_analysis([result]).marks == ()


def test_efficiency_at_target_passes(tmp_path: Path) -> None:
    result = analyzed(tmp_path, [(0.0, 10 * MB, LOW, 100), (1000.0, 10 * MB, LOW, 100)])

    assert result.objects_per_mb == pytest.approx(10.0)
    assert judge_analysis([result]).marks == ()


# --------------------------------------------------------------------------- events

EVENTS = (
    SnapshotEvent(100.0, "trim", 150 * MB, 140 * MB, "10 objects"),
    SnapshotEvent(200.0, "gc", 300 * MB, 200 * MB),
    SnapshotEvent(300.0, "level", detail="MEDIUM -> HIGH"),
    SnapshotEvent(400.0, "spawn", 100 * MB, 180 * MB),
    SnapshotEvent(500.0, "gc", 200 * MB, 190 * MB),
)


def test_events_largest_effect_first_and_totals_per_kind(tmp_path: Path) -> None:
    result = analyzed(tmp_path, linear(0, 1.0), EVENTS)

    kinds = [(e.event.kind, e.freed_bytes) for e in result.events]
    assert kinds == [
        ("gc", 100 * MB),
        ("spawn", -80 * MB),
        ("trim", 10 * MB),
        ("gc", 10 * MB),
        ("level", None),
    ]
    together = analyze_snapshots([read_snapshot(result.path)])
    totals = {t.kind: (t.count, t.with_effect, t.freed_bytes) for t in together.event_totals}
    assert totals == {
        "gc": (2, 2, 110 * MB),
        "trim": (1, 1, 10 * MB),
        "spawn": (1, 1, -80 * MB),
        "level": (1, 0, 0),
    }
    assert together.event_totals[0].kind == "gc"


# --------------------------------------------------------------------------- file kinds


def test_version_1_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "v1.jsonl", linear(2 * MB, 2.0), version=1)

    result = analyze_snapshot(read_snapshot(path))

    assert result.events == ()
    assert result.slope_bytes_per_s == pytest.approx(2 * MB, rel=1e-3)


def test_torn_tail_is_left_out_and_said(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "events.jsonl",
        linear(0, 1.0),
        header={"source": "spawner"},
        tail='{"t_ms": 1200.0, "rss_by',
    )

    result = analyze_snapshot(read_snapshot(path))

    assert result.torn_tail
    assert result.source == "spawner"
    assert result.duration_s == pytest.approx(1.0, abs=0.02)


def test_plugin_header_names_the_test(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "t.jsonl",
        linear(0, 1.0),
        header={"test": "test_x.py::test_big", "source": "pytest", "downsampled_from": 9000},
    )

    result = analyze_snapshot(read_snapshot(path))

    assert (result.test, result.source, result.downsampled_from) == (
        "test_x.py::test_big",
        "pytest",
        9000,
    )


def test_all_together_sums_time_and_takes_the_steepest(tmp_path: Path) -> None:
    first = write_file(tmp_path / "a.jsonl", [(0.0, 10 * MB, LOW), (3000.0, 10 * MB, LOW)])
    second = write_file(tmp_path / "b.jsonl", linear(12 * MB, 1.5))
    third = write_file(
        tmp_path / "c.jsonl", [(0.0, 10 * MB, LOW, 50), (1000.0, 10 * MB, HIGH, 200)]
    )

    together = analyze_snapshots(read_snapshot(p) for p in (first, second, third))

    steep = together.snapshots[1].duration_s
    assert together.pressure.seconds_by_level[LOW] == pytest.approx(3.0 + steep + 1.0)
    assert together.steepest_sustained is not None
    assert together.steepest_sustained.path == second
    assert together.objects_per_mb == pytest.approx(5.0)
    assert judge_analysis(together.snapshots).worst is Severity.CRITICAL


@pytest.mark.parametrize(
    "line",
    [
        '{"t_ms": 1.0, "rss_bytes": 1' + "0" * 400 + ', "pressure": "LOW"}\n',
        '{"t_ms": 1e308, "rss_bytes": 1, "pressure": "LOW"}\n'
        '{"t_ms": -1e308, "rss_bytes": 1, "pressure": "LOW"}\n',
        '{"t_ms": 1.0, "rss_bytes": 1, "pressure": "LOW", "objects": 1' + "0" * 400 + "}\n",
        '{"t_ms": 1.0, "event": "gc", "rss_before_bytes": 1' + "0" * 400 + "}\n",
    ],
    ids=["huge-rss", "time-span", "huge-objects", "huge-event"],
)
def test_figures_out_of_range_are_a_format_error_naming_the_file(tmp_path: Path, line: str) -> None:
    path = write_file(tmp_path / "bad.jsonl", [(0.0, 1, LOW)], tail=line)

    with pytest.raises(SnapshotFormatError, match=r"bad\.jsonl"):
        analyze_snapshot(read_snapshot(path))


def test_hours_of_sparse_samples_are_scanned_in_bounded_steps(tmp_path: Path) -> None:
    # Three hours: more window starts than ANALYSIS_MAX_WINDOWS at a tenth of
    # a window, so evenly spaced starts; the 100 MB step is still found.
    samples = [(0.0, 100 * MB, LOW), (5_000_000.0, 200 * MB, LOW), (10_800_000.0, 200 * MB, LOW)]

    result = analyzed(tmp_path, samples)

    assert result.sustained is not None
    assert result.sustained.rate_bytes_per_s == pytest.approx(200 * MB)
    assert result.pressure.share(LOW) == 1.0
