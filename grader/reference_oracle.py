"""Expected values computed from ``reference`` in float64, in the grader's process (never the sandbox)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from grader.checks.base import Case
from grader.mistakes import mistakes_for
from reference import formulas


def torch_args(case: Case, dtype: torch.dtype | None = torch.float64, requires_grad: tuple[int, ...] = ()) -> list:
    """The case's positional inputs as tensors (cast to ``dtype``; None keeps their own dtype)."""
    args = []
    for i, a in enumerate(case.args):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a.copy())
            t = t.to(dtype) if dtype is not None else t
            args.append(t.requires_grad_(i in requires_grad))
        else:
            args.append(a)
    return args


class ReferenceOracle:
    """Values, gradients and mistakes from ``reference.formulas`` and ``grader.mistakes``; cached
    per case (every student meets the same inputs)."""

    def __init__(self) -> None:
        self._values: dict[str, np.ndarray] = {}
        self._grads: dict[str, list[np.ndarray]] = {}

    def _function(self, case: Case):
        return getattr(formulas, case.function)

    def value(self, case: Case) -> np.ndarray:
        if case.id not in self._values:
            with torch.no_grad():
                out = self._function(case)(*torch_args(case), **case.kwargs)
            self._values[case.id] = out.numpy()
        return self._values[case.id]

    def grads(self, case: Case) -> list[np.ndarray]:
        if case.id not in self._grads:
            args = torch_args(case, requires_grad=case.grad)
            out = self._function(case)(*args, **case.kwargs)
            grads = torch.autograd.grad(out.sum(), [args[i] for i in case.grad])
            self._grads[case.id] = [g.numpy() for g in grads]
        return self._grads[case.id]

    def mistakes(self, case: Case) -> Iterable[tuple[str, str, np.ndarray]]:
        for m in mistakes_for(case.function):
            try:
                with torch.no_grad(), np.errstate(all="ignore"):
                    out = m.compute(*torch_args(case, dtype=None), **case.kwargs)
                yield m.name, m.explanation, np.asarray(out.detach().to(torch.float64).numpy(), dtype=np.float64)
            except Exception:  # a transformation that does not apply to these inputs
                continue

    def chain_rule(self, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return formulas.chain_rule_log_likelihood(torch.from_numpy(np.asarray(x, np.float64)),
                                                  torch.from_numpy(np.asarray(logits, np.float64))).numpy()
