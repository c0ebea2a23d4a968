"""Allocation attribution: where the retained memory was allocated, on request.

This is our extension layer over the standard library's :mod:`tracemalloc`
(the design card's "tracemalloc-ext", which does not exist as a package).
Tracing is expensive — ``tracemalloc.start(1)`` makes an allocation-heavy
loop about an order of magnitude slower, 25 frames much more — so nothing
here runs unless a verdict asks for it: a few extra scenario iterations under
tracing when a leak budget is exceeded (:func:`attribute_iterations`), or a
test run with ``--automem-trace`` (:class:`AllocationTracer`).

What it adds to ``Snapshot.compare_to``:

* **Our frames and pytest's are not sites.**  Frames in the files matched by
  :data:`DEFAULT_EXCLUDE` (this package, ``_pytest``, ``pytest``,
  ``pluggy``, ``tracemalloc.py``, ``linecache.py`` and the frozen import
  machinery) are skipped; a trace whose frames are all excluded is dropped,
  and so is one the tracer's own code made (this file is reached, directly or
  through the standard library, before any user frame): its snapshots,
  baselines and caches.
* **The site is the user's line.**  A trace is attributed to its innermost
  frame that is not excluded — except when that frame is in the standard
  library: then the site is the first frame further out that is neither
  excluded nor in the standard library (``sysconfig`` paths ``stdlib`` and
  ``platstdlib``, minus ``site-packages``, plus frozen modules such as
  ``<frozen posixpath>``).  So ``LEAK.append(json.loads(doc))`` at
  ``test_x.py:12`` is reported at ``test_x.py:12``, not at
  ``json/decoder.py``: the stdlib line is the same for every caller and says
  nothing about who keeps the result.  Third-party code counts as user code
  (its line is where the allocation happens, and usually the thing to look
  at).  When no such frame is within the traced ``frames`` (a traceback cut
  short, or stdlib code driven only by excluded frames), the innermost
  non-excluded frame is the site after all.
* **Noise floor.**  A site is reported only if it retained at least
  ``min_site_bytes`` (default :data:`NOISE_FLOOR_BYTES`, 1 KiB) between the
  two points.  Below that are allocator and interpreter bookkeeping (a
  dict resized, a code object's cache, a free-list refill) that move by a few
  hundred bytes whether or not anything leaks.  ``total_sites`` counts the
  sites above the floor, before bounding to ``top``.
* **Types, by the bytes they hold.**  At the second point, every live object
  is asked where tracemalloc saw it allocated; the objects allocated at a
  site that grew are summed per type (``sys.getsizeof``, each object on its
  own).  So the type that leaked comes first by size — a few large
  ``bytearray`` objects outrank thousands of small descriptors — and objects
  the harness made (at excluded frames) never count.  Live objects are those
  the garbage collector tracks plus the untracked ones they reach (strings,
  numbers, buffers, containers of only such values); only type *names* are
  kept, never types or objects.

tracemalloc traces every thread: what another thread retains between the two
points shows up too, at that thread's own lines.
"""

from __future__ import annotations

import enum
import gc
import importlib.util
import linecache
import os
import sys
import sysconfig
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from ..base.defaults import (
    ATTRIBUTION_ITERATIONS,
    ATTRIBUTION_TOP,
    ATTRIBUTION_WARMUP,
    GROWTH_NOISE_BYTES,
    OUTSIDE_HEAP_SHARE,
    TRACE_FRAMES,
    TYPE_SCAN_MAX_OBJECTS,
)
from ..base.units import format_size, is_count
from .findings import Finding, Severity

__all__ = [
    "DEFAULT_EXCLUDE",
    "NOISE_FLOOR_BYTES",
    "AllocationTracer",
    "Attribution",
    "SiteGrowth",
    "TypeGrowth",
    "attribute_iterations",
]

#: Sites that retained less than this between the two points are not reported.
NOISE_FLOOR_BYTES = 1024
GROUP_BY = ("lineno", "traceback")
CHECK = "allocation-sites"
#: RSS grew while the traced Python heap did not: memory tracing cannot see.
UNTRACED_GROWTH_CHECK = "growth-without-object-growth"


def grew_outside_traced_heap(measured_bytes: int | None, traced_bytes: int) -> bool:
    """Whether a measured growth (RSS) is mostly memory tracing did not see:
    over the noise, and traced growth under :data:`OUTSIDE_HEAP_SHARE` of it."""
    return (
        measured_bytes is not None
        and measured_bytes >= GROWTH_NOISE_BYTES
        and traced_bytes < OUTSIDE_HEAP_SHARE * measured_bytes
    )


class _FrameKind(enum.Enum):
    """Whose code a traceback frame runs: it decides which frame is blamed."""

    #: This module: the tracer's own bookkeeping, never the caller's.
    TRACER = "tracer"
    #: Ours or pytest's (``exclude``): skipped, like the tracer's.
    EXCLUDED = "excluded"
    #: The standard library: blamed only when no user frame called it.
    STDLIB = "stdlib"
    #: Everything else: the code under test, blamed first.
    USER = "user"


#: Frames never blamed: the harness's, not the code under test.
_SKIPPED = frozenset({_FrameKind.TRACER, _FrameKind.EXCLUDED})
_THIS_FILE = os.path.abspath(__file__)
# Bookkeeping keys are plain strings (never tracked by the garbage collector,
# so they do not show up in the type counts): "lineno<TAB>filename" per frame,
# frames joined by newlines, the site first.
_FIELD, _FRAME = "\t", "\n"
#: Source lines in a finding's details are cut to this many characters.
_SOURCE_WIDTH = 80


def _package_dir(module: str) -> str | None:
    """The directory of an installed package (from its ``__file__``), without importing it."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    if not origin:
        return None
    if os.path.basename(origin).startswith("__init__."):
        return os.path.dirname(os.path.abspath(origin)) + os.sep
    return os.path.abspath(origin)


def _default_exclude() -> tuple[str, ...]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    patterns = [here + os.sep]
    for module in ("_pytest", "pytest", "pluggy"):
        found = _package_dir(module)
        if found:
            patterns.append(found)
    for module in (tracemalloc, linecache):
        patterns.append(os.path.abspath(module.__file__ or module.__name__))
    patterns.append("<frozen importlib._bootstrap*")
    return tuple(patterns)


#: Where our frames and pytest's live.  Each entry is a directory (ending in
#: ``os.sep``: every file under it), a prefix (ending in ``*``) or a file.
DEFAULT_EXCLUDE: tuple[str, ...] = _default_exclude()


def _stdlib_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    paths = sysconfig.get_paths()
    stdlib = {os.path.abspath(paths[k]) + os.sep for k in ("stdlib", "platstdlib") if k in paths}
    third_party = {os.path.abspath(paths[k]) + os.sep for k in ("purelib", "platlib") if k in paths}
    return tuple(sorted(stdlib)), tuple(sorted(third_party))


_STDLIB_DIRS, _SITE_DIRS = _stdlib_dirs()


class _Classifier:
    """Excluded, stdlib or user, per filename (cached: filenames repeat a lot)."""

    def __init__(self, exclude: Sequence[str]) -> None:
        self._prefixes: list[str] = []
        self._files: set[str] = set()
        for pattern in exclude:
            if pattern.endswith("*"):
                self._prefixes.append(pattern[:-1])
            elif pattern.endswith(os.sep) or (os.altsep and pattern.endswith(os.altsep)):
                self._prefixes.append(pattern)
                self._prefixes.append(os.path.abspath(pattern) + os.sep)
            else:
                self._files.add(pattern)
                self._files.add(os.path.abspath(pattern))
        self._cache: dict[str, _FrameKind] = {}

    def __call__(self, filename: str) -> _FrameKind:
        kind = self._cache.get(filename)
        if kind is None:
            kind = self._cache[filename] = self._classify(filename)
        return kind

    def _classify(self, filename: str) -> _FrameKind:
        names = [filename]
        if not filename.startswith("<"):
            names.append(os.path.abspath(filename))
        if names[-1] == _THIS_FILE:
            return _FrameKind.TRACER
        for name in names:
            if name in self._files or name.startswith(tuple(self._prefixes)):
                return _FrameKind.EXCLUDED
        if filename.startswith("<frozen "):
            return _FrameKind.STDLIB
        absolute = names[-1]
        if absolute.startswith(_STDLIB_DIRS) and not absolute.startswith(_SITE_DIRS):
            return _FrameKind.STDLIB
        return _FrameKind.USER


def display_path(filename: str) -> str:
    """``filename`` relative to the working folder when under it (as reports show it)."""
    if filename.startswith("<"):
        return filename
    absolute = os.path.abspath(filename)
    cwd = os.getcwd()
    if absolute.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, cwd)
    return absolute


@dataclass(frozen=True)
class SiteGrowth:
    """Memory retained at one allocation site between the two points."""

    filename: str
    lineno: int
    size_diff_bytes: int
    count_diff: int
    #: ``"file:line"`` frames (excluded ones removed), outermost first; only
    #: with ``group_by="traceback"``.
    traceback: tuple[str, ...] = ()

    def location(self) -> str:
        """``path/to/file.py:42``, relative to the cwd when the file is under it."""
        return f"{display_path(self.filename)}:{self.lineno}"

    def source_line(self) -> str:
        """The site's source line, stripped (``""`` when unavailable)."""
        return linecache.getline(self.filename, self.lineno).strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "lineno": self.lineno,
            "location": self.location(),
            "source_line": self.source_line(),
            "size_diff_bytes": self.size_diff_bytes,
            "count_diff": self.count_diff,
            "traceback": list(self.traceback),
        }

    def describe(self) -> str:
        """``tests/test_x.py:42  +1.0 MB in 1,000 blocks  | cache.append(...)``."""
        text = f"{self.location()}  +{format_size(self.size_diff_bytes)} in {self.count_diff:,} "
        text += "block" if self.count_diff == 1 else "blocks"
        source = self.source_line()
        if len(source) > _SOURCE_WIDTH:
            source = source[: _SOURCE_WIDTH - 1] + "…"
        return f"{text}  | {source}" if source else text


@dataclass(frozen=True)
class TypeGrowth:
    """The live objects of one type allocated at the sites that grew."""

    type_name: str
    count: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"type_name": self.type_name, "count": self.count, "size_bytes": self.size_bytes}

    def describe(self) -> str:
        """``+30.0 MB in 1 builtins.bytearray``."""
        return f"+{format_size(self.size_bytes)} in {self.count:,} {self.type_name}"


@dataclass(frozen=True)
class Attribution:
    """Where memory was retained between two points, and which types grew."""

    #: Sites that retained at least ``min_site_bytes``, largest first, at most ``top``.
    sites: tuple[SiteGrowth, ...]
    #: How many sites retained at least ``min_site_bytes``, before bounding.
    total_sites: int
    #: Net change of all traced memory (excluded traces dropped) between the points.
    traced_growth_bytes: int
    #: Types of the live objects allocated at the sites that grew, most
    #: bytes first, at most ``top``.
    types: tuple[TypeGrowth, ...]
    #: tracemalloc frames per traceback (the running limit if it was already tracing).
    frames: int
    group_by: str
    min_site_bytes: int = NOISE_FLOOR_BYTES
    #: True when tracemalloc was already tracing: its frame limit was kept.
    tracing_was_on: bool = False
    #: The types come from the first :data:`TYPE_SCAN_MAX_OBJECTS` objects
    #: allocated under tracing, not from all of them.
    types_sampled: bool = False
    #: Sites holding the most memory allocated since the first point, at the
    #: moment :meth:`AllocationTracer.mark_peak` last ran, largest first.
    peak_sites: tuple[SiteGrowth, ...] = ()
    #: Steps between the two points (0 when not from :func:`attribute_iterations`).
    iterations: int = 0
    #: The bound on ``sites``, ``types`` and the finding's detail lines.
    top: int = ATTRIBUTION_TOP

    def to_dict(self) -> dict[str, Any]:
        return {
            "sites": [s.to_dict() for s in self.sites],
            "total_sites": self.total_sites,
            "traced_growth_bytes": self.traced_growth_bytes,
            "types": [t.to_dict() for t in self.types],
            "frames": self.frames,
            "group_by": self.group_by,
            "min_site_bytes": self.min_site_bytes,
            "tracing_was_on": self.tracing_was_on,
            "types_sampled": self.types_sampled,
            "peak_sites": [s.to_dict() for s in self.peak_sites],
            "iterations": self.iterations,
            "top": self.top,
        }

    def finding(self, *, subject: str) -> Finding | None:
        """A WARNING naming the top allocation sites; None when no site grew.

        ``details`` holds at most ``top`` lines: one per site (largest first),
        then one per type that grew; when both do not fit, the types keep up
        to a third of the lines.  Everything is in ``evidence`` as well.
        """
        if not self.sites:
            return None
        limit = max(1, self.top)
        head = self.sites[0]
        where = (
            f"most at {head.location()} (+{format_size(head.size_diff_bytes)}, "
            f"{head.count_diff:,} {'block' if head.count_diff == 1 else 'blocks'})"
        )
        if self.traced_growth_bytes > 0:
            summary = f"{subject}: {format_size(self.traced_growth_bytes)} retained, {where}"
        else:
            summary = f"{subject}: no net growth of traced memory, but {where}"
        if self.iterations:
            grown = (
                self.traced_growth_bytes if self.traced_growth_bytes > 0 else head.size_diff_bytes
            )
            per = grown / self.iterations
            summary += f"; ≈ {format_size(per)} per iteration over {self.iterations}"
        type_slots = min(len(self.types), max(limit - len(self.sites), limit // 3))
        site_slots = min(len(self.sites), limit - type_slots)
        details = [s.describe() for s in self.sites[:site_slots]]
        details += [t.describe() for t in self.types[:type_slots]]
        if type_slots and self.types_sampled:
            details.append(
                f"(types of the first {TYPE_SCAN_MAX_OBJECTS:,} objects allocated under tracing)"
            )
        return Finding(
            check=CHECK,
            severity=Severity.WARNING,
            summary=summary,
            evidence=self.to_dict(),
            recommendation=_recommendation(head, self.types),
            details=tuple(details),
        )


def _recommendation(head: SiteGrowth, types: Sequence[TypeGrowth]) -> str:
    source = head.source_line()
    what = f"{head.location()} (`{source}`)" if source else head.location()
    text = (
        f"Look at what keeps the objects allocated at {what}: they retained "
        f"+{format_size(head.size_diff_bytes)} in {head.count_diff:,} blocks between the "
        "two points. If it fills a cache, list or dict that only grows, bound it "
        "(a maxlen, an LRU, a trim policy) or clear it when the step ends; if the objects "
        "should have died, find who still refers to them (gc.get_referrers)."
    )
    if types:
        text += f" The type holding most of it: {types[0].type_name} ({types[0].describe()})."
    return text


# -- the tracer ----------------------------------------------------------------


class _Traced:
    """One point's traced memory, grouped by site key (plain str/int only)."""

    __slots__ = ("counts", "sizes", "total")

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.total = 0


def _raw_traces(snapshot: tracemalloc.Snapshot) -> Iterable[tuple[Any, ...]]:
    """``(domain, size, frames innermost first, total_nframe)`` per trace.

    The snapshot's own list of raw traces where it has one (CPython 3.9–3.13:
    no wrapper objects to create per trace); else rebuilt from the public
    ``Trace`` objects.
    """
    raw = getattr(snapshot.traces, "_traces", None)
    if isinstance(raw, (tuple, list)) and (not raw or len(raw[0]) >= 3):
        return raw
    return [
        (trace.domain, trace.size, tuple((f.filename, f.lineno) for f in reversed(trace.traceback)))
        for trace in snapshot.traces
    ]


def _object_frames(obj: object) -> tuple[tuple[str, int], ...] | None:
    """Where tracemalloc saw ``obj`` allocated, innermost frame first, as the
    snapshot's raw traces hold them; None when it was not traced.

    The module's raw accessor where it has one (CPython 3.9–3.13): the public
    ``get_object_traceback`` wraps every frame in an object of its own.
    """
    raw = getattr(tracemalloc, "_get_object_traceback", None)
    if raw is not None:
        return raw(obj)
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is None:
        return None
    return tuple((frame.filename, frame.lineno) for frame in reversed(traceback))


def _live_objects() -> Iterator[object]:
    """Every object the garbage collector tracks, then the untracked ones they
    reach (strings, numbers, buffers and containers of only such values,
    which CPython does not track), level by level.

    An untracked object reached twice is yielded twice: the callers count
    only the objects they match, once each.  Untracked objects cannot form
    a cycle (a cycle needs a tracked container), so this ends.  Referents
    are asked for a whole level at once: under tracing every list made per
    object would be a traced allocation, forty times the cost.
    """
    tracked = gc.get_objects()
    yield from tracked
    pending = gc.get_referents(*tracked)
    del tracked
    while pending:
        untracked = [obj for obj in pending if not gc.is_tracked(obj)]
        yield from untracked
        pending = gc.get_referents(*untracked)


class AllocationTracer:
    """Traced allocations and live object types at two points: ``start()`` … ``stop()``.

    ``start()`` starts tracemalloc with ``frames`` frames if it is not
    already tracing, collects garbage and records the baseline; ``stop()``
    collects garbage, records the second point, stops tracemalloc again if
    ``start()`` started it, and returns an :class:`Attribution`.  If the
    user was already tracing, tracemalloc is left running with its own frame
    limit (it cannot change while tracing); ``Attribution.frames`` gives the
    limit used and ``Attribution.tracing_was_on`` says so.

    ``exclude`` replaces :data:`DEFAULT_EXCLUDE`; to add to it, pass
    ``(*DEFAULT_EXCLUDE, "/my/helpers/")``.  Sites below ``min_site_bytes``
    and types with fewer than ``min_type_count`` live objects at the sites
    that grew are not reported.  As a context manager, the result is on ``.attribution``
    (None if the block raised; tracing is stopped either way).
    """

    def __init__(
        self,
        *,
        frames: int = TRACE_FRAMES,
        group_by: str = "lineno",
        top: int = ATTRIBUTION_TOP,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        count_types: bool = True,
        min_site_bytes: int = NOISE_FLOOR_BYTES,
        min_type_count: int = 1,
    ) -> None:
        if not is_count(frames, minimum=1):
            raise ValueError(f"AllocationTracer: frames must be an int >= 1, got {frames!r}")
        if group_by not in GROUP_BY:
            raise ValueError(
                f"AllocationTracer: group_by must be one of {GROUP_BY}, got {group_by!r}"
            )
        if not is_count(top, minimum=1):
            raise ValueError(f"AllocationTracer: top must be an int >= 1, got {top!r}")
        if isinstance(exclude, str):
            raise TypeError("AllocationTracer: exclude must be a sequence of patterns, not a str")
        self.frames = frames
        self.group_by = group_by
        self.top = top
        self.exclude = tuple(exclude)
        self.count_types = count_types
        self.min_site_bytes = max(1, min_site_bytes)
        self.min_type_count = max(1, min_type_count)
        self.attribution: Attribution | None = None
        self._classify = _Classifier(self.exclude)
        self._started_tracing = False
        self._tracing_was_on = False
        self._tracing = False
        self._before: _Traced | None = None
        self._instances_before: frozenset[int] = frozenset()
        self._types_cut = False
        #: The point :meth:`mark_peak` took last, if any.
        self._peak: _Traced | None = None

    # -- the two points -------------------------------------------------------

    def start(self) -> None:
        """Start tracing if needed, collect garbage and take the baseline."""
        self._begin_tracing()
        try:
            self._take_baseline()
        except BaseException:
            self._end_tracing()
            raise

    def stop(self) -> Attribution:
        """Collect garbage, take the second point, stop tracing if we started it."""
        if self._before is None:
            raise RuntimeError("AllocationTracer.stop() called before start()")
        before, self._before = self._before, None
        peak, self._peak = self._peak, None
        try:
            gc.collect()
            after = self._take()
            frames = tracemalloc.get_traceback_limit()
            grown = self._grown(before, after)
            # While still tracing: an object's allocation site is known only then.
            types = self._types_at({key for _, _, key in grown}) if self.count_types else []
        finally:
            self._end_tracing()
        self.attribution = self._attribution(before, after, grown, types, frames)
        if peak is not None:
            at_peak = self._grown(before, peak)[: self.top]
            self.attribution = replace(
                self.attribution, peak_sites=tuple(_site(*site) for site in at_peak)
            )
        return self.attribution

    def mark_peak(self) -> None:
        """Take a point now, between the two: the sites alive at this moment
        become :attr:`Attribution.peak_sites`.  The plugin calls it when memory
        crosses a peak budget (the sampler's signal); a later call replaces
        an earlier one, so the last is the one nearest the highest sample."""
        if self._before is not None and tracemalloc.is_tracing():
            self._peak = self._take()

    def close(self) -> None:
        """Stop tracing if we started it, without a result (after an error)."""
        self._before = None
        self._peak = None
        self._end_tracing()

    def __enter__(self) -> AllocationTracer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.close()

    # -- internals --------------------------------------------------------------

    def _begin_tracing(self) -> None:
        if self._tracing:
            raise RuntimeError("AllocationTracer is already running")
        self._tracing = True
        self._tracing_was_on = tracemalloc.is_tracing()
        if not self._tracing_was_on:
            tracemalloc.start(self.frames)
            self._started_tracing = True

    def _end_tracing(self) -> None:
        self._tracing = False
        if self._started_tracing:
            self._started_tracing = False
            tracemalloc.stop()

    def _take_baseline(self) -> None:
        gc.collect()
        self._before = self._take()
        self._instances_before = _unreported_instances() if self.count_types else frozenset()

    def _take(self) -> _Traced:
        if not tracemalloc.is_tracing():
            raise RuntimeError("tracemalloc was stopped while an AllocationTracer was running")
        return self._reduce(_raw_traces(tracemalloc.take_snapshot()))

    def _reduce(self, traces: Iterable[tuple[Any, ...]]) -> _Traced:
        """Group one snapshot's traces by site key.

        This runs while tracemalloc traces, so it allocates as little per
        trace as it can (every allocation here costs a traceback): sizes are
        first gathered per traceback tuple — a dict lookup that creates no
        object, where ``id()`` or a running ``+=`` would create an int per
        trace — then summed in C, once per distinct traceback.
        """
        by_traceback: defaultdict[tuple[tuple[str, int], ...], list[int]] = defaultdict(list)
        for trace in traces:
            by_traceback[trace[2]].append(trace[1])
        point = _Traced()
        sizes, counts = point.sizes, point.counts
        total = 0
        for frames, trace_sizes in by_traceback.items():
            key = self._key(frames)
            if key is None:
                continue
            size = sum(trace_sizes)
            total += size
            sizes[key] = sizes.get(key, 0) + size
            counts[key] = counts.get(key, 0) + len(trace_sizes)
        point.total = total
        return point

    def _key(self, frames: Sequence[tuple[str, int]]) -> str | None:
        """The site key of a raw traceback (innermost frame first).

        None when every frame is excluded, or when the tracer's own code made
        the allocation — this file is reached before any user frame, directly
        or through the standard library (``os.path`` while classifying
        filenames): its snapshots, baselines and caches are not the caller's.
        """
        classify = self._classify
        innermost: tuple[str, int] | None = None
        site: tuple[str, int] | None = None
        saw_excluded = False
        kept: list[tuple[str, int]] = []
        for frame in frames:
            kind = classify(frame[0])
            if kind is _FrameKind.TRACER and site is None:
                return None  # the tracer's own bookkeeping, whoever called the tracer
            if kind in _SKIPPED:
                saw_excluded = True
                continue
            if innermost is None:
                innermost = frame
            if kind is _FrameKind.USER and site is None:
                site = frame
                if self.group_by == "lineno":
                    break
            kept.append(frame)
        if innermost is None or (site is None and saw_excluded):
            # Only the standard library under our or pytest's frames: the
            # allocation is the harness's (e.g. ctypes loading for a trim).
            return None
        site = site or innermost
        parts = [f"{site[1]}{_FIELD}{site[0]}"]
        if self.group_by == "traceback":
            parts.extend(f"{lineno}{_FIELD}{filename}" for filename, lineno in kept)
        return _FRAME.join(parts)

    def _grown(self, before: _Traced, after: _Traced) -> list[tuple[int, int, str]]:
        """``(bytes, blocks, key)`` of each site that retained at least
        ``min_site_bytes``, largest first."""
        grown = []
        for key, size in after.sizes.items():
            diff = size - before.sizes.get(key, 0)
            if diff >= self.min_site_bytes:
                grown.append((diff, after.counts[key] - before.counts.get(key, 0), key))
        grown.sort(key=lambda g: (-g[0], g[2]))
        return grown

    def _types_at(self, keys: set[str]) -> list[TypeGrowth]:
        """The live objects allocated at the sites ``keys``, per type, most bytes first."""
        if not keys:
            return []
        found: defaultdict[type, list[int]] = defaultdict(list)
        known: dict[tuple[Any, ...], bool] = {}
        counted: set[int] = set()
        self._types_cut = False
        asked = 0
        for obj in _live_objects():
            frames = _object_frames(obj)
            if frames is not None:
                asked += 1
                if asked > TYPE_SCAN_MAX_OBJECTS:
                    self._types_cut = True
                    break
            if (
                self._allocated_at(frames, keys, known)
                or (_unreported_instance(obj) and id(obj) not in self._instances_before)
            ) and id(obj) not in counted:
                counted.add(id(obj))
                found[type(obj)].append(sys.getsizeof(obj))
        types = [
            TypeGrowth(_type_name(kind), len(sizes), sum(sizes))
            for kind, sizes in found.items()
            if len(sizes) >= self.min_type_count
        ]
        types.sort(key=lambda t: (-t.size_bytes, t.type_name))
        return types

    def _allocated_at(
        self,
        frames: tuple[tuple[str, int], ...] | None,
        keys: set[str],
        known: dict[tuple[Any, ...], bool],
    ) -> bool:
        """Whether an object allocated at raw traceback ``frames`` was
        allocated at one of the sites ``keys``.

        ``known`` caches the answer per raw traceback: objects allocated at
        one line share it, and each new Python object made here is itself
        traced (a traceback taken), so little is made per object.
        """
        if frames is None:
            return False
        found = known.get(frames)
        if found is None:
            found = known[frames] = self._key(frames) in keys
        return found

    def _attribution(
        self,
        before: _Traced,
        after: _Traced,
        grown: list[tuple[int, int, str]],
        types: list[TypeGrowth],
        frames: int,
    ) -> Attribution:
        sites = tuple(_site(diff, count, key) for diff, count, key in grown[: self.top])
        return Attribution(
            sites=sites,
            total_sites=len(grown),
            traced_growth_bytes=after.total - before.total,
            types=tuple(types[: self.top]),
            frames=frames,
            group_by=self.group_by,
            min_site_bytes=self.min_site_bytes,
            tracing_was_on=self._tracing_was_on,
            types_sampled=self._types_cut,
            top=self.top,
        )


#: ``Py_TPFLAGS_MANAGED_DICT`` (CPython 3.11's value).
_MANAGED_DICT = 1 << 4
_TRACEBACK_MISSES_MANAGED_DICTS = sys.version_info[:2] == (3, 11)
#: Top-level modules whose classes are the harness's, never the code under test's.
_HARNESS_MODULES = frozenset({"pytest_automem", "_pytest", "pytest", "pluggy", "xdist", "execnet"})


def _unreported_instance(obj: object) -> bool:
    """An instance whose allocation tracemalloc cannot report: on Python 3.11,
    ``get_object_traceback`` returns None for instances with a managed
    ``__dict__`` (user classes without ``__slots__``).  Such an instance
    counts when it was not alive at the first point and its class is not
    the harness's."""
    kind = type(obj)
    return (
        _TRACEBACK_MISSES_MANAGED_DICTS
        and bool(kind.__flags__ & _MANAGED_DICT)
        and str(kind.__module__).partition(".")[0] not in _HARNESS_MODULES
    )


def _unreported_instances() -> frozenset[int]:
    """The ids of the live instances :func:`_unreported_instance` covers (none after 3.11)."""
    if not _TRACEBACK_MISSES_MANAGED_DICTS:
        return frozenset()
    return frozenset(id(obj) for obj in gc.get_objects() if _unreported_instance(obj))


def _type_name(kind: type) -> str:
    return f"{getattr(kind, '__module__', None) or '?'}.{kind.__qualname__}"


def _site(size_diff: int, count_diff: int, key: str) -> SiteGrowth:
    frames = [part.split(_FIELD, 1) for part in key.split(_FRAME)]
    lineno, filename = frames[0]
    traceback = tuple(f"{name}:{line}" for line, name in reversed(frames[1:]))
    return SiteGrowth(filename, int(lineno), size_diff, count_diff, traceback)


def attribute_iterations(
    step: Callable[[int], object],
    *,
    start_step: int,
    iterations: int = ATTRIBUTION_ITERATIONS,
    warmup: int = ATTRIBUTION_WARMUP,
    **tracer_kwargs: Any,
) -> Attribution:
    """Run ``warmup + iterations`` steps under tracing; attribute what the iterations retained.

    Steps ``start_step``, ``start_step + 1``, … are run.  The ``warmup``
    steps run under tracing before the baseline, so one-time costs (lazily
    created caches, interned strings, import-time objects, and a container
    created before tracing whose first traced resize would look like a new
    block of its whole size) land before the first point.  Then the baseline
    (after ``gc.collect()``), ``iterations`` steps, ``gc.collect()`` and the
    second point.  The sites are what those iterations retained.

    ``tracer_kwargs`` go to :class:`AllocationTracer`; ``min_type_count``
    defaults to ``iterations`` (a type counts as growing when it gained at
    least one object per iteration).  Tracing is stopped if a step raises.
    """
    for name, value in (("iterations", iterations), ("warmup", warmup)):
        if not is_count(value):
            raise ValueError(f"attribute_iterations: {name} must be an int >= 0, got {value!r}")
    if iterations < 1:
        raise ValueError(f"attribute_iterations: iterations must be >= 1, got {iterations}")
    tracer_kwargs.setdefault("min_type_count", iterations)
    tracer = AllocationTracer(**tracer_kwargs)
    tracer._begin_tracing()
    try:
        number = start_step
        for _ in range(warmup):
            step(number)
            number += 1
        tracer._take_baseline()
        for _ in range(iterations):
            step(number)
            number += 1
        attribution = tracer.stop()
    except BaseException:
        tracer.close()
        raise
    return replace(attribution, iterations=iterations)
