"""The intake's data: its limits, what it reads (``Entry``) and what it prepares (``Submission``),
and the file names it gives the prepared copies."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class IntakeLimits:
    """Every intake limit, with its default (restrictive for one student's homework)."""

    file_size_mib: float = 5.0  # one .py file, or any other file kept in a folder/zip
    notebook_size_mib: float = 32.0  # one .ipynb (saved outputs with images make notebooks big)
    archive_size_mib: float = 64.0  # one .zip as submitted
    total_size_mib: float = 48.0  # all kept files of one submission, uncompressed (under the
    # sandbox's Limits.workdir_mib of 64, with room for the files generated from a notebook)
    member_count: int = 2000  # files and folders in one folder or zip, strays included
    path_depth: int = 16  # parts of a file's path inside the submission (a/b/c.py has 3)
    compression_ratio: float = 100.0  # uncompressed:compressed, zip members at or over ...
    ratio_checked_from_mib: float = 1.0  # ... this size (small files may compress very well)
    writeup_size_mib: float = 32.0  # one written report (.pdf, .md, .txt, .tex), beside the code or
    # inside a folder/zip (a PDF is kept out of the sandbox's copy, so not counted in total_size_mib)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"IntakeLimits.{name} must be a positive number, got {value!r}")


SUFFIX_KINDS = {".py": "py", ".ipynb": "ipynb", ".zip": "zip"}
#: Written answers handed in as files of their own (``alice.py`` and ``alice.pdf``): they join the
#: code of the same student, they are never code themselves.
WRITEUP_SUFFIXES = (".md", ".txt", ".tex", ".pdf")
WRITEUP_KIND = "writeup"
#: Files of a folder or zip that are kept out of the sandbox's copy (beside ``writeup_dir``'s).
WRITEUP_OUTSIDE_SUFFIXES = (".pdf",)
STRAY_NAMES = frozenset({
    ".DS_Store", ".ipynb_checkpoints", "__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini",
})  # and every name starting with "."
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib")
SOLUTION_PY = "solution.py"
NOTEBOOK_ENTRY = "notebook_solution.py"
NOTEBOOK_MARKDOWN = "notebook_markdown.md"


class IntakeError(Exception):
    """The class folder itself cannot be read (not a student's fault)."""


@dataclass(frozen=True)
class Entry:
    """One entry of the class folder that names a student."""

    name: str  # as on disk
    student: str  # the id: name without extension, NFC
    kind: str  # "py" | "ipynb" | "zip" | "folder" | "writeup" (a .md, .txt, .tex or .pdf)
    refusal: str | None = None  # why it is not read (a symbolic link, a FIFO, ...), else None
    joined: str = ""  # why a write-up named otherwise belongs to this id ("the same Canvas user id 12345")

    @property
    def is_code(self) -> bool:
        return self.kind != WRITEUP_KIND

    @property
    def shown(self) -> str:
        return self.name + ("/" if self.kind == "folder" else "")


@dataclass
class Submission:
    """One student's submission, prepared (or not, with the reason in ``error``)."""

    student: str  # the entry's name without extension, NFC
    source: Path  # the entry in the class folder (the first one, for a conflict)
    kind: str  # "py" | "ipynb" | "zip" | "folder"; "writeup" when only write-ups were handed in
    sha256: str  # of the code: .py/.ipynb: of the file's bytes; zip/folder: see _tree_sha256; "" if unread
    workdir: Path | None  # the private copy under the work root; None on error
    entry: str | None  # file name in workdir of the module to load; None on error
    mode: str  # "full" (a .py entry) or "definitions" (a notebook entry)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the load_error reason, else None
    conflict: bool = False
    #: write-ups kept out of the sandbox's copy: handed in as files of their own (``alice.pdf``
    #: beside ``alice.py``) or PDFs found in a folder/zip; None when there are none. Set also
    #: when ``error`` is (a student who handed in only a report still has answers to mark).
    writeup_dir: Path | None = None
    writeups: list[str] = field(default_factory=list)  # their paths in writeup_dir, sorted
