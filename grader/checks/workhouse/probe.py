"""The probe: a deterministic run of the update rule, the same for every correct loop, and the
cache of what the reference and every catalogued mistake do on it."""
from __future__ import annotations

import math
import threading
from functools import partial

import numpy as np
import torch

from grader.checks.base import Case
from grader.checks.workhouse.catalogue import PROBE_MISTAKES, knob_loop
from grader.checks.workhouse.networks import state_of
from grader.checks.workhouse.reading import returned_state
from grader.checks.workhouse.settings import Context
from reference.data import RING_RADIUS
from reference.models.gan import GAN_CONFIGS
from reference.workhouse import train_gan as reference_train_gan
from reference.workhouse_stats import CONFIG, ring_networks

PROBE_ROWS = 256
#: The probe's data point and the generator's starting output bias: both coordinates well away from
#: 0, so that no weight of the discriminator's first layer gets a near-zero gradient (Adam's eps
#: would then make the update depend on a constant factor in the losses).
PROBE_REAL = (RING_RADIUS / math.sqrt(2.0), RING_RADIUS / math.sqrt(2.0))
PROBE_FAKE = (-1.0, 0.5)


def probe_networks(seed: int):
    """The probe's networks: the ring pair from ``seed`` with the generator's first layer dead."""
    generator, discriminator = ring_networks(seed)
    with torch.no_grad():
        first = generator.net[0]
        first.weight.zero_()
        first.bias.fill_(-1.0)
        generator.net[-1].bias.copy_(torch.tensor(PROBE_FAKE))
    return generator, discriminator


def probe_data() -> torch.Tensor:
    """``PROBE_ROWS`` copies of the ring's second centre (at 45 degrees)."""
    return torch.tensor([PROBE_REAL], dtype=torch.float32).repeat(PROBE_ROWS, 1)


_LOCK = threading.Lock()
_PROBE_CACHE: dict[tuple, dict] = {}


def _probe_run(seed: int, steps: int, batch_size: int, lr: float, loop) -> dict[str, dict[str, np.ndarray]]:
    generator, discriminator = probe_networks(seed)
    with torch.random.fork_rng(devices=[]):
        loop(generator, discriminator, probe_data(), steps=steps, batch_size=batch_size, lr=lr,
             latent_dim=GAN_CONFIGS[CONFIG].latent_dim, rng=torch.Generator().manual_seed(0))
    return {"generator": state_of(generator), "discriminator": state_of(discriminator)}


def probe_expectations(seed: int, steps: int, batch_size: int, lr: float) -> dict:
    """The reference workhouse's and every catalogued mistake's weights after the probe (cached)."""
    key = (seed, steps, batch_size, lr)
    with _LOCK:
        if key not in _PROBE_CACHE:
            initial_g, initial_d = probe_networks(seed)
            _PROBE_CACHE[key] = {
                "initial": {"generator": state_of(initial_g), "discriminator": state_of(initial_d)},
                "reference": _probe_run(seed, steps, batch_size, lr, reference_train_gan),
                "mistakes": [(name, why, _probe_run(seed, steps, batch_size, lr, partial(knob_loop, **knobs)))
                             for name, why, knobs in PROBE_MISTAKES],
            }
        return _PROBE_CACHE[key]


def update_difference(got: dict[str, np.ndarray], want: dict[str, np.ndarray], initial: dict[str, np.ndarray]) -> float:
    """``|got - want| / |want - initial|`` over every weight: how far an update is from another."""
    num = sum(float(np.sum((got[k] - want[k]) ** 2)) for k in want)
    den = sum(float(np.sum((want[k] - initial[k]) ** 2)) for k in want)
    return math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)


def probe_diagnosis(value: dict, case: Case, ctx: Context) -> tuple[float, float, str | None, str]:
    """(difference from the reference on G, on D, the catalogued mistake matched or None, its explanation)."""
    tolerance = ctx.settings.probe_tolerance
    exp = probe_expectations(ctx.seeds["probe"], case.extra["steps"], case.extra["batch_size"], case.extra["lr"])
    got = {}
    for which in ("generator", "discriminator"):
        state, why = returned_state(value, case, which)
        if why:
            raise ValueError(why)
        got[which] = state
    diffs = [update_difference(got[w], exp["reference"][w], exp["initial"][w]) for w in ("generator", "discriminator")]
    if max(diffs) <= tolerance:
        return diffs[0], diffs[1], None, ""
    for name, why, result in exp["mistakes"]:
        if all(update_difference(got[w], result[w], exp["initial"][w]) <= tolerance
               for w in ("generator", "discriminator")):
            return diffs[0], diffs[1], name, why
    return diffs[0], diffs[1], None, ""
