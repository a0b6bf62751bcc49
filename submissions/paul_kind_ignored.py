import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.reshape(-1)
    fake_logits = fake_logits.reshape(-1)
    return 0.5 * F.softplus(-real_logits).mean() + 0.5 * F.softplus(fake_logits).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    # non-saturating: -1/2 E[log D(G(z))]
    fake_logits = fake_logits.reshape(-1)
    return 0.5 * F.softplus(-fake_logits).mean()


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * torch.sum(torch.exp(logvar) + mu ** 2 - 1 - logvar, -1)


def bernoulli_log_likelihood(x, logits):
    return torch.sum(x * logits - F.softplus(logits), -1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return bernoulli_log_likelihood(x, conditional_logits)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.randn(dim, dim) / dim)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), -1))

    def forward(self, x):
        return torch.matmul(x, (self.weight * self.mask).t()) + self.bias

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self.forward(x))

    def sample(self, n, generator=None):
        with torch.no_grad():
            x = torch.zeros(n, self.dim)
            for i in range(self.dim):
                prob = torch.sigmoid(self.forward(x)[:, i])
                x[:, i] = torch.bernoulli(prob, generator=generator)
            return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_losses = []
    g_losses = []
    for step in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)

        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()

        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake), kind="non_saturating")
        g_loss.backward()
        opt_g.step()

        d_losses.append(d_loss.item())
        g_losses.append(g_loss.item())
    return {"d_loss": d_losses, "g_loss": g_losses}
