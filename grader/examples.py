"""The example class's intended outcomes, as data: ``submissions/expected.toml``.

``python -m grader.examples`` prints the outcome table of ``submissions/README.md``;
``--write`` rewrites it there (between its two markers), ``--check`` exits 1 when the README's
table is not the one generated from ``expected.toml``. ``tests/test_example_class.py`` grades the
class and asserts every entry of the file (``graded_outcome``).

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
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from grader.rubric import Rubric, load_rubric
from grader.scoring import points_str

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_TOML = ROOT / "submissions" / "expected.toml"
README = ROOT / "submissions" / "README.md"
BEGIN = "<!-- begin outcomes: generated from expected.toml by `python -m grader.examples --write`; do not edit -->"
END = "<!-- end outcomes -->"
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
class StudentOutcome:
    status: str
    total: str
    functions: dict[str, FunctionOutcome]   # every graded function of the rubric, in rubric order


def load_expected(path: Path = EXPECTED_TOML, rubric: Rubric | None = None) -> dict[str, StudentOutcome]:
    """Every student's intended outcome, each function filled in (full points, or 0 when nothing
    is graded); raises ValueError for an unknown key or function, or a total that is not the sum."""
    rubric = rubric or load_rubric()
    raw = tomllib.loads(Path(path).read_text("utf-8"))
    out: dict[str, StudentOutcome] = {}
    for student, entry in raw.items():
        unknown = set(entry) - {"status", "total", "functions"}
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
        out[student] = StudentOutcome(str(entry["status"]), str(entry["total"]), functions)
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


def readme_with_table(readme: str, table: str) -> str:
    """``readme`` with the text between its markers replaced by ``table``."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.examples", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help=f"rewrite the table in {README.relative_to(ROOT)}")
    what.add_argument("--check", action="store_true", help="exit 1 when the README's table is out of date")
    args = parser.parse_args(argv)
    table = outcome_table(load_expected())
    if not (args.write or args.check):
        print(table)
        return 0
    readme = README.read_text("utf-8")
    wanted = readme_with_table(readme, table)
    if args.check:
        if wanted != readme:
            print(f"{README.relative_to(ROOT)}: the outcome table is not the one generated from "
                  f"{EXPECTED_TOML.relative_to(ROOT)}: run python -m grader.examples --write", file=sys.stderr)
            return 1
        return 0
    if wanted != readme:
        README.write_text(wanted, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
