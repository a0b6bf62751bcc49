"""Mia -- solutions."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    return -0.5 * F.logsigmoid(real_logits.reshape(-1)).mean() - 0.5 * F.logsigmoid(-fake_logits.reshape(-1)).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    if kind == "non_saturating":
        return -0.5 * F.logsigmoid(fake_logits.reshape(-1)).mean()
    if kind == "minimax":
        return 0.5 * F.logsigmoid(-fake_logits.reshape(-1)).mean()
    raise ValueError(kind)


def reparameterize(mu, logvar, eps):
    sigma = torch.exp(logvar)
    return mu + sigma * eps


def gaussian_kl(mu, logvar):
    log_sigma = logvar
    sigma2 = torch.exp(2 * log_sigma)
    return 0.5 * torch.sum(sigma2 + mu ** 2 - 1 - 2 * log_sigma, dim=-1)


def bernoulli_log_likelihood(x, logits):
    return torch.sum(x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits), dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.theta = nn.Parameter(torch.zeros(dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.ones(dim, dim).tril(diagonal=-1))

    def forward(self, x):
        return F.linear(x, self.theta * self.mask, self.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            x[:, i] = torch.bernoulli(torch.sigmoid(self(x)[:, i]), generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_losses, g_losses = [], []
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))

        loss_d = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        loss_g = generator_loss(discriminator(fake), kind="non_saturating")
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

        d_losses.append(float(loss_d))
        g_losses.append(float(loss_g))
    return {"d_loss": d_losses, "g_loss": g_losses}
