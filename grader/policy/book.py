"""A run's late policy with its submission times and extensions: read once, applied to each result.

Inputs (each optional but the policy):

* the policy file (``grader.policy.late``), copied into ``OUT/late_policy.toml`` by the grading run
  (so that ``regrade``, ``report`` and ``export-lms`` apply the same one) with its sha256 recorded
  in every result;
* ``--submitted-at FILE``: CSV ``student,submitted_at`` (times with an offset; one without is a bad row);
* ``--extensions FILE``: CSV ``student,extra_days`` or ``student,deadline``;
* Gradescope's ``submission_metadata.json`` (``created_at``), passed as ``times`` by the container
  mode;
* a Canvas download name marked ``_LATE`` carries no time: the student is listed "late, time
  unknown" for the TA to decide, and graded without penalty, as is every student with no known time.

A ``student`` cell is a grader id, or a Canvas user id matched to the Canvas download names
(``grader.intake.names``), as ``export-lms`` matches them. Bad rows and unknown students are
problems, listed in ``OUT/late.txt``, never dropped in silence.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from grader.intake.names import parse_canvas_name
from grader.policy.late import LatePolicy, PolicyError, deadline_for, late_days, parse_policy, parse_time, penalty
from grader.results import StudentResult
from grader.scoring import points_str

POLICY_NAME = "late_policy.toml"
PROBLEMS_NAME = "late.txt"


def _rows(data: bytes, label: str, columns: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """The data rows of a small CSV as dicts of the wanted columns present; problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [f"{label}: not UTF-8: nothing was read"]
    reader = csv.reader(io.StringIO(text, newline=""))
    records = list(reader)
    if not records:
        return [], [f"{label} is empty"]
    header = [name.strip().lower() for name in records[0]]
    if "student" not in header or not any(c in header for c in columns):
        return [], [f"{label}: the header {records[0]!r} needs the columns student and {' or '.join(columns)}"]
    out = []
    for number, fields in enumerate(records[1:], start=2):
        if not any(f.strip() for f in fields):
            continue
        out.append((number, {name: (fields[i].strip() if i < len(fields) else "") for i, name in enumerate(header)}))
    return out, []


class _Resolver:
    """A student cell to grader ids: the id itself, else every id with that Canvas user id."""

    def __init__(self, students: list[str]):
        self.ids = set(students)
        self.by_canvas: dict[str, list[str]] = {}
        for s in sorted(students):
            parsed = parse_canvas_name(s)
            if parsed:
                self.by_canvas.setdefault(parsed[1], []).append(s)

    def __call__(self, cell: str) -> list[str]:
        if cell in self.ids:
            return [cell]
        return self.by_canvas.get(cell, [])


@dataclass
class LateBook:
    """What is known of each student's lateness, and the problems found reading it."""

    policy: LatePolicy
    policy_sha256: str
    times: dict[str, datetime] = field(default_factory=dict)
    extensions: dict[str, timedelta | datetime] = field(default_factory=dict)
    flagged_late: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, policy_text: str, students: list[str], *, submitted_at: bytes | None = None,
             extensions: bytes | None = None, times: dict[str, str] | None = None) -> "LateBook":
        """Raises PolicyError for a bad policy; everything else is a listed problem."""
        book = cls(parse_policy(policy_text), hashlib.sha256(policy_text.encode("utf-8")).hexdigest())
        resolve = _Resolver(students)
        for student, text in sorted((times or {}).items()):
            try:
                book.times[student] = parse_time(text, f"the submission time of {student}")
            except PolicyError as error:
                book.problems.append(str(error))
        if submitted_at is not None:
            for line, row, who in book._rows_of(submitted_at, "--submitted-at", ("submitted_at",), resolve):
                try:
                    moment = parse_time(row.get("submitted_at", ""), "submitted_at")
                except PolicyError as error:
                    book.problems.append(f"--submitted-at line {line}: {error}: not applied")
                    continue
                for s in who:
                    book.times[s] = moment
        if extensions is not None:
            for line, row, who in book._rows_of(extensions, "--extensions", ("extra_days", "deadline"), resolve):
                try:
                    if row.get("deadline"):
                        extension: timedelta | datetime = parse_time(row["deadline"], "deadline")
                    else:
                        days = Decimal(row.get("extra_days", ""))
                        if not days.is_finite() or days < 0:
                            raise PolicyError(f"extra_days {row.get('extra_days')!r} must be a number >= 0")
                        extension = timedelta(days=float(days))
                except (PolicyError, InvalidOperation) as error:
                    why = error if isinstance(error, PolicyError) else f"extra_days {row.get('extra_days')!r} is not a number"
                    book.problems.append(f"--extensions line {line}: {why}: not applied")
                    continue
                for s in who:
                    book.extensions[s] = extension
        book.flagged_late = {s for s in students if (parsed := parse_canvas_name(s)) and parsed[2]}
        for s in sorted(students):
            if s in book.times:
                continue
            if s in book.flagged_late:
                book.problems.append(f"{s}: late, time unknown (the Canvas download marks it late): graded without "
                                     "penalty; give its time in --submitted-at to apply the policy")
            else:
                book.problems.append(f"{s}: no submission time: graded without penalty")
        return book

    def _rows_of(self, data: bytes, label: str, columns: tuple[str, ...], resolve: _Resolver):
        """``(line, row, grader ids)`` of each row naming known students; the rest are problems."""
        rows, problems = _rows(data, label, columns)
        self.problems += problems
        for line, row in rows:
            who = resolve(row.get("student", ""))
            if who:
                yield line, row, who
            else:
                self.problems.append(f"{label} line {line}: unknown student {row.get('student')!r}: not applied")

    def lateness(self, student: str, earned: Decimal) -> dict:
        """The ``late`` record of a result (``grader.results``)."""
        deadline = deadline_for(self.policy, self.extensions.get(student))
        submitted = self.times.get(student)
        days = late_days(submitted, deadline, self.policy.grace_minutes) if submitted is not None else 0
        taken = penalty(earned, days, self.policy)
        if submitted is None:
            note = "late, time unknown" if student in self.flagged_late else "no submission time"
        elif days == 0:
            note = "on time"
        elif self.policy.max_late_days is not None and days > self.policy.max_late_days:
            note = f"{days} days late, more than {self.policy.max_late_days}: score 0"
        else:
            note = f"{days} day{'s' if days != 1 else ''} late: {points_str(self.policy.penalty_percent_per_day)}% per day"
        return {"policy_sha256": self.policy_sha256, "submitted_at": submitted.isoformat() if submitted else None,
                "deadline": deadline.isoformat(), "late_days": days, "penalty": str(taken), "note": note}

    def apply(self, result: StudentResult) -> StudentResult:
        """``result`` with its ``late`` record computed from its earned score (after marks)."""
        return replace(result, late=self.lateness(result.student, result.score))


def read_if_given(path: Path | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None
