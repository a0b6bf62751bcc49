"""Exports: pure modules that read a grading output folder (or one ``StudentResult``) and render
it for another tool or reader. Nothing here grades, except where a module says so
(``gradescope.run_in_gradescope_layout`` and ``diff.regrade_one`` call ``grader.run``).

- ``gradescope``: Gradescope's autograder ``results.json``, and the ``/autograder`` layout;
- ``lms``: a Canvas-style gradebook CSV joined with a roster, and a report of every mismatch;
- ``class_report``: one self-contained ``report.html`` (plots embedded as PNG data URIs);
- ``diff``: who changed score between two output folders, and why; regrading one student.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from grader.escape import clean_text, visible_controls
from grader.results import StudentResult

__all__ = ["OutputFolderError", "copy_as_data", "load_results", "load_summary", "md_code"]


class OutputFolderError(Exception):
    """A grading output folder that cannot be read (missing, or a results file that is not valid)."""


def load_results(out_dir: Path) -> dict[str, StudentResult]:
    """Every ``results/*.json`` of a grading output folder, by student id (sorted by id).

    Temporary files of an interrupted atomic write (``.NAME.*.tmp``) are skipped; a file that is
    not a valid result raises ``OutputFolderError`` naming it (an export must not silently miss
    a student)."""
    folder = Path(out_dir) / "results"
    if not folder.is_dir():
        raise OutputFolderError(f"{out_dir} is not a grading output folder: it has no results/ folder")
    results: dict[str, StudentResult] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            result = StudentResult.from_dict(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OutputFolderError(f"{path} is not a valid result: {type(error).__name__}: {error}") from None
        results[result.student] = result
    return dict(sorted(results.items()))


def load_summary(out_dir: Path) -> dict:
    """``summary.json`` of a grading output folder, or ``{}`` when it is missing or unreadable."""
    try:
        return json.loads((Path(out_dir) / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def md_code(text: object, in_table: bool = True) -> str:
    """Any text (a student id is arbitrary Unicode) as one Markdown code span: rendered verbatim,
    never as markup or HTML. Line breaks become spaces, other controls ``\\xNN``, lone
    surrogates U+FFFD (``grader.escape``); in a table, ``|`` is escaped (GFM splits
    cells before it reads code spans)."""
    value = visible_controls(" ".join(clean_text(text).splitlines())) or " "
    longest = run = 0
    for ch in value:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or value.startswith(" ") else ""
    if in_table:
        value = value.replace("|", "\\|")
    return f"{fence}{pad}{value}{pad}{fence}"


def copy_as_data(src: Path, dst: Path) -> list[str]:
    """Copy a submission entry (a file or a folder) without reading it as anything but bytes.

    Regular files and folders are copied; symbolic links are recreated as links, never followed
    (intake then refuses them, as it would have in the original place); FIFOs are recreated
    empty (intake refuses them without opening them). Anything else is skipped: the returned
    notes say what. ``dst`` must not exist."""
    notes: list[str] = []
    src, dst = Path(src), Path(dst)

    def one(path: Path, target: Path) -> bool:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(path), target)
        elif stat.S_ISREG(mode):
            shutil.copyfile(path, target, follow_symlinks=False)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target)
        elif stat.S_ISDIR(mode):
            target.mkdir()
            return True
        else:
            notes.append(f"skipped {path.name}: not a regular file, folder, link or FIFO")
        return False

    if not one(src, dst):
        return notes
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        target = dst / here.relative_to(src)
        for name in sorted(dirnames) + sorted(filenames):
            one(here / name, target / name)
    return notes
