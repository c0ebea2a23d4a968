"""Attaching memory reports to the JUnit file the real pytest writes.

Each test runs pytest in-process through ``pytester`` with ``--junitxml``
(our own plugin disabled in the inner run), then post-processes the file and
reads it back with both ElementTree and junitparser.
"""

from __future__ import annotations

import textwrap
import xml.dom.minidom
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from pytest_automem.outputs.junit import (
    JunitAttachment,
    JunitFileError,
    attach_to_junit,
    junit_address,
    xml_safe,
)

MODULE = textwrap.dedent(
    """
    import sys

    import pytest


    def test_pass(record_property):
        record_property("kept", "yes")
        print("stdout of pass")


    def test_fail(record_property):
        record_property("kept", "also")
        print("stdout of fail")
        assert 1 == 2, "plain failure"


    def test_quiet():
        pass


    def test_stderr_only():
        print("stderr only", file=sys.stderr)


    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(1, id="with space"),
            pytest.param(2, id="br[a]ck]et"),
            pytest.param(3, id="ünïcode"),
            pytest.param(4, id="a::b/c.py"),
            pytest.param(5, id="bell\\x07"),
        ],
    )
    def test_param(value):
        print("param", value)


    class TestGroup:
        def test_method(self):
            print("stdout of method")
    """
)

DEEP = textwrap.dedent(
    """
    class TestDeep:
        def test_inner(self):
            pass


    def test_outer():
        pass
    """
)

RAW_IDS = ("-o", "disable_test_id_escaping_and_forfeit_all_rights_to_community_support=true")

Cases = dict[tuple[str, str], list[ET.Element]]
RunJunit = Callable[..., tuple[Path, list[str]]]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A small project: a module at the root and one in a subfolder."""
    pytester.makepyfile(test_mod=MODULE)
    (pytester.path / "sub").mkdir()
    (pytester.path / "sub" / "test_deep.py").write_text(DEEP, encoding="utf-8")
    return pytester


@pytest.fixture
def run_junit(project: pytest.Pytester) -> RunJunit:
    """Run the project under the real pytest; return the JUnit path and the nodeids run."""

    def run(
        *args: str, name: str = "out.xml", logging: str = "system-out"
    ) -> tuple[Path, list[str]]:
        reprec = project.inline_run(
            f"--junitxml={name}", "-p", "no:automem", "-o", f"junit_logging={logging}", *args
        )
        nodeids = sorted({rep.nodeid for rep in reprec.getreports("pytest_runtest_logreport")})
        path = project.path / name
        assert path.is_file()
        return path, nodeids

    return run


def etree_cases(path: Path) -> Cases:
    cases: Cases = {}
    for elem in ET.parse(path).getroot().iter("testcase"):
        cases.setdefault((elem.get("classname", ""), elem.get("name", "")), []).append(elem)
    return cases


def only_case(path: Path, nodeid: str, prefix: str | None = None) -> ET.Element:
    (elem,) = etree_cases(path)[junit_address(nodeid, prefix)]
    return elem


def junitparser_case(path: Path, nodeid: str) -> object:
    classname, name = junit_address(nodeid)
    found = [
        case
        for suite in JUnitXml.fromfile(str(path))
        for case in suite
        if case.classname == classname and case.name == name
    ]
    assert len(found) == 1
    return found[0]


def snapshot(path: Path) -> dict[tuple[str, str], list[bytes]]:
    return {key: [ET.tostring(e) for e in elems] for key, elems in etree_cases(path).items()}


def system_out(elem: ET.Element) -> str:
    out = elem.find("system-out")
    assert out is not None
    return out.text or ""


# ---------------------------------------------------------------- junit_address


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        ((), None),
        (("--junit-prefix=pre",), "pre"),
        ((*RAW_IDS, "-o", "junit_family=xunit2"), None),
    ],
    ids=["default", "prefix", "raw-ids-xunit2"],
)
def test_junit_address_matches_what_pytest_writes(
    run_junit: RunJunit, args: Sequence[str], prefix: str | None
) -> None:
    path, nodeids = run_junit(*args)
    written = set(etree_cases(path))
    derived = {junit_address(nodeid, prefix) for nodeid in nodeids}
    assert derived == written
    assert len(written) == len(nodeids) == 12
    assert any(c.endswith("sub.test_deep.TestDeep") and n == "test_inner" for c, n in written)
    assert all(classname.startswith("pre.") for classname, _ in written) == (prefix is not None)


def test_junit_address_mirrors_pytest_name_escaping(run_junit: RunJunit) -> None:
    """With raw ids a control character reaches the nodeid; pytest writes it as ``#x07``."""
    path, nodeids = run_junit(*RAW_IDS)
    (bell,) = [nodeid for nodeid in nodeids if "bell" in nodeid]
    assert "\x07" in bell
    assert junit_address(bell) == ("test_mod", "test_param[bell#x07]")
    assert junit_address(bell) in etree_cases(path)
    (uni,) = [nodeid for nodeid in nodeids if "code]" in nodeid]
    assert junit_address(uni) == ("test_mod", "test_param[ünïcode]")


@pytest.mark.parametrize(
    ("nodeid", "prefix", "expected"),
    [
        ("test_a.py::test_b", None, ("test_a", "test_b")),
        ("tests/sub/test_a.py::TestA::test_b", None, ("tests.sub.test_a.TestA", "test_b")),
        (
            "tests/test_a.py::TestA::TestB::test_c",
            "pre",
            ("pre.tests.test_a.TestA.TestB", "test_c"),
        ),
        ("test_a.py::test_b[x::y/z.py]", None, ("test_a", "test_b[x::y/z.py]")),
        ("test_a.py::test_b[1-2]", "", ("test_a", "test_b[1-2]")),
        ("test_py.py::test_b", None, ("test_py", "test_b")),
        ("test_a.pyc.py::test_b", None, ("test_a.pyc", "test_b")),
        ("test_a.py::test_b[\x1b\x7f]", None, ("test_a", "test_b[#x1B#x7F]")),
        ("test_a.py::test_b[\ud800]", None, ("test_a", "test_b[#xD800]")),
    ],
)
def test_junit_address_table(nodeid: str, prefix: str | None, expected: tuple[str, str]) -> None:
    assert junit_address(nodeid, prefix) == expected


# ---------------------------------------------------------------- attach_to_junit

REPORT = "automem: peak 80.0 MiB > budget 64.0 MiB\n\n  step  rss\n  1     12 MiB\n"


def test_failure_gets_one_line_message_and_report(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    nodeid = "test_mod.py::test_fail"
    before = only_case(path, nodeid)
    failure_before = before.find("failure")
    assert failure_before is not None
    assert "\n" in failure_before.get("message", "")  # pytest's message is multi-line
    out_before = system_out(before)
    assert "stdout of fail" in out_before
    untouched = {k: v for k, v in snapshot(path).items() if k != junit_address(nodeid)}

    attachment = JunitAttachment(
        nodeid=nodeid,
        report_text=REPORT,
        failure_message="peak 80.0 MiB > budget 64.0 MiB\nsecond line is dropped",
        attachment_path="automem/test_fail.txt",
    )
    assert attach_to_junit(path, [attachment]) == 1

    after = only_case(path, nodeid)
    failure = after.find("failure")
    assert failure is not None
    assert failure.get("message") == "peak 80.0 MiB > budget 64.0 MiB"
    text = failure.text or ""
    assert text.startswith((failure_before.text or "").rstrip())
    assert "\n\n" + REPORT in text
    assert system_out(after) == out_before + "[[ATTACHMENT|automem/test_fail.txt]]\n" + REPORT
    assert [p.attrib for p in after.iter("property")] == [{"name": "kept", "value": "also"}]
    assert {k: v for k, v in snapshot(path).items() if k != junit_address(nodeid)} == untouched

    case = junitparser_case(path, nodeid)
    (result,) = case.result  # type: ignore[attr-defined]
    assert isinstance(result, Failure)
    assert result.message == "peak 80.0 MiB > budget 64.0 MiB"
    assert REPORT in result.text
    assert case.system_out.startswith(out_before)  # type: ignore[attr-defined]
    assert case.system_out.endswith("[[ATTACHMENT|automem/test_fail.txt]]\n" + REPORT)  # type: ignore[attr-defined]


def test_passing_test_gets_report_in_system_out_only(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    nodeid = "test_mod.py::test_pass"
    out_before = system_out(only_case(path, nodeid))
    attachment = JunitAttachment(nodeid, "within budget\n", failure_message="ignored: no failure")
    assert attach_to_junit(path, [attachment]) == 1

    after = only_case(path, nodeid)
    assert after.find("failure") is None
    assert system_out(after) == out_before + "within budget\n"
    assert [p.attrib for p in after.iter("property")] == [{"name": "kept", "value": "yes"}]
    assert junitparser_case(path, nodeid).is_passed  # type: ignore[attr-defined]


def test_system_out_is_created_before_system_err(run_junit: RunJunit) -> None:
    path, _ = run_junit(logging="system-err")
    nodeid = "test_mod.py::test_stderr_only"
    assert only_case(path, nodeid).find("system-out") is None
    attachment = JunitAttachment(nodeid, "report", attachment_path="r.txt")
    assert attach_to_junit(path, [attachment]) == 1

    after = only_case(path, nodeid)
    assert [child.tag for child in after] == ["system-out", "system-err"]
    assert system_out(after) == "[[ATTACHMENT|r.txt]]\nreport\n"
    assert junitparser_case(path, nodeid).system_out == "[[ATTACHMENT|r.txt]]\nreport\n"  # type: ignore[attr-defined]


def test_without_junit_logging_system_out_is_created(run_junit: RunJunit) -> None:
    path, _ = run_junit(logging="no")
    nodeid = "test_mod.py::TestGroup::test_method"
    assert only_case(path, nodeid).find("system-out") is None
    assert attach_to_junit(path, [JunitAttachment(nodeid, "report")]) == 1
    assert system_out(only_case(path, nodeid)) == "report\n"


def test_parametrized_and_nested_tests_are_found(run_junit: RunJunit) -> None:
    path, nodeids = run_junit()
    attachments = [JunitAttachment(nodeid, f"report for {nodeid}") for nodeid in nodeids]
    assert attach_to_junit(path, attachments) == len(nodeids)
    for nodeid in nodeids:
        assert system_out(only_case(path, nodeid)).endswith(f"report for {nodeid}\n")


def test_prefix_must_be_given_to_match(run_junit: RunJunit) -> None:
    path, _ = run_junit("--junit-prefix=pre")
    attachment = JunitAttachment("sub/test_deep.py::TestDeep::test_inner", "report")
    original = path.read_bytes()
    assert attach_to_junit(path, [attachment]) == 0
    assert path.read_bytes() == original
    assert attach_to_junit(path, [attachment], prefix="pre") == 1
    assert system_out(only_case(path, attachment.nodeid, "pre")).endswith("\nreport\n")


def test_emoji_id_is_found_whichever_way_pytest_spells_it(project: pytest.Pytester) -> None:
    """pytest ≤ 9.0 writes U+1F9E0 in a name as ``#x1F9E0`` (pytest-dev/pytest#14483)."""
    project.makepyfile(
        test_emoji="import pytest\n\n@pytest.mark.parametrize('v', [pytest.param(1, id='🧠')])\n"
        "def test_e(v):\n    pass\n"
    )
    project.inline_run("--junitxml=e.xml", "-p", "no:automem", *RAW_IDS, "test_emoji.py")
    path = project.path / "e.xml"
    (name,) = [name for _, name in etree_cases(path)]
    assert name in {"test_e[🧠]", "test_e[#x1F9E0]"}
    assert attach_to_junit(path, [JunitAttachment("test_emoji.py::test_e[🧠]", "r")]) == 1


def test_every_testsuite_holding_the_test_is_updated(run_junit: RunJunit) -> None:
    first, _ = run_junit(name="a.xml")
    second, _ = run_junit(name="b.xml")
    root = ET.parse(first).getroot()
    root.extend(ET.parse(second).getroot().findall("testsuite"))
    merged = first.parent / "merged.xml"
    ET.ElementTree(root).write(merged, encoding="utf-8", xml_declaration=True)

    nodeid = "test_mod.py::test_fail"
    attachment = JunitAttachment(nodeid, REPORT, failure_message="over budget")
    assert attach_to_junit(merged, [attachment]) == 2
    elems = etree_cases(merged)[junit_address(nodeid)]
    assert len(elems) == 2
    for elem in elems:
        failure = elem.find("failure")
        assert failure is not None
        assert failure.get("message") == "over budget"
        assert system_out(elem).endswith(REPORT)
    assert len(list(JUnitXml.fromfile(str(merged)))) == 2


def test_failure_and_teardown_error_are_two_testcases(pytester: pytest.Pytester) -> None:
    """pytest writes a call failure and a teardown error of one test as two testcases."""
    pytester.makepyfile(
        test_td=textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def broken():
                yield
                raise RuntimeError("teardown broke")

            def test_both(broken):
                assert False
            """
        )
    )
    pytester.inline_run("--junitxml=td.xml", "-p", "no:automem")
    path = pytester.path / "td.xml"
    attachment = JunitAttachment("test_td.py::test_both", REPORT, failure_message="over budget")
    assert attach_to_junit(path, [attachment]) == 2

    results = [r for suite in JUnitXml.fromfile(str(path)) for c in suite for r in c.result]
    assert sorted(type(r).__name__ for r in results) == ["Error", "Failure"]
    for result in results:
        if isinstance(result, Failure):
            assert result.message == "over budget"
            assert REPORT in result.text
        else:
            assert isinstance(result, Error)
            assert "teardown broke" in result.message


def test_attaching_twice_does_not_repeat(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    attachment = JunitAttachment("test_mod.py::test_fail", REPORT, "over", "a.txt")
    assert attach_to_junit(path, [attachment]) == 1
    once = path.read_bytes()
    assert attach_to_junit(path, [attachment]) == 1
    assert path.read_bytes() == once
    elem = only_case(path, attachment.nodeid)
    assert system_out(elem).count(REPORT) == 1
    failure = elem.find("failure")
    assert failure is not None
    assert (failure.text or "").count(REPORT) == 1


def test_report_already_in_pytest_failure_text_is_not_appended(pytester: pytest.Pytester) -> None:
    """A plugin that makes the report its longrepr: pytest escapes it its own way (``#x1B``)."""
    report = "peak over budget \x1b[1mbold\x1b[0m\nline two\n"
    pytester.makeconftest(
        textwrap.dedent(
            f"""
            import pytest

            @pytest.hookimpl(wrapper=True)
            def pytest_runtest_makereport(item, call):
                rep = yield
                if rep.when == "call" and rep.failed:
                    rep.longrepr = {report!r}
                return rep
            """
        )
    )
    pytester.makepyfile(test_lr="def test_lr():\n    assert False\n")
    pytester.inline_run("--junitxml=lr.xml", "-p", "no:automem")
    path = pytester.path / "lr.xml"
    failure_before = only_case(path, "test_lr.py::test_lr").find("failure")
    assert failure_before is not None
    # pytest's message for a string longrepr is the whole text, every line of it.
    assert failure_before.get("message") == failure_before.text == report.replace("\x1b", "#x1B")

    attachment = JunitAttachment("test_lr.py::test_lr", report, "peak over budget")
    assert attach_to_junit(path, [attachment]) == 1
    failure = only_case(path, "test_lr.py::test_lr").find("failure")
    assert failure is not None
    assert failure.text == failure_before.text
    assert failure.get("message") == "peak over budget"


HOSTILE = "ctl \x00 \x1b[31mred \x07 sur \ud800 brain 🧠 lt < amp & cdata ]]> \ufffe end"
HOSTILE_SAFE = "ctl \\x00 \\x1b[31mred \\x07 sur \\ud800 brain 🧠 lt < amp & cdata ]]> \\ufffe end"


def test_hostile_text_gives_valid_xml_with_visible_escapes(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    attachments = [
        JunitAttachment(
            "test_mod.py::test_fail",
            HOSTILE,
            failure_message=HOSTILE + "\nsecond",
            attachment_path="dir/🧠 <a&b>.txt",
        ),
        JunitAttachment("test_mod.py::test_quiet", HOSTILE),
    ]
    assert attach_to_junit(path, attachments) == 2

    raw = path.read_bytes()
    raw.decode("utf-8", errors="strict")
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert b"]]&gt;" in raw
    assert b"&lt; amp &amp;" in raw
    xml.dom.minidom.parse(str(path))  # a second standard parser

    failing = only_case(path, "test_mod.py::test_fail")
    failure = failing.find("failure")
    assert failure is not None
    assert failure.get("message") == HOSTILE_SAFE
    assert HOSTILE_SAFE in (failure.text or "")
    assert system_out(failing).endswith(f"[[ATTACHMENT|dir/🧠 <a&b>.txt]]\n{HOSTILE_SAFE}\n")
    # pytest writes a "Captured Out" header even for a test that printed nothing.
    assert system_out(only_case(path, "test_mod.py::test_quiet")).endswith(
        "\n" + HOSTILE_SAFE + "\n"
    )

    case = junitparser_case(path, "test_mod.py::test_fail")
    assert case.result[0].message == HOSTILE_SAFE  # type: ignore[attr-defined]
    assert HOSTILE_SAFE in case.system_out  # type: ignore[attr-defined]


def test_no_matching_testcase_leaves_file_untouched(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    original = path.read_bytes()
    assert attach_to_junit(path, [JunitAttachment("test_mod.py::test_gone", "r", "m")]) == 0
    assert attach_to_junit(path, []) == 0
    assert path.read_bytes() == original


def test_file_mode_is_kept(run_junit: RunJunit) -> None:
    path, _ = run_junit()
    path.chmod(0o644)
    assert attach_to_junit(path, [JunitAttachment("test_mod.py::test_pass", "r")]) == 1
    assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- bad files


def test_missing_file_raises_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.xml"
    with pytest.raises(JunitFileError, match="no such file") as info:
        attach_to_junit(path, [JunitAttachment("t.py::t", "r")])
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not xml at all", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"<testsuites><testsuite>", "not well-formed XML"),
        (b"<testsuites>\x00</testsuites>", "not well-formed XML"),
        (b'<?xml version="1.0"?><html><body/></html>', "root element is <html>"),
    ],
    ids=["text", "empty", "truncated", "nul", "wrong-root"],
)
def test_unusable_file_raises_and_is_left_alone(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "junit.xml"
    path.write_bytes(content)
    with pytest.raises(JunitFileError, match=reason) as info:
        attach_to_junit(path, [JunitAttachment("t.py::t", "r", "m")])
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_bare_testsuite_root_is_accepted_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<testsuite name="s"><testcase classname="t" name="t"><failure message="a&#10;b">tb'
        "</failure></testcase></testsuite>",
        encoding="utf-8",
    )
    assert attach_to_junit(path, [JunitAttachment("t.py::t", "r", "m")]) == 1
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    assert root.find("testcase/failure").get("message") == "m"  # type: ignore[union-attr]
    assert root.findtext("testcase/failure") == "tb\n\nr\n"
    assert root.findtext("testcase/system-out") == "r\n"


# ---------------------------------------------------------------- xml_safe


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "tab\tnewline\ncr\r",
        "<&>\"']]>",
        "ünï €",
        "🧠 𠀀 \U0010fffd",
        "\x7f\x85\ue000\ufffd",
    ],
)
def test_xml_safe_keeps_valid_text(text: str) -> None:
    assert xml_safe(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x00", "\\x00"),
        ("a\x1bb", "a\\x1bb"),
        ("\x07\x08\x0b\x0c\x1f", "\\x07\\x08\\x0b\\x0c\\x1f"),
        ("\ud800", "\\ud800"),
        ("x\udfffy", "x\\udfffy"),
        ("\udc00\ud800", "\\udc00\\ud800"),  # wrong order: two lone surrogates
        ("\ud83e\udde0", "🧠"),  # a pair held as two code points is joined
        ("\ufffe\uffff", "\\ufffe\\uffff"),
        ("🧠\x00🧠", "🧠\\x00🧠"),
    ],
)
def test_xml_safe_escapes_invalid_characters(text: str, expected: str) -> None:
    assert xml_safe(text) == expected
    elem = ET.Element("e", attr=xml_safe(text))
    elem.text = xml_safe(text)
    parsed = ET.fromstring(ET.tostring(elem, encoding="unicode"))
    assert parsed.text == parsed.get("attr") == expected


def test_xml_safe_output_round_trips_through_a_parser() -> None:
    text = "".join(chr(code) for code in range(0x30)) + "\ud800\udfff\ufffe\uffff🧠"
    elem = ET.Element("e", attr=xml_safe(text))
    elem.text = xml_safe(text)
    parsed = ET.fromstring(ET.tostring(elem, encoding="unicode"))
    assert parsed.text is not None
    assert "\\x00" in parsed.text
    assert "🧠" in parsed.text
