"""A VAE for binary data (Kingma & Welling 2014), in the spirit of pytorch/examples' vae/.

Encoder: x ``[B, D]`` -> hidden ReLU layer -> ``mu, logvar`` ``[B, K]`` (a diagonal Gaussian
q(z | x)). Decoder: z ``[B, K]`` -> hidden ReLU layer -> Bernoulli logits ``[B, D]``. Prior
p(z) = N(0, I). Every bound is per example, in nats, shape ``[B]`` (see ``reference.formulas``).

Randomness: every method that draws ``eps ~ N(0, I)`` takes an optional ``torch.Generator``; the
noise is drawn on the generator's device and then moved to the model's, so a CPU generator gives
the same draws whatever the model's device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reference import formulas


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class VAE(nn.Module):
    def __init__(self, data_dim: int, latent_dim: int, hidden: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = nn.Linear(data_dim, hidden)
        self.enc_mu = nn.Linear(hidden, latent_dim)
        self.enc_logvar = nn.Linear(hidden, latent_dim)
        self.dec = nn.Linear(latent_dim, hidden)
        self.dec_out = nn.Linear(hidden, data_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x ``[B, D]`` -> (mu, logvar), each ``[B, K]``."""
        h = F.relu(self.enc(x))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """z ``[..., K]`` -> Bernoulli logits ``[..., D]``."""
        return self.dec_out(F.relu(self.dec(z)))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One reparameterised pass: (logits ``[B, D]``, mu ``[B, K]``, logvar ``[B, K]``)."""
        mu, logvar = self.encode(x)
        z = formulas.reparameterize(mu, logvar, _randn(tuple(mu.shape), mu, generator))
        return self.decode(z), mu, logvar

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Single-sample ELBO per example, ``[B]`` (nats)."""
        logits, mu, logvar = self(x, generator)
        return formulas.elbo(x, logits, mu, logvar)

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The training loss: minus the batch-mean ELBO, a 0-dim tensor."""
        return -self.elbo(x, generator).mean()

    @torch.no_grad()
    def importance_weighted_bound(self, x: Tensor, k: int = 100, generator: torch.Generator | None = None) -> Tensor:
        """The k-sample IWAE bound (Burda et al. 2016) per example, ``[B]`` (nats); >= ELBO in expectation."""
        mu, logvar = self.encode(x)
        eps = _randn((k, *mu.shape), mu, generator)
        z = formulas.reparameterize(mu, logvar, eps)  # [k, B, K], broadcasting over k
        logits = self.decode(z)  # [k, B, D]
        log_px_given_z = formulas.bernoulli_log_likelihood(x.expand_as(logits), logits)  # [k, B]
        return formulas.importance_weighted_bound(log_px_given_z, z, mu, logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Pixel probabilities ``[n, D]`` of the decoder at z ~ p(z)."""
        z = _randn((n, self.latent_dim), self.dec.weight, generator)
        return torch.sigmoid(self.decode(z))
