"""A seccomp filter: system calls a submission never needs fail with EPERM.

Defence in depth for the kernel's attack surface, which namespaces do not shrink: tracing
(``ptrace``, ``process_vm_*``), new namespaces and mounts, kernel modules and ``kexec``, BPF,
perf events, ``userfaultfd``, keyrings, ``io_uring``, file handles, clocks, swap, reboot. The
filter is a deny list written as classic BPF (no library needed); it also refuses the x32 ABI
and any other architecture, which would otherwise number system calls differently. Installed
by P1 as its last step (after ``no_new_privs``), inherited by every process of the submission,
and irremovable. On an architecture without a table here it is skipped, with a note.
"""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

from grader.sandbox import libc
from grader.sandbox.job import Job

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
X32_SYSCALL_BIT = 0x40000000
# classic BPF opcodes
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
RET_K = 0x06

ARCHES = {  # audit arch, denied system calls by number
    "x86_64": (0xC000003E, {
        "ptrace": 101, "syslog": 103, "personality": 135, "vhangup": 153, "pivot_root": 155,
        "adjtimex": 159, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
        "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
        "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
        "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248,
        "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
        "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    }),
}


def _instruction(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str) -> bytes:
    """The BPF program (as bytes) for ``machine``; KeyError when there is no table."""
    arch, denied = ARCHES[machine]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    numbers = sorted(set(denied.values()))
    program = [
        _instruction(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _instruction(JEQ_K, 1, 0, arch),
        _instruction(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        _instruction(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _instruction(JGE_K, len(numbers) + 1, 0, X32_SYSCALL_BIT),  # x32: to the deny below
    ]
    for index, number in enumerate(numbers):
        # equal: jump over the remaining tests and the "allow" to the "deny"
        program.append(_instruction(JEQ_K, len(numbers) - index, 0, number))
    program.append(_instruction(RET_K, 0, 0, SECCOMP_RET_ALLOW))
    program.append(_instruction(RET_K, 0, 0, deny))
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(job: Job) -> None:
    machine = platform.machine()
    if machine not in ARCHES:
        job.notes.append(f"no seccomp filter: no system call table for {machine}")
        return
    program = build_filter(machine)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
