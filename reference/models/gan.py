"""MLP generator and discriminator, for the 2-D ring and for binarised 8x8 digits.

Shapes: ``z`` is ``[B, latent_dim]``, data ``[B, data_dim]``, discriminator logits ``[B, 1]``
(``D(x) = sigmoid(logit)``, the convention of ``reference.formulas``).

Digits are binary but a generator must be differentiable, so the digits generator ends in a
sigmoid and outputs pixel *probabilities* in (0, 1); sample pixels with ``torch.bernoulli`` to get
binary images. Fed those probabilities directly, a discriminator tells them from the binary real
images by their grey levels alone and the GAN collapses; ``reference.train`` therefore shows the
digits discriminator Bernoulli samples of them, with a straight-through gradient (see
``reference.train.train_gan_digits``). The ring generator's output layer is linear.

The digits discriminator adds two things that the ring's (and MNIST's) leaves out, each switched on by
a ``GANConfig`` field whose default is off, so the other configurations' networks are unchanged:
``dropout`` (an ``nn.Dropout`` after each hidden activation: the discriminator otherwise memorises the
1438 training digits) and ``minibatch_std`` (``MinibatchStd``, Karras et al. 2018: the batch's mean
per-feature standard deviation of the last hidden layer, appended as one more feature, so that the
discriminator can see a batch of too-similar samples, a defence against mode collapse). With
``minibatch_std`` a logit depends on the rest of its batch; ``reference.train`` always feeds the real
and the generated batches to the discriminator separately.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class GANConfig:
    data_dim: int
    latent_dim: int
    hidden: int
    sigmoid_output: bool
    dropout: float = 0.0  # discriminator: nn.Dropout(dropout) after each hidden activation when > 0
    minibatch_std: bool = False  # discriminator: a MinibatchStd feature before its output layer


#: The configurations used by ``reference.train``, one per dataset.
GAN_CONFIGS = {
    "ring": GANConfig(data_dim=2, latent_dim=2, hidden=128, sigmoid_output=False),
    "digits": GANConfig(data_dim=64, latent_dim=16, hidden=256, sigmoid_output=True, dropout=0.3, minibatch_std=True),
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


class MinibatchStd(nn.Module):
    """h ``[B, F]`` -> ``[B, F + 1]``: appends the batch's mean over features of the per-feature std.

    The standard deviation is the population one (``unbiased=False``, 0 for ``B = 1``); the appended
    column is the same for every row of the batch.
    """

    def forward(self, h: Tensor) -> Tensor:
        s = h.std(dim=0, unbiased=False).mean()
        return torch.cat([h, s.expand(h.shape[0], 1)], dim=1)


class Discriminator(nn.Module):
    """x ``[B, data_dim]`` -> logits ``[B, 1]``: two LeakyReLU(0.2) hidden layers of width ``hidden``.

    ``dropout > 0`` adds ``nn.Dropout(dropout)`` after each hidden activation; ``minibatch_std`` adds a
    ``MinibatchStd`` before the output layer (which then takes ``hidden + 1`` inputs). With the defaults
    the network is exactly ``Linear, LeakyReLU, Linear, LeakyReLU, Linear``.
    """

    def __init__(self, data_dim: int, hidden: int, dropout: float = 0.0, minibatch_std: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(data_dim, hidden), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if minibatch_std:
            layers.append(MinibatchStd())
        layers.append(nn.Linear(hidden + int(minibatch_std), 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_gan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """A fresh generator/discriminator pair for ``config`` (initialised from torch's global RNG)."""
    return (
        Generator(config.data_dim, config.latent_dim, config.hidden, config.sigmoid_output),
        Discriminator(config.data_dim, config.hidden, config.dropout, config.minibatch_std),
    )
