"""The train_gan suite: the probe call and the ring call, and the checks of ``[points.train_gan]``.

What a suite is built from (its ``Context`` and its two cases) is built once per suite and kept
per rubric (``suite_parts``): the workhouse picture of every submission uses the suite's own
instead of reading the settings and building the ring networks and data again."""
from __future__ import annotations

import json
import threading
from functools import partial

from grader.checks.base import Case, Check, Suite
from grader.checks.workhouse.judges import (judge_loss_history, judge_loss_levels, judge_statistic, judge_trains,
                                            judge_update_rule)
from grader.checks.workhouse.networks import call_extra
from grader.checks.workhouse.probe import probe_data, probe_networks
from grader.checks.workhouse.settings import FUNCTION, MAIN_ID, PROBE_ID, Context, Settings, load_context
from grader.checks.workhouse.settings import grading_seeds, load_settings
from grader.rubric import Rubric
from reference.workhouse_stats import ring_data, ring_networks


def build_cases(rubric: Rubric) -> tuple[Case, Case]:
    """The probe call and the ring call, with every seed and the budget fixed by the rubric."""
    return _cases(load_settings(rubric), grading_seeds(rubric))


def _cases(settings: Settings, seeds: dict[str, int]) -> tuple[Case, Case]:
    common = dict(batch_size=settings.batch_size, lr=settings.lr, seeds=seeds)
    g, d = ring_networks(seeds["init"])
    main = Case(MAIN_ID, FUNCTION, kind="train_gan", extra=call_extra(
        g, d, ring_data(), steps=settings.steps, wall_s=settings.wall_s, cpu_s=settings.cpu_s, **common))
    pg, pd = probe_networks(seeds["probe"])
    probe = Case(PROBE_ID, FUNCTION, kind="train_gan", extra=call_extra(
        pg, pd, probe_data(), steps=settings.probe_steps, wall_s=10.0, cpu_s=10.0, **common))
    return probe, main


def build_suite(rubric: Rubric) -> Suite:
    """The ``train_gan`` suite: the checks of ``[points.train_gan]``, in the rubric's order. The
    settings and statistics are loaded here, once (a clear error now if they do not fit), and kept
    with the cases for ``suite_parts``."""
    ctx: Context = load_context(rubric)
    probe, main = _cases(ctx.settings, ctx.seeds)
    _keep(rubric, (ctx, probe, main))
    judges = {
        "trains": (partial(judge_trains, ctx), (probe, main), "both networks are updated and come back finite, "
                   "with the reference's layers", ("ring_distance",)),
        "update_rule": (partial(judge_update_rule, ctx), (probe,), "one Adam step per network per step, on the "
                        "contract's losses (a deterministic probe)", ("trains", "ring_distance")),
        "loss_history": (partial(judge_loss_history, ctx), (main, probe), "d_loss and g_loss: one finite, "
                         "non-negative float per step, the losses of the networks returned", ("trains", "ring_distance")),
        "loss_levels": (partial(judge_loss_levels, ctx), (main, probe), "late-training losses where the reference "
                        "loop's are", ("trains", "loss_history", "ring_distance")),
        "ring_distance": (partial(judge_statistic, ctx, "ring_distance"), (main, probe), "generated samples "
                          "close to the ring (energy distance)", ("trains",)),
    }
    points = rubric.points[FUNCTION]
    unknown = sorted(set(points) - set(judges))
    if unknown:
        raise KeyError(f"[points.train_gan] lists {unknown}, for which the grader has no checks")
    checks = tuple(Check(FUNCTION, name, desc, cases, judge, requires)
                   for name, (judge, cases, desc, requires) in judges.items() if name in points)
    return Suite(FUNCTION, checks)


#: (the rubric's seed, its [workhouse] section) -> (Context, probe case, ring case) of the suites
#: built in this process, the latest ``_KEPT_MAX``.
_KEPT: dict[tuple, tuple[Context, Case, Case]] = {}
_KEPT_MAX = 8
_KEPT_LOCK = threading.Lock()


def _key(rubric: Rubric) -> tuple:
    # everything the parts are made of: the seeds come from rubric.seed, the rest from [workhouse]
    return rubric.seed, json.dumps(rubric.workhouse, sort_keys=True, default=repr)


def _keep(rubric: Rubric, parts: tuple[Context, Case, Case]) -> None:
    with _KEPT_LOCK:
        _KEPT.pop(_key(rubric), None)
        _KEPT[_key(rubric)] = parts
        while len(_KEPT) > _KEPT_MAX:
            del _KEPT[next(iter(_KEPT))]


def suite_parts(rubric: Rubric) -> tuple[Context, Case, Case]:
    """The ``Context`` and the (probe, ring) cases that ``build_suite(rubric)`` built; built here
    (once, and kept) when no suite of this rubric was built in this process."""
    with _KEPT_LOCK:
        parts = _KEPT.get(_key(rubric))
    if parts is None:
        ctx = load_context(rubric)
        parts = (ctx, *_cases(ctx.settings, ctx.seeds))
        with _KEPT_LOCK:   # two threads may both build it: the first one kept is used by both
            parts = _KEPT.setdefault(_key(rubric), parts)
    return parts
