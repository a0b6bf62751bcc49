"""Reading what the sandbox reports for a train_gan call: usable or why not, the returned
weights validated against the spec sent in, the loss lists, the trained generator's statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.checks.base import Case, Check, Outcome, outcome_failure
from grader.checks.workhouse.networks import trained_generator
from grader.checks.workhouse.settings import FUNCTION
from reference.workhouse_stats import evaluate


def case_of(check: Check, case_id: str) -> Case:
    return next(c for c in check.cases if c.id == case_id)


def usable(case: Case, outcomes: dict[str, Outcome]) -> tuple[dict | None, str | None]:
    outcome = outcomes.get(case.id)
    reason = outcome_failure(outcome, FUNCTION)
    if reason and outcome is not None and outcome.status == "timeout":
        reason += (f" ({case.extra['steps']} steps of a correct loop take a second or two of CPU here: keep the "
                   "loop lean, no printing or plotting)")
    return (None, reason) if reason else (outcome.value, None)


def returned_state(value: dict, case: Case, which: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The trained ``which``'s weights, validated against the spec sent in: names, shapes, finite."""
    report = value.get(which)
    if not isinstance(report, dict) or not isinstance(report.get("state"), dict):
        return None, f"the {which}'s weights did not come back"
    problems = report.get("problems") or []
    if problems:
        return None, f"the {which}'s state_dict after training is not the network's: {problems[0]}"
    state = report["state"]
    names = list(case.extra[which]["names"])
    missing = [n for n in names if n not in state]
    extra = [n for n in state if n not in names]
    if missing or extra:
        return None, (f"the {which}'s state_dict after training has different entries: "
                      f"missing {missing[:3]}, unexpected {extra[:3]} (do not replace or add modules)")
    out = {}
    for name, shape in zip(names, case.extra[which]["shapes"]):
        arr = np.asarray(state[name], dtype=np.float64)
        if list(arr.shape) != list(shape):
            return None, f"the {which}'s {name} has shape {list(arr.shape)} after training, not {list(shape)}"
        if not np.isfinite(arr).all():
            return None, f"the {which}'s {name} holds nan or inf after training: the training diverged"
        out[name] = arr
    return out, None


def histories(value: dict, steps: int) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """``d_loss`` and ``g_loss`` as float64 arrays of one entry per step, or why not."""
    returned = value.get("returned") or {}
    if returned.get("type") != "builtins.dict" and not returned.get("keys"):
        return None, None, (f"train_gan returned a {returned.get('type', '?')}, not a dict "
                            "{\"d_loss\": [...], \"g_loss\": [...]}")
    out = []
    for key in ("d_loss", "g_loss"):
        entry = (value.get("history") or {}).get(key)
        if entry is None:
            return None, None, f"the returned dict has no key {key!r} (its keys: {returned.get('keys', [])})"
        if entry.get("problem"):
            return None, None, f"{key} is not a list of numbers: {entry['problem']}"
        values = np.asarray(entry["values"], dtype=np.float64).reshape(-1)
        if values.size != steps:
            return None, None, f"{key} has {values.size} entries; expected one per step ({steps})"
        out.append(values)
    return out[0], out[1], None


@dataclass(frozen=True)
class Evaluation:
    samples: np.ndarray
    stats: dict[str, float]


def evaluate_outcome(value: dict, case: Case, eval_seed: int) -> tuple[Evaluation | None, str | None]:
    """The trained generator's samples and statistics, computed here as for the reference seeds."""
    state, why = returned_state(value, case, "generator")
    if why:
        return None, why
    samples, stats = evaluate(trained_generator(state), eval_seed)
    return Evaluation(samples.numpy(), stats), None
