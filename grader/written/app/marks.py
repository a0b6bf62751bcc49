"""The marking app's marks, as pure functions over the text of ``manual.csv`` and the item points.

``manual.csv`` (``grader.written.manual``) has an optional ``items`` column: the rubric items
ticked (conventions in ``grader.written.rubric_items``). The app writes ``points`` as the ticked
items' current points (capped at the question's), so a spreadsheet can read ``points`` alone;
the grading run checks that the two agree. Rows without ``items`` (typed by hand) stay valid and
are left as they are.

An item's points can be changed for one question (as Gradescope's rubric items): the change is
kept in ``OUT/rubric_items.json``, never in ``questions.toml``, and every row that ticked the item
is re-scored (``repoint``).

Each row has a *version* (a hash of its cells): the page carries the version it showed, and a
save whose row changed meanwhile (a second tab, a spreadsheet) is refused as a conflict instead of
overwriting it.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from decimal import Decimal

from grader.scoring import points_str
from grader.written import rubric_items
from grader.written.manual import _unquote, read_manual
from grader.written.pages import safe_cell

COLUMNS = ("student", "question", "points", "comment", "items")
ITEMS_NAME = rubric_items.ITEMS_NAME


@dataclass(frozen=True)
class Row:
    student: str
    question: str
    points: str
    comment: str
    items: str = ""

    @property
    def version(self) -> str:
        cells = "\x1f".join((self.student, self.question, self.points, self.comment, self.items))
        return hashlib.sha256(cells.encode("utf-8")).hexdigest()[:16]

    def ticked(self) -> list[int]:
        try:
            return rubric_items.parse_items(self.items)
        except rubric_items.ItemsError:
            return []


NO_ROW_VERSION = "none"   # the version of a row that does not exist yet


class Unreadable(Exception):
    """manual.csv has rows or columns the app would lose by writing it back: nothing is written."""


def parse(data: bytes | str) -> list[Row]:
    """The rows of ``manual.csv`` as the grading run reads them (``grader.written.manual.read_manual``:
    any column order, ``,``/``;``/tab, a BOM). Unreadable if that reader has anything to say about
    the file (an extra column, a row of the wrong shape, not UTF-8), since writing it back would drop
    what it could not read."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    if not data.strip():
        return []
    rows, problems = read_manual(data)
    if problems:
        raise Unreadable(f"{problems[0].message}. Fix manual.csv (or move it away), then reload")
    # a student cell as the template wrote it ('=x for =x: no formula in a spreadsheet) is the id
    return [Row(_unquote(r.student), r.question, r.points, r.comment, r.items) for r in rows]


def render(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([safe_cell(r.student), r.question, r.points, r.comment, r.items])
    return buf.getvalue()


def find(rows: list[Row], student: str, question: str) -> Row | None:
    return next((r for r in rows if r.student == student and r.question.upper() == question.upper()), None)


def version_of(rows: list[Row], student: str, question: str) -> str:
    row = find(rows, student, question)
    return row.version if row is not None else NO_ROW_VERSION


class Conflict(Exception):
    """The row changed since the page was shown: nothing was written."""

    def __init__(self, current: Row | None):
        super().__init__("this mark was changed meanwhile (in another tab or in manual.csv)")
        self.current = current


def item_points(rubric: list[dict], overrides: dict[str, str]) -> dict[int, Decimal]:
    """Each item's current points: the question's rubric (as in answers.json), with the changes kept in OUT."""
    return rubric_items.item_points([Decimal(item["points"]) for item in rubric], overrides)


def set_mark(text: bytes | str, student: str, question: str, ticked: list[int], comment: str, points: dict[int, Decimal],
             seen_version: str, maximum: Decimal) -> tuple[str, Row]:
    """``manual.csv``'s new text with the mark of (student, question) set; Conflict if its row is
    not the one the page showed (``seen_version``)."""
    rows = parse(text)
    current = find(rows, student, question)
    if (current.version if current else NO_ROW_VERSION) != seen_version:
        raise Conflict(current)
    unknown = [i for i in ticked if i not in points]
    if unknown:
        raise rubric_items.ItemsError(f"unknown rubric item(s) {unknown} for {question}")
    row = Row(student, question, points_str(rubric_items.score(ticked, points, maximum)), comment,
              rubric_items.format_items(ticked))
    rows = [r for r in rows if r is not current] + [row]
    rows.sort(key=lambda r: (r.student, r.question))
    return render(rows), row


def mark_missing(text: bytes | str, students: list[str], question: str, comment: str) -> tuple[str, int]:
    """``manual.csv``'s new text with 0 points and ``comment`` for each of ``students`` (those
    without an answer) who has no row for ``question`` yet; a row already there is kept as it is.
    ``(new text, rows added)``."""
    rows = parse(text)
    new = [Row(s, question, "0", comment) for s in sorted(set(students)) if find(rows, s, question) is None]
    return render(sorted(rows + new, key=lambda r: (r.student, r.question))), len(new)


def repoint(text: bytes | str, question: str, points: dict[int, Decimal], maximum: Decimal) -> tuple[str, int]:
    """Re-score every row of ``question`` that lists items, with the items' current ``points``;
    ``(new text, how many rows changed)``."""
    rows = parse(text)
    changed = 0
    out = []
    for r in rows:
        if r.question.upper() == question.upper() and r.items:
            new = points_str(rubric_items.score(r.ticked(), points, maximum))
            if new != r.points:
                r = Row(r.student, r.question, new, r.comment, r.items)
                changed += 1
        out.append(r)
    return render(out), changed
