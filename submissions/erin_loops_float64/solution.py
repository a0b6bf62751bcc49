"""Erin's solution: float64 everywhere, with the sums written out as loops."""
import torch
import torch.nn as nn

from mathutil import log_one_minus_sigmoid, log_sigmoid, row_sum, to64


def _vec(logits):
    logits = to64(logits)
    if logits.dim() == 2:
        logits = logits.squeeze(1)
    return logits


def discriminator_loss(real_logits, fake_logits):
    real = _vec(real_logits)
    fake = _vec(fake_logits)
    # two separate averages: the real and fake batches need not be the same size
    term_real = log_sigmoid(real).mean()
    term_fake = log_one_minus_sigmoid(fake).mean()
    return -0.5 * term_real - 0.5 * term_fake


def generator_loss(fake_logits, kind="non_saturating"):
    fake = _vec(fake_logits)
    if kind == "non_saturating":
        return -0.5 * log_sigmoid(fake).mean()
    elif kind == "minimax":
        return 0.5 * log_one_minus_sigmoid(fake).mean()
    raise ValueError("kind should be non_saturating or minimax")


def reparameterize(mu, logvar, eps):
    mu, logvar, eps = to64(mu), to64(logvar), to64(eps)
    sigma = torch.exp(logvar / 2.0)
    return mu + sigma * eps


def gaussian_kl(mu, logvar):
    mu, logvar = to64(mu), to64(logvar)
    terms = torch.exp(logvar) + mu ** 2 - 1.0 - logvar
    return 0.5 * row_sum(terms)


def bernoulli_log_likelihood(x, logits):
    x, logits = to64(x), to64(logits)
    per_dim = x * log_sigmoid(logits) + (1.0 - x) * log_one_minus_sigmoid(logits)
    return row_sum(per_dim)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    x, conditional_logits = to64(x), to64(conditional_logits)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for i in range(x.shape[1]):
        xi = x[:, i]
        li = conditional_logits[:, i]
        total = total + xi * log_sigmoid(li) + (1.0 - xi) * log_one_minus_sigmoid(li)
    return total


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.randn(dim, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(dim))
        mask = torch.zeros(dim, dim)
        for i in range(dim):
            for j in range(i):
                mask[i, j] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x @ (self.weight * self.mask).t() + self.bias

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self.forward(x))

    def sample(self, n, generator=None):
        samples = torch.zeros(n, self.dim)
        with torch.no_grad():
            for i in range(self.dim):
                logit = self.forward(samples)[:, i]
                prob = torch.sigmoid(logit)
                samples[:, i] = torch.bernoulli(prob, generator=generator)
        return samples


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_D = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_G = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    log = {"d_loss": [], "g_loss": []}
    for step in range(steps):
        index = torch.randint(0, data.shape[0], (batch_size,), generator=rng)
        real_batch = data[index]
        noise = torch.randn(batch_size, latent_dim, generator=rng)
        fake_batch = generator(noise)

        opt_D.zero_grad()
        loss_D = discriminator_loss(discriminator(real_batch), discriminator(fake_batch.detach()))
        loss_D.backward()
        opt_D.step()

        opt_G.zero_grad()
        loss_G = generator_loss(discriminator(fake_batch))
        loss_G.backward()
        opt_G.step()

        log["d_loss"].append(float(loss_D))
        log["g_loss"].append(float(loss_G))
    return log
