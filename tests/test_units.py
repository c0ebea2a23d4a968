"""Table tests for the one place text becomes numbers."""

from __future__ import annotations

import math

import pytest

from pytest_automem.base.units import (
    MAX_DURATION_S,
    MAX_RATE_BYTES_PER_S,
    MAX_SIZE_BYTES,
    format_duration,
    format_rate,
    format_size,
    parse_duration_s,
    parse_interval_ms,
    parse_rate_bytes_per_s,
    parse_size_bytes,
)

MB = 1 << 20
#: Too large for a float: float(HUGE_INT) raises OverflowError, not ValueError.
HUGE_INT = 10**400


def short_id(value: object) -> str:
    return "10**400" if value == HUGE_INT else repr(value)


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
        "1e400",
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
    assert format_duration(-0.215224) == "-215.22 ms"
    assert math.isfinite(parse_size_bytes("1e3"))


# -- bounds: every figure is finite and inside a range a real run can use -------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1024TB", 1 << 50),
        (1 << 50, 1 << 50),
        (float(1 << 50), 1 << 50),
    ],
)
def test_parse_size_accepts_up_to_the_maximum(value: int | float | str, expected: int) -> None:
    assert parse_size_bytes(value) == expected == MAX_SIZE_BYTES


@pytest.mark.parametrize(
    "value",
    ["1025TB", "1e30", (1 << 50) + 1, 2**63, HUGE_INT, 1e300, "1e22MB"],
    ids=short_id,
)
def test_parse_size_rejects_absurd_sizes(value: int | float | str) -> None:
    with pytest.raises(ValueError, match=r"invalid size.*at most 1024TB"):
        parse_size_bytes(value)


@pytest.mark.parametrize(
    "value",
    [
        "1MB/1e-320s",
        "1MB/1e-12s",
        "1e30MB/s",
        "1e400MB/s",
        float("inf"),
        float("nan"),
        1e300,
        HUGE_INT,
        (1 << 50) + 1,
    ],
    ids=short_id,
)
def test_parse_rate_rejects_non_finite_and_absurd_rates(value: float | str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate_bytes_per_s(value)


def test_parse_rate_judges_the_rate_not_its_numerator() -> None:
    # 2000 TB is above the largest size, but 2000 TB a minute is a possible rate.
    assert parse_rate_bytes_per_s("2000TB/min") == pytest.approx(2000 * (1 << 40) / 60)
    assert parse_rate_bytes_per_s(MAX_RATE_BYTES_PER_S) == MAX_RATE_BYTES_PER_S


@pytest.mark.parametrize("value", ["8761h", "1e22s", "1e300", HUGE_INT, 1e300], ids=short_id)
def test_parse_duration_rejects_more_than_a_year(value: float | str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration.*at most"):
        parse_duration_s(value)


def test_parse_duration_accepts_a_year() -> None:
    assert parse_duration_s("8760h") == MAX_DURATION_S == 365 * 24 * 3600


# -- sampling intervals: a bare number is milliseconds --------------------------


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("1", 1.0),
        ("1ms", 1.0),
        (" 2 ", 2.0),
        ("0.5", 0.5),
        ("0.05ms", 0.05),
        ("50us", 0.05),
        ("250µs", 0.25),
        ("1s", 1000.0),
        ("1000", 1000.0),
        (1, 1.0),
        (0.5, 0.5),
        (1000, 1000.0),
    ],
    ids=repr,
)
def test_parse_interval_valid(value: float | str, expected_ms: float) -> None:
    assert parse_interval_ms(value) == pytest.approx(expected_ms)


@pytest.mark.parametrize(
    "value",
    [
        "1e22ms",
        "1e30",
        "1e9",
        "1h",
        "2s",
        "1001",
        "0",
        "0ms",
        "0.01ms",
        "-1",
        "nan",
        "inf",
        "fast",
        "",
        1e-320,
        1e300,
        HUGE_INT,
        float("nan"),
        None,
        True,
    ],
    ids=short_id,
)
def test_parse_interval_invalid(value: object) -> None:
    with pytest.raises(ValueError, match="invalid sampling interval") as info:
        parse_interval_ms(value)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


def test_interval_range_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"between 0\.05 ms and 1000 ms"):
        parse_interval_ms("1h")
