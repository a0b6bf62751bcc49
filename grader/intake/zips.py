"""Reading a zip submission member by member: checks on names, types, sizes and compression ratio
before anything is extracted."""
from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib

from grader.intake.folders import _Tree
from grader.intake.model import IntakeLimits
from grader.intake.safe import _READ_CHUNK, _Refused, _file_type, _limit, _mib, _valid_name


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
        tree.reserve(info.file_size, rel)
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
