"""Peak and growth budgets on ordinary code: building a report in memory.

A template for the most common use: a function that is fine on small input
but must stay within a peak budget on realistic input, and must not keep
anything once it returns.
"""

from __future__ import annotations

import csv
import io

import pytest

ROWS = 200_000


def build_report(rows: int) -> str:
    """Render ``rows`` rows of CSV, streaming into one buffer."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["order", "sku", "qty", "price"])
    for n in range(rows):
        writer.writerow([n, f"sku-{n % 5000:05d}", n % 7 + 1, f"{(n % 300) / 7:.2f}"])
    return out.getvalue()


@pytest.mark.memory_budget(peak="96MB", growth="4MB", pressure="MEDIUM")
def test_report_fits_its_budget() -> None:
    report = build_report(ROWS)
    assert report.count("\n") == ROWS + 1
