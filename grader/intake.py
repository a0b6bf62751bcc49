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
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import sys
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox.loader import ALLOWED_TOP_LEVEL_PACKAGES, CELL_MARKER_RE

__all__ = [
    "Entry",
    "IntakeError",
    "IntakeLimits",
    "Submission",
    "convert_notebook",
    "discover",
    "prepare",
]

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

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"IntakeLimits.{name} must be a positive number, got {value!r}")


SUFFIX_KINDS = {".py": "py", ".ipynb": "ipynb", ".zip": "zip"}
STRAY_NAMES = frozenset({
    ".DS_Store", ".ipynb_checkpoints", "__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini",
})  # and every name starting with "."
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib")
SOLUTION_PY = "solution.py"
NOTEBOOK_ENTRY = "notebook_solution.py"
NOTEBOOK_MARKDOWN = "notebook_markdown.md"
CELL_MARKER = "# %% cell {number}"  # grader.sandbox.loader.CELL_MARKER_RE reads it back

def _flag(name: str) -> int:
    return getattr(os, name, 0)  # Windows has no O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, O_CLOEXEC


_OPEN_FILE = os.O_RDONLY | _flag("O_NOFOLLOW") | _flag("O_NONBLOCK") | _flag("O_CLOEXEC") | _flag("O_BINARY")
_OPEN_DIR = os.O_RDONLY | _flag("O_DIRECTORY") | _flag("O_NOFOLLOW") | _flag("O_CLOEXEC")
#: Folders are read through file descriptors (``dir_fd``), so that an entry swapped for a link
#: after it was listed is never followed. Where the platform has no ``dir_fd`` (Windows: the
#: student's self-check) a folder handle is its path, and links are refused by ``lstat`` first.
DIR_FD = os.open in os.supports_dir_fd and os.scandir in os.supports_fd
_READ_CHUNK = 1 << 16
_EXPECTED = "expected NAME.py, NAME.ipynb, NAME.zip or a folder NAME/"


class IntakeError(Exception):
    """The class folder itself cannot be read (not a student's fault)."""


class _Refused(Exception):
    """One submission cannot be prepared; the message becomes ``Submission.error``."""


@dataclass(frozen=True)
class Entry:
    """One entry of the class folder that names a student."""

    name: str  # as on disk
    student: str  # the id: name without extension, NFC
    kind: str  # "py" | "ipynb" | "zip" | "folder"
    refusal: str | None = None  # why it is not read (a symbolic link, a FIFO, ...), else None


@dataclass
class Submission:
    """One student's submission, prepared (or not, with the reason in ``error``)."""

    student: str  # the entry's name without extension, NFC
    source: Path  # the entry in the class folder (the first one, for a conflict)
    kind: str  # "py" | "ipynb" | "zip" | "folder"
    sha256: str  # .py/.ipynb: of the file's bytes; zip/folder: see _tree_sha256; "" if unread
    workdir: Path | None  # the private copy under the work root; None on error
    entry: str | None  # file name in workdir of the module to load; None on error
    mode: str  # "full" (a .py entry) or "definitions" (a notebook entry)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the load_error reason, else None
    conflict: bool = False


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _mib(size: float) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB / 10 else f"{size / 1024:.0f} KiB"


def _limit(mib: float) -> int:
    return int(mib * MIB)


def _is_stray(name: str) -> bool:
    return name in STRAY_NAMES or name.startswith(".")


def _valid_text(name: str) -> bool:
    """False for names that are not valid UTF-8 on disk (surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_name(name: str) -> bool:
    """False for names that are not valid UTF-8 on disk (surrogate escapes) or hold controls
    (for files inside a submission; a class folder entry with controls still names a student)."""
    return _valid_text(name) and not any(unicodedata.category(char) == "Cc" for char in name)


def _file_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _decode(label: str, data: bytes) -> str:
    """The text of a UTF-8 file (a BOM is allowed), or _Refused saying where it is not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _Refused(
            f"{label} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}, column {column}) cannot be decoded ({exc.reason}); save the file as UTF-8"
        ) from None
    if "\0" in text:
        offset = data.index(b"\0")
        line = data.count(b"\n", 0, offset) + 1
        raise _Refused(f"{label} contains a NUL byte at byte offset {offset} (line {line}): "
                       "it is not a text file (saved as UTF-16?)")
    return text.removeprefix("\ufeff")


def _check_code(label: str, data: bytes) -> str:
    text = _decode(label, data)
    if not text.strip():
        raise _Refused(f"{label} is empty")
    return text


def _read_regular(dir_fd: int | str, name: str, limit: int, label: str) -> bytes:
    """Read ``name`` (in ``dir_fd``) without following a link or blocking on a FIFO; at most
    ``limit`` bytes, else _TooLarge."""
    try:
        if DIR_FD:
            fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
        else:
            path = os.path.join(dir_fd, name)
            if os.path.islink(path):
                raise OSError(getattr(os, "ELOOP", 40), "a symbolic link")
            fd = os.open(path, _OPEN_FILE)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", 40):
            raise _Refused(f"{label} is a symbolic link: refused") from None
        raise _Refused(f"{label} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(f"{label} is {_file_type(info.st_mode)}, not a regular file: refused")
        if info.st_size > limit:
            raise _TooLarge(info.st_size)
        chunks, size = [], 0
        while chunk := os.read(fd, min(_READ_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _TooLarge(size)
        return b"".join(chunks)
    finally:
        os.close(fd)


class _TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def _too_large(label: str, size: int, limit_mib: float, what: str = "per file") -> _Refused:
    return _Refused(f"{label} is {_mib(size)}, over the limit of {limit_mib:g} MiB {what}")


# --------------------------------------------------------------------------------------------
# Discovery: which entries belong to which student
# --------------------------------------------------------------------------------------------

def _open_dir(name: str | Path, parent: int | str | None = None) -> int | str:
    """A handle on folder ``name`` (in ``parent``, or a path); OSError if it is not one, or a link."""
    if DIR_FD:
        if parent is None:
            return os.open(name, os.O_RDONLY | _flag("O_DIRECTORY") | _flag("O_CLOEXEC"))
        return os.open(name, _OPEN_DIR, dir_fd=parent)
    path = str(name) if parent is None else os.path.join(parent, name)
    if parent is not None and os.path.islink(path):
        raise OSError(getattr(os, "ELOOP", 40), "a symbolic link")
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such folder", path)
    if not os.path.isdir(path):
        raise NotADirectoryError(20, "not a folder", path)
    return path


def _close_dir(handle: int | str) -> None:
    if isinstance(handle, int):
        os.close(handle)


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


# --------------------------------------------------------------------------------------------
# Reading folders and zips into {relative path: bytes}
# --------------------------------------------------------------------------------------------

class _Tree:
    """The files of one folder or zip submission, checked against the limits as they come."""

    def __init__(self, label: str, limits: IntakeLimits):
        self.label = label
        self.limits = limits
        self.files: dict[str, bytes] = {}
        self.notes: list[str] = []
        self.members = 0
        self.total = 0

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def count(self) -> None:
        self.members += 1
        if self.members > self.limits.member_count:
            raise _Refused(f"{self.label} holds more than {self.limits.member_count} files and "
                           "folders, over the limit")

    def check_depth(self, parts: list[str], folder: bool = False) -> None:
        """A file's path may have ``path_depth`` parts; a folder's files would have one more."""
        if len(parts) + folder > self.limits.path_depth:
            shown = "/".join(parts) + ("/..." if folder else "")
            raise _Refused(f"{self.label}: {shown} is more than {self.limits.path_depth} levels "
                           "deep, over the limit")

    def skip(self, parts: list[str]) -> bool:
        """True (with a note) for strays and compiled files, which are not kept."""
        for index, part in enumerate(parts):
            if _is_stray(part):
                self.note(f"ignored stray entry {'/'.join(parts[: index + 1])}")
                return True
        if parts[-1].lower().endswith(COMPILED_SUFFIXES):
            self.note(f"ignored compiled file {'/'.join(parts)} (only source files are graded)")
            return True
        return False

    def size_limit(self, rel: str) -> tuple[int, float]:
        mib = self.limits.notebook_size_mib if rel.lower().endswith(".ipynb") else self.limits.file_size_mib
        return _limit(mib), mib

    def oversize(self, rel: str, size: int) -> None:
        """A file over its limit: an error for code, a note (file dropped) for anything else."""
        limit, mib = self.size_limit(rel)
        if rel.lower().endswith((".py", ".ipynb")):
            raise _too_large(f"{self.label}: {rel}", size, mib)
        self.note(f"dropped {rel}: {_mib(size)}, over the limit of {mib:g} MiB per file")

    def reserve(self, size: int) -> None:
        self.total += size
        if self.total > _limit(self.limits.total_size_mib):
            raise _Refused(f"{self.label} holds more than {self.limits.total_size_mib:g} MiB, "
                           "over the limit per submission")

    def add(self, parts: list[str], data: bytes) -> None:
        rel = unicodedata.normalize("NFC", "/".join(parts))
        if rel in self.files:
            raise _Refused(f"{self.label} holds {rel} twice (names differing only in Unicode "
                           "normalisation, or a repeated zip member)")
        self.files[rel] = data


def _read_folder(class_fd: int | str, name: str, limits: IntakeLimits) -> _Tree:
    tree = _Tree(f"{name}/", limits)
    try:
        root_fd = _open_dir(name, class_fd)
    except OSError as exc:
        raise _Refused(f"{name}/ cannot be opened: {exc.strerror}") from None
    try:
        _walk(root_fd, [], tree)
    finally:
        _close_dir(root_fd)
    return tree


def _walk(dir_fd: int | str, prefix: list[str], tree: _Tree) -> None:
    listing = []
    with os.scandir(dir_fd) as scan:
        for item in scan:  # counted as listed: a folder of a million files stops early
            tree.count()
            listing.append((item.name, item.stat(follow_symlinks=False)))
    for name, info in sorted(listing, key=lambda pair: pair[0]):
        parts = prefix + [name]
        rel = "/".join(parts)
        if not _valid_name(name):
            tree.note(f"ignored {ascii(rel)}: its name is not valid UTF-8 text")
            continue
        if tree.skip(parts):
            continue
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            tree.check_depth(parts, folder=True)
            try:
                sub_fd = _open_dir(name, dir_fd)
            except OSError as exc:
                tree.note(f"refused {rel}/: cannot be opened ({exc.strerror})")
                continue
            try:
                _walk(sub_fd, parts, tree)
            finally:
                _close_dir(sub_fd)
        elif stat.S_ISREG(mode):
            tree.check_depth(parts)
            limit, _ = tree.size_limit(rel)
            try:
                data = _read_regular(dir_fd, name, limit, f"{tree.label}{rel}")
            except _TooLarge as exc:
                tree.oversize(rel, exc.size)
                continue
            except _Refused as exc:  # replaced by a link or a FIFO since it was listed
                tree.note(f"refused {rel}: {exc}")
                continue
            tree.reserve(len(data))
            tree.add(parts, data)
        else:
            tree.note(f"refused {rel}: it is {_file_type(mode)}, not a regular file")


_DRIVE = re.compile(r"^[A-Za-z]:")


def _zip_entry_count(raw: bytes) -> int | None:
    """The member count the archive's end record declares, read before zipfile builds its list."""
    try:
        record = zipfile._EndRecData(io.BytesIO(raw))  # noqa: SLF001 (stable since Python 2)
        return None if record is None else int(record[zipfile._ECD_ENTRIES_TOTAL])  # noqa: SLF001
    except Exception:
        return None


def _read_zip(name: str, raw: bytes, limits: IntakeLimits) -> _Tree:
    tree = _Tree(name, limits)
    declared = _zip_entry_count(raw)
    if declared is not None and declared > limits.member_count:
        raise _Refused(f"{name} declares {declared} members, over the limit of {limits.member_count}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = sorted(archive.infolist(), key=lambda info: info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError,
            OSError, struct.error) as exc:
        raise _Refused(f"{name} is not a valid zip archive: {exc or type(exc).__name__}") from None

    planned: list[tuple[list[str], zipfile.ZipInfo]] = []
    folders: set[str] = set()
    for info in members:
        tree.count()
        member = info.filename.replace("\\", "/")
        shown = ascii(info.filename) if not info.filename.isprintable() else repr(info.filename)
        if "\0" in member:
            raise _Refused(f"{name}: member {shown} has a NUL in its name: refused")
        if member.startswith("/") or _DRIVE.match(member):
            raise _Refused(f"{name}: member {shown} has an absolute path: refused")
        parts = [part for part in member.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise _Refused(f"{name}: member {shown} points outside the archive (path traversal "
                           "with '..'): refused")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _Refused(f"{name}: member {shown} is a symbolic link: refused")
        if not parts:
            continue
        if info.is_dir() or member.endswith("/") or stat.S_ISDIR(mode):
            folders.add("/".join(parts))
            continue
        if any(not _valid_name(part) for part in parts):
            tree.note(f"ignored member {ascii(member)}: its name is not valid text")
            continue
        if tree.skip(parts):
            continue
        rel = "/".join(parts)
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            tree.note(f"refused {rel}: the archive marks it as {_file_type(mode)}")
            continue
        if info.flag_bits & 0x1:
            raise _Refused(f"{name}: member {rel} is encrypted: submit an archive without a password")
        tree.check_depth(parts)
        if (info.file_size >= _limit(limits.ratio_checked_from_mib)
                and info.file_size > limits.compression_ratio * max(info.compress_size, 1)):
            ratio = info.file_size / max(info.compress_size, 1)
            raise _Refused(
                f"{name}: member {rel} would expand to {_mib(info.file_size)} from "
                f"{_mib(info.compress_size)} (ratio {ratio:.0f}:1, over the limit of "
                f"{limits.compression_ratio:g}:1): refused as a possible zip bomb")
        limit, _ = tree.size_limit(rel)
        if info.file_size > limit:
            tree.oversize(rel, info.file_size)
            continue
        tree.reserve(info.file_size)
        planned.append((parts, info))

    for parts, info in planned:
        rel = "/".join(parts)
        if rel in folders or any("/".join(parts[:i]) in tree.files for i in range(1, len(parts))):
            raise _Refused(f"{name}: {rel} is both a file and a folder")
        tree.add(parts, _extract(name, archive, info, rel))
    return tree


def _extract(name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> bytes:
    """One member's bytes, never more than it declared (the limits were checked on that)."""
    chunks, size = [], 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_READ_CHUNK):
                size += len(chunk)
                if size > info.file_size:
                    raise _Refused(f"{name}: member {rel} expands past its declared size of "
                                   f"{info.file_size} bytes: refused as a possible zip bomb")
                chunks.append(chunk)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError, RuntimeError,
            zlib.error, struct.error) as exc:  # corrupt data, bad CRC, unknown compression
        raise _Refused(f"{name}: member {rel} cannot be extracted: "
                       f"{exc or type(exc).__name__}") from None
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# From a tree of files to an entry
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Notebooks, as data
# --------------------------------------------------------------------------------------------

KEEP_BODY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
# Every other cell magic (bash, sh, script, writefile, html, javascript, js, latex, markdown,
# svg, perl, ruby, python, file, system, !, ...) comments out the whole cell.

_ASSIGN_FROM_IPYTHON = re.compile(r"^[A-Za-z_][\w.\[\]'\", ()]*=\s*[!%]")
_SPECIAL = re.compile(r"[#'\"()\[\]{}]")
_HELP = re.compile(r"^(\?{1,2}[\w.*]*|[A-Za-z_*][\w.*]*\?{1,2})$")

_NOTEBOOK_HEADER = (
    "# Generated by the grader from a Jupyter notebook: its code cells in order, with IPython\n"
    "# syntax (magics, shell escapes, help) commented out. '# %% cell N' starts the notebook's\n"
    "# cell N (counting every cell from 1).\n"
)


class _Scanner:
    """Tracks open brackets, triple-quoted strings and backslash continuations, line by line,
    so that IPython syntax is only recognised where a statement can start."""

    def __init__(self):
        self.triple: str | None = None
        self.depth = 0
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.triple is None and self.depth == 0 and not self.continued

    @staticmethod
    def _close(line: str, start: int, quote: str) -> int:
        """The index after the quote closing a string opened before ``start``; -1 if none."""
        index = line.find(quote, start)
        while index >= 0:
            before = index  # an odd run of backslashes right before the quote escapes it
            while before > start and line[before - 1] == "\\":
                before -= 1
            if (index - before) % 2 == 0:
                return index + len(quote)
            index = line.find(quote, index + 1)
        return -1

    def feed(self, line: str) -> None:
        index = 0
        if self.triple is not None:
            end = self._close(line, 0, self.triple)
            if end < 0:
                return
            index, self.triple = end, None
        self.continued = False
        while (match := _SPECIAL.search(line, index)) is not None:
            char = match.group()
            index = match.start()
            if char == "#":
                return
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            else:
                quote = char * 3 if line.startswith(char * 3, index) else char
                end = self._close(line, index + len(quote), quote)
                if end < 0:
                    if len(quote) == 3:
                        self.triple = quote
                        return
                    break
                index = end
                continue
            index += 1
        self.continued = line.endswith("\\")


def _ipython_kind(stripped: str) -> str | None:
    """"shell", "magic" or "help" for a line of IPython syntax, None for Python."""
    if stripped.startswith("!"):
        return "shell"
    if stripped.startswith("%"):
        return "magic"
    if _HELP.match(stripped):
        return "help"
    match = _ASSIGN_FROM_IPYTHON.match(stripped)
    if match:
        return "shell" if stripped[match.end() - 1] == "!" else "magic"
    return None


def _convert_cell(lines: list[str], counts: dict[str, int], cell_magics: dict[str, list[str]]) -> list[str]:
    out = list(lines)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return []
    start = 0
    if lines[first].startswith("%%"):
        magic = (lines[first][2:].split() or [""])[0]
        if magic not in KEEP_BODY_CELL_MAGICS:
            cell_magics.setdefault("commented", []).append(f"%%{magic}")
            return ["# " + line if line else line for line in lines]
        cell_magics.setdefault("unwrapped", []).append(f"%%{magic}")
        out[first] = "# " + lines[first]
        start = first + 1

    scanner = _Scanner()
    in_block = False  # a previous code line opened or sits in an indented block
    continuing = False  # the previous line was commented out and ended with a backslash
    for index in range(start, len(lines)):
        line = lines[index]
        stripped = line.strip()
        kind = _ipython_kind(stripped) if scanner.at_statement_start() and stripped else None
        if continuing or kind:
            if kind:
                counts[kind] += 1
            indent = line[: len(line) - len(line.lstrip())]
            out[index] = f"{indent}pass  # {stripped}" if indent and in_block else f"# {line}"
            continuing = line.endswith("\\")
            continue
        scanner.feed(line)
        if stripped and not stripped.startswith("#"):
            in_block = bool(line[:1].isspace()) or stripped.endswith(":")
    return out


def convert_notebook(data: bytes, label: str = "the notebook") -> tuple[str, str, list[str]]:
    """Convert a notebook, read as JSON (never executed), to ``(python, markdown, notes)``.

    Code cells are kept in order, each after a ``# %% cell N`` marker (N counts every cell from
    1), line for line, so an error's line maps back to "cell N, line M". IPython syntax at the
    start of a statement is commented out (``#`` at the top level, ``pass  #`` in an indented
    block): line magics, ``!`` shell escapes, ``x = !cmd``, ``?``/``??`` help. A cell magic in
    KEEP_BODY_CELL_MAGICS loses only its first line; any other cell magic comments out the cell.
    Markdown cells go to the markdown text, each after ``<!-- cell N -->``; raw cells are dropped.
    Raises _Refused (a load error) for a file that is not a version-4 notebook.
    """
    text = _decode(label, data)
    if not text.strip():
        raise _Refused(f"{label} is empty")
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                       f"column {exc.colno}") from None
    except RecursionError:
        raise _Refused(f"{label} is not a notebook: its JSON is nested too deeply") from None
    if not isinstance(notebook, dict):
        raise _Refused(f"{label} is not a Jupyter notebook: the JSON is {type(notebook).__name__}, "
                       "not an object with 'cells'")
    if "nbformat" not in notebook or "cells" not in notebook:
        missing = "'nbformat'" if "nbformat" not in notebook else "'cells'"
        raise _Refused(f"{label} is not a Jupyter notebook: the JSON has no {missing} field")
    if notebook["nbformat"] != 4:
        raise _Refused(f"{label} has notebook format version {notebook['nbformat']!r}; version 4 "
                       "is expected (open it in a current Jupyter and save it again)")
    cells = notebook["cells"]
    if not isinstance(cells, list):
        raise _Refused(f"{label} is not a valid notebook: 'cells' is {type(cells).__name__}, not a list")

    notes: list[str] = []
    metadata = notebook.get("metadata")
    language = metadata.get("language_info", {}).get("name") if isinstance(metadata, dict) else None
    if isinstance(language, str) and language.lower() != "python":
        notes.append(f"notebook: its kernel language is {language!r}, not Python")

    counts = {"shell": 0, "magic": 0, "help": 0, "marker": 0}
    cell_magics: dict[str, list[str]] = {}
    python_parts = [_NOTEBOOK_HEADER]
    markdown_parts = []
    raw_cells = 0
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise _Refused(f"{label} is not a valid notebook: cell {number} has no 'cell_type'")
        source = cell.get("source")
        if isinstance(source, list) and all(isinstance(piece, str) for piece in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise _Refused(f"{label} is not a valid notebook: cell {number}'s 'source' is not text")
        kind = cell["cell_type"]
        if kind == "markdown":
            if source.strip():
                markdown_parts.append(f"<!-- cell {number} -->\n{source.rstrip()}\n")
            continue
        if kind != "code":
            raw_cells += 1
            continue
        lines = []
        for line in source.splitlines():
            if CELL_MARKER_RE.match(line.rstrip()):
                line = "# " + line  # a student line that would read as our marker
                counts["marker"] += 1
            lines.append(line)
        converted = _convert_cell(lines, counts, cell_magics)
        if converted:
            marker = CELL_MARKER.format(number=number)
            python_parts.append(f"\n{marker}\n" + "\n".join(converted) + "\n")

    python = "".join(python_parts)
    if len(python_parts) == 1:
        raise _Refused(f"{label} has no code: none of its {len(cells)} cells is a code cell with content")
    notes.extend(_conversion_notes(counts, cell_magics, raw_cells, len(markdown_parts)))
    return python, "\n".join(markdown_parts), notes


def _count(number: int, word: str) -> str:
    return f"{number} {word}" + ("" if number == 1 else "s")


def _conversion_notes(counts: dict[str, int], cell_magics: dict[str, list[str]],
                      raw_cells: int, markdown_cells: int) -> list[str]:
    dropped = [_count(counts[kind], word) for kind, word in
               (("shell", "shell escape"), ("magic", "line magic"), ("help", "help line"))
               if counts[kind]]
    parts = []
    if dropped:
        parts.append("commented out " + ", ".join(dropped))
    for key, verb in (("commented", "commented out"), ("unwrapped", "kept the body of")):
        if cell_magics.get(key):
            names = ", ".join(sorted(set(cell_magics[key])))
            parts.append(f"{verb} {_count(len(cell_magics[key]), 'cell')} ({names})")
    if raw_cells:
        parts.append(f"dropped {_count(raw_cells, 'raw cell')}")
    if counts["marker"]:
        parts.append(f"escaped {_count(counts['marker'], 'line')} that read as a cell marker")
    notes = ["notebook: " + "; ".join(parts)] if parts else []
    if markdown_cells:
        notes.append(f"notebook: {_count(markdown_cells, 'markdown cell')} saved to {NOTEBOOK_MARKDOWN}")
    return notes


# --------------------------------------------------------------------------------------------
# Preparing the private copies
# --------------------------------------------------------------------------------------------

def _workdir_name(student: str) -> str:
    """A safe, stable folder name for any id: an ASCII slug plus a hash of the id."""
    ascii_name = unicodedata.normalize("NFKD", student).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", ascii_name).strip("-_")[:40] or "student"
    return f"{slug}-{hashlib.sha256(student.encode('utf-8')).hexdigest()[:10]}"


def _write_workdir(work_root: Path, student: str, files: dict[str, bytes]) -> Path:
    workdir = work_root / _workdir_name(student)
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
        what = "per archive" if entry.kind == "zip" else "per notebook" if entry.kind == "ipynb" else "per file"
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


def _prepare_one(class_fd: int | str, class_dir: Path, work_root: Path, student: str,
                 entries: list[Entry], limits: IntakeLimits) -> Submission:
    first = entries[0]
    shown = first.name + ("/" if first.kind == "folder" else "")
    sub = Submission(student=student, source=class_dir / first.name, kind=first.kind, sha256="",
                     workdir=None, entry=None, mode="definitions" if first.kind == "ipynb" else "full")
    if len(entries) > 1:
        names = [entry.name + ("/" if entry.kind == "folder" else "") for entry in entries]
        same = len({unicodedata.normalize("NFC", name) for name in names}) < len(names)
        sub.error = "conflicting submissions: " + ", ".join(sorted(names)) + (
            " (the same name in different Unicode normalisations)" if same else "")
        sub.conflict = True
        return sub
    if first.refusal:
        sub.error = f"{shown} is {first.refusal}: refused (submit a regular file or folder)"
        return sub
    try:
        files, entry = _collect(first, class_fd, limits, sub)
        sub.workdir = _write_workdir(work_root, student, files)
        sub.entry = entry
    except _Refused as exc:
        sub.error = str(exc)
    except OSError as exc:  # the work root, not the student
        sub.error = f"the private copy could not be prepared: {exc}"
    except Exception as exc:  # noqa: BLE001 - input nobody foresaw costs this student, not the class
        sub.error = f"{shown} could not be read: {type(exc).__name__}: {exc}"
    if sub.error:
        sub.workdir = sub.entry = None
    return sub


def prepare(class_dir: Path, work_root: Path,
            limits: IntakeLimits = IntakeLimits()) -> tuple[list[Submission], list[str]]:
    """Prepare every student's submission of ``class_dir`` under ``work_root``.

    Returns ``(submissions, notes)``: one Submission per student id, sorted by id, and the class
    folder's own notes (strays and unknown entries). A bad submission has ``error`` set and
    ``workdir`` None; nothing a student submits raises. Each workdir is
    ``work_root/<ascii-slug>-<hash of the id>``, replaced if it exists. Raises IntakeError if
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
