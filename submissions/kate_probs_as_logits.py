# Kate
import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    d_real = torch.sigmoid(real_logits.reshape(-1))
    d_fake = torch.sigmoid(fake_logits.reshape(-1))
    loss_real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return 0.5 * (loss_real + loss_fake)


def generator_loss(fake_logits, kind="non_saturating"):
    d_fake = torch.sigmoid(fake_logits.reshape(-1))
    if kind == "non_saturating":
        return 0.5 * F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if kind == "minimax":
        return -0.5 * F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    raise ValueError("kind must be non_saturating or minimax")


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * torch.sum(torch.exp(logvar) + mu ** 2 - 1 - logvar, dim=-1)


def bernoulli_log_likelihood(x, logits):
    probs = torch.sigmoid(logits)
    return -F.binary_cross_entropy_with_logits(probs, x, reduction="none").sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.zeros(dim, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), diagonal=-1))

    def forward(self, x):
        return x @ (self.W * self.mask).T + self.b

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self.forward(x))

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            p = torch.sigmoid(self.forward(x)[:, i])
            x[:, i] = torch.bernoulli(p, generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = data[torch.randint(0, len(data), (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)

        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()

        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()

        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}
