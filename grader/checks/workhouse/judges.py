"""The judges of the train_gan checks: each turns the sandbox's raw report into a verdict, with
everything from the rubric loaded once per suite (``settings.Context``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from grader.checks.base import Case, Check, Outcome, Verdict
from grader.checks.workhouse.catalogue import EXPLANATIONS
from grader.checks.workhouse.networks import initial_state, trained_networks
from grader.checks.workhouse.probe import probe_diagnosis
from grader.checks.workhouse.reading import case_of, evaluate_outcome, histories, returned_state, usable
from grader.checks.workhouse.settings import MAIN_ID, PROBE_ID, Bound, Context
from grader.compare import fmt
from reference.workhouse_stats import LATE_FRACTION, LOSS_ROWS, late_mean, moved, network_losses

HALF_LOG2 = 0.5 * math.log(2.0)
LOSSES_MAY_FOLLOW = ("If your discriminator_loss/generator_loss failed their checks, this may follow from them.")
STATISTICS = {  # check name -> (statistic, what it is, for messages)
    "ring_distance": ("ring_distance", "energy distance between your samples and the ring"),
}


def _entry_moves(state: dict[str, np.ndarray], initial: dict[str, np.ndarray]) -> dict[str, float]:
    """Per ``state_dict`` entry, the fraction of its values that changed (``moved`` takes the least)."""
    return {k: moved({k: state[k]}, {k: initial[k]}) for k in initial}


def judge_trains(ctx: Context, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    """Both networks trained, every layer of them: in each ``state_dict`` entry, the fraction of values
    that changed is within the region's ``generator_moved`` / ``discriminator_moved`` bound (from the
    least-changed entry of the reference seeds' networks)."""
    case = case_of(check, MAIN_ID)
    value, reason = usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    least = {}
    for which in ("generator", "discriminator"):
        state, why = returned_state(value, case, which)
        if why:
            return Verdict(False, why, diagnosis="weights_invalid" if "nan" not in why else "training_diverged",
                           explanation="", case=case.id)
        initial = initial_state(case, which)
        if all(np.array_equal(state[k], initial[k]) for k in initial):
            name = f"{which}_not_updated"
            return Verdict(False, f"after {case.extra['steps']} steps every weight of the {which} still equals "
                                  "its initial value", expected=f"the {which} trained", got="unchanged weights",
                           diagnosis=name, explanation=EXPLANATIONS[name], case=case.id)
        bound = ctx.region[f"{which}_moved"]
        moves = _entry_moves(state, initial)
        stuck = [k for k, v in moves.items() if not bound.contains(v)]
        if stuck:
            name = f"{which}_layers_not_trained"
            listed = ", ".join(f"{k} ({moves[k]:.2g})" for k in stuck[:4])
            return Verdict(False, f"after {case.extra['steps']} steps some entries of the {which}'s state_dict "
                                  f"hardly changed: {listed} of their values changed; the fraction must be "
                                  f"{bound.text()} for every entry ({bound.how})",
                           expected=f"every entry {bound.text()}", got=listed, diagnosis=name,
                           explanation=EXPLANATIONS[name], case=case.id)
        least[which] = min(moves.values())
    return Verdict(True, "both networks were updated in place, every layer of them (least fraction of an entry's values changed: "
                         f"generator {least['generator']:.3g}, discriminator {least['discriminator']:.3g}), and came "
                         "back finite, with the reference's layers")


def judge_update_rule(ctx: Context, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = case_of(check, PROBE_ID)
    value, reason = usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    try:
        diff_g, diff_d, name, why = probe_diagnosis(value, case, ctx)
    except ValueError as exc:
        return Verdict(False, f"on the probe run: {exc}", case=case.id)
    tol = ctx.settings.probe_tolerance
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


def judge_loss_history(ctx: Context, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    case = case_of(check, MAIN_ID)
    value, reason = usable(case, outcomes)
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
        explanation = EXPLANATIONS[name]
        return Verdict(False, f"g_loss is negative at {int((g < -1e-6).sum())} of {g.size} steps (late mean "
                              f"{late:.4g}); the non-saturating loss -1/2 E log D(G(z)) is always >= 0. "
                              + LOSSES_MAY_FOLLOW, expected="g_loss >= 0 at every step",
                       got=f"min {fmt(float(g.min()))}", diagnosis=name, explanation=explanation, case=case.id)
    if (d < -1e-6).any():
        name = "discriminator_loss_sign_flipped"
        return Verdict(False, f"d_loss is negative at {int((d < -1e-6).sum())} of {d.size} steps; the "
                              "discriminator's cross-entropy is always >= 0. " + LOSSES_MAY_FOLLOW,
                       expected="d_loss >= 0 at every step", got=f"min {fmt(float(d.min()))}", diagnosis=name,
                       explanation=EXPLANATIONS[name], case=case.id)
    agreement, why = loss_agreement(ctx, case, value, d, g)
    if why:
        return Verdict(False, why, case=case.id)
    off = {k: a for k, a in agreement.items() if not a.ok}
    if off:
        name, explanation = scaled_losses({k: a.factor for k, a in off.items()}, case.extra["batch_size"])
        if name == "losses_not_of_the_networks":   # a catalogued mistake of the loop explains it better
            named, why_named = diagnose(ctx, check, outcomes, value, case.extra["steps"], name, explanation,
                                        signature=False)
            if named not in (None, "update_rule_differs"):
                name, explanation = named, why_named
        lines = [f"{k}: your late mean {a.late:.4g}, the contract's loss of your returned networks {a.final:.4g} "
                 f"(computed by the grader on {LOSS_ROWS} rows and z of its own): ratio {a.ratio:.3g}, acceptance "
                 f"{a.bound.text()} ({a.bound.how})" for k, a in agreement.items()]
        return Verdict(False, "The losses you report do not match the networks you return.\n" + "\n".join(lines),
                       expected="; ".join(f"{k} ratio {a.bound.text()}" for k, a in agreement.items()),
                       got="; ".join(f"{k} ratio {a.ratio:.3g}" for k, a in agreement.items()),
                       diagnosis=name, explanation=explanation, case=case.id)
    return Verdict(True, f"one finite, non-negative float per step in d_loss and g_loss ({d.size} steps), and "
                         "late in training they are the losses of the networks you return (ratio d "
                         f"{agreement['d_loss'].ratio:.3g}, g {agreement['g_loss'].ratio:.3g})")


@dataclass(frozen=True)
class Agreement:
    """One reported loss against the grader's own measurement of it at the returned weights."""

    late: float       # the late mean of the reported list
    final: float      # the contract's loss of the returned networks (``network_losses``)
    ratio: float      # late / final
    factor: float     # ratio / the reference seeds' median ratio: the loss's scale, as reported
    bound: Bound
    ok: bool


def loss_agreement(ctx: Context, case: Case, value: dict, d: np.ndarray, g: np.ndarray
                   ) -> tuple[dict[str, Agreement] | None, str | None]:
    """The reported late losses against the contract's losses of the returned networks, computed
    here on the grader's own batch (``reference.workhouse_stats.network_losses``, seed: the
    evaluation seed + 1); each ratio must fall in the region's ``*_loss_agreement`` bound."""
    states = {}
    for which in ("generator", "discriminator"):
        states[which], why = returned_state(value, case, which)
        if why:
            return None, why
    generator, discriminator = trained_networks(states["generator"], states["discriminator"])
    data = torch.from_numpy(np.asarray(case.extra["data"], dtype=np.float32))
    final = dict(zip(("d_loss", "g_loss"), network_losses(generator, discriminator, data, ctx.seeds["eval"] + 1)))
    out = {}
    for key, values in (("d_loss", d), ("g_loss", g)):
        stat = f"{key[0]}_loss_agreement"
        late = late_mean(values)
        ratio = late / final[key] if final[key] > 0 else math.inf
        median = float(np.median(ctx.stats["metrics"][stat]["values"]))
        bound = ctx.region[stat]
        out[key] = Agreement(late, final[key], ratio, ratio / median, bound, bound.contains(ratio))
    return out, None


#: Constant factors a reported loss may carry, and what each means.
_FACTORS = ((2.0, "the contract's 1/2 is missing"), (0.5, "an extra 1/2"))


def scaled_losses(factors: dict[str, float], batch_size: int) -> tuple[str, str]:
    """The diagnosis of reported losses off by ``factors`` (per loss key, against the networks' or
    the reference's): which loss is off, by what factor, and the likely cause."""
    known = (*_FACTORS, (float(batch_size), "a sum over the batch instead of a mean"),
             (1.0 / batch_size, "a mean where the loss is one"))

    def constant(f: float) -> tuple[float, str] | None:
        if not (math.isfinite(f) and f > 0):
            return None
        k, words = min(known, key=lambda kw: abs(math.log(f / kw[0])))
        # a factor 1.5 either way: a correct loop's late/final ratio spreads that far (its g_loss_agreement)
        return (k, words) if abs(math.log(f / k)) <= math.log(1.5) else None

    def cause(f: float) -> str:
        found = constant(f)
        if found is None:
            return "not a known constant: log each step's loss.item(), as the contract defines the loss"
        return f"{found[1]}: x{found[0]:g}"

    words = {"d_loss": "discriminator_loss", "g_loss": "generator_loss"}
    parts = [f"your {k} is about {f:.3g} times the contract's {words[k]} ({cause(f)})" for k, f in factors.items()]
    parts[0] = "Y" + parts[0][1:]
    if len(factors) == 2:
        name = "losses_scaled"
    else:
        name = "generator_loss_scaled" if "g_loss" in factors else "discriminator_loss_scaled"
    tail = (" Adam hardly notices a constant factor, so your samples may still be fine, but the contract asks "
            "for the losses as defined (and the history as those losses).")
    found = {constant(f) for f in factors.values()}
    if None not in found and len(found) == 1:   # one constant, on one loss or on both
        return name, "; ".join(parts) + "." + tail
    return "losses_not_of_the_networks", ("; ".join(parts) + ": the reported lists are not the "
                                          "losses of the networks you return." + tail)


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


def diagnose(ctx: Context, check: Check, outcomes: dict[str, Outcome], value: dict, steps: int,
             passed_rule: str, passed_text: str, signature: bool = True) -> tuple[str | None, str]:
    """Why the samples or the loss levels are off: the probe's verdict first (a catalogued mistake,
    an unexplained update rule, or a right one), the late losses' signature when it did not run."""
    probe = outcomes.get(PROBE_ID)
    probe_case = next((c for c in check.cases if c.id == PROBE_ID), None)
    if probe is not None and probe_case is not None and probe.status == "ok" and probe.value \
            and "raised" not in probe.value:
        try:
            diff_g, diff_d, name, explanation = probe_diagnosis(probe.value, probe_case, ctx)
        except ValueError:
            return None, ""
        if name is not None:
            return name, explanation
        if max(diff_g, diff_d) > ctx.settings.probe_tolerance:
            return "update_rule_differs", UPDATE_RULE_DIFFERS
        return passed_rule, passed_text
    return _signature(value, steps) if signature else (None, "")


def judge_loss_levels(ctx: Context, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    region, stats = ctx.region, ctx.stats
    case = case_of(check, MAIN_ID)
    value, reason = usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    d, g, why = histories(value, case.extra["steps"])
    if why:
        return Verdict(False, why, case=case.id)
    late = {"late_d_loss": late_mean(d), "late_g_loss": late_mean(g)}
    if all(region[k].contains(v) for k, v in late.items()):
        return Verdict(True, f"late losses d = {late['late_d_loss']:.4g}, g = {late['late_g_loss']:.4g} are where the "
                             "reference loop's are")
    name, explanation = diagnose(ctx, check, outcomes, value, case.extra["steps"], "losses_off", RULE_IS_RIGHT)
    agreement, _ = loss_agreement(ctx, case, value, d, g)
    off = {k: a.factor for k, a in (agreement or {}).items() if not a.ok}
    if not off and agreement is None:   # the weights are unusable: the levels against the reference's
        ref = {k: float(np.median(stats["metrics"][f"late_{k}"]["values"])) for k in ("d_loss", "g_loss")}
        off = {k: late[f"late_{k}"] / ref[k] for k in ref if not region[f"late_{k}"].contains(late[f"late_{k}"])
               and late[f"late_{k}"] / ref[k] > 1.5}
        if name not in (None, "losses_off", "losses_grow"):
            off = {}
    if off:
        scaled, words = scaled_losses(off, case.extra["batch_size"])
        if scaled != "losses_not_of_the_networks" or name in (None, "losses_off", "update_rule_differs"):
            name, explanation = scaled, words
    lines = [f"late in training (mean over the last {LATE_FRACTION:.0%} of the steps) your losses are "
             f"d_loss = {late['late_d_loss']:.4g} and g_loss = {late['late_g_loss']:.4g};",
             f"the acceptance region is d_loss {region['late_d_loss'].text()} ({region['late_d_loss'].how}) and "
             f"g_loss {region['late_g_loss'].text()} ({region['late_g_loss'].how}).", LOSSES_MAY_FOLLOW]
    return Verdict(False, "\n".join(lines),
                   expected=f"d {region['late_d_loss'].text()}, g {region['late_g_loss'].text()}",
                   got=f"d {late['late_d_loss']:.4g}, g {late['late_g_loss']:.4g}", diagnosis=name,
                   explanation=explanation or "", case=case.id)


def judge_statistic(ctx: Context, check_name: str, check: Check, outcomes: dict[str, Outcome]) -> Verdict:
    region, stats = ctx.region, ctx.stats
    statistic, what = STATISTICS[check_name]
    case = case_of(check, MAIN_ID)
    value, reason = usable(case, outcomes)
    if reason:
        return Verdict(False, reason, case=case.id)
    evaluation, why = evaluate_outcome(value, case, ctx.seeds["eval"])
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
    name, explanation = diagnose(ctx, check, outcomes, value, case.extra["steps"], "did_not_learn_ring",
                                 RULE_IS_RIGHT)
    if name is None:
        name, explanation = "did_not_learn_ring", ("The generated samples are not where a correct loop puts them "
                                                   "after the same training.")
    return Verdict(False, f"{summary}.\n{LOSSES_MAY_FOLLOW}", expected=bound.text(), got=f"{got:.4g}",
                   diagnosis=name, explanation=explanation, case=case.id)


def modes_note(got: dict[str, float], stats: dict) -> str:
    """Modes covered and the high-quality fraction, for information: at the grading budget neither
    separates a correct loop from a broken one, so neither earns points (see the rubric)."""
    ref = np.asarray(stats["metrics"]["modes_covered"]["values"], dtype=np.float64)
    note = (f"modes covered: {got['modes_covered']:.0f} of 8 (reference seeds at this budget: "
            f"{ref.min():.0f} to {ref.max():.0f}, median {np.median(ref):.0f}; not graded)")
    if "high_quality_fraction" in got:
        hq = np.asarray(stats["metrics"]["high_quality_fraction"]["values"], dtype=np.float64)
        note += (f"; fraction of samples within 3 std of a mode: {got['high_quality_fraction']:.3g} (reference "
                 f"seeds: {hq.min():.3g} to {hq.max():.3g}; not graded)")
    return note
