import torch
import torch.nn as nn
import torch.nn.functional as F

# Identities used throughout (s = sigmoid):
#   log s(l)     = -softplus(-l)
#   log(1-s(l))  = -softplus(l)
#   x log s(l) + (1-x) log(1-s(l)) = x*l - softplus(l)


def discriminator_loss(real_logits, fake_logits):
    r = real_logits.view(-1)
    f = fake_logits.view(-1)
    return 0.5 * F.softplus(-r).mean() + 0.5 * F.softplus(f).mean()


def generator_loss(fake_logits, kind="non_saturating"):
    f = fake_logits.view(-1)
    losses = {
        "non_saturating": lambda: 0.5 * F.softplus(-f).mean(),
        "minimax": lambda: -0.5 * F.softplus(f).mean(),
    }
    if kind not in losses:
        raise ValueError(kind)
    return losses[kind]()


def reparameterize(mu, logvar, eps):
    return torch.addcmul(mu, torch.exp(0.5 * logvar), eps)


def gaussian_kl(mu, logvar):
    return 0.5 * (mu * mu + torch.expm1(logvar) - logvar).sum(-1)


def bernoulli_log_likelihood(x, logits):
    return (x * logits - F.softplus(logits)).sum(-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    return (x * conditional_logits - F.softplus(conditional_logits)).sum(-1)


class FVBN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.ones(dim, dim).tril(-1))

    def forward(self, x):
        return F.linear(x, self.linear.weight * self.mask, self.linear.bias)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    @torch.no_grad()
    def sample(self, n, generator=None):
        out = torch.zeros(n, self.dim, dtype=self.linear.weight.dtype)
        for i in range(self.dim):
            logit_i = self(out)[:, i]
            out[:, i] = torch.bernoulli(torch.sigmoid(logit_i), generator=generator)
        return out


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    optD = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_losses, g_losses = [], []
    N = data.size(0)
    for t in range(steps):
        real = data[torch.randint(0, N, (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z).detach()
        lossD = discriminator_loss(discriminator(real), discriminator(fake))
        optD.zero_grad()
        lossD.backward()
        optD.step()

        z2 = torch.randn(batch_size, latent_dim, generator=rng)
        lossG = generator_loss(discriminator(generator(z2)), kind="non_saturating")
        optG.zero_grad()
        lossG.backward()
        optG.step()

        d_losses.append(lossD.item())
        g_losses.append(lossG.item())
    return {"d_loss": d_losses, "g_loss": g_losses}
