"""Every default, mark and tunable of the package, each defined once.

A user who wonders "what is the default interval?" or "when is growth a
warning?" finds the answer here, and the plugin, the CLI, the automaton and
the investigator import the value rather than writing it again.  Each value
says at its definition what it is and why it has that value.  Sizes are int
bytes and times float seconds unless the name says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

# ------------------------------------------------------------------- size units

#: Binary units, as the parser reads them: 1 MB = 1 MiB = 1024 × 1024 bytes,
#: the unit ``ps``, ``top`` and RSS figures are usually read in.
KB = 1 << 10
MB = 1 << 20
GB = 1 << 30
TB = 1 << 40

# ------------------------------------------------------------------- sampling

#: The sampler's interval: 1 ms catches a test's short-lived peaks, and the
#: sampler runs in its own process, so the test does not pay for it.
DEFAULT_INTERVAL_MS = 1.0
DEFAULT_INTERVAL_TEXT = f"{DEFAULT_INTERVAL_MS:g}ms"
#: A sampler cannot usefully wake more often than every 50 µs.
MIN_INTERVAL_MS = 0.05
#: Sampling less often than once a second sees no sample in most tests.
MAX_INTERVAL_MS = 1000.0
#: The interval's range as the options' help states it.
INTERVAL_RANGE_TEXT = f"{MIN_INTERVAL_MS:g}ms to {MAX_INTERVAL_MS / 1000:g}s"
#: The plugin's sampler rests at this interval between windows that read
#: every sample (budgeted tests, kept samples, the ``memory_monitor``
#: fixture): a blanket ``--automem`` test's peak comes from the kernel mark,
#: and each wake-up of the sampler costs ~20 µs of CPU, which ``pytest -n``
#: workers share (docs/monitor.md, "When the sampler rests").
DEFAULT_IDLE_INTERVAL_MS = 10.0
DEFAULT_IDLE_INTERVAL_TEXT = f"{DEFAULT_IDLE_INTERVAL_MS:g}ms"
#: Processes of a tree followed at once (``tree=True``): each costs a read
#: per sample (figures in docs/benchmarks.md); more are counted, not followed.
DEFAULT_MAX_PROCESSES = 128
#: Samples the shared ring holds: 2**18 is about 4.4 minutes at 1 ms, in
#: 4 MiB of shared memory.
DEFAULT_CAPACITY = 1 << 18

# ------------------------------------------------------------------- pressure

#: Where MEDIUM, HIGH and CRITICAL pressure begin.  Measured above a test's
#: baseline, 50 MB is more than most unit tests add; 500 MB is a share of a
#: CI runner's memory that crowds out parallel workers.
DEFAULT_MEDIUM_PRESSURE_BYTES = 50 * MB
DEFAULT_HIGH_PRESSURE_BYTES = 200 * MB
DEFAULT_CRITICAL_PRESSURE_BYTES = 500 * MB
#: The same thresholds as the text the ini setting and ``--thresholds`` take.
DEFAULT_THRESHOLDS_TEXT = ",".join(
    f"{size // MB}MB"
    for size in (
        DEFAULT_MEDIUM_PRESSURE_BYTES,
        DEFAULT_HIGH_PRESSURE_BYTES,
        DEFAULT_CRITICAL_PRESSURE_BYTES,
    )
)

# ------------------------------------------------------------------- growth rate

#: Sustained growth rates: below 1 MB/s is the target, above 5 MB/s a
#: warning, above 10 MB/s critical (a CI runner fills within minutes).
RATE_TARGET_BYTES_PER_S = 1 * MB
RATE_WARNING_BYTES_PER_S = 5 * MB
RATE_CRITICAL_BYTES_PER_S = 10 * MB
#: Windows shorter than this give no growth-rate finding: too short for a
#: trend.  A test's call that lasts this long is measured in full, so its
#: rate can be judged.
MIN_RATE_WINDOW_S = 0.5
#: Windows with fewer samples than this give no growth rate: a rate over a
#: few milliseconds is an allocation burst, not sustained growth.
MIN_RATE_SAMPLES = 100
#: A window's least-squares growth rate is linear in its samples; longer
#: windows use an even subsample of this many, which keeps closing one cheap.
LEAST_SQUARES_MAX_POINTS = 20_000
#: A scenario's Theil–Sen leak slope is quadratic in its points (every pair),
#: so a long run is evenly subsampled to far fewer than a window's rate.
THEIL_SEN_MAX_POINTS = 300

# ------------------------------------------------------------------- investigator marks

#: Growth below this is allocator noise: a phase's growth is not shown, and
#: RSS growth is not compared with the traced heap.
GROWTH_NOISE_BYTES = 1 * MB
#: A heap (or traced) growth below this share of the RSS growth means the
#: memory grows outside what the allocators and tracemalloc see.
OUTSIDE_HEAP_SHARE = 0.25
#: Scenario leak slopes below this are allocator noise, not a leak worth a finding.
LEAK_FINDING_BYTES_PER_ITERATION = 256
#: Object efficiency: an automaton should hold more than 10 objects per MB;
#: fewer means bulk data lives inside its objects.
OBJECTS_PER_MB_TARGET = 10.0
#: A list inside an automaton object this long, or this large as JSON, is
#: bulk data worth a finding.
LARGE_ARRAY_MIN_ELEMENTS = 10_000
LARGE_ARRAY_MIN_BYTES = 1 * MB

# ------------------------------------------------------------------- tracing and reports

#: tracemalloc frames kept per allocation: enough to reach the caller's line
#: through a few helper layers, few enough to keep tracing's memory small.
TRACE_FRAMES = 10
#: Allocation sites and growing types an attribution keeps, largest first.
ATTRIBUTION_TOP = 10
#: Objects allocated under tracing that an attribution asks the type of, at
#: most: each costs tens of µs under tracing (docs/benchmarks.md,
#: attribution_cost.py), so a leak of millions of objects is typed from a
#: sample, and the report says so.
TYPE_SCAN_MAX_OBJECTS = 20_000
#: Extra steps traced to attribute a leak: enough for a per-step retention
#: to stand out of one-off noise, few enough to keep tracing's cost small.
ATTRIBUTION_ITERATIONS = 5
#: Steps traced before the baseline, so one-time costs (lazy caches,
#: interned strings) are not blamed on the iterations.
ATTRIBUTION_WARMUP = 1
#: A text or Markdown report shows this many findings, and this many detail
#: lines of each, then "… and N more": failure messages stay readable.
FINDINGS_SHOWN = 10
DETAILS_SHOWN = 5
#: ``automem investigate`` on a results file names this many tests with the
#: highest peaks, and as many with the most growth: where to look first.
WORST_TESTS_SHOWN = 5
#: Detail lines shown of a finding that locates a failure (a stack, the
#: lines that allocated): the reader came for these, so more are shown.
WHERE_DETAILS_SHOWN = 20

# ------------------------------------------------------------------- automaton

#: ``OptimizationConfig``'s defaults: the limits of a memory-optimized
#: automaton at LOW and MEDIUM pressure.
DEFAULT_MAX_OBJECTS = 2000
DEFAULT_MAX_EXECUTION_HISTORY = 500
DEFAULT_GC_INTERVAL_S = 5.0
DEFAULT_TRIM_INTERVAL_S = 10.0
DEFAULT_MEMORY_PRESSURE_THRESHOLD_BYTES = 200 * MB
DEFAULT_SPIKE_THRESHOLD_BYTES = 5 * MB
DEFAULT_TRIM_FRACTION = 0.10
#: ``run_scenario``'s steps: warm-up steps fill one-time caches before the
#: slope is measured; 100 iterations give the robust slope enough points to
#: ignore a few outlier steps.
SCENARIO_ITERATIONS = 100
SCENARIO_WARMUP = 10
#: Tighter limits at HIGH and CRITICAL pressure, by level name: fewer objects
#: and history entries, and GCs and trims more often.
PRESSURE_PROFILE_LIMITS: Mapping[str, Mapping[str, float]] = {
    "HIGH": {
        "max_objects": 1000,
        "max_execution_history": 250,
        "gc_interval": 3.0,
        "trim_interval": 7.0,
    },
    "CRITICAL": {
        "max_objects": 500,
        "max_execution_history": 100,
        "gc_interval": 2.0,
        "trim_interval": 5.0,
    },
}

# ------------------------------------------------------------------- the spawner

#: The least time between two replacements of a spawner's child: a new
#: process needs a moment to load its state and settle before its memory
#: says anything (the original's 5 s).
DEFAULT_SPAWN_COOLDOWN_S = 5.0
#: A child that crashes is restarted at most this many times within
#: ``DEFAULT_CRASH_WINDOW_S``; one more crash ends the run (no crash loop).
DEFAULT_CRASH_RESTARTS = 3
DEFAULT_CRASH_WINDOW_S = 60.0
#: The spawner's growth rate is measured over this much of the newest
#: curve: long enough to smooth a single allocation, short enough to warn
#: within a second or two of a sustained climb.
SPAWNER_RATE_WINDOW_S = 1.0
#: The spawner's events file keeps the lowest and the highest sample of each
#: stretch this long: 20 lines a second (about 600 for a 30 s run), the
#: exact peak among them.
SPAWNER_SAMPLE_BUCKET_S = 0.1
#: Events a spawner keeps in memory (the newest): a run of days whose level
#: flaps at a boundary must not grow without bound; the events file keeps all.
SPAWNER_EVENTS_KEPT = 10_000

# ------------------------------------------------------------------- snapshots and CLI

#: Snapshot files kept in a folder: the newest windows to look back on, few
#: enough that a long CI job cannot fill its disk.
DEFAULT_KEEP = 50
#: Snapshot files in a folder above this total are a finding.
SNAPSHOTS_MAX_TOTAL_BYTES = 100 * MB
#: Points a test's kept samples are downsampled to (``--automem-samples``,
#: and failing and budgeted tests beside the results file): enough for a plot
#: as wide as a screen, with the exact peak among them (min/max buckets).
SAMPLES_MAX_POINTS = 500
#: Garbage collections a kept window records as events during the call, at
#: most (the first ones; the header counts the rest).  A scenario collects
#: after every step: a million steps must not hold a million events in the
#: very memory being measured.
SAMPLES_MAX_EVENTS = 500
#: How long a command may take to exit once asked to stop (``--grace``).
DEFAULT_GRACE = "5s"
#: How often ``automem monitor`` prints a live line (``--every``).
DEFAULT_LIVE_EVERY = "1s"

# ------------------------------------------------------------------- snapshot analysis

#: ``automem analyze``'s steepest sustained rate compares the memory of two
#: adjacent rate windows (MIN_RATE_WINDOW_S each), sliding by this fraction
#: of a window: fine enough to find the steepest stretch, coarse enough that
#: minutes of 1 ms samples are analysed in about a second.
ANALYSIS_RATE_STEP_FRACTION = 0.1
#: ... and slides over at most this many starts: a snapshot longer than
#: ~80 minutes is scanned at evenly spaced starts, so no file's length (or
#: hostile sample times) makes the scan unbounded.
ANALYSIS_MAX_WINDOWS = 100_000
#: The overall Theil–Sen slope of a snapshot uses an even subsample of this
#: many points: it is quadratic in them (100 points: ~0.6 ms), and a folder
#: may hold 10,000 snapshots.
ANALYSIS_SLOPE_MAX_POINTS = 100
#: Text and Markdown reports show this many snapshots (worst first), marks
#: passed and events (largest effect first), then say how many they left out.
ANALYSIS_SNAPSHOTS_SHOWN = 10
ANALYSIS_MARKS_SHOWN = 20
ANALYSIS_EVENTS_SHOWN = 10

# ------------------------------------------------------------------- the gate

#: ``automem gate``: a test regresses on a metric when it got worse by more
#: than this fraction of its baseline AND by more than this floor.  The floor
#: keeps small tests' noise out, the fraction large tests' proportional noise.
#: Measured (docs/ci.md, "The rule"): attrs, python-dateutil and packaging
#: (70,700 tests), each run three times serially and three times with -n 2
#: under ``--automem``, every ordered pair of runs gated: the largest change
#: beyond 10 % was 3.4 MB in peak (a Hypothesis test of python-dateutil) and
#: 2.7 MB in growth (packaging).  A 4 MB floor gives no false alarm there;
#: 1 MB gave 85.
GATE_MAX_INCREASE_PEAK = 0.10
GATE_MIN_DELTA_PEAK_BYTES = 4 * MB
GATE_MAX_INCREASE_GROWTH = 0.10
GATE_MIN_DELTA_GROWTH_BYTES = 4 * MB
#: A rate is growth over a window's duration, so the duration's own jitter
#: moves it: a wider fraction.  The floor is the sustained rate the plugin
#: already calls fine (RATE_TARGET_BYTES_PER_S): a change below it is no
#: regression worth a red pipeline.
GATE_MAX_INCREASE_RATE = 0.25
GATE_MIN_DELTA_RATE_BYTES_PER_S = float(RATE_TARGET_BYTES_PER_S)
#: A scenario's leak is a slope of RSS over iterations, and RSS moves in
#: pages: a change below one 4 KiB page per iteration is within that grain.
GATE_MAX_INCREASE_LEAK = 0.25
GATE_MIN_DELTA_LEAK_BYTES_PER_ITERATION = 4 * KB
#: Regressed tests listed in the gate's terminal table, and the new and
#: removed node ids named, before "… and N more".
GATE_ROWS_SHOWN = 20
GATE_IDS_SHOWN = 5
#: GitHub shows at most 10 error annotations per step: more would be dropped
#: by GitHub anyway, in an order we do not choose.
GATE_ANNOTATIONS_MAX = 10
#: GitHub refuses a step summary above 1 MiB; the gate's stays below it.
STEP_SUMMARY_MAX_BYTES = 1 << 20

# ------------------------------------------------------------------- baselines and budgets

#: Where ``automem baseline update`` writes without ``--baseline``: beside the
#: project, under a name that says what it is, to be committed.
DEFAULT_BASELINE_PATH = "automem-baseline.json"
#: ``automem budgets suggest``: headroom over the worst figure measured, so
#: run-to-run noise (up to ~10 % on the real suites measured) does not fail a test.
DEFAULT_BUDGET_MARGIN_TEXT = "25%"
#: ... and a floor, so a test that allocates almost nothing is not failed by
#: the noise of a page or two (the real suites' 99th percentile spread was 96 KB).
DEFAULT_BUDGET_MIN_TEXT = "1MB"
#: Where ``automem budgets suggest`` writes without ``-o``; the ini
#: ``automem_budgets`` names it.
DEFAULT_BUDGETS_PATH = "automem-budgets.json"

# ------------------------------------------------------------------- the HTML dashboard

#: Table rows drawn at once: a page of rows builds in a few milliseconds
#: however many tests the file holds (100,000 rows drawn at once freeze a page).
DASHBOARD_PAGE_ROWS = 100
#: Tests named in the summary's highest peaks and growths.
DASHBOARD_TOP_TESTS = 5
#: Tests whose memory curve is embedded, failing tests first, then the highest
#: peaks: each curve costs ~7 KB of HTML, so 300 keep a report of any suite
#: below ~2 MB of curves; a test left out says so where its plot would be.
DASHBOARD_MAX_PLOTS = 300
#: Points of one curve: a snapshot file already holds at most ~500 (min/max
#: buckets keep the peak); a longer one (a spawner's log) is downsampled to this.
DASHBOARD_MAX_POINTS = 500
#: Events marked on one plot; the rest are counted below it.
DASHBOARD_MAX_EVENTS = 200
#: A samples file larger than this is not read (a link to a device or a huge
#: log): a plot needs ~500 points, which fit in a few hundred KB.
DASHBOARD_MAX_SAMPLES_FILE_BYTES = 64 * MB
