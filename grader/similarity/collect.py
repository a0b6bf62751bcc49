"""Reading the code to compare from each prepared submission (grader.intake), before grading.

What is compared is the Python the sandbox would load, whatever the format handed in: the entry
module first (``solution.py``, a zip's or folder's single module, or ``notebook_solution.py``, a
notebook's code cells as the intake converted them), then the other ``.py`` files of the copy
(helpers of a folder or zip) in path order. Files are read without following links, within
``MAX_FILE_BYTES`` each and ``MAX_TOTAL_BYTES`` and ``MAX_FILES`` per submission; bytes that are
not UTF-8 are replaced (the text is only parsed, never run).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.intake import Submission
from grader.similarity.fingerprints import Code, code_of

MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024
MAX_FILES = 64
MAX_DEPTH = 16


def _read(path: Path, limit: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def _python_files(root: Path) -> list[str]:
    """Relative paths (``/``-separated) of the ``.py`` files under ``root``, sorted; no links."""
    found: list[str] = []
    for here, dirs, files in os.walk(root, followlinks=False):
        rel = os.path.relpath(here, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = sorted(d for d in dirs if depth < MAX_DEPTH and not os.path.islink(os.path.join(here, d)))
        for name in files:
            if name.endswith(".py"):
                found.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
    return sorted(found)


def submission_files(sub: Submission) -> list[tuple[str, str]]:
    """``[(relative path, text)]`` of ``sub``'s code, entry first; ``[]`` when it has none."""
    if sub.error or sub.workdir is None or sub.entry is None:
        return []
    root = Path(sub.workdir)
    names = [sub.entry] + [n for n in _python_files(root) if n != sub.entry]
    out, total = [], 0
    for name in names[:MAX_FILES]:
        text = _read(root.joinpath(*name.split("/")), min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - total))
        if text is None:
            continue
        out.append((name, text))
        total += len(text.encode("utf-8", "surrogatepass"))
        if total >= MAX_TOTAL_BYTES:
            break
    return out


def class_code(submissions: list[Submission]) -> dict[str, Code]:
    """``{student: Code}`` for every submission with code (a conflict or a load error has none)."""
    out = {}
    for sub in submissions:
        files = [] if sub.conflict else submission_files(sub)
        if files:
            out[sub.student] = code_of(files)
    return out
