"""MLP generator and discriminator, for the 2-D ring and for binarised 8x8 digits.

Shapes: ``z`` is ``[B, latent_dim]``, data ``[B, data_dim]``, discriminator logits ``[B, 1]``
(``D(x) = sigmoid(logit)``, the convention of ``reference.formulas``).

Digits are binary but a generator must be differentiable, so the digits generator ends in a
sigmoid and outputs pixel *probabilities* in (0, 1) that the discriminator compares with the
binary real images (the usual relaxation; sample pixels with ``torch.bernoulli`` to get binary
images). The ring generator's output layer is linear.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class GANConfig:
    data_dim: int
    latent_dim: int
    hidden: int
    sigmoid_output: bool


#: The configurations used by ``reference.train``, one per dataset.
GAN_CONFIGS = {
    "ring": GANConfig(data_dim=2, latent_dim=2, hidden=128, sigmoid_output=False),
    "digits": GANConfig(data_dim=64, latent_dim=16, hidden=256, sigmoid_output=True),
    "mnist": GANConfig(data_dim=784, latent_dim=64, hidden=512, sigmoid_output=True),
}


class Generator(nn.Module):
    """z ``[B, latent_dim]`` -> x ``[B, data_dim]``: two ReLU hidden layers of width ``hidden``."""

    def __init__(self, data_dim: int, latent_dim: int, hidden: int, sigmoid_output: bool = False):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, data_dim),
        ]
        if sigmoid_output:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """x ``[B, data_dim]`` -> logits ``[B, 1]``: two LeakyReLU(0.2) hidden layers of width ``hidden``."""

    def __init__(self, data_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_gan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """A fresh generator/discriminator pair for ``config`` (initialised from torch's global RNG)."""
    return (
        Generator(config.data_dim, config.latent_dim, config.hidden, config.sigmoid_output),
        Discriminator(config.data_dim, config.hidden),
    )
