"""The Fréchet distance, the committed digits classifier, and the GAN-on-digits statistics."""
from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest
import torch

from reference import classifier, train
from reference.data import load_digits_binary
from reference.frechet import bernoulli_images, digits_frechet, frechet_distance, gaussian_frechet

# ------------------------------------------------------------------------------------------------
# The distance
# ------------------------------------------------------------------------------------------------


def test_gaussian_closed_form_for_diagonal_covariances():
    r = np.random.default_rng(0)
    mu_a, mu_b = r.normal(size=5), r.normal(size=5)
    var_a, var_b = r.uniform(0.1, 3, 5), r.uniform(0.1, 3, 5)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert gaussian_frechet(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected, rel=1e-12)


def test_gaussian_closed_form_for_commuting_full_covariances():
    # C_a = Q diag(a) Q^T and C_b = Q diag(b) Q^T commute: the distance is that of the diagonal case.
    r = np.random.default_rng(1)
    q, _ = np.linalg.qr(r.normal(size=(6, 6)))
    a, b = r.uniform(0.2, 2, 6), r.uniform(0.2, 2, 6)
    mu_a, mu_b = r.normal(size=6), r.normal(size=6)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = gaussian_frechet(mu_a, q @ np.diag(a) @ q.T, mu_b, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_non_commuting_covariances_agree_with_scipy_sqrtm():
    from scipy.linalg import sqrtm

    r = np.random.default_rng(5)
    a, b = r.normal(size=(8, 8)), r.normal(size=(8, 8))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    assert not np.allclose(cov_a @ cov_b, cov_b @ cov_a)
    mu_a, mu_b = r.normal(size=8), r.normal(size=8)
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(sqrtm(cov_a @ cov_b)))
    assert gaussian_frechet(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8)


def test_samples_of_known_gaussians_approach_the_closed_form():
    r = np.random.default_rng(2)
    mu_a, mu_b = np.zeros(3), np.array([1.0, -2.0, 0.5])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([0.5, 1.0, 1.5])
    a, b = mu_a + sd_a * r.normal(size=(200_000, 3)), mu_b + sd_b * r.normal(size=(200_000, 3))
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)  # 5.25 + 1.5 = 6.75
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.01)


def test_identical_sets_symmetry_row_order_and_tensors():
    r = np.random.default_rng(3)
    a, b = r.normal(size=(500, 32)), r.normal(1.0, 2.0, size=(400, 32)) @ r.normal(size=(32, 32))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) > 1.0
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a[r.permutation(500)], b[r.permutation(400)]) == pytest.approx(
        frechet_distance(a, b), rel=1e-9)
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        frechet_distance(a, b), rel=1e-5)


def test_singular_covariances_give_a_finite_non_negative_distance():
    # fewer rows than features, and a constant (dead) feature: rank-deficient covariances
    r = np.random.default_rng(4)
    a, b = r.normal(size=(10, 32)), r.normal(size=(12, 32))
    a[:, 0] = b[:, 0] = 0.0
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d >= 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("a,b", [(np.zeros((1, 3)), np.zeros((5, 3))), (np.zeros((5, 3)), np.zeros((5, 4))),
                                 (np.zeros(5), np.zeros(5)), (np.full((4, 2), np.nan), np.zeros((4, 2)))])
def test_bad_shapes_raise(a, b):
    with pytest.raises(ValueError):
        frechet_distance(a, b)


def test_bernoulli_images_are_binary_and_reproducible():
    probs = torch.rand(100, 64, generator=torch.Generator().manual_seed(0))
    x = bernoulli_images(probs, torch.Generator().manual_seed(5))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x, bernoulli_images(probs, torch.Generator().manual_seed(5)))
    assert abs(float(x.mean()) - float(probs.mean())) < 0.02


# ------------------------------------------------------------------------------------------------
# The committed classifier
# ------------------------------------------------------------------------------------------------


def test_classifier_npz_is_plain_float32_arrays_matching_its_sidecar():
    sidecar = json.loads(classifier.SIDECAR_PATH.read_text())
    assert hashlib.sha256(classifier.NPZ_PATH.read_bytes()).hexdigest() == sidecar["sha256"]
    with zipfile.ZipFile(classifier.NPZ_PATH) as z:  # plain .npy members only, no pickle anywhere
        assert sorted(z.namelist()) == sorted(f"{name}.npy" for name in sidecar["arrays"])
    with np.load(classifier.NPZ_PATH, allow_pickle=False) as data:
        for name, shape in sidecar["arrays"].items():
            assert data[name].dtype == np.float32 and list(data[name].shape) == shape
    assert sidecar["test_accuracy"] > 0.93 and sidecar["seed"] == classifier.SEED


def test_load_classifier_accuracy_and_features():
    model = classifier.load_classifier()
    acc = classifier.accuracy(model, "test")
    assert acc > 0.93
    assert acc == pytest.approx(json.loads(classifier.SIDECAR_PATH.read_text())["test_accuracy"], abs=1e-12)
    x = load_digits_binary("test")
    f = classifier.features(x)
    assert f.shape == (len(x), classifier.FEATURES) and f.dtype == torch.float32
    assert torch.equal(f, model.features(x))


def test_load_classifier_refuses_a_file_with_another_checksum(tmp_path):
    copy = tmp_path / "c.npz"
    copy.write_bytes(classifier.NPZ_PATH.read_bytes())
    classifier.load_classifier(copy, expected_sha256=classifier.sha256_file(copy))  # loads
    with pytest.raises(ValueError, match="sha256"):
        classifier.load_classifier(copy, expected_sha256="0" * 64)


def test_classifier_training_is_deterministic():
    a = classifier.to_arrays(classifier.train_classifier(epochs=2))
    b = classifier.to_arrays(classifier.train_classifier(epochs=2))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_digits_frechet_ranks_real_digits_above_noise():
    test, train_x = load_digits_binary("test"), load_digits_binary("train")
    floor = digits_frechet(train_x)
    noise = bernoulli_images(torch.full((2000, 64), float(train_x.mean())), torch.Generator().manual_seed(0))
    assert digits_frechet(test) == pytest.approx(0.0, abs=1e-6)
    assert 0 < floor < digits_frechet(noise) / 10


# ------------------------------------------------------------------------------------------------
# The GAN on digits: committed statistics and a short run
# ------------------------------------------------------------------------------------------------


def test_committed_gan_digits_statistics():
    stats = json.loads((train.STATS_DIR / "gan_digits_cpu.json").read_text())
    assert stats["model"] == "gan" and stats["data"] == "digits" and stats["device"] == "cpu"
    assert len(stats["seeds"]) >= 5 and "GPU" in stats["note"] and "CPU" in stats["note"]
    assert stats["frechet"]["classifier_sha256"] == json.loads(classifier.SIDECAR_PATH.read_text())["sha256"]
    floor, m = stats["floor"], stats["metrics"]
    assert 0 < floor < stats["independent_pixels"] < min(m["ceiling"]["values"])
    for distance, ceiling in zip(m["frechet_distance"]["values"], m["ceiling"]["values"], strict=True):
        assert floor < distance < ceiling
    assert len(stats["wall_time_s"]["per_seed"]) == len(stats["seeds"])
    # the reference GAN is a real generator of digits: every seed beats independent pixels
    assert m["frechet_distance"]["max"] < stats["independent_pixels"]
    every = train.GAN_DIGITS_CHECKPOINT_EVERY
    assert all(s % every == 0 or s == stats["steps"] for s in m["checkpoint_step"]["values"])
    png = train.STATS_DIR / stats["samples_png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_floor_matches_the_committed_one():
    stats = json.loads((train.STATS_DIR / "gan_digits_cpu.json").read_text())
    assert train.digits_floor() == pytest.approx(stats["floor"], rel=1e-6)


def test_digits_discriminator_extras_leave_the_ring_networks_alone():
    from reference.models import GAN_CONFIGS, make_gan

    ring, digits = GAN_CONFIGS["ring"], GAN_CONFIGS["digits"]
    assert ring.dropout == 0.0 and not ring.minibatch_std
    _, disc = make_gan(ring)
    assert [type(m).__name__ for m in disc.net] == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    assert [n for n, _ in disc.named_parameters()] == [f"net.{i}.{w}" for i in (0, 2, 4) for w in ("weight", "bias")]
    _, disc = make_gan(digits)
    assert digits.dropout > 0 and digits.minibatch_std
    assert disc(torch.rand(7, 64)).shape == (7, 1)


def test_train_gan_digits_uses_binary_fakes_and_keeps_the_best_training_checkpoint():
    from reference.models import GAN_CONFIGS, make_gan

    config = GAN_CONFIGS["digits"]
    torch.manual_seed(0)
    gen, disc = make_gan(config)
    seen = []
    disc.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    data = load_digits_binary("train")
    hist = train.train_gan_digits(gen, disc, data, steps=7, batch_size=16, lr=1e-3, latent_dim=config.latent_dim,
                                  rng=torch.Generator().manual_seed(0), select_seed=3, checkpoint_every=3)
    assert len(hist["d_loss"]) == len(hist["g_loss"]) == 7
    assert all(set(x.unique().tolist()) <= {0.0, 1.0} for x in seen)  # real and fake batches alike
    assert hist["checkpoint_step"] in (3, 6, 7)
    r = torch.Generator().manual_seed(3)
    z = torch.randn(train.GAN_EVAL_SAMPLES, config.latent_dim, generator=r)
    with torch.no_grad():
        kept = digits_frechet(bernoulli_images(gen(z), r), reference=data)
    assert kept == pytest.approx(hist["train_distance"], rel=1e-12)  # gen was left at that checkpoint


def test_short_gan_digits_run_writes_the_new_fields(tmp_path):
    out = tmp_path / "gan.json"
    train.main(["--model", "gan", "--data", "digits", "--seeds", "1", "--steps", "20", "--out", str(out)])
    stats = json.loads(out.read_text())
    assert {"frechet_distance", "ceiling", "final_d_loss", "final_g_loss", "train_frechet_distance",
            "checkpoint_step"} == set(stats["metrics"])
    # 20 < 500 steps: the last step is the only checkpoint
    assert stats["metrics"]["checkpoint_step"]["values"] == [20.0]
    assert stats["steps"] == 20 and stats["device"] == "cpu" and stats["floor"] > 0
    assert stats["batch_size"] == train.DATA_DEFAULTS[("gan", "digits")]["batch_size"]  # the digits override
    assert stats["note"] == train.device_note(torch.device("cpu"))
    d, c = stats["metrics"]["frechet_distance"]["values"][0], stats["metrics"]["ceiling"]["values"][0]
    assert np.isfinite(d) and d > stats["floor"] and d != c
    png = tmp_path / "gan_samples.png"
    assert stats["samples_png"] == png.name and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan.json", "gan_samples.png"]  # no temporary left
