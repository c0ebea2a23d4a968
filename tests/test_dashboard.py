"""The HTML dashboard (outputs/dashboard.py): what it embeds, that nothing in it
loads from outside or runs from the data, and that a real browser draws it.

Structure is checked without a browser (html.parser, the embedded JSON); the
page's script is checked in headless Chromium, where installed.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import (
    external_references,
    load_in_chromium,
    needs_chromium,
    node_ids_of,
    page_data,
    parse_page,
)
from helpers import RESULTS_SESSION, resident_block, results_test

from pytest_automem.base.defaults import DASHBOARD_MAX_POINTS
from pytest_automem.base.units import format_size
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.pressure import PressureThresholds
from pytest_automem.outputs.dashboard import COLUMNS, DashboardRun, write_dashboard
from pytest_automem.outputs.dashboard_page import embedded_json
from pytest_automem.snapshots.files import SnapshotEvent, write_snapshot
from pytest_automem.verdicts.gate import Status, compare, regression_text

MB = 1 << 20
HOSTILE = [
    "t.py::test[</script><script>alert(1)</script>]",
    "t.py::test[<img src=x onerror=alert(1)>]",
    "t.py::test[<!-- ]",
    "t.py::test[\"quotes' & ampersands]",
    "t.py::test[unicode é ☃ 𝄞 \u2028]",
    "t.py::test[lone \udc80 surrogate]",
    "t.py::test_" + "x" * 300,
]


def document(tests: dict[str, dict[str, Any]], **session: Any) -> dict[str, Any]:
    return {"version": 1, "session": {**RESULTS_SESSION, **session}, "tests": tests}


def failing(peak: int, budget: int, **extra: Any) -> dict[str, Any]:
    message = f"peak {format_size(peak)} > budget {format_size(budget)}"
    return {
        **results_test(peak, 0),
        "verdict": "fail",
        "violations": [message],
        "message": message,
        "report": f"memory budget exceeded: {message}\n\nwhere:\n  app.py:12 in build",
        "budget": {"peak_bytes": budget, "growth_bytes": None},
        **extra,
    }


def write(path: Path, *runs: DashboardRun, **options: Any) -> tuple[str, dict[str, Any]]:
    write_dashboard(path, list(runs), **options)
    text = path.read_text(encoding="utf-8")
    return text, page_data(text)


def row_of(data: dict[str, Any], nodeid: str) -> dict[str, Any]:
    [row] = [row for row in data["rows"] if row[0] == nodeid]
    return dict(zip(data["columns"], row, strict=True))


def detail_of(data: dict[str, Any], nodeid: str) -> dict[str, Any]:
    index = node_ids_of(data).index(nodeid)
    detail: dict[str, Any] = data["details"].get(str(index), {})
    return detail


# -- structure: parses, names every test, loads nothing --------------------------------------


def test_the_page_names_every_test_and_loads_nothing_from_outside(tmp_path: Path) -> None:
    tests = {f"t.py::test_{i}": results_test(i * MB, i) for i in range(50)}
    text, data = write(tmp_path / "report.html", DashboardRun("results.json", document(tests)))

    assert set(node_ids_of(data)) == set(tests)
    assert data["columns"] == list(COLUMNS)
    assert external_references(text) == []
    page = parse_page(text)
    assert [attrs.get("type") for attrs, _ in page.scripts] == ["application/json", None]
    [policy] = [
        a["content"] for tag, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy


def test_hostile_test_names_stay_text(tmp_path: Path) -> None:
    tests = {name: results_test(MB, 0) for name in HOSTILE}
    tests[HOSTILE[0]] = failing(9 * MB, MB)
    text, data = write(tmp_path / "r.html", DashboardRun("</title><b>x.json", document(tests)))

    assert sorted(node_ids_of(data)) == sorted(HOSTILE)  # the lone surrogate survives
    assert detail_of(data, HOSTILE[0])["msg"].startswith("peak 9.0 MB")
    page = parse_page(text)
    # Only the page's own elements: none came out of a name.
    assert [tag for tag, _ in page.tags if tag in ("script", "img", "b")] == ["script", "script"]
    assert "<img" not in text and "</script><script>" not in text and "<!--" not in text
    assert "<title>Memory report: &lt;/title&gt;&lt;b&gt;x.json</title>" in text
    assert text.split('id="automem-data">')[1].split("</script>")[0].isascii()


def test_embedded_json_escapes_what_could_end_the_script_element() -> None:
    text = embedded_json({"name": "</script><!--<script>&\u2028"})

    assert re.search(r"[<>&]", text) is None
    assert json.loads(text) == {"name": "</script><!--<script>&\u2028"}


def test_failing_tests_lead_the_summary_and_their_texts_are_embedded(tmp_path: Path) -> None:
    tests = {
        "t.py::quiet": results_test(MB, 0),
        "t.py::big": failing(90 * MB, 64 * MB),
        "t.py::xfailed": {**failing(70 * MB, 64 * MB), "expected_failure": True},
        "t.py::grows": results_test(2 * MB, 30 * MB),
    }
    tests["t.py::quiet"]["findings"] = [
        {"check": "c", "severity": "WARNING", "summary": "history grows", "recommendation": "cap"}
    ]
    _, data = write(tmp_path / "r.html", DashboardRun("r.json", document(tests)))

    summary = data["summary"]
    assert (summary["tests"], summary["failures"], summary["expected"]) == (4, 1, 1)
    assert [nodeid for nodeid, _ in summary["peaks"]][:2] == ["t.py::big", "t.py::xfailed"]
    assert summary["growths"][0] == ["t.py::grows", 30 * MB]
    assert ["python", "3.11.7"] in summary["context"]
    assert row_of(data, "t.py::big")["verdict"] == data["verdicts"].index("fail")
    assert row_of(data, "t.py::xfailed")["verdict"] == data["verdicts"].index("xfail")
    big = detail_of(data, "t.py::big")
    assert big["budget"] == {"peak_bytes": 64 * MB}
    assert big["report"].startswith("memory budget exceeded")
    assert detail_of(data, "t.py::quiet")["find"] == [["WARNING", "history grows", "cap"]]
    assert detail_of(data, "t.py::grows") == {}


# -- across runs: trends, and the gate's own verdict --------------------------------------------


def test_several_runs_give_trends_and_the_gates_regressions(tmp_path: Path) -> None:
    first = document({"t.py::a": results_test(10 * MB, 0), "t.py::gone": results_test(MB, 0)})
    second = document({"t.py::a": results_test(11 * MB, 0), "t.py::b": results_test(MB, 0)})
    third = document(
        {
            "t.py::a": results_test(40 * MB, 0),
            "t.py::b": results_test(MB + 1, 0),
            "t.py::new": results_test(MB, 0),
        },
        python="3.12.1",
    )
    runs = [DashboardRun(f"run{i}.json", doc) for i, doc in enumerate((first, second, third))]
    _, data = write(tmp_path / "r.html", *runs)

    assert row_of(data, "t.py::a")["trend"] == [10 * MB, 11 * MB, 40 * MB]
    assert row_of(data, "t.py::b")["trend"] == [None, MB, MB + 1]
    gate = compare(second, third)
    for comparison in gate.comparisons:
        if comparison.status is not Status.REMOVED:
            assert row_of(data, comparison.nodeid)["gate"] == comparison.status
    [regressed] = gate.of_status(Status.REGRESSED)
    assert detail_of(data, "t.py::a")["reg"] == [regression_text(c) for c in regressed.regressions]
    assert data["gate"]["counts"] == {status.label: gate.count(status) for status in Status}
    assert data["gate"]["context"] == [d.describe() for d in gate.context_differences]
    assert [run["peak"] for run in data["runs"]] == [10 * MB, 11 * MB, 40 * MB]


def test_one_run_has_no_trend_and_no_gate(tmp_path: Path) -> None:
    _, data = write(
        tmp_path / "r.html", DashboardRun("r.json", document({"t::a": results_test(1, 1)}))
    )

    assert (data["runs"], data["gate"], row_of(data, "t::a")["trend"]) == ([], None, None)


# -- curves from samples files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real_window(monitor: MemoryMonitor) -> Any:
    """A real window: 20 MB held for 40 ms, between two quiet stretches."""
    window = monitor.window(thresholds=PressureThresholds(4 * MB, 8 * MB, 64 * MB))
    time.sleep(0.02)
    block = resident_block(20 * MB)
    time.sleep(0.04)
    block.close()
    time.sleep(0.02)
    return window.stop()


def test_a_real_windows_samples_become_its_curve(tmp_path: Path, real_window: Any) -> None:
    events = [
        SnapshotEvent(5.0, "gc", 300 * MB, 290 * MB, "generation 2"),
        SnapshotEvent(30.0, "level", detail="LOW -> HIGH"),
    ]
    path = write_snapshot(real_window, tmp_path / "samples", label="t.py::a", events=events)
    tests = {
        "t.py::a": {**results_test(real_window.peak_bytes, 0), "samples_file": path.name},
        "t.py::plain": results_test(MB, 0),
    }
    run = DashboardRun("r.json", document(tests), tmp_path / "samples")
    _, data = write(tmp_path / "r.html", run)

    curve = detail_of(data, "t.py::a")["curve"]
    rss = list(real_window.sample_rss_bytes)
    assert len(curve["m"]) == len(rss) <= DASHBOARD_MAX_POINTS or curve["from"] == len(rss)
    assert max(curve["m"]) == max(rss) - real_window.baseline_bytes  # the relative basis
    assert max(curve["m"]) >= 19 * MB
    assert curve["th"] == [4 * MB, 8 * MB, 64 * MB]
    assert curve["ev"] == [
        [5.0, "gc", 300 * MB, 290 * MB, "generation 2"],
        [30.0, "level", None, None, "LOW -> HIGH"],
    ]
    assert "curve" not in detail_of(data, "t.py::plain")
    assert data["summary"]["plots"] == 1


def snapshot_lines(samples: int, *, peak_at: int, header: dict[str, Any] | None = None) -> str:
    head = {"kind": "window", "version": 2, "label": "t", "pid": 1, **(header or {})}
    lines = [json.dumps(head)]
    for i in range(samples):
        rss = 100 * MB + (50 * MB if i == peak_at else i)
        lines.append(json.dumps({"t_ms": float(i), "rss_bytes": rss, "pressure": "LOW"}))
    return "\n".join(lines) + "\n"


def test_a_long_curve_is_downsampled_keeping_its_peak(tmp_path: Path) -> None:
    (tmp_path / "long.jsonl").write_text(
        snapshot_lines(
            20_000,
            peak_at=12_345,
            header={"baseline_bytes": 100 * MB, "pressure_basis": "relative"},
        )
    )
    tests = {"t::a": {**results_test(50 * MB, 0), "samples_file": "long.jsonl"}}
    _, data = write(tmp_path / "r.html", DashboardRun("r.json", document(tests), tmp_path))

    curve = detail_of(data, "t::a")["curve"]
    assert len(curve["m"]) <= DASHBOARD_MAX_POINTS
    assert max(curve["m"]) == 50 * MB and curve["t"][curve["m"].index(50 * MB)] == 12_345.0
    assert curve["from"] == 20_000
    assert curve["th"] == [50 * MB, 200 * MB, 500 * MB]  # no thresholds in the header: the defaults


def test_missing_and_bad_samples_files_are_counted_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "bad.jsonl").write_text("not json\n")
    (tmp_path / "s" / "folder.jsonl").mkdir()
    (tmp_path / "outside.jsonl").write_text(snapshot_lines(3, peak_at=1))
    (tmp_path / "s" / "ok.jsonl").write_text(snapshot_lines(3, peak_at=1))
    names = {
        "missing": "nope.jsonl",
        "bad": "bad.jsonl",
        "folder": "folder.jsonl",
        "escape": "../outside.jsonl",
        "absolute": str(tmp_path / "outside.jsonl"),
        "not-a-name": 42,
        "ok": "ok.jsonl",
        "none-kept": None,
    }
    tests = {
        f"t::{key}": {**results_test(MB, 0), "samples_file": name} for key, name in names.items()
    }
    text, data = write(tmp_path / "r.html", DashboardRun("r.json", document(tests), tmp_path / "s"))

    summary = data["summary"]
    assert (summary["plots"], summary["samplesMissing"], summary["samplesBad"]) == (1, 1, 5)
    assert detail_of(data, "t::missing")["noplot"] == "missing"
    assert {
        detail_of(data, f"t::{k}")["noplot"] for k in ("bad", "folder", "escape", "absolute")
    } == {"bad"}
    assert "curve" in detail_of(data, "t::ok")
    assert detail_of(data, "t::none-kept") == {}
    assert str(tmp_path) not in text  # no path of the reader's machine is embedded


def test_curves_beyond_the_limit_are_left_out_failing_tests_first(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text(snapshot_lines(3, peak_at=1))
    tests = {f"t::p{i}": {**results_test(i * MB, 0), "samples_file": "c.jsonl"} for i in range(5)}
    tests["t::failing"] = {**failing(MB, 1), "samples_file": "c.jsonl"}
    _, data = write(
        tmp_path / "r.html", DashboardRun("r.json", document(tests), tmp_path), max_plots=3
    )

    with_curves = {n for n in tests if "curve" in detail_of(data, n)}
    assert with_curves == {"t::failing", "t::p4", "t::p3"}
    assert data["summary"]["plotsLeftOut"] == 3
    assert detail_of(data, "t::p0")["noplot"] == "left out"


def test_no_samples_folder_counts_every_samples_file_as_missing(tmp_path: Path) -> None:
    tests = {"t::a": {**results_test(MB, 0), "samples_file": "a.jsonl"}}
    _, data = write(tmp_path / "r.html", DashboardRun("r.json", document(tests)))

    assert data["summary"]["samplesMissing"] == 1


# -- the file ------------------------------------------------------------------------------


def test_a_link_at_the_output_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "r.html").symlink_to(target)

    write(tmp_path / "r.html", DashboardRun("r.json", document({"t::a": results_test(1, 1)})))

    assert target.read_text() == "keep me"
    assert not (tmp_path / "r.html").is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_size_stays_bounded_per_test(tmp_path: Path) -> None:
    tests = {
        f"tests/test_mod_{i % 50}.py::test_case_{i}[param]": results_test(i * 4096, i)
        for i in range(5000)
    }
    write(tmp_path / "r.html", DashboardRun("r.json", document(tests)))

    # One row of figures per test (~160 bytes with a 40-character name) plus the page.
    assert os.path.getsize(tmp_path / "r.html") < 5000 * 200 + 100_000


# -- in a real browser -----------------------------------------------------------------------


@pytest.fixture
def browser_report(tmp_path: Path, real_window: Any) -> tuple[Path, dict[str, Any]]:
    path = write_snapshot(
        real_window,
        tmp_path / "samples",
        label="curve",
        events=[
            SnapshotEvent(10.0, "trim", 300 * MB, 280 * MB, "</script><img src=x onerror=alert(1)>")
        ],
    )
    tests = {name: results_test(i * MB, i) for i, name in enumerate(HOSTILE)}
    tests[HOSTILE[1]] = failing(real_window.peak_bytes, 8 * MB, samples_file=path.name)
    tests.update({f"t.py::test_{i}": results_test(i * 1000, 0) for i in range(250)})
    older = document({name: results_test(MB, 0) for name in tests})
    runs = [
        DashboardRun("old.json", older),
        DashboardRun("new.json", document(tests), tmp_path / "samples"),
    ]
    write_dashboard(tmp_path / "r.html", runs)
    return tmp_path / "r.html", tests


@needs_chromium
def test_chromium_draws_the_table_without_a_console_error(browser_report: Any) -> None:
    path, tests = browser_report
    run = load_in_chromium(path)

    assert run.rendered and run.console_problems == []
    page = parse_page(run.dom)
    rows = [a for tag, a in page.tags if tag == "tr" and "data-index" in a]
    assert len(rows) == 100  # one page of rows, not 256
    assert all(a.get("tabindex") == "0" for a in rows)
    assert [tag for tag, _ in page.tags if tag == "img"] == []
    heads = [a.get("data-key") for tag, a in page.tags if tag == "button" and "data-key" in a]
    assert heads == ["name", "peak", "growth", "rate", "pressure", "verdict", "gate", "trend"]
    labelled = [a["id"] for tag, a in page.tags if tag in ("input", "select")]
    assert labelled == ["f-name", "f-verdict", "f-pressure", "f-gate"]
    assert format_size(tests[HOSTILE[1]]["peak_bytes"]) in run.dom  # the failing test leads
    assert "t.py::test[&lt;img src=x onerror=alert(1)&gt;]</td>" in run.dom


@needs_chromium
def test_chromium_opens_a_test_from_its_fragment_with_its_plot(browser_report: Any) -> None:
    path, _ = browser_report
    fragment = "#test=" + re.sub(
        r"[^A-Za-z0-9_.~-]", lambda m: f"%{ord(m.group()):02X}", HOSTILE[1]
    )
    run = load_in_chromium(path, fragment)

    assert run.rendered and run.console_problems == []
    detail = run.dom.split('<aside id="detail"', 1)[1]
    assert "hidden" not in detail.split(">", 1)[0]
    assert 'class="plot"' in detail and 'class="band-HIGH"' in detail
    assert 'class="budget"' in detail and "peak budget 8.0 MB" in detail
    assert 'class="event ev-trim"' in detail
    assert "memory budget exceeded" in detail
    assert "<img" not in run.dom


#: Drives the page as a keyboard user would, after its own script ran, and
#: writes what it saw into the page (a copy without the page's policy, which
#: would refuse this second script).
DRIVER = """
<script>
(function () {
  const seen = {};
  const q = (selector) => document.querySelector(selector);
  const shown = () =>
    [...document.querySelectorAll("#rows tr")].map((tr) => tr.children[0].textContent);
  const key = (target, name) =>
    target.dispatchEvent(new KeyboardEvent("keydown", { key: name, bubbles: true }));
  const steps = [
    () => {
      q('#head button[data-key="name"]').click();
      seen.byName = shown().slice(0, 3);
      seen.nameSort = q('#head button[data-key="name"]').parentElement.getAttribute("aria-sort");
      seen.focusAfterSort = document.activeElement.getAttribute("data-key");
      const input = q("#f-name");
      input.value = "ONERROR";
      input.dispatchEvent(new Event("input", { bubbles: true }));
    },
    () => {
      seen.filtered = shown();
      seen.count = q("#count").textContent;
      const row = q("#rows tr");
      row.focus();
      key(row, "Enter");
    },
    () => {
      seen.openTitle = q("#detail-title") && q("#detail-title").textContent;
      seen.focusInDetail = document.activeElement.id;
      seen.hash = decodeURIComponent(location.hash);
      const event = q("#detail g.event");
      event.focus();
      seen.eventLabel = event.getAttribute("aria-label");
      seen.eventSaid = q("#detail .event-said").textContent;
      key(document.activeElement, "Escape");
    },
    () => {
      seen.detailHidden = q("#detail").hidden;
      seen.focusBack = document.activeElement.children[0].textContent;
      q("#f-name").value = "";
      q("#f-verdict").value = "0";
      q("#f-verdict").dispatchEvent(new Event("input", { bubbles: true }));
    },
    () => {
      seen.failing = shown();
      q("#next").click();
    },
    () => {
      const out = document.createElement("pre");
      out.id = "driver";
      out.textContent = JSON.stringify(seen);
      document.body.append(out);
    },
  ];
  let step = 0;
  const next = () => { steps[step++](); if (step < steps.length) setTimeout(next, 400); };
  setTimeout(next, 100);
})();
</script>
"""


@needs_chromium
def test_keyboard_sorts_filters_opens_and_closes_a_test(browser_report: Any) -> None:
    path, tests = browser_report
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    driven = path.with_name("driven.html")
    driven.write_text(text.replace("</body>", DRIVER + "</body>"), encoding="utf-8")

    run = load_in_chromium(driven)

    assert run.rendered and [line for line in run.console_problems if "Uncaught" in line] == []
    seen = json.loads(html.unescape(run.dom.split('<pre id="driver">', 1)[1].split("</pre>")[0]))
    assert seen["byName"] == sorted(tests)[:3]
    assert (seen["nameSort"], seen["focusAfterSort"]) == ("ascending", "name")
    assert seen["filtered"] == [HOSTILE[1]] and seen["count"].startswith("1 of 257 tests match")
    assert (seen["openTitle"], seen["focusInDetail"]) == (HOSTILE[1], "detail-title")
    assert seen["hash"] == "#test=" + HOSTILE[1]
    assert seen["eventSaid"] == seen["eventLabel"] and "trim" in seen["eventSaid"]
    assert (seen["detailHidden"], seen["focusBack"]) == (True, HOSTILE[1])
    assert seen["failing"] == [HOSTILE[1]]


@needs_chromium
def test_chromium_draws_lines_only_for_events_that_moved_memory_when_crowded(
    tmp_path: Path,
) -> None:
    """A scenario collects at every step: a hundred collections that free
    nothing keep their markers, but only the two that moved memory (and the
    trim) get a line across the plot."""
    lines = snapshot_lines(1_000, peak_at=500).splitlines()
    for step in range(100):
        rss = 100 * MB + step
        lines.append(json.dumps({"t_ms": step * 9.0, "event": "gc", "rss_before_bytes": rss,
                                 "rss_after_bytes": rss}))  # fmt: skip
    for t_ms in (200.0, 700.0):
        lines.append(json.dumps({"t_ms": t_ms, "event": "gc", "rss_before_bytes": 140 * MB,
                                 "rss_after_bytes": 110 * MB}))  # fmt: skip
    lines.append(json.dumps({"t_ms": 900.0, "event": "trim"}))
    (tmp_path / "busy.jsonl").write_text("\n".join(lines) + "\n")
    tests = {"t::busy": {**results_test(150 * MB, 0), "samples_file": "busy.jsonl"}}
    path = tmp_path / "r.html"
    write(path, DashboardRun("r.json", document(tests), tmp_path))

    run = load_in_chromium(path, "#test=t%3A%3Abusy")

    assert run.rendered and run.console_problems == []
    detail = run.dom.split('<aside id="detail"', 1)[1]
    markers = re.findall(r'<g class="event ev-(\w+)".*?</g>', detail)
    assert len(markers) == 103
    lined = re.findall(r'<g class="event ev-(\w+)"[^>]*><line ', detail)
    assert sorted(lined) == ["gc", "gc", "trim"]
    assert '<details class="events-fold"><summary>Events (103): show the table</summary>' in detail


@pytest.mark.parametrize(
    ("session", "line"),
    [
        ({"idle_interval_ms": 10.0}, ["interval between windows", "10.00 ms"]),
        ({"idle_interval_ms": None}, ["interval between windows", "never"]),
        ({}, None),  # a file from before the key: nothing claimed
    ],
)
def test_the_context_says_how_the_sampler_rested(
    tmp_path: Path, session: dict[str, Any], line: list[str] | None
) -> None:
    _, data = write(tmp_path / "r.html", DashboardRun("r.json", document({}, **session)))
    rests = [entry for entry in data["summary"]["context"] if entry[0].startswith("interval betw")]
    assert rests == ([] if line is None else [line])
