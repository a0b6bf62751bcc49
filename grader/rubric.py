"""Loading the versioned rubric (``rubric.toml``): points, tolerances, seed."""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from grader.compare import Tolerance

DEFAULT_RUBRIC = Path(__file__).with_name("rubric.toml")


@dataclass(frozen=True)
class Rubric:
    version: str
    seed: int
    public_seed: int | None                 # seed of the self-check's public inputs (None in the kit)
    points: dict[str, dict[str, Decimal]]   # function -> check -> points, in file order
    tolerances: dict[str, Tolerance]        # "float64" | "float32" | "fvbn"
    sampling_alpha: float
    sha256: str                             # of the file's bytes: a changed rubric regrades everyone
    workhouse: dict | None = None           # the [workhouse] section as read (grader.checks.workhouse)

    def max_score(self, function: str | None = None) -> Decimal:
        funcs = [function] if function else list(self.points)
        return sum((p for fn in funcs for p in self.points[fn].values()), Decimal(0))

    def check_points(self, function: str, check: str) -> Decimal:
        try:
            return self.points[function][check]
        except KeyError:
            raise KeyError(f"rubric has no points for check {function}/{check}") from None


def public_rubric(rubric: Rubric, drop: tuple[str, ...] = ()) -> Rubric:
    """The rubric of the student self-check: the public seed in place of the hidden one, without
    the checks listed in ``drop`` (``"function"`` or ``"function/check"``)."""
    if rubric.public_seed is None:
        raise ValueError("this rubric has no public_seed")
    points = {fn: {c: p for c, p in checks.items() if f"{fn}/{c}" not in drop}
              for fn, checks in rubric.points.items() if fn not in drop}
    return replace(rubric, seed=rubric.public_seed, public_seed=None, points=points)


def rubric_toml(rubric: Rubric) -> str:
    """A rubric as TOML text (for the kit; only what ``load_rubric`` reads)."""
    lines = [f'rubric_version = "{rubric.version}"', f"seed = {rubric.seed}", ""]
    for name, tol in rubric.tolerances.items():
        lines += [f"[tolerance.{name}]", f"rtol = {tol.rtol!r}", f"atol = {tol.atol!r}", ""]
    lines += ["[statistics]", f"sampling_alpha = {rubric.sampling_alpha!r}", ""]
    for fn, checks in rubric.points.items():
        lines.append(f"[points.{fn}]")
        lines += [f'{c} = "{p}"' for c, p in checks.items()]
        lines.append("")
    return "\n".join(lines)


def load_rubric(path: Path = DEFAULT_RUBRIC) -> Rubric:
    raw_bytes = Path(path).read_bytes()
    raw = tomllib.loads(raw_bytes.decode("utf-8"))
    points = {fn: {name: Decimal(str(v)) for name, v in checks.items()} for fn, checks in raw["points"].items()}
    tols = {k: Tolerance(float(v["rtol"]), float(v["atol"])) for k, v in raw["tolerance"].items()}
    return Rubric(
        version=str(raw["rubric_version"]),
        seed=int(raw["seed"]),
        public_seed=int(raw["public_seed"]) if "public_seed" in raw else None,
        points=points,
        tolerances=tols,
        sampling_alpha=float(raw["statistics"]["sampling_alpha"]),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        workhouse=raw.get("workhouse"),
    )
