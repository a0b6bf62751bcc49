"""Ivy's assignment solution."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.view(-1)
    fake_logits = fake_logits.view(-1)
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def generator_loss(fake_logits, kind="non_saturating"):
    fake_logits = fake_logits.view(-1)
    if kind == "non_saturating":
        return 0.5 * F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -0.5 * F.softplus(fake_logits).mean()
    raise ValueError(kind)


def reparameterize(mu, logvar, eps):
    std = torch.exp(logvar * 0.5)
    return mu + eps * std


def gaussian_kl(mu, logvar):
    # Kingma & Welling, appendix B
    return 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def bernoulli_log_likelihood(x, logits):
    return torch.sum(x * logits - F.softplus(logits), dim=-1)


def elbo(x, logits, mu, logvar):
    reconstruction = bernoulli_log_likelihood(x, logits)
    kl = gaussian_kl(mu, logvar)
    return reconstruction - kl


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.fc = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), diagonal=-1))

    def forward(self, x):
        return F.linear(x, self.fc.weight * self.mask, self.fc.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            x[:, i] = torch.bernoulli(torch.sigmoid(self(x)[:, i]), generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    result = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)

        d_opt.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        d_opt.step()

        g_opt.zero_grad()
        g_loss = generator_loss(discriminator(fake), kind="non_saturating")
        g_loss.backward()
        g_opt.step()

        result["d_loss"].append(d_loss.item())
        result["g_loss"].append(g_loss.item())
    return result
