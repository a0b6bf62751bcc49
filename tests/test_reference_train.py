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
    assert stats["metrics"]["test_nll"]["mean"] > 0


def test_settings_are_restored(tmp_path):
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    run(tmp_path, "fvbn", "digits", "--threads", "1")
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.parametrize("argv", [
    ["--model", "fvbn", "--data", "ring"],  # FVBNs model binary data
    ["--model", "vae", "--data", "mnist"],  # mnist needs --data-dir
    ["--model", "bogus", "--data", "digits"],
    ["--model", "fvbn", "--data", "digits", "--seeds", "0"],
])
def test_bad_command_lines(argv):
    with pytest.raises(SystemExit):
        train.main(argv)


# ------------------------------------------------------------------------------------------------
# The committed statistics
# ------------------------------------------------------------------------------------------------

COMMITTED = [f"{m}_{d}_cpu.json" for m, d in RUNS]


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
    if stats["model"] in train.FVBN_MODELS:
        assert m["test_nll"]["max"] < uniform - 10
    elif stats["model"] == "vae":
        assert -uniform + 10 < m["test_elbo"]["min"] and m["test_iwae"]["mean"] > m["test_elbo"]["mean"]
    elif stats["data"] == "digits":  # gan: more in test_reference_frechet.py
        assert stats["floor"] < m["frechet_distance"]["min"] and m["frechet_distance"]["max"] < m["ceiling"]["min"]
    else:
        assert m["modes_covered"]["mean"] >= 6
