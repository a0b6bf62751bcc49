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
def g_optimizer_on_d_params(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The generator's optimiser copied from the discriminator's line and built on
    ``discriminator.parameters()``: G never moves, D steps twice per step."""
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
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


def g_never_steps(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``opt_g.step()`` forgotten after the generator's backward: G never moves."""
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
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_never_steps(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``opt_d.step()`` forgotten after the discriminator's backward: D never moves."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_optimizer_on_g_params(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The discriminator's optimiser built on ``generator.parameters()``: D never moves (its
    backward leaves no gradient on G, so that optimiser's step does nothing)."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_labels_swapped(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``discriminator_loss(fake_logits, real_logits)``: D taught that generated samples are real
    and the data fake."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        real_logits = discriminator(real)
        fake_logits = discriminator(fake.detach())
        d_loss = discriminator_loss(fake_logits, real_logits)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def g_labels_swapped(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """G taught to be recognised as fake: -1/2 E log(1 - D(G(z))) = 1/2 E softplus(logit), a
    positive loss that pushes D(G(z)) down."""
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
        g_loss = 0.5 * F.softplus(discriminator(fake)).mean()
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def g_sign_flipped(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The generator minimises minus its loss (``g_loss = -generator_loss(...)``)."""
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
        g_loss = -generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_sign_flipped(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The discriminator minimises minus its loss: it is trained to be wrong."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = -discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def g_minimax(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The saturating (minimax) generator loss instead of the non-saturating one."""
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
        g_loss = generator_loss(discriminator(fake), kind="minimax")
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def never_zero_grad(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """No ``zero_grad()`` anywhere: both networks' gradients accumulate over the steps."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_never_zero_grad(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``opt_g.zero_grad()`` only: D's gradients accumulate (and collect the G step's too)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def g_never_zero_grad(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``opt_d.zero_grad()`` only: G's gradients accumulate over the steps."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def d_trained_on_g_loss(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """The D step's loss copied from the G step: ``generator_loss(fake_logits)``, so D's update
    lowers the generator's loss (D learns to call the fakes real)."""
    opt_d, opt_g = _adam(discriminator, lr), _adam(generator, lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        real_logits = discriminator(real)   # computed, then left out of the loss
        fake_logits = discriminator(fake.detach())
        d_loss = generator_loss(fake_logits)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


def shared_optimizer(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """One Adam over both networks, stepped after each backward: D also descends the generator's loss."""
    params = list(generator.parameters()) + list(discriminator.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt.step()
        opt.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt.step()
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


def adam_default_betas(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
    """``torch.optim.Adam(params, lr=lr)``: betas (0.9, 0.999) instead of the contract's (0.5, 0.999)."""
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr)
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


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
    d_hist, g_hist = [], []
    for _ in range(steps):
        real = _batch(data, batch_size, rng)
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        opt_d.zero_grad()
        d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = generator_loss(discriminator(fake))
        g_loss.backward()
        opt_g.step()
        d_hist.append(d_loss.item())
        g_hist.append(g_loss.item())
    return {"d_loss": d_hist, "g_loss": g_hist}


MISTAKES: dict[str, tuple[Loop, tuple[str, ...]]] = {
    # the generator's optimiser holds the discriminator's parameters: G never moves, D steps twice
    "g_optimizer_on_d_params": (g_optimizer_on_d_params,
                                ("generator_not_updated", "generator_optimizer_on_discriminator")),
    "g_never_steps": (g_never_steps, ("generator_not_updated",)),
    "d_never_steps": (d_never_steps, ("discriminator_not_updated",)),
    "d_optimizer_on_g_params": (d_optimizer_on_g_params, ("discriminator_not_updated",)),
    # D taught that generated samples are real and data fake
    "d_labels_swapped": (d_labels_swapped, ("discriminator_labels_swapped",)),
    # G taught to be recognised as fake: -1/2 E log(1 - D(G(z))), a positive loss pushing D(G(z)) down
    "g_labels_swapped": (g_labels_swapped, ("generator_labels_swapped",)),
    "g_sign_flipped": (g_sign_flipped, ("generator_loss_sign_flipped",)),
    "d_sign_flipped": (d_sign_flipped, ("discriminator_loss_sign_flipped",)),
    "g_minimax": (g_minimax, ("generator_minimax_loss",)),
    "never_zero_grad": (never_zero_grad, ("gradients_never_zeroed",)),
    "d_never_zero_grad": (d_never_zero_grad, ("discriminator_gradients_never_zeroed",)),
    "g_never_zero_grad": (g_never_zero_grad, ("generator_gradients_never_zeroed",)),
    "no_detach_zero_at_top": (no_detach_zero_at_top, ("generator_gets_discriminator_gradient",)),
    "d_zeroed_right_after_its_step": (d_zeroed_right_after_its_step, ("discriminator_gets_generator_gradient",)),
    # D's update lowers the generator's loss (D learns to call the fakes real)
    "d_trained_on_g_loss": (d_trained_on_g_loss, ("discriminator_trained_on_generator_loss",)),
    # one Adam over both networks, stepped after each backward: D also descends the generator's loss
    "shared_optimizer": (shared_optimizer, ("one_optimizer_for_both",)),
    "adam_default_betas": (adam_default_betas, ("adam_default_betas",)),
    "generator_step_first": (generator_step_first, ("generator_updated_first",)),
    "generator_step_first_stale_fakes": (generator_step_first_stale_fakes, ("generator_updated_first_stale_fakes",)),
    # the update rule is right (Adam hardly notices a constant factor); the reported losses are not
    "g_loss_without_half": (generator_loss_without_half, ("generator_loss_scaled",)),
    "losses_summed_over_batch": (losses_summed_over_batch, ("losses_scaled",)),
    "d_optimizer_output_layer_only": (d_optimizer_output_layer_only, ("discriminator_layers_not_trained",)),
}
