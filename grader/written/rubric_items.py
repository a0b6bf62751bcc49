"""Marking by rubric item, as Gradescope does (pure functions; the caller reads and writes files).

Conventions:

* a question's rubric items are numbered from 1 in ``questions.toml`` order;
* ``manual.csv``'s optional ``items`` cell lists the items ticked, by number, separated by ``;``
  (``1;3``; spaces allowed; an empty cell: no items, a mark typed by hand);
* an item's points can be changed for one question; the changes live in ``OUT/rubric_items.json``
  (``{"Q1": {"2": "1.5"}}``: question, item number, points as a decimal string), beside
  ``manual.csv``, never in ``questions.toml``;
* a mark with items is worth the sum of the ticked items' *current* points (after the changes),
  capped at the question's points (changed items may add up to more). ``points`` in the row must
  agree with that sum, or be empty (then the sum is the mark); a row whose points disagree is a
  reported problem, not applied, since which of the two the TA meant is unknown. The marking app
  writes both and re-scores every row when an item changes, so its rows always agree.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

ITEMS_NAME = "rubric_items.json"

Overrides = dict[str, dict[str, str]]     # question id -> item number (str) -> points (decimal str)


class ItemsError(ValueError):
    """An ``items`` cell or an item's new points that cannot be used (the message says why)."""


def parse_items(cell: str, known: Sequence[int] | None = None) -> list[int]:
    """The item numbers of an ``items`` cell, sorted, once each. ItemsError for a part that is not
    a number, or (with ``known``) an item the question does not have."""
    numbers = set()
    for part in cell.split(";"):
        part = part.strip()
        if not part:
            continue
        if not part.isdecimal() or not part.isascii():
            raise ItemsError(f"rubric item {part!r} is not an item number (write e.g. 1;3)")
        numbers.add(int(part))
    if known is not None:
        unknown = sorted(numbers - set(known))
        if unknown:
            raise ItemsError(f"unknown rubric item(s) {', '.join(map(str, unknown))} (the question has "
                             f"items {', '.join(map(str, known))})")
    return sorted(numbers)


def format_items(ticked: Sequence[int]) -> str:
    return ";".join(str(i) for i in sorted(set(ticked)))


def item_points(base: Sequence[Decimal], overrides: Mapping[str, str] | None = None) -> dict[int, Decimal]:
    """Each item's current points: ``base`` (the rubric's, item 1 first) with a question's changes."""
    overrides = overrides or {}
    return {n: Decimal(overrides.get(str(n), base[n - 1])) for n in range(1, len(base) + 1)}


def score(ticked: Sequence[int], points: Mapping[int, Decimal], maximum: Decimal | None = None) -> Decimal:
    """The sum of the ticked items' points, capped at ``maximum`` when given."""
    total = sum((points[i] for i in set(ticked) if i in points), Decimal(0))
    return min(total, maximum) if maximum is not None else total


def parse_points(text: str, maximum: Decimal) -> Decimal:
    """An item's new points: a decimal between 0 and the question's points."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ItemsError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value > maximum:
        raise ItemsError(f"points must be between 0 and {maximum.normalize():f}")
    return value


def load_overrides(text: str | None) -> Overrides:
    """``rubric_items.json``'s text (None or empty: no changes); ItemsError if it is not such a file."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError("not an object of objects")
        out = {}
        for qid, items in data.items():
            out[str(qid)] = {}
            for n, value in items.items():
                points = Decimal(str(value))
                if not str(n).isdecimal() or not points.is_finite() or points < 0:
                    raise ValueError(f"{qid} item {n}: {value!r}")
                out[str(qid)][str(int(n))] = str(points)
        return out
    except (ValueError, InvalidOperation) as error:
        raise ItemsError(f"{ITEMS_NAME} is not a file of item points ({error})") from None


def dump_overrides(overrides: Overrides) -> str:
    """Deterministic text (sorted keys, items in numeric order)."""
    ordered = {q: {n: overrides[q][n] for n in sorted(overrides[q], key=int)} for q in sorted(overrides)}
    return json.dumps(ordered, indent=1) + "\n"
