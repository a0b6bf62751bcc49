"""Every catalogued mistake (grader/mistakes.py) written again BY HAND, the way a student makes it.

Each function here is written independently of the catalogue and of ``reference.formulas``: plain
torch and ``torch.nn.functional``, in the idioms students use (BCE-with-logits with the wrong
reduction, the Kingma-Welling KL with a dropped minus, ``torch.distributions`` with the arguments
the wrong way round, ...). Grading these must name the mistake; grading the catalogue's own
``compute`` cannot fail to, since the diagnosis compares the student's output with that very
function. Trusted code: run in-process by tests/test_checks_formulas.py through ``run_trusted``.

``HANDWRITTEN[(function, mistake_name)]`` is the buggy student function. ``NOT_HANDWRITABLE``
lists catalogue entries a student cannot write by hand, with the reason (none today).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

HANDWRITTEN: dict[tuple[str, str], object] = {}
NOT_HANDWRITABLE: dict[tuple[str, str], str] = {}


def student(function: str, name: str):
    def register(fn):
        assert (function, name) not in HANDWRITTEN, (function, name)
        HANDWRITTEN[(function, name)] = fn
        return fn
    return register


def _bce(logits, target, reduction="mean"):
    return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)


# --- discriminator_loss(real_logits, fake_logits) ------------------------------------------------
D = "discriminator_loss"


@student(D, "missing_half")
def _(real_logits, fake_logits):
    r, f = real_logits.view(-1), fake_logits.view(-1)
    return _bce(r, torch.ones_like(r)) + _bce(f, torch.zeros_like(f))


@student(D, "sign_flip")
def _(real_logits, fake_logits):
    # "maximise log D(x) + log(1 - D(G(z)))", written as the value instead of the loss
    r, f = real_logits.flatten(), fake_logits.flatten()
    return 0.5 * F.logsigmoid(r).mean() + 0.5 * F.logsigmoid(-f).mean()


@student(D, "real_fake_swapped")
def _(real_logits, fake_logits):
    r, f = real_logits.flatten(), fake_logits.flatten()
    return 0.5 * _bce(r, torch.zeros_like(r)) + 0.5 * _bce(f, torch.ones_like(f))


@student(D, "sum_instead_of_mean")
def _(real_logits, fake_logits):
    r, f = real_logits.flatten(), fake_logits.flatten()
    return 0.5 * (_bce(r, torch.ones_like(r), "sum") + _bce(f, torch.zeros_like(f), "sum"))


@student(D, "concatenated_batches")
def _(real_logits, fake_logits):
    logits = torch.cat([real_logits.flatten(), fake_logits.flatten()])
    labels = torch.cat([torch.ones(real_logits.numel()), torch.zeros(fake_logits.numel())]).to(logits.dtype)
    return _bce(logits, labels)


@student(D, "sigmoid_applied_twice")
def _(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits.flatten()), torch.sigmoid(fake_logits.flatten())
    return 0.5 * _bce(d_real, torch.ones_like(d_real)) + 0.5 * _bce(d_fake, torch.zeros_like(d_fake))


@student(D, "unstable_log_sigmoid")
def _(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits.flatten()), torch.sigmoid(fake_logits.flatten())
    return -0.5 * torch.mean(torch.log(d_real)) - 0.5 * torch.mean(torch.log(1 - d_fake))


@student(D, "probabilities_as_logits")
def _(real_logits, fake_logits):
    d_real, d_fake = real_logits.flatten(), fake_logits.flatten()   # "D(x) is what D returns"
    return -0.5 * torch.mean(torch.log(d_real)) - 0.5 * torch.mean(torch.log(1 - d_fake))


# --- generator_loss(fake_logits, kind) -----------------------------------------------------------
G = "generator_loss"


def _check_kind(kind):
    if kind not in ("non_saturating", "minimax"):
        raise ValueError(f"unknown kind {kind!r}")


@student(G, "missing_half")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    f = fake_logits.flatten()
    if kind == "non_saturating":
        return _bce(f, torch.ones_like(f))
    return -_bce(f, torch.zeros_like(f))


@student(G, "sign_flip")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    f = fake_logits.flatten()
    if kind == "non_saturating":
        return 0.5 * F.logsigmoid(f).mean()
    return -0.5 * F.logsigmoid(-f).mean()


@student(G, "sum_instead_of_mean")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    f = fake_logits.flatten()
    if kind == "non_saturating":
        return 0.5 * _bce(f, torch.ones_like(f), "sum")
    return -0.5 * _bce(f, torch.zeros_like(f), "sum")


@student(G, "kind_ignored")
def _(fake_logits, kind="non_saturating"):
    f = fake_logits.flatten()
    return 0.5 * _bce(f, torch.ones_like(f))


@student(G, "kinds_swapped")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    f = fake_logits.flatten()
    if kind == "minimax":
        return -0.5 * F.logsigmoid(f).mean()
    return 0.5 * F.logsigmoid(-f).mean()


@student(G, "non_saturating_uses_one_minus_d")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    f = fake_logits.flatten()
    if kind == "non_saturating":
        return 0.5 * _bce(f, torch.zeros_like(f))          # -1/2 log(1 - D): the "flipped" saturating loss
    return -0.5 * _bce(f, torch.zeros_like(f))


@student(G, "sigmoid_applied_twice")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    d = torch.sigmoid(fake_logits.flatten())
    if kind == "non_saturating":
        return 0.5 * _bce(d, torch.ones_like(d))
    return -0.5 * _bce(d, torch.zeros_like(d))


@student(G, "unstable_log_sigmoid")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    d = torch.sigmoid(fake_logits.flatten())
    if kind == "non_saturating":
        return -0.5 * torch.log(d).mean()
    return 0.5 * torch.log(1 - d).mean()


@student(G, "probabilities_as_logits")
def _(fake_logits, kind="non_saturating"):
    _check_kind(kind)
    d = fake_logits.flatten()
    if kind == "non_saturating":
        return -0.5 * torch.log(d).mean()
    return 0.5 * torch.log(1 - d).mean()


# --- reparameterize(mu, logvar, eps) -------------------------------------------------------------
R = "reparameterize"


@student(R, "logvar_as_std")
def _(mu, logvar, eps):
    std = logvar.exp()
    return eps.mul(std).add(mu)


@student(R, "logvar_as_sigma")
def _(mu, logvar, eps):
    return mu + eps * logvar


@student(R, "sign_flip")
def _(mu, logvar, eps):
    std = torch.sqrt(torch.exp(logvar))
    return mu - std * eps


@student(R, "mu_missing")
def _(mu, logvar, eps):
    return eps * torch.exp(logvar / 2)


# --- gaussian_kl(mu, logvar) ---------------------------------------------------------------------
K = "gaussian_kl"


@student(K, "sign_flip")
def _(mu, logvar):
    # Kingma & Welling's -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2) with the leading minus dropped
    return 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


@student(K, "missing_half")
def _(mu, logvar):
    return -torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


@student(K, "missing_constant")
def _(mu, logvar):
    return -0.5 * torch.sum(logvar - mu ** 2 - torch.exp(logvar), dim=-1)


@student(K, "logvar_as_log_std")
def _(mu, logvar):
    sigma = torch.exp(logvar)                               # "log sigma"
    return torch.sum(-torch.log(sigma) + (sigma ** 2 + mu ** 2) / 2 - 0.5, dim=-1)


@student(K, "reversed_kl")
def _(mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(p, q).sum(-1)


@student(K, "mean_over_dims")
def _(mu, logvar):
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


@student(K, "batch_mean")
def _(mu, logvar):
    return torch.mean(-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))


@student(K, "batch_sum")
def _(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# --- bernoulli_log_likelihood(x, logits) and chain_rule_log_likelihood(x, conditional_logits) ----
def _likelihood(function: str) -> None:
    @student(function, "sign_flip")
    def _(x, logits):
        return _bce(logits, x, "none").sum(-1)

    @student(function, "mean_over_dims")
    def _(x, logits):
        return -_bce(logits, x, "none").mean(dim=1)

    @student(function, "batch_mean")
    def _(x, logits):
        return -_bce(logits, x, "sum") / x.shape[0]

    @student(function, "batch_sum")
    def _(x, logits):
        return -_bce(logits, x, "sum")

    @student(function, "arguments_swapped")
    def _(x, logits):
        return -_bce(x, logits, "none").sum(-1)

    @student(function, "sigmoid_applied_twice")
    def _(x, logits):
        return -_bce(torch.sigmoid(logits), x, "none").sum(-1)

    @student(function, "unstable_log_sigmoid")
    def _(x, logits):
        p = torch.sigmoid(logits)
        return torch.sum(x * torch.log(p) + (1 - x) * torch.log(1 - p), dim=-1)

    @student(function, "probabilities_as_logits")
    def _(x, logits):
        return torch.sum(x * torch.log(logits) + (1 - x) * torch.log(1 - logits), dim=-1)


_likelihood("bernoulli_log_likelihood")
_likelihood("chain_rule_log_likelihood")


@student("chain_rule_log_likelihood", "off_by_one")
def _(x, conditional_logits):
    # "the logit at i predicts the next pixel": pairs conditional_logits[:, i] with x[:, i + 1]
    total = torch.zeros(x.shape[0], dtype=conditional_logits.dtype)
    for i in range(x.shape[1] - 1):
        total = total - _bce(conditional_logits[:, i], x[:, i + 1], "none")
    return total


# --- elbo(x, logits, mu, logvar) -----------------------------------------------------------------
E = "elbo"


def _recon(x, logits):
    return -_bce(logits, x, "none").sum(dim=1)


def _kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


@student(E, "plus_kl")
def _(x, logits, mu, logvar):
    return _recon(x, logits) + _kl(mu, logvar)


@student(E, "negative_elbo")
def _(x, logits, mu, logvar):
    bce = _bce(logits, x, "none").sum(dim=1)
    return bce + _kl(mu, logvar)                            # the VAE loss, returned as the ELBO


@student(E, "likelihood_sign_flip")
def _(x, logits, mu, logvar):
    bce = _bce(logits, x, "none").sum(dim=1)
    return bce - _kl(mu, logvar)


@student(E, "kl_missing_half")
def _(x, logits, mu, logvar):
    kl = -torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return _recon(x, logits) - kl


@student(E, "kl_logvar_as_log_std")
def _(x, logits, mu, logvar):
    kl = torch.sum(-logvar + 0.5 * torch.exp(2 * logvar) + 0.5 * mu ** 2 - 0.5, dim=1)
    return _recon(x, logits) - kl


@student(E, "kl_missing_constant")
def _(x, logits, mu, logvar):
    return _recon(x, logits) + 0.5 * torch.sum(logvar - mu.pow(2) - logvar.exp(), dim=1)


@student(E, "likelihood_mean_over_dims")
def _(x, logits, mu, logvar):
    return -_bce(logits, x, "none").mean(dim=1) - _kl(mu, logvar)


@student(E, "kl_omitted")
def _(x, logits, mu, logvar):
    return _recon(x, logits)


@student(E, "batch_mean")
def _(x, logits, mu, logvar):
    return torch.mean(_recon(x, logits) - _kl(mu, logvar))


@student(E, "batch_sum")
def _(x, logits, mu, logvar):
    return -_bce(logits, x, "sum") - _kl(mu, logvar).sum()


@student(E, "unstable_log_sigmoid")
def _(x, logits, mu, logvar):
    p = torch.sigmoid(logits)
    recon = torch.sum(x * torch.log(p) + (1 - x) * torch.log(1 - p), dim=1)
    return recon - _kl(mu, logvar)


@student(E, "sigmoid_applied_twice")
def _(x, logits, mu, logvar):
    probs = torch.sigmoid(logits)                           # decoder output passed on as if logits
    return -_bce(probs, x, "none").sum(dim=1) - _kl(mu, logvar)
