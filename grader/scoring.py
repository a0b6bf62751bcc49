"""Scoring: a pure function from verdicts to points, in exact decimals.

A function's points are split over its checks. A check listed in another's ``requires`` gates it:
when the gate fails (a wrong formula on ordinary inputs), the dependent checks earn nothing, so a
wrong formula gets no credit for being stable, differentiable or well-shaped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from grader.checks.base import Outcome, Suite, Verdict, hidden_inputs
from grader.rubric import Rubric


def points_str(points: Decimal) -> str:
    """Points as the shortest exact decimal: ``80``, ``70.5``, ``0`` (never ``80.0`` or ``8E+1``)."""
    text = format(points, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass
class CheckResult:
    function: str
    name: str
    score: Decimal
    max_score: Decimal
    passed: bool
    expected: str
    got: str
    diagnosis: str | None
    message: str
    description: str = ""
    hidden: dict | None = None       # the failing call's full inputs: TA only, never in feedback

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"], d["max_score"] = points_str(self.score), points_str(self.max_score)
        return d


#: The function name of the written questions' checks, and the ``hidden`` key of a check the TA
#: overrode (``grader.written.manual`` writes both).
WRITTEN_FUNCTION = "written"
OVERRIDE_KEY = "override"
#: The ``hidden`` key of a check that passed but was not credited: the checks it builds on that failed.
GATED_KEY = "not_credited_because"


def is_manual(check: CheckResult) -> bool:
    """True for a written question's check and for an overridden one: their message is the TA's
    comment, for the student to read whether or not the check passed."""
    return check.function == WRITTEN_FUNCTION or (isinstance(check.hidden, dict) and OVERRIDE_KEY in check.hidden)


class JudgeError(RuntimeError):
    """A judge failed on well-typed data (``grader.sandbox.schema`` turned malformed data into a
    crashed call before): the grader's own bug, which makes the submission's ``sandbox_error``."""


def judge_suite(suite: Suite, outcomes: dict[str, Outcome]) -> dict[str, Verdict]:
    """Every check's verdict; raises ``JudgeError`` (naming the check) when a judge fails."""
    verdicts: dict[str, Verdict] = {}
    for check in suite.checks:
        try:
            verdicts[check.name] = check.judge(check, outcomes)
        except Exception as exc:
            raise JudgeError(f"judging {suite.function}/{check.name} failed: {type(exc).__name__}: {exc}") from exc
    return verdicts


def score_suite(suite: Suite, verdicts: dict[str, Verdict], rubric: Rubric) -> list[CheckResult]:
    """Points per check: full points when passed and every check it requires passed, else zero."""
    results = []
    requires = {check.name: check.requires for check in suite.checks}
    for check in suite.checks:
        verdict = verdicts[check.name]
        failed_gates = [g for g in check.requires if not verdicts[g].passed]  # every gate exists (Suite)
        points = rubric.check_points(suite.function, check.name)
        message = verdict.message
        diagnosis = verdict.diagnosis
        # a failed gate that does not build on this check in turn (mutual gates share one fate)
        upstream = [g for g in failed_gates if check.name not in requires[g]]
        if not verdict.passed and upstream:
            # the gate's failure explains this one better than a guess made on its own inputs
            diagnosis = None
            message = (f"this check builds on `{upstream[0]}`, which failed: fix that first\n{message}")
        elif verdict.diagnosis and verdict.explanation:
            message = f"Likely mistake ({verdict.diagnosis}): {verdict.explanation}\n{message}"
        passed = verdict.passed and not failed_gates
        if verdict.passed and failed_gates:
            message = (f"not credited: it builds on `{failed_gates[0]}`, which failed "
                       f"(a check earns its points only when the checks it builds on pass)")
        failing = None
        if not verdict.passed and check.cases:
            failing = next((c for c in check.cases if c.id == verdict.case), check.cases[0])
        hidden = hidden_inputs(failing) if failing is not None else None
        if verdict.passed and failed_gates:
            hidden = {GATED_KEY: failed_gates}  # a TA's override of those gates credits this check
        results.append(CheckResult(
            function=suite.function, name=check.name, score=points if passed else Decimal(0), max_score=points,
            passed=passed, expected=verdict.expected, got=verdict.got, diagnosis=diagnosis,
            message=message, description=check.description, hidden=hidden,
        ))
    return results


def not_graded(suite: Suite, rubric: Rubric, reason: str) -> list[CheckResult]:
    """Every check of a suite at zero with one reason (the submission did not load, for instance)."""
    return [CheckResult(suite.function, c.name, Decimal(0), rubric.check_points(suite.function, c.name), False,
                        "", "", None, reason, c.description) for c in suite.checks]


def total(results: list[CheckResult]) -> tuple[Decimal, Decimal]:
    return sum((r.score for r in results), Decimal(0)), sum((r.max_score for r in results), Decimal(0))


def per_function(results: list[CheckResult]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for r in results:
        out[r.function] = out.get(r.function, Decimal(0)) + r.score
    return out


