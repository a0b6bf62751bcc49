"""Output file names from student ids: bounded, unique, stable, safe on every file system.

A student id is whatever the class folder's entry was called (any Unicode, spaces, newlines,
252 characters, ...); it stays whole in the JSON record and in ``scores.csv``, but the files
written for a student (``results/<stem>.json``, ``feedback/<stem>.md``,
``feedback/<stem>_workhouse.png``, ``logs/<stem>.txt``) are named by ``file_stem(id)``:

- a *plain* id keeps its name: ``^[a-z0-9][a-z0-9_.-]*$`` (lowercase ASCII only, so two plain
  ids never clash on a case-insensitive or normalising file system), not a Windows device name
  (``con``, ``nul``, ``com1``, ...), not ending in ``.``, and at most ``MAX_NAME_BYTES`` with
  the longest suffix (``LONGEST_SUFFIX``) appended;
- any other id becomes ``<readable prefix>+<first HASH_CHARS hex of sha256(id as UTF-8)>``: the
  prefix is the id folded to lowercase ASCII (accents dropped, every other character ``_``),
  at most ``PREFIX_CHARS``; ``+`` is not a plain character, so a hashed stem never equals a
  plain one, and the hash of the exact id keeps ``Alice``/``alice`` or composed/decomposed
  ``é`` apart.

Pure and deterministic (no salt, no locale, no file system look-up): resume and regrade find
the same file on any machine.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["file_stem", "is_plain", "MAX_NAME_BYTES", "LONGEST_SUFFIX"]

MAX_NAME_BYTES = 200          # a whole file name, suffix included (file systems allow 255)
LONGEST_SUFFIX = "_workhouse.png"   # grader.run.WORKHOUSE_PNG, the longest suffix written
HASH_CHARS = 16               # hex digits of sha256 (64 bits)
PREFIX_CHARS = 48             # readable part of a hashed stem
SEPARATOR = "+"               # between prefix and hash; never in a plain id

_PLAIN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_NOT_PREFIX = re.compile(r"[^a-z0-9_.-]+")
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                              *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))})


def is_plain(student_id: str) -> bool:
    """True when ``student_id`` is its own file stem (see the module's docstring)."""
    return (_PLAIN.fullmatch(student_id) is not None
            and not student_id.endswith(".")
            and student_id.split(".")[0] not in _WINDOWS_DEVICES
            and len(student_id) + len(LONGEST_SUFFIX.encode()) <= MAX_NAME_BYTES)


def _prefix(student_id: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", student_id).encode("ascii", "ignore").decode("ascii")
    prefix = _NOT_PREFIX.sub("_", ascii_text.lower())
    return prefix.lstrip("._-")[:PREFIX_CHARS].rstrip(".") or "id"


def file_stem(student_id: str) -> str:
    """The file name stem for ``student_id``: the id itself when plain, else a readable prefix
    and a hash of the exact id (``"Alice"`` -> ``"alice+3bc51062973c458d"``)."""
    if is_plain(student_id):
        return student_id
    digest = hashlib.sha256(student_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{_prefix(student_id)}{SEPARATOR}{digest}"
