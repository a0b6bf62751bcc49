"""The catalogue of classic mistakes of a GAN loop: trusted loops that make them (``knob_loop``,
each knob one mistake) and what the feedback says of each. The probe runs them to name the
mistake of a loop that fails it; other checks borrow their explanations (``EXPLANATIONS``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.formulas import discriminator_loss as _ref_d_loss
from reference.formulas import generator_loss as _ref_g_loss


def _adam(params, lr: float, betas=(0.5, 0.999)) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=betas)


def knob_loop(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng,
              d_loss=None, g_loss=None, zero_d=True, zero_g=True, step_d=True, step_g=True, detach=True,
              zero_at_top=False, shared=False, betas=(0.5, 0.999), g_first=False, zero_d_after_step=False,
              g_opt_on_d=False, **_):
    """The reference loop with knobs, each of which makes one classic mistake (trusted code)."""
    d_loss = d_loss or _ref_d_loss
    g_loss = g_loss or (lambda fake_logits: _ref_g_loss(fake_logits, kind="non_saturating"))
    if shared:
        opt_d = opt_g = _adam(list(generator.parameters()) + list(discriminator.parameters()), lr, betas)
    else:
        opt_d = _adam(discriminator.parameters(), lr, betas)
        opt_g = _adam((discriminator if g_opt_on_d else generator).parameters(), lr, betas)
    history = {"d_loss": [], "g_loss": []}

    def d_step(real, fake):
        if zero_d and not zero_at_top:
            opt_d.zero_grad()
        loss = d_loss(discriminator(real), discriminator(fake.detach() if detach else fake))
        loss.backward(retain_graph=not detach)
        if step_d:
            opt_d.step()
        if zero_d_after_step:
            opt_d.zero_grad()
        history["d_loss"].append(loss.item())

    def g_step(fake):
        if zero_g and not zero_at_top:
            opt_g.zero_grad()
        loss = g_loss(discriminator(fake))
        loss.backward()
        if step_g:
            opt_g.step()
        history["g_loss"].append(loss.item())

    for _ in range(steps):
        if zero_at_top:
            opt_d.zero_grad()
            opt_g.zero_grad()
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        if g_first == "stale":   # the common "generator first" loop: D trains on the fakes made before G's step
            g_step(fake)
            d_step(real, fake)
        elif g_first:
            g_step(fake)
            d_step(real, generator(torch.randn(batch_size, latent_dim, generator=rng)))
        else:
            d_step(real, fake)
            g_step(fake)
    return history


#: (name, explanation, knobs): trusted mistaken loops run on the probe to name a student's mistake.
PROBE_MISTAKES: tuple[tuple[str, str, dict], ...] = (
    ("generator_not_updated", "The generator is never updated: its optimiser must hold generator.parameters() "
     "and step() after g_loss.backward() in every step.", {"step_g": False}),
    ("discriminator_not_updated", "The discriminator is never updated: its optimiser must hold "
     "discriminator.parameters() and step() after d_loss.backward() in every step.", {"step_d": False}),
    ("generator_optimizer_on_discriminator", "The generator's optimiser was built on the discriminator's "
     "parameters: the generator never moves and the discriminator takes two steps. Build it on "
     "generator.parameters().", {"g_opt_on_d": True}),
    ("discriminator_labels_swapped", "The discriminator is trained with real and fake swapped: "
     "discriminator_loss(real_logits, fake_logits) takes the data's logits first.",
     {"d_loss": lambda real, fake: _ref_d_loss(fake, real)}),
    ("generator_labels_swapped", "The generator is trained to be recognised as fake (label 0): it must lower "
     "generator_loss(D(G(z)), kind=\"non_saturating\") = -1/2 E log D(G(z)).",
     {"g_loss": lambda fake: 0.5 * F.softplus(fake.reshape(-1)).mean()}),
    ("generator_minimax_loss", "The generator is trained with the saturating (minimax) loss; the contract "
     "asks for kind=\"non_saturating\".", {"g_loss": lambda fake: _ref_g_loss(fake, kind="minimax")}),
    ("generator_loss_sign_flipped", "The generator's loss has its sign flipped: the generator is pushed to "
     "make D(G(z)) smaller.", {"g_loss": lambda fake: -_ref_g_loss(fake)}),
    ("discriminator_loss_sign_flipped", "The discriminator's loss has its sign flipped: the discriminator "
     "is trained to be wrong.", {"d_loss": lambda real, fake: -_ref_d_loss(real, fake)}),
    ("gradients_never_zeroed", "Gradients are never zeroed, so they accumulate over the steps: call "
     "zero_grad() on each optimiser before each backward().", {"zero_d": False, "zero_g": False}),
    ("discriminator_gradients_never_zeroed", "The discriminator's gradients are never zeroed (they accumulate "
     "over steps, and collect the generator step's too): call opt_d.zero_grad() before d_loss.backward().",
     {"zero_d": False}),
    ("generator_gradients_never_zeroed", "The generator's gradients are never zeroed, so they accumulate over "
     "steps: call opt_g.zero_grad() before g_loss.backward().", {"zero_g": False}),
    ("generator_gets_discriminator_gradient", "The generator's update also follows the discriminator's loss: "
     "the fakes are not detached in the discriminator step and the generator's gradients are not zeroed "
     "between the two backward() calls. Detach (or use torch.no_grad()) for the discriminator step.",
     {"detach": False, "zero_at_top": True}),
    ("discriminator_gets_generator_gradient", "The discriminator's gradients are zeroed right after its own "
     "step, so the generator step's backward() leaves gradients on the discriminator that its next step adds to "
     "its own. Call opt_d.zero_grad() just before d_loss.backward().", {"zero_d": False, "zero_d_after_step": True}),
    ("discriminator_trained_on_generator_loss", "The discriminator is updated to lower the generator's loss "
     "instead of discriminator_loss(real_logits, fake_logits).",
     {"d_loss": lambda real, fake: _ref_g_loss(fake)}),
    ("one_optimizer_for_both", "One optimiser holds both networks and steps after the generator's backward(): "
     "the discriminator is also moved to lower the generator's loss. Use one Adam per network.",
     {"shared": True}),
    ("adam_default_betas", "Adam runs with its default betas (0.9, 0.999); the contract asks for "
     "betas=(0.5, 0.999).", {"betas": (0.9, 0.999)}),
    ("generator_updated_first", "The generator is updated before the discriminator; the contract asks for "
     "the discriminator step first.", {"g_first": True}),
    ("generator_updated_first_stale_fakes", "The generator is updated before the discriminator, and the "
     "discriminator is then trained on the samples generated before the generator's update (detached): the "
     "contract asks for the discriminator step first, on fresh fakes, then the generator step.",
     {"g_first": "stale"}),
)


#: diagnosis -> explanation, for the checks that name a catalogued mistake without the probe.
EXPLANATIONS: dict[str, str] = {name: why for name, why, _ in PROBE_MISTAKES}
for _which, _params in (("generator", "generator.parameters()"), ("discriminator", "discriminator.parameters()")):
    EXPLANATIONS[f"{_which}_layers_not_trained"] = (
        f"Some layers of the {_which} were not trained: its optimiser must hold all of {_params} (not one "
        "layer's), and no parameter may be left with requires_grad=False.")
