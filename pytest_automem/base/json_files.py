"""Reading JSON from our files: every way a text can fail to be JSON, said in one line.

The automaton, results and snapshot files are read by different modules, but
their JSON fails in the same ways: bad syntax, bytes that are not UTF-8, an
integer past Python's digit limit, nesting deeper than the recursion limit
(``json`` raises ValueError and RecursionError for those two, not
JSONDecodeError), and for strict readers NaN and infinities.  :func:`parse_json`
turns each into one :class:`JsonTextError` with the same words, and each
reader adds its file, line and error class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "INVALID_JSON",
    "INVALID_UTF8",
    "JsonTextError",
    "json_kind",
    "parse_json",
    "strict_decoder",
]

#: The two kinds of :class:`JsonTextError`, as its message begins.
INVALID_JSON = "invalid JSON"
INVALID_UTF8 = "invalid UTF-8"


class JsonTextError(ValueError):
    """A text that is not JSON Python can hold.

    Reads ``invalid JSON: <detail>`` (or ``invalid UTF-8: <detail>``);
    ``line`` is the line of the text at fault when the decoder knows it
    (None for nesting and digit limits, which it reports without a place).
    """

    def __init__(self, kind: str, detail: str, line: int | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.line = line


class _NotJson(ValueError):
    """A value Python's decoder accepts but JSON does not (NaN, 1e400)."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise _NotJson(f"{shown} is out of range for a float")
    return value


def strict_decoder(
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> json.JSONDecoder:
    """A decoder that refuses what JSON has no number for: NaN, infinities, 1e400.

    What a strict reader loads it can also write back with ``allow_nan=False``.
    """
    return json.JSONDecoder(
        object_pairs_hook=object_pairs_hook,
        parse_constant=_reject_constant,
        parse_float=_finite_float,
    )


_PLAIN = json.JSONDecoder()


def parse_json(
    text: str | bytes, decoder: json.JSONDecoder = _PLAIN, *, encoding: str = "utf-8"
) -> Any:
    """The JSON value of ``text``; raises :class:`JsonTextError` saying why not.

    Bytes are decoded with ``encoding`` (``"utf-8-sig"`` where a file may
    start with a byte-order mark).
    """
    try:
        if isinstance(text, bytes):
            text = text.decode(encoding)
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        detail, line = f"{exc.msg} (column {exc.colno})", exc.lineno
    except _NotJson as exc:
        detail, line = str(exc), None
    except UnicodeDecodeError as exc:
        raise JsonTextError(INVALID_UTF8, f"{exc.reason} at byte {exc.start + 1}") from None
    except ValueError as exc:  # an integer past Python's digit limit
        detail, line = str(exc).partition(":")[0], None
    except RecursionError:
        detail, line = "nested too deeply", None
    raise JsonTextError(INVALID_JSON, detail, line)


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
