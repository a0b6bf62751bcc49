import torch
import torch.nn as nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real = real_logits.view(-1)
    fake = fake_logits.view(-1)
    # log(1 - sigmoid(l)) = logsigmoid(-l)
    return -0.5 * F.logsigmoid(real).mean() - 0.5 * F.logsigmoid(fake.neg_()).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    fake = fake_logits.view(-1)
    if kind == "non_saturating":
        return -0.5 * F.logsigmoid(fake).mean()
    if kind == "minimax":
        return 0.5 * F.logsigmoid(fake.neg_()).mean()
    raise ValueError(kind)


def reparameterize(mu, logvar, eps):
    # reuse eps's memory for z
    return eps.mul_(torch.exp(0.5 * logvar)).add_(mu)


def gaussian_kl(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu * mu - 1 - logvar).sum(-1)


def bernoulli_log_likelihood(x, logits):
    # with s = 2x - 1 in {-1, +1}: log p(x) = logsigmoid(s * logit)
    s = x.mul_(2).sub_(1)
    return F.logsigmoid(s * logits).sum(-1)


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
        return F.linear(x, self.W * self.mask, self.b)

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
    hist = {"d_loss": [], "g_loss": []}
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

        hist["d_loss"].append(d_loss.item())
        hist["g_loss"].append(g_loss.item())
    return hist
