"""Pressure levels, thresholds and distributions."""

from __future__ import annotations

import pytest

from pytest_automem.measure.pressure import (
    PressureLevel,
    PressureThresholds,
    distribution_of_values,
)

MB = 1 << 20


def test_levels_are_ordered_and_parse_by_name() -> None:
    assert PressureLevel.LOW < PressureLevel.MEDIUM < PressureLevel.HIGH < PressureLevel.CRITICAL
    assert PressureLevel.parse("high") is PressureLevel.HIGH
    assert PressureLevel.parse(" Critical ") is PressureLevel.CRITICAL
    assert PressureLevel.parse(PressureLevel.LOW) is PressureLevel.LOW


@pytest.mark.parametrize("bad", ["", "severe", "HIGHER", 2, None])
def test_bad_level_names_the_value_and_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="LOW, MEDIUM, HIGH, CRITICAL"):
        PressureLevel.parse(bad)  # type: ignore[arg-type]


def test_defaults_are_the_originals() -> None:
    t = PressureThresholds()
    assert (t.medium, t.high, t.critical) == (50 * MB, 200 * MB, 500 * MB)


@pytest.mark.parametrize(
    ("measured", "level"),
    [
        (0, PressureLevel.LOW),
        (-5 * MB, PressureLevel.LOW),
        (50 * MB - 1, PressureLevel.LOW),
        (50 * MB, PressureLevel.MEDIUM),
        (200 * MB - 1, PressureLevel.MEDIUM),
        (200 * MB, PressureLevel.HIGH),
        (499 * MB, PressureLevel.HIGH),
        (500 * MB, PressureLevel.CRITICAL),
        (10 << 30, PressureLevel.CRITICAL),
    ],
)
def test_level_is_highest_boundary_reached(measured: int, level: PressureLevel) -> None:
    assert PressureThresholds().classify(measured) is level


def test_parse_text_form() -> None:
    t = PressureThresholds.parse("10MB, 20MiB,1GB")
    assert t == PressureThresholds(10 * MB, 20 * MB, 1 << 30)
    assert PressureThresholds.parse(t.describe()) == t


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("50MB,200MB", "three sizes"),
        ("50MB,200MB,500MB,1GB", "three sizes"),
        ("50MB,,500MB", "three sizes"),
        ("200MB,50MB,500MB", "strictly increasing"),
        ("50MB,50MB,500MB", "strictly increasing"),
        ("50MB,200MB,lots", "invalid size"),
        ("0,200MB,500MB", "positive"),
    ],
)
def test_bad_threshold_text_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        PressureThresholds.parse(text)
    assert text in str(info.value)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        PressureThresholds(100, 100, 200)
    with pytest.raises(ValueError, match="positive int"):
        PressureThresholds("50MB", 2, 3)  # type: ignore[arg-type]


def test_distribution_counts_every_level_with_boundaries_in_the_higher_one() -> None:
    t = PressureThresholds(10, 20, 30)
    values = sorted([0, 5, 10, 10, 19, 20, 29, 30, 31, 100, -3])
    assert distribution_of_values(values, t) == {
        "LOW": 3 / 11,
        "MEDIUM": 3 / 11,
        "HIGH": 2 / 11,
        "CRITICAL": 3 / 11,
    }
    assert distribution_of_values([], t) == dict.fromkeys(
        ["LOW", "MEDIUM", "HIGH", "CRITICAL"], 0.0
    )
