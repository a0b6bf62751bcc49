"""The vocabulary of checks: cases (one call into the sandbox), checks (a judged property), verdicts.

Data flows one way: a ``Suite`` lists the calls to make; the sandbox returns raw outcomes; each
``Check.judge`` turns outcomes into a ``Verdict`` in the grader's process; ``scoring`` turns
verdicts into points. Judges are pure functions of the outcomes and of values the grader computes
itself from ``reference`` in float64.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from grader.compare import Tolerance, fmt, shape_str
from grader.rubric import Rubric


class Outcome(Protocol):
    """What the sandbox reports for one call (``grader.sandbox.CallResult``)."""

    id: str
    status: str
    value: dict | None
    error: str
    duration_s: float


@dataclass(frozen=True)
class Case:
    """One call of a student function on fixed inputs."""

    id: str
    function: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    grad: tuple[int, ...] = ()
    kind: str = "function"
    extra: dict = field(default_factory=dict)   # kind-specific fields (e.g. FVBN's dim and seeds)

    def call(self) -> dict:
        """The plain-data request sent into the sandbox (inputs only, never expected values)."""
        if self.kind == "function":
            return {"id": self.id, "kind": "function", "name": self.function, "args": list(self.args),
                    "kwargs": dict(self.kwargs), "grad": list(self.grad)}
        return {"id": self.id, "kind": self.kind, **self.extra}

    @property
    def dtype(self) -> str:
        """``float32`` when any array input is float32, else ``float64``."""
        arrays = [a for a in (*self.args, *self.kwargs.values()) if isinstance(a, np.ndarray)]
        return "float32" if any(a.dtype == np.float32 for a in arrays) else "float64"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str = ""
    expected: str = ""
    got: str = ""
    diagnosis: str | None = None     # a mistake's name from the catalogue, or a generic one
    explanation: str = ""            # what that mistake is, for the student
    case: str | None = None          # id of the failing call, whose full inputs go to the TA only


Judge = Callable[["Check", dict[str, Outcome]], Verdict]


@dataclass(frozen=True)
class Check:
    function: str
    name: str
    description: str                 # what it tests, in one line, for feedback
    cases: tuple[Case, ...]
    judge: Judge
    requires: tuple[str, ...] = ("value",)   # checks whose failure zeroes this one


@dataclass(frozen=True)
class Suite:
    """All checks of one contract function; its cases run in one sandboxed process group."""

    function: str
    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        names = {check.name for check in self.checks}
        for check in self.checks:
            missing = [gate for gate in check.requires if gate not in names]
            if missing:  # a typo or a dropped check would silently remove the gating
                raise ValueError(f"{self.function}/{check.name} builds on {', '.join(missing)}, which "
                                 f"{'is' if len(missing) == 1 else 'are'} not a check of {self.function} "
                                 f"(checks: {', '.join(sorted(names))})")

    def calls(self) -> list[dict]:
        seen: dict[str, Case] = {}
        for check in self.checks:
            for case in check.cases:
                seen.setdefault(case.id, case)
        return [case.call() for case in seen.values()]


def function_rng(rubric: Rubric, function: str, salt: str = "") -> np.random.Generator:
    """The generator of a function's hidden inputs: fixed by the rubric's seed and the name."""
    return np.random.default_rng([rubric.seed, zlib.crc32((function + salt).encode("utf-8"))])


def describe_inputs(names: tuple[str, ...], case: Case) -> str:
    """``real_logits: float64 [7] in [-5.2, 6.1]; fake_logits: ...``: what a student may see."""
    parts = []
    values = list(zip(names, case.args)) + list(case.kwargs.items())
    for name, value in values:
        if isinstance(value, np.ndarray):
            if value.size:
                lo, hi = fmt(float(np.min(value))), fmt(float(np.max(value)))
                parts.append(f"{name}: {value.dtype} {shape_str(value.shape)} in [{lo}, {hi}]")
            else:
                parts.append(f"{name}: {value.dtype} {shape_str(value.shape)}")
        else:
            parts.append(f"{name}={value!r}")
    return "; ".join(parts)


def outcome_failure(outcome: Outcome | None, function: str) -> str | None:
    """Why a call produced no usable value (timeout, crash, exception), or None when it did."""
    if outcome is None:
        return "this call was not made"
    if outcome.status == "ok" and outcome.value is not None:
        if "raised" in outcome.value:
            return f"`{function}` raised {outcome.value.get('message', outcome.value['raised'])}"
        return None
    # the sandbox's own not-run reasons already start with "not run: " (grader.sandbox.*)
    not_run = (outcome.error or "an earlier call of this function crashed or timed out").removeprefix("not run: ")
    reasons = {
        "timeout": f"`{function}` did not finish in time ({outcome.error})",
        "crashed": f"the process running `{function}` died ({outcome.error})",
        "not_run": f"not run: {not_run}",
        "error": f"could not call `{function}`: {outcome.error}",
    }
    return reasons.get(outcome.status, f"{outcome.status}: {outcome.error}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape), "data": value.tolist()}
    return value


def hidden_inputs(case: Case) -> dict:
    """The full inputs of a call, as JSON, for the TA's results (never for the student's feedback).

    FVBN calls list their seeds and sizes (their inputs are every binary vector of ``dim``);
    ``train_gan`` calls their budget, seeds and network specs (the weights and data are rebuilt
    from the rubric by ``grader.checks.workhouse.build_cases``)."""
    if case.kind == "function":
        return {"case": case.id, "args": [_plain(a) for a in case.args],
                "kwargs": {k: _plain(v) for k, v in case.kwargs.items()}}
    small = {k: v for k, v in case.extra.items() if not isinstance(v, np.ndarray)}
    inputs = {"fvbn": "every binary vector of length dim, in lexicographic order",
              "train_gan": "initial weights and data as built by grader.checks.workhouse.build_cases(rubric)"}
    return {"case": case.id, **small, "inputs": inputs.get(case.kind, "see the check's code")}


def tolerance_for(rubric: Rubric, case: Case) -> Tolerance:
    return rubric.tolerances[case.dtype]


def as_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)
