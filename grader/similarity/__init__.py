"""Code similarity between students: ``OUT/similarity/code.csv`` and ``OUT/similarity/code.html``.

The package, by concern:

- ``fingerprints``: one submission's code as units (functions, methods, module-level code), each a
  normalised token stream (identifiers, literals, comments, docstrings, layout and the contract's
  signatures do not count), winnowed into fingerprints; pure;
- ``pairs``: the class's fingerprints weighed (the starter template excluded, what most of the
  class shares not weighed) and every pair scored and flagged; pure;
- ``page``: the CSV and the side-by-side HTML page; pure;
- ``collect``: the code of each prepared submission, read from its private copy (never run).

``write_code_similarity`` is the entry point (``write_for_run`` in a grading run, once per run, after the
intake and before any work folder goes away). Its outputs depend only on the submissions' code, the
template and the anonymity secret, so they are byte-identical across runs and worker counts.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from grader.atomic import write_atomic
from grader.escape import clean_text
from grader.intake import Submission
from grader.similarity.collect import class_code
from grader.similarity.fingerprints import code_of
from grader.similarity.page import code_csv, code_html
from grader.similarity.pairs import score_pairs

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "assignment" / "template.py"
FOLDER = "similarity"


@dataclass(frozen=True)
class SimilaritySummary:
    """What a run wrote: submissions with code, pairs compared (n(n-1)/2), pairs listed (those
    sharing a weighed fingerprint), flagged pairs."""

    submissions: int
    pairs: int
    listed: int
    flagged: int

    def summary_line(self) -> str:
        return (f"code similarity: {self.flagged} of {self.pairs} pairs flagged "
                f"({self.submissions} submissions with code): {FOLDER}/code.html")


def write_code_similarity(submissions: list[Submission], out_dir: Path, anonymous: bool = False,
                          secret: bytes = b"", template: Path | None = DEFAULT_TEMPLATE) -> SimilaritySummary:
    """Compare every prepared submission's code and write ``OUT/similarity/code.{csv,html}``.

    With ``anonymous``, students appear only as their codes (``grader.written.anonymity``, keyed by
    ``secret``). ``template``: the starter file whose code is excluded (None: nothing excluded)."""
    codes = class_code(submissions)
    shown = {s: s for s in codes}
    if anonymous:
        from grader.written.anonymity import code_table

        shown = code_table(codes, secret)
    base = None
    if template is not None and Path(template).is_file():
        base = code_of([(Path(template).name, Path(template).read_text("utf-8"))])
    scores = score_pairs(codes, base, shown)
    folder = Path(out_dir) / FOLDER
    write_atomic(folder / "code.csv", code_csv(scores))
    write_atomic(folder / "code.html", code_html(scores, {shown[s]: c for s, c in codes.items()}, anonymous))
    n = len(codes)
    return SimilaritySummary(n, n * (n - 1) // 2, len(scores), sum(p.flagged for p in scores))


def write_for_run(submissions: list[Submission], out_dir: Path, anonymous: bool,
                  secret: bytes) -> SimilaritySummary | None:
    """``write_code_similarity`` for a grading run: a failure (a grader bug) costs these two files
    only, never the class's grades: it is reported on stderr and no stale file is left behind."""
    try:
        return write_code_similarity(submissions, out_dir, anonymous, secret)
    except Exception as exc:  # noqa: BLE001
        for name in ("code.csv", "code.html"):
            (Path(out_dir) / FOLDER / name).unlink(missing_ok=True)
        print(f"error: code similarity not written: {type(exc).__name__}: {clean_text(exc, 300)}", file=sys.stderr)
        return None
