"""The checks of every contract function, assembled from the rubric."""
from __future__ import annotations

from dataclasses import replace

from grader.checks import formulas, fvbn
from grader.checks.base import Suite
from grader.rubric import Rubric


class SuiteBuilder:
    """The suites of a rubric, with the formula functions' hidden inputs drawn from any seed.

    The suites whose inputs never change with the submission (``FVBN``: its sampling test is
    statistical; ``train_gan``: its training seeds are) are built once; ``for_seed(seed)`` draws
    the formula functions' inputs from ``seed`` (``grader.seeds.submission_seed``), in rubric
    order. An unknown function name is an error, raised here."""

    def __init__(self, rubric: Rubric, oracle) -> None:
        self.rubric, self.oracle = rubric, oracle
        self.fixed: dict[str, Suite] = {}
        for function in rubric.points:
            if function in formulas.SPECS:
                continue
            if function == fvbn.FUNCTION:
                self.fixed[function] = fvbn.build_suite(rubric, oracle)
            elif function == "train_gan":
                from grader.checks import workhouse  # needs the reference: imported only where train_gan is graded

                self.fixed[function] = workhouse.build_suite(rubric)
            else:
                raise KeyError(f"rubric lists `{function}`, for which the grader has no checks")

    def for_seed(self, seed: int) -> list[Suite]:
        """One suite per function listed in the rubric, in rubric order."""
        drawn = replace(self.rubric, seed=seed)
        return [self.fixed[function] if function in self.fixed
                else formulas.build_suite(function, drawn, self.oracle) for function in self.rubric.points]


def build_suites(rubric: Rubric, oracle) -> list[Suite]:
    """One suite per function listed in the rubric, in rubric order, every input drawn from the
    rubric's own seed (the self-check's public inputs; the structure of any grading)."""
    return SuiteBuilder(rubric, oracle).for_seed(rubric.seed)
