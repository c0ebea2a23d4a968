"use strict";
// The dashboard's whole behaviour: no library, no network.  Every text from
// the data goes into the page as textContent or an attribute value, never as
// markup, so a test's name is shown and never run.
(function () {
  const root = document.documentElement;
  let errorCount = 0;

  function reportError(text) {
    errorCount += 1;
    root.setAttribute("data-automem-errors", String(errorCount));
    const list = document.getElementById("automem-errors");
    if (list) {
      const item = document.createElement("li");
      item.textContent = text;
      list.appendChild(item);
      list.hidden = false;
    }
  }
  window.addEventListener("error", function (event) {
    reportError("error: " + event.message + " (line " + event.lineno + ")");
  });
  window.addEventListener("unhandledrejection", function (event) {
    reportError("unhandled rejection: " + event.reason);
  });

  const D = JSON.parse(document.getElementById("automem-data").textContent);
  const C = {};
  D.columns.forEach(function (name, index) { C[name] = index; });
  const SVG_NS = document.getElementById("automem-svg-ns").namespaceURI;
  const rows = D.rows;
  const names = rows.map(function (row) { return row[C.name]; });
  const multiRun = D.runs.length > 1;
  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

  // -- formatting, as base/units.format_size writes sizes ----------------------
  function size(bytes) {
    if (bytes === null || bytes === undefined) return "–";
    const sign = bytes < 0 ? "-" : "";
    const magnitude = Math.abs(bytes);
    for (const [unit, factor] of D.units) {
      if (magnitude >= factor) return sign + (magnitude / factor).toFixed(1) + " " + unit;
    }
    return sign + magnitude.toFixed(0) + " B";
  }
  function rate(bytesPerS) { return bytesPerS === null ? "–" : size(bytesPerS) + "/s"; }
  function millis(value) {
    if (value === null || value === undefined) return "–";
    if (value >= 1000) return (value / 1000).toFixed(2) + " s";
    return value.toFixed(value < 10 ? 3 : 1) + " ms";
  }
  function count(n) { return n.toLocaleString("en-US"); }
  function counted(n, noun) { return count(n) + " " + noun + (n === 1 ? "" : "s"); }
  function wellFormed(text) { return text.replace(LONE_SURROGATE, "\uFFFD"); }
  function fragmentOf(index) { return "#test=" + encodeURIComponent(wellFormed(names[index])); }

  // -- building elements ----------------------------------------------------------
  function el(tag, attributes) {
    const element = document.createElement(tag);
    setAll(element, attributes);
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child !== null && child !== undefined) element.append(typeof child === "string" ? wellFormed(child) : child);
    }
    return element;
  }
  function svg(tag, attributes) {
    const element = document.createElementNS(SVG_NS, tag);
    setAll(element, attributes);
    return element;
  }
  // Text goes in well-formed: a lone surrogate (a test id from bytes that are
  // not UTF-8) cannot be shown anyway, and some browsers fail to serialise it.
  function setAll(element, attributes) {
    for (const key in attributes || {}) {
      const value = wellFormed(String(attributes[key]));
      if (key === "text") element.textContent = value;
      else element.setAttribute(key, value);
    }
  }
  function badge(kind, text) { return el("span", { class: "badge " + kind, text: text }); }
  function verdictBadge(verdict) {
    const name = D.verdicts[verdict];
    return badge("v-" + name, name.toUpperCase());
  }
  function pressureBadge(level) {
    return level === null ? "–" : badge("p-" + D.levels[level], D.levels[level]);
  }
  function statusBadge(status) {
    return status === null ? "–" : badge("s-" + D.statuses[status], D.statuses[status]);
  }

  function sparkline(values, label) {
    const known = values.filter(function (v) { return v !== null; });
    const width = 84, height = 20;
    const box = svg("svg", {
      class: "spark", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": label,
    });
    if (known.length === 0) return box;
    const low = Math.min.apply(null, known), high = Math.max.apply(null, known);
    const span = high - low || 1;
    const step = values.length > 1 ? (width - 4) / (values.length - 1) : 0;
    let points = "";
    values.forEach(function (v, i) {
      if (v === null) return;
      points += (2 + i * step).toFixed(1) + "," + (height - 2 - ((v - low) / span) * (height - 4)).toFixed(1) + " ";
    });
    box.append(svg("polyline", { points: points.trim() }));
    const last = values[values.length - 1], before = values[values.length - 2];
    if (last !== null && before !== null && before !== undefined && last > before) box.classList.add("up");
    box.append(svg("title", { text: label }));
    return box;
  }

  // -- the summary ------------------------------------------------------------------
  function testLink(nodeid) {
    return el("a", { href: "#test=" + encodeURIComponent(wellFormed(nodeid)), text: nodeid });
  }
  function card(label, value, bad) {
    return el("div", { class: "card" + (bad ? " bad" : "") }, el("b", { text: value }), label);
  }
  function ranking(title, entries, format) {
    const list = el("ol");
    for (const [nodeid, value] of entries) {
      list.append(el("li", {}, format(value) + "  ", testLink(nodeid)));
    }
    if (entries.length === 0) list.append(el("li", { text: "no tests" }));
    return el("div", {}, el("h3", { text: title }), list);
  }
  function renderSummary() {
    const S = D.summary;
    const section = document.getElementById("summary");
    const cards = el("div", { class: "cards" },
      card("tests monitored", count(S.tests)),
      card("memory failures", count(S.failures), S.failures > 0),
      card("expected failures (xfail)", count(S.expected)),
      card("memory curves", count(S.plots)));
    if (D.gate) cards.append(card("regressed against the run before", count(D.gate.counts.regressed), D.gate.counts.regressed > 0));
    const context = el("dl", { class: "context" });
    for (const [label, text] of S.context) context.append(el("dt", { text: label }), el("dd", { text: text }));
    section.append(el("h2", { text: "Summary" }), cards,
      el("div", { class: "cols" },
        ranking("Highest peaks", S.peaks, size),
        ranking("Most growth", S.growths, size),
        el("div", {}, el("h3", { text: "Measured with" }), context)));
    const notes = [];
    if (S.samplesMissing) notes.push(counted(S.samplesMissing, "samples file") + " missing");
    if (S.samplesBad) notes.push(counted(S.samplesBad, "samples file") + " unreadable");
    if (S.plotsLeftOut) notes.push(counted(S.plotsLeftOut, "curve") + " left out to keep the file small (failing tests and the highest peaks are kept)");
    if (notes.length) section.append(el("p", { class: "note", id: "samples-note", text: "Curves: " + notes.join("; ") + "." }));
    if (multiRun) section.append(renderRuns());
  }
  function renderRuns() {
    const G = D.gate;
    const counts = D.statuses.map(function (name) { return count(G.counts[name]) + " " + name; }).join(", ");
    const box = el("details", { id: "runs" }, el("summary", {}, el("strong", { text: "Across " + count(D.runs.length) + " runs: " }),
      counts + " — the newest (" + G.current + ") against the one before (" + G.baseline + "), as automem gate judges them"));
    for (const line of G.context) box.append(el("p", { class: "note", text: "Measured differently: " + line }));
    if (G.removed.length) {
      box.append(el("p", { class: "note", text: "Removed: " + G.removed.join(", ") +
        (G.removedMore ? " and " + count(G.removedMore) + " more" : "") }));
    }
    const table = el("table", { class: "runs" });
    table.append(el("thead", {}, el("tr", {}, el("th", { text: "run" }), el("th", { text: "written" }),
      el("th", { class: "num", text: "tests" }), el("th", { class: "num", text: "memory failures" }),
      el("th", { class: "num", text: "highest peak" }), el("th", { class: "num", text: "growth, all tests" }))));
    const body = el("tbody");
    for (const run of D.runs) {
      body.append(el("tr", {}, el("td", { class: "name", text: run.label }), el("td", { text: run.written_at }),
        el("td", { class: "num", text: count(run.tests) }), el("td", { class: "num", text: count(run.failures) }),
        el("td", { class: "num", text: size(run.peak) }), el("td", { class: "num", text: size(run.growth) })));
    }
    const trend = function (key) { return D.runs.map(function (run) { return run[key]; }); };
    body.append(el("tr", {}, el("td", { text: "trend" }), el("td"),
      el("td", { class: "num" }, sparkline(trend("tests"), "tests per run")),
      el("td", { class: "num" }, sparkline(trend("failures"), "memory failures per run")),
      el("td", { class: "num" }, sparkline(trend("peak"), "highest peak per run")),
      el("td", { class: "num" }, sparkline(trend("growth"), "growth of all tests per run"))));
    table.append(body);
    box.append(table);
    return box;
  }

  // -- the tests table: a page of rows at a time -------------------------------------
  const COLUMNS = [
    { key: "name", label: "Test", first: 1 },
    { key: "peak", label: "Peak", num: true, first: -1 },
    { key: "growth", label: "Growth", num: true, first: -1 },
    { key: "rate", label: "Rate", num: true, first: -1 },
    { key: "pressure", label: "Pressure", first: -1 },
    { key: "verdict", label: "Verdict", first: 1 },
  ];
  if (multiRun) {
    COLUMNS.push({ key: "gate", label: "Against the run before", first: 1 });
    COLUMNS.push({ key: "trend", label: "Peak per run", first: -1 });
  }
  function sortValue(key, index) {
    const row = rows[index];
    if (key === "name") return names[index];
    if (key === "trend") {
      const values = row[C.trend];
      const last = values[values.length - 1], before = values[values.length - 2];
      return last === null || before === null ? null : last - before;
    }
    return row[C[key]];
  }
  const state = { key: "verdict", direction: 1, page: 0, order: [], view: [], opened: null };

  function compareRows(a, b) {
    const x = sortValue(state.key, a), y = sortValue(state.key, b);
    if (x !== y) {
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * state.direction;
    }
    const verdicts = rows[a][C.verdict] - rows[b][C.verdict];
    if (verdicts) return verdicts;
    const peakA = rows[a][C.peak], peakB = rows[b][C.peak];
    if (peakA !== peakB) return peakA === null ? 1 : peakB === null ? -1 : peakB - peakA;
    return names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0;
  }
  function sortRows() {
    state.order = rows.map(function (_, index) { return index; });
    state.order.sort(compareRows);
  }
  let lowerNames = null;
  function filterRows() {
    const text = document.getElementById("f-name").value.trim().toLowerCase();
    const verdict = document.getElementById("f-verdict").value;
    const pressure = document.getElementById("f-pressure").value;
    const gate = multiRun ? document.getElementById("f-gate").value : "";
    if (text && lowerNames === null) lowerNames = names.map(function (name) { return name.toLowerCase(); });
    state.view = state.order.filter(function (index) {
      const row = rows[index];
      if (text && lowerNames[index].indexOf(text) < 0) return false;
      if (verdict !== "" && row[C.verdict] !== Number(verdict)) return false;
      if (pressure !== "" && row[C.pressure] !== Number(pressure)) return false;
      if (gate !== "" && row[C.gate] !== Number(gate)) return false;
      return true;
    });
    state.page = 0;
    renderRows();
  }
  function rowElement(index) {
    const row = rows[index];
    const verdict = D.verdicts[row[C.verdict]];
    const tr = el("tr", { tabindex: "0", "data-index": String(index), class: verdict },
      el("td", { class: "name", text: row[C.name] }),
      el("td", { class: "num", text: size(row[C.peak]) }),
      el("td", { class: "num", text: size(row[C.growth]) }),
      el("td", { class: "num", text: rate(row[C.rate]) }),
      el("td", {}, pressureBadge(row[C.pressure])),
      el("td", {}, verdictBadge(row[C.verdict])));
    if (multiRun) {
      tr.append(el("td", {}, statusBadge(row[C.gate])),
        el("td", {}, sparkline(row[C.trend], "peak per run: " + row[C.trend].map(size).join(", "))));
    }
    return tr;
  }
  function renderRows() {
    const perPage = D.pageRows;
    const pages = Math.max(1, Math.ceil(state.view.length / perPage));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * perPage;
    const shown = state.view.slice(start, start + perPage);
    document.getElementById("rows").replaceChildren.apply(document.getElementById("rows"), shown.map(rowElement));
    const counted = state.view.length === rows.length ? count(rows.length) + " tests"
      : count(state.view.length) + " of " + count(rows.length) + " tests match";
    document.getElementById("count").textContent = shown.length
      ? counted + ", showing " + count(start + 1) + "–" + count(start + shown.length)
      : counted + ".";
    document.getElementById("page").textContent = "Page " + count(state.page + 1) + " of " + count(pages);
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }
  function renderTableHead() {
    const head = document.getElementById("head");
    head.replaceChildren();
    for (const column of COLUMNS) {
      const th = el("th", { scope: "col", class: column.num ? "num" : "" },
        el("button", { type: "button", "data-key": column.key, text: column.label }));
      if (column.key === state.key) th.setAttribute("aria-sort", state.direction > 0 ? "ascending" : "descending");
      head.append(th);
    }
  }
  function sortBy(key) {
    const column = COLUMNS.find(function (c) { return c.key === key; });
    state.direction = state.key === key ? -state.direction : column.first;
    state.key = key;
    sortRows();
    renderTableHead();
    filterRows();
    const button = document.querySelector('#head button[data-key="' + key + '"]');
    if (button) button.focus();
  }
  function addOptions(select, labels, values) {
    select.append(el("option", { value: "", text: "any" }));
    labels.forEach(function (label, i) { select.append(el("option", { value: String(values[i]), text: label })); });
  }
  function setUpTable() {
    const indices = function (list) { return list.map(function (_, i) { return i; }); };
    addOptions(document.getElementById("f-verdict"), D.verdicts, indices(D.verdicts));
    addOptions(document.getElementById("f-pressure"), D.levels, indices(D.levels));
    if (multiRun) {
      const label = el("label", {}, "Against the run before", el("select", { id: "f-gate" }));
      document.getElementById("filters").append(label);
      addOptions(document.getElementById("f-gate"), D.statuses, indices(D.statuses));
    }
    let pending = null;
    document.getElementById("filters").addEventListener("input", function (event) {
      clearTimeout(pending);
      pending = setTimeout(filterRows, event.target.id === "f-name" ? 150 : 0);
    });
    document.getElementById("filters").addEventListener("submit", function (event) { event.preventDefault(); });
    document.getElementById("head").addEventListener("click", function (event) {
      const button = event.target.closest("button[data-key]");
      if (button) sortBy(button.getAttribute("data-key"));
    });
    const body = document.getElementById("rows");
    body.addEventListener("click", function (event) {
      const tr = event.target.closest("tr[data-index]");
      if (tr) openTest(Number(tr.getAttribute("data-index")));
    });
    body.addEventListener("keydown", function (event) {
      const tr = event.target.closest("tr[data-index]");
      if (tr && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        openTest(Number(tr.getAttribute("data-index")));
      }
    });
    document.getElementById("prev").addEventListener("click", function () { state.page -= 1; renderRows(); });
    document.getElementById("next").addEventListener("click", function () { state.page += 1; renderRows(); });
    sortRows();
    renderTableHead();
    filterRows();
  }

  // -- one test: its curve and the investigator's text, on demand ---------------------
  const byName = new Map();
  names.forEach(function (name, index) { byName.set(wellFormed(name), index); });

  function openTest(index) {
    state.opened = index;
    if (location.hash === fragmentOf(index)) showTest(index);
    else location.hash = fragmentOf(index);
  }
  function closeTest() {
    if (location.hash) location.hash = "";
    else hideTest();
  }
  function route() {
    const hash = location.hash;
    if (!hash.startsWith("#test=")) { hideTest(); return; }
    let name = null;
    try { name = decodeURIComponent(hash.slice(6)); } catch (error) { name = null; }
    const index = name === null ? undefined : byName.get(name);
    if (index === undefined) showUnknown(name === null ? hash.slice(6) : name);
    else showTest(index);
  }
  function panel(title) {
    const box = document.getElementById("detail");
    const heading = el("h2", { id: "detail-title", tabindex: "-1", text: title });
    const close = el("button", { type: "button", class: "close", text: "Close (Esc)" });
    close.addEventListener("click", closeTest);
    box.replaceChildren(el("div", { class: "detail-head" }, heading, close));
    box.hidden = false;
    return { box: box, heading: heading };
  }
  function showUnknown(name) {
    const view = panel("No such test");
    view.box.append(el("p", { text: "This report has no test named " + JSON.stringify(name) + "." }));
    view.heading.focus();
  }
  function hideTest() {
    const box = document.getElementById("detail");
    if (box.hidden) return;
    box.hidden = true;
    box.replaceChildren();
    const row = state.opened === null ? null : document.querySelector('#rows tr[data-index="' + state.opened + '"]');
    if (row) row.focus();
  }
  function sourceOf(row) { return row[C.source] === null ? "not recorded" : D.sources[row[C.source]]; }
  function figureLine(row) {
    const line = el("p", { class: "figures" });
    const source = sourceOf(row);
    const parts = [
      ["Peak", size(row[C.peak])], ["Growth", size(row[C.growth])], ["Rate", rate(row[C.rate])],
      ["Pressure", row[C.pressure] === null ? "–" : D.levels[row[C.pressure]]],
      ["Verdict", D.verdicts[row[C.verdict]].toUpperCase()], ["Peak source", source],
      ["Samples", row[C.samples] === null ? "–" : count(row[C.samples])],
      ["Interval p50 / p99", millis(row[C.p50]) + " / " + millis(row[C.p99])],
      ["Duration", row[C.duration] === null ? "–" : millis(row[C.duration] * 1000)],
    ];
    for (const [label, value] of parts) line.append(el("span", {}, label + ": ", el("strong", { text: value })));
    return line;
  }
  function showTest(index) {
    state.opened = index;
    const row = rows[index];
    const detail = D.details[String(index)] || {};
    const view = panel(names[index]);
    view.box.append(figureLine(row));
    const left = el("div", {});
    const right = el("div", {}, el("h3", { text: "Investigator" }));
    if (detail.curve) left.append(plot(detail.curve, detail.budget, names[index], row[C.peak], sourceOf(row)));
    else left.append(el("div", { class: "noplot", text: noPlotText(detail.noplot) }));
    if (multiRun) left.append(runsOfTest(row));
    if (detail.msg) right.append(el("p", { class: "message", text: detail.msg }));
    if (detail.reg) {
      right.append(el("h3", { text: "Regressed against the run before (automem gate)" }));
      right.append(el("ul", {}, ...detail.reg.map(function (text) { return el("li", { text: text }); })));
    }
    if (detail.viol && !detail.report) right.append(el("ul", {}, ...detail.viol.map(function (text) { return el("li", { text: text }); })));
    if (detail.report) right.append(el("pre", { class: "report", tabindex: "0", text: detail.report }));
    if (detail.find) {
      right.append(el("h3", { text: "Findings" }));
      right.append(el("ul", {}, ...detail.find.map(function (f) {
        return el("li", {}, el("strong", { text: f[0] + ": " }), f[1], f[2] ? el("div", { class: "note", text: f[2] }) : null);
      })));
    }
    if (detail.budget) {
      const limits = [];
      if (detail.budget.peak_bytes !== undefined) limits.push("peak " + size(detail.budget.peak_bytes));
      if (detail.budget.growth_bytes !== undefined) limits.push("growth " + size(detail.budget.growth_bytes));
      if (detail.budget.rate_bytes_per_s !== undefined) limits.push("rate " + rate(detail.budget.rate_bytes_per_s));
      right.append(el("p", { class: "note", text: "Budget: " + limits.join(", ") + "." }));
    }
    if (!detail.msg && !detail.report && !detail.find && !detail.reg) {
      right.append(el("p", { text: "Nothing to report: within its budget, no findings." }));
    }
    view.box.append(el("div", { class: "detail-grid" }, left, right));
    view.box.append(el("p", {}, el("a", { href: fragmentOf(index), text: "Link to this test" })));
    view.heading.focus();
  }
  function noPlotText(why) {
    if (why === "missing") return "No plot: this test's samples file is missing.";
    if (why === "bad") return "No plot: this test's samples file could not be read.";
    if (why === "left out") return "No plot: left out to keep the report small (the failing tests and the highest peaks have theirs).";
    return "No plot: no samples were kept for this test (run with --automem-samples).";
  }
  function runsOfTest(row) {
    const table = el("table", { class: "events" });
    table.append(el("caption", { text: "Peak per run (oldest first)" }));
    D.runs.forEach(function (run, i) {
      table.append(el("tr", {}, el("td", { class: "name", text: run.label }), el("td", { class: "num", text: size(row[C.trend][i]) })));
    });
    return table;
  }

  // -- the plot: memory over time, bands, budget, peak, events ------------------------
  function niceStep(span, parts) {
    const raw = span / parts;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }
  function sizeTicks(low, high) {
    let unit = 1;
    for (const [, factor] of D.units) if (high - low >= factor) { unit = factor; break; }
    const step = niceStep((high - low) / unit, 5) * unit;
    const ticks = [];
    for (let v = Math.ceil(low / step) * step; v <= high; v += step) ticks.push(v);
    return ticks;
  }
  function axisTime(value) {
    const rounded = function (v) { return String(Number(v.toPrecision(4))); };
    return value >= 1000 ? rounded(value / 1000) + " s" : rounded(value) + " ms";
  }
  function eventText(event) {
    const [t, kind, before, after, detail] = event;
    let text = kind + " at " + millis(t);
    if (before !== null && after !== null) {
      const effect = after - before;
      text += ": " + size(before) + " → " + size(after) + " (" + (effect >= 0 ? "+" : "") + size(effect) + ")";
    }
    return detail ? text + ", " + detail : text;
  }
  // More events than this on one plot: collections that moved memory by
  // less than a fiftieth of the plot's height keep only their marker.
  const MAX_EVENT_LINES = 20;
  function plot(curve, budget, title, peakBytes, peakSourceText) {
    const W = 680, H = 320, L = 72, R = 16, T = 14, B = 36;
    const t = curve.t, m = curve.m, n = m.length;
    const box = el("div", {});
    let tMax = n ? t[n - 1] : 0;
    for (const e of curve.ev) tMax = Math.max(tMax, e[0]);
    tMax = tMax || 1;
    let top = 0, bottom = 0, peakAt = 0;
    for (let i = 0; i < n; i++) {
      if (m[i] > top) { top = m[i]; peakAt = i; }
      bottom = Math.min(bottom, m[i]);
    }
    const budgetPeak = budget && budget.peak_bytes !== undefined ? budget.peak_bytes : null;
    const highestSample = top;
    const exactPeak = peakBytes !== null && peakBytes > highestSample * 1.01 ? peakBytes : null;
    if (budgetPeak !== null) top = Math.max(top, budgetPeak);
    if (exactPeak !== null) top = Math.max(top, exactPeak);
    for (const boundary of curve.th) if (boundary > top && boundary <= top * 1.3) top = boundary;
    top = top * 1.08 || 1;
    const x = function (v) { return L + (v / tMax) * (W - L - R); };
    const y = function (v) { return T + (1 - (v - bottom) / (top - bottom)) * (H - T - B); };
    const basis = curve.basis === "absolute" ? "resident memory" : "memory above the test's start";
    const chart = svg("svg", {
      class: "plot", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "Memory over time of " + title + ": highest sample " + size(n ? m[peakAt] : 0) +
        (budgetPeak !== null ? ", budget " + size(budgetPeak) : ""),
    });
    const bounds = [bottom].concat(curve.th, [Infinity]);
    D.levels.forEach(function (level, k) {
      const low = Math.max(bounds[k], bottom), high = Math.min(bounds[k + 1], top);
      if (high <= low) return;
      chart.append(svg("rect", { class: "band-" + level, x: L, y: y(high), width: W - L - R, height: y(low) - y(high) }));
      chart.append(svg("text", { class: "band-label", x: L + 6, y: y(low) - 5,
        text: k === 0 ? level : level + " from " + size(bounds[k]) }));
    });
    for (const v of sizeTicks(bottom, top)) {
      chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      chart.append(svg("text", { class: "axis", x: L - 6, y: y(v) + 3, "text-anchor": "end", text: size(v) }));
    }
    const xStep = niceStep(tMax, 6);
    for (let v = 0; v <= tMax + 1e-9; v += xStep) {
      chart.append(svg("text", { class: "axis", x: x(v), y: H - B + 14, "text-anchor": "middle", text: axisTime(v) }));
    }
    chart.append(svg("text", { class: "axis", x: L, y: H - 6, text: "time since the test's start; " + basis }));
    let points = "";
    for (let i = 0; i < n; i++) points += x(t[i]).toFixed(1) + "," + y(m[i]).toFixed(1) + " ";
    chart.append(svg("polyline", { class: "curve", points: points.trim() }));
    if (budgetPeak !== null) {
      chart.append(svg("line", { class: "budget", x1: L, x2: W - R, y1: y(budgetPeak), y2: y(budgetPeak) }));
      chart.append(svg("text", { class: "budget-label", x: L + 6, y: y(budgetPeak) - 4, text: "peak budget " + size(budgetPeak) }));
    }
    if (exactPeak !== null) {
      chart.append(svg("line", { class: "exact", x1: L, x2: W - R, y1: y(exactPeak), y2: y(exactPeak) }));
      chart.append(svg("text", { class: "exact-label", x: L + 6, y: y(exactPeak) - 4,
        text: "exact peak " + size(exactPeak) + ", between samples" }));
    }
    // Many events (a scenario collects at every step) would hide the curve
    // behind their lines: then only those that moved memory visibly, or are
    // not collections, get a line; the rest keep their marker at the top.
    const crowded = curve.ev.length > MAX_EVENT_LINES;
    const visible = (top - bottom) / 50;
    for (const event of curve.ev) {
      const kind = /^(gc|gc_request|trim|spawn|start|level|warning|crash|exit|retire)$/.test(event[1]) ? event[1] : "other";
      const text = eventText(event);
      const group = svg("g", { class: "event ev-" + kind, tabindex: "0", role: "img", "aria-label": text });
      const ex = x(event[0]);
      const moved = event[2] !== null && event[3] !== null && Math.abs(event[3] - event[2]) >= visible;
      if (!crowded || moved || !/^gc/.test(kind)) group.append(svg("line", { x1: ex, x2: ex, y1: T, y2: H - B }));
      group.append(svg("path", { d: "M" + (ex - 5) + "," + T + " h10 l-5,8 z" }));
      group.append(svg("title", { text: text }));
      chart.append(group);
    }
    if (n) {
      const px = x(t[peakAt]), py = y(m[peakAt]);
      chart.append(svg("circle", { class: "peak", cx: px, cy: py, r: 5 }));
      const below = py < T + 40;
      chart.append(svg("text", { class: "peak-label", x: px + (px > W / 2 ? -8 : 8), y: below ? py + 16 : py - 8,
        "text-anchor": px > W / 2 ? "end" : "start", text: "highest sample " + size(m[peakAt]) }));
    }
    chart.append(svg("line", { class: "grid", x1: L, x2: L, y1: T, y2: H - B }));
    box.append(chart);
    const legend = el("div", { class: "legend" },
      el("span", { text: "— memory (" + count(n) + " points" + (curve.from ? " of " + count(curve.from) + ", downsampled, highest kept" : "") + ")" }),
      el("span", { text: "● highest sample" }));
    if (budgetPeak !== null) legend.append(el("span", { text: "- - peak budget" }));
    if (exactPeak !== null) legend.append(el("span", { text: "··· exact peak (" + peakSourceText + ")" }));
    if (curve.ev.length) legend.append(el("span", { text: "▼ events (focus or hover for details)" }));
    box.append(legend);
    if (curve.ev.length) {
      // A tooltip shows on hover only: an event reached with Tab says itself here.
      const said = el("div", { class: "event-said", "aria-live": "polite" });
      chart.addEventListener("focusin", function (e) {
        const g = e.target.closest("g.event");
        said.textContent = g ? g.getAttribute("aria-label") : "";
      });
      chart.addEventListener("focusout", function () { said.textContent = ""; });
      box.append(said);
    }
    if (curve.ev.length > MAX_EVENT_LINES) {
      // A long table would push the report out of sight: folded, its caption says how many.
      box.append(el("details", { class: "events-fold" },
        el("summary", { text: "Events (" + count(curve.ev.length + curve.evMore) + "): show the table" }),
        eventTable(curve)));
    } else if (curve.ev.length) {
      box.append(eventTable(curve));
    }
    return box;
  }
  function eventTable(curve) {
    const table = el("table", { class: "events" });
    table.append(el("caption", { text: "Events (" + count(curve.ev.length + curve.evMore) + ")" }));
    table.append(el("tr", {}, el("th", { text: "time" }), el("th", { text: "event" }),
      el("th", { class: "num", text: "before" }), el("th", { class: "num", text: "after" }), el("th", { text: "detail" })));
    for (const [t, kind, before, after, detail] of curve.ev) {
      table.append(el("tr", {}, el("td", { class: "num", text: millis(t) }), el("td", { text: kind }),
        el("td", { class: "num", text: size(before) }), el("td", { class: "num", text: size(after) }),
        el("td", { text: detail })));
    }
    if (curve.evMore) table.append(el("tr", {}, el("td", { colspan: "5", text: "and " + count(curve.evMore) + " more, not shown" })));
    return table;
  }

  // -- start ---------------------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !document.getElementById("detail").hidden) {
      event.preventDefault();
      closeTest();
    }
  });
  window.addEventListener("hashchange", route);
  renderSummary();
  setUpTable();
  route();
  document.getElementById("app").removeAttribute("aria-busy");
  root.setAttribute("data-automem-ready", "1");
  root.setAttribute("data-automem-ready-ms", String(Math.round(performance.now())));
})();
