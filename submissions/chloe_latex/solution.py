# Chloe -- generative models assignment (report in report.tex)
import torch
import torch.nn as nn
import torch.nn.functional as F


def _flat(logits):
    # [B] or [B, 1] -> [B]
    return logits.reshape(-1)


def discriminator_loss(real_logits, fake_logits):
    real = _flat(real_logits)
    fake = _flat(fake_logits)
    # log D(x) = logsigmoid(l), log(1 - D(G(z))) = logsigmoid(-l)
    return -0.5 * F.logsigmoid(real).mean() - 0.5 * F.logsigmoid(-fake).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    fake = _flat(fake_logits)
    if kind == "non_saturating":
        return -0.5 * F.logsigmoid(fake).mean()
    elif kind == "minimax":
        return 0.5 * F.logsigmoid(-fake).mean()
    else:
        raise ValueError(f"unknown kind: {kind}")


def reparameterize(mu, logvar, eps):
    std = torch.exp(0.5 * logvar)
    return mu + std * eps


def gaussian_kl(mu, logvar):
    return 0.5 * torch.sum(logvar.exp() + mu ** 2 - 1.0 - logvar, dim=-1)


def bernoulli_log_likelihood(x, logits):
    log_p = x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)
    return log_p.sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    """Logistic FVBN: logit_i = b_i + sum_{j<i} W_ij x_j."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.zeros(dim, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), diagonal=-1))

    def forward(self, x):
        return F.linear(x, self.W * self.mask, self.b)

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
    for step in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=rng)
        x_real = data[idx]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        x_fake = generator(z)

        # discriminator step
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(x_real), discriminator(x_fake.detach()))
        d_loss.backward()
        opt_d.step()

        # generator step (same fake batch)
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(x_fake), kind="non_saturating")
        g_loss.backward()
        opt_g.step()

        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}
