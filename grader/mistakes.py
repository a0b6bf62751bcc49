"""The catalogue of classic mistakes, as data: each entry a named transformation of the reference.

A ``Mistake`` computes what a student who made that mistake would return, from the same inputs
and with the same signature as the contract function. When a check fails, the grader evaluates
every mistake of that function on the failing inputs (in the grader's process, never the
student's) and names the first one whose output matches what the student returned. Entries are
tried in catalogue order, so a specific explanation is listed before a vaguer one that could
coincide with it.

Transformations compute in the dtype of their inputs, so numerically unstable variants (a naive
``log(sigmoid(x))``) overflow exactly where the student's code would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from grader.diagnoses import GENERIC  # noqa: F401  (re-exported)
from reference import formulas as f


@dataclass(frozen=True)
class Mistake:
    function: str       # the contract function it applies to
    name: str           # a short identifier, used in reports and counts
    explanation: str    # what the student most likely did, and what the contract asks instead
    compute: Callable[..., Tensor]  # same signature as the contract function


CATALOGUE: list[Mistake] = []


def mistake(function: str, name: str, explanation: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Register the decorated transformation as a classic mistake of ``function``."""

    def register(compute: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if any(m.function == function and m.name == name for m in CATALOGUE):
            raise ValueError(f"mistake {function}/{name} registered twice")
        CATALOGUE.append(Mistake(function, name, explanation, compute))
        return compute

    return register


def mistakes_for(function: str) -> list[Mistake]:
    return [m for m in CATALOGUE if m.function == function]


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1)


def _naive_log_d(logits: Tensor) -> Tensor:
    return torch.log(torch.sigmoid(logits))


def _naive_log_one_minus_d(logits: Tensor) -> Tensor:
    return torch.log(1 - torch.sigmoid(logits))


def _kl_terms(mu: Tensor, logvar: Tensor) -> Tensor:
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar)


# --- discriminator_loss(real_logits, fake_logits) ------------------------------------------------
D = "discriminator_loss"


@mistake(D, "missing_half", "The 1/2 factors are missing: J^D = -1/2 E log D(x) - 1/2 E log(1 - D(G(z))).")
def _(real_logits, fake_logits):
    return 2 * f.discriminator_loss(real_logits, fake_logits)


@mistake(D, "sign_flip", "The sign is flipped: J^D is a loss to minimise, -1/2 E log D(x) - 1/2 E log(1 - D(G(z))) >= 0.")
def _(real_logits, fake_logits):
    return -f.discriminator_loss(real_logits, fake_logits)


@mistake(D, "real_fake_swapped", "Real and fake logits are swapped: log D goes with the real batch, log(1 - D) with the fake one.")
def _(real_logits, fake_logits):
    return f.discriminator_loss(fake_logits, real_logits)


@mistake(D, "sum_instead_of_mean", "Each expectation is a sum over the batch; it should be a mean.")
def _(real_logits, fake_logits):
    return -0.5 * f.log_sigmoid(_flat(real_logits)).sum() - 0.5 * f.log_one_minus_sigmoid(_flat(fake_logits)).sum()


@mistake(D, "concatenated_batches", "Real and fake logits were concatenated into one batch mean (one BCE call): "
         "that equals J^D only when both batches have the same size. Average each batch separately, then take 1/2 of each.")
def _(real_logits, fake_logits):
    terms = torch.cat([f.log_sigmoid(_flat(real_logits)), f.log_one_minus_sigmoid(_flat(fake_logits))])
    return -terms.mean()


@mistake(D, "sigmoid_applied_twice", "The logits were treated as probabilities: sigmoid was applied to D(x) = sigmoid(logit) again "
         "(e.g. BCEWithLogits on sigmoid outputs). The inputs are logits.")
def _(real_logits, fake_logits):
    return f.discriminator_loss(torch.sigmoid(real_logits), torch.sigmoid(fake_logits))


@mistake(D, "unstable_log_sigmoid", "log(sigmoid(x)) and log(1 - sigmoid(x)) computed naively overflow to inf/nan for large |logits|; "
         "use F.logsigmoid, softplus or BCE-with-logits.")
def _(real_logits, fake_logits):
    return -0.5 * _naive_log_d(_flat(real_logits)).mean() - 0.5 * _naive_log_one_minus_d(_flat(fake_logits)).mean()


@mistake(D, "probabilities_as_logits", "The logits were used as probabilities: log(logit) instead of log(sigmoid(logit)).")
def _(real_logits, fake_logits):
    return -0.5 * torch.log(_flat(real_logits)).mean() - 0.5 * torch.log(1 - _flat(fake_logits)).mean()


# --- generator_loss(fake_logits, kind) -----------------------------------------------------------
G = "generator_loss"


@mistake(G, "missing_half", "The 1/2 factor is missing: the non-saturating loss is -1/2 E log D(G(z)), the minimax one +1/2 E log(1 - D(G(z))).")
def _(fake_logits, kind="non_saturating"):
    return 2 * f.generator_loss(fake_logits, kind)


@mistake(G, "sign_flip", "The sign is flipped: non-saturating is -1/2 E log D(G(z)); minimax is +1/2 E log(1 - D(G(z))).")
def _(fake_logits, kind="non_saturating"):
    return -f.generator_loss(fake_logits, kind)


@mistake(G, "sum_instead_of_mean", "The expectation is a sum over the batch; it should be a mean.")
def _(fake_logits, kind="non_saturating"):
    return f.generator_loss(fake_logits, kind) * _flat(fake_logits).numel()


@mistake(G, "kind_ignored", "`kind` is ignored: the non-saturating loss came back for kind='minimax'.")
def _(fake_logits, kind="non_saturating"):
    return f.generator_loss(fake_logits, "non_saturating")


@mistake(G, "kinds_swapped", "The two kinds are swapped: non-saturating is -1/2 E log D(G(z)), minimax is +1/2 E log(1 - D(G(z))).")
def _(fake_logits, kind="non_saturating"):
    return f.generator_loss(fake_logits, "minimax" if kind == "non_saturating" else "non_saturating")


@mistake(G, "non_saturating_uses_one_minus_d", "The non-saturating loss used log(1 - D): it is -1/2 E log D(G(z)), "
         "which keeps its gradient when the discriminator rejects the samples.")
def _(fake_logits, kind="non_saturating"):
    if kind != "non_saturating":
        return f.generator_loss(fake_logits, kind)
    return -0.5 * f.log_one_minus_sigmoid(_flat(fake_logits)).mean()


@mistake(G, "sigmoid_applied_twice", "The logits were treated as probabilities: sigmoid was applied twice.")
def _(fake_logits, kind="non_saturating"):
    return f.generator_loss(torch.sigmoid(fake_logits), kind)


@mistake(G, "unstable_log_sigmoid", "log(sigmoid(x)) or log(1 - sigmoid(x)) computed naively overflows for large |logits|; "
         "use F.logsigmoid or softplus.")
def _(fake_logits, kind="non_saturating"):
    if kind == "minimax":
        return 0.5 * _naive_log_one_minus_d(_flat(fake_logits)).mean()
    return -0.5 * _naive_log_d(_flat(fake_logits)).mean()


@mistake(G, "probabilities_as_logits", "The logits were used as probabilities: log(logit) instead of log(sigmoid(logit)).")
def _(fake_logits, kind="non_saturating"):
    x = _flat(fake_logits)
    return 0.5 * torch.log(1 - x).mean() if kind == "minimax" else -0.5 * torch.log(x).mean()


# --- reparameterize(mu, logvar, eps) -------------------------------------------------------------
R = "reparameterize"


@mistake(R, "logvar_as_std", "exp(logvar) was used as the standard deviation (log-variance taken as log-std): sigma = exp(logvar / 2).")
def _(mu, logvar, eps):
    return mu + torch.exp(logvar) * eps


@mistake(R, "logvar_as_sigma", "logvar itself was used as the standard deviation: sigma = exp(logvar / 2).")
def _(mu, logvar, eps):
    return mu + logvar * eps


@mistake(R, "sign_flip", "The noise enters with the wrong sign or mu is subtracted: z = mu + exp(logvar / 2) * eps.")
def _(mu, logvar, eps):
    return mu - torch.exp(0.5 * logvar) * eps


@mistake(R, "mu_missing", "mu is missing: z = mu + exp(logvar / 2) * eps.")
def _(mu, logvar, eps):
    return torch.exp(0.5 * logvar) * eps


# --- gaussian_kl(mu, logvar) ---------------------------------------------------------------------
K = "gaussian_kl"


@mistake(K, "sign_flip", "The KL has the wrong sign: KL is >= 0; 1/2 sum (exp(logvar) + mu^2 - 1 - logvar).")
def _(mu, logvar):
    return -f.gaussian_kl(mu, logvar)


@mistake(K, "missing_half", "The 1/2 factor is missing.")
def _(mu, logvar):
    return 2 * f.gaussian_kl(mu, logvar)


@mistake(K, "missing_constant", "The constant -1 inside the sum is missing (it contributes -K/2 per example).")
def _(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - logvar).sum(dim=-1)


@mistake(K, "logvar_as_log_std", "logvar was treated as a log-standard-deviation (variance exp(2 logvar)); it is the log-variance.")
def _(mu, logvar):
    return 0.5 * (torch.exp(2 * logvar) + mu.pow(2) - 1.0 - 2 * logvar).sum(dim=-1)


@mistake(K, "reversed_kl", "This is KL(p(z) || q(z | x)); the ELBO needs KL(q(z | x) || p(z)).")
def _(mu, logvar):
    return 0.5 * (torch.exp(-logvar) * (1 + mu.pow(2)) - 1.0 + logvar).sum(dim=-1)


@mistake(K, "mean_over_dims", "The latent dimensions were averaged; the KL sums over them.")
def _(mu, logvar):
    return _kl_terms(mu, logvar).mean(dim=-1)


@mistake(K, "batch_mean", "The result was averaged over the batch; return one KL per example, shape [B].")
def _(mu, logvar):
    return f.gaussian_kl(mu, logvar).mean()


@mistake(K, "batch_sum", "The result was summed over the batch; return one KL per example, shape [B].")
def _(mu, logvar):
    return f.gaussian_kl(mu, logvar).sum()


# --- bernoulli_log_likelihood(x, logits) and chain_rule_log_likelihood(x, conditional_logits) ----
def _likelihood_mistakes(function: str, logits_name: str) -> None:
    @mistake(function, "sign_flip", "This is the negative log-likelihood (a BCE loss); the log-likelihood is <= 0.")
    def _(x, logits):
        return -f.bernoulli_log_likelihood(x, logits)

    @mistake(function, "mean_over_dims", "The dimensions were averaged (BCE's default reduction); the log-likelihood sums over them.")
    def _(x, logits):
        return f.bernoulli_log_likelihood(x, logits) / x.shape[-1]

    @mistake(function, "batch_mean", "The result was averaged over the batch; return one value per example, shape [B].")
    def _(x, logits):
        return f.bernoulli_log_likelihood(x, logits).mean()

    @mistake(function, "batch_sum", "The result was summed over the batch; return one value per example, shape [B].")
    def _(x, logits):
        return f.bernoulli_log_likelihood(x, logits).sum()

    @mistake(function, "arguments_swapped", f"x and {logits_name} were swapped (e.g. in BCE-with-logits, input is the logits and target is x).")
    def _(x, logits):
        return (logits * f.log_sigmoid(x) + (1 - logits) * f.log_one_minus_sigmoid(x)).sum(dim=-1)

    @mistake(function, "sigmoid_applied_twice", "The logits were treated as probabilities: sigmoid was applied twice.")
    def _(x, logits):
        return f.bernoulli_log_likelihood(x, torch.sigmoid(logits))

    @mistake(function, "unstable_log_sigmoid", "log(sigmoid(x)) computed naively overflows for large |logits|; "
             "use F.logsigmoid, softplus or BCE-with-logits.")
    def _(x, logits):
        return (x * _naive_log_d(logits) + (1 - x) * _naive_log_one_minus_d(logits)).sum(dim=-1)

    @mistake(function, "probabilities_as_logits", "The logits were used as probabilities: log(logit) instead of log(sigmoid(logit)).")
    def _(x, logits):
        return (x * torch.log(logits) + (1 - x) * torch.log(1 - logits)).sum(dim=-1)


_likelihood_mistakes("bernoulli_log_likelihood", "logits")
_likelihood_mistakes("chain_rule_log_likelihood", "conditional_logits")


@mistake("chain_rule_log_likelihood", "off_by_one", "The conditionals are shifted by one: conditional_logits[:, i] already is "
         "the logit of p(x_i = 1 | x_<i); pair it with x_i, not x_(i+1).")
def _(x, conditional_logits):
    return f.bernoulli_log_likelihood(x[..., 1:], conditional_logits[..., :-1])


# --- elbo(x, logits, mu, logvar) -----------------------------------------------------------------
E = "elbo"


@mistake(E, "plus_kl", "The KL was added: ELBO = log p(x | z) - KL(q(z | x) || p(z)).")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits) + f.gaussian_kl(mu, logvar)


@mistake(E, "negative_elbo", "This is the negative ELBO (the loss to minimise); return the ELBO itself.")
def _(x, logits, mu, logvar):
    return -f.elbo(x, logits, mu, logvar)


@mistake(E, "likelihood_sign_flip", "The reconstruction term has the wrong sign: BCE is -log p(x | z), so ELBO = -BCE - KL.")
def _(x, logits, mu, logvar):
    return -f.bernoulli_log_likelihood(x, logits) - f.gaussian_kl(mu, logvar)


@mistake(E, "kl_missing_half", "The KL misses its 1/2 factor.")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits) - 2 * f.gaussian_kl(mu, logvar)


@mistake(E, "kl_logvar_as_log_std", "In the KL, logvar was treated as a log-standard-deviation; it is the log-variance.")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits) - 0.5 * (torch.exp(2 * logvar) + mu.pow(2) - 1.0 - 2 * logvar).sum(dim=-1)


@mistake(E, "kl_missing_constant", "The KL misses its constant -1 inside the sum.")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits) - 0.5 * (torch.exp(logvar) + mu.pow(2) - logvar).sum(dim=-1)


@mistake(E, "likelihood_mean_over_dims", "The reconstruction term averages over the data dimensions; log p(x | z) sums over them.")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits) / x.shape[-1] - f.gaussian_kl(mu, logvar)


@mistake(E, "kl_omitted", "The KL term is missing: ELBO = log p(x | z) - KL(q(z | x) || p(z)).")
def _(x, logits, mu, logvar):
    return f.bernoulli_log_likelihood(x, logits)


@mistake(E, "batch_mean", "The result was averaged over the batch; return one ELBO per example, shape [B].")
def _(x, logits, mu, logvar):
    return f.elbo(x, logits, mu, logvar).mean()


@mistake(E, "batch_sum", "The result was summed over the batch; return one ELBO per example, shape [B].")
def _(x, logits, mu, logvar):
    return f.elbo(x, logits, mu, logvar).sum()


@mistake(E, "unstable_log_sigmoid", "log(sigmoid(x)) in the reconstruction term overflows for large |logits|; "
         "use F.logsigmoid, softplus or BCE-with-logits.")
def _(x, logits, mu, logvar):
    ll = (x * _naive_log_d(logits) + (1 - x) * _naive_log_one_minus_d(logits)).sum(dim=-1)
    return ll - f.gaussian_kl(mu, logvar)


@mistake(E, "sigmoid_applied_twice", "The decoder logits were treated as probabilities: sigmoid was applied twice.")
def _(x, logits, mu, logvar):
    return f.elbo(x, torch.sigmoid(logits), mu, logvar)
