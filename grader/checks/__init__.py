"""The checks of every contract function, assembled from the rubric."""
from __future__ import annotations

from grader.checks import formulas, fvbn
from grader.checks.base import Suite
from grader.rubric import Rubric


def build_suites(rubric: Rubric, oracle) -> list[Suite]:
    """One suite per function listed in the rubric, in rubric order; an unknown name is an error."""
    suites = []
    for function in rubric.points:
        if function in formulas.SPECS:
            suites.append(formulas.build_suite(function, rubric, oracle))
        elif function == fvbn.FUNCTION:
            suites.append(fvbn.build_suite(rubric, oracle))
        elif function == "train_gan":
            from grader.checks import workhouse  # needs the reference: imported only where train_gan is graded

            suites.append(workhouse.build_suite(rubric))
        else:
            raise KeyError(f"rubric lists `{function}`, for which the grader has no checks")
    return suites
