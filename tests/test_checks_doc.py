"""grader/checks/CHECKS.md stays complete: its table has exactly one row per graded check of the
rubric's ``[points.*]``, with the rubric's points, and names no check the rubric does not grade.

Cheap: reads two text files (no torch, no grader import)."""
from __future__ import annotations

import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "grader" / "rubric.toml"
DOC = ROOT / "grader" / "checks" / "CHECKS.md"
SECTION = "## The checks"

_ROW = re.compile(r"^\|\s*`(?P<function>[^`|]+)`\s*\|\s*`(?P<check>[^`|]+)`\s*\|\s*(?P<points>[^|]*?)\s*\|")


def rubric_points(text: str) -> dict[tuple[str, str], Decimal]:
    raw = tomllib.loads(text)
    return {(fn, check): Decimal(str(p)) for fn, checks in raw["points"].items() for check, p in checks.items()}


def table_rows(doc: str) -> list[tuple[str, str, str]]:
    """(function, check, points cell) of every row of the table under ``SECTION``."""
    lines = doc.splitlines()
    start = lines.index(SECTION) + 1          # ValueError (the test fails) when the section is gone
    rows = []
    for line in lines[start:]:
        if line.startswith("## "):
            break
        m = _ROW.match(line)
        if m:
            rows.append((m["function"], m["check"], m["points"]))
    return rows


def problems(doc: str, rubric: dict[tuple[str, str], Decimal]) -> list[str]:
    out = []
    seen: dict[tuple[str, str], int] = {}
    for function, check, points in table_rows(doc):
        key = (function, check)
        seen[key] = seen.get(key, 0) + 1
        if key not in rubric:
            out.append(f"row {function}/{check}: the rubric grades no such check")
            continue
        try:
            if Decimal(points) != rubric[key]:
                out.append(f"row {function}/{check}: points {points}, the rubric's {rubric[key]}")
        except InvalidOperation:
            out.append(f"row {function}/{check}: points {points!r} is not a number")
    out += [f"row {f}/{c} appears {n} times" for (f, c), n in seen.items() if n > 1]
    out += [f"{f}/{c} (rubric) has no row" for f, c in rubric if (f, c) not in seen]
    return out


def test_every_graded_check_has_exactly_one_row_and_no_row_names_an_unknown_check():
    rubric = rubric_points(RUBRIC.read_text("utf-8"))
    assert rubric, "the rubric lists no checks"
    assert problems(DOC.read_text("utf-8"), rubric) == []


def test_the_completeness_test_fails_for_a_removed_or_an_invented_row():
    """The checker is not vacuous: dropping any one row, or adding a row for a check the rubric
    does not grade, is reported."""
    rubric = rubric_points(RUBRIC.read_text("utf-8"))
    doc = DOC.read_text("utf-8")
    rows = [line for line in doc.splitlines() if _ROW.match(line)]
    assert len(rows) == len(rubric)
    for line in rows:
        f, c = _ROW.match(line)["function"], _ROW.match(line)["check"]
        without = doc.replace(line + "\n", "", 1)
        assert problems(without, rubric) == [f"{f}/{c} (rubric) has no row"]
    invented = doc.replace(rows[0] + "\n", rows[0] + "\n| `FVBN` | `sample_quality` | 1 | x | y | z |\n", 1)
    assert problems(invented, rubric) == ["row FVBN/sample_quality: the rubric grades no such check"]
