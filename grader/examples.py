"""The example class's intended outcomes, as data: ``submissions/expected.toml``.

``python -m grader.examples`` prints the outcome tables of ``submissions/README.md`` (the code's,
and the written answers' matching); ``--write`` rewrites them there (each between its two
markers), ``--check`` exits 1 when the README's tables are not the ones generated from
``expected.toml``. ``tests/test_example_class.py`` grades the class and asserts every entry of
the file (``graded_outcome``, ``graded_written``).

The file, per student (every entry of ``submissions/``)::

    [henry_missing_half]
    status = "ok"             # the record's status
    total = "67"              # its score on code (exact decimal, as in scores.csv)
    functions.discriminator_loss = { points = "0", mistakes = ["missing_half"] }

A function not listed earns its full points and names no mistake; when nothing is graded
(``load_error``, ``conflict``) it earns 0 and names none. ``mistakes`` are the distinct diagnoses
of the function's failed checks, in the rubric's check order. ``gap`` (optional, per function)
says where the outcome the grader gives today differs from what the entry is meant to get; the
numbers are today's, so a fix of the grader shows up as a failing example-class test and an update
of the file.

The written answers, per question, as the marking pages and ``written/answers.json`` show them::

    [amara_numbered_report.written]
    Q1 = { how = "matched by number 1 under section I and the question's text", at = "report.md line 6" }
    Q3 = { how = "matched by number 3 under section I", at = "report.md line 31", flags = ["empty"] }
    Q2 = { flags = ["no_text_layer"] }        # no answer found, and why

``how`` and ``at`` (its location) say how the answer was matched and where it was found (both
absent: no answer); ``flags`` are the distinct kinds of the flags shown with it, sorted (flags of
the whole submission, such as a PDF without text, included; ``copied`` for a near-duplicate);
``copied`` the students whose answer is a near-duplicate of it, sorted. A question not listed
(every question, for a student without ``written``) has no answer: ``flags = ["missing"]``.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from grader.atomic import write_atomic
from grader.rubric import Rubric, load_rubric
from grader.scoring import points_str
from grader.written.questions import Questions, load_questions

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_TOML = ROOT / "submissions" / "expected.toml"
README = ROOT / "submissions" / "README.md"
BEGIN = "<!-- begin outcomes: generated from expected.toml by `python -m grader.examples --write`; do not edit -->"
END = "<!-- end outcomes -->"
WRITTEN_BEGIN = ("<!-- begin written: generated from expected.toml by `python -m grader.examples --write`; "
                 "do not edit -->")
WRITTEN_END = "<!-- end written -->"
NOTHING_GRADED = ("load_error", "conflict")
SHORT = {"discriminator_loss": "DL", "generator_loss": "GL", "reparameterize": "RP", "gaussian_kl": "KL",
         "bernoulli_log_likelihood": "BLL", "elbo": "ELBO", "chain_rule_log_likelihood": "CR", "FVBN": "FVBN",
         "train_gan": "TG"}


@dataclass(frozen=True)
class FunctionOutcome:
    points: str
    mistakes: tuple[str, ...] = ()
    gap: str = ""


@dataclass(frozen=True)
class WrittenOutcome:
    """One question's answer as the marking pages show it (see the module docstring)."""

    how: str = ""                  # how it was matched; "" when no answer was found
    at: str = ""                   # where: "report.md line 6", "bruno_pdf_report.pdf page 2, line 1"
    flags: tuple[str, ...] = ()    # distinct flag kinds, sorted
    copied: tuple[str, ...] = ()   # near-duplicates: the other students, sorted


NO_ANSWER = WrittenOutcome(flags=("missing",))
WRITTEN_KEYS = {"how", "at", "flags", "copied"}


@dataclass(frozen=True)
class StudentOutcome:
    status: str
    total: str
    functions: dict[str, FunctionOutcome]   # every graded function of the rubric, in rubric order
    written: dict[str, WrittenOutcome] | None = None   # every question, in order (None: not compared)


def _written_outcome(where: str, spec: dict) -> WrittenOutcome:
    if not isinstance(spec, dict) or set(spec) - WRITTEN_KEYS:
        raise ValueError(f"{where}: expected a table of {sorted(WRITTEN_KEYS)}, got {spec!r}")
    outcome = WrittenOutcome(str(spec.get("how", "")), str(spec.get("at", "")), tuple(spec.get("flags", ())),
                             tuple(spec.get("copied", ())))
    if bool(outcome.how) != bool(outcome.at):
        raise ValueError(f"{where}: an answer has both `how` and `at`, no answer neither")
    if list(outcome.flags) != sorted(set(outcome.flags)) or list(outcome.copied) != sorted(set(outcome.copied)):
        raise ValueError(f"{where}: `flags` and `copied` are sorted and distinct")
    return outcome


def load_expected(path: Path = EXPECTED_TOML, rubric: Rubric | None = None,
                  questions: Questions | None = None) -> dict[str, StudentOutcome]:
    """Every student's intended outcome, each function filled in (full points, or 0 when nothing
    is graded) and each written question (no answer, unless listed); raises ValueError for an
    unknown key, function or question, or a total that is not the sum."""
    rubric = rubric or load_rubric()
    questions = questions or load_questions()
    raw = tomllib.loads(Path(path).read_text("utf-8"))
    out: dict[str, StudentOutcome] = {}
    for student, entry in raw.items():
        listed_written = entry.get("written", {})
        if set(listed_written) - set(questions.ids()):
            raise ValueError(f"{path}: [{student}.written]: unknown questions "
                             f"{sorted(set(listed_written) - set(questions.ids()))}")
        written = {q: _written_outcome(f"{path}: [{student}.written] {q}", listed_written[q])
                   if q in listed_written else NO_ANSWER for q in questions.ids()}
        unknown = set(entry) - {"status", "total", "functions", "written"}
        listed = entry.get("functions", {})
        if unknown or set(listed) - set(rubric.points):
            raise ValueError(f"{path}: [{student}]: unknown keys or functions {sorted(unknown | (set(listed) - set(rubric.points)))}")
        functions = {}
        for fn in rubric.points:
            spec = listed.get(fn, {})
            if set(spec) - {"points", "mistakes", "gap"}:
                raise ValueError(f"{path}: [{student}] {fn}: unknown keys {sorted(set(spec) - {'points', 'mistakes', 'gap'})}")
            default = "0" if entry["status"] in NOTHING_GRADED else points_str(rubric.max_score(fn))
            functions[fn] = FunctionOutcome(str(spec.get("points", default)), tuple(spec.get("mistakes", ())),
                                            str(spec.get("gap", "")))
        total = points_str(sum((Decimal(f.points) for f in functions.values()), Decimal(0)))
        if total != str(entry["total"]):
            raise ValueError(f"{path}: [{student}]: total {entry['total']} but its functions add up to {total}")
        out[student] = StudentOutcome(str(entry["status"]), str(entry["total"]), functions, written)
    return out


def graded_outcome(record: dict, rubric: Rubric | None = None) -> StudentOutcome:
    """A graded record (``results/<student>.json``) in the terms of ``expected.toml`` (``gap``
    left empty: it is not something the grader says)."""
    rubric = rubric or load_rubric()
    functions = {}
    for fn in rubric.points:
        mistakes: list[str] = []
        for c in record["checks"]:
            if c["function"] == fn and not c["passed"] and c["diagnosis"] and c["diagnosis"] not in mistakes:
                mistakes.append(c["diagnosis"])
        functions[fn] = FunctionOutcome(record["functions"].get(fn, {}).get("score", "0"), tuple(mistakes))
    return StudentOutcome(record["status"], record["score"], functions)


def graded_written(answers_json: dict) -> dict[str, dict[str, WrittenOutcome]]:
    """The written answers of a grading (``written/answers.json``, not anonymous) in the terms of
    ``expected.toml``: student -> question id -> outcome."""
    out: dict[str, dict[str, WrittenOutcome]] = {}
    for q in answers_json["questions"]:
        copied: dict[str, set[str]] = {}
        for pair in q["near_duplicates"]:
            copied.setdefault(pair["a"], set()).add(pair["b"])
            copied.setdefault(pair["b"], set()).add(pair["a"])
        for a in q["answers"]:
            out.setdefault(a["student"], {})[q["id"]] = WrittenOutcome(
                a["how"], a["source"]["location"], tuple(sorted({f["kind"] for f in a["flags"]})),
                tuple(sorted(copied.get(a["student"], ()))))
        for w in q["without_answer"]:
            out.setdefault(w["student"], {})[q["id"]] = WrittenOutcome(flags=tuple(sorted({f["kind"] for f in w["flags"]})))
    return out


def _written_cell(w: WrittenOutcome) -> str:
    if not w.how:
        return "no answer" + (f" ({', '.join(f'`{f}`' for f in w.flags)})" if w.flags != ("missing",) else "")
    how = w.how.removeprefix("matched by ")
    flags = [f for f in w.flags if f != "copied"]
    return (f"{how} · {w.at.replace('|', '/')}" + (f" · {', '.join(f'`{f}`' for f in flags)}" if flags else "")
            + (f" · near-duplicate of {', '.join(f'`{c}`' for c in w.copied)}" if w.copied else ""))


def written_table(expected: dict[str, StudentOutcome], questions: Questions | None = None) -> str:
    """The Markdown table of the written answers' intended matching, one row per student with an
    answer (how each answer is matched, where, its flags); the others have no answers at all."""
    questions = questions or load_questions()
    ids = questions.ids()
    lines = ["| entry | " + " | ".join(ids) + " |", "|---|" + "---|" * len(ids)]
    silent = []
    for student in sorted(expected):
        written = expected[student].written or {}
        if all(written.get(q, NO_ANSWER) == NO_ANSWER for q in ids):
            silent.append(student)
            continue
        lines.append(f"| `{student}` | " + " | ".join(_written_cell(written[q]) for q in ids) + " |")
    lines += ["", f"No written answers (every question `missing`): {', '.join(f'`{s}`' for s in silent)}."]
    return "\n".join(lines)


def outcome_table(expected: dict[str, StudentOutcome], rubric: Rubric | None = None) -> str:
    """The Markdown table of ``submissions/README.md``: status, total, points per function (full
    marks as a dot) and the named mistakes, one row per student."""
    rubric = rubric or load_rubric()
    fns = list(rubric.points)
    head = ["entry", "status", "total", *[f"{SHORT.get(fn, fn)} ({points_str(rubric.max_score(fn))})" for fn in fns],
            "named mistakes (failed checks' diagnoses)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for student in sorted(expected):
        e = expected[student]
        cells = [f"`{student}`", e.status, f"**{e.total}**"]
        for fn in fns:
            f = e.functions[fn]
            full = f.points == points_str(rubric.max_score(fn)) and not f.mistakes
            cells.append("·" if full and not f.gap else f.points + ("*" if f.gap else ""))
        named = "; ".join(f"{SHORT.get(fn, fn)}: {', '.join(f'`{m}`' for m in f.mistakes)}"
                          for fn, f in e.functions.items() if f.mistakes)
        lines.append("| " + " | ".join([*cells, named]) + " |")
    gaps = [f"- `{student}`, {SHORT.get(fn, fn)}: {f.gap}" for student in sorted(expected)
            for fn, f in expected[student].functions.items() if f.gap]
    if gaps:
        lines += ["", "\\* the grader's outcome today, which differs from what the entry is meant to get:", "", *gaps]
    return "\n".join(lines)


def readme_with_table(readme: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """``readme`` with the text between the markers ``begin`` and ``end`` replaced by ``table``."""
    start, stop = readme.index(begin) + len(begin), readme.index(end)
    return readme[:start] + "\n" + table + "\n" + readme[stop:]


def readme_with_tables(readme: str, expected: dict[str, StudentOutcome]) -> str:
    """``readme`` with both generated tables (the code's outcomes, the written answers') rewritten."""
    readme = readme_with_table(readme, outcome_table(expected))
    return readme_with_table(readme, written_table(expected), WRITTEN_BEGIN, WRITTEN_END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.examples", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help=f"rewrite the tables in {README.relative_to(ROOT)}")
    what.add_argument("--check", action="store_true", help="exit 1 when the README's tables are out of date")
    args = parser.parse_args(argv)
    expected = load_expected()
    if not (args.write or args.check):
        print(outcome_table(expected) + "\n\n" + written_table(expected))
        return 0
    readme = README.read_text("utf-8")
    wanted = readme_with_tables(readme, expected)
    if args.check:
        if wanted != readme:
            print(f"{README.relative_to(ROOT)}: the outcome tables are not the ones generated from "
                  f"{EXPECTED_TOML.relative_to(ROOT)}: run python -m grader.examples --write", file=sys.stderr)
            return 1
        return 0
    if wanted != readme:
        write_atomic(README, wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
