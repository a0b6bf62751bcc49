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

Checks, each with the mistake it exists to catch: ``trains`` (both networks' weights came back
valid, and every ``state_dict`` entry moved as a correct loop's do: a network, or a layer of one,
that never trained), ``update_rule`` (the probe: a wrong update rule, named from the catalogue),
``loss_history`` (one finite, non-negative float per step in each list, and late in training the
losses of the returned networks as the grader computes them on its own batch: lists malformed,
diverged, of the wrong sign, scaled, or of something else), ``loss_levels`` (the late losses where
the reference loop's are: a game that ends elsewhere) and ``ring_distance`` (the grader's own
samples of the trained generator near the ring: a loop that did not learn it). Modes covered and the
high-quality fraction are reported with ``ring_distance`` but not graded: at the grading budget
correct loops cover anywhere from 0 to 8 modes, and their high-quality fraction goes down to 1
sample in 2000, so no bound on either fails a mistake without failing correct loops.

Acceptance region: from every seed's value in ``reference/stats/<[workhouse] stats>`` (written by
``python -m reference.workhouse_stats`` at the same budget), per statistic and rule of
``[workhouse.region]``: ``at_least`` m: value >= m x (the seeds' minimum); ``at_least_minus`` m:
value >= minimum - m; ``at_most`` m: value <= m x (their maximum); ``within`` m:
min / m <= value <= max x m. A loop whose samples miss the
``ring_distance`` region has not learned the ring: it earns nothing for the other checks either.

The package, one module per job: ``settings`` (the ``[workhouse]`` section, the reference
statistics, the acceptance region, the seeds; loaded once per suite as a ``Context``),
``networks`` (networks as plain data; the spec's home is ``grader.sandbox.workhouse_calls``),
``catalogue`` (trusted mistaken loops and their explanations), ``probe`` (the probe and its
cache), ``reading`` (decoding the sandbox's report), ``judges``, ``suite`` and ``picture``.
"""
from __future__ import annotations

from grader.checks.workhouse.catalogue import EXPLANATIONS, PROBE_MISTAKES, knob_loop
from grader.checks.workhouse.judges import (HALF_LOG2, LOSSES_MAY_FOLLOW, RULE_IS_RIGHT, STATISTICS,
                                            UPDATE_RULE_DIFFERS, diagnose, judge_loss_history, judge_loss_levels,
                                            judge_statistic, judge_trains, judge_update_rule, modes_note)
from grader.checks.workhouse.networks import call_extra, initial_state, network_spec, state_of, trained_generator
from grader.checks.workhouse.picture import plot_data, reference_samples
from grader.checks.workhouse.probe import (PROBE_FAKE, PROBE_REAL, PROBE_ROWS, probe_data, probe_diagnosis,
                                           probe_expectations, probe_networks, update_difference)
from grader.checks.workhouse.reading import (Evaluation, case_of, evaluate_outcome, histories, returned_state,
                                             usable)
from grader.checks.workhouse.settings import (FUNCTION, MAIN_ID, PROBE_ID, STATS_DIR, Bound, Context, Settings,
                                              acceptance_region, grading_seeds, load_context, load_settings,
                                              reference_stats)
from grader.checks.workhouse.suite import build_cases, build_suite, suite_parts
