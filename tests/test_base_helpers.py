"""Table tests for the helpers every reader and writer shares: JSON text,
counts and Markdown."""

from __future__ import annotations

import pytest
from helpers import NEEDS_DIGIT_LIMIT, NESTED_TOO_DEEP, TOO_MANY_DIGITS

from pytest_automem.base.json_files import (
    INVALID_JSON,
    INVALID_UTF8,
    JsonTextError,
    parse_json,
    strict_decoder,
)
from pytest_automem.base.text import markdown_code, markdown_text
from pytest_automem.base.units import is_count


@pytest.mark.parametrize(
    ("text", "kind", "message", "line"),
    [
        ('{"a": 1,\n "b": }', INVALID_JSON, "invalid JSON: Expecting value (column 7)", 2),
        ("", INVALID_JSON, "invalid JSON: Expecting value (column 1)", 1),
        (NESTED_TOO_DEEP, INVALID_JSON, "invalid JSON: nested too deeply", None),
        pytest.param(
            TOO_MANY_DIGITS,
            INVALID_JSON,
            "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion",
            None,
            marks=NEEDS_DIGIT_LIMIT,
        ),
        (b'{"a": "\xff"}', INVALID_UTF8, "invalid UTF-8: invalid start byte at byte 8", None),
    ],
    ids=["syntax", "empty", "nested", "digits", "not-utf8"],
)
def test_parse_json_says_why_and_where(
    text: str | bytes, kind: str, message: str, line: int | None
) -> None:
    with pytest.raises(JsonTextError) as caught:
        parse_json(text)
    assert (caught.value.kind, str(caught.value), caught.value.line) == (kind, message, line)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[NaN]", "invalid JSON: NaN is not a JSON number"),
        ('{"v": -Infinity}', "invalid JSON: -Infinity is not a JSON number"),
        ("1e400", "invalid JSON: 1e400 is out of range for a float"),
    ],
)
def test_the_strict_decoder_refuses_what_json_cannot_write(text: str, message: str) -> None:
    assert parse_json(text) is not None  # the plain decoder takes them
    with pytest.raises(JsonTextError) as caught:
        parse_json(text, strict_decoder())
    assert str(caught.value) == message


def test_parse_json_allows_a_byte_order_mark_only_when_asked() -> None:
    text = b'\xef\xbb\xbf{"id": "a"}'
    assert parse_json(text, encoding="utf-8-sig") == {"id": "a"}
    with pytest.raises(JsonTextError, match=r"^invalid JSON: Expecting value \(column 1\)$"):
        parse_json(text)


@pytest.mark.parametrize(
    ("value", "minimum", "expected"),
    [
        (0, 0, True),
        (7, 1, True),
        (0, 1, False),
        (-1, 0, False),
        (True, 0, False),
        (False, 0, False),
        (1.0, 0, False),
        ("3", 0, False),
        (None, 0, False),
        (10**400, 0, True),
    ],
)
def test_is_count(value: object, minimum: int, expected: bool) -> None:
    assert is_count(value, minimum) is expected


@pytest.mark.parametrize(
    ("text", "as_text", "as_code", "as_table_code"),
    [
        ("plain", "plain", "plain", "plain"),
        ("a|b", "a\\|b", "a|b", "a\\|b"),
        ("use `x`", "use \\`x\\`", "use 'x'", "use 'x'"),
        ("two\nlines", "two lines", "two lines", "two lines"),
    ],
)
def test_markdown_escaping(text: str, as_text: str, as_code: str, as_table_code: str) -> None:
    assert markdown_text(text) == as_text
    assert markdown_code(text) == as_code
    assert markdown_code(text, in_table=True) == as_table_code
