"""Safe reading: files and folders opened without following a link or blocking on a FIFO, with
a size limit, and text decoded with a message a student can act on."""
from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from grader.intake.model import MIB, STRAY_NAMES


def _flag(name: str) -> int:
    return getattr(os, name, 0)  # Windows has no O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, O_CLOEXEC


_OPEN_FILE = os.O_RDONLY | _flag("O_NOFOLLOW") | _flag("O_NONBLOCK") | _flag("O_CLOEXEC") | _flag("O_BINARY")
_OPEN_DIR = os.O_RDONLY | _flag("O_DIRECTORY") | _flag("O_NOFOLLOW") | _flag("O_CLOEXEC")
#: Folders are read through file descriptors (``dir_fd``), so that an entry swapped for a link
#: after it was listed is never followed. Where the platform has no ``dir_fd`` (Windows: the
#: student's self-check) a folder handle is its path, and links are refused by ``lstat`` first.
DIR_FD = os.open in os.supports_dir_fd and os.scandir in os.supports_fd
_READ_CHUNK = 1 << 16


class _Refused(Exception):
    """One submission cannot be prepared; the message becomes ``Submission.error``."""


class _TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


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


def _too_large(label: str, size: int, limit_mib: float, what: str = "per file") -> _Refused:
    return _Refused(f"{label} is {_mib(size)}, over the limit of {limit_mib:g} MiB {what}")


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
