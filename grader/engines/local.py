"""The local engine: one ``SandboxPool`` and a thread per zygote, in the TA's process (the grading
of every version before ``--dask``, unchanged)."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from grader.intake import Submission
    from grader.sandbox import SandboxPool


class LocalEngine:
    """``workers`` threads grading on the pool ``pool()`` starts; see ``grader.engines``."""

    name = "local"

    def __init__(self, workers: int, pool: Callable[[], "SandboxPool"], grade: Callable) -> None:
        self.workers, self._start_pool, self.grade = max(1, workers), pool, grade
        self._futures: dict[Future, "Submission"] = {}

    def __enter__(self) -> "LocalEngine":
        self._pool = self._start_pool()
        try:
            self._executor = ThreadPoolExecutor(max_workers=self.workers)
        except BaseException:
            self._pool.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._executor.shutdown(wait=True)
        finally:
            self._pool.close()

    def submit(self, sub: "Submission") -> None:
        """Start grading ``sub`` on a free zygote (queued behind the others)."""
        self._futures[self._executor.submit(self.grade, sub, self._pool)] = sub

    @property
    def pending(self) -> int:
        """Submissions submitted and not yet handed back by ``completed``."""
        return len(self._futures)

    def completed(self) -> Iterator[tuple["Submission", Future]]:
        """``(submission, future)`` as each finishes; the future's result is ``(StudentResult,
        SandboxResult | None)``. A finished future is dropped at once (it holds its results)."""
        for future in as_completed(list(self._futures)):
            yield self._futures.pop(future), future

    def describe(self) -> dict:
        """What ``run.json`` records of this engine."""
        return {"engine": self.name}
