"""From entries to prepared private copies: choosing the entry module of a folder or zip,
converting a notebook, writing the work folder."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import unicodedata
from pathlib import Path

from grader.intake.discovery import _open_class_dir, discover
from grader.intake.folders import _read_folder
from grader.intake.model import (NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN, SOLUTION_PY, WRITEUP_OUTSIDE_SUFFIXES, Entry,
                                 IntakeLimits, Submission)
from grader.intake.notebooks import convert_notebook
from grader.intake.safe import _Refused, _TooLarge, _check_code, _close_dir, _decode, _flag, _limit, _read_regular, _too_large
from grader.intake.zips import _read_zip
from grader.sandbox.loader import ALLOWED_TOP_LEVEL_PACKAGES


def _unwrap(files: dict[str, bytes], notes: list[str]) -> dict[str, bytes]:
    """Strip top-level folders that hold everything (``bob/hw3/solution.py`` -> ``solution.py``)."""
    while files and all("/" in rel for rel in files):
        tops = {rel.split("/", 1)[0] for rel in files}
        if len(tops) != 1:
            break
        top = tops.pop()
        notes.append(f"unwrapped the top-level folder {top}/")
        files = {rel[len(top) + 1:]: data for rel, data in files.items()}
    return files


def _tree_sha256(files: dict[str, bytes]) -> str:
    """SHA-256 over the sorted relative paths and contents, each length-prefixed (stable across
    machines and archive tools: no timestamps, permissions or archive layout)."""
    digest = hashlib.sha256(b"genmodel-grader tree v1\n")
    for rel in sorted(files, key=lambda path: path.encode("utf-8")):
        path = rel.encode("utf-8")
        data = files[rel]
        digest.update(len(path).to_bytes(8, "big") + path + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _choose_entry(label: str, files: dict[str, bytes]) -> str:
    top_py = sorted(rel for rel in files if "/" not in rel and rel.lower().endswith(".py"))
    top_nb = sorted(rel for rel in files if "/" not in rel and rel.lower().endswith(".ipynb"))
    if SOLUTION_PY in files:
        return SOLUTION_PY
    stems = {rel.rsplit(".", 1)[0] for rel in top_py}
    if len(top_nb) == 1 and top_nb[0].rsplit(".", 1)[0] not in stems:
        return top_nb[0]  # a notebook; the .py files beside it are its helpers
    if len(top_py) == 1 and not top_nb:
        return top_py[0]
    if not top_py and not top_nb:
        deeper = sorted(rel for rel in files if rel.lower().endswith((".py", ".ipynb")))
        hint = f" (found {', '.join(deeper[:3])} deeper: put {SOLUTION_PY} at the top)" if deeper else ""
        raise _Refused(f"{label} holds no .py or .ipynb file at its top{hint}")
    raise _Refused(f"{label} holds several candidate files and no {SOLUTION_PY}: "
                   f"{', '.join(top_nb + top_py)}")


def _shadow_notes(files: dict[str, bytes]) -> list[str]:
    """Notes for the submission's top-level modules (``random.py``, ``torch/__init__.py``) that
    would shadow a standard-library module or an allowed package: workdir is first on sys.path."""
    protected = set(ALLOWED_TOP_LEVEL_PACKAGES) | set(sys.stdlib_module_names)
    shadowing = sorted({rel for rel in files if "/" not in rel and rel[:-3] in protected
                        and rel.endswith(".py")}
                       | {rel.split("/", 1)[0] + "/" for rel in files
                          if rel.count("/") == 1 and rel.endswith("/__init__.py")
                          and rel.split("/", 1)[0] in protected})
    notes = []
    for name in shadowing:
        module = name.removesuffix(".py").removesuffix("/")
        what = "an allowed package" if module in ALLOWED_TOP_LEVEL_PACKAGES else "a standard-library module"
        notes.append(f"{name} has the name of {what} and will shadow it")
    return notes


def _workdir_name(student: str) -> str:
    """A safe, stable folder name for any id: an ASCII slug plus a hash of the id."""
    ascii_name = unicodedata.normalize("NFKD", student).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", ascii_name).strip("-_")[:40] or "student"
    return f"{slug}-{hashlib.sha256(student.encode('utf-8')).hexdigest()[:10]}"


WRITEUP_FOLDER_SUFFIX = ".writeups"  # beside the workdir: <slug>-<hash>.writeups (a slug has no dot)


def _write_workdir(work_root: Path, student: str, files: dict[str, bytes], suffix: str = "") -> Path:
    workdir = work_root / (_workdir_name(student) + suffix)
    if workdir.is_symlink() or workdir.is_file():
        workdir.unlink()
    elif workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(mode=0o755)
    for rel in sorted(files):
        target = workdir.joinpath(*rel.split("/"))
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _flag("O_NOFOLLOW") | _flag("O_CLOEXEC")
                     | _flag("O_BINARY"), 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(files[rel])
    return workdir


def _read_top_file(class_fd: int | str, entry: Entry, limit_mib: float) -> bytes:
    try:
        return _read_regular(class_fd, entry.name, _limit(limit_mib), entry.name)
    except _TooLarge as exc:
        what = ("per archive" if entry.kind == "zip" else "per notebook" if entry.kind == "ipynb"
            else "per write-up" if not entry.is_code else "per file")
        raise _too_large(entry.name, exc.size, limit_mib, what) from None


def _collect_tree(first: Entry, class_fd: int | str, limits: IntakeLimits, sub: Submission) -> tuple[dict, str]:
    """The files and entry of a zip or folder submission (sets sha256, mode and notes)."""
    label = first.name + ("/" if first.kind == "folder" else "")
    if first.kind == "zip":
        tree = _read_zip(first.name, _read_top_file(class_fd, first, limits.archive_size_mib), limits)
    else:
        tree = _read_folder(class_fd, first.name, limits)
    sub.notes.extend(tree.notes)
    files = _unwrap(tree.files, sub.notes)
    sub.sha256 = _tree_sha256(files)
    entry = _choose_entry(label, files)
    if entry.lower().endswith(".ipynb"):
        sub.mode = "definitions"
        python, markdown, notes = convert_notebook(files[entry], f"{label}: {entry}")
        sub.notes.extend(notes)
        sub.notes.extend(f"your {name} was replaced by the one generated from {entry}"
                         for name in (NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN) if name in files)
        # the notebook itself is not copied: its saved outputs can be large
        files = {rel: data for rel, data in files.items() if rel != entry}
        files.update({NOTEBOOK_ENTRY: python.encode(), NOTEBOOK_MARKDOWN: markdown.encode()})
        entry = NOTEBOOK_ENTRY
    else:
        _check_code(f"{label}: {entry}", files[entry])
        notebooks = sorted(rel for rel in files if "/" not in rel and rel.lower().endswith(".ipynb"))
        if notebooks:  # helper modules beside the entry are normal; a notebook may be a mix-up
            sub.notes.append(f"graded {entry}; not graded: {', '.join(notebooks)}")
    for rel in sorted(files):
        if rel.endswith(".py") and rel != entry:
            try:
                _decode(rel, files[rel])
            except _Refused as exc:
                sub.notes.append(f"{exc} (importing it will fail)")
    sub.notes.extend(_shadow_notes(files))
    return files, entry


def _collect(first: Entry, class_fd: int | str, limits: IntakeLimits, sub: Submission) -> tuple[dict, str]:
    """``({relative path: bytes}, entry)`` for the workdir; raises _Refused for bad input."""
    if first.kind == "py":
        data = _read_top_file(class_fd, first, limits.file_size_mib)
        sub.sha256 = hashlib.sha256(data).hexdigest()
        _check_code(first.name, data)
        return {SOLUTION_PY: data}, SOLUTION_PY
    if first.kind == "ipynb":
        data = _read_top_file(class_fd, first, limits.notebook_size_mib)
        sub.sha256 = hashlib.sha256(data).hexdigest()
        python, markdown, notes = convert_notebook(data, first.name)
        sub.notes.extend(notes)
        return {NOTEBOOK_ENTRY: python.encode(), NOTEBOOK_MARKDOWN: markdown.encode()}, NOTEBOOK_ENTRY
    return _collect_tree(first, class_fd, limits, sub)


def _read_writeups(class_fd: int | str, writeups: list[Entry], limits: IntakeLimits, sub: Submission) -> dict[str, bytes]:
    """The write-ups handed in as files of their own, ``{name: bytes}``; one that cannot be read is
    a note (the code is still graded)."""
    files: dict[str, bytes] = {}
    for entry in writeups:
        if entry.refusal:
            sub.notes.append(f"write-up {entry.name} is {entry.refusal}: refused")
            continue
        try:
            files[unicodedata.normalize("NFC", entry.name)] = _read_top_file(class_fd, entry, limits.writeup_size_mib)
        except _Refused as exc:
            sub.notes.append(f"write-up not read: {exc}")
            continue
        sub.notes.append(f"write-up {entry.name} read for the written answers"
                         + (f" ({entry.joined})" if entry.joined else ""))
    return files


def _write_writeups(work_root: Path, student: str, files: dict[str, bytes], sub: Submission) -> None:
    if files:
        sub.writeup_dir = _write_workdir(work_root, student, files, suffix=WRITEUP_FOLDER_SUFFIX)
        sub.writeups = sorted(files)


def _prepare_one(class_fd: int | str, class_dir: Path, work_root: Path, student: str,
                 entries: list[Entry], limits: IntakeLimits) -> Submission:
    code = [entry for entry in entries if entry.is_code]
    writeups = [entry for entry in entries if not entry.is_code]
    first = code[0] if code else writeups[0]
    shown = first.shown
    sub = Submission(student=student, source=class_dir / first.name, kind=first.kind, sha256="",
                     workdir=None, entry=None, mode="definitions" if first.kind == "ipynb" else "full")
    if len(code) > 1:
        names = [entry.shown for entry in code]
        same = len({unicodedata.normalize("NFC", name) for name in names}) < len(names)
        sub.error = "conflicting submissions: " + ", ".join(sorted(names)) + (
            " (the same name in different Unicode normalisations)" if same else "")
        sub.conflict = True
        return sub
    try:
        writeup_files = _read_writeups(class_fd, writeups, limits, sub)
        if not code:
            sub.error = ("no code was submitted, only the written answers in "
                         + ", ".join(entry.name for entry in writeups))
            _write_writeups(work_root, student, writeup_files, sub)
            return sub
    except OSError as exc:  # the work root, not the student
        sub.error = f"the private copy could not be prepared: {exc}"
        return sub
    if first.refusal:
        sub.error = f"{shown} is {first.refusal}: refused (submit a regular file or folder)"
        return sub
    try:
        files, entry = _collect(first, class_fd, limits, sub)
        for rel in sorted(files):   # a PDF report in a folder or zip is for the TA, not the sandbox
            if rel.lower().endswith(WRITEUP_OUTSIDE_SUFFIXES) and rel != entry:
                writeup_files.setdefault(rel, files.pop(rel))
        sub.workdir = _write_workdir(work_root, student, files)
        sub.entry = entry
        _write_writeups(work_root, student, writeup_files, sub)
    except _Refused as exc:
        sub.error = str(exc)
    except OSError as exc:  # the work root, not the student
        sub.error = f"the private copy could not be prepared: {exc}"
    except Exception as exc:  # noqa: BLE001 - input nobody foresaw costs this student, not the class
        sub.error = f"{shown} could not be read: {type(exc).__name__}: {exc}"
    if sub.error:
        sub.workdir = sub.entry = None
        if sub.writeup_dir is None:   # the code could not be read: its write-ups are still marked
            try:
                _write_writeups(work_root, student, writeup_files, sub)
            except OSError:
                pass
    return sub


def prepare(class_dir: Path, work_root: Path,
            limits: IntakeLimits = IntakeLimits()) -> tuple[list[Submission], list[str]]:
    """Prepare every student's submission of ``class_dir`` under ``work_root``.

    Returns ``(submissions, notes)``: one Submission per student id, sorted by id, and the class
    folder's own notes (strays and unknown entries). A bad submission has ``error`` set and
    ``workdir`` None; nothing a student submits raises. Each workdir is
    ``work_root/<ascii-slug>-<hash of the id>``, replaced if it exists; write-ups kept out of it
    (files of their own, PDFs of a folder or zip) go to ``writeup_dir``, the same name plus
    ``.writeups``, also for a student who handed in no code. Raises IntakeError if
    ``class_dir`` cannot be read.
    """
    class_dir = Path(class_dir)
    work_root = Path(work_root)
    groups, notes = discover(class_dir)
    work_root.mkdir(parents=True, exist_ok=True)
    class_fd = _open_class_dir(class_dir)
    try:
        submissions = [_prepare_one(class_fd, class_dir, work_root, student, entries, limits)
                       for student, entries in groups.items()]
    finally:
        _close_dir(class_fd)
    return submissions, notes
