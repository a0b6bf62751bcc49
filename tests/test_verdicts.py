"""Verdicts that hold on real code: checks that can fail for the mistake they exist to catch, named
as real code makes them. Every student function here is trusted code written in this file, the
way a student would write the mistake (never a catalogue entry's own ``compute``)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine_helpers import failed, run_trusted
from grader.checks import SuiteBuilder, fvbn
from grader.checks.base import Case, Check, Suite, Verdict
from grader.oracle import OracleUnavailable
from grader.reference_oracle import ReferenceOracle
from grader.check import TA_ONLY
from grader.rubric import load_rubric, public_rubric
from grader.table_oracle import TableOracle
from reference import formulas
from reference.models.fvbn import LogisticFVBN

RUBRIC = load_rubric()
ORACLE = ReferenceOracle()
FVBN_SUITE = fvbn.build_suite(RUBRIC, ORACLE)


def _fvbn_namespace(cls: type) -> dict:
    return {"FVBN": cls, "chain_rule_log_likelihood": formulas.chain_rule_log_likelihood}


class _Sampler(nn.Module):
    """Ancestral sampling from ``forward``'s conditionals (right for any ``forward``)."""

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            x[:, i] = torch.bernoulli(torch.sigmoid(self.forward(x)[:, i]), generator=generator)
        return x

    def log_prob(self, x):
        return formulas.chain_rule_log_likelihood(x, self.forward(x))


class IndependentPixels(_Sampler):
    """forward = bias.expand(B, D): every conditional ignores x_<i."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.bias.expand(x.shape[0], self.dim)


class ConstantLogits(_Sampler):
    """Masked weights held in a buffer; the parameter is never used: outputs ignore the parameters."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.unused = nn.Parameter(torch.zeros(dim))
        self.register_buffer("weight", torch.tril(torch.randn(dim, dim), diagonal=-1))

    def forward(self, x):
        return F.linear(x, self.weight)


class LogProbSigmoidTwice(LogisticFVBN):
    """A right sampler (the reference's), and a log_prob that squashes the logits first."""

    def log_prob(self, x):
        return formulas.chain_rule_log_likelihood(x, torch.sigmoid(self.forward(x)))


def test_an_independent_pixel_model_fails_autoregressive_by_name():
    results = failed(run_trusted(FVBN_SUITE, _fvbn_namespace(IndependentPixels), RUBRIC))
    assert results["autoregressive"].diagnosis == "ignores_context", results["autoregressive"].message
    assert "independent-pixel model" in results["autoregressive"].message


def test_logits_that_ignore_the_parameters_fail_interface():
    results = failed(run_trusted(FVBN_SUITE, _fvbn_namespace(ConstantLogits), RUBRIC))
    assert results["interface"].diagnosis == "ignores_parameters", results["interface"].message


def test_the_reference_fvbn_still_passes_every_check():
    assert failed(run_trusted(FVBN_SUITE, _fvbn_namespace(LogisticFVBN), RUBRIC)) == {}


def test_a_right_sampler_is_not_failed_for_log_probs_mistake_and_says_why():
    results = {r.name: r for r in run_trusted(FVBN_SUITE, _fvbn_namespace(LogProbSigmoidTwice), RUBRIC)}
    assert not results["log_prob_consistent"].passed
    sampling = results["sampling_consistent"]
    assert sampling.passed, sampling.message
    assert "the sampler is right" in sampling.message and "log_prob_consistent" in sampling.message
    assert sampling.diagnosis is None and "ancestral" not in sampling.message


class AncestralFromZeros(LogisticFVBN):
    """A wrong sampler (every coordinate drawn from forward(0)) and a right log_prob."""

    @torch.no_grad()
    def sample(self, n, generator=None):
        return torch.bernoulli(torch.sigmoid(self.forward(torch.zeros(n, self.dim))), generator=generator)


class BothWrong(AncestralFromZeros):
    log_prob = LogProbSigmoidTwice.log_prob


def test_the_kit_names_log_probs_mistake_instead_of_the_sampling_advice():
    """The self-check has no log_prob_consistent (no chain rule): a right sampler judged against a
    wrong log_prob fails sampling_consistent by log_prob's name, as the grader explains it (one
    definition), never with the ancestral-sampling advice; a wrong sampler still gets that advice."""
    kit_rubric = public_rubric(RUBRIC, drop=TA_ONLY)
    suite = fvbn.build_suite(kit_rubric, TableOracle.__new__(TableOracle))
    assert "log_prob_consistent" not in {c.name for c in suite.checks}

    def sampling(rubric, suite, cls):
        return next(r for r in run_trusted(suite, _fvbn_namespace(cls), rubric) if r.name == "sampling_consistent")

    kit = sampling(kit_rubric, suite, LogProbSigmoidTwice)
    assert not kit.passed and kit.diagnosis == "log_prob_not_chain_rule", kit.message
    assert "the sampler is right" in kit.message and "fix log_prob, not sample" in kit.message
    assert "ancestral" not in kit.message
    graded = sampling(RUBRIC, FVBN_SUITE, LogProbSigmoidTwice)   # the grader: log_prob_consistent counts it
    assert graded.passed and kit.message.split("\n")[-1].startswith(graded.message.split(", which")[0])
    for cls in (AncestralFromZeros, BothWrong):
        for rubric, s in ((kit_rubric, suite), (RUBRIC, FVBN_SUITE)):
            result = sampling(rubric, s, cls)
            assert (result.passed, result.diagnosis) == (False, "sampling_mismatch"), (cls, result.message)
            assert "ancestral sampling" in result.message


def test_a_gate_that_names_no_check_is_an_error_when_the_suite_is_built():
    check = Check("f", "value", "", (), lambda c, o: Verdict(True))
    typo = Check("f", "float32", "", (), lambda c, o: Verdict(True), requires=("valeu",))
    with pytest.raises(ValueError, match=r"f/float32 builds on valeu"):
        Suite("f", (check, typo))


def test_the_kits_oracle_cannot_reach_a_comparison():
    table = TableOracle.__new__(TableOracle)
    with pytest.raises(OracleUnavailable):
        table.chain_rule(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="log_prob_consistent needs an oracle with the chain rule"):
        fvbn.build_suite(RUBRIC, table)


def _clamped_bce_discriminator_loss(real_logits, fake_logits):
    """What a student writes with nn.BCELoss on probabilities: log clamped at -100 in float32."""
    real, fake = torch.sigmoid(real_logits.reshape(-1)), torch.sigmoid(fake_logits.reshape(-1))
    bce = nn.BCELoss()
    return 0.5 * bce(real, torch.ones_like(real)) + 0.5 * bce(fake, torch.zeros_like(fake))


# the rubric's seed and seeds 40, 41, 46, 69: where inputs drawn without the coverage guarantee had
# no fake logit in the band (a clamped BCELoss passed there); then a few others
@pytest.mark.parametrize("seed", [RUBRIC.seed, 40, 41, 46, 69, *range(6)])
def test_a_clamped_bce_fails_the_float32_extreme_case_whatever_the_seed(seed):
    suite = next(s for s in SuiteBuilder(RUBRIC, ORACLE).for_seed(seed) if s.function == "discriminator_loss")
    check = next(c for c in suite.checks if c.name == "extreme_logits")
    float32_only = replace(suite, checks=tuple(
        replace(c, cases=tuple(case for case in c.cases if case.dtype == "float32")) if c.name == "extreme_logits"
        else c for c in suite.checks))
    assert any(case.dtype == "float32" for case in check.cases)
    fake = next(case for case in check.cases if case.dtype == "float32").args[1]
    assert ((np.abs(fake) > 16) & (np.abs(fake) < 61)).any()  # the band is covered
    results = failed(run_trusted(float32_only, {"discriminator_loss": _clamped_bce_discriminator_loss}, RUBRIC))
    assert "extreme_logits" in results, "a clamped BCELoss passed the float32 extreme case"


def _labels_filled_in_place(real_logits, fake_logits):
    real, fake = real_logits.reshape(-1), fake_logits.reshape(-1)
    labels = torch.ones_like(real)
    loss_real = F.binary_cross_entropy_with_logits(real, labels)
    labels.fill_(0.0)  # reused for the fakes: in place on a tensor backward still needs
    loss_fake = F.binary_cross_entropy_with_logits(fake, labels[: fake.shape[0]] if fake.shape[0] <= real.shape[0]
                                                   else torch.zeros_like(fake))
    return 0.5 * loss_real + 0.5 * loss_fake


def test_an_in_place_label_fill_is_named_as_such_not_as_numpy():
    suite = next(s for s in SuiteBuilder(RUBRIC, ORACLE).for_seed(RUBRIC.seed) if s.function == "discriminator_loss")
    results = run_trusted(suite, {"discriminator_loss": _labels_filled_in_place}, RUBRIC)
    by_name = {r.name: r for r in results}
    assert by_name["value"].passed
    gradient = by_name["gradient"]
    assert not gradient.passed and gradient.diagnosis == "inplace_breaks_backward", gradient.message
    assert "numpy" not in gradient.message


def test_hidden_inputs_differ_by_seed_and_repeat_for_the_same_seed():
    builder = SuiteBuilder(RUBRIC, ORACLE)

    def first_input(seed: int) -> np.ndarray:
        suite = builder.for_seed(seed)[0]
        return suite.checks[0].cases[0].args[0]

    assert np.array_equal(first_input(1), first_input(1))
    assert not np.array_equal(first_input(1), first_input(2))
    fixed = [s for s in builder.for_seed(1) if s.function in ("FVBN", "train_gan")]
    assert all(a is b for a, b in zip(fixed, [s for s in builder.for_seed(2) if s.function in ("FVBN", "train_gan")]))


def test_expected_values_follow_the_inputs_not_the_case_id():
    a = Case("discriminator_loss/value/0", "discriminator_loss", (np.zeros(3), np.zeros(3)))
    b = Case("discriminator_loss/value/0", "discriminator_loss", (np.ones(3), np.ones(3)))
    oracle = ReferenceOracle()
    assert not np.allclose(oracle.value(a), oracle.value(b))


def test_a_check_that_fails_behind_a_failed_gate_names_the_gate_not_a_new_mistake():
    def gaussian_kl(mu, logvar):  # wrong everywhere (a third off): no catalogued mistake
        return 0.5 / 1.5 * torch.sum(logvar.exp() + mu ** 2 - 1.0 - logvar, dim=-1)

    suite = next(s for s in SuiteBuilder(RUBRIC, ORACLE).for_seed(RUBRIC.seed) if s.function == "gaussian_kl")
    results = failed(run_trusted(suite, {"gaussian_kl": gaussian_kl}, RUBRIC))
    assert results["value"].diagnosis is None
    extreme = results["extreme_inputs"]
    assert extreme.diagnosis is None and extreme.message.startswith("this check builds on `value`, which failed")


@pytest.mark.parametrize("value, why", [
    ({"value": "3.0"}, "no numeric array `value`"),
    ({"value": np.zeros(2), "grads": "all of them"}, "`grads` is not a list"),
    ({"value": np.zeros(2), "args_after": [np.zeros(2), "x"]}, "`args_after` is not a list of arrays"),
    ({"raised": 3}, "exception report"),
])
def test_malformed_function_values_fail_their_call_before_any_judge(value, why):
    from grader.sandbox import protocol
    from grader.sandbox.pool import _call_result

    message = {"id": "c", "status": "ok", "duration_s": 0.1, "value": protocol.to_jsonable(value)}
    result = _call_result(message, "function")
    assert result.status == "crashed" and why in result.error, result.error
    assert _call_result({**message, "value": protocol.to_jsonable({"value": np.zeros(2)})}, "function").status == "ok"


@pytest.mark.parametrize("value, why", [
    ({"n_parameters": "many"}, "`n_parameters`"),
    ({"n_parameters": 3, "forward": {"value": [1.0]}}, "`forward` has no numeric array"),
    ({"n_parameters": 3, "samples": [{"value": np.zeros(2)}, 7]}, "a `sample` is not an object"),
])
def test_malformed_fvbn_values_fail_their_call(value, why):
    from grader.sandbox import schema

    assert why in (schema.problem("fvbn", value) or "")


def test_a_judge_that_fails_on_well_typed_data_is_the_graders_error():
    from grader.scoring import JudgeError, judge_suite

    def broken(check, outcomes):
        raise ZeroDivisionError("a grader bug")

    suite = Suite("f", (Check("f", "value", "", (), broken),))
    with pytest.raises(JudgeError, match="judging f/value failed: ZeroDivisionError"):
        judge_suite(suite, {})


def test_an_fvbn_check_the_grader_does_not_have_is_an_error_when_the_suite_is_built():
    """As for the formula and workhouse suites: a typo in [points.FVBN] is an error, never a
    graded check dropped without a word."""
    import dataclasses

    points = {**RUBRIC.points, "FVBN": {**RUBRIC.points["FVBN"], "autoregresive": RUBRIC.points["FVBN"]["autoregressive"]}}
    with pytest.raises(KeyError, match=r"\[points.FVBN\] lists \['autoregresive'\]"):
        fvbn.build_suite(dataclasses.replace(RUBRIC, points=points), ReferenceOracle())
