"""What the class-wide files need of each result, and no more: a compact row per student.

``scores.csv`` and the class summary are built from every student's result; holding every
``StudentResult`` of a class of 10,000 (each with its checks' messages, expected and got values)
would make the grader's memory grow with the class. A ``ResultRow`` keeps the student's id,
status, points per function and, per check, only whether it passed and its diagnosis; the check
names are one tuple shared by every row of the same rubric. ``ResultRow`` offers the attributes
``grader.reports.scores_csv`` and ``class_summary`` read (``student``, ``status``, ``score``,
``max_score``, ``functions()``, ``checks``; ``tampering`` for ``grader.reports.suspected_tampering``),
so those functions take rows or results alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from grader.results import StudentResult
from grader.scoring import points_str

_SHARED: dict[tuple, tuple] = {}   # one tuple object per distinct sequence of check names


class CheckRow(NamedTuple):
    """One check as the summaries see it."""

    function: str
    name: str
    passed: bool
    diagnosis: str | None


@dataclass(frozen=True)
class ResultRow:
    """One student's line in the class-wide files. ``passed`` is a bit mask over ``keys``
    (bit i set: check i passed); ``diagnoses`` maps the index of a failed check to its diagnosis."""

    student: str
    status: str
    score: Decimal
    max_score: Decimal
    function_points: tuple[tuple[str, str, str], ...]    # (function, score, max_score), rubric order
    keys: tuple[tuple[str, str], ...]                    # (function, check name), shared between rows
    passed: int
    diagnoses: tuple[tuple[int, str], ...]
    total: Decimal | None = None                         # after the late penalty (None: the score)
    late_days: int = 0
    late_penalty: Decimal = Decimal(0)
    tampering: tuple[str, ...] = ()                      # sandbox.suspected_tampering: TA information only

    @classmethod
    def of(cls, result: StudentResult) -> "ResultRow":
        keys = tuple((c.function, c.name) for c in result.checks)
        keys = _SHARED.setdefault(keys, keys)
        passed = sum(1 << i for i, c in enumerate(result.checks) if c.passed)
        diagnoses = tuple((i, c.diagnosis) for i, c in enumerate(result.checks) if c.diagnosis and not c.passed)
        functions = tuple((fn, d["score"], d["max_score"]) for fn, d in result.functions().items())
        tampering = tuple(str(item) for item in (result.sandbox or {}).get("suspected_tampering") or ())
        return cls(result.student, result.status, result.score, result.max_score, functions, keys, passed,
                   diagnoses, result.total, int(result.late.get("late_days", 0)), result.late_penalty, tampering)

    def functions(self) -> dict[str, dict[str, str]]:
        """As ``StudentResult.functions``: ``{function: {"score", "max_score"}}``."""
        return {fn: {"score": score, "max_score": top} for fn, score, top in self.function_points}

    @property
    def checks(self) -> list[CheckRow]:
        diagnosis = dict(self.diagnoses)
        return [CheckRow(fn, name, bool(self.passed >> i & 1), diagnosis.get(i))
                for i, (fn, name) in enumerate(self.keys)]

    def __repr__(self) -> str:
        return f"ResultRow({self.student!r}, {self.status}, {points_str(self.score)}/{points_str(self.max_score)})"
