"""The Linux system calls the sandbox needs that Python's ``os`` lacks, through ctypes.

Each wrapper raises ``OSError`` whose message names the call and its arguments, e.g.
``mount('tmpfs', '/mnt', 'tmpfs', MS_NOSUID|MS_NODEV, 'size=256m') failed: Operation not permitted``.
Importing this module works on any platform (``isolation_available`` is asked everywhere);
off Linux the calls themselves fail with ``OSError``.
"""
from __future__ import annotations

import ctypes
import os
import platform


class _NoLibc:
    """Where there is no process-wide C library handle (Windows): every call fails cleanly."""

    def __getattr__(self, name: str) -> object:
        raise OSError(f"{name}: no C library to call on this platform (the sandbox is Linux-only)")


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except (OSError, TypeError):  # Windows refuses CDLL(None); importing this module must not fail
    _libc = _NoLibc()

# <sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <sys/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

# <sys/prctl.h>
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_DUMPABLE = 4

# <linux/securebits.h>
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7

_SYSCALLS = {  # pivot_root has no glibc wrapper
    "x86_64": {"pivot_root": 155},
    "aarch64": {"pivot_root": 41},
}

_FLAG_NAMES = {
    value: name
    for name, value in globals().items()
    if name.startswith("MS_") and isinstance(value, int)
}


def _flags(flags: int) -> str:
    names = [name for value, name in sorted(_FLAG_NAMES.items()) if flags & value]
    return "|".join(names) or "0"


def _fail(call: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{call} failed: {os.strerror(errno)}")


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail(f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ret = _libc.mount(
        _bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)
    )
    if ret != 0:
        raise _fail(f"mount({source!r}, {target!r}, {fstype!r}, {_flags(flags)}, {data!r})")


def umount2(target: str, flags: int) -> None:
    if _libc.umount2(_bytes(target), ctypes.c_int(flags)) != 0:
        raise _fail(f"umount2({target!r}, {flags:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYSCALLS.get(platform.machine(), {}).get("pivot_root")
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    if _libc.syscall(ctypes.c_long(number), _bytes(new_root), _bytes(put_old)) != 0:
        raise _fail(f"pivot_root({new_root!r}, {put_old!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _libc.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    if ret == -1:
        raise _fail(f"prctl({option}, {arg2}, {arg3}, {arg4}, {arg5})")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset_none() -> None:
    """Clear the effective, permitted and inheritable capability sets of the calling thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset(effective=0, permitted=0, inheritable=0)")
