"""Trusted ``train_gan`` loops for calibrating the workhouse check: correct styles and classic mistakes.

Written by the course staff, run in-process (never a student's file); used by
``tests/test_workhouse.py`` and by ``benchmarks/workhouse_calibration.py`` (which puts ``tests/`` on
its path: the tests never import ``benchmarks``). Each loop is written out as real code makes the
mistake, independently of the grader's own ``knob_loop`` catalogue. Every loop has the contract's
signature and uses ``reference.formulas``'s losses, so that only the loop itself differs from the
reference workhouse. ``CORRECT`` loops must earn full marks; every loop of ``MISTAKES`` must not.
Each entry of ``MISTAKES`` maps a name to ``(loop, diagnoses)``: the diagnoses the judge may name
for it (any of them counts as the right one).

The correct styles differ in what the contract leaves open: the order of the random draws, a
fresh or a reused z for the generator step, ``.detach()`` or ``torch.no_grad()``, where
``zero_grad`` is called, ``set_to_none``, freezing the discriminator during the generator step.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from reference.formulas import discriminator_loss, generator_loss

Loop = Callable[..., dict]


def _adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999))


def _batch(data, batch_size, rng):
    return data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]


# ------------------------------------------------------------------------------------- correct
def reference_order(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The reference workhouse: rows then z, one fake batch, detached for D, reused for G."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake), kind="non_saturating")
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def z_first_no_grad_fresh_z(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """z before the rows, fakes for D under no_grad, a fresh z for the G step."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    hist = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        z = torch.randn(batch_size, latent_dim, generator=rng)
        real = _batch(data, batch_size, rng)
        with torch.no_grad():
            fake = generator(z)
        d_loss = discriminator_loss(discriminator(real), discriminator(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        z2 = torch.randn(batch_size, latent_dim, generator=rng)
        g_loss = generator_loss(discriminator(generator(z2)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        hist["d_loss"].append(float(d_loss.detach()))
        hist["g_loss"].append(float(g_loss.detach()))
    return hist


def detach_fresh_z(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Detach for D, fresh z for G, every gradient zeroed at the end of the step (set_to_none)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng)).detach()
        d_loss = discriminator_loss(discriminator(real).flatten(), discriminator(fake).flatten())
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(discriminator(generator(torch.randn(batch_size, latent_dim, generator=rng))))
        g_loss.backward()
        opt_g.step()
        # zeroed after the whole step: the G step's backward also left gradients on D
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        d_hist.append(d_loss.detach().item())
        g_hist.append(g_loss.detach().item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def frozen_discriminator(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Reuses the fake batch; toggles ``requires_grad`` of D off during the G step."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    out = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        rows = torch.randint(high=len(data), size=(batch_size,), generator=rng)
        fake = generator(torch.randn((batch_size, latent_dim), generator=rng))
        discriminator.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        loss_d = discriminator_loss(discriminator(data[rows]), discriminator(fake.detach()))
        loss_d.backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g = generator_loss(discriminator(fake), "non_saturating")
        loss_g.backward()
        opt_g.step()
        out["d_loss"].append(loss_d.item())
        out["g_loss"].append(loss_g.item())
    discriminator.requires_grad_(True)
    return out


def zero_both_at_top(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Both optimisers zeroed once at the top of the step; the G step's gradients that land on D
    are wiped at the next step's top, so this is correct."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        opt_d.zero_grad()
        opt_g.zero_grad()
        z = torch.randn(batch_size, latent_dim, generator=rng)
        real = _batch(data, batch_size, rng)
        fake = generator(z)
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def randperm_rows_separate_z(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Rows from ``randperm``; separate z for the D and the G step, both drawn up front."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        rows = torch.randperm(data.shape[0], generator=rng)[:batch_size]
        z_d, z_g = torch.randn(2, batch_size, latent_dim, generator=rng)
        with torch.no_grad():
            fake = generator(z_d)
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(data[rows]), discriminator(fake))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(generator(z_g)), kind="non_saturating")
        g_loss.backward()
        opt_g.step()
        d_hist.append(float(d_loss.detach()))
        g_hist.append(float(g_loss.detach()))
    return {"d_loss": d_hist, "g_loss": g_hist}


def bce_losses_inline(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Its own BCE-with-logits losses (numerically a little different from the reference's), one
    forward pass of D over the concatenated batch, lists of tensors' floats."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)
        logits = discriminator(torch.cat([real, fake.detach()])).squeeze(1)
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(logits[:batch_size], torch.ones(batch_size))
                        + F.binary_cross_entropy_with_logits(logits[batch_size:], torch.zeros(batch_size)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = 0.5 * F.binary_cross_entropy_with_logits(discriminator(fake).squeeze(1), torch.ones(batch_size))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_hist.append(float(d_loss.detach()))
        g_hist.append(float(g_loss.detach()))
    return {"d_loss": d_hist, "g_loss": g_hist}


CORRECT: dict[str, Loop] = {
    "reference_order": reference_order,
    "z_first_no_grad_fresh_z": z_first_no_grad_fresh_z,
    "detach_fresh_z": detach_fresh_z,
    "frozen_discriminator": frozen_discriminator,
    "zero_both_at_top": zero_both_at_top,
    "randperm_rows_separate_z": randperm_rows_separate_z,
    "bce_losses_inline": bce_losses_inline,
}


# ------------------------------------------------------------------------------------ mistakes
def _loop(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng,
          opt_d=None, opt_g=None, d_loss_fn=None, g_loss_fn=None, zero_d=True, zero_g=True,
          step_d=True, step_g=True, detach=True, shared=False):
    """The reference loop with one thing changed (each mistake below sets one knob)."""
    if shared:
        opt_d = opt_g = torch.optim.Adam(list(generator.parameters()) + list(discriminator.parameters()),
                                         lr=lr, betas=(0.5, 0.999))
    opt_d = opt_d or _adam(discriminator, lr)
    opt_g = opt_g or _adam(generator, lr)
    d_loss_fn = d_loss_fn or (lambda real_l, fake_l: discriminator_loss(real_l, fake_l))
    g_loss_fn = g_loss_fn or (lambda fake_l: generator_loss(fake_l, kind="non_saturating"))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        z = torch.randn(batch_size, latent_dim, generator=rng)
        fake = generator(z)
        if zero_d:
            opt_d.zero_grad()
        d_loss = d_loss_fn(discriminator(real), discriminator(fake.detach() if detach else fake))
        d_loss.backward()
        if step_d:
            opt_d.step()
        if zero_g:
            opt_g.zero_grad()
        g_loss = g_loss_fn(discriminator(fake))
        g_loss.backward()
        if step_g:
            opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def no_detach_zero_at_top(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Both optimisers zeroed at the top, fakes not detached: the generator's step also follows
    the gradient of the discriminator's loss (pushing its samples towards "fake")."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        opt_d.zero_grad()
        opt_g.zero_grad()
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        d_loss = discriminator_loss(discriminator(real), discriminator(fake))
        d_loss.backward(retain_graph=True)   # what the error message without it suggests
        opt_d.step()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_zeroed_right_after_its_step(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Zeroes D's gradients right after D's step: the G step's backward then leaves gradients on D,
    which the next D step adds to its own (D is partly trained on the generator's loss)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_d.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        opt_g.zero_grad()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def _variant(**knobs) -> Loop:
    def loop(generator, discriminator, data, **kwargs):
        resolved = {k: (v(generator, discriminator, kwargs["lr"]) if k in ("opt_d", "opt_g") else v)
                    for k, v in knobs.items()}
        return _loop(generator, discriminator, data, **kwargs, **resolved)
    return loop


def _adam_of(which: str):
    return lambda g, d, lr: _adam(g if which == "generator" else d, lr)


def adam_default_betas(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``torch.optim.Adam(params, lr=lr)``: betas (0.9, 0.999) instead of the contract's (0.5, 0.999)."""
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr)
    return _loop(generator, discriminator, data, steps=steps, batch_size=batch_size, lr=lr, latent_dim=latent_dim,
                 rng=rng, opt_d=opt_d, opt_g=opt_g)


def generator_step_first(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The generator's update before the discriminator's in every step."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        z = torch.randn(batch_size, latent_dim, generator=rng)
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(generator(z)))
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        with torch.no_grad():
            fake = generator(z)
        d_loss = discriminator_loss(discriminator(real), discriminator(fake))
        d_loss.backward()
        opt_d.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def generator_step_first_stale_fakes(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The common "generator first" loop: G's update, then D's on the fakes generated before it (detached)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def generator_loss_without_half(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The discriminator's loss as defined; the generator's written as -E log D(G(z)), without the 1/2."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = -F.logsigmoid(discriminator(fake)).mean()
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def losses_summed_over_batch(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """Both losses summed over the batch instead of averaged (``reduction="sum"``)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    ones, zeros = torch.ones(batch_size, 1), torch.zeros(batch_size, 1)
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(discriminator(real), ones, reduction="sum")
                        + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros, reduction="sum"))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = 0.5 * F.binary_cross_entropy_with_logits(discriminator(fake), ones, reduction="sum")
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_optimizer_output_layer_only(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The discriminator's optimiser holds its output layer only (``discriminator.net[-1].parameters()``)."""
    opt_d = torch.optim.Adam(discriminator.net[-1].parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = _adam(generator, lr)
    return _loop(generator, discriminator, data, steps=steps, batch_size=batch_size, lr=lr, latent_dim=latent_dim,
                 rng=rng, opt_d=opt_d, opt_g=opt_g)


MISTAKES: dict[str, tuple[Loop, tuple[str, ...]]] = {
    # the generator's optimiser holds the discriminator's parameters: G never moves, D steps twice
    "g_optimizer_on_d_params": (_variant(opt_g=_adam_of("discriminator")),
                                ("generator_not_updated", "generator_optimizer_on_discriminator")),
    "g_never_steps": (_variant(step_g=False), ("generator_not_updated",)),
    "d_never_steps": (_variant(step_d=False), ("discriminator_not_updated",)),
    "d_optimizer_on_g_params": (_variant(opt_d=_adam_of("generator")), ("discriminator_not_updated",)),
    # D taught that generated samples are real and data fake
    "d_labels_swapped": (_variant(d_loss_fn=lambda r, f: discriminator_loss(f, r)), ("discriminator_labels_swapped",)),
    # G taught to be recognised as fake: -1/2 E log(1 - D(G(z))), a positive loss pushing D(G(z)) down
    "g_labels_swapped": (_variant(g_loss_fn=lambda f: 0.5 * F.softplus(f).mean()), ("generator_labels_swapped",)),
    "g_sign_flipped": (_variant(g_loss_fn=lambda f: -generator_loss(f)), ("generator_loss_sign_flipped",)),
    "d_sign_flipped": (_variant(d_loss_fn=lambda r, f: -discriminator_loss(r, f)),
                       ("discriminator_loss_sign_flipped",)),
    "g_minimax": (_variant(g_loss_fn=lambda f: generator_loss(f, kind="minimax")), ("generator_minimax_loss",)),
    "never_zero_grad": (_variant(zero_d=False, zero_g=False), ("gradients_never_zeroed",)),
    "d_never_zero_grad": (_variant(zero_d=False), ("discriminator_gradients_never_zeroed",)),
    "g_never_zero_grad": (_variant(zero_g=False), ("generator_gradients_never_zeroed",)),
    "no_detach_zero_at_top": (no_detach_zero_at_top, ("generator_gets_discriminator_gradient",)),
    "d_zeroed_right_after_its_step": (d_zeroed_right_after_its_step, ("discriminator_gets_generator_gradient",)),
    # D's update lowers the generator's loss (D learns to call the fakes real)
    "d_trained_on_g_loss": (_variant(d_loss_fn=lambda r, f: generator_loss(f)),
                            ("discriminator_trained_on_generator_loss",)),
    # one Adam over both networks, stepped after each backward: D also descends the generator's loss
    "shared_optimizer": (_variant(shared=True), ("one_optimizer_for_both",)),
    "adam_default_betas": (adam_default_betas, ("adam_default_betas",)),
    "generator_step_first": (generator_step_first, ("generator_updated_first",)),
    "generator_step_first_stale_fakes": (generator_step_first_stale_fakes, ("generator_updated_first_stale_fakes",)),
    # the update rule is right (Adam hardly notices a constant factor); the reported losses are not
    "g_loss_without_half": (generator_loss_without_half, ("generator_loss_scaled",)),
    "losses_summed_over_batch": (losses_summed_over_batch, ("losses_scaled",)),
    "d_optimizer_output_layer_only": (d_optimizer_output_layer_only, ("discriminator_layers_not_trained",)),
}
