"""The dashboard's page: the data embedded as inert JSON, with its style and script.

The style and the script are package files (``dashboard_style.css``,
``dashboard_script.js``) written by hand for this page: no library, nothing
fetched.  A Content-Security-Policy in the page allows exactly that script
and that style (by their hashes) and no connection at all, so even a page
altered after it was written cannot load or run anything else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

__all__ = ["embedded_json", "render_page"]

_STYLE_FILE = "dashboard_style.css"
_SCRIPT_FILE = "dashboard_script.js"


@functools.cache
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _hash_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def embedded_json(data: Mapping[str, Any]) -> str:
    """``data`` as JSON that is inert inside a ``<script>`` element.

    ASCII only (lone surrogates, U+2028 and U+2029 escaped), and ``<``,
    ``>``, ``&`` as ``\\u`` escapes, so no text in it can close the element
    or open a comment, whatever a test is named.
    """
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(label: str, data: Mapping[str, Any]) -> str:
    """The whole HTML document: ``label`` (the run shown) escaped, ``data`` for the script."""
    style, script = _asset(_STYLE_FILE), _asset(_SCRIPT_FILE)
    policy = (
        f"default-src 'none'; script-src {_hash_source(script)}; "
        f"style-src {_hash_source(style)}; img-src data:; base-uri 'none'; form-action 'none'"
    )
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>Memory report: {html.escape(label)}</title>\n",
            f"<style>{style}</style>\n</head>\n<body>\n<header><h1>Memory report</h1>",
            f'<p class="sub">{html.escape(label)}</p></header>\n',
            _BODY,
            '<script type="application/json" id="automem-data">',
            embedded_json(data),
            "</script>\n<script>",
            script,
            "</script>\n</body>\n</html>\n",
        )
    )


_BODY = """\
<main id="app" aria-busy="true">
<noscript><p>This report draws its tables and plots with JavaScript: turn it on.</p></noscript>
<ul id="automem-errors" hidden></ul>
<svg id="automem-svg-ns" width="0" height="0" aria-hidden="true" focusable="false"></svg>
<section id="summary" aria-label="Summary"></section>
<section id="tests" aria-labelledby="tests-title">
<h2 id="tests-title">Tests</h2>
<form id="filters" class="filters" role="search">
<label>Name contains<input type="search" id="f-name" autocomplete="off"></label>
<label>Verdict<select id="f-verdict"></select></label>
<label>Pressure<select id="f-pressure"></select></label>
</form>
<p id="count" aria-live="polite"></p>
<table>
<caption class="visually-hidden">Monitored tests; the sort buttons are in the header row, \
Enter on a row opens its memory curve and report.</caption>
<thead><tr id="head"></tr></thead>
<tbody id="rows"></tbody>
</table>
<nav class="pager" aria-label="Pages of tests">
<button type="button" id="prev">Previous page</button><span id="page"></span>\
<button type="button" id="next">Next page</button>
</nav>
</section>
</main>
<aside id="detail" role="dialog" aria-labelledby="detail-title" hidden></aside>
"""
