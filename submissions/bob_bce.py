"""Bob's solution. Uses BCE-with-logits everywhere (it is the stable version of BCE)."""
import torch
from torch import nn
import torch.nn.functional as F


def discriminator_loss(real_logits, fake_logits):
    real_logits = real_logits.flatten()
    fake_logits = fake_logits.flatten()
    loss_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * loss_real + 0.5 * loss_fake


def generator_loss(fake_logits, kind="non_saturating"):
    if kind not in ("non_saturating", "minimax"):
        raise ValueError("kind must be 'non_saturating' or 'minimax', got %r" % (kind,))
    fake_logits = fake_logits.flatten()
    if kind == "non_saturating":
        # -1/2 E log D(G(z)) is BCE against label 1
        return 0.5 * F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    # +1/2 E log(1 - D(G(z))) is minus BCE against label 0
    return -0.5 * F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def reparameterize(mu, logvar, eps):
    return mu + eps * torch.exp(logvar / 2)


def gaussian_kl(mu, logvar):
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return kl.sum(-1)


def bernoulli_log_likelihood(x, logits):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -bce.sum(-1)


def elbo(x, logits, mu, logvar):
    rec = bernoulli_log_likelihood(x, logits)
    kl = gaussian_kl(mu, logvar)
    return rec - kl


def chain_rule_log_likelihood(x, conditional_logits):
    return -F.binary_cross_entropy_with_logits(conditional_logits, x, reduction="none").sum(-1)


class MaskedLinear(nn.Linear):
    def __init__(self, in_features, out_features, mask):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class FVBN(nn.Module):
    """A one-hidden-layer MADE (Germain et al. 2015) with the natural ordering."""

    def __init__(self, dim, hidden=64):
        super().__init__()
        self.dim = dim
        in_deg = torch.arange(1, dim + 1)
        # hidden degrees cycle through 1..dim-1 (at least 1)
        hid_deg = torch.arange(hidden) % max(dim - 1, 1) + 1
        out_deg = torch.arange(1, dim + 1)
        mask1 = (hid_deg[:, None] >= in_deg[None, :]).float()   # [hidden, dim]
        mask2 = (out_deg[:, None] > hid_deg[None, :]).float()   # [dim, hidden]
        self.l1 = MaskedLinear(dim, hidden, mask1)
        self.l2 = MaskedLinear(hidden, dim, mask2)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self(x))

    def sample(self, n, generator=None):
        with torch.no_grad():
            x = torch.zeros(n, self.dim)
            for i in range(self.dim):
                logits = self(x)
                u = torch.rand(n, generator=generator)
                x[:, i] = (u < torch.sigmoid(logits[:, i])).float()
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"d_loss": [], "g_loss": []}
    n = data.shape[0]
    for _ in range(steps):
        real = data[torch.randint(n, (batch_size,), generator=rng)]
        z = torch.randn(batch_size, latent_dim, generator=rng)
        with torch.no_grad():
            fake = generator(z)
        d_loss = discriminator_loss(discriminator(real), discriminator(fake))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()

        z = torch.randn(batch_size, latent_dim, generator=rng)
        g_loss = generator_loss(discriminator(generator(z)))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

        history["d_loss"].append(float(d_loss))
        history["g_loss"].append(float(g_loss))
    return history
