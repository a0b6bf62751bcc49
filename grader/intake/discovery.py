"""Discovery: which entries of the class folder belong to which student."""
from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from grader.intake.model import SUFFIX_KINDS, Entry, IntakeError
from grader.intake.safe import _close_dir, _file_type, _is_stray, _open_dir, _valid_text

_EXPECTED = "expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/"


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

    Ids are sorted, and so are each id's entries (by name); more than one entry for an id is a
    conflict that ``prepare`` reports. Strays, unknown files and special files that name no
    student go to the notes. Raises IntakeError if ``class_dir`` cannot be read.
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
        suffix = next((s for s in SUFFIX_KINDS if name.lower().endswith(s) and len(name) > len(s)), None)
        if stat.S_ISDIR(mode):
            entry = Entry(name, unicodedata.normalize("NFC", name), "folder")
        elif suffix is not None:
            refusal = None if stat.S_ISREG(mode) else _file_type(mode)
            student = unicodedata.normalize("NFC", name[: -len(suffix)])
            entry = Entry(name, student, SUFFIX_KINDS[suffix], refusal)
        elif stat.S_ISREG(mode):
            notes.append(f"ignored {name}: not a submission ({_EXPECTED})")
            continue
        else:
            notes.append(f"refused {name}: it is {_file_type(mode)} ({_EXPECTED})")
            continue
        groups.setdefault(entry.student, []).append(entry)
    return dict(sorted(groups.items())), notes
