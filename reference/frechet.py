"""The Fréchet distance between feature sets, and its digits version on the reference classifier.

``frechet_distance(a, b)`` fits a Gaussian to each set of feature vectors (mean and sample
covariance, ddof = 1) and returns the squared 2-Wasserstein (Fréchet) distance between the two
Gaussians (Dowson & Landau 1982; the FID of Heusel et al. 2017 with other features):

    d^2 = |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2}).

``digits_frechet(samples)`` is that distance between the features (``reference.classifier``) of
binary 8x8 digits and those of the 359 real test digits. Generators of digits output pixel
*probabilities*; ``bernoulli_images`` turns them into binary images, the kind of image the
classifier was trained on and the data holds, with ``torch.bernoulli`` on a given generator.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from reference.data import load_digits_binary


def _as_float64(feats) -> np.ndarray:
    if isinstance(feats, Tensor):
        feats = feats.detach().to("cpu", torch.float64).numpy()
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"features must have shape [N, F] with N >= 2, got {list(feats.shape)}")
    if not np.isfinite(feats).all():
        raise ValueError("features must be finite")
    return feats


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_frechet(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Fréchet distance between N(mu_a ``[F]``, cov_a ``[F, F]``) and N(mu_b, cov_b); float64, >= 0.

    The trace of ``(C_a C_b)^{1/2}`` is computed in its symmetric form
    ``Tr((C_a^{1/2} C_b C_a^{1/2})^{1/2})``: the matrix inside is symmetric positive semi-definite,
    so an eigendecomposition gives its square root's trace as a sum of square roots of eigenvalues,
    with rounding-negative eigenvalues clipped to 0 and no complex parts (unlike ``sqrtm`` of the
    non-symmetric ``C_a C_b``). The result is clipped at 0 against rounding.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)
    return max(value, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between feature sets ``feats_a [N, F]`` and ``feats_b [M, F]`` (N, M >= 2).

    Accepts tensors (any device, any float dtype) or arrays; computes in float64 on the CPU. Each
    set is summarised by its mean ``[F]`` and sample covariance ``[F, F]`` (ddof = 1), then
    ``gaussian_frechet``. Symmetric in its arguments, invariant to the order of rows, 0 for
    identical sets (up to rounding, about 1e-12 times the features' scale squared).
    """
    a, b = _as_float64(feats_a), _as_float64(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    return gaussian_frechet(a.mean(axis=0), np.cov(a, rowvar=False, ddof=1).reshape(a.shape[1], a.shape[1]),
                            b.mean(axis=0), np.cov(b, rowvar=False, ddof=1).reshape(b.shape[1], b.shape[1]))


def bernoulli_images(probs: Tensor, generator: torch.Generator) -> Tensor:
    """Binary images ``[B, 64]`` (float32, CPU): each pixel ~ Bernoulli(``probs``), drawn with ``generator``.

    ``probs [B, 64]`` are a digits generator's sigmoid outputs; they are moved to the CPU first so that
    a CPU ``generator`` gives the same images whatever device the generator ran on.
    """
    return torch.bernoulli(probs.detach().to("cpu", torch.float32).clamp(0.0, 1.0), generator=generator)


def digits_frechet(samples: Tensor, reference: Tensor | None = None, classifier=None) -> float:
    """Fréchet distance between the classifier features of digits ``samples [N, 64]`` and ``reference``.

    ``samples`` should be binary like the data (see ``bernoulli_images``). ``reference`` defaults to
    the real test split ``load_digits_binary("test")`` (``[359, 64]``); ``classifier`` to the
    committed one (``reference.classifier.load_classifier()``).
    """
    from reference.classifier import features

    if reference is None:
        reference = load_digits_binary("test")
    return frechet_distance(features(samples, classifier), features(reference, classifier))
