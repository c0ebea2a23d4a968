"""The one writer of JUnit XML: the files ``automem`` writes, and our reports in pytest's.

Three things reach JUnit, all from here:

* :func:`write_check_report` writes a JUnit file of its own (``automem
  investigate --junit``): one test case per check, failed where the check's
  verdict failed;
* :func:`junit_properties` gives a test's ``automem.*`` properties, which the
  plugin hands to pytest through ``item.user_properties`` (pytest's writer
  then puts them on the test's case, on xdist too);
* :func:`attach_to_junit` rewrites the file pytest's ``--junitxml`` wrote.
  pytest's writer knows nothing of our reports: when a test fails on memory
  its ``<failure message=...>`` is the whole multi-line longrepr, and
  ``<system-out>`` holds only captured output.  After pytest has written the
  file (on the controller, at session end) the rewrite gives a one-line
  failure message, the report in the failure text and, after pytest's own
  output, the report in ``<system-out>`` led by a ``[[ATTACHMENT|path]]``
  line that GitLab, Jenkins and Azure turn into a link.

The module is pure: no pytest import, so it can be tested and reused alone.

Two details of pytest's writer shape the rewrite:

* it writes a testcase ``name`` through its ``bin_xml_escape``, which turns
  characters it deems invalid into ``#xNN``.  Up to pytest 9.0 that regex
  wrongly treats every character beyond U+FFFF (emoji included) as invalid
  (pytest-dev/pytest#14483, fixed upstream), so the name of a test with an
  emoji id reads ``#x1F9E0`` in the file.  :func:`junit_address` mirrors
  released pytest; matching accepts the fixed spelling too.
* a test whose call fails and whose teardown errors gets two ``<testcase>``
  elements with the same address; every match is updated.

Every file is read and written with the standard library's ElementTree, the
library pytest's own writer uses: junitparser switches to lxml when that is
installed, and the bytes a user gets would then depend on what else is
installed (lxml also serialises differently from pytest's writer).  The
parser keeps comments and processing instructions, so a rewrite loses
nothing pytest or another tool put in the file.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_automem.base.atomic import atomic_writer
from pytest_automem.results.results_file import REQUIRED_TEST_KEYS

if TYPE_CHECKING:  # importing it loads the investigator, which pytest's JUnit never needs
    from pytest_automem.verdicts.findings import CheckVerdict
    from pytest_automem.verdicts.gate import GateResult

__all__ = [
    "JunitAttachment",
    "JunitFileError",
    "attach_to_junit",
    "junit_address",
    "junit_properties",
    "write_check_report",
    "write_gate_report",
    "xml_safe",
]


@dataclass(frozen=True)
class JunitAttachment:
    """What to add to one test's testcase(s) in a JUnit file.

    ``failure_message`` is the one-line message of a memory *failure* (which
    limit, measured, budget), or None when the test did not fail on memory;
    ``attachment_path`` is the per-test report file, if one was written.
    """

    nodeid: str
    report_text: str
    failure_message: str | None = None
    attachment_path: str | None = None


class JunitFileError(ValueError):
    """The JUnit file is missing, unreadable or not a JUnit document."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"JUnit file {self.path}: {reason}")


# XML 1.0 ``Char``: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# A surrogate *pair* held as two code points (as from "surrogatepass" decoding)
# is matched first so it can be joined into the character it encodes.
_XML_INVALID = re.compile(
    "[\ud800-\udbff][\udc00-\udfff]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

# pytest's ``bin_xml_escape`` as released (supplementary planes missing, DEL
# included) and as fixed upstream.
_PYTEST_INVALID = re.compile("[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd]")
_PYTEST_INVALID_FIXED = re.compile(
    "[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_NEWLINE = re.compile(r"\r\n?|\n")
_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
#: The root elements a JUnit file may have.
_JUNIT_ROOTS = ("testsuites", "testsuite")
#: The suite of ``automem gate --junit``, and the prefix of its cases' classnames.
_GATE_PREFIX = "automem.gate"


def _escape_invalid(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) == 2:  # a high and a low surrogate: the character they encode
        return found.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    code = ord(found)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def xml_safe(text: str) -> str:
    """Return ``text`` with every character XML 1.0 forbids made a visible escape.

    C0 controls other than tab, newline and carriage return become ``\\x00``
    style escapes; U+FFFE, U+FFFF and lone surrogates become ``\\ufffe`` style
    escapes.  Nothing is dropped.  Valid characters beyond U+FFFF (emoji) are
    kept, and a surrogate pair held as two code points is joined into the
    character it encodes.
    """
    if _XML_INVALID.search(text) is None:
        return text
    return _XML_INVALID.sub(_escape_invalid, text)


def _pytest_escape(text: str, pattern: re.Pattern[str] = _PYTEST_INVALID) -> str:
    """Mirror pytest's ``bin_xml_escape``: invalid characters as ``#xNN``."""

    def repl(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"#x{code:02X}" if code <= 0xFF else f"#x{code:04X}"

    return pattern.sub(repl, text)


def _mangle(nodeid: str, prefix: str | None) -> tuple[str, str]:
    """(classname, unescaped name), as pytest's ``mangle_test_address`` splits a nodeid."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    classnames = names[:-1]
    if prefix:
        classnames.insert(0, prefix)
    return ".".join(classnames), names[-1]


def junit_address(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """Return the ``(classname, name)`` pytest's JUnit writer gives ``nodeid``.

    The file path becomes dotted without ``.py``, classes join it, the last
    part (with its ``[params]``, even if they contain ``::`` or ``/``) is the
    name; ``prefix`` is pytest's ``--junit-prefix``.  The name is escaped as pytest
    escapes it, see the module docstring.
    """
    classname, name = _mangle(nodeid, prefix)
    return classname, _pytest_escape(name)


def _addresses(nodeid: str, prefix: str | None) -> set[tuple[str, str]]:
    """Every address under which a pytest release may have written ``nodeid``."""
    classname, name = _mangle(nodeid, prefix)
    return {
        (classname, _pytest_escape(name)),
        (classname, _pytest_escape(name, _PYTEST_INVALID_FIXED)),
    }


def _first_line(text: str) -> str:
    return _NEWLINE.split(text, maxsplit=1)[0].rstrip()


def _normalised(text: str) -> str:
    """Text as an XML parser returns it: line ends are read back as ``\\n``."""
    return _NEWLINE.sub("\n", text)


def _load(path: str) -> ET.ElementTree:
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    try:
        tree = ET.parse(path, parser=parser)
    except FileNotFoundError:
        raise JunitFileError(path, "no such file") from None
    except OSError as exc:
        raise JunitFileError(path, f"cannot read it ({exc.strerror or exc})") from None
    except ET.ParseError as exc:
        raise JunitFileError(path, f"not well-formed XML ({exc})") from None
    if tree.getroot().tag not in _JUNIT_ROOTS:
        reason = f"root element is <{tree.getroot().tag}>, not <testsuites> or <testsuite>"
        raise JunitFileError(path, reason)
    return tree


def _update_failures(case: ET.Element, attachment: JunitAttachment) -> None:
    assert attachment.failure_message is not None
    message = xml_safe(_first_line(attachment.failure_message))
    report = attachment.report_text.strip()
    spellings = {
        _normalised(spelling)
        for spelling in (
            xml_safe(report),
            _pytest_escape(report),
            _pytest_escape(report, _PYTEST_INVALID_FIXED),
        )
    }
    for failure in case.findall("failure"):
        failure.set("message", message)
        if not report:
            continue
        text = failure.text or ""
        if any(spelling in _normalised(text) for spelling in spellings):
            continue
        safe = xml_safe(report)
        failure.text = f"{text.rstrip()}\n\n{safe}\n" if text.strip() else f"{safe}\n"


def _system_out_block(attachment: JunitAttachment) -> str:
    lines = []
    if attachment.attachment_path:
        lines.append(f"[[ATTACHMENT|{xml_safe(os.fspath(attachment.attachment_path))}]]")
    if attachment.report_text:
        lines.append(xml_safe(attachment.report_text).rstrip("\n"))
    return "".join(f"{line}\n" for line in lines)


def _append_system_out(elem: ET.Element, block: str) -> None:
    outs = elem.findall("system-out")
    if outs:
        out = outs[-1]
    else:
        # Keep the schema's order: results, then system-out, then system-err.
        out = elem.makeelement("system-out", {})
        children = list(elem)
        errs = [index for index, child in enumerate(children) if child.tag == "system-err"]
        elem.insert(errs[0] if errs else len(children), out)
    existing = out.text or ""
    if _normalised(existing).endswith(_normalised(block)):
        return  # attached already: running twice must not repeat the report
    separator = "\n" if existing and not existing.endswith("\n") else ""
    out.text = existing + separator + block


def attach_to_junit(
    xml_path: str | os.PathLike[str],
    attachments: Sequence[JunitAttachment],
    *,
    prefix: str | None = None,
) -> int:
    """Add ``attachments`` to the JUnit file at ``xml_path``; return the testcases updated.

    For each attachment, every ``<testcase>`` at its address (a nodeid appears
    once per ``<testsuite>`` pytest wrote it in) is updated:

    * with a ``failure_message``, each ``<failure>`` gets that message (first
      line only) and its text gains the report after a blank line, unless it
      already holds it;
    * ``<system-out>`` (created if missing) keeps pytest's content and then
      gets the ``[[ATTACHMENT|path]]`` line, if any, and the report.

    All text is passed through :func:`xml_safe`.  Other testcases and
    properties are left as they were.  ``prefix`` is pytest's ``--junit-prefix``.
    The file is replaced atomically and only if a testcase was updated.

    Raises :class:`JunitFileError` (a ``ValueError``) naming the path when the
    file is missing, unreadable or not JUnit XML; the file is then untouched.
    """
    path = os.fspath(xml_path)
    tree = _load(path)
    by_address: dict[tuple[str, str], list[JunitAttachment]] = {}
    for attachment in attachments:
        for address in _addresses(attachment.nodeid, prefix):
            by_address.setdefault(address, []).append(attachment)

    updated = 0
    for elem in tree.getroot().iter("testcase"):
        matching = by_address.get((elem.get("classname", ""), elem.get("name", "")), [])
        if not matching:
            continue
        updated += 1
        for attachment in matching:
            if attachment.failure_message is not None:
                _update_failures(elem, attachment)
            block = _system_out_block(attachment)
            if block:
                _append_system_out(elem, block)

    if updated:
        _write(path, tree.getroot())
    return updated


def _write(path: str | os.PathLike[str], root: ET.Element) -> None:
    """Replace the file at ``path`` with ``root`` as a UTF-8 document, atomically."""
    body = ET.tostring(root, encoding="unicode")
    with atomic_writer(path) as handle:
        handle.write(_XML_DECLARATION)
        handle.write(body)
        handle.write("\n")


# -- a JUnit file of our own ---------------------------------------------------


def write_check_report(
    path: str | os.PathLike[str],
    verdicts: Sequence[CheckVerdict],
    *,
    suite: str,
    classname: str,
    properties: Mapping[str, object],
) -> None:
    """Write ``verdicts`` as a JUnit file at ``path``: one test case per check.

    A failed check's case gets a ``<failure>`` whose message is the verdict's
    one-line message and whose type is its most severe finding's severity;
    the failure text lists every finding with its details and
    recommendation.  ``properties`` become suite properties.  All text
    passes through :func:`xml_safe`, so ids with control characters still
    give well-formed XML.  The file is replaced atomically (OSError if it
    cannot be written).
    """
    failures = sum(not verdict.passed for verdict in verdicts)
    tests = str(len(verdicts))
    root = ET.Element(
        "testsuites",
        {"tests": tests, "failures": str(failures), "errors": "0", "skipped": "0", "time": "0.0"},
    )
    element = ET.SubElement(
        root,
        "testsuite",
        {
            "name": xml_safe(suite),
            "tests": tests,
            "errors": "0",
            "failures": str(failures),
            "skipped": "0",
            "time": "0",
        },
    )
    if properties:
        holder = ET.SubElement(element, "properties")
        for name, value in properties.items():
            attributes = {"name": xml_safe(str(name)), "value": xml_safe(str(value))}
            ET.SubElement(holder, "property", attributes)
    for verdict in verdicts:
        case = ET.SubElement(
            element, "testcase", {"name": xml_safe(verdict.check), "classname": classname}
        )
        if not verdict.passed:
            failure = ET.SubElement(
                case,
                "failure",
                {"message": xml_safe(verdict.message), "type": verdict.severity_name},
            )
            failure.text = xml_safe(_failure_text(verdict))
    _write(path, root)


def _failure_text(verdict: CheckVerdict) -> str:
    """Every finding of a failed check: summary, details, what to do."""
    lines: list[str] = []
    for finding in verdict.findings:
        if lines:
            lines.append("")
        lines.append(f"[{finding.severity.name}] {finding.summary}")
        lines.extend(f"  {detail}" for detail in finding.details)
        if finding.recommendation:
            lines.append(f"what to do: {finding.recommendation}")
    return "\n".join(lines) + "\n"


def write_gate_report(path: str | os.PathLike[str], result: GateResult) -> None:
    """Write ``automem gate``'s verdict as a JUnit file: one test case per node id.

    A case sits where pytest's JUnit puts the test, under the prefix
    ``automem.gate`` (as ``--junit-prefix`` would), so a CI that joins every
    JUnit file of a pipeline shows it beside the test and not in its place;
    the name keeps every character XML allows (emoji too, unlike pytest's).
    A regressed test fails with a one-line message (each regressed metric's
    baseline, current, delta and the rule); a test only in the baseline is
    skipped, saying so.  Replaced atomically (OSError if it cannot be written).
    """
    from ..verdicts.gate import Status
    from .gate_report import regression_message

    regressed = result.count(Status.REGRESSED)
    removed = result.count(Status.REMOVED)
    counts = {
        "tests": str(len(result.comparisons)),
        "failures": str(regressed),
        "errors": "0",
        "skipped": str(removed),
        "time": "0",
    }
    root = ET.Element("testsuites", counts)
    suite = ET.SubElement(root, "testsuite", {"name": _GATE_PREFIX, **counts})
    for comparison in result.comparisons:
        classname, name = _mangle(comparison.nodeid, _GATE_PREFIX)
        attributes = {"classname": xml_safe(classname), "name": xml_safe(name)}
        case = ET.SubElement(suite, "testcase", attributes)
        if comparison.status is Status.REGRESSED:
            message = regression_message(comparison)
            attributes = {"message": xml_safe(message), "type": "regressed"}
            failure = ET.SubElement(case, "failure", attributes)
            failure.text = xml_safe(f"{comparison.nodeid}\n{message}\n")
        elif comparison.status is Status.REMOVED:
            ET.SubElement(case, "skipped", {"message": "removed: in the baseline only"})
        else:
            ET.SubElement(case, "system-out").text = comparison.status.label
    _write(path, root)


# -- properties on pytest's test cases -------------------------------------------


def junit_properties(record: Mapping[str, Any]) -> list[tuple[str, str | int | float | bool]]:
    """A test's ``automem.<key>`` properties, one per results key, from its record.

    pytest writes them (the plugin adds them to ``item.user_properties``): a
    list becomes one ``"; "``-joined value and a missing figure an empty one,
    since a property holds a single string.
    """
    return [(f"automem.{key}", _property_value(record[key])) for key in REQUIRED_TEST_KEYS]


def _property_value(value: object) -> str | int | float | bool:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if value is None:
        return ""
    return value if isinstance(value, (str, int, float, bool)) else str(value)
