import torch
import torch.nn as nn


def discriminator_loss(real_logits, fake_logits):
    d_real = torch.sigmoid(real_logits).flatten()
    d_fake = torch.sigmoid(fake_logits).flatten()
    return -0.5 * torch.log(d_real).mean() - 0.5 * torch.log(1 - d_fake).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    d_fake = torch.sigmoid(fake_logits).flatten()
    if kind == "non_saturating":
        return -0.5 * torch.log(d_fake).mean()
    elif kind == "minimax":
        return 0.5 * torch.log(1 - d_fake).mean()
    else:
        raise ValueError("unknown kind: %s" % kind)


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).sum(-1)


def bernoulli_log_likelihood(x, logits):
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    p = torch.sigmoid(conditional_logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(0.01 * torch.randn(dim, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", torch.tril(torch.ones(dim, dim), -1))

    def forward(self, x):
        return x @ (self.mask * self.W).T + self.b

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
    d_list, g_list = [], []
    for i in range(steps):
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

        d_list.append(d_loss.item())
        g_list.append(g_loss.item())
    return {"d_loss": d_list, "g_loss": g_list}
