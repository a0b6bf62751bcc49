"""The Dask engine (``--dask``): the TA's process does intake and writes every result; Dask workers
grade (``grader.engines.worker``).

Dispatch: a submission with nothing to run (a load error, a conflict) is graded here, as the local
engine does it; every other one becomes a task (``grader.engines.wire``: its bytes, the rubric's
text, its hidden inputs' seed) sent when a worker thread is free, so that at most as many tasks
are out as the workers have threads (with ``--dask-workhouse-resource``: as the labelled workers
have units). Nothing waits on a worker that dies, and the scheduler never holds the class.

At the first task (a resume with nothing left to grade reaches no cluster), every worker is asked (``Client.run``) whether it may grade for this TA
(``grader.engines.environment``); each task asks again, for workers that join later. A refusal
ends the run (``EngineError``): a misconfigured worker would otherwise turn the class into
sandbox errors.

Retry policy: Dask's. A task whose worker dies (kill -9, out of memory) goes to another worker;
once ``distributed.scheduler.allowed-failures`` (3) workers died running it, Dask gives up
(``KilledWorker``) and that submission alone is a ``sandbox_error`` ("not your fault"), graded
again by the next run. Grader errors are not retried (the same bytes fail the same way): they are
that submission's ``sandbox_error`` at once. A scheduler that goes away cancels every task: the
run ends with an ``EngineError`` naming it; the results written until then stay, and the same
command resumes.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, deque
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from grader.engines import EngineError, environment, wire, worker
from grader.engines.settings import DaskSettings

if TYPE_CHECKING:
    from grader.intake import Submission
    from grader.rubric import Rubric
    from grader.run import GradingOptions

CAPACITY_EVERY_S = 2.0   # how often the workers' threads are counted again
CLOSE_TIMEOUT_S = 20.0
TLS_HELP = ("set Dask's TLS configuration (DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY, or "
            "distributed.comm.tls in ~/.config/dask/distributed.yaml; README: 'Grading on a Dask cluster')")


class WorkerDied(RuntimeError):
    """Every worker that ran a submission's task died (Dask's ``KilledWorker``)."""


class WorkerFailed(RuntimeError):
    """A grader error on the worker, as its reply states it."""


def _done(value: object = None, error: BaseException | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    return future


class DaskEngine:
    """Grades on a Dask cluster; see the module docstring and ``grader.engines``."""

    name = "dask"

    def __init__(self, options: "GradingOptions", grade: Callable, rubric: "Rubric", seed: Callable,
                 dispatch=None) -> None:
        self.options, self.grade, self.rubric, self.seed, self.dispatch = options, grade, rubric, seed, dispatch
        self.settings: DaskSettings = options.dask
        self.route = self.settings.workhouse_resource if "train_gan" in rubric.points else None
        self._waiting: deque["Submission"] = deque()          # tasks not sent yet
        self._here: deque[tuple["Submission", Future]] = deque()   # graded in this process
        self._futures: dict[object, "Submission"] = {}         # Dask future -> its submission
        self._used: Counter[str] = Counter()                   # worker -> submissions it graded
        self._client = self._cluster = None
        self._capacity_at, self._capacity = -1e9, 1
        self.scheduler, self.workers_at_start = "", 0

    # ------------------------------------------------------------------ connection
    def __enter__(self) -> "DaskEngine":
        try:
            import distributed
        except ImportError:
            raise EngineError("--dask needs Dask: pip install -e '.[dask]'") from None
        if self.options.oracle is not None:
            raise EngineError("a custom oracle stays in this process: grading on Dask uses the reference on each worker")
        self._distributed = distributed
        isolation = "none" if self.options.isolation == "none" else "namespaces"   # never "auto" on a worker
        self._context = {"environment": environment.fingerprint(), "isolation": isolation,
                         "limits": self.options.limits.to_dict(), "zygotes": max(1, self.options.workers),
                         "workhouse": "train_gan" in self.rubric.points, "rubric_sha256": self.rubric.sha256,
                         "rubric_toml": Path(self.options.rubric_path).read_bytes()}
        return self

    def _start(self) -> None:
        """Connect (or start ``local:N``) and ask the workers, at the first task: a resumed class
        with nothing left to grade starts no cluster."""
        if self._client is not None:
            return
        try:
            self._connect()
            self._preflight()
        except BaseException:
            self._close()
            raise
        self._ac = self._distributed.as_completed(loop=self._client.loop)

    def _security(self):
        if self.settings.security is not None:
            return self.settings.security
        security = self._distributed.Security()   # Dask's configuration: distributed.comm.tls.*
        if not (security.tls_ca_file and security.tls_client_cert):
            raise EngineError(f"--dask {self.settings.target} needs the cluster's TLS credentials: {TLS_HELP}")
        return security

    def _connect(self) -> None:
        settings, distributed = self.settings, self._distributed
        timeout = settings.connect_timeout_s
        try:
            if settings.kind == "local":
                from grader.engines.local_cluster import local_cluster

                zygotes = self._context["zygotes"]
                self._cluster, security = local_cluster(
                    settings.where, zygotes, dashboard=settings.dashboard,
                    resources={self.route: zygotes} if self.route else None)
                self._client = distributed.Client(self._cluster, security=security, set_as_default=False,
                                                  timeout=timeout)
                if settings.dashboard:
                    print(f"Dask dashboard: {self._cluster.dashboard_link}", file=sys.stderr)
            elif settings.kind == "address":
                self._client = distributed.Client(settings.where, security=self._security(), set_as_default=False,
                                                  timeout=timeout)
            else:
                if not settings.where.is_file():  # Dask would wait the whole timeout for it to appear
                    raise EngineError(f"--dask {settings.target}: there is no scheduler file at {settings.where}")
                self._client = distributed.Client(scheduler_file=str(settings.where), security=self._security(),
                                                  set_as_default=False, timeout=timeout)
        except EngineError:
            raise
        except Exception as error:  # noqa: BLE001 - OSError, TimeoutError, ssl errors, a bad scheduler file
            raise EngineError(f"could not reach the Dask scheduler of --dask {settings.target}: "
                              f"{type(error).__name__}: {error}") from None
        self.scheduler = self._client.scheduler.address
        if not self.scheduler.startswith("tls://"):
            raise EngineError(f"the Dask scheduler at {self.scheduler} does not use TLS: refusing to send it "
                              "submissions (whoever can reach it can run code as you)")
        try:
            self._client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError) as error:
            raise EngineError(f"no Dask worker joined the scheduler at {self.scheduler} within {timeout:.0f} s "
                              f"({type(error).__name__})") from None

    def _preflight(self) -> None:
        """Ask every worker now connected whether it may grade for this TA (``worker.preflight``)."""
        replies = self._client.run(worker.preflight, self._context["environment"], self._context["isolation"])
        self.workers_at_start = len(replies)
        for address, text in sorted(replies.items()):
            problems = wire.read_preflight(text)
            if problems:
                raise EngineError(f"Dask worker {address} refuses to grade: {'; '.join(problems)}")
        if self.route and not self._resource_units():
            print(f"warning: no Dask worker offers the resource {self.route} yet: the submissions wait for one "
                  f"(start workers with --resources {self.route}=1)", file=sys.stderr)

    def _resource_units(self) -> int:
        workers = self._client.scheduler_info(n_workers=-1)["workers"].values()
        if self.route:
            return int(sum(min(w.get("nthreads", 1), w.get("resources", {}).get(self.route, 0)) for w in workers))
        return int(sum(w.get("nthreads", 1) for w in workers))

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        for closing in (client, cluster):
            if closing is None:
                continue
            try:
                closing.close(timeout=CLOSE_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - a scheduler already gone
                print(f"note: closing the Dask {type(closing).__name__}: {type(error).__name__}", file=sys.stderr)

    # -------------------------------------------------------------------- dispatch
    def submit(self, sub: "Submission") -> None:
        """Queue ``sub``; it leaves when a worker thread is free (a load error is graded here)."""
        if sub.error or sub.workdir is None:
            try:
                self._here.append((sub, _done(self.grade(sub, None))))
            except Exception as error:  # noqa: BLE001 - as the local engine's future would hold it
                self._here.append((sub, _done(error=error)))
            return
        self._waiting.append(sub)
        self._fill()

    @property
    def pending(self) -> int:
        return len(self._waiting) + len(self._futures) + len(self._here)

    def _capacity_now(self) -> int:
        if time.monotonic() - self._capacity_at >= CAPACITY_EVERY_S:
            try:
                self._capacity = max(1, self._resource_units())
            except Exception:  # noqa: BLE001 - the scheduler is gone: completed() says so
                self._capacity = 1
            self._capacity_at = time.monotonic()
        return self._capacity

    def _fill(self) -> None:
        if self._waiting:
            self._start()
        while self._waiting and len(self._futures) < self._capacity_now():
            self._send(self._waiting.popleft())

    def _send(self, sub: "Submission") -> None:
        try:
            task = wire.make_task(sub, self.seed(sub), self._context)
        except Exception as error:  # noqa: BLE001 - the prepared copy could not be read: this submission's error
            self._here.append((sub, _done(error=error)))
            return
        if self.dispatch is not None:
            self.dispatch.mark()
        future = self._client.submit(worker.grade_task, task, pure=False,
                                     resources={self.route: 1} if self.route else None)
        self._futures[future] = sub
        self._ac.add(future)

    def completed(self) -> Iterator[tuple["Submission", Future]]:
        """``(submission, future)`` as each finishes; the future's result is ``(StudentResult,
        Outputs)``, or it raises for that submission's failure. Raises ``EngineError`` for a
        refusing worker or a lost scheduler."""
        while True:
            while self._here:
                yield self._here.popleft()
            if not self._futures:
                if not self._waiting:
                    return
                self._fill()
                continue
            future = next(self._ac)
            sub = self._futures.pop(future)
            outcome = self._outcome(sub, future)
            self._fill()
            yield sub, outcome

    def _outcome(self, sub: "Submission", future) -> Future:
        if future.status == "error":
            error = future.exception()
            if isinstance(error, self._distributed.KilledWorker):
                return _done(error=WorkerDied(
                    f"every Dask worker that ran it died ({error.allowed_failures + 1} in all: killed, out of memory "
                    "or crashed; see the workers' logs)"))
            return _done(error=error)
        if future.status != "finished":
            raise EngineError(f"the Dask scheduler at {self.scheduler} went away (task {future.status}): the results "
                              f"finished so far are in {self.options.out_dir}/results/; run the same command again "
                              "to grade the rest")
        try:
            reply = wire.read_reply(future.result(), sub)
        except Exception as error:  # noqa: BLE001 - a malformed reply costs that submission
            return _done(error=error)
        if reply.kind == "refused":
            raise EngineError(f"Dask worker {reply.worker} refuses to grade: {'; '.join(reply.problems)}")
        if reply.kind == "failed":
            return _done(error=WorkerFailed(reply.error))
        self._used[reply.worker] += 1
        return _done((reply.result, reply.outputs))

    def describe(self) -> dict:
        """What ``run.json`` records of this engine."""
        return {"engine": self.name, "scheduler": self.scheduler, "local_cluster": self.settings.kind == "local",
                "dask_workers_at_start": self.workers_at_start, "dask_workers_used": len(self._used),
                "zygotes_per_worker": self._context["zygotes"], "workhouse_resource": self.route}
