"""The marking app's marks, as pure functions over the text of ``manual.csv`` and the item points.

``manual.csv`` (``grader.written.manual``) gains an optional ``items`` column: the rubric items
ticked, by number, separated by ``;`` (``1;3``). The app writes ``points`` as the sum of the ticked
items' current points, so every reader of ``manual.csv`` (the grading run's merge, a spreadsheet)
needs only ``points``; ``items`` says how they were reached. Rows without ``items`` (typed by hand)
stay valid and are left as they are.

An item's points can be changed for one question (as Gradescope's rubric items): the change is
kept in ``OUT/rubric_items.json`` (``{question: {item number: points}}``), never in
``questions.toml``, and every row that ticked the item is re-scored.

Each row has a *version* (a hash of its cells): the page carries the version it showed, and a
save whose row changed meanwhile (a second tab, a spreadsheet) is refused as a conflict instead of
overwriting it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from grader.scoring import points_str

COLUMNS = ("student", "question", "points", "comment", "items")
ITEMS_NAME = "rubric_items.json"


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
        return [int(part) for part in self.items.split(";") if part.strip().isdigit()]


NO_ROW_VERSION = "none"   # the version of a row that does not exist yet


def parse(text: str) -> tuple[list[str], list[Row]]:
    """The header and the rows of ``manual.csv`` (any column order; other columns are dropped
    when the app writes the file back, as they are ignored when it is read)."""
    records = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    if not records:
        return list(COLUMNS), []
    header = [name.strip().lower() for name in records[0]]
    where = {name: header.index(name) for name in COLUMNS if name in header}
    rows = []
    for fields in records[1:]:
        if not any(f.strip() for f in fields):
            continue
        cell = lambda name: fields[where[name]] if name in where and where[name] < len(fields) else ""  # noqa: E731
        rows.append(Row(cell("student"), cell("question").strip(), cell("points").strip(), cell("comment"),
                        cell("items").strip()))
    return header, rows


def render(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.student, r.question, r.points, r.comment, r.items])
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
    """Each item's current points: the question's rubric, with the changes kept in OUT."""
    return {int(item["item"]): Decimal(overrides.get(str(item["item"]), item["points"])) for item in rubric}


def score(ticked: list[int], points: dict[int, Decimal]) -> Decimal:
    return sum((points[i] for i in ticked if i in points), Decimal(0))


def set_mark(text: str, student: str, question: str, ticked: list[int], comment: str, points: dict[int, Decimal],
             seen_version: str) -> tuple[str, Row]:
    """``manual.csv``'s new text with the mark of (student, question) set; Conflict if its row is
    not the one the page showed (``seen_version``)."""
    _, rows = parse(text)
    current = find(rows, student, question)
    if (current.version if current else NO_ROW_VERSION) != seen_version:
        raise Conflict(current)
    unknown = [i for i in ticked if i not in points]
    if unknown:
        raise ValueError(f"unknown rubric item(s) {unknown} for {question}")
    ticked = sorted(set(ticked))
    row = Row(student, question, points_str(score(ticked, points)), comment, ";".join(map(str, ticked)))
    rows = [r for r in rows if r is not current] + [row]
    rows.sort(key=lambda r: (r.student, r.question))
    return render(rows), row


def repoint(text: str, question: str, points: dict[int, Decimal]) -> tuple[str, int]:
    """Re-score every row of ``question`` that lists items, with the items' current ``points``;
    ``(new text, how many rows changed)``."""
    _, rows = parse(text)
    changed = 0
    out = []
    for r in rows:
        if r.question.upper() == question.upper() and r.items:
            new = points_str(score(r.ticked(), points))
            if new != r.points:
                r = Row(r.student, r.question, new, r.comment, r.items)
                changed += 1
        out.append(r)
    return render(out), changed


def load_overrides(text: str | None) -> dict[str, dict[str, str]]:
    if not text:
        return {}
    data = json.loads(text)
    return {str(q): {str(k): str(Decimal(str(v))) for k, v in items.items()} for q, items in data.items()}


def dump_overrides(overrides: dict[str, dict[str, str]]) -> str:
    return json.dumps(overrides, indent=1, sort_keys=True) + "\n"


def parse_points(text: str, maximum: Decimal) -> Decimal:
    """An item's new points: a decimal between 0 and the question's points."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value > maximum:
        raise ValueError(f"points must be between 0 and {points_str(maximum)}")
    return value
