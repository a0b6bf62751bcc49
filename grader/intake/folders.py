"""Reading a folder submission into ``{relative path: bytes}``, checked against the limits as the
files come (``_Tree``, shared with the zips)."""
from __future__ import annotations

import stat
import os
import unicodedata

from grader.intake.model import COMPILED_SUFFIXES, WRITEUP_OUTSIDE_SUFFIXES, IntakeLimits
from grader.intake.safe import (_Refused, _TooLarge, _close_dir, _file_type, _is_stray, _limit, _mib, _open_dir,
                                _read_regular, _too_large, _valid_name)


class _Tree:
    """The files of one folder or zip submission, checked against the limits as they come."""

    def __init__(self, label: str, limits: IntakeLimits):
        self.label = label
        self.limits = limits
        self.files: dict[str, bytes] = {}
        self.notes: list[str] = []
        self.members = 0
        self.total = 0
        self.writeup_total = 0

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
        lower = rel.lower()
        mib = (self.limits.notebook_size_mib if lower.endswith(".ipynb")
               else self.limits.writeup_size_mib if lower.endswith(WRITEUP_OUTSIDE_SUFFIXES)
               else self.limits.file_size_mib)
        return _limit(mib), mib

    def oversize(self, rel: str, size: int) -> None:
        """A file over its limit: an error for code, a note (file dropped) for anything else."""
        limit, mib = self.size_limit(rel)
        if rel.lower().endswith((".py", ".ipynb")):
            raise _too_large(f"{self.label}: {rel}", size, mib)
        self.note(f"dropped {rel}: {_mib(size)}, over the limit of {mib:g} MiB per file")

    def reserve(self, size: int, rel: str = "") -> None:
        """Count a kept file; PDFs (kept out of the sandbox's copy) count against a total of their own."""
        if rel.lower().endswith(WRITEUP_OUTSIDE_SUFFIXES):
            self.writeup_total += size
            if self.writeup_total > _limit(self.limits.total_size_mib):
                raise _Refused(f"{self.label} holds more than {self.limits.total_size_mib:g} MiB of PDF files, "
                               "over the limit per submission")
            return
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
            tree.reserve(len(data), rel)
            tree.add(parts, data)
        else:
            tree.note(f"refused {rel}: it is {_file_type(mode)}, not a regular file")
