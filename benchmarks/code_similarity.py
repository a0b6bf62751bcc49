"""Calibration of the code-similarity threshold (grader.similarity) on the example class.

    python benchmarks/code_similarity.py [--grid] [--out benchmarks/SIMILARITY.md]

The class is ``submissions/`` as the intake prepares it (parsed only, never run) plus, for each of
the seven independent correct styles (alice ... grace), a disguised copy made here with ``ast``:
every local name and argument renamed, docstrings and comments gone, the functions in reverse
order, the whole reformatted by ``ast.unparse``. Pairs are then:

- copies: a disguised copy with its original, and the pairs of the written-answer students who
  reuse alice's code (alice, nina, yara, zack, zoe, yves and the write-up entries): must be flagged;
- independent: every other pair (independent correct styles, independent mistakes, load errors),
  except a disguised copy with anything derived from its original: must not be flagged.

It prints (and with ``--out`` writes) the smallest copy score, the largest independent scores and
the false flags as "k of N pairs", for the module's K, W and THRESHOLD, and with ``--grid`` for
other k-gram lengths and windows.
"""
from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader import intake  # noqa: E402
from grader.similarity import fingerprints, pairs  # noqa: E402
from grader.similarity.collect import class_code  # noqa: E402

STYLES = ("alice_logsigmoid", "bob_bce", "carol_distributions", "dan_softplus", "erin_loops_float64",
          "frank_notebook", "grace_zip")
ALICE_REUSE = ("nina_docstring", "yara_answers", "zack_copied", "zoe_misheaded", "yves_html_injection",
               "amara_numbered_report", "bruno_pdf_report", "chloe_latex", "dmitri_scanned")


class _Rename(ast.NodeTransformer):
    """Renames every argument and every name a function assigns, inside that function."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        local = {a.arg for a in node.args.args + node.args.kwonlyargs}
        local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        table = {name: f"q{i}_{name[::-1]}" for i, name in enumerate(sorted(local))}
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in table:
                n.id = table[n.id]
            elif isinstance(n, ast.arg) and n.arg in table:
                n.arg = table[n.arg]
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        return node


def disguise(text: str) -> str:
    """The copy a student hiding it might hand in (see the module docstring)."""
    tree = _Rename().visit(ast.parse(text))
    heads = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    rest = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))
            and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    tree.body = heads + rest[::-1]
    return "# my own work\n" + ast.unparse(tree) + "\n"


def class_with_copies() -> dict[str, fingerprints.Code]:
    with tempfile.TemporaryDirectory() as tmp:
        subs, _ = intake.prepare(ROOT / "submissions", Path(tmp))
        codes = class_code(subs)
    for style in STYLES:
        files = codes[style].files
        codes[f"zz_copy_of_{style}"] = fingerprints.code_of([(n, disguise(t)) for n, t in files])
    return codes


def _kind(a: str, b: str) -> str:
    cluster = {"alice_logsigmoid", *ALICE_REUSE}
    for style in STYLES:
        copy = f"zz_copy_of_{style}"
        if copy in (a, b):
            other = b if a == copy else a
            if other == style:
                return "copy"
            if style == "alice_logsigmoid" and other in cluster:
                return "skip"  # a copy of alice's copies: neither a planted copy nor independent
            return "independent"
    return "copy" if a in cluster and b in cluster else "independent"


def measure(codes: dict[str, fingerprints.Code], template: fingerprints.Code) -> dict:
    """Every pair of the class by kind; a pair score_pairs leaves out (nothing shared) scores 0."""
    scored = {(p.a, p.b): p for p in pairs.score_pairs(codes, template)}
    every = [scored.get((a, b), pairs.PairScore(a, b, 0.0, False)) for a, b in combinations(sorted(codes), 2)]
    copies = [p for p in every if _kind(p.a, p.b) == "copy"]
    independent = [p for p in every if _kind(p.a, p.b) == "independent"]
    styles = [p for p in independent if p.a in STYLES and p.b in STYLES]
    return {"copies": copies, "independent": independent, "styles": styles}


def _line(k: int, w: int, m: dict) -> str:
    ind = m["independent"]
    top = max(p.similarity for p in ind)
    low = min(p.similarity for p in m["copies"])
    flagged = sum(p.flagged for p in ind)
    missed = sum(not p.flagged for p in m["copies"])
    styles = m["styles"]
    return (f"| {k} | {w} | {low:.3f} | {missed} of {len(m['copies'])} | {top:.3f} | {flagged} of {len(ind)} | "
            f"{max(p.similarity for p in styles):.3f} | {sum(p.flagged for p in styles)} of {len(styles)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    template_text = (ROOT / "assignment" / "template.py").read_text("utf-8")
    settings = [(fingerprints.K, fingerprints.W)]
    if args.grid:
        settings += [(k, w) for k in (6, 8, 10, 12, 15, 20) for w in (2, 4, 6, 8) if (k, w) != settings[0]]
    default_k, default_w = settings[0]
    lines = [f"| K | W | lowest copy | copies missed (< {pairs.THRESHOLD}) | highest independent | "
             f"independent flagged (>= {pairs.THRESHOLD}) | highest between correct styles | correct styles flagged |",
             "|---|---|---|---|---|---|---|---|"]
    first = None
    for k, w in settings:
        fingerprints.K, fingerprints.W = k, w
        codes = class_with_copies()
        template = fingerprints.code_of([("template.py", template_text)])
        m = measure(codes, template)
        first = first or m
        lines.append(_line(k, w, m))
        print(lines[-1], flush=True)
    fingerprints.K, fingerprints.W = default_k, default_w
    top = sorted(first["independent"], key=lambda p: -p.similarity)[:8]
    report = "\n".join(lines) + "\n\nHighest independent pairs at the module's settings:\n\n" + "\n".join(
        f"- {p.similarity:.3f} {p.a} / {p.b} ({', '.join(p.functions) or '-'})" for p in top) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report, "utf-8")


if __name__ == "__main__":
    main()
