"""The Dask engine's two messages, as plain data.

* The task (TA -> worker, a dict Dask pickles; the TA is trusted): one prepared submission's files
  as bytes (``files``: relative path -> bytes, never a path on the TA's disk), its id, hash, entry
  and notes, its hidden inputs' seed (never the course secret), and the run's ``context``: the
  rubric's text, the TA's ``environment.fingerprint``, the isolation decision, the limits, the
  zygotes per worker.
* The reply (worker -> TA): one JSON text, built from the grader's own record, never from an
  object of the sandbox's. ``{"reply": "graded", "record": <StudentResult.to_dict()>, "log":
  <text>, "picture": "keep" | "remove" | {"png_base64": ...}}``, ``{"reply": "refused",
  "problems": [...]}`` (this worker must not grade for this TA) or ``{"reply": "failed", "error":
  ...}`` (a grader error of the worker's; that submission's sandbox_error); each with ``worker``.
  The TA reads it with ``json`` and ``StudentResult.from_dict`` (the reader a resume uses).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.engines.outputs import KEEP, REMOVE, Outputs
from grader.intake import Submission
from grader.results import StudentResult

MAX_PICTURE_BYTES = 16 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class WireError(ValueError):
    """A task or reply that is not what this module writes."""


def read_workdir(workdir: Path) -> dict[str, bytes]:
    """Every regular file of a prepared work folder, by its relative POSIX path (sorted)."""
    files: dict[str, bytes] = {}
    root = Path(workdir)
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                raise WireError(f"the prepared copy holds {path.relative_to(root)}, which is not a regular file")
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def checked_path(rel: str) -> PurePosixPath:
    """``rel`` as a relative path inside a work folder; raises ``WireError`` for anything else."""
    path = PurePosixPath(rel)
    if not rel or path.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise WireError(f"a task's file path must stay inside its work folder, got {rel!r}")
    return path


def make_task(sub: Submission, input_seed: int | None, context: dict) -> dict:
    """The task of one runnable submission (``sub.workdir`` set): its bytes, never its path."""
    return {**context, "student": sub.student, "source": sub.source.name, "kind": sub.kind, "sha256": sub.sha256,
            "entry": sub.entry, "mode": sub.mode, "notes": list(sub.notes), "files": read_workdir(sub.workdir),
            "input_seed": input_seed}


def task_submission(task: dict, workdir: Path) -> Submission:
    """The worker's ``Submission`` of a task whose files were written to ``workdir``."""
    return Submission(student=task["student"], source=Path(task["source"]), kind=task["kind"], sha256=task["sha256"],
                      workdir=workdir, entry=task["entry"], mode=task["mode"], notes=list(task["notes"]))


def graded_reply(result: StudentResult, outputs: Outputs, worker: str) -> str:
    picture = outputs.picture
    if isinstance(picture, bytes):
        picture = {"png_base64": base64.b64encode(picture).decode("ascii")}
    return json.dumps({"reply": "graded", "worker": worker, "record": result.to_dict(), "log": outputs.log,
                       "picture": picture}, ensure_ascii=False)


def refused_reply(problems: list[str], worker: str) -> str:
    return json.dumps({"reply": "refused", "worker": worker, "problems": list(problems)}, ensure_ascii=False)


def failed_reply(error: BaseException, worker: str) -> str:
    return json.dumps({"reply": "failed", "worker": worker, "error": f"{type(error).__name__}: {error}"},
                      ensure_ascii=False)


def read_preflight(text: str) -> list[str]:
    """The problems of a worker's answer to ``worker.preflight`` (empty: it may grade)."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("reply") != "refused" or not isinstance(data.get("problems"), list):
        raise WireError("a worker's preflight answer must be a 'refused' reply with its list of problems")
    return [str(problem) for problem in data["problems"]]


@dataclass
class Reply:
    """A worker's reply as read by the TA: ``kind`` is ``graded``, ``refused`` or ``failed``."""

    kind: str
    worker: str
    result: StudentResult | None = None
    outputs: Outputs | None = None
    problems: list[str] = field(default_factory=list)
    error: str = ""


def _picture(value: object) -> bytes | str:
    if value in (KEEP, REMOVE):
        return value  # type: ignore[return-value]
    if not isinstance(value, dict) or not isinstance(value.get("png_base64"), str):
        raise WireError(f"a reply's picture must be {KEEP!r}, {REMOVE!r} or {{'png_base64': ...}}")
    if len(value["png_base64"]) > MAX_PICTURE_BYTES * 4 // 3 + 4:
        raise WireError("a reply's picture is larger than 16 MiB")
    try:
        png = base64.b64decode(value["png_base64"], validate=True)
    except binascii.Error as error:
        raise WireError(f"a reply's picture is not base64: {error}") from None
    if not png.startswith(PNG_SIGNATURE):
        raise WireError("a reply's picture is not a PNG")
    return png


def read_reply(text: str, sub: Submission) -> Reply:
    """The reply to ``sub``'s task; raises ``WireError`` (or ``ValueError``, ``KeyError``,
    ``TypeError`` from the record's reader) for one that is not a well-formed reply about it."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("reply") not in ("graded", "refused", "failed"):
        raise WireError("a worker's reply must be an object with reply 'graded', 'refused' or 'failed'")
    worker = str(data.get("worker", "?"))
    if data["reply"] == "refused":
        return Reply("refused", worker, problems=[str(p) for p in data.get("problems") or []])
    if data["reply"] == "failed":
        return Reply("failed", worker, error=str(data.get("error", "")))
    result = StudentResult.from_dict(data["record"])
    if result.student != sub.student or result.submission.get("sha256") != sub.sha256:
        raise WireError(f"the worker sent the record of {result.student!r} for {sub.student!r}")
    if not isinstance(data.get("log"), str):
        raise WireError("a graded reply's log must be text")
    return Reply("graded", worker, result=result, outputs=Outputs(log=data["log"], picture=_picture(data.get("picture"))))
