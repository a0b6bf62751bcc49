"""The reference "GAN workhouse": the training loop that the assignment's ``train_gan`` asks for."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reference.formulas import discriminator_loss, generator_loss


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    latent_dim: int,
    rng: torch.Generator,
) -> dict[str, list[float]]:
    """Train ``generator`` and ``discriminator`` in place with the non-saturating GAN game.

    Each step draws a real batch (``batch_size`` rows of ``data``, shape ``[N, d]``, chosen with
    ``rng``) and ``z ~ N(0, I)`` of shape ``[batch_size, latent_dim]`` (with ``rng``); takes one Adam
    step on the discriminator for ``discriminator_loss`` (generated samples detached), then one on
    the generator for ``generator_loss(kind="non_saturating")``. Adam uses ``lr`` and betas
    (0.5, 0.999). Returns ``{"d_loss": [...], "g_loss": [...]}``, one float per step.
    """
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[str, list[float]] = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=rng)
        real = data[idx]
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

        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
    return history
