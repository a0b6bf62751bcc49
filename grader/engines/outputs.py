"""What goes beside a fresh record: the student's log and the workhouse picture.

Both are rendered from the ``SandboxResult`` by the grader's own code, wherever the submission was
graded (the TA's process, or a Dask worker, which sends them back as text and PNG bytes), and
written by ``grader.run._Writer`` beside the record; the same functions, the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader import reports
from grader.atomic import write_atomic

if TYPE_CHECKING:
    from grader.rubric import Rubric
    from grader.sandbox import SandboxResult

KEEP = "keep"       # the rubric grades no train_gan: leave feedback/<student>_workhouse.png alone
REMOVE = "remove"   # train_gan was graded but drew no picture: never show an earlier submission's


@dataclass(frozen=True)
class Outputs:
    """``log``: ``logs/<student>.txt``; ``picture``: the PNG's bytes, ``KEEP`` or ``REMOVE``."""

    log: str
    picture: bytes | str = KEEP


def sandbox_log(sandbox: "SandboxResult") -> str:
    """The student's stdout and stderr, as ``logs/<student>.txt`` holds them."""
    return (f"--- stdout ---\n{sandbox.stdout}\n--- stderr ---\n{sandbox.stderr}\n"
            f"--- dropped bytes: {sandbox.output_dropped_bytes}\n")


def workhouse_picture(sandbox: "SandboxResult", rubric: "Rubric | None") -> bytes | str:
    """The workhouse's picture (the student's samples over the ring, loss curves) as PNG bytes,
    ``REMOVE`` when train_gan drew none, ``KEEP`` when the rubric grades no train_gan; raises
    whatever rendering raises (the caller notes it: a picture never costs a result)."""
    if rubric is None or "train_gan" not in rubric.points:
        return KEEP
    from grader.checks import workhouse
    from grader.workhouse_plots import render_workhouse_png

    data = workhouse.plot_data(sandbox.calls.get(workhouse.MAIN_ID), rubric)
    return render_workhouse_png(**data) if data is not None else REMOVE


def put_picture(out_dir: Path, student: str, picture: bytes | str) -> None:
    """Write (atomically), remove, or keep ``feedback/<student>_workhouse.png``."""
    if picture == KEEP:
        return
    from grader.run import WORKHOUSE_PNG

    path = reports.result_path(out_dir, student, "feedback", WORKHOUSE_PNG)
    if isinstance(picture, bytes):
        write_atomic(path, picture)
    else:
        path.unlink(missing_ok=True)


def picture_note(error: BaseException) -> str:
    """The submission's note when its picture could not be drawn or written."""
    return f"no workhouse picture: {type(error).__name__}"
