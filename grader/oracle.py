"""Where expected values come from: the judges ask an ``Oracle``, never the reference directly.

* ``grader.reference_oracle.ReferenceOracle`` computes them in the grader's process from
  ``reference`` in float64 (the TA's grading; the course staff's machines).
* ``grader.table_oracle.TableOracle`` reads them from a table precomputed on the *public* inputs
  (the student kit, which carries no reference source, no hidden input and no grading seed).
"""
from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

from grader.checks.base import Case


class Oracle(Protocol):
    def value(self, case: Case) -> np.ndarray:
        """The contract function's result on the case's inputs, float64."""

    def grads(self, case: Case) -> list[np.ndarray]:
        """Gradients of ``result.sum()`` w.r.t. the positional inputs listed in ``case.grad``."""

    def mistakes(self, case: Case) -> Iterable[tuple[str, str, np.ndarray]]:
        """``(name, explanation, value)`` of every catalogued mistake on the case, catalogue order."""

    #: False where ``chain_rule`` cannot be computed (the kit: the chain rule is one of the
    #: answers); the suites refuse to build a check that needs it (``grader.checks.fvbn``)
    has_chain_rule: bool

    def chain_rule(self, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """sum_i log p(x_i | x_<i) for Bernoulli conditionals given by ``logits`` ([B, D] -> [B]);
        raises ``OracleUnavailable`` where ``has_chain_rule`` is False."""


class OracleUnavailable(RuntimeError):
    """What this oracle cannot compute (never a value a judge could compare with)."""
