"""Expected values read from a precomputed table: the student kit's oracle (no reference inside).

The table holds, for every call of the public suites, the reference's value, its gradients and
every catalogued mistake's value, computed once by ``python -m grader kit`` with the reference.
Arrays live in ``expected.npz`` (read with ``allow_pickle=False``); names and explanations in
``expected.json``.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from grader.atomic import write_atomic
from grader.checks.base import Case, Suite
from grader.oracle import OracleUnavailable


class TableOracle:
    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        with np.load(folder / "expected.npz", allow_pickle=False) as data:
            self._arrays = {k: data[k] for k in data.files}
        self._index = json.loads((folder / "expected.json").read_text("utf-8"))

    def _get(self, key: str) -> np.ndarray:
        try:
            return self._arrays[key]
        except KeyError:
            raise KeyError(f"the kit's table has no expected value for {key}: rebuild the kit") from None

    def value(self, case: Case) -> np.ndarray:
        return self._get(f"{case.id}::value")

    def grads(self, case: Case) -> list[np.ndarray]:
        return [self._get(f"{case.id}::grad::{i}") for i in range(len(case.grad))]

    def mistakes(self, case: Case) -> Iterable[tuple[str, str, np.ndarray]]:
        for name in self._index["mistakes"].get(case.id, []):
            yield name, self._index["explanations"][f"{case.function}/{name}"], self._get(f"{case.id}::mistake::{name}")

    has_chain_rule = False

    def chain_rule(self, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
        raise OracleUnavailable("the kit has no chain rule (it is one of the answers): this check is the TA's")


def write_table(suites: list[Suite], oracle, folder: Path) -> None:
    """Evaluate ``oracle`` (the reference) on every function call of ``suites`` into ``folder``."""
    arrays: dict[str, np.ndarray] = {}
    index: dict = {"mistakes": {}, "explanations": {}}
    for suite in suites:
        cases = {c.id: c for check in suite.checks for c in check.cases if c.kind == "function"}
        for case in cases.values():
            try:
                arrays[f"{case.id}::value"] = np.asarray(oracle.value(case), dtype=np.float64)
            except ValueError:  # a call that must raise (an unknown kind): nothing to expect
                continue
            if case.grad:
                for i, g in enumerate(oracle.grads(case)):
                    arrays[f"{case.id}::grad::{i}"] = np.asarray(g, dtype=np.float64)
            names = []
            for name, explanation, value in oracle.mistakes(case):
                arrays[f"{case.id}::mistake::{name}"] = value
                index["explanations"][f"{case.function}/{name}"] = explanation
                names.append(name)
            index["mistakes"][case.id] = names
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(Path(folder) / "expected.npz", buffer.getvalue())
    write_atomic(Path(folder) / "expected.json", json.dumps(index, indent=1, sort_keys=True) + "\n")
