"""Table tests for the one place text becomes numbers."""

from __future__ import annotations

import math

import pytest

from pytest_automem.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration_s,
    parse_rate_bytes_per_s,
    parse_size_bytes,
)

MB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1234, 1234),
        (1.5, 2),
        ("0", 0),
        ("17", 17),
        ("17B", 17),
        ("1KB", 1024),
        ("512KiB", 512 * 1024),
        ("512 kib", 512 * 1024),
        ("64MB", 64 * MB),
        ("64MiB", 64 * MB),
        ("64mb", 64 * MB),
        ("1.5GB", 3 * (1 << 29)),
        ("2GiB", 2 << 30),
        ("1TB", 1 << 40),
        (" 10 MB ", 10 * MB),
        (".5MB", MB // 2),
        ("1e3", 1000),
        ("2M", 2 * MB),
    ],
)
def test_parse_size_valid(text: int | str, expected: int) -> None:
    assert parse_size_bytes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MB",
        "64XB",
        "64 M B",
        "-1MB",
        "-5",
        "nan",
        "inf",
        "1MB/s",
        "1,5MB",
        None,
        True,
        [],
        "ten",
    ],
)
def test_parse_size_invalid_names_text_and_forms(text: object) -> None:
    with pytest.raises(ValueError, match="invalid size") as info:
        parse_size_bytes(text)  # type: ignore[arg-type]
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1MB/s", MB),
        ("512KiB/s", 512 * 1024),
        ("60MB/min", MB),
        ("1MB/ms", 1000 * MB),
        ("10MB/5s", 2 * MB),
        ("0MB/s", 0),
        (2048, 2048),
        (0.5, 0.5),
    ],
)
def test_parse_rate_valid(text: str | float, expected: float) -> None:
    assert parse_rate_bytes_per_s(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1MB", "MB/s", "1MB/", "1MB/parsec", "-1MB/s", "x/s", -3, None])
def test_parse_rate_invalid(text: object) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate_bytes_per_s(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1ms", 0.001),
        ("0.5ms", 0.0005),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("100ns", 1e-7),
        ("5s", 5.0),
        ("5 s", 5.0),
        ("2min", 120.0),
        ("1h", 3600.0),
        ("3", 3.0),
        (2, 2.0),
        (0, 0.0),
    ],
)
def test_parse_duration_valid(text: str | float, expected: float) -> None:
    assert parse_duration_s(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "ms", "5 parsecs", "-1s", "1s2", "inf", None, False])
def test_parse_duration_invalid(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_s(text)  # type: ignore[arg-type]


def test_size_round_trips_through_format() -> None:
    for value in (0, 1, 1023, 1024, 5 * MB, 3 << 30):
        text = format_size(value).replace(" ", "")
        assert parse_size_bytes(text) == pytest.approx(value, rel=0.05)


def test_formatting_reads_well() -> None:
    assert format_size(64 * MB) == "64.0 MB"
    assert format_size(-2048) == "-2.0 KB"
    assert format_size(12) == "12 B"
    assert format_rate(1.5 * MB) == "1.5 MB/s"
    assert format_duration(0.0005) == "500 µs"
    assert format_duration(0.0125) == "12.50 ms"
    assert format_duration(3) == "3.00 s"
    assert math.isfinite(parse_size_bytes("1e3"))
