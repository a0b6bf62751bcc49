"""Datasets (``reference.data``) and ring statistics (``reference.metrics``)."""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits

from reference import metrics
from reference.data import (
    RING_MODES, RING_RADIUS, RING_STD, load_dataset, load_digits_binary, load_digits_labels, load_mnist_binary,
    read_idx, ring_centers, sample_ring, write_idx_images,
)

# ------------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------------


def test_digits_split_sizes_and_values():
    train, test = load_digits_binary("train"), load_digits_binary("test")
    assert train.shape == (1438, 64) and test.shape == (359, 64)
    assert train.dtype == test.dtype == torch.float32
    assert set(torch.cat([train, test]).unique().tolist()) == {0.0, 1.0}
    assert load_digits_labels("train").shape == (1438,) and load_digits_labels("test").shape == (359,)


def test_digits_follow_the_documented_rule():
    """Re-derive the split and the binarisation from the docstring's rule."""
    raw = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    for split, idx in (("train", perm[:1438]), ("test", perm[1438:])):
        np.testing.assert_array_equal(load_digits_binary(split).numpy(), (raw.data[idx] >= 8).astype(np.float32))
        np.testing.assert_array_equal(load_digits_labels(split).numpy(), raw.target[idx])


def test_digits_pinned_and_deterministic():
    """Pinned counts: a change of the rule, of the split or of scikit-learn's data shows up here."""
    assert torch.equal(load_digits_binary("train"), load_digits_binary("train"))
    assert int(load_digits_binary("train").sum()) == 29718
    assert int(load_digits_binary("test").sum()) == 7433
    assert load_digits_labels("test")[:10].tolist() == [8, 8, 9, 8, 3, 7, 5, 0, 6, 6]


def test_bad_split_and_name():
    with pytest.raises(ValueError):
        load_digits_binary("validation")
    with pytest.raises(ValueError):
        load_dataset("cifar", "train")
    with pytest.raises(ValueError):
        load_dataset("mnist", "train")  # no data_dir


# ------------------------------------------------------------------------------------------------
# ring
# ------------------------------------------------------------------------------------------------


def test_ring_centres():
    c = ring_centers().double()
    assert c.shape == (RING_MODES, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), RING_RADIUS, dtype=torch.float64))
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-6, rtol=0)


def test_ring_samples():
    x = sample_ring(10_000, torch.Generator().manual_seed(0))
    assert x.shape == (10_000, 2) and x.dtype == torch.float32
    assert torch.equal(x, sample_ring(10_000, torch.Generator().manual_seed(0)))
    d, idx = torch.cdist(x.double(), ring_centers().double()).min(dim=1)
    assert d.max() < 6 * RING_STD
    assert d.pow(2).mean().sqrt().item() == pytest.approx(math.sqrt(2) * RING_STD, rel=0.03)
    counts = torch.bincount(idx, minlength=8)
    assert counts.min() > 1100 and counts.max() < 1400  # 1250 expected each


def test_load_dataset_ring_splits():
    train, test = load_dataset("ring", "train"), load_dataset("ring", "test")
    assert train.shape == (10_000, 2) and test.shape == (2_000, 2)
    assert torch.equal(train, load_dataset("ring", "train"))
    assert not torch.equal(train[:2000], test)


# ------------------------------------------------------------------------------------------------
# ring metrics
# ------------------------------------------------------------------------------------------------


def test_metrics_on_the_true_ring():
    x = sample_ring(2000, torch.Generator().manual_seed(1))
    assert metrics.modes_covered(x) == 8
    # a true draw is high quality with probability 1 - exp(-9/2) = 0.989
    assert metrics.high_quality_fraction(x) == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    dist = metrics.ring_distance(x, torch.Generator().manual_seed(2))
    assert 0 <= dist < 0.01
    stats = metrics.ring_statistics(x, torch.Generator().manual_seed(2))
    assert stats == {"modes_covered": 8.0, "high_quality_fraction": metrics.high_quality_fraction(x),
                     "ring_distance": dist}


def test_metrics_on_a_collapsed_sample():
    g = torch.Generator().manual_seed(3)
    x = ring_centers()[2] + RING_STD * torch.randn(2000, 2, generator=g)
    assert metrics.modes_covered(x) == 1
    assert metrics.high_quality_fraction(x) > 0.97
    assert metrics.ring_distance(x, g) > 1.0


def test_metrics_on_off_ring_samples():
    x = torch.zeros(500, 2)  # the origin: far from every mode
    assert metrics.modes_covered(x) == 0 and metrics.high_quality_fraction(x) == 0.0
    x = ring_centers() * 1.05  # every mode, but 0.1 = 5 std off
    assert metrics.high_quality_fraction(x) == 0.0


def test_modes_covered_threshold():
    x = sample_ring(2000, torch.Generator().manual_seed(4))
    counts = metrics.mode_counts(x)
    assert counts.sum() == round(2000 * metrics.high_quality_fraction(x))
    # keep only 10 samples of mode 0: below the default ceil(1 % of ~1760) = 18
    idx = torch.cdist(x.double(), ring_centers().double()).argmin(1)
    keep = torch.cat([torch.nonzero(idx != 0)[:, 0], torch.nonzero(idx == 0)[:10, 0]])
    assert 1700 < len(keep) < 1800
    assert metrics.modes_covered(x[keep]) == 7
    assert metrics.modes_covered(x[keep], min_count=11) == 7
    assert metrics.modes_covered(x[keep], min_count=1) == 8


def test_energy_distance_against_scipy():
    r = np.random.default_rng(0)
    a, b = r.normal(size=(40, 2)), r.normal(1.0, 1.0, size=(30, 2))
    expected = 2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean()
    assert metrics.energy_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, rel=1e-12)
    assert metrics.energy_distance(torch.tensor(a), torch.tensor(a)) == pytest.approx(0.0, abs=1e-12)


def test_metrics_shape_check():
    with pytest.raises(ValueError):
        metrics.high_quality_fraction(torch.zeros(5, 3))


# ------------------------------------------------------------------------------------------------
# MNIST IDX files
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_round_trip(tmp_path, suffix):
    r = np.random.default_rng(0)
    train = r.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    test = r.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    train[0, 0, :4] = [127, 128, 0, 255]  # the threshold: 127 -> 0, 128 -> 1
    write_idx_images(tmp_path / f"train-images-idx3-ubyte{suffix}", train)
    write_idx_images(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test)

    raw = (tmp_path / f"train-images-idx3-ubyte{suffix}").read_bytes()
    header = gzip.decompress(raw)[:16] if suffix else raw[:16]
    assert header == bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28])

    np.testing.assert_array_equal(read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), train)
    for split, images in (("train", train), ("test", test)):
        x = load_mnist_binary(tmp_path, split)
        assert x.shape == (len(images), 784) and x.dtype == torch.float32
        np.testing.assert_array_equal(x.numpy(), (images.reshape(len(images), -1) >= 128).astype(np.float32))
        assert torch.equal(load_dataset("mnist", split, data_dir=tmp_path), x)
    assert load_mnist_binary(tmp_path, "train")[0, :4].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_mnist_missing_or_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mnist_binary(tmp_path, "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1]))
    with pytest.raises(ValueError):
        load_mnist_binary(tmp_path, "train")
    with pytest.raises(ValueError):
        write_idx_images(tmp_path / "x", np.zeros((2, 2, 2), dtype=np.int32))
