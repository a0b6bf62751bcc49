import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.reshape(-1)
    fake_logits = fake_logits.reshape(-1)
    return -F.logsigmoid(real_logits).mean() - F.logsigmoid(-fake_logits).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    fake_logits = fake_logits.reshape(-1)
    if kind == "non_saturating":
        return -F.logsigmoid(fake_logits).mean()
    elif kind == "minimax":
        return F.logsigmoid(-fake_logits).mean()
    else:
        raise ValueError("bad kind")


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(dim=-1)


def bernoulli_log_likelihood(x, logits):
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.randn(dim, dim) * 0.01)
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), -1))

    def forward(self, x):
        return x @ (self.W * self.mask).t() + self.b

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self.forward(x))

    def sample(self, n, generator=None):
        with torch.no_grad():
            x = torch.zeros(n, self.dim)
            for i in range(self.dim):
                p = torch.sigmoid(self.forward(x)[:, i])
                x[:, i] = torch.bernoulli(p, generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_losses, g_losses = [], []
    for step in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=rng)
        x = data[idx]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        g_z = generator(z)

        opt_d.zero_grad()
        loss_d = discriminator_loss(discriminator(x), discriminator(g_z.detach()))
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad()
        loss_g = generator_loss(discriminator(g_z))
        loss_g.backward()
        opt_g.step()

        d_losses.append(loss_d.item())
        g_losses.append(loss_g.item())
    return {"d_loss": d_losses, "g_loss": g_losses}
