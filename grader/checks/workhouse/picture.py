"""The workhouse picture's data: the student's samples beside the reference loop's trained from
the grading's own start, and the loss curves."""
from __future__ import annotations

import threading

import numpy as np
import torch

from grader.checks.base import Outcome
from grader.checks.workhouse.reading import evaluate_outcome, histories
from grader.checks.workhouse.suite import suite_parts
from grader.rubric import Rubric
from reference.models.gan import GAN_CONFIGS
from reference.workhouse import train_gan as reference_train_gan
from reference.workhouse_stats import CONFIG, evaluate, ring_data, ring_networks

_SAMPLES_LOCK = threading.Lock()
_REFERENCE_SAMPLES: dict[tuple, np.ndarray] = {}


def reference_samples(rubric: Rubric) -> np.ndarray:
    """Samples of the reference workhouse trained from the grading's own start (same initial
    weights, data, rng seed and budget), evaluated like a student's; computed once per process."""
    ctx, _, _ = suite_parts(rubric)
    settings, seeds = ctx.settings, ctx.seeds
    key = (settings.budget, tuple(sorted(seeds.items())))
    with _SAMPLES_LOCK:
        if key not in _REFERENCE_SAMPLES:
            g, d = ring_networks(seeds["init"])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seeds["torch"])
                reference_train_gan(g, d, ring_data(), steps=settings.steps, batch_size=settings.batch_size,
                                    lr=settings.lr, latent_dim=GAN_CONFIGS[CONFIG].latent_dim,
                                    rng=torch.Generator().manual_seed(seeds["rng"]))
            samples, _ = evaluate(g, seeds["eval"])
            _REFERENCE_SAMPLES[key] = samples.numpy()
        return _REFERENCE_SAMPLES[key]


def plot_data(outcome: Outcome | None, rubric: Rubric) -> dict | None:
    """The arguments of ``grader.workhouse_plots.write_workhouse_png`` for one student's ring call
    (``sandbox_result.calls[MAIN_ID]``), or None when there is nothing to draw. The ring case and
    the seeds are the suite's own (``suite_parts``): nothing is rebuilt per submission."""
    if outcome is None or outcome.status != "ok" or not outcome.value or "raised" in outcome.value:
        return None
    ctx, _, main = suite_parts(rubric)
    evaluation, why = evaluate_outcome(outcome.value, main, ctx.seeds["eval"])
    if why:
        return None
    d, g, why = histories(outcome.value, main.extra["steps"])
    return {"student_samples": evaluation.samples, "reference_samples": reference_samples(rubric),
            "d_loss": d if d is not None else np.zeros(0), "g_loss": g if g is not None else np.zeros(0)}
