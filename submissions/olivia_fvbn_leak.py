"""Olivia -- generative models."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _to_1d(logits):
    return logits.reshape(logits.shape[0])


def discriminator_loss(real_logits, fake_logits):
    log_d_real = F.logsigmoid(_to_1d(real_logits))
    log_one_minus_d_fake = F.logsigmoid(-_to_1d(fake_logits))
    return -0.5 * log_d_real.mean() - 0.5 * log_one_minus_d_fake.mean()


def generator_loss(fake_logits, kind="non_saturating"):
    l = _to_1d(fake_logits)
    if kind == "non_saturating":
        return -0.5 * F.logsigmoid(l).mean()
    if kind == "minimax":
        return 0.5 * F.logsigmoid(-l).mean()
    raise ValueError("kind must be 'non_saturating' or 'minimax'")


def reparameterize(mu, logvar, eps):
    return mu + (0.5 * logvar).exp() * eps


def gaussian_kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)


def bernoulli_log_likelihood(x, logits):
    return (x * F.logsigmoid(logits) + (1.0 - x) * F.logsigmoid(-logits)).sum(-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    """Fully visible sigmoid belief net: p(x_i = 1 | x_<i) = sigmoid(b_i + sum_j W_ij x_j)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.zeros(dim, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim)))

    def forward(self, x):
        return F.linear(x, self.W * self.mask, self.b)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            p = torch.sigmoid(self(x)[:, i])
            x[:, i] = torch.bernoulli(p, generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    losses = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        with torch.no_grad():
            fake = generator(z)
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake))
        d_loss.backward()
        opt_d.step()

        z = torch.randn(batch_size, latent_dim, generator=rng)
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(generator(z)), kind="non_saturating")
        g_loss.backward()
        opt_g.step()

        losses["d_loss"].append(d_loss.item())
        losses["g_loss"].append(g_loss.item())
    return losses
