"""The TA's marks, read once per run and merged into each result as it is written.

``apply_manual_marks`` merges a whole class at once, which needs every result in memory. A run
of a large class instead reads and validates ``manual.csv`` before its grading loop, against the
class's student ids and the rubric's check structure (every result of a rubric has the same
checks, points and maxima: ``template`` below), and then merges each result on its own
(``MarkBook.merge``), fresh or resumed, just before it is written. What the run writes is the same
as ``apply_manual_marks`` on the whole class would give: ``merge`` is per student.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from grader.results import StudentResult
from grader.scoring import CheckResult
from grader.written.manual import Mark, Problem, merge, read_and_validate
from grader.written.questions import Questions


@dataclass
class MarkBook:
    """Valid marks by student id, and every problem found reading ``manual.csv``."""

    questions: Questions
    marks: dict[str, list[Mark]]
    problems: list[Problem]

    @classmethod
    def load(cls, path: Path | None, students: list[str], template: list[CheckResult], questions: Questions, *,
             secret: bytes | None = None, anonymous: bool = False) -> "MarkBook":
        """Read and validate ``path`` for ``students``, whose automatic checks all have the
        structure of ``template`` (function, name and maximum of each check, in order)."""
        stand_ins = [StudentResult(student=s, status="ok", message="", checks=template, submission={}, rubric={},
                                   versions={}) for s in students]
        marks, problems = read_and_validate(path, stand_ins, questions, secret=secret, anonymous=anonymous)
        by_student: dict[str, list[Mark]] = {}
        for mark in marks:
            by_student.setdefault(mark.student, []).append(mark)
        return cls(questions, by_student, problems)

    def merge(self, result: StudentResult) -> StudentResult:
        """``result`` with its student's marks merged (as ``grader.written.manual.merge``)."""
        return merge([result], self.marks.get(result.student, []), self.questions)[0]


def check_template(checks: list[CheckResult]) -> list[CheckResult]:
    """The structure of a rubric's automatic checks, as a stand-in result's checks: only the
    function, name and maximum of each are read when marks are validated."""
    return [replace(c, hidden=None) for c in checks]
