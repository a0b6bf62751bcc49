"""One student's result: a plain record, and its versioned JSON form (``results/<student>.json``).

Schema (``schema_version`` 1); every key is always present:

* ``student``: the id (the entry's name without extension, NFC).
* ``status``: ``"ok"`` only when the submission loaded and every call ran; otherwise a named
  failure: ``load_error`` (bad input, syntax error, unavailable import, ...), ``conflict`` (two
  entries for one id), ``timeout`` (the import or some call ran out of time), ``crashed`` (the
  process died), ``sandbox_error`` (the grader could not run it; it is retried on resume).
* ``score``, ``max_score``: exact decimals as strings (``"57.5"``).
* ``message``: one line for the student about the status.
* ``functions``: ``{name: {"score", "max_score"}}`` in rubric order.
* ``checks``: ``[{function, name, description, score, max_score, passed, expected, got, diagnosis,
  message, hidden}]``; ``hidden`` (TA only, never shown to the student) holds the full inputs of
  the first failing call (``{case, args, kwargs}``; arrays as ``{dtype, shape, data}``), else null.
  Written questions appear as checks of function ``"written"`` (names ``Q1``, ``Q2``, ...) once
  the TA's ``manual.csv`` is merged; a check the TA overrode keeps the automatic one in
  ``hidden["override"]["automatic"]``.
* ``submission``: ``{source, kind, sha256, entry, mode, notes}``.
* ``rubric``: ``{version, sha256, seed}`` (plus ``questions: {version, sha256}`` after a merge);
  ``versions``: grader, python, torch, numpy.
* ``sandbox``: ``{isolation, limits, output_dropped_bytes}``; with ``train_gan`` graded, also
  ``workhouse: {device, statistics}`` (where the loop trained, always ``cpu``: no sandbox has a GPU
  device, and the statistics file it was compared with, ``grader.run.workhouse_device``).
* ``late`` (schema 2): ``{}`` without a late policy; else ``{policy_sha256, submitted_at (ISO 8601
  or null), deadline, late_days, penalty, note}`` (``grader.policy``), recomputed whenever marks are
  merged. ``score`` is the earned score before the penalty (the sum of the checks, as the function
  columns); ``total`` is ``score - penalty``, the number every export uses.
* ``durations``: seconds; the only fields that differ between two gradings of the same class.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from grader.scoring import CheckResult, points_str

SCHEMA_VERSION = 2
TIMING_KEYS = ("durations",)


@dataclass
class StudentResult:
    student: str
    status: str
    message: str
    checks: list[CheckResult]
    submission: dict
    rubric: dict
    versions: dict
    sandbox: dict = field(default_factory=dict)
    durations: dict = field(default_factory=dict)
    late: dict = field(default_factory=dict)

    @property
    def score(self) -> Decimal:
        return sum((c.score for c in self.checks), Decimal(0))

    @property
    def max_score(self) -> Decimal:
        return sum((c.max_score for c in self.checks), Decimal(0))

    @property
    def late_days(self) -> int:
        return int(self.late.get("late_days", 0))

    @property
    def late_penalty(self) -> Decimal:
        return Decimal(self.late.get("penalty", "0"))

    @property
    def total(self) -> Decimal:
        """The score after the late penalty: what every export reports."""
        return self.score - self.late_penalty

    def functions(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, Decimal]] = {}
        for c in self.checks:
            entry = out.setdefault(c.function, {"score": Decimal(0), "max_score": Decimal(0)})
            entry["score"] += c.score
            entry["max_score"] += c.max_score
        return {fn: {k: points_str(v) for k, v in d.items()} for fn, d in out.items()}

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "student": self.student,
            "status": self.status,
            "score": points_str(self.score),
            "max_score": points_str(self.max_score),
            "total": points_str(self.total),
            "message": self.message,
            "functions": self.functions(),
            "checks": [c.to_dict() for c in self.checks],
            "submission": self.submission,
            "rubric": self.rubric,
            "versions": self.versions,
            "sandbox": self.sandbox,
            "late": self.late,
            "durations": self.durations,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "StudentResult":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"results schema {d.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        checks = [CheckResult(
            function=c["function"], name=c["name"], score=Decimal(c["score"]), max_score=Decimal(c["max_score"]),
            passed=bool(c["passed"]), expected=c["expected"], got=c["got"], diagnosis=c["diagnosis"],
            message=c["message"], description=c.get("description", ""), hidden=c.get("hidden"))
            for c in d["checks"]]
        return cls(student=d["student"], status=d["status"], message=d["message"], checks=checks,
                   submission=d["submission"], rubric=d["rubric"], versions=d["versions"],
                   sandbox=d.get("sandbox", {}), durations=d.get("durations", {}), late=d.get("late", {}))
