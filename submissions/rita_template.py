"""Generative models assignment: starter file.

Fill in every function and the FVBN class below; the names and signatures are the contract the
grader calls, so do not rename them. Read ASSIGNMENT.md for the formulas, the input domains, the
tolerances and the submission formats.

Shape conventions: B is a batch size, K a latent dimension, D a data dimension. A "logit" l stands
for the probability sigmoid(l).
"""
import torch


# ---------------------------------------------------------------------------------------------
# Part 1: GANs
# ---------------------------------------------------------------------------------------------

def discriminator_loss(real_logits, fake_logits):
    """The discriminator's cost J^D = -1/2 mean log D(x) - 1/2 mean log(1 - D(G(z))).

    D = sigmoid(logit).

    Args:
        real_logits: discriminator logits on real data, shape [B_real] or [B_real, 1].
        fake_logits: discriminator logits on generated data, shape [B_fake] or [B_fake, 1].
            B_fake need not equal B_real.

    Returns:
        A scalar tensor (0-dim or one element), differentiable with respect to both inputs.
        The inputs must not be modified.
    """
    raise NotImplementedError


def generator_loss(fake_logits, kind="non_saturating"):
    """The generator's cost.

    kind == "non_saturating": -1/2 mean log D(G(z)).
    kind == "minimax":        +1/2 mean log(1 - D(G(z))).
    Any other kind: raise ValueError.

    Args:
        fake_logits: discriminator logits on generated data, shape [B] or [B, 1].
        kind: "non_saturating" (default) or "minimax".

    Returns:
        A scalar tensor, differentiable with respect to fake_logits.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Part 2: VAEs
# ---------------------------------------------------------------------------------------------

def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps, using the eps passed in (do not draw your own).

    Args:
        mu, logvar, eps: shape [B, K].

    Returns:
        z, shape [B, K].
    """
    raise NotImplementedError


def gaussian_kl(mu, logvar):
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ), one value per example.

    Args:
        mu, logvar: shape [B, K].

    Returns:
        shape [B] (summed over the last dimension).
    """
    raise NotImplementedError


def bernoulli_log_likelihood(x, logits):
    """sum_d log Bernoulli(x_d; sigmoid(logits_d)), one value per example.

    Args:
        x: binary data in {0, 1}, shape [B, D].
        logits: shape [B, D].

    Returns:
        shape [B] (summed over the last dimension).
    """
    raise NotImplementedError


def elbo(x, logits, mu, logvar):
    """Single-sample ELBO = log p(x | z) - KL(q(z | x) || p(z)), one value per example.

    Args:
        x: binary data, shape [B, D].
        logits: the decoder's logits for one z drawn from q(z | x), shape [B, D].
        mu, logvar: the parameters of q(z | x), shape [B, K].

    Returns:
        shape [B].
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Part 3: fully visible belief networks
# ---------------------------------------------------------------------------------------------

def chain_rule_log_likelihood(x, conditional_logits):
    """log p(x) = sum_i log p(x_i | x_1, ..., x_{i-1}) for binary x.

    Args:
        x: binary data in {0, 1}, shape [B, D].
        conditional_logits: shape [B, D]; entry [:, i] is the logit of p(x_i = 1 | x_<i).

    Returns:
        shape [B].
    """
    raise NotImplementedError


class FVBN(torch.nn.Module):
    """An autoregressive model of binary vectors of length `dim` (natural ordering x_1, ..., x_D).

    forward(x): [B, dim] float32 -> conditional logits [B, dim]; output i may depend on
        x_1, ..., x_(i-1) only, whatever values the parameters take. Anything that enforces
        this (a mask) must be a buffer or a constant, not an nn.Parameter.
    log_prob(x): [B, dim] -> [B], log p(x).
    sample(n, generator=None): [n, dim] float tensor with entries in {0, 1}, drawn one
        coordinate at a time (ancestral sampling) using the torch.Generator given.
    """

    def __init__(self, dim):
        super().__init__()
        raise NotImplementedError

    def forward(self, x):
        raise NotImplementedError

    def log_prob(self, x):
        raise NotImplementedError

    def sample(self, n, generator=None):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Part 4: the GAN workhouse
# ---------------------------------------------------------------------------------------------

def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Train `generator` and `discriminator` in place with the non-saturating GAN game.

    Args:
        generator: module mapping [B, latent_dim] -> [B, d].
        discriminator: module mapping [B, d] -> logits [B, 1].
        data: real data, shape [N, d].
        steps: number of training steps.
        batch_size: real and generated samples per step.
        lr: Adam learning rate; use betas (0.5, 0.999) for both networks.
        latent_dim: size of z.
        rng: a torch.Generator; use it for choosing the real rows and for drawing z ~ N(0, I).

    Each step: draw a real batch and z; take one Adam step on the discriminator for
    discriminator_loss (the generated samples must not pass gradients into the generator);
    then one Adam step on the generator for generator_loss(..., kind="non_saturating").

    Returns:
        {"d_loss": [...], "g_loss": [...]}, one Python float per step in each list.
    """
    raise NotImplementedError
