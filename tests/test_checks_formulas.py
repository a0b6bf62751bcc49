"""The formula checks: every correct style earns full marks, every catalogued mistake is caught
and named, partial credit follows the rubric's gates. Trusted code only (no student files)."""
from __future__ import annotations

from decimal import Decimal

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import failed, run_trusted
from student_mistakes import HANDWRITTEN, NOT_HANDWRITABLE
from grader.checks import build_suites, formulas as formula_checks
from grader.mistakes import CATALOGUE
from grader.reference_oracle import ReferenceOracle
from grader.rubric import load_rubric
from grader.scoring import total
from reference import formulas

RUBRIC = load_rubric()
SUITES = {s.function: s for s in build_suites(RUBRIC, ReferenceOracle())}
REFERENCE = {name: getattr(formulas, name) for name in formula_checks.SPECS}


def _flat(t):
    return t.reshape(-1)


# Correct styles a student may write; each must earn full marks.
def bce_discriminator_loss(real_logits, fake_logits):
    r, f = _flat(real_logits), _flat(fake_logits)
    return 0.5 * F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + \
        0.5 * F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))


def distributions_discriminator_loss(real_logits, fake_logits):
    b = torch.distributions.Bernoulli
    r, f = _flat(real_logits), _flat(fake_logits)
    return -0.5 * b(logits=r).log_prob(torch.ones_like(r)).mean() - 0.5 * b(logits=f).log_prob(torch.zeros_like(f)).mean()


def loop_float64_kl(mu, logvar):
    out = []
    for m_row, lv_row in zip(mu.double(), logvar.double()):
        acc = torch.zeros((), dtype=torch.float64)
        for m, lv in zip(m_row, lv_row):
            acc = acc + 0.5 * (torch.exp(lv) + m * m - 1 - lv)
        out.append(acc)
    return torch.stack(out)


def distributions_kl(mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(q, p).sum(-1)


def softplus_bll(x, logits):
    return -(x * F.softplus(-logits) + (1 - x) * F.softplus(logits)).sum(-1)


def bce_bll(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def generator_loss_minimal(fake_logits, kind="non_saturating"):
    f = fake_logits.flatten()
    if kind == "non_saturating":
        return -0.5 * F.logsigmoid(f).mean()
    if kind == "minimax":
        return 0.5 * F.logsigmoid(-f).mean()
    raise ValueError(kind)


def float32_internal_elbo(x, logits, mu, logvar):
    """Computes in float32 whatever the input precision: allowed ('either precision')."""
    x, logits, mu, logvar = (t.float() for t in (x, logits, mu, logvar))
    return softplus_bll(x, logits) - 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)


STYLES = [
    ("discriminator_loss", bce_discriminator_loss),
    ("discriminator_loss", distributions_discriminator_loss),
    ("gaussian_kl", loop_float64_kl),
    ("gaussian_kl", distributions_kl),
    ("bernoulli_log_likelihood", softplus_bll),
    ("bernoulli_log_likelihood", bce_bll),
    ("chain_rule_log_likelihood", bce_bll),
    ("generator_loss", generator_loss_minimal),
    ("elbo", float32_internal_elbo),
]


@pytest.mark.parametrize("function", list(formula_checks.SPECS))
def test_reference_earns_full_marks(function):
    results = run_trusted(SUITES[function], REFERENCE, RUBRIC)
    assert failed(results) == {}
    assert total(results) == (RUBRIC.max_score(function), RUBRIC.max_score(function))


@pytest.mark.parametrize("function,impl", STYLES, ids=[f"{f}-{i.__name__}" for f, i in STYLES])
def test_correct_styles_earn_full_marks(function, impl):
    results = run_trusted(SUITES[function], {**REFERENCE, function: impl}, RUBRIC)
    assert {k: v.message for k, v in failed(results).items()} == {}


@pytest.mark.parametrize("mistake", CATALOGUE, ids=[f"{m.function}-{m.name}" for m in CATALOGUE])
def test_every_catalogued_mistake_is_caught_and_named(mistake):
    results = run_trusted(SUITES[mistake.function], {**REFERENCE, mistake.function: mistake.compute}, RUBRIC)
    bad = failed(results)
    assert bad, "a catalogued mistake must fail at least one check"
    assert mistake.name in {r.diagnosis for r in bad.values()}
    score, top = total(results)
    assert score < top


def test_every_catalogued_mistake_is_also_written_by_hand():
    """A new catalogue entry needs its hand-written student twin (tests/student_mistakes.py), or
    a stated reason why no student could write it."""
    catalogue = {(m.function, m.name) for m in CATALOGUE}
    assert catalogue - set(HANDWRITTEN) - set(NOT_HANDWRITABLE) == set()
    assert set(HANDWRITTEN) - catalogue == set(), "hand-written mistakes with no catalogue entry"


def _diagnoses(function, impl):
    results = run_trusted(SUITES[function], {**REFERENCE, function: impl}, RUBRIC)
    return results, {r.diagnosis for r in failed(results).values()}


@pytest.mark.parametrize("key", sorted(HANDWRITTEN), ids=[f"{f}-{n}" for f, n in sorted(HANDWRITTEN)])
def test_a_handwritten_mistake_is_caught_and_named(key):
    """The mistake written independently, as a student writes it (not the catalogue's compute,
    against which the diagnosis is compared): the judge must still name it."""
    function, name = key
    catalogued = next(m.compute for m in CATALOGUE if (m.function, m.name) == key)
    assert HANDWRITTEN[key] is not catalogued
    results, diagnoses = _diagnoses(function, HANDWRITTEN[key])
    assert name in diagnoses, {r.name: (r.diagnosis, r.message[:200]) for r in failed(results).values()}
    score, top = total(results)
    assert score < top


def test_a_wrong_function_no_mistake_explains_gets_no_diagnosis_from_the_catalogue():
    """The naming is not vacuous: a wrong KL that matches no catalogued mistake (a factor 1/3)
    fails its value check without any catalogue name attached."""
    def third(mu, logvar):
        return torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1) / -3.0
    results, diagnoses = _diagnoses("gaussian_kl", third)
    assert "value" in failed(results)
    assert diagnoses & {m.name for m in CATALOGUE} == set()


def test_unstable_loss_gets_partial_credit_only_for_stability():
    m = next(m for m in CATALOGUE if m.function == "discriminator_loss" and m.name == "unstable_log_sigmoid")
    results = run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": m.compute}, RUBRIC)
    assert set(failed(results)) == {"extreme_logits"}
    assert total(results)[0] == RUBRIC.max_score("discriminator_loss") - RUBRIC.check_points("discriminator_loss", "extreme_logits")


def test_concatenated_bce_loses_only_the_unequal_batch_check():
    def concat(real_logits, fake_logits):
        logits = torch.cat([_flat(real_logits), _flat(fake_logits)])
        labels = torch.cat([torch.ones_like(_flat(real_logits)), torch.zeros_like(_flat(fake_logits))])
        return F.binary_cross_entropy_with_logits(logits, labels)
    results = run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": concat}, RUBRIC)
    bad = failed(results)
    assert set(bad) == {"unequal_batches"}
    assert bad["unequal_batches"].diagnosis == "concatenated_batches"


def test_wrong_formula_zeroes_dependent_checks():
    def sign_flip(real_logits, fake_logits):
        return -formulas.discriminator_loss(real_logits, fake_logits)
    results = run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": sign_flip}, RUBRIC)
    assert total(results)[0] == Decimal(0)
    gated = {r.name: r.message for r in results if r.name == "inputs_unmodified"}
    assert gated["inputs_unmodified"].startswith("not credited")


def test_in_place_modification_is_caught():
    def clamps(real_logits, fake_logits):
        real_logits.clamp_(-200, 200)
        fake_logits.mul_(1.0)
        real_logits.add_(0.0)
        return formulas.discriminator_loss(real_logits.detach() * 0 + real_logits, fake_logits)
    def squeezes(real_logits, fake_logits):
        return formulas.discriminator_loss(real_logits.squeeze_(-1) if real_logits.dim() == 2 else real_logits,
                                           fake_logits)
    def clamps_values(real_logits, fake_logits):
        with torch.no_grad():
            real_logits.clamp_(-50, 50)                    # changes the +/-100 extreme logits
        return formulas.discriminator_loss(real_logits, fake_logits)
    results = run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": squeezes}, RUBRIC)
    assert failed(results)["inputs_unmodified"].diagnosis == "modified_input"
    bad = failed(run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": clamps_values}, RUBRIC))
    assert bad["inputs_unmodified"].diagnosis == "modified_input"
    assert "`real_logits` was modified in place" in bad["inputs_unmodified"].message
    # In-place operations that leave every value as it was are judged on the values (raw arrays
    # after the call): not `modified_input`; but in-place on a leaf that requires grad breaks
    # autograd, so exactly the gradient check fails, with torch's own error.
    bad = failed(run_trusted(SUITES["discriminator_loss"], {**REFERENCE, "discriminator_loss": clamps}, RUBRIC))
    assert set(bad) == {"gradient"}
    assert "a leaf Variable that requires grad is being used in an in-place operation" in bad["gradient"].message


def test_kind_ignored_gets_partial_credit():
    def ignores(fake_logits, kind="non_saturating"):
        return -0.5 * F.logsigmoid(fake_logits.flatten()).mean()
    results = run_trusted(SUITES["generator_loss"], {**REFERENCE, "generator_loss": ignores}, RUBRIC)
    bad = failed(results)
    assert set(bad) == {"minimax_value", "unknown_kind_raises"}
    assert bad["minimax_value"].diagnosis == "kind_ignored"
    assert bad["unknown_kind_raises"].diagnosis == "kind_not_validated"


def test_numpy_implementation_is_not_differentiable():
    def via_numpy(mu, logvar):
        m, lv = mu.detach().numpy(), logvar.detach().numpy()
        return torch.from_numpy((0.5 * (__import__("numpy").exp(lv) + m ** 2 - 1 - lv)).sum(-1))
    results = run_trusted(SUITES["gaussian_kl"], {**REFERENCE, "gaussian_kl": via_numpy}, RUBRIC)
    bad = failed(results)
    assert set(bad) == {"gradient"}
    assert bad["gradient"].diagnosis == "not_differentiable"


def test_missing_function_fails_with_its_name():
    results = run_trusted(SUITES["elbo"], {k: v for k, v in REFERENCE.items() if k != "elbo"}, RUBRIC)
    assert all(not r.passed for r in results)
    assert "`elbo` is not defined" in failed(results)["value"].message


def test_failure_message_reads_like_pytest():
    m = next(m for m in CATALOGUE if m.function == "gaussian_kl" and m.name == "missing_half")
    results = run_trusted(SUITES["gaussian_kl"], {**REFERENCE, "gaussian_kl": m.compute}, RUBRIC)
    msg = failed(results)["value"].message
    assert msg.startswith("Likely mistake (missing_half): The 1/2 factor is missing.")
    assert "value(s) differ (tolerance rtol=1e-05, atol=1e-06)" in msg
    assert "max abs difference" in msg and "first at index [0]" in msg
    assert "inputs: mu: float64 [8, 4]" in msg


def test_full_hidden_inputs_go_to_the_ta_only():
    from grader.reports import feedback_markdown
    from grader.results import StudentResult

    m = next(m for m in CATALOGUE if m.function == "elbo" and m.name == "plus_kl")
    results = run_trusted(SUITES["elbo"], {**REFERENCE, "elbo": m.compute}, RUBRIC)
    value = failed(results)["value"]
    assert value.hidden["case"] == "elbo/value/0"
    x = value.hidden["args"][0]
    assert x["dtype"] == "float64" and x["shape"] == [8, 16] and len(x["data"]) == 8
    record = StudentResult("s", "ok", "", results, {}, {}, {})
    assert '"hidden"' in record.to_json()
    md = feedback_markdown(record)
    logits = value.hidden["args"][1]["data"]
    assert "elbo/value/0" not in md
    assert repr(logits[0][3]) not in md and repr(logits[1][0]) not in md


def test_a_match_on_nan_alone_is_named_with_its_doubt():
    """An all-NaN result (from any cause) equals the NaN of 'logits taken as probabilities' on
    ordinary inputs: the diagnosis says that the match rests on NaN alone."""
    import numpy as np

    from grader.checks.formulas import NAN_ONLY_MATCH, diagnose

    oracle = ReferenceOracle()
    case = next(c for ch in SUITES["discriminator_loss"].checks if ch.name == "value" for c in ch.cases)
    name, explanation = diagnose(oracle, case, np.array(float("nan")), RUBRIC)
    assert name == "probabilities_as_logits" and explanation.endswith(NAN_ONLY_MATCH)
    _, finite = diagnose(oracle, case, np.asarray(oracle.value(case)) * 2, RUBRIC)
    assert NAN_ONLY_MATCH not in finite
