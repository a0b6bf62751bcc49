"""The ``[workhouse]`` settings, the committed reference statistics and the acceptance region."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.checks.base import function_rng
from grader.rubric import Rubric

FUNCTION = "train_gan"
MAIN_ID = "train_gan/ring"
PROBE_ID = "train_gan/probe"
STATS_DIR = Path(__file__).resolve().parents[3] / "reference" / "stats"


@dataclass(frozen=True)
class Bound:
    """The acceptance interval of one statistic and how it was derived."""

    lo: float | None
    hi: float | None
    how: str

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in [{self.lo:.4g}, {self.hi:.4g}]"
        return f">= {self.lo:.4g}" if self.lo is not None else f"<= {self.hi:.4g}"


@dataclass(frozen=True)
class Settings:
    steps: int
    batch_size: int
    lr: float
    wall_s: float
    cpu_s: float
    probe_steps: int
    probe_tolerance: float
    stats: str
    region: tuple[tuple[str, str, float], ...]   # (statistic, rule, margin)

    @property
    def budget(self) -> tuple[int, int, float]:
        return self.steps, self.batch_size, self.lr


def load_settings(rubric: Rubric) -> Settings:
    """The rubric's ``[workhouse]`` section (``Rubric.workhouse``) as ``Settings``."""
    raw = rubric.workhouse
    if raw is None:
        raise KeyError("the rubric has no [workhouse] section: train_gan needs one (see grader/rubric.toml)")
    try:
        region = tuple((str(name), str(rule), float(margin)) for name, (rule, margin) in raw["region"].items())
        return Settings(steps=int(raw["steps"]), batch_size=int(raw["batch_size"]), lr=float(raw["lr"]),
                        wall_s=float(raw["wall_s"]), cpu_s=float(raw["cpu_s"]),
                        probe_steps=int(raw["probe_steps"]), probe_tolerance=float(raw["probe_tolerance"]),
                        stats=str(raw["stats"]), region=region)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyError(f"the rubric's [workhouse] section is incomplete or malformed: {exc!r}") from None


def reference_stats(settings: Settings) -> dict:
    """The committed reference statistics; their budget must be the rubric's."""
    path = STATS_DIR / settings.stats
    stats = json.loads(path.read_text("utf-8"))
    made = (int(stats["steps"]), int(stats["batch_size"]), float(stats["lr"]))
    if made != settings.budget:
        raise ValueError(f"{path.name} was made with (steps, batch_size, lr) = {made}, but the rubric's "
                         f"[workhouse] asks {settings.budget}: run python -m reference.workhouse_stats")
    return stats


def acceptance_region(stats: dict, settings: Settings) -> dict[str, Bound]:
    """Per statistic, the interval a submission's value must fall in (see the package docstring)."""
    region = {}
    n = len(stats["seeds"])
    for name, rule, margin in settings.region:
        if name not in stats["metrics"]:
            raise ValueError(f"[workhouse.region] {name}: {settings.stats} has no such statistic "
                             "(run python -m reference.workhouse_stats)")
        values = np.asarray(stats["metrics"][name]["values"], dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        if rule == "at_least":
            region[name] = Bound(margin * lo, None, f"{margin:g} x the worst of {n} reference seeds ({lo:.4g})")
        elif rule == "at_least_minus":
            region[name] = Bound(lo - margin, None, f"the worst of {n} reference seeds ({lo:.4g}) minus {margin:g}")
        elif rule == "at_most":
            region[name] = Bound(None, margin * hi, f"{margin:g} x the worst of {n} reference seeds ({hi:.4g})")
        elif rule == "within":
            region[name] = Bound(lo / margin, hi * margin,
                                 f"the range of {n} reference seeds ([{lo:.4g}, {hi:.4g}]) widened by x{margin:g}")
        else:
            raise ValueError(f"[workhouse.region] {name}: unknown rule {rule!r} "
                             "(at_least, at_least_minus, at_most, within)")
    return region


def grading_seeds(rubric: Rubric) -> dict[str, int]:
    """Seeds of the initial weights, the student's ``rng``, torch's global RNG, the evaluation
    and the probe's networks: fixed by the rubric's seed."""
    draws = function_rng(rubric, FUNCTION).integers(0, 2**31 - 1, size=5)
    return dict(zip(("init", "rng", "torch", "eval", "probe"), (int(d) for d in draws)))


@dataclass(frozen=True)
class Context:
    """Everything a judge needs that comes from the rubric, loaded once per suite."""

    rubric: Rubric
    settings: Settings
    stats: dict
    region: dict[str, Bound]
    seeds: dict[str, int]


def load_context(rubric: Rubric) -> Context:
    """The settings, statistics, region and seeds of ``rubric`` (raises when they do not fit)."""
    settings = load_settings(rubric)
    stats = reference_stats(settings)
    return Context(rubric, settings, stats, acceptance_region(stats, settings), grading_seeds(rubric))
