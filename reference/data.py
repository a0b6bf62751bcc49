"""The datasets, each defined once: binarised 8x8 digits, the 2-D ring of Gaussians, binarised MNIST.

Nothing here downloads anything. The digits ship with scikit-learn; MNIST is read from a local
folder holding the standard IDX files; the ring is synthetic.

Conventions
-----------
* Binary data is float32 with entries in {0, 1}, flattened to ``[N, D]`` (D = 64 for digits,
  784 for MNIST). Ring data is float32 ``[N, 2]``.
* ``split`` is ``"train"`` or ``"test"``; anything else raises ``ValueError``.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SPLITS = ("train", "test")
DATASETS = ("digits", "ring", "mnist")

#: Digits: a pixel (an integer 0..16 in scikit-learn's bundled set) is 1 when >= this value.
DIGITS_THRESHOLD = 8
#: Digits: seed of the numpy Generator whose permutation fixes the train/test split.
DIGITS_SPLIT_SEED = 0
#: Digits: the last ``N // DIGITS_TEST_DENOMINATOR`` rows of the permutation are the test split.
DIGITS_TEST_DENOMINATOR = 5  # 20 %: 1797 images -> 1438 train, 359 test

#: Ring: 8 isotropic Gaussians with means evenly spaced on a circle (Metz et al., "Unrolled GANs",
#: 2017), mode k at angle 2 pi k / 8, radius 2, standard deviation 0.02 per coordinate.
RING_MODES = 8
RING_RADIUS = 2.0
RING_STD = 0.02
#: Ring: the fixed sample that plays the role of a dataset: size and torch seed per split.
RING_SPLIT_SIZE = {"train": 10_000, "test": 2_000}
RING_SPLIT_SEED = {"train": 0, "test": 1}

#: MNIST: a pixel (0..255) is 1 when pixel / 255 >= this value (i.e. pixel >= 128).
MNIST_THRESHOLD = 0.5
_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


# ------------------------------------------------------------------------------------------------
# 8x8 digits
# ------------------------------------------------------------------------------------------------

def _digits_split_indices(n: int, split: str) -> np.ndarray:
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    n_test = n // DIGITS_TEST_DENOMINATOR
    return perm[: n - n_test] if split == "train" else perm[n - n_test:]


def load_digits_binary(split: str) -> Tensor:
    """scikit-learn's bundled 8x8 digits, binarised and split; float32 ``[N, 64]`` in {0, 1}.

    Binarisation: a pixel (an integer 0..16) becomes 1 when it is >= 8 (``DIGITS_THRESHOLD``),
    else 0. Split: ``np.random.default_rng(0).permutation(1797)``; the first 1438 indices are
    ``"train"`` and the last 359 (``1797 // 5``, 20 %) are ``"test"``, in permutation order.
    """
    _check_split(split)
    from sklearn.datasets import load_digits

    pixels = load_digits().data  # [1797, 64], float64 integers 0..16, no download
    rows = pixels[_digits_split_indices(len(pixels), split)]
    return torch.from_numpy((rows >= DIGITS_THRESHOLD).astype(np.float32))


def load_digits_labels(split: str) -> Tensor:
    """The class (0..9) of each row of ``load_digits_binary(split)``; int64 ``[N]``, same order."""
    _check_split(split)
    from sklearn.datasets import load_digits

    target = load_digits().target
    return torch.from_numpy(target[_digits_split_indices(len(target), split)].astype(np.int64))


# ------------------------------------------------------------------------------------------------
# The ring of Gaussians
# ------------------------------------------------------------------------------------------------

def ring_centers() -> Tensor:
    """The 8 mode means, float32 ``[RING_MODES, 2]``; mode k sits at angle ``2 pi k / RING_MODES``."""
    angles = torch.arange(RING_MODES, dtype=torch.float64) * (2 * math.pi / RING_MODES)
    return (RING_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def sample_ring(n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws from the uniform mixture of the ring's Gaussians, float32 ``[n, 2]``.

    Uses ``generator`` for the mode choice and then for the Gaussian noise, in that order.
    """
    modes = torch.randint(0, RING_MODES, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return ring_centers()[modes] + RING_STD * noise


# ------------------------------------------------------------------------------------------------
# MNIST from local IDX files
# ------------------------------------------------------------------------------------------------

def write_idx_images(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array ``[N, H, W]`` as an IDX3 file (gzip-compressed when ``path`` ends in .gz).

    The format is MNIST's: magic ``0x00000803`` (two zero bytes, type 0x08 = unsigned byte,
    3 dimensions), then each dimension as a big-endian int32, then the bytes in C order.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"expected a uint8 array [N, H, W], got {array.dtype} {array.shape}")
    header = struct.pack(">BBBB", 0, 0, _IDX_UBYTE, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or .gz) into a uint8 array of the shape it declares."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero1, zero2, dtype, ndim = struct.unpack(">BBBB", raw[:4])
    if zero1 or zero2 or dtype != _IDX_UBYTE:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}i", raw[4: 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path}: header declares {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def _mnist_path(data_dir: str | os.PathLike, split: str) -> Path:
    prefix = "train" if split == "train" else "t10k"
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"):
        for suffix in ("", ".gz"):
            path = Path(data_dir) / (name + suffix)
            if path.exists():
                return path
    raise FileNotFoundError(f"no {prefix}-images-idx3-ubyte[.gz] in {data_dir}")


def load_mnist_binary(data_dir: str | os.PathLike, split: str) -> Tensor:
    """MNIST images from ``data_dir``, binarised and flattened; float32 ``[N, 784]`` in {0, 1}.

    Reads ``train-images-idx3-ubyte`` (split ``"train"``) or ``t10k-images-idx3-ubyte``
    (``"test"``), optionally gzip-compressed (``.gz``). A pixel becomes 1 when
    ``pixel / 255 >= 0.5`` (i.e. pixel >= 128), else 0.
    """
    _check_split(split)
    images = read_idx(_mnist_path(data_dir, split))
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    return torch.from_numpy((flat >= MNIST_THRESHOLD).astype(np.float32))


# ------------------------------------------------------------------------------------------------

def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Tensor:
    """Dispatch on ``name`` in ``DATASETS``: digits ``[N, 64]``, ring ``[N, 2]``, mnist ``[N, 784]``.

    The ring's splits are fixed samples: ``RING_SPLIT_SIZE[split]`` draws from
    ``torch.Generator().manual_seed(RING_SPLIT_SEED[split])``. MNIST needs ``data_dir``.
    """
    _check_split(split)
    if name == "digits":
        return load_digits_binary(split)
    if name == "ring":
        return sample_ring(RING_SPLIT_SIZE[split], torch.Generator().manual_seed(RING_SPLIT_SEED[split]))
    if name == "mnist":
        if data_dir is None:
            raise ValueError("the mnist dataset needs data_dir, a folder holding the IDX files")
        return load_mnist_binary(data_dir, split)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
