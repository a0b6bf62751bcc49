"""Written questions: extraction from every answer style, flags, near-duplicates, safe pages,
anonymous codes, manual.csv validation (every message) and the pure, reproducible merge.

Student files are only ever read as text here, as in the grader."""
from __future__ import annotations

import dataclasses

import json
import re
import shutil
import subprocess
import tempfile
import time
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader import intake
from grader.results import StudentResult
from grader.scoring import CheckResult
from grader.written import (WrittenReport, anonymity_secret, anonymous_code, apply_manual_marks, automatic_only,
                            collect_answers, extract_answers, is_manual, load_questions, merge, write_written_pages)
from grader.written.anonymity import ENV_SECRET, code_table
from grader.written.manual import Mark, read_and_validate, read_manual, validate
from grader.written.pages import CSP, STYLE, StudentAnswers, md, question_html, question_markdown
from grader.written.questions import QuestionsError
from grader.written.similarity import near_duplicates

ROOT = Path(__file__).resolve().parents[1]
CLASS = ROOT / "submissions"
QUESTIONS = load_questions()
SECRET = b"test-course-secret"

ANSWER_1 = ("A generative model learns a distribution from data samples so that it can draw new samples "
            "and evaluate densities; explicit models write the density, implicit ones only sample.")
ANSWER_2 = ("GANs play a minimax game and give no likelihood, VAEs maximise the ELBO which bounds the log "
            "likelihood, and FVBNs compute the exact likelihood but sample one variable at a time.")
ANSWER_3 = ("The minimax loss saturates when the discriminator rejects the fakes, because its gradient "
            "with respect to the logit is minus half the sigmoid, which vanishes; the other does not.")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def workdir_with(tmp_path: Path, files: dict[str, str]) -> Path:
    work = tmp_path / "work"
    work.mkdir(parents=True)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text, "utf-8")
    return work


def notebook_workdir(tmp_path: Path, cells: list[tuple[str, str]]) -> Path:
    """A workdir as the intake prepares it from a notebook with ``cells`` ((type, source), ...)."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": t, "source": s, "metadata": {}, **({"outputs": [], "execution_count": None}
                                                                     if t == "code" else {})} for t, s in cells]}
    python, markdown, _ = intake.convert_notebook(json.dumps(nb).encode())
    return workdir_with(tmp_path, {intake.NOTEBOOK_ENTRY: python, intake.NOTEBOOK_MARKDOWN: markdown})


def kinds(flags) -> list[tuple[str, str | None]]:
    return sorted(((f.kind, f.question) for f in flags), key=lambda k: (k[0], k[1] or ""))


def result(student: str, status: str = "ok") -> StudentResult:
    checks = [CheckResult("gaussian_kl", "value", Decimal(0), Decimal(4), False, "1.0", "2.0", "missing_half",
                          "Likely mistake (missing_half): ...", "the KL's value",
                          hidden={"case": "c1", "args": [], "kwargs": {}}),
              CheckResult("gaussian_kl", "gradient", Decimal(1), Decimal(1), True, "", "", None, "", "gradients")]
    return StudentResult(student=student, status=status, message="", checks=checks,
                         submission={"source": f"{student}.py", "kind": "py", "sha256": "0" * 64,
                                     "entry": "solution.py", "mode": "full", "notes": []},
                         rubric={"version": "r1", "sha256": "1" * 64, "seed": 1}, versions={"grader": "0.1.0"},
                         durations={"total_s": 0.1})


# --------------------------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------------------------

def test_questions_file_matches_the_handout():
    assert QUESTIONS.ids() == ["Q1", "Q2", "Q3"]
    assert QUESTIONS.max_score() == Decimal(20)
    handout = " ".join((ROOT / "ASSIGNMENT.md").read_text("utf-8").split())
    assert "## 9. Written questions (20 points, marked by hand)" in handout
    for q in QUESTIONS.questions:
        assert f"**{q.id} ({q.points} points).** {' '.join(q.prompt.split())}" in handout, q.id
        assert sum(item.points for item in q.rubric) == q.points


@pytest.mark.parametrize("text, message", [
    ('questions_version = "1"\n', "questions.toml: no [[question]] tables"),
    ('questions_version = "1"\n[[question]]\nid = "1"\n', "questions.toml: [[question]] number 1 has id '1'; "
                                                          "expected Q1, Q2, ..."),
    ('questions_version = "1"\n[[question]]\nid = "Q1"\npoints = "5"\ntitle = "t"\nprompt = "p"\n'
     'rubric = [{ points = "4", text = "x" }]\n', "questions.toml: Q1's rubric items add up to 4, but the "
                                                   "question is worth 5"),
    ('questions_version = "1"\n[[question]]\nid = "Q1"\npoints = "many"\n', "questions.toml: Q1.points is 'many', "
                                                                            "not a number"),
])
def test_malformed_questions_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "questions.toml"
    path.write_text(text)
    with pytest.raises(QuestionsError) as err:
        load_questions(path)
    assert str(err.value) == message


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

def test_notebook_markdown_cells_with_continuations_and_a_code_cell_heading(tmp_path):
    work = notebook_workdir(tmp_path, [
        ("markdown", "# Homework\n\nMy name"),
        ("code", "import torch"),
        ("markdown", "## Q1\n\n" + ANSWER_1),
        ("markdown", "More on Q1: $p(x) = \\prod_i p(x_i \\mid x_{<i})$."),
        ("code", "x = 1"),
        ("markdown", "## Q2 (the comparison)\n\n" + ANSWER_2 + "\n\n### Part b\n\nstill Q2\n\n## Training\n\nnot Q2"),
        ("code", "# ## Q3\n# " + ANSWER_3 + "\ny = 2\n# not part of it"),
    ])
    answers, flags = extract_answers(work, "ipynb", intake.NOTEBOOK_ENTRY, QUESTIONS)
    assert answers["Q1"].text == ANSWER_1 + "\n\n\nMore on Q1: $p(x) = \\prod_i p(x_i \\mid x_{<i})$."
    assert (answers["Q1"].location, answers["Q1"].heading, answers["Q1"].well_formed) == (
        "notebook markdown cell 3", "## Q1", True)
    assert answers["Q2"].text == ANSWER_2 + "\n\n### Part b\n\nstill Q2"
    assert answers["Q3"].text == ANSWER_3
    assert (answers["Q3"].location, answers["Q3"].heading, answers["Q3"].well_formed) == (
        "a comment in notebook code cell 7, line 1", "# ## Q3", False)
    assert [(f.kind, f.question, f.message) for f in flags] == [
        ("code_heading", "Q3", "`# ## Q3` is a comment in notebook code cell 7, line 1, not a markdown answer: "
                               "it is shown as Q3's answer")]


def test_answers_md_beside_the_code_and_lowercase_name(tmp_path):
    body = f"# My answers\n\n## Q1\n{ANSWER_1}\n\n## Q2\n{ANSWER_2}\n\n## Q3: why\n{ANSWER_3}\n"
    for name in ("ANSWERS.md", "answers.md"):
        work = workdir_with(tmp_path / name, {"solution.py": "x = 1\n", name: body})
        answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
        assert {q: a.text for q, a in answers.items()} == {"Q1": ANSWER_1, "Q2": ANSWER_2, "Q3": ANSWER_3}
        assert answers["Q3"].location == f"{name} line 9" and answers["Q3"].heading == "## Q3: why"
        assert flags == []


def test_module_docstring_read_with_tokenize_raw_and_plain(tmp_path):
    raw = 'r"""Answers.\n\n## Q1\nThe $\\frac{a}{b}$ part.\n"""\nimport torch\n'
    plain = '# coding: utf-8\n"""## Q1\nThe $\\\\frac{a}{b}$ and \\n kept, \\"quoted\\".\n"""\n'
    for source, text in ((raw, "The $\\frac{a}{b}$ part."), (plain, 'The $\\frac{a}{b}$ and \\n kept, "quoted".')):
        work = workdir_with(tmp_path / str(len(source)), {"solution.py": source})
        answers, flags = extract_answers(work, "py", "solution.py", QUESTIONS)
        assert answers["Q1"].text == text
        assert answers["Q1"].well_formed and answers["Q1"].location.startswith("module docstring of solution.py line ")
        assert kinds(flags) == [("missing", "Q2"), ("missing", "Q3")]
    # not a docstring: an expression statement, a bytes literal
    for source in ('"""## Q1\nx""".join([])\n', 'b"""## Q1\nx"""\n'):
        work = workdir_with(tmp_path / f"no{len(source)}", {"solution.py": source})
        assert "Q1" not in extract_answers(work, "py", "solution.py", QUESTIONS)[0]


@pytest.mark.parametrize("heading, shown_text", [
    ("Q 1", ANSWER_1),
    ("Question 1", ANSWER_1),
    ("**Q1**", ANSWER_1),
    ("**Question 1:**", ANSWER_1),
    ("# q1", ANSWER_1),
    ("### Q1", ANSWER_1),
    ("##Q1", ANSWER_1),
    ("Q1.", ANSWER_1),
    ("_Q1_", ANSWER_1),
])
def test_misheaded_answers_are_shown_and_flagged(tmp_path, heading, shown_text):
    work = workdir_with(tmp_path, {"solution.py": "x = 1\n", "ANSWERS.md": f"{heading}\n\n{ANSWER_1}\n"})
    answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
    assert answers["Q1"].text == shown_text and not answers["Q1"].well_formed
    assert [f.message for f in flags if f.kind == "misheaded"] == [
        f"`{heading}` (ANSWERS.md line 1) is not the heading `## Q1`: it is shown as Q1's answer"]


def test_answer_on_the_heading_line_and_lines_that_are_not_headings(tmp_path):
    work = workdir_with(tmp_path, {"solution.py": "x = 1\n", "ANSWERS.md": (
        f"**Q1.** {ANSWER_1}\n\nQ2 is the hard one, I think.\nQuestion 2 asks for a comparison.\n")})
    answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
    assert answers["Q1"].text == ANSWER_1 + "\n\nQ2 is the hard one, I think.\nQuestion 2 asks for a comparison."
    assert kinds(flags) == [("misheaded", "Q1"), ("missing", "Q2"), ("missing", "Q3")]


def test_missing_empty_unknown_and_extra_answers(tmp_path):
    work = workdir_with(tmp_path, {"solution.py": "x = 1\n", "ANSWERS.md": (
        "## Q1\n\nTODO\n\n## Q2\n\n" + ANSWER_2 + "\n\n## Q7\n\nbonus\n\n## Q2\n\nsecond try at Q2\n")})
    answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
    assert answers["Q1"].text == "TODO"
    assert answers["Q2"].text == ANSWER_2 and answers["Q2"].others == (("ANSWERS.md line 13", "## Q2", "second try at Q2"),)
    assert [(f.kind, f.question, f.message) for f in flags] == [
        ("unknown_question", None, "`## Q7` (ANSWERS.md line 9) names no question of this assignment (Q1, Q2, Q3): "
                                   "not graded"),
        ("empty", "Q1", "the answer under `## Q1` (ANSWERS.md line 1) is empty"),
        ("extra_answer", "Q2", "another answer to Q2 under `## Q2` (ANSWERS.md line 13) is shown below the first"),
        ("missing", "Q3", "no answer headed `## Q3` was found (looked in: ANSWERS.md; the module docstring of "
                          "solution.py (there is none), then code comments and other files)"),
    ]


def test_comment_answers_in_a_py_file_even_after_a_syntax_error(tmp_path):
    source = f"def f(:\n    pass\n\n# ## Q2\n# {ANSWER_2}\nx = '''\n# ## Q3 inside a string\n'''\n"
    work = workdir_with(tmp_path, {"solution.py": source})
    answers, flags = extract_answers(work, "py", "solution.py", QUESTIONS)
    assert answers["Q2"].text == ANSWER_2 and answers["Q2"].location == "a comment in solution.py line 4"
    assert kinds(flags) == [("code_heading", "Q2"), ("missing", "Q1"), ("missing", "Q3")]
    ok = workdir_with(tmp_path / "ok", {"solution.py": source.replace("def f(:", "def f():")})
    answers, _ = extract_answers(ok, "py", "solution.py", QUESTIONS)
    assert sorted(answers) == ["Q2"]       # the "# ## Q3" inside a string is not a comment


def test_misplaced_and_unreadable_files_and_links_are_not_followed(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("## Q3\n\nsecret\n")
    work = workdir_with(tmp_path, {"solution.py": "x = 1\n", "notes/README.md": f"## Q1\n\n{ANSWER_1}\n",
                                   "answers.pdf": "%PDF-1.4", "Q1.docx": "PK"})
    (work / "answers.md").symlink_to(outside)
    answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
    assert answers["Q1"].location == "notes/README.md line 1" and not answers["Q1"].well_formed
    assert "Q3" not in answers
    messages = {(f.kind, f.message) for f in flags}
    assert ("misplaced", "Q1's answer is in notes/README.md, not where answers belong: it is shown as Q1's "
                         "answer") in messages
    assert any(kind == "unreadable" and m.startswith("answers.pdf could not be read: it could not be read as a PDF: ")
               and m.endswith(": mark from the PDF") for kind, m in messages)
    assert ("no_text_layer", "Q2") in kinds(flags) and ("missing", "Q2") not in kinds(flags)   # never read as empty
    assert ("unreadable", "Q1.docx may hold written answers but is not read: answers must be Markdown "
                          "(see the handout, section 9)") in messages
    assert any(kind == "unreadable" and "answers.md could not be opened" in m for kind, m in messages)


def test_pathological_files_are_read_in_bounded_time(tmp_path):
    answers_md = (" " * 600_000 + "x\n## Q1\n" + "\\[ " * 5000 + "$$ " + "<!-- " * 5000 + "\n"
                  + "## Q1\nmore\n" * 20_000 + "**" + " " * 300_000 + "Q1\n")
    work = workdir_with(tmp_path, {"solution.py": "x = 1\n" + "# ## Q7\n" * 1000, "ANSWERS.md": answers_md})
    started = time.perf_counter()
    answers, flags = extract_answers(work, "folder", "solution.py", QUESTIONS)
    page_text = question_html(QUESTIONS.get("Q1"), QUESTIONS, [StudentAnswers("s", answers, flags)], [], False)
    assert time.perf_counter() - started < 10      # quadratic matching would take minutes
    assert answers["Q1"].text == "more" and len(answers["Q1"].others) == 5    # the first Q1 has no words
    assert kinds(flags).count(("unknown_question", None)) == 6 and kinds(flags).count(("extra_answer", "Q1")) == 6
    assert "19994 more answers to Q1 are not shown: see the submission" in page_text
    assert len(page_text) < 20_000


def test_the_example_class_entries(tmp_path):
    names = ["frank_notebook.ipynb", "nina_docstring.py", "yara_answers", "yves_html_injection", "zack_copied",
             "zoe_misheaded", "alice_logsigmoid.py", "amara_numbered_report", "bruno_pdf_report.py",
             "bruno_pdf_report.pdf", "chloe_latex", "dmitri_scanned"]
    small = tmp_path / "class"
    small.mkdir()
    for name in names:
        (shutil.copytree if (CLASS / name).is_dir() else shutil.copy)(CLASS / name, small / name)
    subs, _ = intake.prepare(small, tmp_path / "work")
    found, pairs = collect_answers(subs, QUESTIONS)
    flags = {s: kinds(f) for s, (_, f) in found.items()}
    assert flags == {
        "alice_logsigmoid": [("missing", "Q1"), ("missing", "Q2"), ("missing", "Q3")],
        "amara_numbered_report": [("empty", "Q3")],
        "bruno_pdf_report": [],
        "chloe_latex": [],
        "dmitri_scanned": [("no_text_layer", None), ("no_text_layer", "Q1"), ("no_text_layer", "Q2"),
                           ("no_text_layer", "Q3")],
        "frank_notebook": [],
        "nina_docstring": [("missing", "Q2")],
        "yara_answers": [],
        "yves_html_injection": [],
        "zack_copied": [],
        "zoe_misheaded": [("code_heading", "Q3"), ("misheaded", "Q1"), ("misheaded", "Q2")],
    }
    assert {q: [(p.a, p.b) for p in ps] for q, ps in pairs.items()} == {
        q: [("yara_answers", "zack_copied")] for q in ("Q1", "Q2", "Q3")}
    assert found["frank_notebook"][0]["Q1"].location == "notebook markdown cell 17"
    assert "<script>alert(1)</script>" in found["yves_html_injection"][0]["Q1"].text
    assert "\\frac{d}{d\\ell}" in found["nina_docstring"][0]["Q3"].text
    amara, bruno, chloe = (found[s][0] for s in ("amara_numbered_report", "bruno_pdf_report", "chloe_latex"))
    assert "2. implicit models, which only define" in amara["Q1"].text           # a list item, not Q2
    assert r"$$\mathcal{L}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)]" in amara["Q2"].text and amara["Q3"].text == ""
    assert (bruno["Q2"].file, bruno["Q2"].page, bruno["Q2"].line) == ("bruno_pdf_report.pdf", 2, 1)
    assert bruno["Q3"].text.endswith("2 consequences: G keeps learning early on, and the game is no longer zero-sum.")
    assert r"\frac{\partial}{\partial l}" in chloe["Q3"].text and "TODO" not in chloe["Q3"].text


# --------------------------------------------------------------------------------------------
# Near-duplicates
# --------------------------------------------------------------------------------------------

def test_near_duplicates_exact_near_and_not():
    original = ANSWER_2 + " " + ANSWER_3
    answers = {
        "ann": original,
        "ben": "**" + original.upper().replace(",", " ;") + "**",          # identical after normalisation
        "cat": original.replace("minimax game", "adversarial game").replace("exact", "true"),   # near
        "dan": ("Adversarial networks are trained as a game between two networks and have no density, while "
                "variational autoencoders optimise a bound and autoregressive models are exact but slow."),
        "eve": "Yes, it saturates.",                                          # too short to compare
        "fay": "Yes, it saturates.",
    }
    pairs = near_duplicates("Q2", answers, QUESTIONS.similarity)
    assert [(p.a, p.b, p.identical) for p in pairs] == [("ann", "ben", True), ("ann", "cat", False),
                                                          ("ben", "cat", False)]
    near = pairs[1]
    assert near.ratio >= QUESTIONS.similarity.ratio_flag and near.describe().startswith("difflib ratio 0.9")
    assert near_duplicates("Q2", answers, QUESTIONS.similarity) == pairs       # deterministic


def test_sentences_copied_from_the_question_do_not_make_a_pair():
    q2 = QUESTIONS.get("Q2")
    restated = "Compare GANs with (plain) autoencoders, with VAEs and with FVBNs such as NADE, MADE and WaveNet."
    a = restated + " GANs are sharp."
    b = restated + " VAEs are blurry."
    assert near_duplicates("Q2", {"a": a, "b": b}, QUESTIONS.similarity, prompt="") != []
    assert near_duplicates("Q2", {"a": a, "b": b}, QUESTIONS.similarity, prompt=q2.prompt) == []


# --------------------------------------------------------------------------------------------
# Pages: escaping, anonymity
# --------------------------------------------------------------------------------------------

HOSTILE = ('Intro <script>alert(1)</script> and <img src=x onerror="alert(2)"> and '
           '<a href="javascript:alert(3)" onclick="alert(4)">x</a> </div><style>body{display:none}</style> '
           '$a<b$ \u202eevil\u202c \x1b[31m')


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


def page(anonymous: bool = False, name: str = "<img src=x onerror=alert(5)>") -> tuple[str, str]:
    from grader.written.extract import Answer, Flag
    answer = Answer("Q1", HOSTILE, "ANSWERS.md line 1", "## Q1 <b onmouseover=alert(6)>", True)
    students = [StudentAnswers(name, {"Q1": answer}, [Flag("misheaded", "Q1", "`<script>x</script>` heading")]),
                StudentAnswers("bob", {}, [Flag("missing", "Q1", "no answer")])]
    q1 = QUESTIONS.get("Q1")
    return (question_html(q1, QUESTIONS, students, [], anonymous),
            question_markdown(q1, QUESTIONS, students, [], anonymous))


def test_html_page_escapes_everything_and_forbids_scripts():
    html_text, _ = page()
    parser = Tags()
    parser.feed(html_text)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "img" not in tags and "b" in tags   # <b> only from our own markup
    assert all(not k.lower().startswith("on") for _, attrs in parser.tags for k in attrs)
    assert all(not (v or "").lower().lstrip().startswith("javascript:") for _, attrs in parser.tags
               for v in attrs.values())
    assert parser.styles == [STYLE] and tags.count("style") == 1
    csp = [a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [CSP] and "default-src 'none'" in CSP and "script-src 'none'" in CSP
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html_text
    assert "&lt;/div&gt;&lt;style&gt;" in html_text
    assert '<span class="math">$a&lt;b$</span>' in html_text
    assert "[U+202E]evil[U+202C]" in html_text and "\x1b" not in html_text
    assert "&lt;img src=x onerror=alert(5)&gt;" in html_text       # the student's name, escaped too


def test_markdown_twin_keeps_student_text_in_code_blocks():
    _, md_text = page()
    assert "```text\nIntro <script>alert(1)</script>" in md_text
    outside = re.sub(r"```+text\n.*?\n```+", "", md_text, flags=re.S)
    assert "<" not in outside and ">" not in outside.replace("\n> ", "\n")   # no raw < or > outside the code blocks
    assert md("<img src=x onerror=alert(5)>") == "&lt;img src=x onerror=alert(5)&gt;"
    assert "### &lt;img src=x onerror=alert(5)&gt;" in md_text
    tricky = "```\n<script>x</script>\n````"
    from grader.written.pages import md_block
    block = md_block(tricky)
    assert block[0] == "`````text" and block[-1] == "`````"


def test_anonymous_codes_are_stable_secret_and_do_not_reveal_the_id():
    code = anonymous_code("yara_answers", SECRET)
    assert re.fullmatch(r"anon-[a-z2-7]{8}", code)
    assert anonymous_code("yara_answers", SECRET) == code                      # stable across runs
    assert anonymous_code("yara_answers", b"another course") != code
    assert "yara" not in code
    table = code_table(["b", "a", "c"], SECRET)
    assert list(table) == ["a", "b", "c"] and len(set(table.values())) == 3
    assert anonymity_secret(7, {ENV_SECRET: "s3cret"}) == b"s3cret"
    assert anonymity_secret(7, {}) != anonymity_secret(8, {})


def test_anonymous_pages_show_only_codes_in_code_order(tmp_path):
    work_a = workdir_with(tmp_path / "a", {"solution.py": "x = 1\n", "ANSWERS.md": f"## Q1\n{ANSWER_1}\n"})
    work_b = workdir_with(tmp_path / "b", {"solution.py": "x = 1\n", "ANSWERS.md": f"## Q1\n{ANSWER_1}\n"})

    class Sub:
        def __init__(self, student, workdir):
            self.student, self.workdir, self.kind, self.entry, self.error = student, workdir, "folder", "solution.py", None

    subs = [Sub("zelda_zebra", work_a), Sub("aaron_apple", work_b),
            Sub("broken_bella", None)]
    subs[2].error = "conflicting submissions"
    report = write_written_pages(subs, tmp_path / "out", QUESTIONS, anonymous=True, secret=SECRET)
    assert isinstance(report, WrittenReport)
    codes = sorted(code_table([s.student for s in subs], SECRET).values())
    for path in report.pages:
        text = path.read_text("utf-8")
        for s in subs:
            assert s.student not in text, (path.name, s.student)
    q1 = (tmp_path / "out" / "written" / "Q1.html").read_text("utf-8")
    shown = [c for c in codes if f"<h3>{c}</h3>" in q1]      # students with an answer, in code order
    assert len(shown) == 2 and [q1.index(f"<h3>{c}</h3>") for c in shown] == sorted(q1.index(f"<h3>{c}</h3>") for c in shown)
    broken = code_table([s.student for s in subs], SECRET)["broken_bella"]
    assert f"<li><b>{broken}</b>: no answer: the submission could not be read</li>" in q1   # listed once, at the top
    assert "identical text" in q1                       # the two copies are flagged, by code
    template = (tmp_path / "out" / "written" / "manual_template.csv").read_text("utf-8").splitlines()
    assert template[0] == "student,question,points,comment"
    assert template[1:] == [f"{c},{q},," for c in codes for q in QUESTIONS.ids()]
    again = write_written_pages(subs, tmp_path / "out2", QUESTIONS, anonymous=True, secret=SECRET)
    assert [p.read_bytes() for p in again.pages] == [p.read_bytes() for p in report.pages]   # stable
    with pytest.raises(ValueError):
        write_written_pages(subs, tmp_path / "out3", QUESTIONS, anonymous=True)


def test_page_renders_readably_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless chromium here (apt-get install -y chromium)")
    html_text, _ = page()
    path = tmp_path / "Q1.html"
    path.write_text(html_text, "utf-8")
    png = tmp_path / "Q1.png"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", "--window-size=1000,1400", f"--screenshot={png}",
                               path.as_uri()], capture_output=True, text=True, timeout=60)
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                              "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=60)
    assert png.is_file() and png.stat().st_size > 10_000, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in dom.stdout and "&lt;script&gt;alert(1)" in dom.stdout


# --------------------------------------------------------------------------------------------
# manual.csv: validation (every message) and the merge
# --------------------------------------------------------------------------------------------

STUDENTS = ["alice", "bob", "=cmd"]


def problems_for(text: str | bytes, anonymous: bool = False) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    rows, problems = read_manual(data)
    _, more = validate(rows, [result(s) for s in STUDENTS], QUESTIONS, secret=SECRET, anonymous=anonymous)
    return [str(p) for p in problems + more if p.kind != "unmarked"]


HEADER = "student,question,points,comment\n"


@pytest.mark.parametrize("rows, messages", [
    ("alice,Q1,5,good\nalice,Q2,10,\nalice,Q3,4.5,sign slip\n", []),
    ("zed,Q1,5,\n", ["manual.csv line 2: unknown student 'zed' (not a graded student or an anonymous code): "
                     "not applied"]),
    (",Q1,5,\n", ["manual.csv line 2: no student: not applied"]),
    ("alice,Q9,1,\n", ["manual.csv line 2: unknown question 'Q9' (expected one of Q1, Q2, Q3, or "
                       "check:FUNCTION/CHECK): not applied"]),
    ("alice,Q1,five,\n", ["manual.csv line 2: points 'five' are not a number (write e.g. 4.5): not applied"]),
    ("alice,Q1,\"4,5\",\n", ["manual.csv line 2: points '4,5' are not a number (write e.g. 4.5): not applied"]),
    ("alice,Q1,NaN,\n", ["manual.csv line 2: points 'NaN' are not a finite number: not applied"]),
    ("alice,Q1,-1,\n", ["manual.csv line 2: points -1 are negative: not applied"]),
    ("alice,Q1,6,\n", ["manual.csv line 2: points 6 are above the maximum 5 for Q1: not applied"]),
    ("alice,Q1,,why\n", ["manual.csv line 2: a comment but no points: not applied"]),
    ("alice,Q1,5,ok\nalice,q1,5,ok\n", ["manual.csv lines 2, 3: the same mark for alice Q1 more than once: "
                                        "applied once"]),
    ("alice,Q1,5,ok\nalice,Q1,4,ok\n", ["manual.csv lines 2, 3: different marks for alice Q1: none applied"]),
    ("alice,check:gaussian_kl/value,4,\n", ["manual.csv line 2: an override needs its reason in the comment: "
                                            "not applied"]),
    ("alice,check:gaussian_kl/nope,4,r\n", ["manual.csv line 2: unknown check 'check:gaussian_kl/nope' (expected "
                                            "check:FUNCTION/CHECK, e.g. check:gaussian_kl/value): not applied"]),
    ("alice,check:gaussian_kl/value,5,r\n", ["manual.csv line 2: points 5 are above the maximum 4 for "
                                             "check:gaussian_kl/value: not applied"]),
    ("alice,Q1,5,a,b\n", ["manual.csv line 2: 5 fields where the header has 4 (an unquoted separator in the "
                          "comment? quote it): not applied"]),
    ("zed,Q9,x,\n", ["manual.csv line 2: unknown student 'zed' (not a graded student or an anonymous code); "
                     "unknown question 'Q9' (expected one of Q1, Q2, Q3, or check:FUNCTION/CHECK); points 'x' are "
                     "not a number (write e.g. 4.5): not applied"]),
    ("'=cmd,Q1,5,\n", []),                                             # a spreadsheet-safe id is read back
    ("alice,Q1,,\n\n,,,\n", []),                                       # template rows left blank: only unmarked
])
def test_manual_csv_row_problems(rows, messages):
    assert problems_for(HEADER + rows) == messages


@pytest.mark.parametrize("data, messages", [
    (b"", ["manual.csv is empty: nothing was applied"]),
    (b"student,question,points\nalice,Q1,5\n", ["manual.csv line 1: the header ['student', 'question', 'points'] "
                                               "lacks the column(s) comment (expected student, question, points, "
                                               "comment): nothing was applied"]),
    (b"student,question,points,comment,comment\n", ["manual.csv line 1: the column 'comment' appears twice: "
                                                    "nothing was applied"]),
    (b"student,question,points,comment\nalice,Q1,5,caf\xe9\n", ["manual.csv line 2: not UTF-8 (byte 0xe9); save it "
                                                                "as 'CSV UTF-8': nothing was applied"]),
    (b"\xef\xbb\xbfStudent;Question;Points;Comment;grader\nalice;Q1;5;ok;me\n",
     ["manual.csv line 1: column(s) 'grader' ignored (not one of student, question, points, comment)"]),
])
def test_manual_csv_file_problems(data, messages):
    assert problems_for(data) == messages


def test_unmarked_students_and_missing_file_are_listed(tmp_path):
    results = [result(s) for s in STUDENTS]
    marks, problems = read_and_validate(tmp_path / "manual.csv", results, QUESTIONS)
    assert marks == []
    assert [str(p) for p in problems][0].startswith("no manual.csv yet (")
    assert [str(p) for p in problems][1:] == ["=cmd: no mark yet for Q1, Q2, Q3", "alice: no mark yet for Q1, Q2, Q3",
                                             "bob: no mark yet for Q1, Q2, Q3"]
    path = tmp_path / "manual.csv"
    code = anonymous_code("bob", SECRET)
    path.write_text(HEADER + f"alice,Q1,5,\nalice,Q2,1,\n{code.upper()},Q1,2,vague\n")
    marks, problems = read_and_validate(path, results, QUESTIONS, secret=SECRET, anonymous=True)
    assert [(m.student, m.question, m.points) for m in marks] == [("alice", "Q1", Decimal(5)),
                                                                   ("alice", "Q2", Decimal(1)),
                                                                   ("bob", "Q1", Decimal(2))]
    unmarked = sorted(str(p) for p in problems if p.kind == "unmarked")
    codes = code_table(STUDENTS, SECRET)
    assert unmarked == sorted([f"{codes['alice']}: no mark yet for Q3", f"{codes['bob']}: no mark yet for Q2, Q3",
                               f"{codes['=cmd']}: no mark yet for Q1, Q2, Q3"])


def test_merge_adds_written_checks_and_applies_overrides_purely(tmp_path):
    results = [result("alice"), result("bob", status="load_error")]
    before = [r.to_json() for r in results]
    marks = [Mark(3, "alice", "Q2", Decimal("7.5"), "misses the ELBO bound"),
             Mark(2, "alice", "Q1", Decimal("5"), "clear"),
             Mark(4, "alice", "check:gaussian_kl/value", Decimal("4"), "regrade: the reference was wrong here")]
    merged = merge(results, marks, QUESTIONS)
    assert [r.to_json() for r in results] == before                       # the input is untouched
    alice = merged[0]
    written = [(c.function, c.name, str(c.score), str(c.max_score), c.passed, c.message)
               for c in alice.checks if c.function == "written"]
    assert written == [("written", "Q1", "5", "5", True, "clear"),
                       ("written", "Q2", "7.5", "10", False, "misses the ELBO bound"),
                       ("written", "Q3", "0", "5", False, "Not marked yet.")]
    value = alice.checks[0]
    assert (value.score, value.passed, value.diagnosis) == (Decimal(4), True, None)
    assert value.message.startswith("Changed by the TA: 4 / 4 instead of 0. Reason: regrade: the reference was "
                                    "wrong here\nThe automatic check said:\nLikely mistake")
    assert alice.score == Decimal("17.5") and alice.max_score == Decimal(25)
    assert alice.functions()["written"] == {"score": "12.5", "max_score": "20"}
    assert alice.rubric["questions"] == {"version": QUESTIONS.version, "sha256": QUESTIONS.sha256}
    assert [is_manual(c) for c in alice.checks] == [True, False, True, True, True]
    from grader.reports import feedback_markdown
    feedback = feedback_markdown(alice)      # a mark below full is shown as marked, never as FAIL
    assert "- **MARKED** `Q2` (7.5 / 10): " in feedback and "misses the ELBO bound" in feedback
    assert "- **MARKED** `Q1` (5 / 5): " in feedback and "- **NOT MARKED YET** `Q3` (0 / 5): " in feedback
    assert "**FAIL** `Q" not in feedback
    bob = merged[1]
    assert bob.status == "load_error" and [c.name for c in bob.checks if c.function == "written"] == ["Q1", "Q2", "Q3"]
    # undoing the merge gives the stored automatic result back, byte for byte
    assert automatic_only(alice).to_json() == results[0].to_json()


def test_overriding_a_gate_credits_the_checks_withheld_by_it():
    base = result("alice")
    gated = CheckResult("gaussian_kl", "float32", Decimal(0), Decimal(1), False, "", "", None,
                        "not credited: it builds on `value`, which failed", "float32",
                        hidden={"not_credited_because": ["value"]})
    own_failure = CheckResult("gaussian_kl", "shapes", Decimal(0), Decimal(1), False, "a", "b", None, "wrong shape",
                              "shapes", hidden={"case": "c2", "args": [], "kwargs": {}})
    base = dataclasses.replace(base, checks=[*base.checks, gated, own_failure])
    partial_mark = [Mark(4, "alice", "check:gaussian_kl/value", Decimal("3"), "nearly")]
    [alice] = merge([base], partial_mark, QUESTIONS)
    assert {c.name: c.passed for c in alice.checks if c.function == "gaussian_kl"} == {
        "value": False, "gradient": True, "float32": False, "shapes": False}  # a partial override credits nothing more
    full_mark = [Mark(4, "alice", "check:gaussian_kl/value", Decimal("4"), "the reference was wrong here")]
    [alice] = merge([base], full_mark, QUESTIONS)
    checks = {c.name: c for c in alice.checks if c.function == "gaussian_kl"}
    assert (checks["float32"].passed, checks["float32"].score) == (True, Decimal(1))
    assert "the TA changed `value`" in checks["float32"].message
    assert not checks["shapes"].passed  # it failed on its own: an override of another check changes nothing
    assert alice.score == Decimal(4 + 1 + 1)
    assert automatic_only(alice).to_json() == base.to_json()  # undone with the override


def test_merge_is_byte_for_byte_reproducible_and_idempotent():
    results = [result("alice"), result("bob")]
    marks = [Mark(2, "alice", "Q1", Decimal("4"), "ok"), Mark(5, "alice", "check:gaussian_kl/value", Decimal("2"), "r")]
    once = [r.to_json() for r in merge(results, marks, QUESTIONS)]
    assert [r.to_json() for r in merge(results, list(reversed(marks)), QUESTIONS)] == once
    stored = [StudentResult.from_dict(json.loads(text)) for text in once]      # as written to results/*.json
    assert [r.to_json() for r in merge(stored, marks, QUESTIONS)] == once      # merging again changes nothing
    assert [r.to_json() for r in merge(merge(results, marks, QUESTIONS), [], QUESTIONS)] == [
        r.to_json() for r in merge(results, [], QUESTIONS)]                    # a removed mark is undone


def test_apply_manual_marks_end_to_end(tmp_path):
    path = tmp_path / "manual.csv"
    path.write_text(HEADER + "alice,Q1,5,\"Good, clear answer.\"\nalice,check:gaussian_kl/value,4,reference bug\n"
                    "mallory,Q1,5,\n", "utf-8")
    results = [result("alice"), result("bob")]
    merged, problems = apply_manual_marks(results, path, QUESTIONS)
    again, problems_again = apply_manual_marks(merged, path, QUESTIONS)
    assert [r.to_json() for r in again] == [r.to_json() for r in merged]
    assert [str(p) for p in problems] == [str(p) for p in problems_again] == [
        "manual.csv line 4: unknown student 'mallory' (not a graded student): not applied",
        "alice: no mark yet for Q2, Q3",
        "bob: no mark yet for Q1, Q2, Q3",
    ]
    assert merged[0].checks[-3].message == "Good, clear answer."
