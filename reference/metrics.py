"""Statistics of generated samples on the 2-D ring of Gaussians, defined once.

All functions take samples ``[N, 2]`` (any float dtype, any device), compute in float64 on the
CPU, are deterministic, and return Python numbers.

Definitions (the usual ones of Metz et al. 2017, Srivastava et al. 2017 "VEEGAN", Lin et al.
2018 "PacGAN"):

* A sample is assigned to its nearest ring centre. It is *high quality* when that distance is below
  ``HIGH_QUALITY_RADIUS = 3 * RING_STD``; a true sample is high quality with probability
  ``1 - exp(-9 / 2) = 0.989`` (the distance of a 2-D isotropic Gaussian draw to its mean is
  Rayleigh distributed).
* A mode is *covered* when at least ``min_count`` high-quality samples are assigned to it; by
  default ``min_count = ceil(MODE_MIN_FRACTION * N)``, i.e. 1 % of the samples (20 of 2000, where
  a perfect generator puts about 250 in each mode).
* ``ring_distance`` is the energy distance (Szekely & Rizzo) between the samples and a fresh
  reference sample of the ring; it needs no kernel bandwidth and is 0 only when the distributions
  agree.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from reference.data import RING_MODES, RING_STD, ring_centers, sample_ring

HIGH_QUALITY_RADIUS = 3.0 * RING_STD
MODE_MIN_FRACTION = 0.01
RING_REFERENCE_SIZE = 2000


def _as_float64(samples: Tensor) -> Tensor:
    samples = samples.detach().to("cpu", torch.float64)
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"ring samples must have shape [N, 2], got {list(samples.shape)}")
    return samples


def _nearest_centre(samples: Tensor) -> tuple[Tensor, Tensor]:
    """Index ``[N]`` (int64) of the nearest centre and the distance ``[N]`` (float64) to it."""
    dist = torch.cdist(_as_float64(samples), ring_centers().double(), compute_mode="donot_use_mm_for_euclid_dist")
    d, idx = dist.min(dim=1)
    return idx, d


def high_quality_mask(samples: Tensor) -> Tensor:
    """Boolean ``[N]``: the sample lies within ``HIGH_QUALITY_RADIUS`` of its nearest centre."""
    return _nearest_centre(samples)[1] < HIGH_QUALITY_RADIUS


def high_quality_fraction(samples: Tensor) -> float:
    """Fraction in [0, 1] of the samples ``[N, 2]`` that are high quality."""
    return float(high_quality_mask(samples).double().mean())


def mode_counts(samples: Tensor) -> Tensor:
    """Number of high-quality samples assigned to each mode, int64 ``[RING_MODES]``."""
    idx, d = _nearest_centre(samples)
    return torch.bincount(idx[d < HIGH_QUALITY_RADIUS], minlength=RING_MODES)


def modes_covered(samples: Tensor, min_count: int | None = None) -> int:
    """Number of modes (0..8) with at least ``min_count`` high-quality samples.

    ``min_count`` defaults to ``ceil(MODE_MIN_FRACTION * N)`` (1 % of the samples, at least 1).
    """
    if min_count is None:
        min_count = max(1, math.ceil(MODE_MIN_FRACTION * samples.shape[0]))
    return int((mode_counts(samples) >= min_count).sum())


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between samples ``[N, d]`` and ``[M, d]``.

    The V-statistic (every pair, including i = j), so it is >= 0; float64.
    """
    x, y = x.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.float64)

    def mean_dist(a: Tensor, b: Tensor) -> Tensor:
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").mean()

    return float(2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y))


def ring_distance(samples: Tensor, generator: torch.Generator, n_reference: int = RING_REFERENCE_SIZE) -> float:
    """Energy distance between ``samples [N, 2]`` and ``n_reference`` true ring draws made with ``generator``."""
    return energy_distance(_as_float64(samples), sample_ring(n_reference, generator))


def ring_statistics(samples: Tensor, generator: torch.Generator) -> dict[str, float]:
    """All ring statistics of ``samples [N, 2]``; ``generator`` draws the reference sample."""
    return {
        "modes_covered": float(modes_covered(samples)),
        "high_quality_fraction": high_quality_fraction(samples),
        "ring_distance": ring_distance(samples, generator),
    }
