"""Parse and format sizes, rates and durations — once, at the edge.

Everything inside the package works in plain integers (bytes, nanoseconds) or
floats with the unit in the name (``interval_ms``, ``rate_bytes_per_s``).  Text
such as ``"64MB"`` or ``"1MB/s"`` is turned into those numbers here and nowhere
else, so there is exactly one definition of what "MB" means: like the original
TypeScript guide, 1 MB = 1 MiB = 1024 × 1024 bytes.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MIN_INTERVAL_MS",
    "format_duration",
    "format_rate",
    "format_size",
    "parse_duration_s",
    "parse_interval_ms",
    "parse_rate_bytes_per_s",
    "parse_size_bytes",
]

_SIZE_FACTORS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
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

SIZE_FORMS = "an int of bytes or a number with B, KB/KiB, MB/MiB, GB/GiB, TB/TiB (e.g. '64MB')"
RATE_FORMS = "a size per second or minute, e.g. '1MB/s', '512KiB/s', '60MB/min'"
DURATION_FORMS = (
    "a number with ns, us, ms, s, min or h (e.g. '1ms', '5s'); a bare number is seconds"
)


def _number_or_none(value: object) -> float | None:
    """Return a real number for int/float input (not bool), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def parse_size_bytes(value: int | float | str) -> int:
    """Return the number of bytes ``value`` stands for.

    Ints are bytes already; strings carry a unit.  Negative or non-finite
    sizes are rejected: no memory limit or threshold can be negative.
    """
    number = _number_or_none(value)
    if number is None:
        if not isinstance(value, str):
            raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
        match = _SIZE_RE.fullmatch(value.strip())
        unit = match.group("unit").lower() if match else None
        if match is None or unit not in _SIZE_FACTORS:
            raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
        number = float(match.group("num")) * _SIZE_FACTORS[unit]
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"invalid size {value!r}: must be a finite size >= 0")
    return round(number)


def parse_rate_bytes_per_s(value: int | float | str) -> float:
    """Return bytes per second for ``"1MB/s"``-style text or a number (bytes/s)."""
    number = _number_or_none(value)
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"invalid rate {value!r}: must be a finite rate >= 0")
        return number
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"invalid rate {value!r}: expected {RATE_FORMS}")
    size_text, _, per_text = value.partition("/")
    try:
        size = parse_size_bytes(size_text)
        per = parse_duration_s("1" + per_text.strip() if per_text.strip().isalpha() else per_text)
    except ValueError:
        raise ValueError(f"invalid rate {value!r}: expected {RATE_FORMS}") from None
    if per == 0:
        raise ValueError(f"invalid rate {value!r}: the time unit must be longer than zero")
    return size / per


def parse_duration_s(value: int | float | str) -> float:
    """Return seconds for ``"1ms"``-style text; a bare number is seconds.

    Zero is allowed here (a caller that needs a positive interval checks it);
    negative and non-finite durations are not.
    """
    number = _number_or_none(value)
    if number is None:
        if not isinstance(value, str):
            raise ValueError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
        match = _DURATION_RE.fullmatch(value.strip())
        unit = match.group("unit").lower() if match else None
        if match is None or (unit and unit not in _DURATION_FACTORS):
            raise ValueError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
        number = float(match.group("num")) * (_DURATION_FACTORS[unit] if unit else 1.0)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite duration >= 0")
    return number


def format_size(num_bytes: float) -> str:
    """Human text for a byte count, in the binary units the parser accepts."""
    sign = "-" if num_bytes < 0 else ""
    magnitude = abs(num_bytes)
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if magnitude >= factor:
            return f"{sign}{magnitude / factor:.1f} {unit}"
    return f"{sign}{magnitude:.0f} B"


def format_rate(bytes_per_s: float) -> str:
    """Human text for a growth rate, e.g. ``"1.5 MB/s"``."""
    return format_size(bytes_per_s) + "/s"


def format_duration(seconds: float) -> str:
    """Human text for a duration: µs, ms or s, whichever reads best."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


MIN_INTERVAL_MS = 0.05


def parse_interval_ms(value: float | str) -> float:
    """A sampling interval in ms, from a number of ms or duration text (``"1ms"``).

    Must be at least :data:`MIN_INTERVAL_MS`: a sampler cannot usefully wake more often.
    """
    try:
        milliseconds = parse_duration_s(value) * 1e3 if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid sampling interval {value!r}: {exc}") from None
    if not math.isfinite(milliseconds) or milliseconds <= 0:
        raise ValueError(f"invalid sampling interval {value!r}: must be a positive duration")
    if milliseconds < MIN_INTERVAL_MS:
        raise ValueError(
            f"invalid sampling interval {value!r}: the minimum is {MIN_INTERVAL_MS} ms"
        )
    return milliseconds
