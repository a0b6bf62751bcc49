"""Student data is data: every student-controlled string escaped for where it lands, and output
file names derived safely from student ids (``grader.escape``, ``grader.filenames``).

No sandbox: results are built directly, written pages from answers given as data.
"""
from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader import intake
from grader.atomic import write_atomic
from grader.escape import clean_text, html_text, md_code_block, md_inline, visible_controls
from grader.exports import md_code
from grader.exports.class_report import build_report
from grader.filenames import LONGEST_SUFFIX, MAX_NAME_BYTES, file_stem, is_plain
from grader.reports import (class_summary, feedback_markdown, result_path, safe_cell, scores_csv,
                            summary_markdown)
from grader.results import StudentResult
from grader.scoring import CheckResult
from grader.written import load_questions, write_written_pages
from grader.written.extract import Answer
from grader.written.manual import read_and_validate
from grader.written.pages import StudentAnswers, manual_template, question_html, question_markdown

IMG = "<img src=x onerror=alert(1)>"
FENCE_ATTACK = "value differs\n```\n<script>alert(2)</script>\n# Full marks!\n````"
LONG_ID = "a" * 252
NEWLINE_ID = "eve\nmallory"
NFC_E = unicodedata.normalize("NFC", "\u00e9mile")
NFD_E = unicodedata.normalize("NFD", "\u00e9mile")
SUFFIXES = (".json", ".md", ".txt", LONGEST_SUFFIX)
QUESTIONS = load_questions()


def result(student: str, message: str = "", check_message: str = "Likely mistake ...\nvalue: differ",
           notes: tuple[str, ...] = (), status: str = "ok") -> StudentResult:
    checks = [
        CheckResult("gaussian_kl", "value", Decimal(0), Decimal(4), False, "1.0", "2.0", "missing_half",
                    check_message, "the KL's value"),
        CheckResult("elbo", "value", Decimal("0.5"), Decimal("0.5"), True, "", "", None, ""),
    ]
    return StudentResult(student=student, status=status, message=message, checks=checks,
                         submission={"source": f"{student}.py", "kind": "py", "sha256": "0" * 64,
                                     "entry": "solution.py", "mode": "full", "notes": list(notes)},
                         rubric={"version": "r1", "sha256": "1" * 64, "seed": 1}, versions={"grader": "0.1.0"},
                         durations={"total_s": 0.1})


def fenced_blocks(md: str) -> list[list[str]]:
    """The content lines of each fenced code block, as CommonMark closes them: the first later
    line that is only a backtick run at least as long as the opening fence."""
    blocks, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        opening = re.fullmatch(r" {0,5}(`{3,})[^`]*", lines[i])
        if not opening:
            i += 1
            continue
        length, body, i = len(opening.group(1)), [], i + 1
        while i < len(lines) and not re.fullmatch(rf" {{0,5}}`{{{length},}}\s*", lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append(body)
        i += 1
    return blocks


def outside_code(md: str) -> str:
    """The Markdown with every fenced block removed (what renders as Markdown/HTML)."""
    lines, keep, i = md.split("\n"), [], 0
    while i < len(lines):
        opening = re.fullmatch(r" {0,5}(`{3,})[^`]*", lines[i])
        if not opening:
            keep.append(lines[i])
            i += 1
            continue
        length, i = len(opening.group(1)), i + 1
        while i < len(lines) and not re.fullmatch(rf" {{0,5}}`{{{length},}}\s*", lines[i]):
            i += 1
        i += 1
    return "\n".join(keep)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


# --------------------------------------------------------------------------------------------
# grader.escape
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, cap, expected", [
    ("plain", None, "plain"),
    ("bad \udcff surrogate \ud800", None, "bad \ufffd surrogate \ufffd"),
    (b"\xff\xfe bytes", None, "\ufffd\ufffd bytes"),
    (42, None, "42"),
    ("x" * 100, 40, "x" * 15 + " [... 85 more characters]"),
    ("x" * 100, 5, "xxxxx"),
    ("short", 40, "short"),
])
def test_clean_text_makes_valid_capped_text(value, cap, expected):
    text = clean_text(value, cap)
    assert text == expected
    text.encode("utf-8")                           # always encodable
    assert cap is None or len(text) <= cap
    assert clean_text(text, cap) == text           # idempotent


def test_clean_text_survives_a_broken_str():
    class Broken:
        def __str__(self):
            raise RuntimeError("no")
    assert clean_text(Broken()) == "<unprintable Broken>"


@pytest.mark.parametrize("value, expected", [
    (IMG, "&lt;img src=x onerror=alert(1)&gt;"),
    ("*bold* _it_ `code` [link](http://x) | cell", r"\*bold\* \_it\_ \`code\` \[link\](http://x) \| cell"),
    ("# heading", r"\# heading"),
    ("- item", r"\- item"),
    ("1. item", r"1\. item"),
    ("a & b", "a &amp; b"),
    ("line\nbreak\x1b[31m", r"line\\x0abreak\\x1b\[31m"),
    ("alice_logsigmoid 1.5 -2", r"alice\_logsigmoid 1.5 -2"),
])
def test_md_inline_table(value, expected):
    assert md_inline(value) == expected


def test_md_code_block_fence_is_longer_than_any_backtick_run():
    block = md_code_block(FENCE_ATTACK, indent="  ")
    assert block[0] == "  `````text" and block[-1] == "  `````"
    assert fenced_blocks("\n".join(block)) == [["  " + line for line in FENCE_ATTACK.split("\n")]]
    assert md_code_block("no ticks") == ["```text", "no ticks", "```"]
    assert md_code_block("a\rb\x00") == ["```text", "a\\x0db\\x00", "```"]


def test_html_text_escapes_and_shows_controls():
    assert html_text('<b a="1">\'&\x1b\udcff') == "&lt;b a=&quot;1&quot;&gt;&#x27;&amp;\\x1b\ufffd"
    assert visible_controls("a\tb\nc", keep="\t") == "a\tb\\x0ac"


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------

def test_plain_ids_keep_their_name():
    names = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "submissions").iterdir()
                   if p.name != "README.md")
    ids = [n.rsplit(".", 1)[0] if n.endswith((".py", ".ipynb", ".zip")) else n for n in names]
    assert ids and all(is_plain(i) and file_stem(i) == i for i in ids)
    assert file_stem("alice_logsigmoid") == "alice_logsigmoid"
    assert file_stem("a" * (MAX_NAME_BYTES - len(LONGEST_SUFFIX))) == "a" * (MAX_NAME_BYTES - len(LONGEST_SUFFIX))


@pytest.mark.parametrize("student", [
    LONG_ID, NEWLINE_ID, IMG, "Alice", NFC_E, NFD_E, ".hidden", "..", "../../etc/passwd", "a/b", "a\\b",
    "con", "nul.txt", "trailing.", "--out", "", " ", "\udcff", "\x00", "tab\there", "A" * 300, "é" * 150,
])
def test_odd_ids_get_bounded_safe_names(student, tmp_path):
    stem = file_stem(student)
    assert stem != student
    assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*\+[0-9a-f]{16}", stem), stem
    assert len((stem + LONGEST_SUFFIX).encode()) <= MAX_NAME_BYTES
    for suffix in SUFFIXES:
        path = result_path(tmp_path, student, "results", suffix)
        assert path.parent == tmp_path / "results"
        write_atomic(path, "x")                     # a real file system accepts it
        assert path.read_text() == "x"


def test_clashing_ids_never_share_a_file():
    ids = ["alice", "Alice", "ALICE", NFC_E, NFD_E, "emile", "a\nb", "a b", "a_b", "a\x00b", LONG_ID, LONG_ID + "b"]
    stems = [file_stem(i) for i in ids]
    assert len({s.casefold() for s in stems}) == len(ids)           # case-insensitive file systems too
    assert len({unicodedata.normalize("NFD", s) for s in stems}) == len(ids)
    # a plain id that looks like a hashed stem is still another file ("+" is never plain)
    assert file_stem(file_stem("Alice")) != file_stem("Alice")


def test_file_names_are_stable():
    """Fixed values: resume and regrade on another machine must find the same files."""
    assert file_stem("Alice") == "alice+3bc51062973c458d"
    assert file_stem(NEWLINE_ID) == "eve_mallory+" + __import__("hashlib").sha256(
        NEWLINE_ID.encode()).hexdigest()[:16]
    assert file_stem(IMG) == "img_src_x_onerror_alert_1_+63b586b4a93f2048"
    assert result_path(Path("out"), LONG_ID, "results", ".json") == Path("out/results") / (
        "a" * 48 + "+03aaf5773717feae.json")


def test_records_keep_the_whole_id(tmp_path):
    r = result(LONG_ID)
    path = result_path(tmp_path, r.student, "results", ".json")
    write_atomic(path, r.to_json())
    assert json.loads(path.read_text("utf-8"))["student"] == LONG_ID
    rows = list(csv.reader(io.StringIO(scores_csv([result(NEWLINE_ID), r], ["gaussian_kl", "elbo"]))))
    assert [row[0] for row in rows[1:]] == [LONG_ID, NEWLINE_ID] and len(rows) == 3


# --------------------------------------------------------------------------------------------
# Feedback and summary Markdown
# --------------------------------------------------------------------------------------------

def test_backtick_fence_attack_stays_inside_its_block():
    md = feedback_markdown(result("bob", check_message=FENCE_ATTACK))
    blocks = fenced_blocks(md)
    assert blocks == [["  " + line for line in FENCE_ATTACK.split("\n")]]
    rest = outside_code(md)
    assert "<script>" not in rest and "# Full marks!" not in rest


def test_the_fence_check_fails_on_a_fence_the_message_closes(monkeypatch):
    """The fence check of test_integrity.test_lone_surrogates_and_markup_stay_text (``outside_code``
    of the feedback holds neither the message's heading nor its markup) fails on a broken escaping:
    a code block fenced with three backticks whatever it holds. The check it replaced (no line
    equal to the literal heading) passed on that too: cleaned, the line ends in U+FFFD."""
    from grader import reports

    message = ("`discriminator_loss` raised ValueError: ```\n<img src=x onerror=alert(1)>\n```\n"
               "# Feedback for someone else \udcff")

    def three_backticks(value, info="text", indent="", cap=None):
        return [indent + "```" + info, *(indent + line for line in clean_text(value, cap).split("\n")), indent + "```"]

    good = outside_code(feedback_markdown(result("bob", check_message=message)))
    assert "someone else" not in good and "<img" not in good
    monkeypatch.setattr(reports, "md_code_block", three_backticks)
    broken = feedback_markdown(result("bob", check_message=message))
    assert "# Feedback for someone else \ufffd" in outside_code(broken)           # the new check fails
    assert all(line.strip() != "# Feedback for someone else" for line in broken.splitlines())  # the old passed


def test_html_student_id_in_feedback_is_text():
    md = feedback_markdown(result(IMG, message=f"{IMG} could not be loaded", notes=(f"ignored {IMG}/x",)))
    assert md.startswith("# Feedback for &lt;img src=x onerror=alert(1)&gt;\n")
    rest = outside_code(md)
    assert "<" not in rest and ">" not in rest
    assert "- ignored &lt;img src=x onerror=alert(1)&gt;/x" in md


def test_multi_line_message_and_newline_id_in_feedback():
    md = feedback_markdown(result(NEWLINE_ID, message="SyntaxError\n```\n# pwned", status="load_error"))
    assert md.startswith("# Feedback for eve\\\\x0amallory\n")
    assert "# pwned" not in outside_code(md)
    assert ["SyntaxError", "```", "# pwned"] in fenced_blocks(md)


def test_lone_surrogates_are_replaced_before_rendering(tmp_path):
    r = result("s\udcffid", message="bad \udcff", check_message="got \ud800 here", notes=("n \udfff",))
    md = feedback_markdown(r)
    md.encode("utf-8")
    assert "bad \ufffd" in md and "got \ufffd here" in md and "n \ufffd" in md
    summary = summary_markdown(class_summary([result("x\udcff", status="crashed")], {"rubric": {}}))
    summary.encode("utf-8")
    assert safe_cell("=\udcff") == "'=\ufffd"
    write_atomic(result_path(tmp_path, r.student, "feedback", ".md"), md)
    assert md_code("a\udcff\x1b") == "`a\ufffd\\x1b`"


def test_summary_lists_odd_students_as_text():
    s = class_summary([result(IMG, status="crashed"), result(NEWLINE_ID, status="timeout")], {"rubric": {}})
    md = summary_markdown(s)
    assert "- &lt;img src=x onerror=alert(1)&gt;" in md and "- eve\\\\x0amallory" in md
    assert "<img" not in md and "\nmallory" not in md


# --------------------------------------------------------------------------------------------
# Written pages and the template
# --------------------------------------------------------------------------------------------

def pages(name: str) -> tuple[str, str]:
    answer = Answer("Q1", "An answer with ``` and <b>", "ANSWERS.md line 1", "## Q1", True)
    students = [StudentAnswers(name, {"Q1": answer}, []), StudentAnswers("bob", {}, [])]
    q1 = QUESTIONS.get("Q1")
    return (question_html(q1, QUESTIONS, students, [], False),
            question_markdown(q1, QUESTIONS, students, [], False))


@pytest.mark.parametrize("name", [IMG, NEWLINE_ID, "s\udcffid", "x\x1by"])
def test_written_pages_show_odd_names_as_text(name):
    html_page, md_page = pages(name)
    html_page.encode("utf-8")
    md_page.encode("utf-8")
    parser = Tags()
    parser.feed(html_page)
    assert "img" not in parser.tags and "\x1b" not in html_page
    rest = outside_code(md_page)
    assert "<" not in rest and "\x1b" not in rest
    heading = [line for line in md_page.split("\n") if line.startswith("### ")][0]
    assert "\n" not in heading and heading != "### bob"
    assert ["An answer with ``` and <b>"] in fenced_blocks(md_page)


def test_written_img_id_in_written_pages_escaped():
    html_page, md_page = pages(IMG)
    assert "<h3>&lt;img src=x onerror=alert(1)&gt;</h3>" in html_page
    assert "### &lt;img src=x onerror=alert(1)&gt;" in md_page


def test_manual_template_round_trips_odd_ids(tmp_path):
    names = sorted([NEWLINE_ID, "=cmd|' /C calc'!A0", " padded ", IMG, "bob"])
    template = manual_template(names, QUESTIONS)
    rows = list(csv.reader(io.StringIO(template)))
    assert len(rows) == 1 + len(names) * len(QUESTIONS.ids())
    assert {r[0] for r in rows[1:]} == {safe_cell(n) for n in names}
    filled = "".join(template.splitlines(keepends=True)[:1]) + "".join(
        line for line in io.StringIO(template.replace(",,\n", ",1,ok\n")).readlines()[1:])
    (tmp_path / "manual.csv").write_text(filled, "utf-8")
    marks, problems = read_and_validate(tmp_path / "manual.csv", [result(n) for n in names], QUESTIONS)
    assert not [p for p in problems if p.kind == "unknown_student"], problems
    assert {m.student for m in marks} == set(names)


def test_written_pages_for_a_newline_and_html_class(tmp_path):
    class Sub:
        def __init__(self, student, workdir):
            self.student, self.workdir, self.kind, self.entry, self.error = student, workdir, "folder", "solution.py", None

    subs = []
    for i, name in enumerate((NEWLINE_ID, IMG, LONG_ID)):
        work = tmp_path / f"w{i}"
        work.mkdir()
        (work / "solution.py").write_text("x = 1\n", "utf-8")
        (work / "ANSWERS.md").write_text(f"## Q1\n\nMy <i>answer</i> number {i}.\n", "utf-8")
        subs.append(Sub(name, work))
    report = write_written_pages(subs, tmp_path / "out", QUESTIONS)
    for path in report.pages:
        text = path.read_text("utf-8")
        if path.suffix == ".md":
            assert "<img" not in outside_code(text) and "eve\nmallory" not in text
        if path.suffix == ".html":
            parser = Tags()
            parser.feed(text)
            assert "img" not in parser.tags and "i" not in parser.tags


# --------------------------------------------------------------------------------------------
# The class report (HTML)
# --------------------------------------------------------------------------------------------

def test_class_report_escapes_student_strings(tmp_path):
    out = tmp_path / "out"
    for r in (result(IMG, message=f"{IMG} crashed \udcff", status="crashed"), result(NEWLINE_ID), result(LONG_ID)):
        write_atomic(result_path(out, r.student, "results", ".json"), r.to_json())
    page = build_report(out, plots={})
    page.encode("utf-8")
    parser = Tags()
    parser.feed(page)
    assert "img" not in parser.tags
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


# --------------------------------------------------------------------------------------------
# Intake: a control character in an entry's name still names a student
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["eve\nmallory.py", "tab\there.py", "bell\x07/", "esc\x1b[31m.py"])
def test_intake_keeps_entries_with_control_characters(name, tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "bob.py").write_text("def elbo(x):\n    raise NotImplementedError\n", "utf-8")
    if name.endswith("/"):
        (klass / name[:-1]).mkdir()
        (klass / name[:-1] / "solution.py").write_text("x = 1\n", "utf-8")
        student = name[:-1]
    else:
        (klass / name).write_text("x = 1\n", "utf-8")
        student = name[: -len(".py")]
    groups, notes = intake.discover(klass)
    assert sorted(groups) == sorted(["bob", student]) and not notes
    subs, _ = intake.prepare(klass, tmp_path / "work")
    sub = next(s for s in subs if s.student == student)
    assert sub.error is None and sub.workdir is not None and (sub.workdir / sub.entry).is_file()
    assert file_stem(student) != student and "\n" not in file_stem(student)
