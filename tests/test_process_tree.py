"""A process tree counts whole: the sampler's tree, the table, tree monitors, ``automem monitor``.

The tree logic is first tested in process against a fake process table
(deterministic: processes start, exit and are reaped between two calls),
then against real processes: a shell running a job, a watched pid that
forks, processes that come and go, the cap.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_automem.measure import sampler_child as sampler
from pytest_automem.measure.monitor import MemoryMonitor
from pytest_automem.measure.process_tree import TreeReport, read_process_table
from pytest_automem.snapshots.files import list_snapshots, read_snapshot

MIB = 1 << 20
LINUX = sys.platform.startswith("linux")
TIMEOUT_S = 60
CAPACITY = 16

needs_procfs = pytest.mark.skipif(not LINUX, reason="reads /proc")


# -- the sampler's tree, against a fake process table -------------------------


class FakeProcess:
    """A reader on one fake process: what the sampler's procfs reader gives."""

    def __init__(self, system: FakeSystem, pid: int) -> None:
        self.system = system
        self.pid = pid

    def rss_bytes(self) -> int:
        return self.system.rss.get(self.pid, 0)

    def name_and_mark(self) -> tuple[bytes, int]:
        return self.system.names.get(self.pid, b""), self.system.marks.get(self.pid, 0)

    def close(self) -> None:
        self.system.closed.append(self.pid)


class FakeSystem:
    """Processes that start, exit (a zombie: RSS 0) and are reaped (gone from the list)."""

    def __init__(self) -> None:
        self.parents: dict[int, int] = {1: 0, 50: 1}  # init, and someone else's process
        self.rss: dict[int, int] = {1: 4 * MIB, 50: 7 * MIB}
        self.names: dict[int, bytes] = {}
        self.marks: dict[int, int] = {}
        self.closed: list[int] = []
        #: The pid the kernel gave last; None: unknown, every look lists.
        self.last_pid: int | None = None

    def start(self, pid: int, parent: int, rss: int, name: bytes = b"job") -> None:
        self.parents[pid] = parent
        self.rss[pid] = rss
        self.names[pid] = name

    def exit(self, pid: int) -> None:
        self.rss[pid] = 0
        for child, parent in self.parents.items():
            if parent == pid:
                self.parents[child] = 1  # orphans go to init

    def reap(self, pid: int) -> None:
        del self.parents[pid]
        del self.rss[pid]

    def source(self) -> sampler.ProcessSource:
        def open_process(pid: int) -> Any:
            if pid not in self.parents:
                raise ProcessLookupError(pid)
            return FakeProcess(self, pid)

        return sampler.ProcessSource(
            open_process, lambda: set(self.parents), self.parents.get, lambda: self.last_pid
        )


def new_tree(
    system: FakeSystem, root: int = 100, max_processes: int = 8
) -> tuple[sampler.ProcessTree, bytearray]:
    """A tree on ``root`` over a ring in plain memory, as the sampler child makes it."""
    buffer = bytearray(sampler.ring_size_bytes(CAPACITY, max_processes))
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, CAPACITY, 1_000_000, 0, 0, 0, 0, root)
    sampler.COUNT_FIELD.pack_into(buffer, sampler.OFFSET_MAX_PROCESSES, max_processes)
    table = sampler.ProcessTable(buffer, CAPACITY, max_processes)  # type: ignore[arg-type]
    source = system.source()
    process = source.open(root)
    assert process is not None
    return sampler.ProcessTree(process, max_processes, table, source, 0), buffer


def report_of(buffer: bytearray, root: int = 100) -> TreeReport:
    report = read_process_table(buffer, root, origin_ns=0)
    assert report is not None
    return report


def by_pid(report: TreeReport) -> dict[int, Any]:
    return {process.pid: process for process in report.processes}


def test_tree_sums_the_target_and_what_it_started_before_the_sampler() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB, b"sh")
    system.start(101, 100, 2048 * MIB, b"python3")
    tree, buffer = new_tree(system)
    assert tree.sample() == 2051 * MIB  # a shell's 3 MB does not hide the job
    report = report_of(buffer)
    assert report.processes_seen == 2
    assert [(p.pid, p.name, p.peak_rss_bytes) for p in report.processes] == [
        (101, "python3", 2048 * MIB),
        (100, "sh", 3 * MIB),
    ]
    assert all(p.running for p in report.processes)


def test_processes_join_at_the_next_look_and_drop_out_when_they_exit() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    tree, buffer = new_tree(system)
    system.start(200, 100, 40 * MIB)
    assert tree.sample() == 3 * MIB  # not looked for yet
    tree.after_sample(1_000)  # a look is not due yet
    assert tree.sample() == 3 * MIB
    tree.scan(sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 43 * MIB
    system.rss[200] = 90 * MIB
    assert tree.sample() == 93 * MIB
    tree.after_sample(sampler.SCAN_INTERVAL_NS + 7)  # the next look is due 20 ms later
    system.exit(200)  # a zombie until its parent reaps it
    assert tree.sample() == 3 * MIB
    job = by_pid(report_of(buffer))[200]
    assert (job.peak_rss_bytes, job.last_rss_bytes, job.running) == (90 * MIB, 90 * MIB, False)
    assert job.first_seen_s == sampler.SCAN_INTERVAL_NS / 1e9
    assert job.last_seen_s == (sampler.SCAN_INTERVAL_NS + 7) / 1e9
    assert 200 in system.closed
    tree.scan(3 * sampler.SCAN_INTERVAL_NS)  # the zombie is not taken for a new process
    assert tree.sample() == 3 * MIB
    assert report_of(buffer).processes_seen == 2


def test_a_look_lists_the_processes_only_when_one_has_started() -> None:
    system = FakeSystem()
    system.last_pid = 100
    system.start(100, 1, 3 * MIB)
    tree, _ = new_tree(system)
    system.start(101, 100, 5 * MIB)  # as if the kernel had not counted it: not looked for
    tree.scan(sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 3 * MIB
    system.last_pid = 101
    tree.scan(2 * sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 8 * MIB


def test_new_children_and_grandchildren_join_in_one_look() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    tree, buffer = new_tree(system)
    system.start(302, 301, 5 * MIB)  # listed before its parent
    system.start(301, 100, 4 * MIB)
    system.start(303, 302, 6 * MIB)
    system.start(400, 50, 99 * MIB)  # someone else's
    tree.scan(sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 18 * MIB
    assert set(by_pid(report_of(buffer))) == {100, 301, 302, 303}


def test_the_monitor_and_its_sampler_are_not_part_of_the_tree_they_watch() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB, b"sh")
    system.start(700, 100, 20 * MIB, b"automem")  # automem monitor --pid $PPID
    system.start(701, 700, 9 * MIB, b"python3")  # its sampler
    system.start(702, 700, 5 * MIB, b"sh")  # nothing the monitor starts counts either
    buffer = bytearray(sampler.ring_size_bytes(CAPACITY, 8))
    sampler.HEADER.pack_into(buffer, 0, sampler.MAGIC, CAPACITY, 1_000_000, 0, 0, 0, 0, 100)
    table = sampler.ProcessTable(buffer, CAPACITY, 8)  # type: ignore[arg-type]
    source = system.source()
    tree = sampler.ProcessTree(
        FakeProcess(system, 100), 8, table, source, 0, exclude=frozenset((700, 701))
    )
    tree.scan(sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 3 * MIB
    assert report_of(buffer).processes_seen == 1


def test_an_orphan_stays_in_the_tree() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    system.start(101, 100, 4 * MIB)
    system.start(102, 101, 50 * MIB)
    tree, _ = new_tree(system)
    system.exit(101)
    system.reap(101)  # 102 now belongs to init
    assert tree.sample() == 53 * MIB
    tree.scan(sampler.SCAN_INTERVAL_NS)
    system.exit(100)
    assert tree.sample() == 50 * MIB  # the target is gone; what it started is not
    system.exit(102)
    assert tree.sample() == 0  # all gone: the sampler stops


def test_the_kernel_mark_and_the_name_come_at_a_look() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB, b"sh")
    system.start(101, 100, 10 * MIB, b"sh")  # forked, not yet exec'd
    tree, buffer = new_tree(system)
    system.names[101] = b"python3"
    system.marks[101] = 300 * MIB  # a spike between two samples
    tree.sample()
    tree.scan(sampler.SCAN_INTERVAL_NS)
    job = by_pid(report_of(buffer))[101]
    assert (job.name, job.peak_rss_bytes, job.last_rss_bytes) == ("python3", 300 * MIB, 10 * MIB)


def test_processes_over_the_cap_are_counted_and_followed_when_room_frees() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    for pid in (101, 102, 103):
        system.start(pid, 100, 10 * MIB)
    tree, buffer = new_tree(system, max_processes=2)
    report = report_of(buffer)
    assert (report.processes_seen, report.processes_not_followed) == (4, 2)
    assert report.max_processes == 2
    assert tree.sample() == 13 * MIB  # the root and one child
    system.exit(101)
    system.reap(101)
    tree.sample()
    tree.scan(sampler.SCAN_INTERVAL_NS)
    assert tree.sample() == 13 * MIB
    report = report_of(buffer)
    assert (report.processes_seen, report.processes_not_followed) == (4, 1)
    assert {p.pid for p in report.processes if p.running} == {100, 102}


def test_when_every_followed_process_exits_those_over_the_cap_are_followed() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    system.start(101, 100, 10 * MIB)
    tree, buffer = new_tree(system, max_processes=1)
    system.exit(100)
    assert tree.sample() == 10 * MIB
    assert report_of(buffer).processes_not_followed == 0


def test_the_table_keeps_the_largest_processes_that_exited() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    tree, buffer = new_tree(system, max_processes=2)
    children = range(1000, 1000 + sampler.EXITED_SLOTS + 10)
    for step, pid in enumerate(children, start=1):
        system.start(pid, 100, (pid - 990) * MIB)
        tree.scan(step * sampler.SCAN_INTERVAL_NS)
        tree.sample()
        system.exit(pid)
        system.reap(pid)
        tree.sample()
    report = report_of(buffer)
    assert report.processes_seen == 1 + len(children)
    assert len(report.processes) == sampler.table_slots(2)
    kept = [p.pid for p in report.processes if p.pid != 100]
    assert kept == sorted(children, reverse=True)[: len(kept)]


def test_a_table_being_rewritten_is_not_read() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    _, buffer = new_tree(system)
    generation = sampler.COUNT_FIELD.unpack_from(buffer, sampler.OFFSET_TABLE_GENERATION)[0]
    sampler.COUNT_FIELD.pack_into(buffer, sampler.OFFSET_TABLE_GENERATION, generation + 1)
    assert read_process_table(buffer, 100, origin_ns=0) is None  # a sampler that died writing


class RewrittenWhileCopied(bytearray):
    """A table the sampler rewrites while the first copy of it is taken."""

    def __init__(self, data: bytearray, rewrite: Any) -> None:
        super().__init__(data)
        self.rewrite = rewrite

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and self.rewrite is not None:
            rewrite, self.rewrite = self.rewrite, None
            rewrite(self)
        return super().__getitem__(key)


def test_a_table_rewritten_while_copied_is_copied_again() -> None:
    system = FakeSystem()
    system.start(100, 1, 3 * MIB)
    _, buffer = new_tree(system)
    system.start(101, 100, 20 * MIB)

    def sampler_looks(memory: bytearray) -> None:
        table = sampler.ProcessTable(memory, CAPACITY, 8)  # type: ignore[arg-type]
        tree = sampler.ProcessTree(FakeProcess(system, 100), 8, table, system.source(), 0)
        tree.scan(sampler.SCAN_INTERVAL_NS)

    report = report_of(RewrittenWhileCopied(buffer, sampler_looks))
    assert set(by_pid(report)) == {100, 101}
    assert report.processes_seen == 2


@needs_procfs
def test_the_parent_is_read_past_a_name_with_parentheses() -> None:
    renamed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ctypes, time; ctypes.CDLL(None).prctl(15, b'a) b (c', 0, 0, 0); "
            "print(flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert renamed.stdout is not None
        renamed.stdout.readline()
        assert Path(f"/proc/{renamed.pid}/comm").read_text() == "a) b (c\n"
        assert sampler._procfs_parent(renamed.pid) == os.getpid()
    finally:
        renamed.kill()
        renamed.wait()


# -- tree monitors on real processes -------------------------------------------


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def wait_for(predicate: Any, what: str) -> None:
    """Wait (up to a minute, not timed) until ``predicate()`` holds."""
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


#: Waits for ARGV[1] to exist, then runs three children one after the
#: other, holding 20, 40 and 60 MiB for 0.3 s each.
COME_AND_GO = """
import pathlib, subprocess, sys, time
flag = pathlib.Path(sys.argv[1])
while not flag.exists():
    time.sleep(0.005)
for size in (20, 40, 60):
    code = f"import time; x = b'x' * ({size} << 20); time.sleep(0.3)"
    subprocess.run([sys.executable, "-c", code], check=True)
"""


@pytest.mark.parametrize("portable", [False, True], ids=["procfs", "psutil"])
def test_processes_that_come_and_go(tmp_path: Path, portable: bool) -> None:
    flag = tmp_path / "go"
    root = subprocess.Popen(python(COME_AND_GO, str(flag)))
    monitor = MemoryMonitor(root.pid, tree=True, portable=portable)
    try:
        monitor.start()
        window = monitor.window()
        flag.touch()
        root.wait(timeout=TIMEOUT_S)
        result = window.stop()
    finally:
        root.kill()
        root.wait()
        monitor.close()
    assert result.peak_rss_bytes >= 60 * MIB
    assert result.peak_source == "sampled"
    assert result.sampler_kind == ("process-tree-psutil" if portable else "process-tree-procfs")
    report = monitor.tree_report()  # kept after the close
    assert report is not None
    assert report.processes_seen == 4
    assert report.processes_not_followed == 0
    children = [process for process in report.processes if process.pid != root.pid]
    assert len(children) == 3
    assert not any(child.running for child in children)
    for child, size in zip(children, (60, 40, 20), strict=True):  # largest peak first
        assert child.peak_rss_bytes >= size * MIB
        assert child.name.startswith("python")
        assert child.first_seen_s <= child.last_seen_s
    first, second, third = sorted(children, key=lambda child: child.first_seen_s)
    assert first.last_seen_s <= second.first_seen_s
    assert second.last_seen_s <= third.first_seen_s


#: Starts ARGV[1] sleepers, prints their pids, and sleeps.
SLEEPERS = """
import subprocess, sys, time
sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(int(sys.argv[1]))]
print(*[s.pid for s in sleepers], flush=True)
time.sleep(60)
"""


@pytest.fixture
def root_of_six() -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """A python process that has started six ``sleep 60``; all killed after."""
    root = subprocess.Popen(python(SLEEPERS, "6"), stdout=subprocess.PIPE, text=True)
    assert root.stdout is not None
    sleepers = [int(pid) for pid in root.stdout.readline().split()]
    try:
        yield root, sleepers
    finally:
        for pid in sleepers:
            os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()


def test_the_cap_bounds_the_processes_followed(
    root_of_six: tuple[subprocess.Popen[str], list[int]],
) -> None:
    root, sleepers = root_of_six
    with MemoryMonitor(root.pid, tree=True, max_processes=3) as monitor:

        def all_seen() -> bool:
            report = monitor.tree_report()
            return report is not None and report.processes_seen == 7

        wait_for(all_seen, "the sampler to find six sleepers")
        report = monitor.tree_report()
    assert report is not None
    assert report.processes_not_followed == 4
    assert report.max_processes == 3
    followed = {process.pid for process in report.processes if process.running}
    assert len(followed) == 3
    assert root.pid in followed
    assert followed - {root.pid} <= set(sleepers)


def test_a_tree_of_one_keeps_the_kernel_mark(tmp_path: Path) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    spiker = subprocess.Popen(
        python(
            "import pathlib, sys, time\n"
            "go, done = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
            "while not go.exists(): time.sleep(0.005)\n"
            "(b'x' * (100 << 20)).count(b'y')\n"  # made and freed inside one C call
            "done.touch()\n"
            "time.sleep(60)\n",
            str(go),
            str(done),
        )
    )
    try:
        with MemoryMonitor(spiker.pid, tree=True) as monitor:
            window = monitor.window()
            go.touch()
            wait_for(done.exists, "the spike")
            result = window.stop()
            report = monitor.tree_report()
    finally:
        spiker.kill()
        spiker.wait()
    if LINUX:
        assert result.peak_source == "kernel-hwm"
        assert result.peak_bytes >= 99 * MIB
    assert report is not None
    assert report.processes_seen == 1


def test_a_plain_monitor_is_not_a_tree(monitor: MemoryMonitor) -> None:
    assert monitor.tree is False
    assert monitor.tree_report() is None
    assert monitor.sampler_kind in ("process-procfs", "process-psutil")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"tree": True}, "tree=True watches another process's tree: give its pid"),
        ({"pid": 1, "tree": True, "max_processes": 0}, "invalid max_processes 0"),
    ],
)
def test_bad_tree_options(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        MemoryMonitor(**kwargs)


# -- automem monitor -----------------------------------------------------------


def automem(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_automem", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_a_shell_does_not_hide_its_job(tmp_path: Path) -> None:
    job = shlex.join(python("import time; x = b'x' * (100 << 20); time.sleep(0.5)"))
    out, snapshots = tmp_path / "summary.json", tmp_path / "snapshots"
    # "; true": the shell runs the job as a child rather than exec'ing it.
    result = automem(
        "--json", str(out), "--snapshots", str(snapshots), "--every", "0",
        "--", "sh", "-c", f"{job}; true",
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["peak_rss_bytes"] >= 100 * MIB
    assert summary["peak_source"] == "sampled-tree"
    assert summary["processes_seen"] >= 2
    assert summary["processes_not_followed"] == 0
    big = [p for p in summary["processes"] if p["peak_rss_bytes"] >= 100 * MIB]
    assert len(big) == 1
    assert big[0]["name"].startswith("python")
    assert big[0]["pid"] != summary["pid"]
    assert big[0]["running"] is False
    (shell,) = [p for p in summary["processes"] if p["pid"] == summary["pid"]]
    assert shell["peak_rss_bytes"] < 20 * MIB
    assert f"tree of {summary['processes_seen']} processes" in result.stdout
    assert f"processes: {summary['processes_seen']} seen" in result.stdout
    assert f"pid {big[0]['pid']} " in result.stdout
    # The samples themselves are the tree's: what snapshots and pressure see.
    # (wait4's figure alone, which counts the children a process waited for,
    # gave the right peak over samples of the shell's 2 MB.)
    (snapshot,) = list_snapshots(snapshots)
    assert max(read_snapshot(snapshot).rss_bytes) >= 100 * MIB


#: Waits for ARGV[1], forks a child that holds 100 MiB for 0.5 s, waits for
#: it, prints its pid and exits.
FORKS_A_CHILD = """
import os, pathlib, sys, time
flag = pathlib.Path(sys.argv[1])
while not flag.exists():
    time.sleep(0.005)
child = os.fork()
if child == 0:
    x = b"x" * (100 << 20)
    time.sleep(0.5)
    os._exit(0)
os.waitpid(child, 0)
print(child, flush=True)
"""


def test_pid_counts_the_processes_the_target_starts(tmp_path: Path) -> None:
    flag, out = tmp_path / "go", tmp_path / "summary.json"
    target = subprocess.Popen(python(FORKS_A_CHILD, str(flag)), stdout=subprocess.PIPE, text=True)
    watch = [
        sys.executable, "-m", "pytest_automem", "monitor", "--pid", str(target.pid),
        "--every", "20ms", "--json", str(out),
    ]  # fmt: skip
    monitor = subprocess.Popen(watch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert monitor.stderr is not None
        first = monitor.stderr.readline()  # a live line: the sampler runs
        assert first.startswith("[automem]"), first + monitor.stderr.read()
        flag.touch()
        stdout, stderr = monitor.communicate(timeout=TIMEOUT_S)
        child = int(target.communicate(timeout=TIMEOUT_S)[0])
    finally:
        monitor.kill()
        target.kill()
        monitor.wait()
        target.wait()
    assert monitor.returncode == 0, (stdout, stderr)
    assert f"pid {target.pid}: process exited" in stdout
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["peak_rss_bytes"] >= 100 * MIB
    assert summary["peak_source"] == "sampled-tree"
    assert summary["processes_seen"] == 2
    rows = {p["pid"]: p for p in summary["processes"]}
    assert rows[child]["peak_rss_bytes"] >= 100 * MIB
    assert rows[target.pid]["peak_rss_bytes"] < 50 * MIB
    assert [p["pid"] for p in summary["processes"]] == [child, target.pid]


#: Runs ``automem monitor --pid`` on itself (its parent, for the monitor),
#: the summary to ARGV[1].
WATCHES_ITS_PARENT = """
import os, subprocess, sys
watch = ["--pid", str(os.getpid()), "--duration", "300ms", "--every", "0", "--json", sys.argv[1]]
sys.exit(subprocess.call([sys.executable, "-m", "pytest_automem", "monitor", *watch]))
"""


def test_a_monitor_under_the_target_leaves_itself_and_its_sampler_out(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = subprocess.run(
        python(WATCHES_ITS_PARENT, str(out)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["processes_seen"] == 1
    assert [p["pid"] for p in summary["processes"]] == [summary["pid"]]
