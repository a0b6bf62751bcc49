"""A small MLP classifier of the binarised 8x8 digits, trained once, whose features score generators.

    python -m reference.classifier          # writes reference/stats/digits_classifier.{npz,json}

The network is ``64 -> HIDDEN (ReLU) -> FEATURES (ReLU) -> 10``; ``features(x)`` returns the
``FEATURES`` activations of the penultimate layer (after its ReLU: what the last, linear layer
sees), the role Inception's pool3 features play in the FID of Heusel et al. (2017).

Training is deterministic: ``torch.manual_seed(SEED)`` fixes the initial parameters, a
``torch.Generator`` seeded with ``SEED`` fixes the minibatch order, ``torch.use_deterministic_algorithms``
is on and torch runs on one CPU thread. It uses the ``"train"`` split only (``reference.data``);
the ``"test"`` split gives the reported accuracy.

Storage: the weights are committed as ``digits_classifier.npz``, float32 arrays only, written with
numpy and read with ``np.load(path, allow_pickle=False)`` (never ``torch.load``/pickle, so loading
runs no code); the arrays are ``w0, b0, w1, b1, w2, b2`` in ``nn.Linear``'s layout (weight
``[out, in]``), so the architecture follows from their shapes. The JSON sidecar records the
architecture, seed, training settings, train/test accuracy, the npz's sha256 and the versions;
``load_classifier`` checks the sha256 before it uses the weights.

Floating-point results of the training may differ in the last bits on another CPU or torch build;
the committed npz, not a re-run, is the reference.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reference.data import load_digits_binary, load_digits_labels

STATS_DIR = Path(__file__).resolve().parent / "stats"
NPZ_PATH = STATS_DIR / "digits_classifier.npz"
SIDECAR_PATH = STATS_DIR / "digits_classifier.json"

IN_DIM = 64
HIDDEN = 128
FEATURES = 32
CLASSES = 10
SEED = 0
#: Adam with weight decay, minibatches of BATCH_SIZE, EPOCHS passes over the 1438 training digits.
EPOCHS = 60
BATCH_SIZE = 64
LR = 1e-3
WEIGHT_DECAY = 1e-4

_LAYERS = 3  # w0/b0, w1/b1, w2/b2


class DigitsClassifier(nn.Module):
    """``x [B, 64]`` in {0, 1} -> logits ``[B, 10]``; ``features(x)`` -> ``[B, FEATURES]``."""

    def __init__(self, in_dim: int = IN_DIM, hidden: int = HIDDEN, features: int = FEATURES, classes: int = CLASSES):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer activations ``[B, F]`` (after the ReLU) of ``x [B, 64]``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def linears(self) -> list[nn.Linear]:
        return [self.body[0], self.body[2], self.head]


def train_classifier(*, seed: int = SEED, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, lr: float = LR,
                     weight_decay: float = WEIGHT_DECAY) -> DigitsClassifier:
    """Train a fresh ``DigitsClassifier`` on the train split, deterministically, on one CPU thread."""
    x, y = load_digits_binary("train"), load_digits_labels("train")
    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.get_num_threads())
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        rng = torch.Generator().manual_seed(seed)
        model = DigitsClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=rng)
            for start in range(0, len(x), batch_size):
                idx = perm[start: start + batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.set_num_threads(old[2])
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitsClassifier, split: str) -> float:
    """Fraction of ``split``'s digits that ``model`` classifies correctly."""
    x, y = load_digits_binary(split), load_digits_labels(split)
    return float((model(x).argmax(dim=1) == y).double().mean())


def to_arrays(model: DigitsClassifier) -> dict[str, np.ndarray]:
    """The parameters as float32 numpy arrays ``w0, b0, w1, b1, w2, b2``."""
    arrays = {}
    for i, layer in enumerate(model.linears()):
        arrays[f"w{i}"] = layer.weight.detach().cpu().numpy().astype(np.float32)
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    return arrays


def from_arrays(arrays: dict[str, np.ndarray]) -> DigitsClassifier:
    """Rebuild the network from ``to_arrays``' output; the sizes come from the shapes."""
    names = {f"{k}{i}" for i in range(_LAYERS) for k in "wb"}
    if set(arrays) != names:
        raise ValueError(f"expected arrays {sorted(names)}, got {sorted(arrays)}")
    for name, a in arrays.items():
        if a.dtype != np.float32:
            raise ValueError(f"{name}: expected float32, got {a.dtype}")
    w0, w1, w2 = arrays["w0"], arrays["w1"], arrays["w2"]
    if not (w0.ndim == w1.ndim == w2.ndim == 2 and w1.shape[1] == w0.shape[0] and w2.shape[1] == w1.shape[0]):
        raise ValueError(f"inconsistent layer shapes {w0.shape}, {w1.shape}, {w2.shape}")
    # built under a forked RNG: its throwaway initial weights must not consume the global generator
    # (loading the classifier lazily, mid-run, changed the first seed's dropout masks)
    with torch.random.fork_rng(devices=[]):
        model = DigitsClassifier(in_dim=w0.shape[1], hidden=w0.shape[0], features=w1.shape[0], classes=w2.shape[0])
    with torch.no_grad():
        for i, layer in enumerate(model.linears()):
            if arrays[f"b{i}"].shape != (layer.out_features,):
                raise ValueError(f"b{i}: expected shape ({layer.out_features},), got {arrays[f'b{i}'].shape}")
            layer.weight.copy_(torch.from_numpy(arrays[f"w{i}"]))
            layer.bias.copy_(torch.from_numpy(arrays[f"b{i}"]))
    return model.eval().requires_grad_(False)


def sha256_file(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_classifier(path: str | os.PathLike = NPZ_PATH, *, expected_sha256: str | None = None) -> DigitsClassifier:
    """The committed classifier, rebuilt from ``path`` with ``np.load(allow_pickle=False)``.

    The file's sha256 must equal ``expected_sha256`` (default: the one in the JSON sidecar beside the
    default npz; no check for another ``path`` without ``expected_sha256``); otherwise ``ValueError``.
    """
    path = Path(path)
    if expected_sha256 is None and path.resolve() == NPZ_PATH.resolve():
        expected_sha256 = json.loads(SIDECAR_PATH.read_text())["sha256"]
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ValueError(f"{path}: sha256 {sha256_file(path)} differs from the recorded {expected_sha256}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return from_arrays(arrays)


@functools.lru_cache(maxsize=1)
def _default_classifier() -> DigitsClassifier:
    return load_classifier()


@torch.no_grad()
def features(x: Tensor, model: DigitsClassifier | None = None) -> Tensor:
    """Penultimate features ``[B, F]`` (float32, CPU) of digits ``x [B, 64]``; default: the committed model."""
    if x.dim() != 2 or x.shape[1] != IN_DIM:
        raise ValueError(f"digits must have shape [B, {IN_DIM}], got {list(x.shape)}")
    model = model if model is not None else _default_classifier()
    return model.features(x.detach().to("cpu", torch.float32))


def save(model: DigitsClassifier, npz_path: Path = NPZ_PATH, sidecar_path: Path = SIDECAR_PATH) -> dict:
    """Write the npz and its JSON sidecar (both atomically); returns the sidecar's content."""
    from reference.train import versions, write_bytes_atomic, write_json_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **to_arrays(model))
    payload = buffer.getvalue()
    write_bytes_atomic(npz_path, payload)
    sidecar = {
        "file": npz_path.name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "architecture": {"layers": [IN_DIM, HIDDEN, FEATURES, CLASSES], "activation": "relu",
                         "features": f"penultimate layer after its ReLU, {FEATURES} units"},
        "arrays": {name: list(a.shape) for name, a in to_arrays(model).items()},
        "seed": SEED,
        "training": {"split": "train", "epochs": EPOCHS, "batch_size": BATCH_SIZE, "optimizer": "adam", "lr": LR,
                     "weight_decay": WEIGHT_DECAY, "threads": 1, "deterministic_algorithms": True},
        "train_accuracy": accuracy(model, "train"),
        "test_accuracy": accuracy(model, "test"),
        "versions": versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "reference.classifier"],
    }
    write_json_atomic(sidecar_path, sidecar)
    return sidecar


def main() -> dict:
    sidecar = save(train_classifier())
    print(f"digits classifier: train accuracy {sidecar['train_accuracy']:.4f}, test accuracy "
          f"{sidecar['test_accuracy']:.4f}; wrote {NPZ_PATH} (sha256 {sidecar['sha256'][:12]}...)", file=sys.stderr)
    return sidecar


if __name__ == "__main__":
    main()
