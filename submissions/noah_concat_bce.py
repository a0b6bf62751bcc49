import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    # one BCE call on the whole batch: real labelled 1, fake labelled 0
    logits = torch.cat([real_logits.reshape(-1), fake_logits.reshape(-1)])
    labels = torch.cat([torch.ones_like(real_logits.reshape(-1)), torch.zeros_like(fake_logits.reshape(-1))])
    return F.binary_cross_entropy_with_logits(logits, labels)


def generator_loss(fake_logits, kind="non_saturating"):
    f = fake_logits.reshape(-1)
    if kind == "non_saturating":
        return 0.5 * F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    elif kind == "minimax":
        return -0.5 * F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    raise ValueError(f"unknown kind {kind!r}")


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(dim=-1)


def bernoulli_log_likelihood(x, logits):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim, hidden=32):
        super().__init__()
        self.dim = dim
        deg_in = torch.arange(1, dim + 1)
        deg_h = torch.arange(hidden) % max(1, dim - 1) + 1
        self.register_buffer("m1", (deg_h[:, None] >= deg_in[None, :]).float())
        self.register_buffer("m2", (deg_in[:, None] > deg_h[None, :]).float())
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        h = F.relu(F.linear(x, self.fc1.weight * self.m1, self.fc1.bias))
        return F.linear(h, self.fc2.weight * self.m2, self.fc2.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        with torch.no_grad():
            for i in range(self.dim):
                x[:, i] = torch.bernoulli(torch.sigmoid(self(x)[:, i]), generator=generator)
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    out = {"d_loss": [], "g_loss": []}
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

        out["d_loss"].append(d_loss.item())
        out["g_loss"].append(g_loss.item())
    return out
