import torch
from torch import nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.reshape(-1)
    fake_logits = fake_logits.reshape(-1)
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits), reduction="sum")
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits), reduction="sum")
    return 0.5 * real_loss + 0.5 * fake_loss


def generator_loss(fake_logits, kind="non_saturating"):
    fake_logits = fake_logits.reshape(-1)
    if kind == "non_saturating":
        return 0.5 * F.binary_cross_entropy_with_logits(
            fake_logits, torch.ones_like(fake_logits), reduction="sum")
    elif kind == "minimax":
        return -0.5 * F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits), reduction="sum")
    raise ValueError(f"unknown generator loss {kind}")


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(logvar / 2) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * torch.sum(logvar.exp() + mu * mu - 1.0 - logvar, dim=-1)


def bernoulli_log_likelihood(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.zeros(dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), diagonal=-1))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        with torch.no_grad():
            for i in range(self.dim):
                p = torch.sigmoid(self(x)[:, i])
                x[:, i] = torch.bernoulli(p, generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)

        opt_d.zero_grad()
        loss_d = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad()
        loss_g = generator_loss(discriminator(fake))
        loss_g.backward()
        opt_g.step()

        history["d_loss"].append(loss_d.item())
        history["g_loss"].append(loss_g.item())
    return history
