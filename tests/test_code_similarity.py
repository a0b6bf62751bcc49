"""Code similarity (grader.similarity): pure functions on source strings, no sandbox, no grading.

The example class's correct styles are read as text only (never imported or run)."""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from grader.intake import Submission, convert_notebook
from grader.similarity import write_code_similarity
from grader.similarity.fingerprints import K, code_of, file_units, winnow
from grader.similarity.page import code_csv, code_html
from grader.similarity.pairs import PairScore, score_pairs

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = code_of([("template.py", (ROOT / "assignment" / "template.py").read_text("utf-8"))])
STYLES = {name: (ROOT / "submissions" / f"{name}.py").read_text("utf-8")
          for name in ("alice_logsigmoid", "bob_bce", "carol_distributions", "dan_softplus")}
FORMULA_ID = "=cmd|' /C calc'!A0"
HTML_ID = "<img src=x onerror=alert(1)>"


class _Rename(ast.NodeTransformer):
    """Every argument and assigned name of a function renamed; docstrings replaced."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        local = {a.arg for a in node.args.args} | {n.id for n in ast.walk(node)
                                                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        table = {name: f"my_{name[::-1]}_{len(name)}" for name in local}
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in table:
                n.id = table[n.id]
            elif isinstance(n, ast.arg) and n.arg in table:
                n.arg = table[n.arg]
        doc = ast.Expr(ast.Constant("My own implementation, written from scratch."))
        if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body[0] = doc
        else:
            node.body.insert(0, doc)
        return node


def disguised(text: str) -> str:
    """Renamed, comments and docstrings changed, functions reordered, reformatted (ast.unparse)."""
    tree = _Rename().visit(ast.parse(text))
    imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    rest = [s for s in tree.body if s not in imports]
    tree.body = imports + rest[::-1]
    return "# Submitted by me\n" + ast.unparse(tree).replace("    ", "\t") + "\n"


def _pairs(sources: dict[str, str], template=TEMPLATE) -> dict[tuple[str, str], PairScore]:
    codes = {s: code_of([("solution.py", t)]) for s, t in sources.items()}
    return {(p.a, p.b): p for p in score_pairs(codes, template)}


def test_renamed_reordered_reformatted_copy_is_flagged():
    sources = dict(STYLES, zz_copy=disguised(STYLES["dan_softplus"]))
    assert sources["zz_copy"] != STYLES["dan_softplus"] and "my_" in sources["zz_copy"]
    scores = _pairs(sources)
    copy = scores[("dan_softplus", "zz_copy")]
    assert copy.flagged and copy.similarity > 0.8
    assert {"discriminator_loss", "generator_loss", "FVBN.sample"} <= set(copy.functions)
    assert [p for p in scores.values() if p.flagged] == [copy]


def test_hand_reformatted_copy_is_flagged():
    original = '''
def gaussian_kl(mu, logvar):
    """KL to N(0, I)."""
    var = logvar.exp()   # the variance
    total = 0.5 * (var + mu ** 2 - 1.0 - logvar)
    return total.sum(dim=-1)


def bernoulli_log_likelihood(x, logits):
    term = x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)
    return term.sum(dim=-1)
'''
    copy = '''
def bernoulli_log_likelihood(data, l):
    # Bernoulli
    t = data * F.logsigmoid(l) \\
        + (1 - data) * F.logsigmoid(-l)
    return t.sum(dim=-1,)
def gaussian_kl(m, lv):
    v = lv.exp(); s = 0.5 * (
        v + m ** 2 - 1.0 - lv
    )
    return s.sum(dim=-1)
'''
    a, b = code_of([("a.py", original)]), code_of([("b.py", copy)])
    assert a.fingerprints() == b.fingerprints() and a.fingerprints()
    assert _pairs({"a": original, "b": copy})[("a", "b")].flagged


def test_independent_styles_are_not_flagged():
    scores = _pairs(STYLES)
    assert len(scores) <= 6
    assert not [p for p in scores.values() if p.flagged], scores
    assert max(p.similarity for p in scores.values()) < 0.45


def test_template_only_code_is_not_flagged():
    template = (ROOT / "assignment" / "template.py").read_text("utf-8")
    edited = template.replace("raise NotImplementedError", "raise NotImplementedError  # TODO")
    scores = _pairs({"rita": template, "sam": edited, "bob_bce": STYLES["bob_bce"]})
    assert all(not p.flagged and p.similarity == 0 for p in scores.values()), scores
    # without the template excluded, two untouched templates would look alike
    assert _pairs({"rita": template, "sam": edited}, template=None)[("rita", "sam")].similarity > 0


def test_signatures_and_short_functions_carry_no_fingerprint():
    units = {u.name: u for u in file_units("def reparameterize(mu, logvar, eps):\n    return mu + eps\n")}
    assert units["reparameterize"].tokens == ("return", "V", "+", "V", ";")
    assert units["reparameterize"].fingerprints() == set()  # shorter than K tokens
    assert len(units["reparameterize"].tokens) < K


def test_notebook_copy_of_a_py_is_flagged():
    source = STYLES["carol_distributions"]
    chunks = source.split("\n\n\n")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# My notebook"]}]
    cells += [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
               "source": chunk.splitlines(keepends=True)} for chunk in chunks]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    python, _, _ = convert_notebook(json.dumps(notebook).encode("utf-8"))
    scores = _pairs({"carol_distributions": source, "nb_student": python, "bob_bce": STYLES["bob_bce"]})
    assert scores[("carol_distributions", "nb_student")].flagged
    assert ("bob_bce", "carol_distributions") not in scores or not scores[("bob_bce", "carol_distributions")].flagged


@pytest.mark.parametrize("text", [
    "(" * 200_000, "def f(:\n  pass", "x = 1\x00\n", "def f():\n\treturn 1\n        return 2\n",
    "def f():\n    return '''unterminated", "\ud800 = 1", "def f(): return " + "-" * 100_000 + "1",
])
def test_hostile_text_never_raises(text):
    file_units(text)
    code_of([("solution.py", text)]).fingerprints()


def test_winnowing_guarantees_a_shared_fingerprint():
    hashes = [9, 3, 7, 3, 8, 1, 5]
    assert winnow(hashes, 4) == [3, 5]  # the rightmost minimum of each window
    assert winnow([4, 2, 2], 4) == [2] and winnow([], 4) == []


def test_csv_shape_and_spreadsheet_safe_cells():
    copy = disguised(STYLES["bob_bce"])
    codes = {FORMULA_ID: code_of([("s.py", STYLES["bob_bce"])]), HTML_ID: code_of([("s.py", copy)]),
             "carol": code_of([("s.py", STYLES["carol_distributions"])])}
    scores = score_pairs(codes, TEMPLATE)
    rows = list(csv.reader(io.StringIO(code_csv(scores))))
    assert rows[0] == ["student_a", "student_b", "similarity", "flagged", "functions"]
    assert 2 <= len(rows) <= 1 + 3
    for a, b, similarity, flagged, _ in rows[1:]:
        assert a.lstrip("'") < b.lstrip("'")
        assert similarity.count(".") == 1 and len(similarity.split(".")[1]) == 3
        assert flagged in ("true", "false")
    top = rows[1]
    assert set(top[:2]) == {"'" + FORMULA_ID, HTML_ID} and top[3] == "true"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_html_escapes_everything_from_the_submission():
    evil = ('def discriminator_loss(a, b):\n    s = "</pre><script>alert(1)</script>"\n'
            '    t = a.mean() + b.mean() * 2 - a.sum() / b.sum()\n    u = t * t + s.count("x")\n'
            '    return u + t - 1  # <iframe src=//evil>\n')
    codes = {HTML_ID: code_of([("<b>x</b>.py", evil)]), "b": code_of([("s.py", evil.replace("s =", "r ="))])}
    scores = score_pairs(codes, TEMPLATE)
    assert scores[0].flagged
    page = code_html(scores, codes, anonymous=False)
    for raw in ("<script", "<img", "<iframe", "<b>x"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;/pre&gt;&lt;script&gt;" in page
    assert "<mark>" in page and "Content-Security-Policy" in page and "script-src 'none'" in page
    assert "http" not in page.replace("http-equiv", "")


def _submission(root: Path, student: str, text: str) -> Submission:
    workdir = root / student.replace("/", "_")
    workdir.mkdir()
    (workdir / "solution.py").write_text(text, "utf-8")
    return Submission(student=student, source=workdir, kind="py", sha256="0" * 64, workdir=workdir,
                      entry="solution.py", mode="full")


def test_anonymous_outputs_show_only_codes_and_are_reproducible(tmp_path):
    subs = [_submission(tmp_path, "alice_x", STYLES["alice_logsigmoid"]),
            _submission(tmp_path, "zack_y", disguised(STYLES["alice_logsigmoid"])),
            _submission(tmp_path, "bob_z", STYLES["bob_bce"])]
    out = tmp_path / "out"
    summary = write_code_similarity(subs, out, anonymous=True, secret=b"course-secret")
    assert (summary.submissions, summary.pairs, summary.flagged) == (3, 3, 1) and 1 <= summary.listed <= 3
    first = {name: (out / "similarity" / name).read_bytes() for name in ("code.csv", "code.html")}
    for text in first.values():
        assert b"alice_x" not in text and b"zack_y" not in text and b"bob_z" not in text
    rows = list(csv.reader(io.StringIO(first["code.csv"].decode())))[1:]
    assert all(r[0].startswith("anon-") and r[1].startswith("anon-") and r[0] < r[1] for r in rows)
    write_code_similarity(list(reversed(subs)), out, anonymous=True, secret=b"course-secret")
    assert first == {name: (out / "similarity" / name).read_bytes() for name in first}
    named = write_code_similarity(subs, tmp_path / "named")
    assert named.flagged == 1
    assert b"alice_x,zack_y," in (tmp_path / "named" / "similarity" / "code.csv").read_bytes()


def test_class_report_links_to_the_page(tmp_path):
    from grader.exports.class_report import _code_similarity_line

    assert _code_similarity_line(tmp_path) == ""
    subs = [_submission(tmp_path, "a", STYLES["bob_bce"]), _submission(tmp_path, "b", disguised(STYLES["bob_bce"])),
            _submission(tmp_path, "c", STYLES["dan_softplus"])]
    write_code_similarity(subs, tmp_path / "out")
    line = _code_similarity_line(tmp_path / "out")
    assert "1 pair of students flagged" in line and 'href="similarity/code.html"' in line


def _filler(i: int) -> str:
    """A student's own code, unlike any other's: a sum of method calls that spells ``i``."""
    methods = ("sum", "mean", "exp", "log", "abs", "sqrt", "tanh", "relu", "sigmoid", "std", "max", "min",
               "norm", "var", "cos", "sin")
    digest = hashlib.blake2b(str(i).encode(), digest_size=32).digest()
    expr = " ".join(f"{'+-*/'[b % 4]} x.{methods[b // 16]}()" for b in digest)
    return f"def discriminator_loss(r, f):\n    x = r + f\n    return x {expr}\n"


def test_a_large_cluster_of_copies_is_still_flagged():
    """Shared by 20 of 45 (under half the class): each fingerprint weighs 1/19, the pairs still score 1."""
    sources = {f"copy{i:02d}": STYLES["dan_softplus"] for i in range(20)}
    sources.update({f"own{i:02d}": _filler(i) for i in range(25)})
    scores = _pairs(sources)
    copies = [p for k, p in scores.items() if k[0].startswith("copy") and k[1].startswith("copy")]
    assert len(copies) == 190 and all(p.flagged and p.similarity == 1 for p in copies)
    assert not [p for k, p in scores.items() if p.flagged and not k[1].startswith("copy")]


def test_a_class_without_pairs(tmp_path):
    summary = write_code_similarity([_submission(tmp_path, "only", STYLES["bob_bce"])], tmp_path / "out")
    assert (summary.submissions, summary.pairs, summary.listed, summary.flagged) == (1, 0, 0, 0)
    header = "student_a,student_b,similarity,flagged,functions\n"
    assert (tmp_path / "out" / "similarity" / "code.csv").read_text() == header
    assert "No pair flagged" in (tmp_path / "out" / "similarity" / "code.html").read_text()


def test_folders_and_zips_are_compared_by_their_code(tmp_path):
    import zipfile

    from grader import intake

    klass = tmp_path / "class"
    (klass / "folder_student" / "work").mkdir(parents=True)
    (klass / "bob_bce.py").write_text(STYLES["bob_bce"], "utf-8")
    (klass / "dan_softplus.py").write_text(STYLES["dan_softplus"], "utf-8")
    (klass / "folder_student" / "work" / "solution.py").write_text("from helpers import *\n", "utf-8")
    (klass / "folder_student" / "work" / "helpers.py").write_text(disguised(STYLES["bob_bce"]), "utf-8")
    with zipfile.ZipFile(klass / "zip_student.zip", "w") as archive:
        archive.writestr("hw/my_solution.py", disguised(STYLES["dan_softplus"]))
    subs, _ = intake.prepare(klass, tmp_path / "work")
    write_code_similarity(subs, tmp_path / "out")
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "similarity" / "code.csv").read_text())))[1:]
    assert {(a, b) for a, b, _, flagged, _ in rows if flagged == "true"} == {
        ("bob_bce", "folder_student"), ("dan_softplus", "zip_student")}
    page = (tmp_path / "out" / "similarity" / "code.html").read_text()
    assert "helpers.py" in page and "my_solution.py" in page


def test_line_endings_do_not_matter_and_marks_land_on_the_code():
    from grader.similarity.page import marked_ranges

    text = "def f(a):\n    b = a + a * a - a\n    # note\n    return b + 1 + a * a\n"
    variants = [code_of([("s.py", t)])
                for t in (text, text.replace("\n", "\r\n"), "\x0c\n" + text.replace("\n", "\r"))]
    assert variants[0].fingerprints() == variants[1].fingerprints() == variants[2].fingerprints() != set()
    for code in variants:
        (name, shown), = code.files
        ranges = marked_ranges(code, {h for u in code.units for h in u.kgrams})[0]
        assert [shown[s:e].strip() for s, e in ranges] == ["b = a + a * a - a\n    # note\n    return b + 1 + a * a"]


def test_columns_after_non_ascii_text_are_characters():
    text = 'a = "\u00e9\u00e9"; b = 1 + 2\ndef f(x):\n    y = "\u00fc" * x; return y\n'
    units = {u.name: u.tokens for u in file_units(text)}
    assert units == {"f": ("V", "=", "S", "*", "V", ";", "return", "V", ";"),
                     "<module>": ("V", "=", "S", ";", "V", "=", "N", "+", "N", ";")}
