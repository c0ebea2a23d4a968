"""Parse and format sizes, rates and durations — once, at the edge.

Everything inside the package works in plain integers (bytes, nanoseconds) or
floats with the unit in the name (``interval_ms``, ``rate_bytes_per_s``).  Text
such as ``"64MB"`` or ``"1MB/s"`` is turned into those numbers here and nowhere
else, so there is exactly one definition of what "MB" means:
1 MB = 1 MiB = 1024 × 1024 bytes, as memory tools and budgets usually count.
"""

from __future__ import annotations

import math
import re

from .defaults import GB, KB, MAX_INTERVAL_MS, MB, MIN_INTERVAL_MS, TB

__all__ = [
    "MAX_DURATION_S",
    "MAX_INTERVAL_MS",
    "MAX_RATE_BYTES_PER_S",
    "MAX_SIZE_BYTES",
    "MIN_INTERVAL_MS",
    "format_count",
    "format_duration",
    "format_rate",
    "format_size",
    "is_count",
    "parse_duration_s",
    "parse_interval_ms",
    "parse_percent_fraction",
    "parse_rate_bytes_per_s",
    "parse_size_bytes",
]

_SIZE_FACTORS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": KB,
    "kb": KB,
    "kib": KB,
    "m": MB,
    "mb": MB,
    "mib": MB,
    "g": GB,
    "gb": GB,
    "gib": GB,
    "t": TB,
    "tb": TB,
    "tib": TB,
}

_DURATION_FACTORS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

_NUMBER = r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_SIZE_RE = re.compile(_NUMBER + r"\s*(?P<unit>[a-zA-Z]*)")
_DURATION_RE = re.compile(_NUMBER + r"\s*(?P<unit>[a-zA-Zµ]*)")

#: 1 PiB.  Far above any machine's memory, so a real limit never meets it, and
#: exact both as an int64 and as a double, so every reader of a results file
#: gets the figure that was written.
MAX_SIZE_BYTES = 1024 * TB
MAX_SIZE_TEXT = f"{MAX_SIZE_BYTES // TB}TB"
#: 1 PiB/s.  A rate beyond it comes from a typo such as ``"1MB/1e-320s"``.
MAX_RATE_BYTES_PER_S = float(MAX_SIZE_BYTES)
#: A year.  Every duration the package takes (a monitor's ``--duration``, a
#: policy's ``gc_interval``) is far shorter; longer ones overflow timers.
MAX_DURATION_S = 365 * 24 * 3600.0

SIZE_FORMS = "an int of bytes or a number with B, KB/KiB, MB/MiB, GB/GiB, TB/TiB (e.g. '64MB')"
RATE_FORMS = "a size per second or minute, e.g. '1MB/s', '512KiB/s', '60MB/min'"
DURATION_FORMS = (
    "a number with ns, us, ms, s, min or h (e.g. '1ms', '5s'); a bare number is seconds"
)
INTERVAL_FORMS = "a number with ns, us, ms or s (e.g. '1ms', '500us'); a bare number is ms"


def _number_or_none(value: object) -> int | float | None:
    """Return a real number for int/float input (not bool), else None.

    Ints stay ints: one too large for a float must be rejected as too large,
    not crash converting it.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    return None


def is_count(value: object, minimum: int = 0) -> bool:
    """True for an int of at least ``minimum``: a count, a limit or an index.

    ``True`` is an int to Python but a flag to the reader, so it is no count.
    """
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_finite(number: int | float) -> bool:
    return isinstance(number, int) or math.isfinite(number)


def _number_and_unit(value: str, pattern: re.Pattern[str]) -> tuple[float, str] | None:
    """``"64 MB"`` as ``(64.0, "mb")``; None if the text is not a number and a unit."""
    match = pattern.fullmatch(value.strip())
    if match is None:
        return None
    return float(match.group("num")), match.group("unit").lower()


def _size_number(value: object) -> int | float:
    """Bytes for ``value``, finite and >= 0 but not yet bounded above."""
    number = _number_or_none(value)
    if number is None:
        parsed = _number_and_unit(value, _SIZE_RE) if isinstance(value, str) else None
        if parsed is None or parsed[1] not in _SIZE_FACTORS:
            raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
        number = parsed[0] * _SIZE_FACTORS[parsed[1]]
    if not _is_finite(number) or number < 0:
        raise ValueError(f"invalid size {value!r}: must be a finite size >= 0")
    return number


def parse_size_bytes(value: int | float | str) -> int:
    """Return the number of bytes ``value`` stands for.

    Ints are bytes already; strings carry a unit.  Negative, non-finite and
    absurd sizes (above :data:`MAX_SIZE_BYTES`) are rejected: no memory
    limit or threshold can be negative, and a results file must hold it.
    """
    number = _size_number(value)
    if number > MAX_SIZE_BYTES:
        raise ValueError(f"invalid size {value!r}: must be at most {MAX_SIZE_TEXT}")
    return round(number)


def parse_rate_bytes_per_s(value: int | float | str) -> float:
    """Return bytes per second for ``"1MB/s"``-style text or a number (bytes/s).

    The rate itself is bounded (0 to :data:`MAX_RATE_BYTES_PER_S`), not its
    parts: ``"2000TB/min"`` is a possible rate although 2000 TB is no size.
    """
    number = _number_or_none(value)
    if number is None:
        number = _rate_from_text(value)
    if not _is_finite(number) or not 0 <= number <= MAX_RATE_BYTES_PER_S:
        raise ValueError(
            f"invalid rate {value!r}: must be a finite rate from 0 to {MAX_SIZE_TEXT}/s"
        )
    return float(number)


def parse_percent_fraction(value: str) -> float:
    """Return ``"10%"`` (or ``"10"``, also percent) as the fraction 0.10.

    A tolerance is a share of a figure: negative makes no sense, and
    above 1000 % it no longer tolerates noise but hides any change.
    """
    match = re.fullmatch(_NUMBER + r"\s*%?", value.strip())
    number = float(match["num"]) if match else float("nan")
    if not _is_finite(number) or not 0 <= number <= 1000:
        raise ValueError(f"invalid percentage {value!r}: must be from 0% to 1000%, e.g. '10%'")
    return number / 100


def _rate_from_text(value: object) -> float:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"invalid rate {value!r}: expected {RATE_FORMS}")
    size_text, _, per_text = value.partition("/")
    per_text = per_text.strip()
    try:
        size = _size_number(size_text)
        per = parse_duration_s("1" + per_text if per_text.isalpha() else per_text)
    except ValueError:
        raise ValueError(f"invalid rate {value!r}: expected {RATE_FORMS}") from None
    if per == 0:
        raise ValueError(f"invalid rate {value!r}: the time unit must be longer than zero")
    return size / per


def _duration_in(value: int | float | str, per_s: float, what: str, forms: str) -> float:
    """``value`` in a unit ``per_s`` of which make a second: a number as it
    is, text converted by its unit."""
    number = _number_or_none(value)
    if number is not None:
        return number
    parsed = _number_and_unit(value, _DURATION_RE) if isinstance(value, str) else None
    if parsed is None or (parsed[1] and parsed[1] not in _DURATION_FACTORS):
        raise ValueError(f"invalid {what} {value!r}: expected {forms}")
    number, unit = parsed
    return number * (_DURATION_FACTORS[unit] * per_s) if unit else number


def parse_duration_s(value: int | float | str) -> float:
    """Return seconds for ``"1ms"``-style text; a bare number is seconds.

    Zero is allowed here (a caller that needs a positive interval checks it);
    negative, non-finite and durations above :data:`MAX_DURATION_S` are not.
    """
    number = _duration_in(value, 1.0, "duration", DURATION_FORMS)
    if not _is_finite(number) or number < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite duration >= 0")
    if number > MAX_DURATION_S:
        raise ValueError(f"invalid duration {value!r}: must be at most 8760h (a year)")
    return float(number)


def parse_interval_ms(value: int | float | str) -> float:
    """A sampling interval in ms, from a number or text; a bare number is ms.

    Milliseconds are the unit the interval is documented in (``1ms``), so
    ``--automem-interval=1`` means 1 ms, never 1 s.  The interval must lie
    between :data:`MIN_INTERVAL_MS` and :data:`MAX_INTERVAL_MS`.
    """
    number = _duration_in(value, 1e3, "sampling interval", INTERVAL_FORMS)
    if not _is_finite(number) or not MIN_INTERVAL_MS <= number <= MAX_INTERVAL_MS:
        raise ValueError(
            f"invalid sampling interval {value!r}: must be between {MIN_INTERVAL_MS:g} ms "
            f"and {MAX_INTERVAL_MS:g} ms (1 s)"
        )
    return float(number)


def format_size(num_bytes: float) -> str:
    """Human text for a byte count, in the binary units the parser accepts."""
    sign = "-" if num_bytes < 0 else ""
    magnitude = abs(num_bytes)
    for unit, factor in (("GB", GB), ("MB", MB), ("KB", KB)):
        if magnitude >= factor:
            return f"{sign}{magnitude / factor:.1f} {unit}"
    return f"{sign}{magnitude:.0f} B"


def format_count(count: int, noun: str) -> str:
    """``"1 test"``, ``"3 tests"``: a count with its noun, plural when it is not one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_rate(bytes_per_s: float) -> str:
    """Human text for a growth rate, e.g. ``"1.5 MB/s"``."""
    return format_size(bytes_per_s) + "/s"


def format_duration(seconds: float) -> str:
    """Human text for a duration: µs, ms or s, whichever reads best.

    A negative one (an event just before a window's first sample) reads
    as its size does, with a minus sign.
    """
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
