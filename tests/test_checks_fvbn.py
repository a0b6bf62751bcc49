"""FVBN checks on trusted models: the reference family passes; each classic structural mistake
fails the check that names it. Trusted code only (no student files)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine_helpers import failed, run_trusted
from grader.checks import fvbn
from grader.reference_oracle import ReferenceOracle
from grader.rubric import load_rubric
from reference.formulas import chain_rule_log_likelihood
from reference.models.fvbn import CausalConvNet, LogisticFVBN, MADE, NADE

RUBRIC = load_rubric()
SUITE = fvbn.build_suite(RUBRIC, ReferenceOracle())


class MaskedFVBN(nn.Module):
    """A logistic FVBN whose mask, sampler and log_prob can be broken one at a time."""

    diagonal = 0                    # -1: strictly lower (correct); 0: includes the diagonal
    mask_as_parameter = False

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, dim)
        mask = torch.tril(torch.ones(dim, dim), diagonal=self.diagonal)
        if self.mask_as_parameter:
            self.mask = nn.Parameter(mask)
        else:
            self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.linear(x, self.linear.weight * self.mask, self.linear.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            p = torch.sigmoid(self(x)[:, i])
            x[:, i] = torch.bernoulli(p, generator=generator)
        return x


class Correct(MaskedFVBN):
    diagonal = -1


class DiagonalLeak(MaskedFVBN):
    diagonal = 0


class MaskIsParameter(Correct):
    mask_as_parameter = True


class IgnoresGenerator(Correct):
    def sample(self, n, generator=None):
        return super().sample(n, generator=None)


class NotAncestral(Correct):
    def sample(self, n, generator=None):
        p = torch.sigmoid(self(torch.zeros(n, self.dim)))
        return torch.bernoulli(p, generator=generator)


class NegatedLogProb(Correct):
    def log_prob(self, x):
        return -super().log_prob(x)


class NoParameters(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.zeros_like(x)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    def sample(self, n, generator=None):
        return torch.bernoulli(torch.full((n, self.dim), 0.5), generator=generator)


@pytest.mark.parametrize("cls", [
    LogisticFVBN, Correct,
    lambda d: MADE(d, 16), lambda d: NADE(d, 8), lambda d: CausalConvNet(d, 8, 3),
], ids=["reference-logistic", "masked", "made", "nade", "wavenet"])
def test_correct_models_earn_full_marks(cls):
    results = run_trusted(SUITE, {"FVBN": cls}, RUBRIC)
    assert {k: v.message for k, v in failed(results).items()} == {}


@pytest.mark.parametrize("cls,check,diagnosis", [
    (DiagonalLeak, "autoregressive", "mask_includes_diagonal"),
    (MaskIsParameter, "autoregressive", "not_autoregressive"),
    (IgnoresGenerator, "sample_reproducible", "sampler_ignores_generator"),
    (NotAncestral, "sampling_consistent", "sampling_mismatch"),
    (NegatedLogProb, "log_prob_consistent", "log_prob_not_chain_rule"),
    (NegatedLogProb, "normalised", "not_normalised"),
    (NoParameters, "interface", None),
])
def test_structural_mistakes_fail_the_check_that_names_them(cls, check, diagnosis):
    bad = failed(run_trusted(SUITE, {"FVBN": cls}, RUBRIC))
    assert check in bad
    assert bad[check].diagnosis == diagnosis


def test_a_missing_class_is_named():
    bad = failed(run_trusted(SUITE, {}, RUBRIC))
    assert "`FVBN` is not defined in your submission" in bad["interface"].message


def test_chi_square_pvalue_is_uniformish_for_exact_samples():
    """The sampling test's false-failure rate is its alpha: over 200 exact samplers (different
    seeds), p-values below 0.05 occur about 5% of the time (checked loosely: at most 10%)."""
    import numpy as np

    rng = np.random.default_rng(0)
    log_prob = np.log(rng.dirichlet(np.ones(16)))
    lows = 0
    for seed in range(200):
        codes = np.random.default_rng(seed).choice(16, size=fvbn.SAMPLE_N, p=np.exp(log_prob))
        samples = ((codes[:, None] >> np.arange(3, -1, -1)) & 1).astype(float)
        p, _ = fvbn.chi_square_pvalue(samples, log_prob)
        lows += p < 0.05
    assert lows <= 20
