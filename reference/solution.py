"""The reference solution to the assignment: itself a submission, and always worth full marks.

It implements the student contract of ASSIGNMENT.md by calling the formulas of
``reference.formulas`` and the models of ``reference.models``. Like any submission it is graded in
the sandbox, where ``reference`` is not importable, so the grader hands it over as a self-contained
file: see ``reference.solution_source``.
"""
from __future__ import annotations

from reference.formulas import (  # noqa: F401  (re-exported as the contract's names)
    bernoulli_log_likelihood,
    chain_rule_log_likelihood,
    discriminator_loss,
    elbo,
    gaussian_kl,
    generator_loss,
    reparameterize,
)
from reference.models.fvbn import LogisticFVBN as FVBN  # noqa: F401
from reference.workhouse import train_gan  # noqa: F401
