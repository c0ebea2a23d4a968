"""Stack dumps on a signal: where every thread was when memory crossed a limit."""

from __future__ import annotations

import inspect
import os
import sysconfig
import threading
from collections.abc import Callable, Iterator

import psutil
import pytest

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


def _signal_when_rss_crosses(limit_bytes: int, signal_number: int) -> threading.Thread:
    """Stands in for the sampler: signals this process once RSS passes the limit."""
    process = psutil.Process()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if process.memory_info().rss > limit_bytes:
                os.kill(os.getpid(), signal_number)
                return
            done.wait(0.0005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.done = done  # type: ignore[attr-defined]
    watcher.start()
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
        watcher.done.set()  # type: ignore[attr-defined]
        watcher.join()
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
