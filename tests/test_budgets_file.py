"""The budgets file: suggested from measured figures, written atomically, read back strictly.

What ``automem budgets suggest`` writes is what pytest enforces (ini
``automem_budgets``), so a suggested budget must never sit below the figure
it was made from, and a bad file must name its line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_automem.base.units import parse_size_bytes
from pytest_automem.results.budgets_file import (
    BudgetsFormatError,
    FileBudget,
    parse_budgets,
    parse_margin,
    read_budgets,
    size_text_at_least,
    suggest_budgets,
    write_budgets,
)

KB = 1 << 10
MB = 1 << 20


@pytest.mark.parametrize(
    ("text", "margin"),
    [("25%", 0.25), ("25", 0.25), ("0%", 0.0), (" 10.5% ", 0.105), ("200%", 2.0)],
)
def test_margins_are_percentages(text: str, margin: float) -> None:
    assert parse_margin(text) == pytest.approx(margin)


@pytest.mark.parametrize("text", ["-5%", "%", "lots%", "nan%", "inf%", ""])
def test_bad_margins_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid margin"):
        parse_margin(text)


@pytest.mark.parametrize(
    "num_bytes", [0, 1, 1023, KB, KB + 1, MB - 1, MB, MB + 1, 13 * MB + 12345, 3 * (1 << 30) + 7]
)
def test_size_text_never_reads_back_below_the_figure(num_bytes: int) -> None:
    parsed = parse_size_bytes(size_text_at_least(num_bytes))
    # Rounded up by at most the last digit written: 1 KB, 0.1 MB or 0.01 GB.
    assert num_bytes <= parsed <= num_bytes + max(KB, MB // 10, num_bytes // 100)


def test_size_text_reads_as_a_person_writes_it() -> None:
    assert size_text_at_least(MB) == "1MB"
    assert size_text_at_least(12 * MB + MB // 2) == "12.5MB"
    assert size_text_at_least(512 * KB) == "512KB"


def test_suggest_raises_the_worst_figure_by_the_margin_with_a_floor() -> None:
    tests = {
        "t::big": {"peak_bytes": 40 * MB, "growth_bytes": 8 * MB, "scenarios": []},
        "t::tiny": {"peak_bytes": 10 * KB, "growth_bytes": -3 * MB},
        "t::leaky": {
            "peak_bytes": 2 * MB,
            "growth_bytes": 0,
            "scenarios": [
                {"name": "a", "leak_bytes_per_iteration": 4 * MB},
                {"name": "b", "leak_bytes_per_iteration": 1000.5},
            ],
        },
    }
    budgets = suggest_budgets(tests, margin=0.25, min_bytes=MB)
    assert budgets["t::big"] == FileBudget(peak_bytes=50 * MB, growth_bytes=10 * MB)
    assert budgets["t::tiny"] == FileBudget(peak_bytes=MB, growth_bytes=MB)
    assert budgets["t::leaky"] == FileBudget(
        peak_bytes=int(2.5 * MB), growth_bytes=MB, leak_bytes_per_iteration=5 * MB
    )
    assert list(budgets) == sorted(tests)


def test_written_budgets_read_back_at_least_as_high(tmp_path: Path) -> None:
    budgets = {
        't.py::test_b[odd "id" ü]': FileBudget(peak_bytes=13 * MB + 1, growth_bytes=MB),
        "t.py::test_a": FileBudget(leak_bytes_per_iteration=2048),
    }
    path = tmp_path / "budgets.json"
    write_budgets(path, budgets, {"from": ["r.json"], "margin": "25%", "min": "1MB"})
    back = read_budgets(path)
    assert list(back) == sorted(budgets)
    for nodeid, budget in budgets.items():
        for field in ("peak_bytes", "growth_bytes", "leak_bytes_per_iteration"):
            wanted, got = getattr(budget, field), getattr(back[nodeid], field)
            assert (got is None) if wanted is None else wanted <= got <= wanted + MB // 10
    lines = path.read_text(encoding="utf-8").splitlines()
    assert sum("test_a" in line or "test_b" in line for line in lines) == 2  # one test a line
    assert [p.name for p in tmp_path.iterdir()] == ["budgets.json"]


def _error(text: str) -> str:
    with pytest.raises(BudgetsFormatError) as raised:
        parse_budgets(text.encode(), "b.json")
    return str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "b.json:1: not a budgets file"),
        ("[]", "b.json:1: not a version-1 automem budgets file (a JSON array)"),
        ('{\n"version": 2,\n"budgets": {}}', "b.json:2: not a version-1 automem budgets file"),
        ('{"version": 1}', "b.json:1: budgets file has no 'budgets' object"),
        (
            '{"version": 1, "budgets": {\n "a": {"peak": "1MB"},\n "b": {"peek": 1}}}',
            "b.json:3: test \"b\": unknown key 'peek'",
        ),
        ('{"version": 1, "budgets": {\n "a": {}}}', 'b.json:2: test "a": sets no limit'),
        ('{"version": 1, "budgets": {\n "a": 5}}', 'b.json:2: test "a": is a JSON number'),
        (
            '{"version": 1, "budgets": {\n\n "a": {"growth": "lots"}}}',
            "b.json:3: test \"a\": growth: invalid size 'lots'",
        ),
        ('{"version": 1, "budgets": {"a": {"peak": true}}}', "peak: expected a size"),
        ('{"version": 1, "budgets": {"a": {"peak": -1}}}', "peak: invalid size -1"),
    ],
)
def test_a_bad_file_names_the_file_line_and_culprit(text: str, expected: str) -> None:
    message = _error(text)
    assert expected in message
    assert "\n" not in message


def test_sizes_may_be_ints_or_text() -> None:
    data = json.dumps({"version": 1, "budgets": {"a": {"peak": 5000, "growth": "1.5MB"}}})
    assert parse_budgets(data.encode(), "b.json") == {
        "a": FileBudget(peak_bytes=5000, growth_bytes=int(1.5 * MB))
    }
