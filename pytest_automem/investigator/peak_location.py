"""Where a test was when its memory crossed the peak budget, and at its highest.

The stacks come from the sampler's trip wire
(:mod:`pytest_automem.measure.stack_dumps`): the first dump is the moment
memory passed the budget; the sampler sends again at each new high an
eighth above the last, up to 4 dumps, so the last is the nearest it came to
the highest sample.  The
finding names the user's own frame of the thread most likely to have
allocated (one running the user's code rather than waiting), so a reader
goes straight to the line.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..base.units import format_size
from ..measure.stack_dumps import Frame, Harness, StackDump, ThreadStack
from .attribution import SiteGrowth, display_path
from .findings import Finding, Severity

__all__ = ["PEAK_LOCATION_CHECK", "crossing_place", "locate_peak"]

PEAK_LOCATION_CHECK = "peak-location"
#: Frames of the likely thread shown under the summary, innermost first.
_FRAMES_SHOWN = 8


def locate_peak(
    dumps: Sequence[StackDump], limit_bytes: int, sites_alive: Sequence[SiteGrowth] = ()
) -> Finding | None:
    """The finding that names where memory crossed ``limit_bytes`` (None: no dump).

    ``sites_alive``: for a traced call, where the memory alive at the last
    dump was allocated (nearest the highest sample), largest first.
    """
    crossing = _first_located(dumps)
    if crossing is None:
        return None
    thread, frame = crossing
    highest = _first_located(dumps[-1:]) if len(dumps) > 1 else None
    details = [f"stack of thread {thread.thread_id:#x} when memory crossed the budget:"]
    details += _stack_lines(thread)
    if highest is not None and highest[1] != frame:
        details.append(f"at the highest sample: {_where(highest[1])}")
        details += _stack_lines(highest[0])
    details += _other_threads(dumps[0], thread)
    if sites_alive:
        details.append("allocated and alive at the last dump (tracing):")
        details += [f"  {site.describe()}" for site in sites_alive]
    return Finding(
        check=PEAK_LOCATION_CHECK,
        severity=Severity.WARNING,
        summary=f"memory crossed the peak budget ({format_size(limit_bytes)}) at {_where(frame)}",
        evidence={
            "file": frame.path,
            "line": frame.line,
            "function": frame.function,
            "thread": thread.thread_id,
            "dumps": len(dumps),
            "highest": None if highest is None else _frame_dict(highest[1]),
            "sites_alive": [site.to_dict() for site in sites_alive],
        },
        recommendation=f"look at what {frame.function} holds at once at that line: build "
        "it in pieces, stream it, or free what is done with earlier; raise the budget "
        "if this much is expected",
        details=tuple(details),
    )


def crossing_place(dumps: Sequence[StackDump]) -> str | None:
    """``path:line in function`` of the user's frame when memory crossed, if dumped."""
    crossing = _first_located(dumps)
    return None if crossing is None else _where(crossing[1])


def _first_located(dumps: Sequence[StackDump]) -> tuple[ThreadStack, Frame] | None:
    for dump in dumps:
        thread = dump.likely_thread()
        if thread is not None and thread.user_frame is not None:
            return thread, thread.user_frame
    return None


def _stack_lines(thread: ThreadStack) -> list[str]:
    """Innermost first, the user's own frame marked with an arrow, up to where
    the harness (pytest, pluggy, the standard library) takes over: the frames
    that ran the test, not the ones that called it."""
    shown = _frames_to_show(thread)
    lines = [f"  {'->' if frame is thread.user_frame else '  '} {_where(frame)}" for frame in shown]
    hidden = len(thread.frames) - len(shown)
    if hidden > 0:
        lines.append(f"     … {hidden} outer frames (the test harness) not shown")
    return lines


def _frames_to_show(thread: ThreadStack) -> tuple[Frame, ...]:
    """The frames down to the last user frame before the harness calls it."""
    owns = _harness().owns
    seen_user = False
    for index, frame in enumerate(thread.frames[:_FRAMES_SHOWN]):
        if not owns(frame.path):
            seen_user = True
        elif seen_user:
            return thread.frames[:index]
    return thread.frames[:_FRAMES_SHOWN]


@functools.cache
def _harness() -> Harness:
    return Harness.of_this_python()


def _other_threads(dump: StackDump, shown: ThreadStack) -> list[str]:
    lines = []
    for thread in dump.threads:
        if thread.thread_id == shown.thread_id:
            continue
        at = thread.user_frame or (thread.frames[0] if thread.frames else None)
        state = "running" if thread.running_user_code else "waiting"
        where = _where(at) if at is not None else "no Python frame"
        lines.append(f"other thread {thread.thread_id:#x} ({state}): {where}")
    return lines


def _where(frame: Frame) -> str:
    """``path:line in function``, the path relative to the working folder when under it."""
    return f"{display_path(frame.path)}:{frame.line} in {frame.function}"


def _frame_dict(frame: Frame) -> dict[str, object]:
    return {"file": frame.path, "line": frame.line, "function": frame.function}
