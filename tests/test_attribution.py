"""Allocation attribution: leaks named at their file and line, our frames filtered out.

The leaking steps below mark their allocating line with a comment; the tests
find the line number from the source (never hard-coded), run the steps under
:func:`attribute_iterations` or :class:`AllocationTracer`, and check the
site, its size, the type counts, the bookkeeping and the finding.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _pytest
import pluggy
import pytest

import pytest_automem
from pytest_automem.automaton.store import Automaton
from pytest_automem.investigator import Severity
from pytest_automem.investigator.attribution import (
    NOISE_FLOOR_BYTES,
    AllocationTracer,
    Attribution,
    SiteGrowth,
    attribute_iterations,
)

PER_CALL = 100_000
ITERATIONS = 5
LEAK: list[Any] = []
#: A JSON document of ~30 KB whose parsed form is ~200 KB of objects.
DOCUMENT = json.dumps([{"id": f"object-{n}", "tags": ["a", "b"], "n": n} for n in range(600)])


class Blob:
    """A user class whose instances a step retains."""

    def __init__(self, n: int) -> None:
        self.n = n


def leak_step(step: int) -> None:
    LEAK.append(bytearray(PER_CALL))  # marker: bytes-leak


def json_leak_step(step: int) -> None:
    LEAK.append(json.loads(DOCUMENT))  # marker: json-leak


def blob_step(step: int) -> None:
    LEAK.extend(Blob(step) for _ in range(3))  # marker: blob-leak


def churn_step(step: int) -> None:
    data = [{"n": n, "s": str(n)} for n in range(500)]
    text = json.dumps(data)
    del data, text


def five_sites_step(step: int) -> None:
    LEAK.append(bytearray(50_000))
    LEAK.append(bytearray(40_000))
    LEAK.append(bytearray(30_000))
    LEAK.append(bytearray(20_000))
    LEAK.append(bytearray(10_000))


def raising_step(step: int) -> None:
    if step == 2:
        raise RuntimeError("step 2 fails")
    LEAK.append(bytearray(1000))


def marked_line(function: Callable[..., object], marker: str) -> int:
    """The line number of the line in ``function`` that carries ``# marker: <marker>``."""
    lines, first = inspect.getsourcelines(function)
    for offset, text in enumerate(lines):
        if f"# marker: {marker}" in text:
            return first + offset
    raise AssertionError(f"no line marked {marker!r} in {function.__name__}")


def function_lines(function: Callable[..., object]) -> range:
    lines, first = inspect.getsourcelines(function)
    return range(first, first + len(lines))


THIS_FILE = os.path.abspath(__file__)


def is_this_file(site: SiteGrowth) -> bool:
    return os.path.abspath(site.filename) == THIS_FILE


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    """No leftovers between tests, and no test runs with someone else's tracing on."""
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already tracing in this process")
    LEAK.clear()
    try:
        yield
    finally:
        LEAK.clear()
        if tracemalloc.is_tracing():
            tracemalloc.stop()
            pytest.fail("a test left tracemalloc running")


# -- sites -----------------------------------------------------------------------


def test_python_leak_is_attributed_to_its_exact_line() -> None:
    attribution = attribute_iterations(leak_step, start_step=0, iterations=ITERATIONS)

    top = attribution.sites[0]
    assert is_this_file(top)
    assert top.lineno == marked_line(leak_step, "bytes-leak")
    assert top.location().endswith(f"test_attribution.py:{top.lineno}")
    assert "LEAK.append" in top.source_line()
    expected = ITERATIONS * PER_CALL
    assert 0.8 * expected <= top.size_diff_bytes <= 1.2 * expected
    assert top.count_diff >= ITERATIONS
    assert attribution.traced_growth_bytes >= 0.8 * expected
    assert attribution.iterations == ITERATIONS
    assert attribution.group_by == "lineno"
    assert attribution.frames == 10


def test_leak_through_a_stdlib_call_is_attributed_to_the_callers_line() -> None:
    attribution = attribute_iterations(json_leak_step, start_step=0, iterations=ITERATIONS)

    top = attribution.sites[0]
    assert is_this_file(top), top
    assert top.lineno == marked_line(json_leak_step, "json-leak")
    assert "json.loads" in top.source_line()
    json_dir = os.path.dirname(os.path.abspath(json.__file__))
    assert not any(site.filename.startswith(json_dir) for site in attribution.sites)
    # The parsed documents are several hundred KB; nearly all of it lands at the line.
    assert top.size_diff_bytes >= 0.8 * attribution.traced_growth_bytes
    assert top.size_diff_bytes >= ITERATIONS * len(DOCUMENT)


def test_the_growth_of_a_user_class_shows_with_its_exact_count() -> None:
    attribution = attribute_iterations(blob_step, start_step=0, iterations=ITERATIONS)

    by_name = {t.type_name: t for t in attribution.types}
    blob = by_name[f"{__name__}.Blob"]
    assert blob.count == 3 * ITERATIONS
    assert blob.size_bytes >= blob.count * object.__sizeof__(Blob(0))
    assert attribution.sites[0].lineno == marked_line(blob_step, "blob-leak")


def test_a_step_that_allocates_and_frees_reports_nothing() -> None:
    attribution = attribute_iterations(churn_step, start_step=0, iterations=ITERATIONS)

    assert attribution.sites == ()
    assert attribution.total_sites == 0
    assert abs(attribution.traced_growth_bytes) < 4 * NOISE_FLOOR_BYTES
    assert attribution.types == ()
    assert attribution.finding(subject="churn") is None


def test_sites_below_the_noise_floor_are_left_out() -> None:
    attribution = attribute_iterations(
        raising_step, start_step=3, iterations=ITERATIONS, min_site_bytes=ITERATIONS * 2000
    )
    assert attribution.sites == ()  # 5 × ~1 KB retained, under the floor of 10 KB
    assert attribution.traced_growth_bytes >= ITERATIONS * 1000


def test_our_frames_and_pytests_are_never_sites(tmp_path: Path) -> None:
    automaton = Automaton(tmp_path / "automaton.jsonl")

    def step(n: int) -> None:
        automaton.add({"id": f"object-{n}", "payload": "x" * 10_000})  # marker: via-automaton

    attribution = attribute_iterations(
        step, start_step=0, iterations=ITERATIONS, min_site_bytes=1, top=1000
    )

    excluded = [
        os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep
        for module in (pytest_automem, _pytest, pluggy)
    ]
    assert attribution.sites
    for site in attribution.sites:
        assert not os.path.abspath(site.filename).startswith(tuple(excluded)), site
    # What the automaton keeps on the caller's behalf is the caller's line.
    assert attribution.sites[0].lineno == marked_line(step, "via-automaton")


# -- bookkeeping -------------------------------------------------------------------


def test_tracing_is_stopped_after_stop_when_the_tracer_started_it() -> None:
    tracer = AllocationTracer(frames=3)
    tracer.start()
    assert tracemalloc.is_tracing()
    assert tracemalloc.get_traceback_limit() == 3
    attribution = tracer.stop()
    assert not tracemalloc.is_tracing()
    assert attribution.frames == 3
    assert not attribution.tracing_was_on


def test_tracing_the_user_started_stays_on_with_its_frame_limit() -> None:
    tracemalloc.start(4)
    try:
        attribution = attribute_iterations(leak_step, start_step=0, iterations=2, frames=10)
        assert tracemalloc.is_tracing()
        assert tracemalloc.get_traceback_limit() == 4
    finally:
        tracemalloc.stop()
    assert attribution.tracing_was_on
    assert attribution.frames == 4
    assert attribution.sites[0].lineno == marked_line(leak_step, "bytes-leak")


def test_the_tracers_own_snapshots_are_not_sites() -> None:
    # Tracing started earlier: the snapshots hold many traces and are big.
    tracemalloc.start(10)
    try:
        keep = [{"n": n} for n in range(20_000)]
        attribution = attribute_iterations(
            lambda n: None, start_step=0, iterations=ITERATIONS, min_site_bytes=1
        )
        del keep
    finally:
        tracemalloc.stop()
    assert attribution.sites == (), attribution.sites
    assert abs(attribution.traced_growth_bytes) < NOISE_FLOOR_BYTES


def test_tracing_is_stopped_when_a_step_raises() -> None:
    with pytest.raises(RuntimeError, match="step 2 fails"):
        attribute_iterations(raising_step, start_step=0, iterations=ITERATIONS, warmup=1)
    assert not tracemalloc.is_tracing()

    with pytest.raises(RuntimeError, match="step 2 fails"):  # noqa: SIM117 - the tracer is the subject
        with AllocationTracer() as tracer:
            raising_step(2)
    assert not tracemalloc.is_tracing()
    assert tracer.attribution is None


def test_the_tracer_keeps_no_reference_to_user_objects() -> None:
    with AllocationTracer() as tracer:
        blobs = [Blob(n) for n in range(10)]
        watch = weakref.ref(blobs[0])
    assert tracer.attribution is not None
    assert any(t.type_name.endswith(".Blob") for t in tracer.attribution.types)
    del blobs
    gc.collect()
    assert watch() is None


def test_the_context_manager_puts_the_result_on_attribution() -> None:
    with AllocationTracer(count_types=False) as tracer:
        leak_step(0)
    assert isinstance(tracer.attribution, Attribution)
    assert tracer.attribution.sites[0].lineno == marked_line(leak_step, "bytes-leak")
    assert tracer.attribution.types == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": 0}, "frames"),
        ({"group_by": "filename"}, "group_by"),
        ({"top": 0}, "top"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AllocationTracer(**kwargs)


def test_stop_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        AllocationTracer().stop()


# -- traceback grouping ------------------------------------------------------------


def test_traceback_grouping_includes_the_test_function_frame() -> None:
    attribution = attribute_iterations(
        json_leak_step, start_step=0, iterations=ITERATIONS, group_by="traceback"
    )

    top = attribution.sites[0]
    assert top.lineno == marked_line(json_leak_step, "json-leak")
    assert top.traceback, "traceback grouping fills the traceback"
    frames = [frame.rsplit(":", 1) for frame in top.traceback]
    here = function_lines(test_traceback_grouping_includes_the_test_function_frame)
    assert any(os.path.abspath(name) == THIS_FILE and int(line) in here for name, line in frames)
    # Outermost first: the test function comes before the step, the json internals last.
    assert frames[-1][0].startswith(os.path.dirname(os.path.abspath(json.__file__)))
    assert not any("_pytest" in name or "pluggy" in name for name, _ in frames)
    assert attribution.group_by == "traceback"


# -- the finding --------------------------------------------------------------------


def test_the_finding_names_the_top_site_and_is_bounded() -> None:
    attribution = attribute_iterations(five_sites_step, start_step=0, iterations=ITERATIONS, top=3)

    assert len(attribution.sites) == 3
    assert attribution.total_sites >= 5
    finding = attribution.finding(subject="tests/test_x.py::test_leak")
    assert finding is not None
    assert finding.check == "allocation-sites"
    assert finding.severity is Severity.WARNING
    top = attribution.sites[0]
    assert top.location() in finding.summary
    assert finding.summary.startswith("tests/test_x.py::test_leak: ")
    assert " retained, most at " in finding.summary
    assert len(finding.details) <= 3
    assert finding.details[0].startswith(f"{top.location()}  +")
    assert "| LEAK.append(bytearray(50_000))" in finding.details[0]
    assert top.location() in finding.recommendation
    document = json.loads(json.dumps(finding.to_dict()))
    assert document["evidence"]["sites"][0]["lineno"] == top.lineno
    assert document["evidence"]["sites"][0]["source_line"] == "LEAK.append(bytearray(50_000))"


def test_the_finding_lists_types_after_sites() -> None:
    attribution = attribute_iterations(blob_step, start_step=0, iterations=ITERATIONS)
    finding = attribution.finding(subject="blobs")
    assert finding is not None
    assert len(finding.details) <= attribution.top
    assert any(line.endswith(f" in {3 * ITERATIONS:,} {__name__}.Blob") for line in finding.details)
    assert json.dumps(attribution.to_dict())


def test_a_point_marked_between_names_what_was_alive_then_not_at_the_end() -> None:
    with AllocationTracer(count_types=False) as tracer:
        held = bytearray(4 << 20)  # marker: held-at-peak
        tracer.mark_peak()
        del held
    attribution = tracer.attribution
    assert attribution is not None
    assert attribution.sites == ()  # freed before the end
    (alive, *_) = attribution.peak_sites
    assert is_this_file(alive)
    assert alive.lineno == marked_line(
        test_a_point_marked_between_names_what_was_alive_then_not_at_the_end, "held-at-peak"
    )
    assert alive.size_diff_bytes >= 4 << 20
    assert json.loads(json.dumps(attribution.to_dict()))["peak_sites"][0]["lineno"] == alive.lineno
