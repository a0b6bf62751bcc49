"""Reference statistics of the GAN workhouse at the grader's budget, and how a trained ring
generator is evaluated (the grader's ``train_gan`` check evaluates students' generators with the
same functions).

    python -m reference.workhouse_stats [--seeds 30] [--steps S] [--batch-size B] [--lr LR] [--out PATH]

The budget defaults to the ``[workhouse]`` section of ``grader/rubric.toml`` (read as TOML; nothing
of the grader is imported), so that the statistics and the check always describe the same
training. Seed ``s`` trains ``reference.workhouse.train_gan`` deterministically:

* initial weights: ``ring_networks(s)``, i.e. ``torch.manual_seed(s)`` then
  ``make_gan(GAN_CONFIGS["ring"])``;
* data: the ring's train split (``reference.data.load_dataset("ring", "train")``, 10,000 points);
* ``rng = torch.Generator().manual_seed(s)``;
* evaluation: ``evaluate(generator, EVAL_SEED + s)``: ``EVAL_SAMPLES`` generated points (computed
  in float64) and ``reference.metrics.ring_statistics`` with that same generator.

Metrics per seed: ``modes_covered``, ``high_quality_fraction``, ``ring_distance``; the late
losses ``late_d_loss`` / ``late_g_loss`` (means over the last ``LATE_FRACTION`` of the steps); the
contract's losses at the trained weights, computed as the grader computes them
(``network_losses``: ``LOSS_ROWS`` data rows and as many z drawn from ``LOSS_SEED + s``, float64)
``final_d_loss`` / ``final_g_loss``, and the ratios ``d_loss_agreement`` = late_d_loss /
final_d_loss, ``g_loss_agreement`` likewise (how far the reported late losses of a correct loop
are from the losses of the networks it returns); and ``generator_moved`` /
``discriminator_moved``: the smallest fraction of an entry's values that changed, over the
``state_dict`` entries (``moved``: every layer of a correct loop's networks trains). The
output (default ``reference/stats/workhouse_ring_cpu.json``) has ``reference.train``'s layout:
every seed's value with mean, std, min and max, the settings, versions and CPU times.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reference import metrics
from reference.data import load_dataset
from reference.models.gan import GAN_CONFIGS, Discriminator, Generator, make_gan
from reference.train import (STATS_DIR, _deterministic_torch, device_name, summarise, versions,
                             write_json_atomic)
from reference.workhouse import train_gan

CONFIG = "ring"
EVAL_SEED = 2_000_000
EVAL_SAMPLES = 2000
LATE_FRACTION = 0.25
DEFAULT_OUT = STATS_DIR / "workhouse_ring_cpu.json"
RUBRIC = Path(__file__).resolve().parent.parent / "grader" / "rubric.toml"
LOSS_SEED = 3_000_000
LOSS_ROWS = 4096
METRICS = ("modes_covered", "high_quality_fraction", "ring_distance", "late_d_loss", "late_g_loss",
           "final_d_loss", "final_g_loss", "d_loss_agreement", "g_loss_agreement", "generator_moved",
           "discriminator_moved")


_INIT_LOCK = threading.Lock()


def ring_networks(seed: int) -> tuple[Generator, Discriminator]:
    """The ring generator and discriminator initialised from ``torch.manual_seed(seed)``; the
    global RNG's state is restored afterwards (under a lock: the grader judges in threads)."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_gan(GAN_CONFIGS[CONFIG])


def ring_data() -> Tensor:
    """The data every workhouse run trains on: the ring's train split, float32 ``[10000, 2]``."""
    return load_dataset("ring", "train")


def late_mean(values, fraction: float = LATE_FRACTION) -> float:
    """Mean of the last ``fraction`` of ``values`` (at least one)."""
    arr = np.asarray(values, dtype=np.float64)
    tail = max(1, int(round(len(arr) * fraction)))
    return float(arr[-tail:].mean())


def moved(after: dict, before: dict) -> float:
    """The smallest, over the entries of ``before`` (a ``state_dict`` as tensors or arrays), fraction
    of an entry's values that changed: 0 for a layer that never trained (an optimiser over some
    layers only, ``requires_grad`` left off), about 1 for every entry of a correct loop's networks
    (dead ReLU units keep a few rows). Relative sizes of the change would not do: a small tensor
    such as the generator's output bias can end near where it started."""
    out = 1.0
    for name, w0 in before.items():
        w0 = np.asarray(w0, dtype=np.float64)
        w = np.asarray(after[name], dtype=np.float64)
        out = min(out, float(np.mean(w != w0)) if w0.size else 1.0)
    return out


@torch.no_grad()
def network_losses(generator: nn.Module, discriminator: nn.Module, data: Tensor, seed: int,
                   n: int = LOSS_ROWS) -> tuple[float, float]:
    """The contract's ``discriminator_loss`` and non-saturating ``generator_loss`` of the networks
    as they are, on ``n`` rows of ``data`` and ``n`` z drawn with ``Generator().manual_seed(seed)``
    (in float64, on copies): the grader's own measurement of the losses a loop reports."""
    from reference.formulas import discriminator_loss, generator_loss

    rng = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, data.shape[0], (n,), generator=rng)
    z = torch.randn(n, GAN_CONFIGS[CONFIG].latent_dim, generator=rng, dtype=torch.float64)
    g, d = copy.deepcopy(generator).double(), copy.deepcopy(discriminator).double()
    fake_logits = d(g(z))
    return (float(discriminator_loss(d(data[rows].to(torch.float64)), fake_logits)),
            float(generator_loss(fake_logits, kind="non_saturating")))


@torch.no_grad()
def generate(generator: nn.Module, eval_seed: int, n: int = EVAL_SAMPLES) -> tuple[Tensor, torch.Generator]:
    """``n`` samples of ``generator`` in float64 from z drawn with ``Generator().manual_seed(eval_seed)``;
    returns the samples ``[n, data_dim]`` and that generator (to draw the reference sample next)."""
    latent = GAN_CONFIGS[CONFIG].latent_dim
    rng = torch.Generator().manual_seed(eval_seed)
    z = torch.randn(n, latent, generator=rng, dtype=torch.float64)
    return copy.deepcopy(generator).double()(z), rng


def evaluate(generator: nn.Module, eval_seed: int, n: int = EVAL_SAMPLES) -> tuple[Tensor, dict[str, float]]:
    """Samples (float64 ``[n, 2]``) and ``reference.metrics.ring_statistics`` of a ring generator."""
    samples, rng = generate(generator, eval_seed, n)
    if not torch.isfinite(samples).all():
        return samples, {"modes_covered": 0.0, "high_quality_fraction": 0.0, "ring_distance": float("inf")}
    return samples, metrics.ring_statistics(samples, rng)


def run_seed(seed: int, *, steps: int, batch_size: int, lr: float, loop=train_gan,
             data: Tensor | None = None) -> dict[str, float]:
    """Train ``loop`` (the reference workhouse by default) from ``seed``; its metrics as floats."""
    generator, discriminator = ring_networks(seed)
    before = {"g": {k: v.clone() for k, v in generator.state_dict().items()},
              "d": {k: v.clone() for k, v in discriminator.state_dict().items()}}
    data = ring_data() if data is None else data
    rng = torch.Generator().manual_seed(seed)
    history = loop(generator, discriminator, data, steps=steps,
                   batch_size=batch_size, lr=lr, latent_dim=GAN_CONFIGS[CONFIG].latent_dim, rng=rng)
    _, stats = evaluate(generator, EVAL_SEED + seed)
    late_d, late_g = late_mean(history["d_loss"]), late_mean(history["g_loss"])
    final_d, final_g = network_losses(generator, discriminator, data, LOSS_SEED + seed)
    return {**stats, "late_d_loss": late_d, "late_g_loss": late_g, "final_d_loss": final_d, "final_g_loss": final_g,
            "d_loss_agreement": late_d / final_d, "g_loss_agreement": late_g / final_g,
            "generator_moved": moved(generator.state_dict(), before["g"]),
            "discriminator_moved": moved(discriminator.state_dict(), before["d"])}


def rubric_budget(path: Path = RUBRIC) -> dict:
    """``steps``, ``batch_size`` and ``lr`` of the rubric's ``[workhouse]`` section (empty if none)."""
    try:
        section = tomllib.loads(path.read_text("utf-8")).get("workhouse", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: section[k] for k in ("steps", "batch_size", "lr") if k in section}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reference.workhouse_stats", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=30, help="train seeds 0..N-1 (at least 20)")
    p.add_argument("--steps", type=int, default=None, help="default: the rubric's [workhouse] steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    budget = rubric_budget()
    for key in ("steps", "batch_size", "lr"):
        if getattr(args, key) is None:
            if key not in budget:
                p.error(f"--{key.replace('_', '-')} is needed: grader/rubric.toml has no [workhouse] {key}")
            setattr(args, key, type(budget[key])(budget[key]))
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    seeds = list(range(args.seeds))
    data = ring_data()
    per_seed, cpu = [], []
    start = time.perf_counter()
    with _deterministic_torch(1, torch.device("cpu")):
        for seed in seeds:
            c0 = time.process_time()
            per_seed.append(run_seed(seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr, data=data))
            cpu.append(time.process_time() - c0)
            print(f"[workhouse] seed {seed}: " + ", ".join(f"{k}={v:.4f}" for k, v in per_seed[-1].items())
                  + f" ({cpu[-1]:.2f} s CPU)", file=sys.stderr, flush=True)
    stats = {
        "model": "gan",
        "data": "ring",
        "device": "cpu",
        "device_name": device_name(torch.device("cpu")),
        "loop": "reference.workhouse.train_gan",
        "seeds": seeds,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": 1,
        "architecture": GAN_CONFIGS[CONFIG].__dict__,
        "eval_samples": EVAL_SAMPLES,
        "eval_seed": f"{EVAL_SEED} + seed",
        "late_fraction": LATE_FRACTION,
        "loss_seed": f"{LOSS_SEED} + seed",
        "loss_rows": LOSS_ROWS,
        "metrics": {name: summarise([s[name] for s in per_seed]) for name in METRICS},
        "wall_time_s": {"total": time.perf_counter() - start},
        "cpu_time_s": {"total": float(sum(cpu)), "per_seed": cpu},
        "versions": versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "reference.workhouse_stats", *(sys.argv[1:] if argv is None else argv)],
    }
    write_json_atomic(Path(args.out), stats)
    return Path(args.out)


if __name__ == "__main__":
    main()
