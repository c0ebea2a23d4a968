"""The recorder of a kept window's collections and trims, and their events on the samples' axis."""

from __future__ import annotations

import array
import gc
import itertools
from dataclasses import replace

from helpers import make_window

from pytest_automem.automaton.scenario import PolicyAction
from pytest_automem.measure.garbage import Collector, GcMode, allocator_callbacks
from pytest_automem.measure.gc_events import CollectionRecorder, RecordedEvent
from pytest_automem.pytest_plugin.samples import snapshot_events

MB = 1 << 20


def counting_rss() -> itertools.count[int]:
    """An RSS reader whose every reading is 1 MB more than the last: effects are visible."""
    return itertools.count(100 * MB, MB)


def test_in_the_call_only_full_collections_count_and_every_one_at_the_ends() -> None:
    readings = counting_rss()
    recorder = CollectionRecorder(lambda: next(readings))
    recorder.start()
    try:
        gc.collect(0)  # before the call: the plugin's own, whatever its generation
        recorder.call_started()
        gc.collect(0)
        gc.collect(1)
        gc.collect()
        recorder.call_ended()
        gc.collect(1)
    finally:
        events = recorder.stop()
    assert [(e.kind, e.generation) for e in events] == [("gc", 0), ("gc", 2), ("gc", 1)]
    assert all(e.rss_after_bytes == e.rss_before_bytes + MB for e in events)
    assert recorder.call_started_ns <= events[1].started_ns < recorder.call_ended_ns
    assert recorder.stop() == events  # idempotent, and nothing listens any more
    gc.collect()
    assert len(recorder.stop()) == 3


def test_a_trim_is_recorded_with_its_effect() -> None:
    recorder = CollectionRecorder(lambda: 5 * MB)
    recorder.start()
    try:
        Collector(GcMode.FULL).release_allocator_memory()
    finally:
        (event,) = recorder.stop()
    assert event.kind == "trim" and event.rss_before_bytes == event.rss_after_bytes == 5 * MB
    assert recorder._on_trim not in allocator_callbacks


def test_collections_of_the_call_beyond_the_cap_are_counted_not_kept() -> None:
    recorder = CollectionRecorder(lambda: 0, max_events=2)
    recorder.start()
    try:
        recorder.call_started()
        for _ in range(5):
            gc.collect()
        recorder.call_ended()
        gc.collect()  # the plugin's end collection is kept beyond the cap
    finally:
        events = recorder.stop()
    assert len(events) == 3 and recorder.dropped == 3


def test_events_share_the_samples_time_axis_and_a_policy_collection_is_one_event() -> None:
    window = replace(
        make_window(),
        sample_times_ns=array.array("q", [1_000_000_000, 1_001_000_000, 1_002_000_000]),
        sample_rss_bytes=array.array("q", [10 * MB, 12 * MB, 11 * MB]),
    )
    before_call = RecordedEvent(999_000_000, "gc", 10 * MB, 9 * MB, generation=1)
    inside_policy = RecordedEvent(1_001_200_000, "gc", 12 * MB, 11 * MB, generation=2)
    after_call = RecordedEvent(1_003_000_000, "trim", 11 * MB, 10 * MB)
    nothing_to_trim = RecordedEvent(1_003_500_000, "trim", 10 * MB, 10 * MB, released=False)
    policy = PolicyAction(1_001_100_000, 1_001_900_000, 12 * MB, 11 * MB, "gc", "automaton policy")

    class Scenario:
        policy_actions = (policy,)

    events = snapshot_events(
        window,
        opened_ns=998_000_000,
        recorded=[before_call, inside_policy, after_call, nothing_to_trim],
        call_started_ns=999_500_000,
        call_ended_ns=1_002_500_000,
        scenarios=[Scenario()],  # type: ignore[list-item]
    )
    by_time = sorted(events, key=lambda e: e.t_ms)
    assert [(e.t_ms, e.kind) for e in by_time] == [(-1.0, "gc"), (1.1, "gc"), (3.0, "trim")]
    assert "before the call" in by_time[0].detail and "after the call" in by_time[2].detail
    assert by_time[1].detail == "automaton policy" and by_time[1].effect_bytes == -MB
