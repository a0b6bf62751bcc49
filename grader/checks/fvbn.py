"""Checks of the student's ``FVBN`` class: properties that must hold whatever its parameters are.

The sandbox builds ``FVBN(dim)``, re-draws every ``nn.Parameter`` from a seed of the grader's, and
returns raw outputs of ``forward`` (on every binary vector of the dimension), ``log_prob`` and
``sample``. Here, outside the sandbox:

* ``interface``: shapes, finite values, samples in {0, 1}, at least one parameter, and outputs
  that change between two parameter draws (the property checks run under both; a model whose
  outputs ignore its parameters, or a harness whose re-draw was skipped, fails).
* ``autoregressive``: flipping x_j never changes outputs 1..j, and changes some later output
  (checked on all 2^d vectors for d = 6 and 10, in natural order, under two parameter draws): a
  leak fails, and so does an independent-pixel model whose conditionals ignore x_<i.
* ``log_prob_consistent``: ``log_prob(x)`` equals the chain rule on ``forward(x)``'s logits
  (computed by the oracle: the reference's ``chain_rule_log_likelihood``; the student kit, which
  has no reference, leaves this check to the TA's grading).
* ``normalised``: ``logsumexp`` of ``log_prob`` over all 2^d vectors is 0 (d = 4, 6, 10).
* ``sampling_consistent``: a chi-square goodness-of-fit test of 20000 samples (d = 4) against
  ``exp(log_prob)``; a correct sampler fails it with probability ``sampling_alpha`` (rubric).
  When the samples follow forward's own conditionals and log_prob's conditionals are not forward's,
  the failure is log_prob's (``explained_by_log_prob``, the same in the kit): named as such.
* ``sample_reproducible``: the same generator seed gives identical samples; another seed does not.
"""
from __future__ import annotations

import itertools
from functools import partial

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from grader.checks.base import Case, Check, Outcome, Suite, Verdict, as_array, outcome_failure
from grader.compare import compare, fmt, shape_str
from grader.diagnoses import GENERIC
from grader.rubric import Rubric

FUNCTION = "FVBN"
SAMPLE_DIM = 4
SAMPLE_N = 20000
OTHER_SEED_N = 500
PROPERTY_DIMS = (6, 10)
REDRAW_OFFSET = 104_729  # the second parameter draw of each property dimension: seed + this


def all_binary(dim: int) -> np.ndarray:
    """Every vector of {0, 1}^dim, shape [2^dim, dim], in lexicographic order (x_1 most significant)."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=dim)), dtype=np.float32)


def _rows(outcome_value: dict, key: str) -> tuple[np.ndarray | None, str | None]:
    step = outcome_value.get(key)
    if step is None:
        return None, f"`{key}` was not run"
    if "raised" in step:
        return None, f"`FVBN.{key}` raised {step['message']}"
    return as_array(step["value"]), None


def _usable(case: Case, outcomes: dict[str, Outcome]) -> tuple[dict | None, str | None]:
    outcome = outcomes.get(case.id)
    reason = outcome_failure(outcome, FUNCTION)
    if reason:
        return None, reason
    value = outcome.value
    if "construct" in value:
        return None, f"`FVBN({case.extra['dim']})` raised {value['construct']['message']}"
    return value, None


def _outputs(case: Case, outcomes: dict[str, Outcome], *keys: str) -> tuple[list[np.ndarray], str | None]:
    """The raw arrays of ``keys`` (``forward``, ``log_prob``) from a usable call, or why not."""
    value, reason = _usable(case, outcomes)
    if reason:
        return [], reason
    arrays = []
    for key in keys:
        rows, why = _rows(value, key)
        if why:
            return [], why
        arrays.append(rows)
    return arrays, None


def judge_interface(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    for case in check.cases:
        value, reason = _usable(case, outcomes)
        if reason:
            return Verdict(False, reason)
        dim = case.extra["dim"]
        if value.get("n_parameters", 0) == 0:
            return Verdict(False, f"FVBN({dim}) has no nn.Parameter: its weights must be trainable parameters "
                                  "(the grader re-draws them to test the model's structure)")
        for key in ("forward", "log_prob"):
            rows, why = _rows(value, key)
            if why:
                return Verdict(False, why)
            n = len(case.extra[key])
            want = (n, dim) if key == "forward" else (n,)
            if rows.shape != want:  # the returned array's own shape
                return Verdict(False, f"`{key}` on x of shape [{n}, {dim}] returned shape "
                                      f"{shape_str(rows.shape)}; expected {shape_str(want)}",
                               expected=shape_str(want), got=shape_str(rows.shape))
            if not np.isfinite(rows).all():
                return Verdict(False, f"`{key}` returned nan or inf")
        for (n, _), step in zip(case.extra["samples"], value.get("samples", [])):
            if "raised" in step:
                return Verdict(False, f"`FVBN.sample({n}, generator=...)` raised {step['message']}")
            s = as_array(step["value"])
            if s.shape != (n, dim):
                return Verdict(False, f"`sample({n})` returned shape {shape_str(s.shape)}; expected [{n}, {dim}]")
            if not np.isin(s, (0.0, 1.0)).all():
                return Verdict(False, f"`sample` returned values other than 0 and 1 (e.g. {fmt(float(s[~np.isin(s, (0.0, 1.0))][0]))})")
    unchanged = _same_under_redraw(check.cases, outcomes)
    if unchanged:
        name = "ignores_parameters"
        return Verdict(False, f"FVBN({unchanged}) gave identical `forward` outputs under two different draws of "
                              "its parameters: its outputs do not depend on its nn.Parameters (constant logits), "
                              "or the re-draw did not happen", expected="outputs that change with the parameters",
                       got="identical outputs", diagnosis=name, explanation=GENERIC[name])
    return Verdict(True, "forward, log_prob and sample have the contract's shapes and values")


def _same_under_redraw(cases: tuple[Case, ...], outcomes: dict[str, Outcome]) -> int | None:
    """The dimension of the first pair of calls (same dim, two parameter seeds) whose ``forward``
    outputs are identical, or None. Every draw of the sandbox is cross-checked this way, since
    what it reports about the re-draw itself cannot be believed."""
    by_dim: dict[int, list[np.ndarray]] = {}
    for case in cases:
        arrays, reason = _outputs(case, outcomes, "forward")
        if not reason:
            by_dim.setdefault(case.extra["dim"], []).append(arrays[0])
    for dim, forwards in sorted(by_dim.items()):
        if len(forwards) > 1 and all(np.array_equal(forwards[0], other) for other in forwards[1:]):
            return dim
    return None


def judge_autoregressive(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    atol = rubric.tolerances["fvbn"].atol
    for case in check.cases:
        arrays, reason = _outputs(case, outcomes, "forward")
        if reason:
            return Verdict(False, reason)
        logits = arrays[0]
        dim = case.extra["dim"]
        logits = logits.reshape(2 ** dim, dim)
        index = np.arange(2 ** dim)
        leaks: list[tuple[int, int, float]] = []   # (output i, input j, change), 1-based i and j
        uses_context = False                        # some output i depends on some x_j, j < i
        for j in range(dim):
            flipped = index ^ (1 << (dim - 1 - j))      # the row of x with x_(j+1) flipped
            delta = np.abs(logits[flipped] - logits).max(axis=0)
            leaks += [(i + 1, j + 1, float(d)) for i, d in enumerate(delta[: j + 1]) if not d <= atol]
            uses_context = uses_context or bool((delta[j + 1:] > atol).any())
        if leaks:
            diagonal_only = all(i == j for i, j, _ in leaks)
            name = "mask_includes_diagonal" if diagonal_only else "not_autoregressive"
            i, j, d = leaks[0]
            return Verdict(False, f"FVBN({dim}) with re-drawn parameters: output {i} changed by {fmt(d)} when x_{j} "
                                  f"was flipped ({len(leaks)} (output, input) pairs leak; output i may depend only "
                                  f"on x_1..x_(i-1))", expected="outputs 1..j unchanged when x_j changes",
                           got=f"output {i} depends on x_{j}", diagnosis=name, explanation=GENERIC[name])
        if not uses_context:
            name = "ignores_context"
            return Verdict(False, f"FVBN({dim}) with re-drawn parameters: no output changed when any earlier input "
                                  "was flipped: your conditionals ignore x_<i, so this is an independent-pixel "
                                  "model, not an FVBN", expected="some output i that depends on x_<i",
                           got="every output constant in x", diagnosis=name, explanation=GENERIC[name])
    return Verdict(True, "output i depends only on x_<i, and on x_<i, for every binary input")


def judge_log_prob(rubric: Rubric, oracle, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    for case in check.cases:
        arrays, reason = _outputs(case, outcomes, "forward", "log_prob")
        if reason:
            return Verdict(False, reason)
        logits, log_prob = arrays
        x = case.extra["forward"].astype(np.float64)
        expected = oracle.chain_rule(x, logits.reshape(x.shape))
        result = compare(log_prob, expected, rubric.tolerances["fvbn"], what="log_prob(x) vs chain rule on forward(x)")
        if not result.ok:
            name = "log_prob_not_chain_rule"
            return Verdict(False, f"FVBN({case.extra['dim']}): {result.message}", diagnosis=name,
                           explanation=GENERIC[name])
    return Verdict(True, "log_prob equals the chain rule on forward's logits")


def judge_normalised(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    atol = rubric.tolerances["fvbn"].atol
    for case in check.cases:
        arrays, reason = _outputs(case, outcomes, "log_prob")
        if reason:
            return Verdict(False, reason)
        total = float(logsumexp(arrays[0]))
        if not abs(total) <= atol:
            return Verdict(False, f"FVBN({case.extra['dim']}): log of the sum of exp(log_prob) over all "
                                  f"{2 ** case.extra['dim']} binary vectors is {fmt(total)}, expected 0 (|.| <= {atol:g})",
                           expected="0", got=fmt(total), diagnosis="not_normalised", explanation=GENERIC["not_normalised"])
    return Verdict(True, "exp(log_prob) sums to 1 over all binary vectors")


def chi_square_pvalue(samples: np.ndarray, log_prob: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
    """p-value of a chi-square goodness-of-fit test of binary ``samples`` [n, d] against
    ``softmax(log_prob)`` over the 2^d vectors in ``all_binary`` order; cells expecting fewer than
    ``min_expected`` counts are pooled into one. Returns (p-value, degrees of freedom)."""
    n, dim = samples.shape
    weights = 1 << np.arange(dim - 1, -1, -1)
    codes = samples.astype(np.int64) @ weights
    observed = np.bincount(codes, minlength=2 ** dim).astype(np.float64)
    p = np.exp(log_prob - logsumexp(log_prob))
    expected = n * p
    small = expected < min_expected
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    if (observed[~keep] > 0).any():
        return 0.0, int(keep.sum()) - 1
    result = stats.chisquare(observed[keep], expected[keep])
    return float(result.pvalue), int(keep.sum()) - 1


def judge_sampling(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = check.cases[0]
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason)
    log_prob, why = _rows(value, "log_prob")
    if why:
        return Verdict(False, why)
    step = value["samples"][0]
    if "raised" in step:
        return Verdict(False, f"`sample` raised {step['message']}")
    samples = as_array(step["value"]).reshape(-1, SAMPLE_DIM)
    pvalue, dof = chi_square_pvalue(samples, log_prob)
    alpha = rubric.sampling_alpha
    if pvalue < alpha:
        explained = explained_by_log_prob(rubric, value, samples)
        if explained is not None:
            return explained
        return Verdict(False, f"{SAMPLE_N} samples of FVBN({SAMPLE_DIM}) do not follow exp(log_prob): chi-square "
                              f"p-value {pvalue:.3g} < alpha {alpha:g} ({dof} degrees of freedom)",
                       expected=f"p-value >= {alpha:g}", got=f"{pvalue:.3g}", diagnosis="sampling_mismatch",
                       explanation=GENERIC["sampling_mismatch"])
    return Verdict(True, f"chi-square p-value {pvalue:.3g} >= {alpha:g}")


def forward_conditionals(forward: np.ndarray, dim: int, atol: float) -> list[np.ndarray] | None:
    """Per coordinate i (0-based), the logit of p(x_i = 1 | x_<i) that ``forward`` gives for each
    prefix x_<i (indexed by its code, x_1 most significant), read from ``forward`` on all 2^dim
    vectors in ``all_binary`` order; None when some output i depends on x_i or a later coordinate
    on these vectors (then forward has no conditionals to read: ``autoregressive`` names that)."""
    rows = np.asarray(forward, dtype=np.float64).reshape((2,) * dim + (dim,))
    out = []
    for i in range(dim):
        by_prefix = rows[..., i].reshape(2 ** i, 2 ** (dim - i))
        if not np.allclose(by_prefix, by_prefix[:, :1], rtol=0, atol=atol):
            return None
        out.append(by_prefix[:, 0])
    return out


def log_prob_conditionals(log_prob: np.ndarray, dim: int) -> list[np.ndarray]:
    """Per coordinate i, the logit of p(x_i = 1 | x_<i) under ``softmax(log_prob)`` (the
    distribution the sampling test compares the samples with), for each prefix code; found by
    marginalising, whatever log_prob's formula."""
    table = np.asarray(log_prob, dtype=np.float64).reshape((2,) * dim)
    out = []
    for i in range(dim):
        marginal = logsumexp(table, axis=tuple(range(i + 1, dim))) if i + 1 < dim else table
        marginal = marginal.reshape(2 ** i, 2)
        with np.errstate(invalid="ignore"):
            out.append(marginal[:, 1] - marginal[:, 0])
    return out


def conditional_pvalue(samples: np.ndarray, logits: list[np.ndarray], min_expected: float = 5.0) -> float:
    """p-value of the hypothesis that ``samples`` [n, d] were drawn coordinate by coordinate with
    p(x_i = 1 | x_<i) = sigmoid(logits[i][prefix code]): the squared standardised binomial
    residuals of every (coordinate, prefix) with at least ``min_expected`` expected ones and zeros,
    summed (chi-square, one degree of freedom each). 0 when a sample has probability 0."""
    n, dim = samples.shape
    bits = samples.astype(np.int64)
    stat, dof = 0.0, 0
    for i in range(dim):
        codes = bits[:, :i] @ (1 << np.arange(i - 1, -1, -1)) if i else np.zeros(n, dtype=np.int64)
        totals = np.bincount(codes, minlength=2 ** i).astype(np.float64)
        ones = np.bincount(codes, weights=bits[:, i], minlength=2 ** i)
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-np.asarray(logits[i], dtype=np.float64)))
        if ((p == 0) & (ones > 0)).any() or ((p == 1) & (ones < totals)).any():
            return 0.0
        keep = (totals * p >= min_expected) & (totals * (1 - p) >= min_expected)
        expected = totals[keep] * p[keep]
        stat += float(np.sum((ones[keep] - expected) ** 2 / (expected * (1 - p[keep]))))
        dof += int(keep.sum())
    return float(stats.chi2.sf(stat, dof)) if dof else 1.0


def explained_by_log_prob(rubric: Rubric, value: dict, samples: np.ndarray) -> Verdict | None:
    """The sampling test's failure, when ``log_prob`` explains it: the samples follow forward's own
    conditionals (ancestral sampling is right) and exp(log_prob)'s conditionals are not forward's
    (log_prob is not the chain rule on forward). The one definition of the grader and of the
    student kit, which has no chain rule: log_prob's conditionals come from marginalising
    exp(log_prob). Where ``log_prob_consistent`` is graded (the TA's grading), it counts that
    mistake and the sampler passes; in the kit, which cannot run it, this check reports it, by
    name (never as a sampling mistake). None when the failure is not explained so."""
    forward, why = _rows(value, "forward")
    log_prob, why_lp = _rows(value, "log_prob")
    if why or why_lp:
        return None
    atol = rubric.tolerances["fvbn"].atol
    conditionals = forward_conditionals(forward, SAMPLE_DIM, atol)
    if conditionals is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        p_forward = [1.0 / (1.0 + np.exp(-c)) for c in conditionals]
        p_log_prob = [1.0 / (1.0 + np.exp(-c)) for c in log_prob_conditionals(log_prob, SAMPLE_DIM)]
    if all(np.allclose(a, b, rtol=0, atol=atol) for a, b in zip(p_forward, p_log_prob)):
        return None   # log_prob agrees with forward: the sampler is what fails
    if conditional_pvalue(samples, conditionals) < rubric.sampling_alpha:
        return None   # the samples do not follow forward's conditionals either
    found = (f"{SAMPLE_N} samples of FVBN({SAMPLE_DIM}) follow the conditionals of forward(x): the sampler is "
             "right; exp(log_prob) disagrees with them because log_prob is not the chain rule on forward's "
             "logits")
    if "log_prob_consistent" in rubric.points.get(FUNCTION, {}):
        return Verdict(True, f"{found}, which log_prob_consistent counts")
    name = "log_prob_not_chain_rule"   # the self-check: log_prob_consistent is the TA's only
    return Verdict(False, f"{found} (the TA's grading counts it under log_prob_consistent, which this "
                          "self-check cannot run; fix log_prob, not sample)",
                   expected="exp(log_prob) with forward's conditionals", got="other conditionals",
                   diagnosis=name, explanation=GENERIC[name])


def judge_reproducible(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = check.cases[0]
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason)
    steps = value.get("samples", [])
    if any("raised" in s for s in steps):
        return Verdict(False, "`sample` raised")
    first, again, other = (as_array(s["value"]) for s in steps)
    name = "sampler_ignores_generator"
    if first.shape != again.shape or not np.array_equal(first, again):
        return Verdict(False, "two calls of sample(n, generator=torch.Generator().manual_seed(s)) with the same s "
                              "gave different samples", expected="identical samples", got="different samples",
                       diagnosis=name, explanation=GENERIC[name])
    if np.array_equal(first[: other.shape[0]], other):
        return Verdict(False, "generators with different seeds gave identical samples", diagnosis=name,
                       explanation=GENERIC[name])
    return Verdict(True, "samples are reproducible from the generator")


def build_suite(rubric: Rubric, oracle) -> Suite:
    from grader.checks.base import function_rng

    rng = function_rng(rubric, FUNCTION)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=6)]

    def case(dim: int, param_seed: int, samples: list[list[int]], suffix: str = "",
             construct_seed: int | None = None) -> Case:
        x = all_binary(dim)
        return Case(f"FVBN/dim{dim}{suffix}", FUNCTION, kind="fvbn",
                    extra={"class": "FVBN", "dim": dim, "param_seed": param_seed,
                           "construct_seed": param_seed if construct_seed is None else construct_seed,
                           "forward": x, "log_prob": x, "samples": samples})

    sampling = case(SAMPLE_DIM, seeds[0], [[SAMPLE_N, seeds[1]], [SAMPLE_N, seeds[1]], [OTHER_SEED_N, seeds[2]]])
    # each property dimension under two parameter draws (the second seed: a fixed offset, so the
    # existing draws are kept) of one model built under the same seed, whose outputs must differ
    # (``_same_under_redraw``)
    props = [case(d, seeds[3 + i], [[8, seeds[5]]]) for i, d in enumerate(PROPERTY_DIMS)]
    props += [case(d, (seeds[3 + i] + REDRAW_OFFSET) % (2**31 - 1), [[8, seeds[5]]], suffix="/redraw",
                   construct_seed=seeds[3 + i]) for i, d in enumerate(PROPERTY_DIMS)]
    every = (sampling, *props)
    judges = {
        "interface": (judge_interface, every, "forward, log_prob and sample have the contract's shapes and values", ()),
        "autoregressive": (judge_autoregressive, tuple(props), "output i depends only on x_<i, and some output on x_<i, whatever the parameters", ("interface",)),
        "log_prob_consistent": (judge_log_prob, every, "log_prob is the chain rule on forward's logits", ("interface",)),
        "normalised": (judge_normalised, every, "exp(log_prob) sums to 1 over all binary vectors", ("interface",)),
        "sampling_consistent": (judge_sampling, (sampling,), "samples follow exp(log_prob) (chi-square test)", ("interface",)),
        "sample_reproducible": (judge_reproducible, (sampling,), "sample is reproducible with a torch.Generator", ("interface",)),
    }
    judges_with_oracle = {judge_log_prob}
    unknown = sorted(set(rubric.points[FUNCTION]) - set(judges))
    if unknown:  # as the other suites: a typo would otherwise drop a graded check without a word
        raise KeyError(f"[points.{FUNCTION}] lists {unknown}, for which the grader has no checks")
    if "log_prob_consistent" in rubric.points[FUNCTION] and not getattr(oracle, "has_chain_rule", False):
        raise ValueError("FVBN/log_prob_consistent needs an oracle with the chain rule (the reference): "
                         "drop it from this rubric (the kit does)")
    checks = tuple(Check(FUNCTION, name, desc, cases,
                         partial(judge, rubric, oracle) if judge in judges_with_oracle else partial(judge, rubric),
                         requires)
                   for name, (judge, cases, desc, requires) in judges.items() if name in rubric.points[FUNCTION])
    return Suite(FUNCTION, checks)
