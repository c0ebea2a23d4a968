"""The session's per-test records: on disk as tests finish, summarized in memory.

A record is one monitored test's figures as plain values (what the results
file holds under its node id).  A session of 100,000 tests must not hold
100,000 records until it ends: kept in memory they cost several kilobytes
each, and the interpreter's full collections walk every one of them.  So
:class:`RecordStore` keeps in memory only what the end of the session reads
besides the results file:

* the records of tests that failed on memory (few; every output shows them);
* per node id: where its record starts in the spool, and the peak, growth
  and pressure the summaries rank tests by, with the peaks of its setup and
  teardown (a few hundred bytes a test).

When a results file is asked for, each record is encoded once, as it
arrives, into a spool: an anonymous temporary file next to the results file
(same file system; the OS deletes it whatever happens to the process), and
:meth:`RecordStore.write_results` copies the lines out sorted by node id.
Without a results file nothing is spooled.

A test recorded twice (a plugin that reruns tests) keeps its last record.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any, NamedTuple

from .results_file import build_results, write_results_lines

__all__ = ["RecordStore", "encode_record", "summary_record"]

#: What the store keeps of each test to rank it (after its spool offset).
_RANKED_KEYS = ("peak_bytes", "growth_bytes", "max_pressure")
#: Phases whose peaks are kept beside the call's: a fixture's memory is
#: spent in setup (and freed in teardown), where the call's figures miss it.
_PHASES_BESIDE_CALL = ("setup", "teardown")
#: One encoder for every record (``json.dumps`` with options makes one per call).
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(", ", ": "))


class _Kept(NamedTuple):
    """What the store keeps of a test: where its record is, and what ranks it."""

    #: The record's offset in the spool; -1 where it is not spooled.
    offset: int
    peak_bytes: int
    growth_bytes: int
    max_pressure: str
    #: -1 where the phase was not measured.
    setup_peak_bytes: int
    teardown_peak_bytes: int
    #: The fixture whose setup peaked highest; "" where none was measured.
    setup_fixture: str
    #: The highest of the three phases' peaks: what the peak list ranks by.
    top_peak_bytes: int


def encode_record(record: Mapping[str, Any]) -> str:
    """``record`` as one line of JSON (no newline in it: nothing is indented).

    Raises ValueError for a value JSON cannot hold (NaN, infinity).  An
    xdist worker sends its records encoded: one string crosses execnet's
    pure-Python serializer ~20 times faster than a nested dict, on the
    worker and again on the controller, which spools the line as it is.
    """
    return _ENCODER.encode(record)


def summary_record(peak_bytes: int, growth_bytes: int, max_pressure: str) -> dict[str, Any]:
    """The record of a test that passed with only its call measured, when
    no output needs every results key: what the summaries read of it."""
    return {
        "peak_bytes": peak_bytes,
        "growth_bytes": growth_bytes,
        "max_pressure": max_pressure,
        "verdict": "pass",
        "message": None,
    }


class RecordStore:
    """Records of one session's monitored tests (see the module docstring)."""

    def __init__(self, spool_dir: str | os.PathLike[str] | None = None, *, top: int = 5) -> None:
        """``spool_dir``: where the results file goes (records are spooled
        there), or None when no results file is written.  ``top``: how many
        of the highest peaks and growths the summaries show."""
        self.top = top
        self._index: dict[str, _Kept] = {}
        self._spool_dir = spool_dir
        self._spool: IO[bytes] | None = None
        #: Where the next line goes: the spool is only appended to until the end.
        self._spool_end = 0
        #: Records of tests that failed on memory, by node id.
        self.failures: dict[str, dict[str, Any]] = {}
        #: The first record's ``sampler_kind`` (the same for every test of a session).
        self.sampler_kind: str | None = None

    def __len__(self) -> int:
        return len(self._index)

    def add(self, nodeid: str, record: Mapping[str, Any]) -> None:
        """Keep ``record`` as ``nodeid``'s (its last one, if recorded before).

        Raises ValueError (from the encoder) for a value JSON cannot hold,
        before anything is kept.
        """
        line = encode_record(record) if self._spool_dir is not None else None
        self._keep(nodeid, record, line)

    def add_summary(
        self, nodeid: str, peak_bytes: int, growth_bytes: int, max_pressure: str
    ) -> None:
        """Keep a :func:`summary_record` as ``nodeid``'s.

        Tens of thousands of short tests a session end here: without a
        results file the figures go straight into the index, with no record
        made and none read back.
        """
        if self._spool_dir is not None:
            self.add(nodeid, summary_record(peak_bytes, growth_bytes, max_pressure))
            return
        self._index[nodeid] = _Kept(
            offset=-1,
            peak_bytes=peak_bytes,
            growth_bytes=growth_bytes,
            max_pressure=max_pressure,
            setup_peak_bytes=-1,
            teardown_peak_bytes=-1,
            setup_fixture="",
            top_peak_bytes=peak_bytes,
        )
        self.failures.pop(nodeid, None)

    def add_encoded(self, nodeid: str, line: str) -> None:
        """Keep a record that arrives as :func:`encode_record` made it (from
        an xdist worker); raises ValueError for a line that is not a record."""
        record = json.loads(line)
        if not isinstance(record, dict) or "\n" in line:
            raise ValueError(f"the record of {nodeid} is not one JSON object on one line")
        missing = [key for key in _RANKED_KEYS if key not in record]
        if missing:
            raise ValueError(f"the record of {nodeid} has no {', '.join(missing)}")
        self._keep(nodeid, record, line if self._spool_dir is not None else None)

    def _keep(self, nodeid: str, record: Mapping[str, Any], line: str | None) -> None:
        phases = record.get("phases") or {}
        setup = phases.get("setup")
        setup_peak = _phase_peak_bytes(setup)
        teardown_peak = _phase_peak_bytes(phases.get("teardown"))
        peak = int(record["peak_bytes"])
        self._index[nodeid] = _Kept(
            offset=-1 if line is None else self._spool_line(line),
            peak_bytes=peak,
            growth_bytes=int(record["growth_bytes"]),
            max_pressure=record["max_pressure"],
            setup_peak_bytes=setup_peak,
            teardown_peak_bytes=teardown_peak,
            setup_fixture=_largest_fixture(setup) if setup else "",
            top_peak_bytes=max(peak, setup_peak, teardown_peak),
        )
        if len(self._index) == 1:
            self.sampler_kind = record.get("sampler_kind")
        if record.get("verdict") == "fail":
            self.failures[nodeid] = dict(record)
        else:
            self.failures.pop(nodeid, None)

    def _spool_line(self, line: str) -> int:
        """Write a record's line to the spool; its offset there."""
        assert self._spool_dir is not None
        data = line.encode() + b"\n"
        spool = self._spool or self._open_spool(self._spool_dir)
        offset = self._spool_end
        spool.write(data)  # buffered: a seek would flush it every time
        self._spool_end += len(data)
        return offset

    def _open_spool(self, folder: str | os.PathLike[str]) -> IO[bytes]:
        """The spool, made with the first record (the results writer would
        make the folder at the end anyway)."""
        os.makedirs(folder, exist_ok=True)
        # Kept open for the whole session and closed by close(): no ``with``.
        self._spool = tempfile.TemporaryFile(dir=folder, prefix=".automem-records-")  # noqa: SIM115
        return self._spool

    def highest(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The :attr:`top` tests with the highest ``key`` (``peak_bytes`` or
        ``growth_bytes``), highest first, as ``(nodeid, figures)`` where the
        figures are the peak, growth and pressure, and ``setup_peak_bytes``
        and ``teardown_peak_bytes`` where those phases were measured
        (``setup_fixture``: the fixture that peaked highest, where known).

        Peaks rank by the highest of the test's phases: a fixture that
        allocates is among the highest even if its test's call is not.
        """
        field = "top_peak_bytes" if key == "peak_bytes" else key
        ranked = heapq.nlargest(self.top, self._index.items(), key=lambda kv: getattr(kv[1], field))
        return [(nodeid, _figures(kept)) for nodeid, kept in ranked]

    def write_results(self, path: str | os.PathLike[str], session: Mapping[str, Any]) -> None:
        """Write the results file (atomically), tests sorted by node id."""
        write_results_lines(path, session, self._lines())

    def results_document(self, session: Mapping[str, Any]) -> dict[str, Any]:
        """The document :meth:`write_results` writes, as values (for the
        dashboard, which is rendered from it whether or not it is written)."""
        return build_results({nodeid: json.loads(line) for nodeid, line in self._lines()}, session)

    def _lines(self) -> Iterator[tuple[str, str]]:
        if self._spool_dir is None:
            raise RuntimeError("RecordStore made without a spool folder keeps no records")
        spool = self._spool
        if spool is None:  # no record yet
            return
        spool.flush()
        try:
            for nodeid in sorted(self._index):
                spool.seek(self._index[nodeid].offset)
                yield nodeid, spool.readline().decode().rstrip("\n")
        finally:
            spool.seek(self._spool_end)  # more records may follow

    def close(self) -> None:
        """Drop the spool (the OS would at exit anyway)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _figures(kept: _Kept) -> dict[str, Any]:
    """An index entry's figures, by name; a phase that was not measured is left out."""
    figures: dict[str, Any] = {key: getattr(kept, key) for key in _RANKED_KEYS}
    for name in _PHASES_BESIDE_CALL:
        peak = getattr(kept, f"{name}_peak_bytes")
        if peak >= 0:
            figures[f"{name}_peak_bytes"] = peak
    if kept.setup_fixture:
        figures["setup_fixture"] = kept.setup_fixture
    return figures


def _phase_peak_bytes(phase: Mapping[str, Any] | None) -> int:
    """A setup's or teardown's peak; -1 where the phase was not measured
    (most records: a short test's call is its only phase)."""
    return -1 if not phase else int(phase.get("peak_bytes", -1))


def _largest_fixture(setup: Mapping[str, Any]) -> str:
    """The fixture whose setup peaked highest ("" where none was measured)."""
    peaks = setup.get("fixture_peaks_bytes") or {}
    return max(peaks, key=peaks.__getitem__) if peaks else ""
