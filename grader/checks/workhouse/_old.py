"""Checks of the GAN workhouse ``train_gan``: the student's loop trains the reference's ring MLPs
in the sandbox; the grader judges the weights and losses that come back.

Two calls, run in order in one sandboxed process (``grader.sandbox.workhouse_calls`` builds the
networks there from a plain spec, since the sandbox cannot see ``reference``):

* ``train_gan/probe``: a deterministic probe of the update rule. The generator's first layer is
  dead (weights 0, biases -1), so G(z) is one trainable point whatever z is; every row of the data
  is the same ring centre. Then the whole run is the same for every correct loop, whatever the
  order of its random draws, fresh or reused z, ``.detach()`` or ``torch.no_grad()``, and wherever
  it zeroes its gradients; after ``probe_steps`` steps both networks must have moved as the
  reference workhouse moves them (relative difference of the updates at most
  ``probe_tolerance``). A loop that moves them otherwise is matched against ``PROBE_MISTAKES``
  (the same probe run by trusted mistaken loops) to name the mistake.
* ``train_gan/ring``: the ring config's networks, initialised from the rubric's seed, the ring's
  train split, the rubric's budget (``[workhouse]``: steps, batch size, lr; with its own wall and
  CPU limits). The trained generator is evaluated by the grader as the reference statistics are
  (``reference.workhouse_stats.evaluate``: 2000 samples, ``reference.metrics``).

Checks: ``trains`` (both networks' weights came back valid and changed), ``update_rule`` (the
probe), ``loss_history`` (one finite, non-negative float per step in each list: both losses are
cross-entropies), ``loss_levels`` (late-training losses), and the statistics ``ring_distance`` and
``sample_quality`` (high-quality fraction). Modes covered is reported with ``ring_distance`` but
not graded: at the grading budget correct loops cover anywhere from 0 to 8 modes.

Acceptance region: from every seed's value in ``reference/stats/<[workhouse] stats>`` (written by
``python -m reference.workhouse_stats`` at the same budget), per statistic and rule of
``[workhouse.region]``: ``at_least`` m: value >= m x (the seeds' minimum); ``at_least_minus`` m:
value >= minimum - m; ``at_most`` m: value <= m x (their maximum); ``within`` m:
min / m <= value <= max x m. A loop whose samples miss the
``ring_distance`` region has not learned the ring: it earns nothing for the other checks either.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grader.checks.base import Case, Check, Outcome, Suite, Verdict, function_rng, outcome_failure
from grader.compare import fmt
from grader.rubric import Rubric
from reference.data import RING_RADIUS
from reference.formulas import discriminator_loss as _ref_d_loss
from reference.formulas import generator_loss as _ref_g_loss
from reference.models.gan import GAN_CONFIGS, Generator
from reference.workhouse import train_gan as reference_train_gan
from reference.workhouse_stats import CONFIG, LATE_FRACTION, evaluate, late_mean, ring_data, ring_networks

FUNCTION = "train_gan"
MAIN_ID = "train_gan/ring"
PROBE_ID = "train_gan/probe"
PROBE_ROWS = 256
#: The probe's data point and the generator's starting output bias: both coordinates well away from
#: 0, so that no weight of the discriminator's first layer gets a near-zero gradient (Adam's eps
#: would then make the update depend on a constant factor in the losses).
PROBE_REAL = (RING_RADIUS / math.sqrt(2.0), RING_RADIUS / math.sqrt(2.0))
PROBE_FAKE = (-1.0, 0.5)
STATS_DIR = Path(__file__).resolve().parents[2] / "reference" / "stats"
HALF_LOG2 = 0.5 * math.log(2.0)
LOSSES_MAY_FOLLOW = ("If your discriminator_loss/generator_loss failed their checks, this may follow from them.")
LAYER_TYPES = {nn.Linear: "linear", nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Sigmoid: "sigmoid",
               nn.Tanh: "tanh"}
STATISTICS = {  # check name -> (statistic, what it is, for messages)
    "ring_distance": ("ring_distance", "energy distance between your samples and the ring"),
    "sample_quality": ("high_quality_fraction", "fraction of samples within 3 std of a mode"),
}


# ------------------------------------------------------------------------------------ settings
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
    """Per statistic, the interval a submission's value must fall in (see the module docstring)."""
    region = {}
    n = len(stats["seeds"])
    for name, rule, margin in settings.region:
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


# ----------------------------------------------------------------------------- networks as data
def network_spec(module: nn.Module) -> tuple[dict, np.ndarray]:
    """A reference network (one ``nn.Sequential`` child) as a plain spec and its flat float32 weights."""
    children = list(module.named_children())
    if len(children) != 1 or not isinstance(children[0][1], nn.Sequential):
        raise TypeError(f"{type(module).__name__} is not one nn.Sequential: cannot describe it as data")
    container, seq = children[0]
    layers = []
    for layer in seq:
        kind = LAYER_TYPES.get(type(layer))
        if kind is None:
            raise TypeError(f"layer {type(layer).__name__} has no spec")
        spec = {"type": kind}
        if kind == "linear":
            spec.update(in_features=layer.in_features, out_features=layer.out_features)
        elif kind == "leaky_relu":
            spec["negative_slope"] = float(layer.negative_slope)
        layers.append(spec)
    state = module.state_dict()
    flat = np.concatenate([t.detach().to(torch.float32).reshape(-1).numpy() for t in state.values()])
    return ({"container": container, "layers": layers, "names": list(state),
             "shapes": [list(t.shape) for t in state.values()]}, flat.astype(np.float32))


def initial_state(case: Case, which: str) -> dict[str, np.ndarray]:
    """The weights the grader sent for ``which`` (``generator``/``discriminator``), float64."""
    spec, flat = case.extra[which], np.asarray(case.extra[f"{which}_weights"], dtype=np.float64)
    out, start = {}, 0
    for name, shape in zip(spec["names"], spec["shapes"]):
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = flat[start:start + size].reshape(shape)
        start += size
    return out


def _state_of(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().to(torch.float64).numpy().copy() for k, v in module.state_dict().items()}


def _call_extra(generator: nn.Module, discriminator: nn.Module, data: torch.Tensor, *, steps: int,
                batch_size: int, lr: float, seeds: dict[str, int], wall_s: float, cpu_s: float) -> dict:
    g_spec, g_flat = network_spec(generator)
    d_spec, d_flat = network_spec(discriminator)
    return {"generator": g_spec, "generator_weights": g_flat, "discriminator": d_spec,
            "discriminator_weights": d_flat, "data": data.numpy().astype(np.float32),
            "steps": steps, "batch_size": batch_size, "lr": lr, "latent_dim": GAN_CONFIGS[CONFIG].latent_dim,
            "rng_seed": seeds["rng"], "torch_seed": seeds["torch"], "max_history": 4 * steps + 16,
            "wall_s": wall_s, "cpu_s": cpu_s}


# ----------------------------------------------------------------------------------- the probe
def probe_networks(seed: int) -> tuple[nn.Module, nn.Module]:
    """The probe's networks: the ring pair from ``seed`` with the generator's first layer dead."""
    generator, discriminator = ring_networks(seed)
    with torch.no_grad():
        first = generator.net[0]
        first.weight.zero_()
        first.bias.fill_(-1.0)
        generator.net[-1].bias.copy_(torch.tensor(PROBE_FAKE))
    return generator, discriminator


def probe_data() -> torch.Tensor:
    """``PROBE_ROWS`` copies of the ring's second centre (at 45 degrees)."""
    return torch.tensor([PROBE_REAL], dtype=torch.float32).repeat(PROBE_ROWS, 1)


def _adam(params, lr: float, betas=(0.5, 0.999)) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=betas)


def knob_loop(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng,
              d_loss=None, g_loss=None, zero_d=True, zero_g=True, step_d=True, step_g=True, detach=True,
              zero_at_top=False, shared=False, betas=(0.5, 0.999), g_first=False, zero_d_after_step=False,
              g_opt_on_d=False, **_):
    """The reference loop with knobs, each of which makes one classic mistake (trusted code)."""
    d_loss = d_loss or _ref_d_loss
    g_loss = g_loss or (lambda fake_logits: _ref_g_loss(fake_logits, kind="non_saturating"))
    if shared:
        opt_d = opt_g = _adam(list(generator.parameters()) + list(discriminator.parameters()), lr, betas)
    else:
        opt_d = _adam(discriminator.parameters(), lr, betas)
        opt_g = _adam((discriminator if g_opt_on_d else generator).parameters(), lr, betas)
    history = {"d_loss": [], "g_loss": []}

    def d_step(real, fake):
        if zero_d and not zero_at_top:
            opt_d.zero_grad()
        loss = d_loss(discriminator(real), discriminator(fake.detach() if detach else fake))
        loss.backward(retain_graph=not detach)
        if step_d:
            opt_d.step()
        if zero_d_after_step:
            opt_d.zero_grad()
        history["d_loss"].append(loss.item())

    def g_step(fake):
        if zero_g and not zero_at_top:
            opt_g.zero_grad()
        loss = g_loss(discriminator(fake))
        loss.backward()
        if step_g:
            opt_g.step()
        history["g_loss"].append(loss.item())

    for _ in range(steps):
        if zero_at_top:
            opt_d.zero_grad()
            opt_g.zero_grad()
        real = data[torch.randint(0, data.shape[0], (batch_size,), generator=rng)]
        fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
        if g_first:
            g_step(fake)
            d_step(real, generator(torch.randn(batch_size, latent_dim, generator=rng)))
        else:
            d_step(real, fake)
            g_step(fake)
    return history


#: (name, explanation, knobs): trusted mistaken loops run on the probe to name a student's mistake.
PROBE_MISTAKES: tuple[tuple[str, str, dict], ...] = (
    ("generator_not_updated", "The generator is never updated: its optimiser must hold generator.parameters() "
     "and step() after g_loss.backward() in every step.", {"step_g": False}),
    ("discriminator_not_updated", "The discriminator is never updated: its optimiser must hold "
     "discriminator.parameters() and step() after d_loss.backward() in every step.", {"step_d": False}),
    ("generator_optimizer_on_discriminator", "The generator's optimiser was built on the discriminator's "
     "parameters: the generator never moves and the discriminator takes two steps. Build it on "
     "generator.parameters().", {"g_opt_on_d": True}),
    ("discriminator_labels_swapped", "The discriminator is trained with real and fake swapped: "
     "discriminator_loss(real_logits, fake_logits) takes the data's logits first.",
     {"d_loss": lambda real, fake: _ref_d_loss(fake, real)}),
    ("generator_labels_swapped", "The generator is trained to be recognised as fake (label 0): it must lower "
     "generator_loss(D(G(z)), kind=\"non_saturating\") = -1/2 E log D(G(z)).",
     {"g_loss": lambda fake: 0.5 * F.softplus(fake.reshape(-1)).mean()}),
    ("generator_minimax_loss", "The generator is trained with the saturating (minimax) loss; the contract "
     "asks for kind=\"non_saturating\".", {"g_loss": lambda fake: _ref_g_loss(fake, kind="minimax")}),
    ("generator_loss_sign_flipped", "The generator's loss has its sign flipped: the generator is pushed to "
     "make D(G(z)) smaller.", {"g_loss": lambda fake: -_ref_g_loss(fake)}),
    ("discriminator_loss_sign_flipped", "The discriminator's loss has its sign flipped: the discriminator "
     "is trained to be wrong.", {"d_loss": lambda real, fake: -_ref_d_loss(real, fake)}),
    ("gradients_never_zeroed", "Gradients are never zeroed, so they accumulate over the steps: call "
     "zero_grad() on each optimiser before each backward().", {"zero_d": False, "zero_g": False}),
    ("discriminator_gradients_never_zeroed", "The discriminator's gradients are never zeroed (they accumulate "
     "over steps, and collect the generator step's too): call opt_d.zero_grad() before d_loss.backward().",
     {"zero_d": False}),
    ("generator_gradients_never_zeroed", "The generator's gradients are never zeroed, so they accumulate over "
     "steps: call opt_g.zero_grad() before g_loss.backward().", {"zero_g": False}),
    ("generator_gets_discriminator_gradient", "The generator's update also follows the discriminator's loss: "
     "the fakes are not detached in the discriminator step and the generator's gradients are not zeroed "
     "between the two backward() calls. Detach (or use torch.no_grad()) for the discriminator step.",
     {"detach": False, "zero_at_top": True}),
    ("discriminator_gets_generator_gradient", "The discriminator's gradients are zeroed right after its own "
     "step, so the generator step's backward() leaves gradients on the discriminator that its next step adds to "
     "its own. Call opt_d.zero_grad() just before d_loss.backward().", {"zero_d": False, "zero_d_after_step": True}),
    ("discriminator_trained_on_generator_loss", "The discriminator is updated to lower the generator's loss "
     "instead of discriminator_loss(real_logits, fake_logits).",
     {"d_loss": lambda real, fake: _ref_g_loss(fake)}),
    ("one_optimizer_for_both", "One optimiser holds both networks and steps after the generator's backward(): "
     "the discriminator is also moved to lower the generator's loss. Use one Adam per network.",
     {"shared": True}),
    ("adam_default_betas", "Adam runs with its default betas (0.9, 0.999); the contract asks for "
     "betas=(0.5, 0.999).", {"betas": (0.9, 0.999)}),
    ("generator_updated_first", "The generator is updated before the discriminator; the contract asks for "
     "the discriminator step first.", {"g_first": True}),
)

_LOCK = threading.Lock()
_PROBE_CACHE: dict[tuple, dict] = {}


def _probe_run(seed: int, steps: int, batch_size: int, lr: float, loop) -> dict[str, dict[str, np.ndarray]]:
    generator, discriminator = probe_networks(seed)
    with torch.random.fork_rng(devices=[]):
        loop(generator, discriminator, probe_data(), steps=steps, batch_size=batch_size, lr=lr,
             latent_dim=GAN_CONFIGS[CONFIG].latent_dim, rng=torch.Generator().manual_seed(0))
    return {"generator": _state_of(generator), "discriminator": _state_of(discriminator)}


def probe_expectations(seed: int, steps: int, batch_size: int, lr: float) -> dict:
    """The reference workhouse's and every catalogued mistake's weights after the probe (cached)."""
    key = (seed, steps, batch_size, lr)
    with _LOCK:
        if key not in _PROBE_CACHE:
            initial_g, initial_d = probe_networks(seed)
            _PROBE_CACHE[key] = {
                "initial": {"generator": _state_of(initial_g), "discriminator": _state_of(initial_d)},
                "reference": _probe_run(seed, steps, batch_size, lr, reference_train_gan),
                "mistakes": [(name, why, _probe_run(seed, steps, batch_size, lr, partial(knob_loop, **knobs)))
                             for name, why, knobs in PROBE_MISTAKES],
            }
        return _PROBE_CACHE[key]


def update_difference(got: dict[str, np.ndarray], want: dict[str, np.ndarray], initial: dict[str, np.ndarray]) -> float:
    """``|got - want| / |want - initial|`` over every weight: how far an update is from another."""
    num = sum(float(np.sum((got[k] - want[k]) ** 2)) for k in want)
    den = sum(float(np.sum((want[k] - initial[k]) ** 2)) for k in want)
    return math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)


# ------------------------------------------------------------------------------- reading results
def _case(check: Check, case_id: str) -> Case:
    return next(c for c in check.cases if c.id == case_id)


def _usable(case: Case, outcomes: dict[str, Outcome]) -> tuple[dict | None, str | None]:
    outcome = outcomes.get(case.id)
    reason = outcome_failure(outcome, FUNCTION)
    if reason and outcome is not None and outcome.status == "timeout":
        reason += (f" ({case.extra['steps']} steps of a correct loop take a second or two of CPU here: keep the "
                   "loop lean, no printing or plotting)")
    return (None, reason) if reason else (outcome.value, None)


def returned_state(value: dict, case: Case, which: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The trained ``which``'s weights, validated against the spec sent in: names, shapes, finite."""
    report = value.get(which)
    if not isinstance(report, dict) or not isinstance(report.get("state"), dict):
        return None, f"the {which}'s weights did not come back"
    problems = report.get("problems") or []
    if problems:
        return None, f"the {which}'s state_dict after training is not the network's: {problems[0]}"
    state = report["state"]
    names = list(case.extra[which]["names"])
    missing = [n for n in names if n not in state]
    extra = [n for n in state if n not in names]
    if missing or extra:
        return None, (f"the {which}'s state_dict after training has different entries: "
                      f"missing {missing[:3]}, unexpected {extra[:3]} (do not replace or add modules)")
    out = {}
    for name, shape in zip(names, case.extra[which]["shapes"]):
        arr = np.asarray(state[name], dtype=np.float64)
        if list(arr.shape) != list(shape):
            return None, f"the {which}'s {name} has shape {list(arr.shape)} after training, not {list(shape)}"
        if not np.isfinite(arr).all():
            return None, f"the {which}'s {name} holds nan or inf after training: the training diverged"
        out[name] = arr
    return out, None


def trained_generator(state: dict[str, np.ndarray]) -> Generator:
    """The grader's own ring generator carrying ``state``."""
    generator, _ = ring_networks(0)
    generator.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()})
    return generator


def histories(value: dict, steps: int) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """``d_loss`` and ``g_loss`` as float64 arrays of one entry per step, or why not."""
    returned = value.get("returned") or {}
    if returned.get("type") != "builtins.dict" and not returned.get("keys"):
        return None, None, (f"train_gan returned a {returned.get('type', '?')}, not a dict "
                            "{\"d_loss\": [...], \"g_loss\": [...]}")
    out = []
    for key in ("d_loss", "g_loss"):
        entry = (value.get("history") or {}).get(key)
        if entry is None:
            return None, None, f"the returned dict has no key {key!r} (its keys: {returned.get('keys', [])})"
        if entry.get("problem"):
            return None, None, f"{key} is not a list of numbers: {entry['problem']}"
        values = np.asarray(entry["values"], dtype=np.float64).reshape(-1)
        if values.size != steps:
            return None, None, f"{key} has {values.size} entries; expected one per step ({steps})"
        out.append(values)
    return out[0], out[1], None


@dataclass(frozen=True)
class Evaluation:
    samples: np.ndarray
    stats: dict[str, float]


def evaluate_outcome(value: dict, case: Case, eval_seed: int) -> tuple[Evaluation | None, str | None]:
    """The trained generator's samples and statistics, computed here as for the reference seeds."""
    state, why = returned_state(value, case, "generator")
    if why:
        return None, why
    samples, stats = evaluate(trained_generator(state), eval_seed)
    return Evaluation(samples.numpy(), stats), None


# --------------------------------------------------------------------------------------- judges
def _context(rubric: Rubric) -> tuple[Settings, dict[str, Bound], dict]:
    settings = load_settings(rubric)
    stats = reference_stats(settings)
    return settings, acceptance_region(stats, settings), stats


def judge_trains(check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = _case(check, MAIN_ID)
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    for which in ("generator", "discriminator"):
        state, why = returned_state(value, case, which)
        if why:
            return Verdict(False, why, diagnosis="weights_invalid" if "nan" not in why else "training_diverged",
                           explanation="", case=case.id)
        initial = initial_state(case, which)
        if all(np.array_equal(state[k], initial[k]) for k in initial):
            name = f"{which}_not_updated"
            why = dict((n, e) for n, e, _ in PROBE_MISTAKES)[name]
            return Verdict(False, f"after {case.extra['steps']} steps every weight of the {which} still equals "
                                  "its initial value", expected=f"the {which} trained", got="unchanged weights",
                           diagnosis=name, explanation=why, case=case.id)
    return Verdict(True, "both networks were updated in place and came back finite, with the reference's layers")


def _probe_diagnosis(value: dict, case: Case, rubric: Rubric) -> tuple[float, float, str | None, str]:
    """(difference from the reference on G, on D, the catalogued mistake matched or None, its explanation)."""
    tolerance = load_settings(rubric).probe_tolerance
    exp = probe_expectations(grading_seeds(rubric)["probe"], case.extra["steps"], case.extra["batch_size"],
                             case.extra["lr"])
    got = {}
    for which in ("generator", "discriminator"):
        state, why = returned_state(value, case, which)
        if why:
            raise ValueError(why)
        got[which] = state
    diffs = [update_difference(got[w], exp["reference"][w], exp["initial"][w]) for w in ("generator", "discriminator")]
    if max(diffs) <= tolerance:
        return diffs[0], diffs[1], None, ""
    for name, why, result in exp["mistakes"]:
        if all(update_difference(got[w], result[w], exp["initial"][w]) <= tolerance
               for w in ("generator", "discriminator")):
            return diffs[0], diffs[1], name, why
    return diffs[0], diffs[1], None, ""


def judge_update_rule(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    settings = load_settings(rubric)
    case = _case(check, PROBE_ID)
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    try:
        diff_g, diff_d, name, why = _probe_diagnosis(value, case, rubric)
    except ValueError as exc:
        return Verdict(False, f"on the probe run: {exc}", case=case.id)
    tol = settings.probe_tolerance
    if max(diff_g, diff_d) <= tol:
        return Verdict(True, f"on the probe, both networks moved as the contract's loop moves them (within "
                             f"{100 * tol:g}%)")
    worse = [w for w, d in (("generator", diff_g), ("discriminator", diff_d)) if d > tol]
    message = (f"On a deterministic probe (G(z) a single trainable point, every data row the same point, "
               f"{case.extra['steps']} steps) the {' and the '.join(worse)} moved differently from the contract's "
               f"loop: the updates differ by {100 * diff_g:.3g}% (generator) and {100 * diff_d:.3g}% "
               f"(discriminator), tolerance {100 * tol:g}%. Every correct loop gives the same result here, "
               "whatever the order of its random draws, fresh or reused z, detach or no_grad. Check: one Adam per "
               "network (lr, betas=(0.5, 0.999)); each step the discriminator first, on "
               "discriminator_loss(real_logits, fake_logits) with the fakes detached, then the generator on "
               "generator_loss(fake_logits, kind=\"non_saturating\"); zero_grad() before each backward(). "
               + LOSSES_MAY_FOLLOW)
    return Verdict(False, message, expected=f"differences <= {tol:g}", got=f"{diff_g:.3g} (G), {diff_d:.3g} (D)",
                   diagnosis=name or "update_rule_differs", explanation=why or "", case=case.id)


def judge_loss_history(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = _case(check, MAIN_ID)
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    d, g, why = histories(value, case.extra["steps"])
    if why:
        return Verdict(False, why, diagnosis="history_malformed", case=case.id)
    for key, arr in (("d_loss", d), ("g_loss", g)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            return Verdict(False, f"{key} is {fmt(float(arr[bad[0]]))} at step {bad[0]} ({bad.size} non-finite "
                                  f"entries): the training diverged. " + LOSSES_MAY_FOLLOW,
                           diagnosis="training_diverged", case=case.id)
    if (g < -1e-6).any():
        late = late_mean(g)
        minimax = late > -HALF_LOG2
        name = "generator_minimax_loss" if minimax else "generator_loss_sign_flipped"
        explanation = dict((n, e) for n, e, _ in PROBE_MISTAKES)[name]
        return Verdict(False, f"g_loss is negative at {int((g < -1e-6).sum())} of {g.size} steps (late mean "
                              f"{late:.4g}); the non-saturating loss -1/2 E log D(G(z)) is always >= 0. "
                              + LOSSES_MAY_FOLLOW, expected="g_loss >= 0 at every step",
                       got=f"min {fmt(float(g.min()))}", diagnosis=name, explanation=explanation, case=case.id)
    if (d < -1e-6).any():
        name = "discriminator_loss_sign_flipped"
        return Verdict(False, f"d_loss is negative at {int((d < -1e-6).sum())} of {d.size} steps; the "
                              "discriminator's cross-entropy is always >= 0. " + LOSSES_MAY_FOLLOW,
                       expected="d_loss >= 0 at every step", got=f"min {fmt(float(d.min()))}", diagnosis=name,
                       explanation=dict((n, e) for n, e, _ in PROBE_MISTAKES)[name], case=case.id)
    return Verdict(True, f"one finite, non-negative float per step in d_loss and g_loss ({d.size} steps)")


def _signature(value: dict, steps: int) -> tuple[str | None, str]:
    """A mistake suggested by the late losses alone (used only when the probe did not run)."""
    d, g, why = histories(value, steps)
    if why or not (np.isfinite(d).all() and np.isfinite(g).all()):
        return None, ""
    late_d, late_g = late_mean(d), late_mean(g)
    if late_d < 0.05 and abs(late_g) < 0.05:
        return "fakes_called_real", ("Both logged losses end near 0: the networks agree that the generated samples "
                                     "are real (or that they are fake, and the generator wants that). Typical "
                                     "causes: real and fake swapped in the discriminator's loss, the discriminator "
                                     "stepped on the generator's loss, or the generator trained with label 0.")
    if max(late_d, late_g) > 1.5:
        return "losses_grow", ("The logged losses end far above log 2 = 0.69, the value of an undecided "
                               "discriminator: typical of gradients accumulating across steps (zero_grad() "
                               "missing, or called after backward()).")
    return None, ""


UPDATE_RULE_DIFFERS = ("On the probe, your loop does not move the networks as the contract's loop does, and no "
                       "catalogued mistake explains it (see the update_rule check).")
RULE_IS_RIGHT = ("Your loop moves the networks exactly as the contract's loop does (the probe passed), so the "
                 "difference comes from what it optimises: your discriminator_loss/generator_loss (if they failed "
                 "their checks), or, rarely, an unlucky run.")


def diagnose(rubric: Rubric, check: Check, outcomes: dict[str, Outcome], value: dict, steps: int,
             passed_rule: str, passed_text: str) -> tuple[str | None, str]:
    """Why the samples or the loss levels are off: the probe's verdict first (a catalogued mistake,
    an unexplained update rule, or a right one), the late losses' signature when it did not run."""
    probe = outcomes.get(PROBE_ID)
    probe_case = next((c for c in check.cases if c.id == PROBE_ID), None)
    if probe is not None and probe_case is not None and probe.status == "ok" and probe.value \
            and "raised" not in probe.value:
        try:
            diff_g, diff_d, name, explanation = _probe_diagnosis(probe.value, probe_case, rubric)
        except ValueError:
            return None, ""
        if name is not None:
            return name, explanation
        if max(diff_g, diff_d) > load_settings(rubric).probe_tolerance:
            return "update_rule_differs", UPDATE_RULE_DIFFERS
        return passed_rule, passed_text
    return _signature(value, steps)


def judge_loss_levels(rubric: Rubric, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    _, region, stats = _context(rubric)
    case = _case(check, MAIN_ID)
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    d, g, why = histories(value, case.extra["steps"])
    if why:
        return Verdict(False, why, case=case.id)
    late = {"late_d_loss": late_mean(d), "late_g_loss": late_mean(g)}
    if all(region[k].contains(v) for k, v in late.items()):
        return Verdict(True, f"late losses d = {late['late_d_loss']:.4g}, g = {late['late_g_loss']:.4g} are where the "
                             "reference loop's are")
    ref = {k: float(np.median(stats["metrics"][k]["values"])) for k in late}
    ratio = {k: late[k] / ref[k] for k in late}
    name, explanation = diagnose(rubric, check, outcomes, value, case.extra["steps"], "losses_off", RULE_IS_RIGHT)
    if name in (None, "losses_off", "losses_grow") and min(ratio.values()) > 1.5 \
            and 0.6 < ratio["late_d_loss"] / ratio["late_g_loss"] < 1.6:
        name = "losses_scaled"
        explanation = (f"Both logged losses are about {math.sqrt(ratio['late_d_loss'] * ratio['late_g_loss']):.3g} "
                       "times the reference's: a constant factor in your losses (2: the 1/2 is missing; the batch "
                       "size: a sum instead of a mean). Adam hardly notices a constant factor, so your samples may "
                       "still be fine, but the contract asks for the losses as defined.")
    lines = [f"late in training (mean over the last {LATE_FRACTION:.0%} of the steps) your losses are "
             f"d_loss = {late['late_d_loss']:.4g} and g_loss = {late['late_g_loss']:.4g};",
             f"the acceptance region is d_loss {region['late_d_loss'].text()} ({region['late_d_loss'].how}) and "
             f"g_loss {region['late_g_loss'].text()} ({region['late_g_loss'].how}).", LOSSES_MAY_FOLLOW]
    return Verdict(False, "\n".join(lines),
                   expected=f"d {region['late_d_loss'].text()}, g {region['late_g_loss'].text()}",
                   got=f"d {late['late_d_loss']:.4g}, g {late['late_g_loss']:.4g}", diagnosis=name,
                   explanation=explanation or "", case=case.id)


def judge_statistic(rubric: Rubric, check_name: str, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    _, region, stats = _context(rubric)
    statistic, what = STATISTICS[check_name]
    case = _case(check, MAIN_ID)
    value, reason = _usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    evaluation, why = evaluate_outcome(value, case, grading_seeds(rubric)["eval"])
    if why:
        return Verdict(False, why, case=case.id)
    got = float(evaluation.stats[statistic])
    bound = region[statistic]
    ref = stats["metrics"][statistic]
    summary = (f"{what}: {got:.4g} from {len(evaluation.samples)} samples of your trained generator; "
               f"acceptance {bound.text()} ({bound.how}); reference seeds: median "
               f"{float(np.median(ref['values'])):.4g}")
    if check_name == "ring_distance":
        summary += "; " + modes_note(evaluation.stats, stats)
    if bound.contains(got):
        return Verdict(True, summary)
    name, explanation = diagnose(rubric, check, outcomes, value, case.extra["steps"], "did_not_learn_ring",
                                 RULE_IS_RIGHT)
    if name is None:
        name, explanation = "did_not_learn_ring", ("The generated samples are not where a correct loop puts them "
                                                   "after the same training.")
    return Verdict(False, f"{summary}.\n{LOSSES_MAY_FOLLOW}", expected=bound.text(), got=f"{got:.4g}",
                   diagnosis=name, explanation=explanation, case=case.id)


def modes_note(got: dict[str, float], stats: dict) -> str:
    """Modes covered, for information: at the grading budget it earns no points (see the rubric)."""
    ref = np.asarray(stats["metrics"]["modes_covered"]["values"], dtype=np.float64)
    return (f"modes covered: {got['modes_covered']:.0f} of 8 (reference seeds at this budget: "
            f"{ref.min():.0f} to {ref.max():.0f}, median {np.median(ref):.0f}; not graded)")


# ------------------------------------------------------------------------------------ the suite
def build_cases(rubric: Rubric) -> tuple[Case, Case]:
    """The probe call and the ring call, with every seed and the budget fixed by the rubric."""
    settings = load_settings(rubric)
    seeds = grading_seeds(rubric)
    common = dict(batch_size=settings.batch_size, lr=settings.lr, seeds=seeds)
    g, d = ring_networks(seeds["init"])
    main = Case(MAIN_ID, FUNCTION, kind="train_gan", extra=_call_extra(
        g, d, ring_data(), steps=settings.steps, wall_s=settings.wall_s, cpu_s=settings.cpu_s, **common))
    pg, pd = probe_networks(seeds["probe"])
    probe = Case(PROBE_ID, FUNCTION, kind="train_gan", extra=_call_extra(
        pg, pd, probe_data(), steps=settings.probe_steps, wall_s=10.0, cpu_s=10.0, **common))
    return probe, main


def build_suite(rubric: Rubric) -> Suite:
    """The ``train_gan`` suite: the checks of ``[points.train_gan]``, in the rubric's order."""
    _context(rubric)  # fail now, with a clear message, if the settings or the statistics do not fit
    probe, main = build_cases(rubric)
    judges = {
        "trains": (judge_trains, (probe, main), "both networks are updated and come back finite, with the reference's "
                   "layers", ("ring_distance",)),
        "update_rule": (partial(judge_update_rule, rubric), (probe,), "one Adam step per network per step, on the "
                        "contract's losses (a deterministic probe)", ("trains", "ring_distance")),
        "loss_history": (partial(judge_loss_history, rubric), (main,), "d_loss and g_loss: one finite, "
                         "non-negative float per step", ("trains", "ring_distance")),
        "loss_levels": (partial(judge_loss_levels, rubric), (main, probe), "late-training losses where the reference "
                        "loop's are", ("trains", "loss_history", "ring_distance")),
        "ring_distance": (partial(judge_statistic, rubric, "ring_distance"), (main, probe), "generated samples "
                          "close to the ring (energy distance)", ("trains",)),
        "sample_quality": (partial(judge_statistic, rubric, "sample_quality"), (main, probe), "fraction of "
                           "samples close to a mode", ("trains", "ring_distance")),
    }
    points = rubric.points[FUNCTION]
    unknown = sorted(set(points) - set(judges))
    if unknown:
        raise KeyError(f"[points.train_gan] lists {unknown}, for which the grader has no checks")
    checks = tuple(Check(FUNCTION, name, desc, cases, judge, requires)
                   for name, (judge, cases, desc, requires) in judges.items() if name in points)
    return Suite(FUNCTION, checks)


# ------------------------------------------------------------------------------------ the picture
_REFERENCE_SAMPLES: dict[tuple, np.ndarray] = {}


def reference_samples(rubric: Rubric) -> np.ndarray:
    """Samples of the reference workhouse trained from the grading's own start (same initial
    weights, data, rng seed and budget), evaluated like a student's; computed once per process."""
    settings, seeds = load_settings(rubric), grading_seeds(rubric)
    key = (settings.budget, tuple(sorted(seeds.items())))
    with _LOCK:
        if key not in _REFERENCE_SAMPLES:
            g, d = ring_networks(seeds["init"])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seeds["torch"])
                reference_train_gan(g, d, ring_data(), steps=settings.steps, batch_size=settings.batch_size,
                                    lr=settings.lr, latent_dim=GAN_CONFIGS[CONFIG].latent_dim,
                                    rng=torch.Generator().manual_seed(seeds["rng"]))
            samples, _ = evaluate(g, seeds["eval"])
            _REFERENCE_SAMPLES[key] = samples.numpy()
        return _REFERENCE_SAMPLES[key]


def plot_data(outcome: Outcome | None, rubric: Rubric) -> dict | None:
    """The arguments of ``grader.workhouse_plots.write_workhouse_png`` for one student's ring call
    (``sandbox_result.calls[MAIN_ID]``), or None when there is nothing to draw."""
    if outcome is None or outcome.status != "ok" or not outcome.value or "raised" in outcome.value:
        return None
    _, main = build_cases(rubric)
    evaluation, why = evaluate_outcome(outcome.value, main, grading_seeds(rubric)["eval"])
    if why:
        return None
    d, g, why = histories(outcome.value, main.extra["steps"])
    return {"student_samples": evaluation.samples, "reference_samples": reference_samples(rubric),
            "d_loss": d if d is not None else np.zeros(0), "g_loss": g if g is not None else np.zeros(0)}
