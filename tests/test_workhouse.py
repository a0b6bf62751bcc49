"""The ``train_gan`` (GAN workhouse) check: its settings and statistics, its judges on synthetic
outcomes, trusted loops run in-process (correct styles pass, each classic mistake is caught and
named), the picture, and one sandboxed end-to-end run.

Every loop run in this process is our own (``tests/workhouse_loops.py``, the reference);
the end-to-end test writes its submissions into a temporary folder and runs them only through
``SandboxPool``.
"""
from __future__ import annotations

import dataclasses
import math
import textwrap

import numpy as np
import pytest
import torch

from engine_helpers import FakeOutcome, run_trusted
from workhouse_loops import CORRECT, MISTAKES
from grader.checks import workhouse
from grader.checks.base import Suite
from grader.rubric import DEFAULT_RUBRIC as ROOT_RUBRIC
from grader.rubric import load_rubric
from grader.sandbox import Limits, SandboxPool
from grader.sandbox.calls import CallError
from grader.sandbox.workhouse_calls import build_network, describe_history, report_state
from grader.scoring import judge_suite, score_suite
from grader.workhouse_plots import render_workhouse_png, write_workhouse_png
from reference.workhouse import train_gan as reference_train_gan

RUBRIC = load_rubric()
SUITE = workhouse.build_suite(RUBRIC)
CHECKS = {c.name: c for c in SUITE.checks}
PROBE, MAIN = workhouse.build_cases(RUBRIC)
SETTINGS = workhouse.load_settings(RUBRIC)
STEPS = SETTINGS.steps


def only(*names: str) -> Suite:
    """Some of the suite's checks, judged on their own (their gates among them kept)."""
    return Suite(workhouse.FUNCTION, tuple(dataclasses.replace(CHECKS[n], requires=tuple(
        r for r in CHECKS[n].requires if r in names)) for n in names))


def judge(name: str, value: dict | None, status: str = "ok", error: str = "", case=MAIN):
    check = CHECKS[name]
    outcomes = {case.id: FakeOutcome(case.id, status, value, error)}
    return check.judge(check, outcomes)


# ---------------------------------------------------------------------------- settings and stats
def test_the_committed_statistics_match_the_rubrics_budget():
    stats = workhouse.reference_stats(SETTINGS)
    assert (stats["steps"], stats["batch_size"], stats["lr"]) == SETTINGS.budget
    assert len(stats["seeds"]) >= 20
    for name in ("modes_covered", "high_quality_fraction", "ring_distance", "late_d_loss", "late_g_loss",
                 "final_d_loss", "final_g_loss", "d_loss_agreement", "g_loss_agreement", "generator_moved",
                 "discriminator_moved"):
        assert len(stats["metrics"][name]["values"]) == len(stats["seeds"])
    assert RUBRIC.max_score("train_gan") == 10
    assert [c.name for c in SUITE.checks] == list(RUBRIC.points["train_gan"])


def test_settings_come_from_the_rubric_in_use(tmp_path):
    text = (ROOT_RUBRIC.read_text("utf-8").replace("steps = 700", "steps = 701"))
    other = tmp_path / "rubric.toml"
    other.write_text(text, "utf-8")
    assert workhouse.load_settings(load_rubric(other)).steps == 701
    start = text.index("[workhouse]")
    bare = tmp_path / "bare.toml"
    bare.write_text(text[:start], "utf-8")
    with pytest.raises(KeyError, match=r"no \[workhouse\] section"):
        workhouse.build_suite(load_rubric(bare))


def test_the_settings_and_cases_are_built_once_per_suite_however_many_pictures(monkeypatch):
    """build_suite reads the settings once; the picture of every submission uses the suite's own
    ring case and seeds (nothing is rebuilt per submission), and a rubric whose suite was not built
    in this process is built once, at its first picture."""
    from collections import Counter

    from grader.checks.workhouse import picture, settings, suite

    calls: Counter = Counter()

    def count(module, name):
        real = getattr(module, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, counted)

    for module in (settings, suite, picture):
        for name in ("load_settings", "load_context", "build_cases", "reference_stats", "ring_data", "ring_networks",
                     "probe_networks"):
            if hasattr(module, name):
                count(module, name)
    seen = []
    monkeypatch.setattr(picture, "evaluate_outcome", lambda value, case, seed: (seen.append((case, seed)), (None, "x"))[1])
    value = {"generator": {"state": {}, "problems": []}, "history": {}}

    for offset, build_first in ((1, True), (2, False)):   # rubrics no other test built a suite of
        rubric = dataclasses.replace(RUBRIC, seed=RUBRIC.seed + offset)
        calls.clear()
        seen.clear()
        if build_first:
            built = workhouse.build_suite(rubric)
            assert calls["load_settings"] == 1 and calls["ring_data"] == 1, calls
        before = None
        for student in range(4):
            assert workhouse.plot_data(FakeOutcome(workhouse.MAIN_ID, "ok", value), rubric) is None
            before = before or Counter(calls)
            assert calls == before, "a picture rebuilt the settings or the cases"
        assert calls["load_settings"] == 1 and calls["ring_data"] == 1 and calls["ring_networks"] == 1, calls
        ctx, _, main = workhouse.suite_parts(rubric)
        assert all(case is main and seed == ctx.seeds["eval"] for case, seed in seen) and len(seen) == 4
        if build_first:
            assert main in next(c for c in built.checks if c.name == "ring_distance").cases


def test_the_workhouse_checks_are_a_package_one_module_per_job():
    import ast
    import pkgutil
    from pathlib import Path

    assert hasattr(workhouse, "__path__"), "grader.checks.workhouse is one module again"
    jobs = {"settings", "networks", "catalogue", "probe", "reading", "judges", "suite", "picture"}
    assert jobs <= {m.name for m in pkgutil.iter_modules(workhouse.__path__)}
    # the package's __init__ only re-exports: every job's code lives in its own module
    tree = ast.parse(Path(workhouse.__file__).read_text("utf-8"))
    assert [type(node).__name__ for node in tree.body
            if not isinstance(node, (ast.Expr, ast.ImportFrom, ast.Import))] == []


def test_the_network_spec_has_one_home_shared_with_the_sandbox():
    """The layer table and the describing code live in grader.sandbox.workhouse_calls only: the
    grader describes its networks with the very function the sandbox's rebuilding mirrors."""
    from pathlib import Path

    from grader.checks.workhouse import networks
    from grader.sandbox import workhouse_calls
    from reference.workhouse_stats import ring_networks

    assert networks.describe_network is workhouse_calls.describe_network
    assert networks.network_spec.__code__.co_names == ("describe_network",)   # a wrapper, nothing else
    for which, net in zip(("generator", "discriminator"), ring_networks(0)):
        spec, flat = workhouse_calls.describe_network(net)
        assert MAIN.extra[which] == spec and {layer["type"] for layer in spec["layers"]} <= set(workhouse_calls.LAYERS)
        rebuilt = build_network(MAIN.extra[which], MAIN.extra[f"{which}_weights"])
        assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == \
            [(k, v.shape) for k, v in net.state_dict().items()]
    # no second layer table (or spec writer) anywhere else in the grader
    grader_dir = Path(workhouse_calls.__file__).resolve().parents[1]
    words = ("negative_slope", "in_features", "leaky_relu", "nn.Linear", "nn.LeakyReLU", "def describe_layer",
             "def describe_network", "def build_layer")
    others = {str(path.relative_to(grader_dir)): [w for w in words if w in path.read_text("utf-8")]
              for path in grader_dir.rglob("*.py") if path.name != "workhouse_calls.py"}
    assert {path: found for path, found in others.items() if found} == {}


def test_every_trusted_loop_is_written_out_as_a_plain_training_loop():
    """Each loop of tests/workhouse_loops.py is its own code, written as real code makes its
    mistake: a module-level function, no closure over knobs, no call of another loop or of a
    shared knob loop (the grader's ``knob_loop`` or a twin of it); only ``_adam`` and ``_batch``."""
    import inspect

    import workhouse_loops

    helpers = {name for name, f in vars(workhouse_loops).items()
               if inspect.isfunction(f) and f.__module__ == workhouse_loops.__name__}
    loops = {**CORRECT, **{name: loop for name, (loop, _) in MISTAKES.items()}}
    for name, loop in loops.items():
        assert inspect.isfunction(loop) and loop.__module__ == workhouse_loops.__name__, name
        assert "<locals>" not in loop.__qualname__ and loop.__closure__ is None, (name, loop.__qualname__)
        assert getattr(workhouse_loops, loop.__name__) is loop, name
        called = set(loop.__code__.co_names)
        assert called & helpers <= {"_adam", "_batch"} and "knob_loop" not in called, (name, called & helpers)
        source = inspect.getsource(loop)
        assert "for _ in range(steps):" in source and ".backward(" in source, name
    assert len(set(loops.values())) == len(loops)   # no loop stands in for two entries


def test_modes_covered_and_sample_quality_are_reported_but_not_graded():
    """Neither can fail for a mistake without failing correct loops: the high-quality fraction of
    correct runs goes down to 1 sample in 2000 (benchmarks/WORKHOUSE.md)."""
    for name in ("modes_covered", "sample_quality", "high_quality_fraction"):
        assert name not in RUBRIC.points["train_gan"]
        assert name not in {n for n, _, _ in SETTINGS.region}
    assert "sample_quality" not in CHECKS
    note = workhouse.modes_note({"modes_covered": 5.0, "high_quality_fraction": 0.1}, workhouse.reference_stats(SETTINGS))
    assert note.startswith("modes covered: 5 of 8") and "not graded" in note
    assert "within 3 std of a mode: 0.1 " in note


STATS = {"seeds": [0, 1, 2], "metrics": {"m": {"values": [2.0, 4.0, 8.0]}}}


@pytest.mark.parametrize("rule, margin, lo, hi", [
    ("at_least", 0.5, 1.0, None),
    ("at_least_minus", 1.0, 1.0, None),
    ("at_most", 2.0, None, 16.0),
    ("within", 2.0, 1.0, 16.0),
])
def test_acceptance_region_rules(rule, margin, lo, hi):
    settings = dataclasses.replace(SETTINGS, region=(("m", rule, margin),))
    bound = workhouse.acceptance_region(STATS, settings)["m"]
    assert (bound.lo, bound.hi) == (lo, hi)
    assert not bound.contains(float("nan"))


def test_unknown_rule_and_mismatched_statistics_are_refused():
    with pytest.raises(ValueError, match="unknown rule"):
        workhouse.acceptance_region(STATS, dataclasses.replace(SETTINGS, region=(("m", "roughly", 1.0),)))
    with pytest.raises(ValueError, match="reference.workhouse_stats"):
        workhouse.reference_stats(dataclasses.replace(SETTINGS, steps=SETTINGS.steps + 1))


def test_the_calls_carry_plain_data_and_their_own_limits():
    for case in (PROBE, MAIN):
        call = case.call()
        assert call["kind"] == "train_gan" and call["wall_s"] > Limits().call_wall_s
        assert isinstance(call["generator_weights"], np.ndarray) and call["generator_weights"].dtype == np.float32
        assert call["generator"]["names"] == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
                                              "net.4.weight", "net.4.bias"]
    assert MAIN.extra["data"].shape == (10_000, 2) and MAIN.extra["steps"] == STEPS
    assert PROBE.extra["steps"] == SETTINGS.probe_steps
    assert (PROBE.extra["data"] == PROBE.extra["data"][0]).all()   # the probe's rows are one point


# ------------------------------------------------------------------------------ in-sandbox helpers
def test_networks_are_rebuilt_from_the_spec_with_the_graders_weights():
    net = build_network(MAIN.extra["generator"], MAIN.extra["generator_weights"])
    for name, value in workhouse.initial_state(MAIN, "generator").items():
        assert np.array_equal(net.state_dict()[name].numpy(), value.astype(np.float32))
    with pytest.raises(CallError, match="weights"):
        build_network(MAIN.extra["generator"], MAIN.extra["generator_weights"][:-1])


@pytest.mark.parametrize("entry, length, problem", [
    ([0.5, 1.0], 2, None),
    ((0.5, torch.tensor(1.0, requires_grad=True)), 2, None),
    (torch.tensor([0.5, 1.0]), 2, None),
    ("0.5, 1.0", -1, "not a list"),
    ([0.5, "x"], 2, "entry 1 is a builtins.str, not a number"),
    ([True], 1, "entry 0 is a builtins.bool, not a number"),
    (torch.zeros(2, 2), -1, "a 2-D Tensor of shape [2, 2], not a list"),
    ([0.0] * 10, 10, None),
])
def test_histories_are_reported_as_numbers_or_a_reason(entry, length, problem):
    out = describe_history(entry, max_length=10)
    assert (out["length"], out["problem"]) == (length, problem)
    if problem is None:
        assert out["values"].dtype == np.float64


def test_overlong_histories_and_odd_state_dicts_are_reported_not_shipped():
    assert describe_history([0.0] * 11, max_length=10)["problem"] == "11 entries"
    module = torch.nn.Linear(2, 2)
    module.register_buffer("steps_done", torch.tensor(3))
    report = report_state(module)
    assert report["problems"] == ["steps_done has dtype torch.int64"]
    assert sorted(report["state"]) == ["bias", "weight"]


# ----------------------------------------------------------------------- judges, synthetic outcomes
def outcome_value(generator=None, discriminator=None, d_loss=None, g_loss=None, returned="builtins.dict",
                  trained=None):
    """What the sandbox reports, built by hand: typical losses, and the initial weights moved by 0.1
    (or, with ``trained``, the weights of that real run)."""
    rng = np.random.default_rng(0)

    def moved(which):
        if trained is not None:
            return trained[which]["state"]
        return {k: v + 0.1 for k, v in workhouse.initial_state(MAIN, which).items()}

    def hist(values):
        values = np.asarray(values, dtype=np.float64)
        return {"type": "builtins.list", "length": values.size, "values": values, "problem": None}

    d_loss = 0.56 + 0.03 * rng.standard_normal(STEPS) if d_loss is None else d_loss
    g_loss = 0.58 + 0.03 * rng.standard_normal(STEPS) if g_loss is None else g_loss
    return {"returned": {"type": returned, "keys": ["d_loss", "g_loss"] if returned == "builtins.dict" else []},
            "history": {"d_loss": hist(d_loss), "g_loss": hist(g_loss)} if returned == "builtins.dict" else {},
            "generator": {"state": moved("generator") if generator is None else generator, "problems": []},
            "discriminator": {"state": moved("discriminator") if discriminator is None else discriminator,
                              "problems": []}}


def test_trains_names_the_network_that_never_moved():
    for which in ("generator", "discriminator"):
        verdict = judge("trains", outcome_value(**{which: workhouse.initial_state(MAIN, which)}))
        assert not verdict.passed and verdict.diagnosis == f"{which}_not_updated"
        assert f"every weight of the {which} still equals its initial value" in verdict.message
    assert judge("trains", outcome_value()).passed


@pytest.mark.parametrize("which, entry", [("generator", "net.0.weight"), ("discriminator", "net.4.bias"),
                                          ("discriminator", "net.2.weight")])
def test_trains_fails_when_one_weight_changed_or_one_layer_never_trained(which, entry):
    """A single weight changed used to pass; every state_dict entry must move as a correct loop's do."""
    initial = workhouse.initial_state(MAIN, which)
    one = {k: v.copy() for k, v in initial.items()}
    one[entry].reshape(-1)[0] += 0.5
    verdict = judge("trains", outcome_value(**{which: one}))
    assert not verdict.passed and verdict.diagnosis == f"{which}_layers_not_trained", verdict.message
    layer = {k: (v if k == entry else v + 0.1) for k, v in initial.items()}   # all moved but one entry
    verdict = judge("trains", outcome_value(**{which: layer}))
    assert not verdict.passed and verdict.diagnosis == f"{which}_layers_not_trained", verdict.message
    assert entry in verdict.message and "requires_grad" in verdict.explanation


def test_returned_weights_are_validated_strictly():
    good = {k: v + 1e-3 for k, v in workhouse.initial_state(MAIN, "generator").items()}
    nan = {**good, "net.4.bias": np.array([np.nan, 0.0])}
    wrong_shape = {**good, "net.4.bias": np.zeros(3)}
    missing = {k: v for k, v in good.items() if k != "net.4.bias"}
    extra = {**good, "net.5.weight": np.zeros(1)}
    for state, diagnosis, words in ((nan, "training_diverged", "nan or inf"),
                                    (wrong_shape, "weights_invalid", "has shape [3]"),
                                    (missing, "weights_invalid", "missing ['net.4.bias']"),
                                    (extra, "weights_invalid", "unexpected ['net.5.weight']")):
        verdict = judge("trains", outcome_value(generator=state))
        assert not verdict.passed and verdict.diagnosis == diagnosis and words in verdict.message, verdict.message
    value = outcome_value()
    value["discriminator"]["problems"] = ["the state_dict has 1000 entries"]
    assert "1000 entries" in judge("trains", value).message


@pytest.mark.parametrize("change, passed, diagnosis, words", [
    ({"returned": "builtins.list"}, False, "history_malformed", "returned a builtins.list, not a dict"),
    ({"d_loss": np.full(STEPS - 1, 0.5)}, False, "history_malformed", f"expected one per step ({STEPS})"),
    ({"d_loss": np.r_[np.full(STEPS - 1, 0.5), np.nan]}, False, "training_diverged", f"at step {STEPS - 1}"),
    ({"g_loss": np.full(STEPS, -0.24)}, False, "generator_minimax_loss", "always >= 0"),
    ({"g_loss": np.full(STEPS, -5.0)}, False, "generator_loss_sign_flipped", "always >= 0"),
    ({"d_loss": np.full(STEPS, -3.0)}, False, "discriminator_loss_sign_flipped", "always >= 0"),
])
def test_loss_history(change, passed, diagnosis, words):
    verdict = judge("loss_history", outcome_value(**change))
    assert (verdict.passed, verdict.diagnosis) == (passed, diagnosis)
    assert words in verdict.message
    if not passed and diagnosis != "history_malformed":
        assert workhouse.LOSSES_MAY_FOLLOW in verdict.message


@pytest.fixture(scope="module")
def reference_main(reference_run):
    return reference_run[workhouse.MAIN_ID].value


def _scaled(value, d=1.0, g=1.0):
    """The reference run's report with its loss lists multiplied by ``d`` and ``g``."""
    hist = {k: dict(v) for k, v in value["history"].items()}
    hist["d_loss"]["values"] = d * np.asarray(hist["d_loss"]["values"])
    hist["g_loss"]["values"] = g * np.asarray(hist["g_loss"]["values"])
    return {**value, "history": hist}


@pytest.mark.parametrize("d, g, diagnosis, words", [
    (1.0, 1.0, None, "they are the losses of the networks you return"),
    (1.0, 2.0, "generator_loss_scaled", "g_loss is about 2"),            # the generator's 1/2 missing
    (2.0, 1.0, "discriminator_loss_scaled", "d_loss is about 2"),
    (2.0, 2.0, "losses_scaled", "1/2 is missing: x2"),                    # henry: no 1/2 anywhere
    (128.0, 128.0, "losses_scaled", "a sum over the batch instead of a mean: x128"),   # jack
    (3.3, 0.3, "losses_not_of_the_networks", "not the losses of the networks"),
])
def test_loss_history_checks_the_reported_losses_against_the_returned_networks(reference_main, d, g, diagnosis,
                                                                                words):
    verdict = judge("loss_history", _scaled(reference_main, d, g))
    assert (verdict.passed, verdict.diagnosis) == (diagnosis is None, diagnosis), verdict.message
    assert words in verdict.message + verdict.explanation


def test_a_fabricated_history_fails_loss_history():
    """Plausible numbers that are not the returned networks' losses: the lists are compared with the
    contract's losses of those networks, computed by the grader on its own batch."""
    verdict = judge("loss_history", outcome_value(d_loss=np.full(STEPS, 0.56), g_loss=np.full(STEPS, 0.58)))
    assert not verdict.passed and "do not match the networks you return" in verdict.message, verdict.message


@pytest.mark.parametrize("d, g, passed, diagnosis", [
    (0.56, 0.58, True, None),
    (1.12, 1.16, False, "losses_scaled"),           # henry: no 1/2 anywhere
    (0.56, 1.16, False, "generator_loss_scaled"),   # the generator's 1/2 missing, the discriminator's right
    (0.56 * 128, 0.58 * 128, False, "losses_scaled"),  # jack: sums over the batch
    (0.745, 0.21, False, "losses_not_of_the_networks"),  # off, no probe, and not the networks' losses
    (0.001, 0.001, False, "fakes_called_real"),     # the late losses' signature, without a probe
    (5.0, 3.0, False, "losses_grow"),
])
def test_loss_levels_without_a_probe(reference_main, d, g, passed, diagnosis):
    value = outcome_value(d_loss=np.full(STEPS, d), g_loss=np.full(STEPS, g), trained=reference_main)
    verdict = judge("loss_levels", value)
    assert (verdict.passed, verdict.diagnosis) == (passed, diagnosis), verdict.message


def probe_outcome(loop) -> FakeOutcome:
    from grader.sandbox.calls import execute_call

    return FakeOutcome(PROBE.id, "ok", execute_call({"train_gan": loop}, PROBE.call()))


@pytest.mark.parametrize("style, d, g, diagnosis", [
    ("shared_optimizer", 0.745, 0.21, "one_optimizer_for_both"),       # the probe names the mistake
    ("reference_order", 0.745, 0.21, "losses_not_of_the_networks"),    # the loop is right: the lists are not
    ("reference_order", 1.12, 1.16, "losses_scaled"),
    ("reference_order", 0.56, 1.16, "generator_loss_scaled"),          # not update_rule_differs
])
def test_loss_levels_take_the_probes_diagnosis(reference_main, style, d, g, diagnosis):
    loop = CORRECT[style] if style in CORRECT else MISTAKES[style][0]
    check = CHECKS["loss_levels"]
    value = outcome_value(d_loss=np.full(STEPS, d), g_loss=np.full(STEPS, g), trained=reference_main)
    outcomes = {MAIN.id: FakeOutcome(MAIN.id, "ok", value), PROBE.id: probe_outcome(loop)}
    verdict = check.judge(check, outcomes)
    assert (verdict.passed, verdict.diagnosis) == (False, diagnosis), verdict.message


def test_a_call_that_failed_costs_every_check_with_its_reason():
    for status, value, error, words in (("timeout", None, "exceeded 20 s wall time", "did not finish in time"),
                                        ("ok", {"raised": "RuntimeError", "message": "RuntimeError: boom"}, "",
                                         "raised RuntimeError: boom"),
                                        ("crashed", None, "killed by SIGKILL", "died")):
        for name in ("trains", "loss_history", "loss_levels", "ring_distance"):
            verdict = judge(name, value, status=status, error=error)
            assert not verdict.passed and words in verdict.message, (name, verdict.message)


# --------------------------------------------------------------------------- trusted loops, in-process
@pytest.fixture(scope="module")
def reference_run():
    """The reference workhouse graded at the grading seed (in-process: trusted code)."""
    outcomes = {}
    namespace = {"train_gan": reference_train_gan}
    from grader.sandbox.calls import execute_call

    for call in SUITE.calls():
        outcomes[call["id"]] = FakeOutcome(call["id"], "ok", execute_call(namespace, call))
    return outcomes


def test_the_reference_loop_earns_full_marks_at_the_grading_seed(reference_run):
    results = score_suite(SUITE, judge_suite(SUITE, reference_run), RUBRIC)
    assert {r.name: r.message for r in results if not r.passed} == {}
    assert sum(r.score for r in results) == RUBRIC.max_score("train_gan")
    ring = next(r for r in results if r.name == "ring_distance")
    assert "modes covered: " in ring.message and "not graded" in ring.message


@pytest.mark.parametrize("style", sorted(CORRECT))
def test_every_correct_style_passes_the_probe(style):
    [result] = run_trusted(only("update_rule"), {"train_gan": CORRECT[style]}, RUBRIC)
    assert result.passed, result.message


PROBE_NAMES = {name for name, _, _ in workhouse.PROBE_MISTAKES}


@pytest.mark.parametrize("mistake", sorted(m for m, (_, names) in MISTAKES.items() if set(names) & PROBE_NAMES))
def test_every_classic_mistake_fails_the_probe_and_is_named(mistake):
    loop, names = MISTAKES[mistake]
    [result] = run_trusted(only("update_rule"), {"train_gan": loop}, RUBRIC)
    assert not result.passed
    # the probe names the most specific mistake (trains names the other: the generator never moved)
    intended = {"g_optimizer_on_d_params": "generator_optimizer_on_discriminator"}.get(mistake, names[0])
    assert result.diagnosis == intended, (result.diagnosis, result.message)
    assert result.message.startswith("Likely mistake (")


@pytest.mark.parametrize("factor", ["two", "batch_size"])
def test_a_scaled_loss_passes_the_probe(factor):
    """Adam hardly notices a constant factor in the losses: henry leaves out the 1/2 (x2), jack sums
    over the batch (x batch_size); the update rule is right either way."""
    from reference.formulas import discriminator_loss, generator_loss

    def scaled(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
        k = 2.0 if factor == "two" else batch_size
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
        for _ in range(steps):
            real = data[torch.randint(0, len(data), (batch_size,), generator=rng)]
            fake = generator(torch.randn(batch_size, latent_dim, generator=rng))
            opt_d.zero_grad()
            (k * discriminator_loss(discriminator(real), discriminator(fake.detach()))).backward()
            opt_d.step()
            opt_g.zero_grad()
            (k * generator_loss(discriminator(fake))).backward()
            opt_g.step()
        return {"d_loss": [], "g_loss": []}

    [result] = run_trusted(only("update_rule"), {"train_gan": scaled}, RUBRIC)
    assert result.passed, result.message


#: (loop of tests/workhouse_loops.py, the check that exists to catch its mistake, the diagnosis it names)
CAUGHT_BY = [
    ("d_optimizer_output_layer_only", "trains", "discriminator_layers_not_trained"),
    ("generator_step_first_stale_fakes", "update_rule", "generator_updated_first_stale_fakes"),
    ("g_loss_without_half", "loss_history", "generator_loss_scaled"),
    ("g_loss_without_half", "loss_levels", "generator_loss_scaled"),
    ("losses_summed_over_batch", "loss_history", "losses_scaled"),
    ("shared_optimizer", "loss_levels", "one_optimizer_for_both"),
    ("g_never_steps", "ring_distance", "generator_not_updated"),
]


@pytest.fixture(scope="module")
def mistake_runs():
    """Each mistaken loop of CAUGHT_BY graded in-process on the full suite (one run each)."""
    from grader.sandbox.calls import execute_call

    out = {}
    for style in sorted({style for style, _, _ in CAUGHT_BY}):
        outcomes = {call["id"]: FakeOutcome(call["id"], "ok", execute_call({"train_gan": MISTAKES[style][0]}, call))
                    for call in SUITE.calls()}
        out[style] = judge_suite(SUITE, outcomes)
    return out


@pytest.mark.parametrize("style, check, diagnosis", CAUGHT_BY)
def test_each_check_fails_for_the_mistake_it_exists_to_catch(mistake_runs, style, check, diagnosis):
    verdict = mistake_runs[style][check]
    assert (verdict.passed, verdict.diagnosis) == (False, diagnosis), verdict.message
    if style == "g_loss_without_half":
        assert "Your g_loss is about " in verdict.explanation and "1/2 is missing: x2" in verdict.explanation
        assert "d_loss" not in verdict.explanation


def test_the_mistakes_that_pass_the_probe_pass_it():
    """The scaled losses and the untrained layer's loop are caught by their own checks; the scaled
    ones pass the probe (the update rule is right), so update_rule does not double-count them."""
    for style in ("g_loss_without_half", "losses_summed_over_batch"):
        [result] = run_trusted(only("update_rule"), {"train_gan": MISTAKES[style][0]}, RUBRIC)
        assert result.passed, (style, result.message)


# ---------------------------------------------------------------------------------------- picture
def test_the_picture_is_a_deterministic_png(reference_run, tmp_path):
    data = workhouse.plot_data(reference_run[workhouse.MAIN_ID], RUBRIC)
    assert set(data) == {"student_samples", "reference_samples", "d_loss", "g_loss"}
    assert data["student_samples"].shape == (2000, 2) and len(data["d_loss"]) == STEPS
    # the reference trained from the grading's start is the student's run when the loop is the reference
    assert np.allclose(data["student_samples"], data["reference_samples"], atol=1e-4)
    path = write_workhouse_png(tmp_path / "feedback" / "alice_workhouse.png", **data)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.read_bytes() == render_workhouse_png(**data)
    assert workhouse.plot_data(FakeOutcome(workhouse.MAIN_ID, "timeout", None), RUBRIC) is None
    garbage = render_workhouse_png(np.full((3, 2), np.inf), np.zeros((0, 2)), [], [math.nan])
    assert garbage[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------- sandboxed, end to end
SOLUTION = textwrap.dedent('''
    import torch
    import torch.nn.functional as F


    def discriminator_loss(real_logits, fake_logits):
        return -0.5 * F.logsigmoid(real_logits).mean() - 0.5 * F.logsigmoid(-fake_logits).mean()


    def generator_loss(fake_logits, kind="non_saturating"):
        if kind == "non_saturating":
            return -0.5 * F.logsigmoid(fake_logits).mean()
        if kind == "minimax":
            return -0.5 * F.softplus(fake_logits).mean()
        raise ValueError(kind)


    def train_gan(generator, discriminator, data, *, steps, batch_size, lr, latent_dim, rng):
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
        hist = {"d_loss": [], "g_loss": []}
        for _ in range(steps):
            z = torch.randn(batch_size, latent_dim, generator=rng)
            real = data[torch.randint(0, len(data), (batch_size,), generator=rng)]
            with torch.no_grad():
                fake = generator(z)
            d = discriminator_loss(discriminator(real), discriminator(fake))
            opt_d.zero_grad()
            d.backward()
            opt_d.step()
            g = generator_loss(discriminator(generator(torch.randn(batch_size, latent_dim, generator=rng))))
            opt_g.zero_grad()
            g.backward()
            opt_g.step()
            hist["d_loss"].append(d.item())
            hist["g_loss"].append(g.item())
        return hist
''')
GARBAGE = "def train_gan(generator, discriminator, data, **kwargs):\n    return 'done'\n"
HANG = "def train_gan(generator, discriminator, data, **kwargs):\n    while True:\n        pass\n"


@pytest.mark.usefixtures("isolation_required")
def test_sandboxed_end_to_end(tmp_path):
    """A correct loop earns full marks through the sandbox; garbage and a hang cost this suite only."""
    quick = Suite(SUITE.function, tuple(dataclasses.replace(check, cases=tuple(
        dataclasses.replace(case, extra={**case.extra, "wall_s": 1.5, "cpu_s": 2.0}) for case in check.cases))
        for check in SUITE.checks))
    results = {}
    with SandboxPool(Limits(), workers=2, isolation="namespaces") as pool:
        for name, source, suite in (("correct", SOLUTION, SUITE), ("garbage", GARBAGE, SUITE), ("hang", HANG, quick)):
            workdir = tmp_path / name
            workdir.mkdir()
            (workdir / "solution.py").write_text(source)
            sandboxed = pool.run(workdir, "solution.py", "full", [suite.calls()])
            assert sandboxed.status == "ok", sandboxed.message
            results[name] = (sandboxed, score_suite(suite, judge_suite(suite, sandboxed.calls), RUBRIC))
    correct = results["correct"][1]
    assert {r.name: r.message for r in correct if not r.passed} == {}
    garbage = {r.name: r for r in results["garbage"][1]}
    assert sum(r.score for r in garbage.values()) == 0
    assert garbage["trains"].diagnosis == "generator_not_updated"
    assert "returned a builtins.str, not a dict" in garbage["loss_history"].message
    hang_calls = results["hang"][0].calls
    assert hang_calls[workhouse.PROBE_ID].status == "timeout"
    assert all(not r.passed for r in results["hang"][1])
    assert "did not finish in time" in {r.name: r for r in results["hang"][1]}["update_rule"].message
