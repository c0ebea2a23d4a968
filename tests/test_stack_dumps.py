"""Stack dumps on a signal: where every thread was when memory crossed a limit."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from pytest_automem.measure import sampler_child
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.sampler_child import MAX_TRIPS
from pytest_automem.measure.stack_dumps import (
    STACK_SIGNAL,
    Frame,
    Harness,
    StackRecorder,
    parse_dumps,
)

MB = 1 << 20
STDLIB = sysconfig.get_paths()["stdlib"]
SITE = sysconfig.get_paths()["purelib"]
HARNESS = Harness(stdlib_dirs=(STDLIB,), site_dirs=(SITE,), package_dirs=("/h/_pytest",))

TWO_DUMPS = f'''\
Thread 0x00007f417c0bb6c0 (most recent call first):
  File "/app/blob.py", line 18 in build
  File "{STDLIB}/threading.py", line 982 in run

Current thread 0x00007f417ce1fb80 (most recent call first):
  File "{STDLIB}/threading.py", line 327 in wait
  File "/app/test_blob.py", line 22 in test_blob
  File "/h/_pytest/python.py", line 157 in pytest_pyfunc_call

Current thread 0x00007f417c0bb6c0 (most recent call first):
  File "{SITE}/numpy/core.py", line 7 in zeros
  File "/app/blob.py", line 19 in build
  <no Python frame>
Thread 0x00007f417ce1fb80 (most recent call first):
  File "/app/test_blob.py", line ??? in test_blob
'''


def test_dumps_split_where_a_thread_repeats_with_frames_innermost_first() -> None:
    first, second = parse_dumps(TWO_DUMPS, HARNESS)
    worker, main = first.threads
    assert worker.frames[0] == Frame("/app/blob.py", 18, "build")
    assert not worker.is_signalled_thread and main.is_signalled_thread
    assert main.user_frame == Frame("/app/test_blob.py", 22, "test_blob")
    # The worker ran its own line; the main thread only waited in threading.
    assert first.likely_thread() is worker
    # Code installed in site-packages is the user's, not the standard library's.
    assert second.threads[0].user_frame == Frame(f"{SITE}/numpy/core.py", 7, "zeros")
    assert second.threads[1].frames == (Frame("/app/test_blob.py", 0, "test_blob"),)


def test_a_dump_cut_short_keeps_the_frames_written_so_far() -> None:
    (dump,) = parse_dumps(TWO_DUMPS[:120], HARNESS)
    assert [len(stack.frames) for stack in dump.threads] == [1]


def test_harness_frames_are_not_the_users() -> None:
    assert HARNESS.owns(f"{STDLIB}/threading.py")
    assert HARNESS.owns("/h/_pytest/runner.py")
    assert HARNESS.owns("<frozen importlib._bootstrap>")
    assert not HARNESS.owns(f"{SITE}/mylib/app.py")
    assert not HARNESS.owns("/h/_pytest_helpers/app.py")


needs_signal = pytest.mark.skipif(
    STACK_SIGNAL is None, reason="no real-time signals for stack dumps (not Linux)"
)


@pytest.fixture
def recorder() -> Iterator[StackRecorder]:
    with StackRecorder() as armed:
        yield armed


_WATCHER = """
import os, sys, time
pid, limit_bytes, signal_number = (int(arg) for arg in sys.argv[1:])
page_bytes = os.sysconf("SC_PAGE_SIZE")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with open(f"/proc/{pid}/statm") as statm:
        if int(statm.read().split()[1]) * page_bytes > limit_bytes:
            os.kill(pid, signal_number)
            break
    time.sleep(0.0005)
"""


def _signal_when_rss_crosses(limit_bytes: int, signal_number: int) -> subprocess.Popen[bytes]:
    """Stands in for the sampler: another process, so it sees a spike made in one C call."""
    watcher = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, str(os.getpid()), str(limit_bytes), str(signal_number)]
    )
    time.sleep(0.2)  # the watcher is polling before the spike starts
    return watcher


def _line_of(function: Callable[[], object], marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if marker in line)


def _blob_in_one_c_call() -> int:
    blob = bytearray(300 * MB)  # the spike
    return len(blob)


def _spike_in_a_thread() -> int:
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(_blob_in_one_c_call()))
    worker.start()
    worker.join()
    return result[0]


@needs_signal
@pytest.mark.parametrize(
    "spike", [_blob_in_one_c_call, _spike_in_a_thread], ids=["c-call", "thread"]
)
def test_a_spike_is_dumped_at_its_line_while_it_happens(
    recorder: StackRecorder, spike: Callable[[], int]
) -> None:
    rss = psutil.Process().memory_info().rss
    watcher = _signal_when_rss_crosses(rss + 150 * MB, recorder.signal_number)
    try:
        spike()
    finally:
        watcher.kill()
        watcher.wait()
    (dump,) = recorder.take()
    likely = dump.likely_thread()
    assert likely is not None and likely.user_frame is not None
    assert likely.user_frame.path == __file__
    assert likely.user_frame.line == _line_of(_blob_in_one_c_call, "# the spike")
    assert likely.user_frame.function == "_blob_in_one_c_call"
    assert recorder.take() == ()


@needs_signal
def test_no_signal_no_dump_and_stop_restores_the_signal(recorder: StackRecorder) -> None:
    assert recorder.take() == ()
    recorder.stop()
    recorder.stop()
    assert recorder.take() == ()
    # A late signal, sent after the stop, must not end the process.
    os.kill(os.getpid(), recorder.signal_number)
    assert recorder.take() == ()


@needs_signal
def test_the_python_callback_runs_after_the_dump_and_cannot_raise(
    recorder: StackRecorder,
) -> None:
    calls: list[int] = []

    def callback() -> None:
        calls.append(len(calls))
        raise RuntimeError("must not reach the test")

    recorder.on_signal = callback
    os.kill(os.getpid(), recorder.signal_number)
    time.sleep(0.01)  # the handler runs between two bytecodes of this thread
    assert calls == [0]
    assert len(recorder.take()) == 1
    recorder.stop()
    assert recorder.on_signal is None
    os.kill(os.getpid(), recorder.signal_number)  # ignored now
    assert calls == [0]


def _build_floats() -> int:
    values = [float(i) for i in range(4_000_000)]  # the loop
    return len(values)


@needs_signal
@pytest.mark.parametrize(
    ("spike", "line_of"),
    [
        (_blob_in_one_c_call, lambda: _line_of(_blob_in_one_c_call, "# the spike")),
        (_spike_in_a_thread, lambda: _line_of(_blob_in_one_c_call, "# the spike")),
        (_build_floats, lambda: _line_of(_build_floats, "# the loop")),
    ],
    ids=["c-call", "thread", "python-loop"],
)
def test_a_window_dumps_every_stack_when_memory_crosses_its_threshold(
    spike: Callable[[], int], line_of: Callable[[], int]
) -> None:
    with MemoryMonitor(record_stacks=True) as monitor:
        window = monitor.window(stacks_above_bytes=60 * MB)
        spike()
        window.stop()
    dumps = window.stack_dumps
    assert dumps is not None and 1 <= len(dumps) <= MAX_TRIPS
    likely = dumps[0].likely_thread()
    assert likely is not None and likely.user_frame is not None
    assert (likely.user_frame.path, likely.user_frame.line) == (__file__, line_of())


@needs_signal
def test_no_threshold_no_dump_and_a_stopped_window_stops_the_signals() -> None:
    with MemoryMonitor(record_stacks=True) as monitor:
        plain = monitor.window()
        _blob_in_one_c_call()
        plain.stop()
        assert plain.stack_dumps is None
        armed = monitor.window(stacks_above_bytes=60 * MB)
        armed.stop()
        assert armed.stack_dumps == ()
        _blob_in_one_c_call()
        time.sleep(0.05)  # many sampling intervals: a live wire would have fired
        sampler = monitor._sampler_handle
        assert sampler is not None and sampler.trips_sent() == 0


def test_a_monitor_of_another_process_records_no_stacks() -> None:
    with MemoryMonitor(os.getppid(), record_stacks=True) as monitor:
        window = monitor.window(stacks_above_bytes=1)
        window.stop()
    assert window.stack_dumps is None


def test_the_trip_wire_signals_at_the_crossing_then_at_new_highs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(sampler_child.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    buffer = bytearray(sampler_child.ring_size_bytes(16))
    sampler_child.HEADER.pack_into(buffer, 0, sampler_child.MAGIC, 16, 1, 0, 0, 0, 0, 0)
    wire = sampler_child.TripWire(sampler_child.Ring(buffer), pid=42, signal_number=50)

    def arm(rss_bytes: int, generation: int) -> None:
        sampler_child.COUNT_FIELD.pack_into(buffer, sampler_child.OFFSET_TRIP_RSS, rss_bytes)
        sampler_child.COUNT_FIELD.pack_into(
            buffer, sampler_child.OFFSET_TRIP_GENERATION, generation
        )

    def trips_for(values: list[int]) -> int:
        sent.clear()
        for value in values:
            wire.check(value)
        return len(sent)

    assert trips_for([500, 1000]) == 0  # never armed
    arm(100 * MB, 1)
    assert trips_for([99 * MB, 100 * MB]) == 0  # at the threshold is not past it
    assert trips_for([101 * MB]) == 1 and sent == [(42, 50)]
    assert trips_for([110 * MB]) == 0  # not a new high by an eighth
    assert trips_for([120 * MB, 200 * MB, 300 * MB, 400 * MB, 500 * MB]) == MAX_TRIPS - 1
    arm(0, 2)  # disarmed
    assert trips_for([600 * MB]) == 0
    assert sampler_child.COUNT_FIELD.unpack_from(buffer, sampler_child.OFFSET_TRIPS_SENT)[0] == 0
    arm(100 * MB, 3)  # re-armed: a new generation starts the count again
    assert trips_for([150 * MB]) == 1
