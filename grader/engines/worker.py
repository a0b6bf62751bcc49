"""The worker side of the Dask engine: ``grade_task`` runs in a Dask worker process.

Each worker process holds its own ``SandboxPool`` per (isolation, zygotes, limits) and its own
``SuiteBuilder`` per rubric, created on first use under a lock (a Dask worker runs tasks in
threads; the zygotes are exec'd interpreters, so their user namespaces do not care). The task's
files are written to a private folder of the worker's, graded with ``grader.run.grade_submission``
(the TA's very function), and the folder removed. What goes back is text (``grader.engines.wire``):
the record, the log and the picture as the grader rendered them; an error of the grader's own is
a ``failed`` reply, so no exception object, let alone one holding sandbox data, is ever pickled.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from grader.engines import environment, faults, wire
from grader.engines.outputs import KEEP, Outputs, picture_note, sandbox_log, workhouse_picture

EVENT_TOPIC = "grader"   # Dask's event log: one {"student", "worker"} per graded task (tests, diagnosis)

_lock = threading.Lock()
_pools: dict[tuple, object] = {}       # (isolation, zygotes, workhouse, limits) -> SandboxPool
_builders: dict[str, tuple] = {}       # rubric sha256 -> (Rubric, SuiteBuilder)


def _address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):   # called outside a Dask worker (a unit test)
        return "this process"


def _pool(task: dict):
    """This process's pool for the task's isolation, zygotes and limits (started on first use)."""
    from grader.sandbox import Limits, SandboxPool

    key = (task["isolation"], task["zygotes"], task["workhouse"], tuple(sorted(task["limits"].items())))
    with _lock:
        if key not in _pools:
            _pools[key] = SandboxPool(Limits.from_dict(task["limits"]), workers=task["zygotes"],
                                      isolation=task["isolation"], workhouse=task["workhouse"])
        return _pools[key]


def _builder(task: dict):
    """``(Rubric, SuiteBuilder)`` of the task's rubric text, with the reference as the oracle."""
    from grader.checks import SuiteBuilder
    from grader.reference_oracle import ReferenceOracle
    from grader.rubric import load_rubric

    sha = task["rubric_sha256"]
    with _lock:
        if sha not in _builders:
            folder = Path(tempfile.mkdtemp(prefix="grader-rubric-"))
            try:
                (folder / "rubric.toml").write_bytes(task["rubric_toml"])
                rubric = load_rubric(folder / "rubric.toml")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if rubric.sha256 != sha:
                raise wire.WireError("the task's rubric text does not have the rubric's sha256")
            _builders[sha] = (rubric, SuiteBuilder(rubric, ReferenceOracle()))
        return _builders[sha]


def _write_files(task: dict, root: Path) -> Path:
    """The task's files in a fresh work folder under ``root`` (``grader.intake``'s own writer)."""
    from grader.intake.workdirs import _write_workdir

    files = {wire.checked_path(rel).as_posix(): data for rel, data in task["files"].items()}
    return _write_workdir(root, task["student"], files)


def preflight(environment_of_ta: dict, isolation: str) -> str:
    """A ``refused`` reply's JSON text, with no problems when this worker may grade: what
    ``DaskEngine`` asks every worker before it sends a task (``Client.run``); each task asks again."""
    return wire.refused_reply(environment.refusals(environment_of_ta, isolation), _address())


def grade_task(task: dict) -> str:
    """Grade one submission; the reply's JSON text (``grader.engines.wire``). Never raises."""
    worker = _address()
    faults.inject(task["student"], "start")
    try:
        problems = environment.refusals(task["environment"], task["isolation"])
        if problems:
            return wire.refused_reply(problems, worker)
        from grader.run import grade_submission

        rubric, builder = _builder(task)
        pool = _pool(task)
        root = Path(tempfile.mkdtemp(prefix="grader-dask-"))
        try:
            sub = wire.task_submission(task, _write_files(task, root))
            seed = task["input_seed"]
            suites = builder.for_seed(seed if seed is not None else rubric.seed)
            result, sandbox = grade_submission(sub, suites, pool, rubric, [suite.calls() for suite in suites],
                                               input_seed=seed)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        faults.inject(task["student"], "graded")
        try:  # as grader.run._Writer does: a picture never costs a result
            picture = workhouse_picture(sandbox, rubric)
        except Exception as error:  # noqa: BLE001
            picture = KEEP
            result.submission.setdefault("notes", []).append(picture_note(error))
        reply = wire.graded_reply(result, Outputs(log=sandbox_log(sandbox), picture=picture), worker)
        _log_event(task["student"], worker)
        return reply
    except Exception as error:  # noqa: BLE001 - the grader's own failure: that submission's sandbox_error
        return wire.failed_reply(error, worker)


def _log_event(student: str, worker: str) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(EVENT_TOPIC, {"student": student, "worker": worker})
    except (ImportError, ValueError):
        pass
