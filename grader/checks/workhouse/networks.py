"""Networks as plain data: what the grader sends into the sandbox and how it reads the weights back.

The spec itself (layer types and their arguments) has one home, ``grader.sandbox.workhouse_calls``,
which rebuilds the networks inside the sandbox from it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from grader.checks.base import Case
from grader.sandbox.workhouse_calls import describe_network
from reference.models.gan import GAN_CONFIGS, Generator
from reference.workhouse_stats import CONFIG, ring_networks


def network_spec(module: nn.Module) -> tuple[dict, np.ndarray]:
    """A reference network (one ``nn.Sequential`` child) as a plain spec and its flat float32 weights."""
    return describe_network(module)


def initial_state(case: Case, which: str) -> dict[str, np.ndarray]:
    """The weights the grader sent for ``which`` (``generator``/``discriminator``), float64."""
    spec, flat = case.extra[which], np.asarray(case.extra[f"{which}_weights"], dtype=np.float64)
    out, start = {}, 0
    for name, shape in zip(spec["names"], spec["shapes"]):
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = flat[start:start + size].reshape(shape)
        start += size
    return out


def state_of(module: nn.Module) -> dict[str, np.ndarray]:
    """A module's ``state_dict`` as float64 arrays (copies)."""
    return {k: v.detach().to(torch.float64).numpy().copy() for k, v in module.state_dict().items()}


def call_extra(generator: nn.Module, discriminator: nn.Module, data: torch.Tensor, *, steps: int,
               batch_size: int, lr: float, seeds: dict[str, int], wall_s: float, cpu_s: float) -> dict:
    """The plain-data call of ``grader.sandbox.workhouse_calls`` for one training run."""
    g_spec, g_flat = network_spec(generator)
    d_spec, d_flat = network_spec(discriminator)
    return {"generator": g_spec, "generator_weights": g_flat, "discriminator": d_spec,
            "discriminator_weights": d_flat, "data": data.numpy().astype(np.float32),
            "steps": steps, "batch_size": batch_size, "lr": lr, "latent_dim": GAN_CONFIGS[CONFIG].latent_dim,
            "rng_seed": seeds["rng"], "torch_seed": seeds["torch"], "max_history": 4 * steps + 16,
            "wall_s": wall_s, "cpu_s": cpu_s}


def trained_generator(state: dict[str, np.ndarray]) -> Generator:
    """The grader's own ring generator carrying ``state``."""
    generator, _ = ring_networks(0)
    generator.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()})
    return generator


def trained_networks(generator_state: dict[str, np.ndarray], discriminator_state: dict[str, np.ndarray]):
    """The grader's own ring generator and discriminator carrying the returned weights."""
    generator, discriminator = ring_networks(0)
    for net, state in ((generator, generator_state), (discriminator, discriminator_state)):
        net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()})
    return generator, discriminator
