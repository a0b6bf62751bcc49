# Carol's submission: I let torch.distributions do the probability bookkeeping.
import torch
import torch.nn as nn
from torch.distributions import Bernoulli, Normal, kl_divergence


def _as_vector(t):
    if t.dim() == 2:
        t = t[:, 0]
    return t


def discriminator_loss(real_logits, fake_logits):
    real_logits = _as_vector(real_logits)
    fake_logits = _as_vector(fake_logits)
    log_d_real = Bernoulli(logits=real_logits).log_prob(torch.ones_like(real_logits))
    log_one_minus_d_fake = Bernoulli(logits=fake_logits).log_prob(torch.zeros_like(fake_logits))
    return -0.5 * log_d_real.mean() - 0.5 * log_one_minus_d_fake.mean()


def generator_loss(fake_logits, kind="non_saturating"):
    fake_logits = _as_vector(fake_logits)
    dist = Bernoulli(logits=fake_logits)
    if kind == "non_saturating":
        return -0.5 * dist.log_prob(torch.ones_like(fake_logits)).mean()
    if kind == "minimax":
        return 0.5 * dist.log_prob(torch.zeros_like(fake_logits)).mean()
    raise ValueError("unsupported generator loss: " + str(kind))


def reparameterize(mu, logvar, eps):
    return mu + logvar.mul(0.5).exp() * eps


def gaussian_kl(mu, logvar):
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return kl_divergence(q, p).sum(dim=-1)


def bernoulli_log_likelihood(x, logits):
    return Bernoulli(logits=logits).log_prob(x).sum(dim=-1)


def elbo(x, logits, mu, logvar):
    return bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar)


def chain_rule_log_likelihood(x, conditional_logits):
    # each conditional p(x_i | x_<i) is a Bernoulli, so log p(x) is a sum of Bernoulli log-probs
    return Bernoulli(logits=conditional_logits).log_prob(x).sum(dim=-1)


class FVBN(nn.Module):
    """NADE (Larochelle & Murray 2011): h_i = sigmoid(c + W[:, :i] x[:i]), logit_i = b_i + V_i . h_i."""

    def __init__(self, dim, hidden=32):
        super().__init__()
        self.dim = dim
        self.W = nn.Parameter(0.1 * torch.randn(hidden, dim))
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(0.1 * torch.randn(dim, hidden))
        self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        contrib = x.unsqueeze(1) * self.W.unsqueeze(0)                # [B, H, D]
        running = torch.cumsum(contrib, dim=2)[:, :, :-1]               # sums over j <= i
        running = torch.cat([torch.zeros_like(contrib[:, :, :1]), running], dim=2)  # shift: j < i
        h = torch.sigmoid(self.c[None, :, None] + running)              # [B, H, D]
        return self.b + torch.einsum("ih,bhi->bi", self.V, h)

    def log_prob(self, x):
        return chain_rule_log_likelihood(x, self.forward(x))

    def sample(self, n, generator=None):
        x = torch.zeros(n, self.dim)
        a = self.c.detach().expand(n, -1).clone()
        with torch.no_grad():
            for i in range(self.dim):
                h = torch.sigmoid(a)
                p = torch.sigmoid(self.b[i] + h @ self.V[i])
                x[:, i] = torch.bernoulli(p, generator=generator)
                a = a + x[:, i:i + 1] * self.W[:, i]
        return x


def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    out = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        rows = torch.randint(high=len(data), size=(batch_size,), generator=rng)
        z = torch.randn((batch_size, latent_dim), generator=rng)
        fake = generator(z)

        discriminator.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        loss_d = discriminator_loss(discriminator(data[rows]), discriminator(fake.detach()))
        loss_d.backward()
        opt_d.step()

        discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g = generator_loss(discriminator(fake), "non_saturating")
        loss_g.backward()
        opt_g.step()

        out["d_loss"].append(loss_d.item())
        out["g_loss"].append(loss_g.item())
    discriminator.requires_grad_(True)
    return out
