"""What each kind of call may send back: the shape of its value, checked in the grader's process.

``grader.sandbox.calls`` documents what an honest harness returns; a student's process can send
anything the protocol can encode instead. ``problem(kind, value)`` says what is wrong with a
decoded value (None when it has the documented shape), so that malformed data fails the call it
belongs to (``crashed``) and the judges only ever see well-typed values: an exception while
judging is then the grader's own, and ``grader.run`` makes it the submission's ``sandbox_error``.
Only types are checked here; every value is still judged.
"""
from __future__ import annotations

import numpy as np

_NUMERIC = (np.float64, np.float32, np.int64, np.bool_)


def _is_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.type in _NUMERIC


def _raised_problem(value: dict) -> str | None:
    if not isinstance(value.get("raised"), str) or not isinstance(value.get("message", ""), str):
        return "an exception report without its class name and message"
    bases = value.get("raised_bases", [])
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        return "an exception report whose bases are not names"
    return None


def _output_problem(value: object, what: str) -> str | None:
    """One returned output: ``{"value": array, ...}`` or an exception report."""
    if not isinstance(value, dict):
        return f"{what} is not an object"
    if "raised" in value:
        return _raised_problem(value)
    if not _is_array(value.get("value")):
        return f"{what} has no numeric array `value`"
    return None


def _function_problem(value: dict) -> str | None:
    problem = _output_problem(value, "the result")
    if problem or "raised" in value:
        return problem
    after = value.get("args_after", [])
    if not isinstance(after, list) or not all(a is None or _is_array(a) for a in after):
        return "`args_after` is not a list of arrays"
    grads = value.get("grads", [])
    if not isinstance(grads, list) or not all(
            g is None or _is_array(g) or (isinstance(g, dict) and isinstance(g.get("error", ""), str))
            for g in grads):
        return "`grads` is not a list of arrays"
    return None


def _fvbn_problem(value: dict) -> str | None:
    if "construct" in value:
        construct = value["construct"]
        return _raised_problem(construct) if isinstance(construct, dict) else "`construct` is not an object"
    if type(value.get("n_parameters", 0)) is not int:
        return "`n_parameters` is not an integer"
    for key in ("forward", "log_prob"):
        if key in value and (problem := _output_problem(value[key], f"`{key}`")):
            return problem
    samples = value.get("samples", [])
    if not isinstance(samples, list):
        return "`samples` is not a list"
    for step in samples:
        if problem := _output_problem(step, "a `sample`"):
            return problem
    return None


_BY_KIND = {"function": _function_problem, "fvbn": _fvbn_problem}


def problem(kind: str, value: dict) -> str | None:
    """What is malformed in a call's decoded ``value`` (a dict) of this ``kind``; None when it has
    the documented shape (kinds without a schema here, ``train_gan``, are checked by their judges)."""
    check = _BY_KIND.get(kind)
    return check(value) if check is not None else None
