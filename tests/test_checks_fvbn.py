"""FVBN checks on trusted models: the reference family passes; each classic structural mistake
fails the check that names it. Trusted code only (no student files)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
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


SAMPLING_LOG_PROB = np.log(np.random.default_rng(0).dirichlet(np.ones(2 ** fvbn.SAMPLE_DIM)))
N_REPEATS = 200


def _bits(codes: np.ndarray) -> np.ndarray:
    return ((codes[:, None] >> np.arange(fvbn.SAMPLE_DIM - 1, -1, -1)) & 1).astype(float)


def _pvalues(probs: np.ndarray, repeats: int = N_REPEATS) -> np.ndarray:
    """``fvbn.chi_square_pvalue`` of ``repeats`` samplers drawing codes from ``probs``, tested
    against ``SAMPLING_LOG_PROB`` (different seeds, SAMPLE_N samples each)."""
    out = []
    for seed in range(repeats):
        codes = np.random.default_rng(seed).choice(len(probs), size=fvbn.SAMPLE_N, p=probs)
        out.append(fvbn.chi_square_pvalue(_bits(codes), SAMPLING_LOG_PROB)[0])
    return np.array(out)


def assert_uniformish(pvalues: np.ndarray) -> None:
    """p-values of a correct test under its null are U(0, 1): a KS test does not reject, and each
    tail holds about its share (10% +/- 3 binomial sd for 200 draws: 4% to 16%)."""
    pvalues = np.asarray(pvalues, dtype=float)
    assert ((pvalues >= 0) & (pvalues <= 1)).all(), pvalues
    ks = stats.kstest(pvalues, "uniform")
    assert ks.pvalue > 1e-3, f"p-values are not uniform under the null (KS p = {ks.pvalue:.3g})"
    low, high = np.mean(pvalues < 0.1), np.mean(pvalues > 0.9)
    assert 0.04 <= low <= 0.16, f"{low:.1%} of p-values below 0.1"
    assert 0.04 <= high <= 0.16, f"{high:.1%} of p-values above 0.9"
    assert np.mean(pvalues < 0.05) <= 0.10


def test_chi_square_pvalue_is_uniform_for_exact_samples():
    """The sampling test's false-failure rate is its alpha: over 200 exact samplers (different
    seeds), the p-values are uniform on (0, 1) (a p-value function that always says 1.0, or
    that is too lenient or too harsh, fails this)."""
    assert_uniformish(_pvalues(np.exp(SAMPLING_LOG_PROB)))


@pytest.mark.parametrize("pvalues", [
    np.ones(N_REPEATS),                                   # "always fine"
    np.full(N_REPEATS, 0.5),                              # constant
    np.random.default_rng(1).uniform(0.3, 1.0, N_REPEATS),  # too lenient: no low tail
    np.random.default_rng(2).uniform(0.0, 1.0, N_REPEATS) ** 2,  # too harsh: piles up near 0
], ids=["always-one", "constant", "lenient", "harsh"])
def test_uniformity_assertion_rejects_non_uniform_pvalues(pvalues):
    with pytest.raises(AssertionError):
        assert_uniformish(pvalues)


def _independent_pixels(probs: np.ndarray) -> np.ndarray:
    """The product of ``probs``'s marginals: what a sampler that ignores x_<i draws."""
    bits = _bits(np.arange(len(probs)))
    marginals = probs @ bits
    return np.prod(np.where(bits == 1, marginals, 1 - marginals), axis=1)


@pytest.mark.parametrize("wrong", [
    lambda p: _independent_pixels(p),
    lambda p: 0.95 * p + 0.05 / len(p),                   # 5% of draws uniform
    lambda p: np.roll(p, 1),                              # off-by-one codes
], ids=["independent-pixels", "five-percent-off", "shifted"])
def test_a_wrong_sampler_gets_pvalues_below_alpha(wrong):
    probs = wrong(np.exp(SAMPLING_LOG_PROB))
    pvalues = _pvalues(probs / probs.sum(), repeats=20)
    assert (pvalues < RUBRIC.sampling_alpha).all(), pvalues
