"""Reading a dashboard back as the tests check it: its parsed structure and its data.

The page is checked as a browser and a reviewer would read it: parsed by
``html.parser`` (every element and attribute), its embedded JSON decoded
exactly as the page's script decodes it, and every place a page could load
something from outside listed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

#: Attributes through which a page loads or links something.
URL_ATTRIBUTES = frozenset({"src", "href", "srcset", "action", "formaction", "poster", "data"})
#: CSS that loads something.
CSS_LOADS = re.compile(r"url\s*\(|@import", re.IGNORECASE)
#: A network address anywhere in the text (``http-equiv`` is none).
URL_SCHEME = re.compile(r".{0,30}\b(?:https?|wss?|ftp)\s*:.{0,30}", re.IGNORECASE)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
#: Generous for a browser start on a shared 2-core machine: this only stops a hang.
BROWSER_TIMEOUT_S = 120


@dataclass
class PageStructure:
    """What html.parser saw: every tag with its attributes, and the scripts' texts."""

    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    scripts: list[tuple[dict[str, str | None], str]] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = PageStructure()
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.page.tags.append((tag, attributes))
        if tag in ("script", "style"):
            self._open, self._text = (tag, attributes), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._open[0]:
            text = "".join(self._text)
            if tag == "script":
                self.page.scripts.append((self._open[1], text))
            else:
                self.page.styles.append(text)
            self._open = None


def parse_page(text: str) -> PageStructure:
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.page


def page_data(text: str) -> dict[str, Any]:
    """The embedded data, decoded as the page's script decodes it."""
    [data] = [body for attrs, body in parse_page(text).scripts if attrs.get("id") == "automem-data"]
    document: dict[str, Any] = json.loads(data)
    return document


def external_references(text: str) -> list[str]:
    """Everything in the page (outside its embedded data) that could reach a network."""
    page = parse_page(text)
    found = [
        f"<{tag} {name}={value!r}>"
        for tag, attributes in page.tags
        for name, value in attributes.items()
        if name in URL_ATTRIBUTES and value is not None and not value.startswith("#")
    ]
    found.extend(
        f"css: {match.group()}" for style in page.styles for match in CSS_LOADS.finditer(style)
    )
    without_data = re.sub(
        r'<script type="application/json" id="automem-data">.*?</script>', "", text, flags=re.S
    )
    found.extend(f"text: {m.group()}" for m in URL_SCHEME.finditer(without_data))
    return found


def node_ids_of(data: dict[str, Any]) -> list[str]:
    column = data["columns"].index("name")
    return [row[column] for row in data["rows"]]


@dataclass(frozen=True)
class BrowserRun:
    """What headless Chromium made of a page: the DOM after the script ran, its log."""

    dom: str
    log: str

    @property
    def root(self) -> dict[str, str | None]:
        """The ``<html>`` element's attributes: the page's ready and error marks."""
        [attributes] = [a for tag, a in parse_page(self.dom).tags if tag == "html"]
        return attributes

    @property
    def rendered(self) -> bool:
        """The script ran to its end and caught no error on the way."""
        return self.root.get("data-automem-ready") == "1" and "data-automem-errors" not in self.root

    @property
    def console_problems(self) -> list[str]:
        """Uncaught errors, loads or scripts the page's policy refused, and any
        console message at all (the page's script writes none)."""
        return [
            line
            for line in self.log.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "Refused to" in line
        ]


def load_in_chromium(path: Path, fragment: str = "") -> BrowserRun:
    """Load ``path`` (and ``#fragment``) in headless Chromium; the DOM once loaded."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
            f"--user-data-dir={path.parent / '.chromium-profile'}",
            "--dump-dom", path.resolve().as_uri() + fragment,
        ],
        capture_output=True, text=True, errors="replace", timeout=BROWSER_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.returncode, result.stderr[-600:])
    return BrowserRun(result.stdout, result.stderr)
