"""Checks of the seven formula functions of the contract, built from one table.

Every function gets: ``value`` (ordinary float64 inputs, several batch sizes), ``float32``,
``gradient`` (autograd of ``result.sum()`` against the reference's, float64), ``inputs_unmodified``
(over every call) and, where the contract fixes it, ``output_shape``; the GAN losses add
``unequal_batches``/``column_shape``/``extreme_logits``; the VAE and likelihood functions add their
extreme inputs; ``generator_loss`` adds ``minimax_value``, ``default_kind`` and
``unknown_kind_raises``. Expected values come from ``reference.formulas`` in float64, computed in
the grader's process; a failing value is matched against the catalogue of classic mistakes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from grader.checks.base import (Case, Check, Outcome, Suite, Verdict, as_array, describe_inputs,
                                function_rng, outcome_failure, tolerance_for)
from grader.compare import compare, matches, shape_str, summarize
from grader.diagnoses import GENERIC
from grader.rubric import Rubric

if TYPE_CHECKING:
    from grader.oracle import Oracle

EXTREME_LOGITS = np.array([-100.0, -60.0, -30.0, -17.0, 17.0, 30.0, 60.0, 100.0])
EXTREME_LOGVAR = np.array([-10.0, -7.0, 7.0, 10.0])


@dataclass(frozen=True)
class FormulaSpec:
    name: str
    arg_names: tuple[str, ...]
    output: str                       # "scalar" | "batch" ([B]) | "like_first" (shape of the first arg)
    grad: tuple[int, ...]             # positional args whose gradient is checked


SPECS: dict[str, FormulaSpec] = {s.name: s for s in [
    FormulaSpec("discriminator_loss", ("real_logits", "fake_logits"), "scalar", (0, 1)),
    FormulaSpec("generator_loss", ("fake_logits",), "scalar", (0,)),
    FormulaSpec("reparameterize", ("mu", "logvar", "eps"), "like_first", (0, 1)),
    FormulaSpec("gaussian_kl", ("mu", "logvar"), "batch", (0, 1)),
    FormulaSpec("bernoulli_log_likelihood", ("x", "logits"), "batch", (1,)),
    FormulaSpec("elbo", ("x", "logits", "mu", "logvar"), "batch", (1, 2, 3)),
    FormulaSpec("chain_rule_log_likelihood", ("x", "conditional_logits"), "batch", (1,)),
]}


def diagnose(oracle: Oracle, case: Case, got: np.ndarray, rubric: Rubric) -> tuple[str | None, str]:
    """The first catalogued mistake whose output on this case equals what the student returned.
    A match on NaN alone (no finite value to agree on) is said to be one: many mistakes give NaN."""
    tol = tolerance_for(rubric, case)
    for name, explanation, candidate in oracle.mistakes(case):
        if matches(got, candidate, tol):
            if not np.isfinite(np.asarray(candidate, dtype=np.float64)).any():
                explanation += NAN_ONLY_MATCH
            return name, explanation
    return None, ""


NAN_ONLY_MATCH = (" (Your result is NaN here, as this mistake's is; other causes of NaN are possible: "
                  "a log of a negative number, 0/0, inf - inf.)")


# --- judges -----------------------------------------------------------------------------------
def _fail_call(check: Check, case: Case, reason: str, spec: FormulaSpec) -> Verdict:
    return Verdict(False, f"{reason}\n  inputs: {describe_inputs(spec.arg_names, case)}", got=reason, case=case.id)


def judge_value(spec: FormulaSpec, rubric: Rubric, oracle: "Oracle", check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """Every case's value equals the reference's within the tolerance of its input dtype."""
    for case in check.cases:
        outcome = outcomes.get(case.id)
        reason = outcome_failure(outcome, spec.name)
        if reason:
            return _fail_call(check, case, reason, spec)
        got = as_array(outcome.value["value"])
        expected = oracle.value(case)
        result = compare(got, expected, tolerance_for(rubric, case), what="value")
        if result.ok:
            continue
        name, explanation = diagnose(oracle, case, got, rubric)
        if name is None and check.name.startswith("extreme"):
            name = "non_finite_at_extremes" if not np.isfinite(got).all() else "inaccurate_at_extremes"
            explanation = GENERIC[name]
        message = f"{result.message}\n  inputs: {describe_inputs(spec.arg_names, case)}"
        if expected.size > 1 or got.size > 1:
            message += f"\n  expected {summarize(expected)}\n  got      {summarize(got)}"
        return Verdict(False, message, expected=summarize(expected), got=summarize(got),
                       diagnosis=name, explanation=explanation, case=case.id)
    return Verdict(True, f"{len(check.cases)} call(s) matched the reference")


def judge_gradient(spec: FormulaSpec, rubric: Rubric, oracle: "Oracle", check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """The gradient of result.sum() w.r.t. each checked input equals the reference's."""
    for case in check.cases:
        outcome = outcomes.get(case.id)
        reason = outcome_failure(outcome, spec.name)
        if reason:
            return _fail_call(check, case, reason, spec)
        value = outcome.value
        grads = value.get("grads") if "grads" in value else [None] * len(case.grad)
        if not isinstance(grads, list) or len(grads) != len(case.grad):
            return Verdict(False, f"the sandbox reported {_count(grads)} gradient(s) for the {len(case.grad)} "
                                  f"differentiable input(s) {', '.join(spec.arg_names[i] for i in case.grad)}",
                           expected=f"{len(case.grad)} gradient(s)", got=_count(grads), case=case.id)
        for index, got_grad, exp_grad in zip(case.grad, grads, oracle.grads(case)):
            arg = spec.arg_names[index]
            if got_grad is None or isinstance(got_grad, dict) or not isinstance(got_grad, np.ndarray):
                error = str(got_grad.get("error", "")) if isinstance(got_grad, dict) else ""
                if "modified by an inplace operation" in error:
                    return Verdict(False, f"computing the gradient w.r.t. `{arg}` failed: {error}",
                                   expected="a gradient", got="an in-place modification error",
                                   diagnosis="inplace_breaks_backward",
                                   explanation=GENERIC["inplace_breaks_backward"], case=case.id)
                if not value.get("has_grad_fn"):
                    why = ("the result is not connected to the inputs' autograd graph (computed with numpy, "
                           ".item(), .detach(), torch.no_grad() or a new tensor built from values)")
                else:
                    why = f"no gradient reached `{arg}`" + (f": {got_grad['error']}" if isinstance(got_grad, dict) else "")
                return Verdict(False, f"not differentiable w.r.t. `{arg}`: {why}", expected="a gradient",
                               got="none", diagnosis="not_differentiable", explanation=GENERIC["not_differentiable"],
                               case=case.id)
            result = compare(as_array(got_grad), exp_grad, tolerance_for(rubric, case), what=f"d sum(result) / d {arg}")
            if not result.ok:
                return Verdict(False, f"{result.message}\n  inputs: {describe_inputs(spec.arg_names, case)}",
                               expected=summarize(exp_grad), got=summarize(as_array(got_grad)), case=case.id)
    return Verdict(True, "gradients match the reference")


def _count(items: object) -> str:
    return str(len(items)) if isinstance(items, list) else "no list of"


def _contract_shape(spec: FormulaSpec, case: Case) -> tuple[int, ...] | None:
    if spec.output == "scalar":
        return None
    if spec.output == "batch":
        return (case.args[0].shape[0],)
    return tuple(case.args[0].shape)


def judge_shape(spec: FormulaSpec, rubric: Rubric, oracle: "Oracle", check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """The result has the contract's shape: one element for a scalar, [B] per example, or mu's shape."""
    for case in check.cases:
        outcome = outcomes.get(case.id)
        if outcome_failure(outcome, spec.name):
            continue
        shape = np.shape(outcome.value["value"])  # the returned array's own shape, not a reported one
        want = _contract_shape(spec, case)
        if want is None:
            if int(np.prod(shape)) != 1:
                return Verdict(False, f"expected a scalar (0-dim or one element), got shape {shape_str(shape)}",
                               expected="a scalar", got=shape_str(shape), case=case.id)
        elif shape != want:
            hint = ""
            if spec.output == "batch" and int(np.prod(shape)) == 1:
                hint = " (a single number: did you reduce over the batch? return one value per example)"
            return Verdict(False, f"expected shape {shape_str(want)}, got {shape_str(shape)}{hint}",
                           expected=shape_str(want), got=shape_str(shape),
                           diagnosis="batch_reduced" if hint else None,
                           explanation=GENERIC["batch_reduced"] if hint else "", case=case.id)
    return Verdict(True, "shapes follow the contract")


def judge_unmodified(spec: FormulaSpec, rubric: Rubric, oracle: "Oracle", check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """No call changed its input tensors in place: the inputs as they were after the call (raw
    arrays from the sandbox) equal the grader's own copy of what it sent, compared here."""
    for case in check.cases:
        outcome = outcomes.get(case.id)
        if outcome_failure(outcome, spec.name):
            continue
        after = outcome.value.get("args_after")
        if not isinstance(after, list) or len(after) != len(case.args):
            return Verdict(False, f"the inputs after the call did not come back (inputs: "
                                  f"{describe_inputs(spec.arg_names, case)})",
                           expected="the inputs after the call", got="nothing", case=case.id)
        for name, sent, back in zip(spec.arg_names, case.args, after):
            if not isinstance(sent, np.ndarray):
                continue
            if not (isinstance(back, np.ndarray) and back.shape == sent.shape
                    and np.array_equal(back.astype(np.float64), sent.astype(np.float64), equal_nan=True)):
                return Verdict(False, f"`{name}` was modified in place (inputs: {describe_inputs(spec.arg_names, case)})",
                               expected="inputs unchanged", got=f"`{name}` changed",
                               diagnosis="modified_input", explanation=GENERIC["modified_input"], case=case.id)
    return Verdict(True, "inputs left unchanged")


def judge_raises(spec: FormulaSpec, rubric: Rubric, oracle: "Oracle", check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """Every case raises ValueError (or a subclass)."""
    for case in check.cases:
        outcome = outcomes.get(case.id)
        if outcome is None or outcome.status != "ok" or outcome.value is None:
            return Verdict(False, outcome_failure(outcome, spec.name) or "no result", expected="ValueError")
        raised = outcome.value.get("raised_bases")
        if not raised:
            got = summarize(as_array(outcome.value["value"]))
            return Verdict(False, f"expected ValueError for {describe_inputs(spec.arg_names, case)}; "
                                  f"got a value {got}", expected="ValueError", got=got,
                           diagnosis="kind_not_validated", explanation=GENERIC["kind_not_validated"], case=case.id)
        if "ValueError" not in raised:
            return Verdict(False, f"expected ValueError, got {outcome.value.get('message')}",
                           expected="ValueError", got=outcome.value["raised"], case=case.id)
    return Verdict(True, "raised ValueError")


# --- inputs -----------------------------------------------------------------------------------
def _logits(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(0.0, 3.0, size=shape)


def _extreme(rng: np.random.Generator, values: np.ndarray, *shape: int) -> np.ndarray:
    """Mostly extreme values with a few ordinary ones, in a shuffled order; every one of
    ``values`` appears at least once when there is room (whatever the seed: the band of logits
    17 to 60, where a clamped ``BCELoss`` is wrong, is always covered, in either precision)."""
    out = rng.choice(values, size=shape)
    mask = rng.random(shape) < 0.25
    out[mask] = rng.normal(0.0, 2.0, size=shape)[mask]
    flat = out.reshape(-1)
    if flat.size >= values.size:
        flat[rng.choice(flat.size, size=values.size, replace=False)] = values
    return out


def _binary(rng: np.random.Generator, b: int, d: int) -> np.ndarray:
    return (rng.random((b, d)) < 0.5).astype(np.float64)


def _vae(rng: np.random.Generator, b: int, k: int, logvar_scale: float = 2.0):
    mu = rng.normal(0.0, 1.5, (b, k))
    logvar = np.clip(rng.normal(0.0, logvar_scale, (b, k)), -10, 10)
    return mu, logvar


def _as(dtype, *arrays) -> tuple:
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in arrays)


def _cases(function: str, check: str, arg_sets: list[tuple], grad: tuple[int, ...] = (), kwargs: dict | None = None,
           kwargs_list: list[dict] | None = None) -> tuple[Case, ...]:
    kw = kwargs_list or [kwargs or {}] * len(arg_sets)
    return tuple(Case(f"{function}/{check}/{i}", function, tuple(args), kw[i], grad)
                 for i, args in enumerate(arg_sets))


def _gan_inputs(rng: np.random.Generator, n_args: int):
    """Argument sets for the GAN losses, keyed by the check that uses them.

    Only ``unequal_batches`` uses real and fake batches of different sizes, so a loss that is
    right only for equal sizes loses exactly that check."""
    def draw(*sizes, fn=_logits, col=False):
        arrays = [fn(rng, s) if fn is _logits else _extreme(rng, EXTREME_LOGITS, s) for s in sizes]
        return tuple(a[:, None] if col else a for a in arrays)

    return {
        "value": [draw(*s[:n_args]) for s in [(8, 8), (16, 16)]],
        "unequal_batches": [draw(7, 5), draw(3, 12)],
        "column_shape": [draw(6, 6, col=True), draw(5, 5, col=True)],
        "extreme_logits": [_as(np.float32, *draw(12, 12, fn=_extreme)), draw(12, 12, fn=_extreme)],
        "float32": [_as(np.float32, *draw(8, 8))],
        "gradient": [draw(6, 6)],
    }


def build_suite(function: str, rubric: Rubric, oracle: "Oracle") -> Suite:
    """The suite of one formula function, with inputs drawn from the rubric's seed."""
    spec = SPECS[function]
    rng = function_rng(rubric, function)
    sets: dict[str, list[tuple]] = {}
    kwargs: dict[str, list[dict]] = {}
    if function in ("discriminator_loss", "generator_loss"):
        n = len(spec.arg_names)
        gan = _gan_inputs(rng, n)
        sets = {k: [args[:n] for args in v] for k, v in gan.items()}
        if function == "discriminator_loss":
            sets["value"] = gan["value"]
        else:
            del sets["unequal_batches"]
            ns = {"kind": "non_saturating"}
            mm = {"kind": "minimax"}
            sets["minimax_value"] = [(_logits(rng, 8),), (_logits(rng, 5)[:, None],),
                                     (_extreme(rng, EXTREME_LOGITS, 10),),
                                     _as(np.float32, _extreme(rng, EXTREME_LOGITS, 10))]
            sets["default_kind"] = [(_logits(rng, 7),)]
            sets["unknown_kind_raises"] = [(_logits(rng, 4),)]
            kwargs = {name: [ns] * len(v) for name, v in sets.items()}
            kwargs["minimax_value"] = [mm] * 4
            kwargs["default_kind"] = [{}]
            kwargs["unknown_kind_raises"] = [{"kind": "wasserstein"}]
    elif function in ("reparameterize", "gaussian_kl"):
        def args(b, k, scale=2.0):
            mu, logvar = _vae(rng, b, k, scale)
            return (mu, logvar, rng.normal(size=(b, k))) if function == "reparameterize" else (mu, logvar)
        sets = {"value": [args(8, 4), args(3, 10), args(1, 2)], "float32": [_as(np.float32, *args(6, 5))],
                "gradient": [args(5, 3)]}
        if function == "gaussian_kl":
            ext = [(mu, _extreme(rng, EXTREME_LOGVAR, *mu.shape)) for mu, _ in [args(6, 8)]]
            sets["extreme_inputs"] = ext + [_as(np.float32, *ext[0])]
    else:  # bernoulli_log_likelihood, chain_rule_log_likelihood, elbo
        def args(b, d, k=4, extreme=False):
            x = _binary(rng, b, d)
            logits = _extreme(rng, EXTREME_LOGITS, b, d) if extreme else _logits(rng, b, d)
            if function != "elbo":
                return x, logits
            mu, logvar = _vae(rng, b, k)
            if extreme:
                logvar = _extreme(rng, EXTREME_LOGVAR, b, k)
            return x, logits, mu, logvar
        extreme_name = "extreme_inputs" if function == "elbo" else "extreme_logits"
        sets = {"value": [args(8, 16), args(3, 64), args(1, 5)], "float32": [_as(np.float32, *args(6, 64))],
                "gradient": [args(4, 10)],
                extreme_name: [args(6, 64, extreme=True), _as(np.float32, *args(6, 64, extreme=True))]}

    judges = {"value": judge_value, "unequal_batches": judge_value, "column_shape": judge_value,
              "extreme_logits": judge_value, "extreme_inputs": judge_value, "float32": judge_value,
              "minimax_value": judge_value, "default_kind": judge_value,
              "gradient": judge_gradient, "unknown_kind_raises": judge_raises}
    descriptions = {
        "value": "matches the reference on ordinary float64 inputs",
        "unequal_batches": "real and fake batches of different sizes",
        "column_shape": "logits of shape [B, 1]",
        "extreme_logits": "finite and accurate for logits up to +/-100 (float32 and float64)",
        "extreme_inputs": "finite and accurate at the edges of the input domain (float32 and float64)",
        "float32": "float32 inputs",
        "minimax_value": "kind='minimax' matches the reference ([B], [B, 1] and extreme logits)",
        "default_kind": "kind defaults to 'non_saturating'",
        "unknown_kind_raises": "an unknown kind raises ValueError",
        "gradient": "gradients match the reference's (autograd, float64)",
        "inputs_unmodified": "inputs are not modified in place",
        "output_shape": "the result has the contract's shape",
    }
    all_cases: dict[str, tuple[Case, ...]] = {}
    checks: list[Check] = []
    for name in rubric.points[function]:
        if name in ("inputs_unmodified", "output_shape"):
            continue
        grad = spec.grad if name == "gradient" else ()
        cases = _cases(function, name, sets[name], grad=grad, kwargs_list=kwargs.get(name))
        all_cases[name] = cases
        requires = () if name in ("value", "minimax_value") else ("value",)
        checks.append(Check(function, name, descriptions[name], cases, partial(judges[name], spec, rubric, oracle), requires))
    every = tuple(c for cases in all_cases.values() for c in cases)
    valued = tuple(c for name, cases in all_cases.items() if name != "unknown_kind_raises" for c in cases)
    if "inputs_unmodified" in rubric.points[function]:
        checks.append(Check(function, "inputs_unmodified", descriptions["inputs_unmodified"], every,
                            partial(judge_unmodified, spec, rubric, oracle)))
    if "output_shape" in rubric.points[function]:
        checks.append(Check(function, "output_shape", descriptions["output_shape"], valued,
                            partial(judge_shape, spec, rubric, oracle)))
    order = list(rubric.points[function])
    checks.sort(key=lambda c: order.index(c.name))
    return Suite(function, tuple(checks))
