"""Loading the versioned rubric (``rubric.toml``): points, tolerances, seed."""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from grader.compare import Tolerance

DEFAULT_RUBRIC = Path(__file__).with_name("rubric.toml")


@dataclass(frozen=True)
class Rubric:
    version: str
    seed: int
    points: dict[str, dict[str, Decimal]]   # function -> check -> points, in file order
    tolerances: dict[str, Tolerance]        # "float64" | "float32" | "fvbn"
    sampling_alpha: float
    sha256: str                             # of the file's bytes: a changed rubric regrades everyone

    def max_score(self, function: str | None = None) -> Decimal:
        funcs = [function] if function else list(self.points)
        return sum((p for fn in funcs for p in self.points[fn].values()), Decimal(0))

    def check_points(self, function: str, check: str) -> Decimal:
        try:
            return self.points[function][check]
        except KeyError:
            raise KeyError(f"rubric has no points for check {function}/{check}") from None


def load_rubric(path: Path = DEFAULT_RUBRIC) -> Rubric:
    raw_bytes = Path(path).read_bytes()
    raw = tomllib.loads(raw_bytes.decode("utf-8"))
    points = {fn: {name: Decimal(str(v)) for name, v in checks.items()} for fn, checks in raw["points"].items()}
    tols = {k: Tolerance(float(v["rtol"]), float(v["atol"])) for k, v in raw["tolerance"].items()}
    return Rubric(
        version=str(raw["rubric_version"]),
        seed=int(raw["seed"]),
        points=points,
        tolerances=tols,
        sampling_alpha=float(raw["statistics"]["sampling_alpha"]),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
    )
