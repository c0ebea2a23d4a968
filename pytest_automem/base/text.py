"""Text made safe for Markdown: the step summary and ``--format markdown`` reports.

Both put names and messages we do not control (node ids, file paths,
exception text) into tables, headings and code spans, where a stray pipe,
backtick or newline would break the layout.
"""

from __future__ import annotations

__all__ = ["markdown_code", "markdown_text"]


def markdown_text(text: str) -> str:
    """``text`` as one line of Markdown that keeps table cells and emphasis intact."""
    return text.replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def markdown_code(text: str, *, in_table: bool = False) -> str:
    """``text`` safe inside a single-backtick code span.

    A backslash escapes nothing inside a code span, so a backtick becomes a
    quote.  In a table cell GitHub still ends the cell at a pipe, even one
    inside a code span, unless it is escaped.
    """
    code = text.replace("`", "'").replace("\n", " ")
    return code.replace("|", "\\|") if in_table else code
