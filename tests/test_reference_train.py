"""The trainer ``reference.train`` end to end with tiny budgets, and the committed statistics files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import train
from reference.data import write_idx_images

RUNS = [("fvbn", "digits"), ("nade", "digits"), ("made", "digits"), ("wavenet", "digits"), ("vae", "digits"),
        ("gan", "ring"), ("gan", "digits")]
EXPECTED_METRICS = {
    "fvbn": {"test_nll", "train_nll"}, "nade": {"test_nll", "train_nll"}, "made": {"test_nll", "train_nll"},
    "wavenet": {"test_nll", "train_nll"}, "vae": {"test_elbo", "test_iwae", "train_elbo"},
}


def expected_metrics(model: str, data: str) -> set[str]:
    if model == "gan":
        ring = {"modes_covered", "high_quality_fraction", "ring_distance"} if data == "ring" else set()
        digits = ({"frechet_distance", "ceiling", "train_frechet_distance", "checkpoint_step"}
                  if data == "digits" else set())
        return {"final_d_loss", "final_g_loss"} | ring | digits
    return EXPECTED_METRICS[model]


def run(tmp_path: Path, model: str, data: str, *extra: str, name: str = "stats.json") -> dict:
    out = tmp_path / name
    path = train.main(["--model", model, "--data", data, "--device", "cpu", "--seeds", "2", "--steps", "5",
                       "--out", str(out), *extra])
    assert path == out
    return json.loads(out.read_text())


def check_schema(stats: dict, n_seeds: int) -> None:
    assert stats["seeds"] == list(range(n_seeds))
    assert {"python", "torch", "numpy", "genmodel-grader"} <= set(stats["versions"])
    assert stats["device"] in ("cpu", "cuda")
    for key in ("steps", "batch_size", "lr", "date", "model", "data"):
        assert key in stats
    for clock in ("wall_time_s", "cpu_time_s"):
        assert len(stats[clock]["per_seed"]) == n_seeds and stats[clock]["total"] > 0
    for name, m in stats["metrics"].items():
        values = np.asarray(m["values"])
        assert len(values) == n_seeds and np.isfinite(values).all(), name
        assert m["mean"] == pytest.approx(values.mean())
        assert m["min"] == values.min() and m["max"] == values.max()
        assert m["std"] == pytest.approx(values.std(ddof=1) if n_seeds > 1 else 0.0)


@pytest.mark.parametrize("model,data", RUNS)
def test_end_to_end_and_reproducible(tmp_path, model, data):
    first = run(tmp_path, model, data, name="a.json")
    check_schema(first, 2)
    assert first["model"] == model and first["data"] == data and first["device"] == "cpu"
    assert first["steps"] == 5 and first["versions"]["torch"] == torch.__version__
    assert set(first["metrics"]) == expected_metrics(model, data)
    second = run(tmp_path, model, data, name="b.json")
    assert second["metrics"] == first["metrics"]  # bitwise: the same seeds give the same figures
    assert first["metrics"][next(iter(first["metrics"]))]["values"][0] != \
        first["metrics"][next(iter(first["metrics"]))]["values"][1]  # ... and different seeds differ
    pictures = ["a_samples.png", "b_samples.png"] if (model, data) == ("gan", "digits") else []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json", "b.json", *pictures])  # no temporary left


def test_mnist_from_a_tiny_idx_folder(tmp_path):
    r = np.random.default_rng(0)
    write_idx_images(tmp_path / "train-images-idx3-ubyte.gz", r.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    write_idx_images(tmp_path / "t10k-images-idx3-ubyte", r.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    stats = run(tmp_path, "fvbn", "mnist", "--data-dir", str(tmp_path), "--batch-size", "8")
    assert set(stats["metrics"]) == {"test_nll", "train_nll"}
    # The pixels are fair coins (uint8 >= 128), so 784 log 2 = 543.4 nats is the entropy of a test
    # image: no model beats it on held-out images (a NLL averaged over pixels, ~0.7, or a log_prob
    # that is not normalised would); five steps at lr 1e-2 on 40 images fit the training images
    # (below the entropy) and generalise nothing (measured: test 631.7, train 489.7 nats).
    entropy = 784 * np.log(2)
    m = stats["metrics"]
    assert 0.98 * entropy < m["test_nll"]["min"] and m["test_nll"]["max"] < 1.5 * entropy, m["test_nll"]
    assert 0.5 * entropy < m["train_nll"]["min"] and m["train_nll"]["max"] < entropy, m["train_nll"]


def test_settings_are_restored(tmp_path):
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    run(tmp_path, "fvbn", "digits", "--threads", "1")
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.parametrize("argv,message", [
    (["--model", "fvbn", "--data", "ring"], "--model fvbn models binary data: use --data digits or mnist"),
    (["--model", "vae", "--data", "mnist"], "--data mnist needs --data-dir"),
    (["--model", "bogus", "--data", "digits"], "argument --model: invalid choice: 'bogus'"),
    (["--model", "fvbn", "--data", "digits", "--seeds", "0"], "--seeds must be >= 1"),
], ids=["ring-for-fvbn", "mnist-without-dir", "unknown-model", "no-seeds"])
def test_bad_command_lines(argv, message, capsys, tmp_path):
    """Each bad command line is refused by argparse, for its own reason (status 2, the usage line
    and that reason on stderr), before anything is trained or written."""
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--out", str(tmp_path / "stats.json")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m reference.train"), err
    assert f"python -m reference.train: error: {message}" in err, err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# The committed statistics
# ------------------------------------------------------------------------------------------------

COMMITTED = [f"{m}_{d}_cpu.json" for m, d in RUNS]


def independent_pixel_nll() -> float:
    """Test NLL (nats) of the independent-pixel model of the binary digits: each pixel a Bernoulli
    of its training frequency (add-one smoothed), 25.2 nats."""
    from reference.data import load_digits_binary

    train_x, test_x = load_digits_binary("train").double(), load_digits_binary("test").double()
    p = (train_x.sum(0) + 1) / (len(train_x) + 2)
    return float(-(test_x * p.log() + (1 - test_x) * (1 - p).log()).sum(1).mean())


def test_independent_pixel_baseline():
    assert 24 < independent_pixel_nll() < 27


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_statistics(name):
    path = train.STATS_DIR / name
    stats = json.loads(path.read_text())
    n = len(stats["seeds"])
    assert n >= 5
    check_schema(stats, n)
    assert set(stats["metrics"]) == expected_metrics(stats["model"], stats["data"])
    uniform = 64 * np.log(2)  # 44.4 nats: the uniform model of 8x8 binary images
    m = stats["metrics"]
    baseline = independent_pixel_nll()
    if stats["model"] in train.FVBN_MODELS:
        assert m["test_nll"]["max"] < uniform - 10
        # every autoregressive model beats independent pixels (25.2 nats; committed: 17.0 to 18.3)
        assert m["test_nll"]["max"] < baseline - 5, (m["test_nll"], baseline)
        assert m["train_nll"]["mean"] < m["test_nll"]["mean"]
    elif stats["model"] == "vae":
        assert -uniform + 10 < m["test_elbo"]["min"] and m["test_iwae"]["mean"] > m["test_elbo"]["mean"]
        assert -m["test_elbo"]["min"] < baseline - 5, (m["test_elbo"], baseline)   # a bound on the NLL
    elif stats["data"] == "digits":  # gan: more in test_reference_frechet.py
        assert stats["floor"] < m["frechet_distance"]["min"] and m["frechet_distance"]["max"] < m["ceiling"]["min"]
    else:
        assert m["modes_covered"]["mean"] >= 6
