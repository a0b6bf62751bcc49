"""Engines: where a class's submissions are graded once intake has prepared them.

``grader.run`` asks ``open_engine`` for one and talks to it through three calls::

    with open_engine(options, rubric=rubric, grade=grade, seed=seed, pool=pool) as engine:
        engine.submit(sub)                      # as each submission is found (resume dispatches early)
        for sub, outcome in engine.completed():  # as each one finishes, in any order (engine.pending: how many)
            result, outputs = outcome.result()   # raises for a grader failure: that submission's sandbox_error
        engine.describe()                        # what run.json records of it

* ``local`` (``LocalEngine``): one ``SandboxPool`` of ``options.workers`` zygotes and as many
  threads, in the TA's process; exactly the grading of every earlier version. The outputs are the
  ``SandboxResult`` itself.
* ``dask`` (``DaskEngine``, ``--dask``): a Dask cluster; each worker process holds its own pool
  and computes its own expected values, and sends back the grader's record as JSON text
  (``grader.engines.wire``), never a pickled object built from sandbox data. The outputs are an
  ``Outputs`` (the log and the picture, rendered on the worker).

One module per job: ``settings`` (``--dask`` parsed, no Dask import), ``local``, ``dask`` (the
client side), ``worker`` (the worker side), ``wire`` (the task and the reply as plain data),
``outputs`` (the log and the picture beside a record), ``environment`` (what a worker must share
with the TA), ``local_cluster`` (the TLS LocalCluster of ``--dask local:N``), ``faults`` (the
fault-injection switch of the tests). Nothing here imports Dask unless ``--dask`` is given.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from grader.rubric import Rubric
    from grader.run import GradingOptions
    from grader.sandbox import SandboxPool


class EngineError(RuntimeError):
    """The engine itself failed (a scheduler that went away, a worker that refused): the run ends
    with one ``error:`` line; every result written so far stays, and a rerun resumes."""


def open_engine(options: "GradingOptions", *, rubric: "Rubric", grade: Callable, seed: Callable,
                pool: Callable[[], "SandboxPool"], dispatch=None):
    """The engine ``options`` ask for: ``LocalEngine`` unless ``options.dask`` is set.

    ``grade(sub, pool)``: ``grader.run``'s grading of one submission on a ``SandboxPool`` (None for
    a submission that cannot be run, which needs none); ``seed(sub)``: its hidden inputs' seed
    (what a Dask worker is sent instead of the course secret); ``pool()``: the local engine's pool;
    ``dispatch``: the run's first-dispatch clock (``grader.run._FirstDispatch``), marked when a
    submission leaves for a Dask worker."""
    if getattr(options, "dask", None) is None:
        from grader.engines.local import LocalEngine

        return LocalEngine(options.workers, pool, grade)
    from grader.engines.dask import DaskEngine  # imports Dask: only with --dask

    return DaskEngine(options, grade, rubric, seed, dispatch)
