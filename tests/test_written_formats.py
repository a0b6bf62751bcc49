"""Written answers as students really hand them in (issue 13): Markdown with the course's own
numbering, plain text, LaTeX, PDF with and without a text layer, beside the code or as files of
their own; how each answer was matched and where it was found; copies across formats; the PDF
reader's limits. Fixtures: tests/fixtures/written/ (the PDFs are made by tests/written_pdfs.py)."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from grader import intake
from grader.written import collect_answers, extract_answers, load_questions
from grader.written import pdf as pdf_module
from grader.written.pdf import extract_pdf_text
from grader.written.questions import QuestionsError
from grader.written.similarity import words
from tests.written_pdfs import CLASS, EXAMPLE_CLASS_PDFS, REPORT_PAGES, scanned_pdf, text_pdf

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "written"
QUESTIONS = load_questions()
SOLUTION = "def elbo(x):\n    raise NotImplementedError\n"


def writeup(name: str, folder: Path | None = None):
    folder = folder or FIXTURES
    return extract_answers(None, "writeup", None, QUESTIONS, writeup_dir=folder, writeups=[name])


def kinds(flags):
    return [(f.kind, f.question) for f in flags]


def test_the_issue_report_has_every_question_found():
    """The issue's example: bold numbered question text under `## Part I`; `**3.**` is empty, not
    the text of Part II. Before issue 13 every question was flagged "no answer"."""
    answers, flags = writeup("issue13_report.md")
    assert sorted(answers) == ["Q1", "Q2", "Q3"] and ("missing", "Q1") not in kinds(flags)
    assert answers["Q1"].text == "A generative model is fitted to samples from an unknown p_data ..."
    assert answers["Q1"].how == "matched by number 1 under section I and the question's text"
    assert answers["Q2"].text == r"... $$\mathcal{L} = \mathbb{E}_{q(z|x)}[\log p(x|z)] - KL(q(z|x) \| p(z))$$ ..."
    assert answers["Q3"].text == "" and answers["Q3"].how == "matched by number 3 under section I"
    assert kinds(flags) == [("empty", "Q3")]
    assert (answers["Q2"].file, answers["Q2"].page, answers["Q2"].line) == ("issue13_report.md", None, 6)


def test_numbered_headings_with_math_and_ordered_lists_inside_answers():
    answers, flags = writeup("numbered_report.md")
    assert flags == []
    assert answers["Q1"].text.endswith("2. implicit densities, where only a sampler $x = G(z)$ exists (GANs).")
    assert "3. FVBN: the exact likelihood" in answers["Q2"].text      # a list item, not the answer to 3
    assert r"$$\mathcal{L}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x) \,\|\, p(z)) \le \log p(x),$$" \
        in answers["Q2"].text                                         # math kept as typed
    assert answers["Q3"].text.startswith(r"With $D = \sigma(l)$: $\frac{\partial}{\partial l}")
    assert [answers[q].location for q in ("Q1", "Q2", "Q3")] == [
        "numbered_report.md line 5", "numbered_report.md line 14", "numbered_report.md line 24"]


def test_plain_numbered_lines_problem_parts_and_question_text_headings():
    answers, flags = writeup("plain_numbered.txt")
    assert flags == [] and [a.how for a in answers.values()] == ["matched by number 1", "matched by number 2",
                                                                "matched by number 3"]
    assert "3) FVBNs maximise the exact likelihood" in answers["Q2"].text
    assert answers["Q3"].text.startswith("The non-saturating loss")
    answers, flags = writeup("problem_parts.md")
    assert flags == [] and "Problem 1(b)\nGANs are implicit" in answers["Q1"].text   # 1(b) continues 1
    answers, flags = writeup("question_text_headings.md")
    assert flags == [] and {a.how for a in answers.values()} == {"matched by the question's text"}
    assert answers["Q2"].text.startswith("GANs need no likelihood")


def test_latex_write_up():
    answers, flags = writeup("latex_report.tex")
    assert flags == [] and sorted(answers) == ["Q1", "Q2", "Q3"]
    assert answers["Q1"].heading == r"\section*{1. What is a generative model?}"
    assert answers["Q1"].location == "latex_report.tex line 7"
    assert r"\frac{p(x,z)}{q(z|x)}" in answers["Q2"].text and r"\mathbb{E}_{q}" in answers["Q2"].text
    assert "% not a comment" not in answers["Q3"].text and r"50\% of the time" in answers["Q3"].text


def test_pdf_report_keeps_pages_and_lines(tmp_path):
    answers, flags = writeup("pdf_report.pdf")
    assert flags == [] and sorted(answers) == ["Q1", "Q2", "Q3"]
    assert (answers["Q2"].file, answers["Q2"].page, answers["Q2"].line) == ("pdf_report.pdf", 2, 1)
    assert answers["Q2"].location == "pdf_report.pdf page 2, line 1"
    assert answers["Q1"].text.startswith("A generative model is fitted to samples x_1")
    assert answers["Q3"].text.endswith("The game is no longer zero-sum.")


def test_a_pdf_without_a_text_layer_is_never_read_as_empty():
    answers, flags = writeup("scanned_report.pdf")
    assert answers == {}
    assert kinds(flags) == [("no_text_layer", None), ("no_text_layer", "Q1"), ("no_text_layer", "Q2"),
                            ("no_text_layer", "Q3")]
    assert flags[0].message == "scanned_report.pdf has 2 pages and no text layer (a scan?): mark its answers from the PDF"


def test_copies_are_found_across_formats(tmp_path):
    """The PDF and a Markdown copy of the same text are the same text."""
    lines = REPORT_PAGES[0][4:] + REPORT_PAGES[1]
    (tmp_path / "amy").mkdir()
    (tmp_path / "amy" / "report.pdf").write_bytes(text_pdf(REPORT_PAGES))
    (tmp_path / "ben").mkdir()
    (tmp_path / "ben" / "answers.md").write_text("\n\n".join(f"**{line}**" if line[:2] in ("1.", "2.", "3.") else line
                                                        for line in lines))
    pdf_answers, _ = writeup("report.pdf", tmp_path / "amy")
    md_answers, flags = writeup("answers.md", tmp_path / "ben")
    assert sorted(md_answers) == ["Q1", "Q2", "Q3"], flags
    for q in ("Q1", "Q2", "Q3"):
        assert words(pdf_answers[q].text) == words(md_answers[q].text)


def test_intake_and_extraction_end_to_end(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "alice.py").write_text(SOLUTION)
    shutil.copy(FIXTURES / "pdf_report.pdf", klass / "alice.pdf")
    (klass / "bob.py").write_text(SOLUTION)
    (klass / "bob.pdf").write_bytes(text_pdf(REPORT_PAGES))       # the same report: copied
    shutil.copy(FIXTURES / "latex_report.tex", klass / "smithjohn_12345_67891_hw3.tex")
    (klass / "smithjohn_12345_67890_solution.py").write_text(SOLUTION)
    shutil.copy(FIXTURES / "scanned_report.pdf", klass / "zoe.pdf")   # no code, and a scan
    subs, _ = intake.prepare(klass, tmp_path / "work")
    found, pairs = collect_answers(subs, QUESTIONS)
    assert sorted(found["alice"][0]) == ["Q1", "Q2", "Q3"]
    assert sorted(found["smithjohn_12345_67890_solution"][0]) == ["Q1", "Q2", "Q3"]
    assert ("no_text_layer", "Q1") in kinds(found["zoe"][1])
    assert [(p.a, p.b, p.identical) for p in pairs["Q2"]] == [("alice", "bob", True)]


# --------------------------------------------------------------------------------------------
# The PDF reader runs in a child process under limits
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, limits, expected", [
    ("while True:\n    pass\n", {"TIMEOUT_S": 60.0, "CPU_S": 1}, "the PDF reader failed: killed by signal"),
    ("import time\ntime.sleep(60)\n", {"TIMEOUT_S": 1.0}, "reading it took more than 1 s: stopped"),
    ("x = bytearray(4 << 30)\n", {"MEMORY_MIB": 256}, "the PDF reader failed: exit status 1 (over 256 MiB of memory)"),
])
def test_the_pdf_reader_is_limited(tmp_path, monkeypatch, body, limits, expected):
    child = tmp_path / "child.py"
    child.write_text("import sys\nsys.stdin.buffer.read()\n" + body)
    monkeypatch.setattr(pdf_module, "CHILD", child)
    for name, value in limits.items():
        monkeypatch.setattr(pdf_module, name, value)
    started = time.monotonic()
    result = extract_pdf_text(b"%PDF-1.4\n", timeout_s=pdf_module.TIMEOUT_S)
    assert result.problem is not None and result.problem.startswith(expected), result.problem
    assert time.monotonic() - started < 30


def test_the_pdf_reader_refuses_what_is_not_a_pdf_and_reads_each_page():
    assert extract_pdf_text(b"hello").problem == "it is not a PDF file (no %PDF- header)"
    assert extract_pdf_text(b"%PDF-1.4 garbage").problem.startswith("it could not be read as a PDF: ")
    result = extract_pdf_text(text_pdf([["page one"], ["page (two) \\ ok"]]))
    assert [p.strip() for p in result.pages] == ["page one", "page (two) \\ ok"] and not result.no_text
    assert extract_pdf_text(scanned_pdf(1)).no_text


def test_the_committed_pdf_fixtures_are_the_generated_ones():
    assert (FIXTURES / "pdf_report.pdf").read_bytes() == text_pdf(REPORT_PAGES)
    assert (FIXTURES / "scanned_report.pdf").read_bytes() == scanned_pdf()
    for rel, make in EXAMPLE_CLASS_PDFS.items():       # the example class's report and scan
        assert (CLASS / rel).read_bytes() == make(), rel


# --------------------------------------------------------------------------------------------
# questions.toml declares the course's numbering
# --------------------------------------------------------------------------------------------

def test_sections_and_numbers_declared_in_questions_toml(tmp_path):
    text = (Path(__file__).resolve().parent.parent / "grader" / "questions.toml").read_text()
    for qid, number, section in (("Q1", "1", "I"), ("Q2", "1", "II"), ("Q3", "2", "II")):
        text = text.replace(f'id = "{qid}"\nnumber = "{qid[1]}"', f'id = "{qid}"\nnumber = "{number}"\nsection = "{section}"')
    path = tmp_path / "questions.toml"
    path.write_text(text)
    questions = load_questions(path)
    assert [questions.by_label("1", "I").id, questions.by_label("1", "2").id] == ["Q1", "Q2"]
    (tmp_path / "r.md").write_text("# Part I\n1. What is a generative model?\nexplicit or implicit.\n"
                                   "# Part II\n1. How do GANs differ from autoencoders?\na game.\n2. Why?\nsaturation.\n")
    answers, flags = extract_answers(None, "writeup", None, questions, writeup_dir=tmp_path, writeups=["r.md"])
    assert flags == [] and [answers[q].text for q in ("Q1", "Q2", "Q3")] == ["explicit or implicit.", "a game.", "saturation."]
    assert answers["Q3"].how == "matched by number 2 under section II"
    path.write_text(text.replace('number = "2"\nsection', 'number = "two!"\nsection'))
    with pytest.raises(QuestionsError, match="Q3.number is 'two!'"):
        load_questions(path)


# --------------------------------------------------------------------------------------------
# Pages TAs read
# --------------------------------------------------------------------------------------------

def test_pages_list_students_without_an_answer_once_at_the_top(tmp_path):
    from grader.written import write_written_pages

    class Sub:
        def __init__(self, student, workdir=None, writeup_dir=None, writeups=()):
            self.student, self.workdir, self.kind, self.entry, self.error = student, workdir, "py", "solution.py", None
            self.writeup_dir, self.writeups = writeup_dir, list(writeups)

    subs = [Sub("maria", writeup_dir=FIXTURES, writeups=["numbered_report.md"]),
            Sub("zoe", writeup_dir=FIXTURES, writeups=["scanned_report.pdf"]),
            Sub("ivan", writeup_dir=FIXTURES, writeups=["issue13_report.md"])]   # his **3.** is empty
    for n in range(20):
        work = tmp_path / f"w{n}"
        work.mkdir()
        (work / "solution.py").write_text("x = 1\n")
        subs.append(Sub(f"nobody{n:02d}", work))
    write_written_pages(subs, tmp_path / "out", QUESTIONS)
    q1 = (tmp_path / "out" / "written" / "Q1.html").read_text("utf-8")
    top, answers = q1.split("<h2>Answers (2)</h2>")
    assert "<h3>Without an answer (21)</h3>" in top and top.count("<b>nobody") == 20
    assert top.count("<li><b>nobody") == 1             # the same reason: one line for the twenty
    assert "<li><b>zoe</b>: no answer to Q1 in the text; scanned_report.pdf has no text to read: mark it from the PDF</li>" in top
    assert answers.count("<article") == 2 and "nobody" not in answers and "(no answer)" not in q1
    assert ('numbered_report.md line 5 \u00b7 heading <code>### 1. Generative modelling</code> \u00b7 '
            '<span class="how">matched by number 1 and the question&#x27;s text</span>') in answers
    assert '<span class="math">$p_\\theta(x)$</span>' in answers          # math readable, escaped
    q1_md = (tmp_path / "out" / "written" / "Q1.md").read_text("utf-8")
    assert "### Without an answer (21)" in q1_md and "## Answers (2)" in q1_md and "### nobody00" not in q1_md
    assert "numbered\\_report.md line 5 \u00b7 heading: \\#\\#\\# 1. Generative modelling \u00b7 matched by number 1" in q1_md
    q3 = (tmp_path / "out" / "written" / "Q3.html").read_text("utf-8")
    top, answers = q3.split("<h2>Answers (1)</h2>")       # ivan's empty **3.** is listed, not shown as an answer
    assert ("<li><b>ivan</b>: empty answer under <code>**3.**</code> (issue13_report.md line 8)"
            " \u00b7 matched by number 3 under section I</li>") in top
    assert "<h3>Without an answer (22)</h3>" in top and "ivan" not in answers and "(empty)" not in q3
    assert "<b>empty answer</b>" not in top                # listed once: in the list, not also in a flag line
    assert "- **ivan**: empty answer under \\*\\*3.\\*\\* (issue13\\_report.md line 8) \u00b7 matched by number 3" \
        in (tmp_path / "out" / "written" / "Q3.md").read_text("utf-8")


def test_answers_json_for_the_marking_app(tmp_path):
    import json

    from grader.written import anonymity_secret, write_written_pages
    from grader.written.anonymity import code_table

    class Sub:
        def __init__(self, student, writeups):
            self.student, self.workdir, self.kind, self.entry, self.error = student, None, "writeup", None, None
            self.writeup_dir, self.writeups = FIXTURES, writeups

    subs = [Sub("paula", ["pdf_report.pdf"]), Sub("ivan", ["issue13_report.md"]), Sub("zoe", ["scanned_report.pdf"])]
    report = write_written_pages(subs, tmp_path / "out", QUESTIONS)
    path = tmp_path / "out" / "written" / "answers.json"
    assert path in report.pages and report.summary_line().startswith("written answers: 6 files in written/")
    data = json.loads(path.read_text("utf-8"))
    assert data["format"] == 1 and data["questions_version"] == QUESTIONS.version and data["anonymous"] is False
    q2 = data["questions"][1]
    assert q2["id"] == "Q2" and q2["points"] == "10" and [r["points"] for r in q2["rubric"]] == ["2", "1", "1", "2", "2", "2"]
    paula = next(a for a in q2["answers"] if a["student"] == "paula")
    assert paula["source"] == {"file": "pdf_report.pdf", "page": 2, "line": 1, "location": "pdf_report.pdf page 2, line 1"}
    assert paula["how"] == "matched by number 2 under section I and the question's text"
    assert paula["text"].startswith("A GAN plays a two-player game")
    ivan_q3 = next(a for a in data["questions"][2]["answers"] if a["student"] == "ivan")
    assert ivan_q3["empty"] is True and [f["kind"] for f in ivan_q3["flags"]] == ["empty"]
    assert [w["student"] for w in q2["without_answer"]] == ["zoe"]
    assert {f["kind"] for f in q2["without_answer"][0]["flags"]} == {"no_text_layer"}
    secret = anonymity_secret(1)
    write_written_pages(subs, tmp_path / "anon", QUESTIONS, anonymous=True, secret=secret)
    text = (tmp_path / "anon" / "written" / "answers.json").read_text("utf-8")
    assert "paula" not in text and code_table(["paula"], secret)["paula"] in text and '"anonymous": true' in text


def test_a_word_hyphenated_across_a_pdf_line_is_one_word():
    assert words("a gener-\native model, well-known") == ["a", "generative", "model", "well", "known"]


def _notebook(cells: list[tuple[str, str]]) -> str:
    import json
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": t, "source": s, "metadata": {}, **({"outputs": [], "execution_count": None} if t == "code" else {})}
        for t, s in cells]})


def test_writeups_beside_the_code_in_a_folder_or_zip_and_as_files_of_their_own(tmp_path):
    """Every write-up format beside the code in a folder or a zip, or handed in as a file of its
    own, is read with the course's numbering; a README or requirements.txt is not a write-up; two
    code files stay a conflict."""
    import zipfile

    klass = tmp_path / "class"
    folders = {
        "amy": {"report.md": (FIXTURES / "issue13_report.md").read_text()},
        "cat": {"report.tex": (FIXTURES / "latex_report.tex").read_text()},
        "dan": {"report.pdf": (FIXTURES / "pdf_report.pdf").read_bytes()},
        "eve": {"written.ipynb": _notebook([("markdown", "# Written part\n**1. What is a generative model?**\n"
                                                         "It models p_data."),
                                            ("code", "x = 1"),
                                            ("markdown", "**2.** A game.\n\n**3.** Gradients.")])},
        "fay": {"README.md": "# How to run\n1. Install torch\n2. Run it\n", "requirements.txt": "torch>=2\n"},
    }
    for student, files in folders.items():
        (klass / student).mkdir(parents=True)
        (klass / student / "solution.py").write_text(SOLUTION)
        for name, data in files.items():
            (klass / student / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    with zipfile.ZipFile(klass / "ben.zip", "w") as archive:
        archive.writestr("ben/solution.py", SOLUTION)
        archive.writestr("ben/answers.txt", (FIXTURES / "plain_numbered.txt").read_text())
    (klass / "gus.py").write_text(SOLUTION)
    shutil.copy(FIXTURES / "numbered_report.md", klass / "gus.md")
    (klass / "hal.py").write_text(SOLUTION)
    (klass / "hal.ipynb").write_text(_notebook([("code", "x = 1")]))
    subs, _ = intake.prepare(klass, tmp_path / "work")
    found, _ = collect_answers(subs, QUESTIONS)
    how = {s: {q: (a.how, a.file) for q, a in answers.items()} for s, (answers, _) in found.items()}
    flags = {s: kinds(f) for s, (_, f) in found.items()}
    for student, file in (("amy", "report.md"), ("ben", "answers.txt"), ("cat", "report.tex"), ("dan", "report.pdf"),
                          ("eve", "written.ipynb"), ("gus", "gus.md")):
        assert sorted(how[student]) == ["Q1", "Q2", "Q3"], (student, flags[student])
        assert {f for _, f in how[student].values()} == {file}, (student, how[student])
        assert all(h.startswith("matched by number") for h, _ in how[student].values()), how[student]
        assert not [k for k in flags[student] if k[0] in ("misplaced", "missing")], (student, flags[student])
    assert flags["amy"] == [("empty", "Q3")]                        # the issue's empty **3.**
    assert found["eve"][0]["Q1"].location == "written.ipynb markdown cell 1"
    assert found["eve"][0]["Q3"].text == "Gradients."
    assert flags["fay"] == [("missing", "Q1"), ("missing", "Q2"), ("missing", "Q3")]
    hal = next(s for s in subs if s.student == "hal")
    assert hal.conflict and hal.error == "conflicting submissions: hal.ipynb, hal.py"


def test_a_pdf_typeset_with_numbered_sections(tmp_path):
    """LaTeX's \\section{...} comes out of a PDF as "1 Generative modelling": a number, a space and
    the question's title; a body line that starts with a number is not a heading."""
    pages = [["Homework 3", "B. Silva", "1 Generative modelling", "Densities, explicit or implicit.",
              "2 GANs compared with autoencoders, VAEs and FVBNs", "A game;", "3 networks are trained in turn."],
             ["3 Why the non-saturating generator loss", "Its gradient does not vanish.", "2 times larger."]]
    (tmp_path / "r.pdf").write_bytes(text_pdf(pages))
    answers, flags = writeup("r.pdf", tmp_path)
    assert flags == [] and sorted(answers) == ["Q1", "Q2", "Q3"]
    assert answers["Q2"].text == "A game;\n3 networks are trained in turn."
    assert answers["Q3"].text == "Its gradient does not vanish.\n2 times larger."
    assert answers["Q3"].how == "matched by number 3 and the question's text"
    assert (answers["Q3"].page, answers["Q3"].line) == (2, 1)
