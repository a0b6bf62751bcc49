"""Intake: turn a class folder into one prepared, private copy per student, ready for the sandbox.

This runs in the trusted grader process and treats every submission as DATA: it reads bytes and
JSON, never imports, executes, compiles or parses student code (a pathological file can crash the
compiler; syntax errors are found inside the sandbox, see ``grader.sandbox.loader``).

Each entry of the class folder is one student, whose id is the entry's name without its extension,
normalised to NFC (any Unicode, spaces, names like ``--out`` are ordinary ids):

- ``NAME.py``: the whole module, copied as ``solution.py``; loaded in mode ``"full"``.
- ``NAME.ipynb``: converted here, as data, to ``notebook_solution.py`` (code cells in order, IPython
  syntax commented out, a ``# %% cell N`` marker before each cell) and ``notebook_markdown.md``
  (the markdown cells); loaded in mode ``"definitions"``.
- ``NAME.zip`` or a folder ``NAME/``: ``solution.py``, or else the single ``.py`` or single
  ``.ipynb`` at its top, plus helper modules and data files. Content that sits in one top-level
  folder is unwrapped (repeatedly). A .py entry keeps its name in the copy; a notebook entry is
  replaced by its two converted files, as for ``NAME.ipynb``.

Two entries with the same id are a conflict, reported, never resolved. Strays (``.DS_Store``,
``__MACOSX``, dotfiles, ...) are ignored with a note, also inside folders and zips; compiled files
(``.pyc``, ``.so``, ...) too. Symbolic links, FIFOs, sockets and devices are never followed or
opened (``lstat``, then ``O_NOFOLLOW | O_NONBLOCK`` and an ``S_ISREG`` check on the open file).
Zips are extracted member by member with checks on names, types, sizes and compression ratio.

Every limit is declared once, with its unit, in ``IntakeLimits``.

The package, by concern:

- ``model``: ``IntakeLimits``, ``Entry``, ``Submission``, ``IntakeError`` and the prepared files' names;
- ``safe``: reading files and folders without following links (``DIR_FD``), decoding text;
- ``discovery``: the class folder's entries grouped by student (``discover``);
- ``folders`` and ``zips``: a folder or zip submission read into ``{relative path: bytes}``;
- ``notebooks``: ``convert_notebook``, ``markdown_of_notebook``; ``cells``: the cell markers' one
  definition (``# %% cell N`` before a code cell, ``<!-- cell N -->`` before a markdown cell);
- ``workdirs``: choosing the entry module and writing the private copies (``prepare``).
"""
from __future__ import annotations

from grader.intake.cells import CELL_MARKER, CELL_MARKER_RE, cell_marker, cell_number
from grader.intake.discovery import discover
from grader.intake.model import (
    COMPILED_SUFFIXES,
    MIB,
    NOTEBOOK_ENTRY,
    NOTEBOOK_MARKDOWN,
    SOLUTION_PY,
    STRAY_NAMES,
    SUFFIX_KINDS,
    Entry,
    IntakeError,
    IntakeLimits,
    Submission,
)
from grader.intake.notebooks import convert_notebook, markdown_of_notebook
from grader.intake.workdirs import prepare

__all__ = [
    "CELL_MARKER",
    "CELL_MARKER_RE",
    "COMPILED_SUFFIXES",
    "Entry",
    "IntakeError",
    "IntakeLimits",
    "MIB",
    "NOTEBOOK_ENTRY",
    "NOTEBOOK_MARKDOWN",
    "SOLUTION_PY",
    "STRAY_NAMES",
    "SUFFIX_KINDS",
    "Submission",
    "cell_marker",
    "cell_number",
    "convert_notebook",
    "discover",
    "markdown_of_notebook",
    "prepare",
]
