"""Discovery: which entries of the class folder belong to which student."""
from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from grader.intake.model import SUFFIX_KINDS, WRITEUP_KIND, WRITEUP_SUFFIXES, Entry, IntakeError
from grader.intake.names import canvas_user_id
from grader.intake.safe import _close_dir, _file_type, _is_stray, _open_dir, _valid_text

_EXPECTED = "expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/"
_EXPECTED_FILES = _EXPECTED + ", and written answers as NAME.md, NAME.txt, NAME.tex or NAME.pdf"
#: The class folder's own description, not a student's write-up.
_CLASS_FILES = frozenset({"readme"})


def _open_class_dir(class_dir: Path) -> int | str:
    try:
        return _open_dir(class_dir)
    except FileNotFoundError:
        raise IntakeError(f"class folder {class_dir} does not exist") from None
    except NotADirectoryError:
        raise IntakeError(f"class folder {class_dir} is not a folder") from None
    except OSError as exc:
        raise IntakeError(f"class folder {class_dir} cannot be read: {exc.strerror}") from None


def discover(class_dir: Path) -> tuple[dict[str, list[Entry]], list[str]]:
    """Group the class folder's entries by student id: ``({id: [Entry, ...]}, notes)``.

    Ids are sorted, and so are each id's entries (by name). A student's code is one entry
    (``.py``, ``.ipynb``, ``.zip`` or a folder); more than one code entry for an id is a conflict
    that ``prepare`` reports. Write-ups (``.md``, ``.txt``, ``.tex``, ``.pdf``) join the code of the
    same id, or, for Canvas download names (``grader.intake.names``), the code of the same Canvas
    user id (``joined`` says so); a write-up with no code is a student of its own (``prepare``
    reports the missing code and keeps the write-up for marking). ``README.*`` is the class
    folder's own. Strays, unknown files and special files that name no student go to the notes.
    Raises IntakeError if ``class_dir`` cannot be read.
    """
    fd = _open_class_dir(Path(class_dir))
    try:
        with os.scandir(fd) as scan:
            listing = sorted(((item.name, item.stat(follow_symlinks=False).st_mode) for item in scan))
    finally:
        _close_dir(fd)

    groups: dict[str, list[Entry]] = {}
    notes: list[str] = []
    for name, mode in listing:
        # a name with a newline or another control character is still a student: the id is
        # kept whole (records, scores.csv), escaped where rendered, and output files are named
        # by grader.filenames.file_stem
        if not _valid_text(name):
            notes.append(f"ignored entry {ascii(name)}: its name is not valid UTF-8 text")
            continue
        if _is_stray(name):
            notes.append(f"ignored stray entry {name}")
            continue
        suffix = next((s for s in (*SUFFIX_KINDS, *WRITEUP_SUFFIXES)
                       if name.lower().endswith(s) and len(name) > len(s)), None)
        if stat.S_ISDIR(mode):
            entry = Entry(name, unicodedata.normalize("NFC", name), "folder")
        elif suffix is not None:
            refusal = None if stat.S_ISREG(mode) else _file_type(mode)
            student = unicodedata.normalize("NFC", name[: -len(suffix)])
            if suffix in WRITEUP_SUFFIXES and student.casefold() in _CLASS_FILES:
                notes.append(f"ignored {name}: the class folder's own description, not a submission")
                continue
            entry = Entry(name, student, SUFFIX_KINDS.get(suffix, WRITEUP_KIND), refusal)
        elif stat.S_ISREG(mode):
            notes.append(f"ignored {name}: not a submission ({_EXPECTED_FILES})")
            continue
        else:
            notes.append(f"refused {name}: it is {_file_type(mode)} ({_EXPECTED})")
            continue
        groups.setdefault(entry.student, []).append(entry)
    _join_canvas_writeups(groups)
    return dict(sorted(groups.items())), notes


def _join_canvas_writeups(groups: dict[str, list[Entry]]) -> None:
    """Move write-up-only ids into the id whose code has the same Canvas user id (one file per
    upload: ``smithjohn_12345_67890_solution.py`` and ``smithjohn_12345_67890_report.pdf``). When
    several ids of one user id hold code, the write-ups join the first (by id) and say so; code
    entries are never merged (each keeps its id, as the LMS export expects)."""
    code_ids: dict[str, list[str]] = {}
    for student, entries in sorted(groups.items()):
        uid = canvas_user_id(student)
        if uid is not None and any(e.is_code for e in entries):
            code_ids.setdefault(uid, []).append(student)
    for student in sorted(groups):
        entries = groups[student]
        uid = canvas_user_id(student)
        if uid is None or uid not in code_ids or any(e.is_code for e in entries):
            continue
        target = code_ids[uid][0]
        why = f"the same Canvas user id {uid} as {target}"
        if len(code_ids[uid]) > 1:
            why += f" (of {len(code_ids[uid])} code submissions with that id: {', '.join(code_ids[uid])})"
        groups[target].extend(Entry(e.name, e.student, e.kind, e.refusal, why) for e in entries)
        groups[target].sort(key=lambda e: e.name)
        del groups[student]
