"""``reference.formulas`` against independent float64 computations with numpy / scipy.

The expected values never call ``reference.formulas`` or torch: they are re-derived with
``scipy.special.log_expit``, ``scipy.stats.bernoulli`` / ``scipy.stats.norm`` and
``scipy.special.logsumexp``, and the Gaussian KL is checked against numerical integration too.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from reference import formulas as F

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def logits_with_extremes(n: int, seed: int = 0) -> np.ndarray:
    """Random logits in [-10, 10] plus the extremes +-100, +-50 and 0."""
    return np.concatenate([rng(seed).uniform(-10, 10, n), [-100.0, 100.0, -50.0, 50.0, 0.0]])


def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(a, dtype=dtype)


def check(actual: torch.Tensor, expected: np.ndarray, dtype: torch.dtype) -> None:
    assert actual.dtype == dtype
    assert tuple(actual.shape) == np.shape(expected)
    assert torch.isfinite(actual).all()
    np.testing.assert_allclose(actual.detach().double().numpy(), expected, **TOL[dtype])


def bernoulli_logpmf(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log Bernoulli(x; sigmoid(l)) elementwise: scipy's logpmf where it is accurate in float64 (|l| <= 10;
    beyond, 1 - sigmoid(l) loses digits and rounds to 0 near |l| = 37), the log-expit form elsewhere."""
    moderate = np.abs(logits) <= 10
    out = x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits)
    out[moderate] = stats.bernoulli.logpmf(x[moderate], special.expit(logits[moderate]))
    return out


# ------------------------------------------------------------------------------------------------
# GAN losses
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_log_sigmoid_and_complement(dtype):
    l = logits_with_extremes(50)
    check(F.log_sigmoid(t(l, dtype)), special.log_expit(l), dtype)
    check(F.log_one_minus_sigmoid(t(l, dtype)), special.log_expit(-l), dtype)
    # log(1 - sigmoid(l)) is the log-probability of the complement: the two exponentiate to 1
    np.testing.assert_allclose(np.exp(special.log_expit(l)) + np.exp(special.log_expit(-l)), 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_column", [False, True])
def test_discriminator_loss_unequal_batches(dtype, as_column):
    real, fake = logits_with_extremes(37, seed=1), logits_with_extremes(11, seed=2)
    expected = -0.5 * special.log_expit(real).mean() - 0.5 * special.log_expit(-fake).mean()
    shape = (lambda a: a[:, None]) if as_column else (lambda a: a)
    out = F.discriminator_loss(t(shape(real), dtype), t(shape(fake), dtype))
    check(out, np.asarray(expected), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_column", [False, True])
def test_generator_losses(dtype, as_column):
    fake = logits_with_extremes(23, seed=3)
    x = t(fake[:, None] if as_column else fake, dtype)
    check(F.generator_loss(x), np.asarray(-0.5 * special.log_expit(fake).mean()), dtype)
    check(F.generator_loss(x, kind="non_saturating"), np.asarray(-0.5 * special.log_expit(fake).mean()), dtype)
    check(F.generator_loss(x, kind="minimax"), np.asarray(0.5 * special.log_expit(-fake).mean()), dtype)


def test_generator_loss_unknown_kind():
    with pytest.raises(ValueError):
        F.generator_loss(torch.zeros(3), kind="wasserstein")


def test_bad_logit_shape():
    with pytest.raises(ValueError):
        F.discriminator_loss(torch.zeros(3, 2), torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# VAE
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_reparameterize(dtype):
    r = rng(4)
    mu, logvar, eps = r.normal(size=(6, 3)), r.uniform(-10, 10, (6, 3)), r.normal(size=(6, 3))
    check(F.reparameterize(t(mu, dtype), t(logvar, dtype), t(eps, dtype)), mu + np.sqrt(np.exp(logvar)) * eps, dtype)


def kl_closed_form(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2 per coordinate, summed over the last axis."""
    s = np.sqrt(np.exp(logvar))
    return (-np.log(s) + (s ** 2 + mu ** 2) / 2 - 0.5).sum(axis=-1)


def test_kl_closed_form_matches_numerical_integration():
    for m, lv in [(0.0, 0.0), (1.3, -0.7), (-2.0, 1.5), (0.4, -3.0)]:
        q = stats.norm(m, math.exp(lv / 2))
        integrand = lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z))  # noqa: E731
        lo, hi = q.ppf(1e-12), q.isf(1e-12)
        numeric, _ = integrate.quad(integrand, lo, hi, epsabs=1e-12, epsrel=1e-10, limit=200)
        assert numeric == pytest.approx(kl_closed_form(np.array([m]), np.array([lv])), abs=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_kl(dtype):
    r = rng(5)
    mu, logvar = r.normal(0, 2, (8, 5)), r.uniform(-10, 10, (8, 5))
    check(F.gaussian_kl(t(mu, dtype), t(logvar, dtype)), kl_closed_form(mu, logvar), dtype)
    check(F.gaussian_kl(torch.zeros(2, 4, dtype=dtype), torch.zeros(2, 4, dtype=dtype)), np.zeros(2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_log_likelihood_and_chain_rule(dtype):
    r = rng(6)
    logits = np.concatenate([r.uniform(-10, 10, (6, 7)), np.array([[-100, 100, -100, 100, 50, -50, 0]] * 2)])
    x = r.integers(0, 2, logits.shape).astype(np.float64)
    x[-2] = [0, 1, 1, 0, 1, 0, 1]  # the extremes, both agreeing (~0) and disagreeing (~ -100)
    expected = bernoulli_logpmf(x, logits).sum(axis=-1)
    check(F.bernoulli_log_likelihood(t(x, dtype), t(logits, dtype)), expected, dtype)
    check(F.chain_rule_log_likelihood(t(x, dtype), t(logits, dtype)), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elbo(dtype):
    r = rng(7)
    x = r.integers(0, 2, (5, 9)).astype(np.float64)
    logits, mu, logvar = r.uniform(-100, 100, (5, 9)), r.normal(size=(5, 3)), r.uniform(-10, 10, (5, 3))
    expected = bernoulli_logpmf(x, logits).sum(-1) - kl_closed_form(mu, logvar)
    out = F.elbo(t(x, dtype), t(logits, dtype), t(mu, dtype), t(logvar, dtype))
    assert out.dtype == dtype and out.shape == (5,)
    # the terms reach ~ 1e4 here; compare relative to that scale in float32
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * 1e3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_log_density(dtype):
    r = rng(8)
    z, mu, logvar = r.normal(size=(4, 6, 3)), r.normal(size=(4, 6, 3)), r.uniform(-3, 3, (4, 6, 3))
    expected = stats.norm.logpdf(z, loc=mu, scale=np.sqrt(np.exp(logvar))).sum(-1)
    check(F.gaussian_log_density(t(z, dtype), t(mu, dtype), t(logvar, dtype)), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 5, 100])
def test_importance_weighted_bound(dtype, k):
    r = rng(9)
    B, K = 6, 3
    mu, logvar = r.normal(size=(B, K)), r.uniform(-2, 2, (B, K))
    z = mu + np.sqrt(np.exp(logvar)) * r.normal(size=(k, B, K))
    log_px = r.uniform(-60, -5, (k, B))
    log_w = log_px + stats.norm.logpdf(z).sum(-1) - stats.norm.logpdf(z, mu, np.sqrt(np.exp(logvar))).sum(-1)
    expected = special.logsumexp(log_w, axis=0) - np.log(k)
    check(F.importance_weighted_bound(t(log_px, dtype), t(z, dtype), t(mu, dtype), t(logvar, dtype)), expected, dtype)


# ------------------------------------------------------------------------------------------------
# Purity and gradients
# ------------------------------------------------------------------------------------------------

def _cases(dtype: torch.dtype) -> list[tuple[str, callable, tuple[torch.Tensor, ...], tuple[int, ...]]]:
    """(name, function, args, indices of the differentiable args) for every formula."""
    g = torch.Generator().manual_seed(0)
    n = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    x = torch.randint(0, 2, (4, 5), generator=g).to(dtype)
    k, B, K = 3, 4, 2
    return [
        ("log_sigmoid", F.log_sigmoid, (3 * n(7),), (0,)),
        ("log_one_minus_sigmoid", F.log_one_minus_sigmoid, (3 * n(7),), (0,)),
        ("discriminator_loss", F.discriminator_loss, (n(5, 1), n(3, 1)), (0, 1)),
        ("generator_loss", F.generator_loss, (n(5),), (0,)),
        ("generator_loss_minimax", lambda l: F.generator_loss(l, kind="minimax"), (n(5, 1),), (0,)),
        ("reparameterize", F.reparameterize, (n(B, K), n(B, K), n(B, K)), (0, 1, 2)),
        ("gaussian_kl", F.gaussian_kl, (n(B, K), n(B, K)), (0, 1)),
        ("bernoulli_log_likelihood", F.bernoulli_log_likelihood, (x, 3 * n(4, 5)), (1,)),
        ("elbo", F.elbo, (x, 3 * n(4, 5), n(4, K), n(4, K)), (1, 2, 3)),
        ("chain_rule_log_likelihood", F.chain_rule_log_likelihood, (x, 3 * n(4, 5)), (1,)),
        ("gaussian_log_density", F.gaussian_log_density, (n(k, B, K), n(B, K), n(B, K)), (0, 1, 2)),
        ("importance_weighted_bound", F.importance_weighted_bound, (n(k, B), n(k, B, K), n(B, K), n(B, K)), (0, 1, 2, 3)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(_cases(torch.float64))))
def test_inputs_not_modified(dtype, case):
    name, fn, args, _ = _cases(dtype)[case]
    before = [a.clone() for a in args]
    out = fn(*args)
    assert out.dtype == dtype, name
    for a, b in zip(args, before):
        assert torch.equal(a, b), f"{name} modified an input"


@pytest.mark.parametrize("case", range(len(_cases(torch.float64))))
def test_gradcheck(case):
    name, fn, args, diff = _cases(torch.float64)[case]
    args = tuple(a.clone().requires_grad_(i in diff) for i, a in enumerate(args))
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6), name


def test_gradients_finite_at_extreme_logits():
    l = torch.tensor([-100.0, 100.0, -1e4, 1e4], requires_grad=True)
    F.discriminator_loss(l, l).backward()
    assert torch.isfinite(l.grad).all()
