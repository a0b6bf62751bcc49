"""Linux namespaces: user, mount, PID, network, IPC and UTS.

The supervisor S unshares them all at once; its parent (the zygote, outside) then writes S's uid
and gid maps: ns-root is the sandbox's own unprivileged host uid (``SANDBOX_ID_BASE + slot``), so
``RLIMIT_NPROC`` is enforced and counts this submission only. When the grader does not run as
root it can only map its own uid (``RLIMIT_NPROC`` then shares the grader's budget: a note says
so). S's children are in the new PID namespace: the first, P1, is its PID 1, and killing P1 kills
every process of the submission. The new network namespace has no interface up, not even
loopback.
"""
from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys

from grader.sandbox import libc
from grader.sandbox.job import Job

ALL_NAMESPACES = (
    libc.CLONE_NEWUSER | libc.CLONE_NEWNS | libc.CLONE_NEWPID | libc.CLONE_NEWNET
    | libc.CLONE_NEWIPC | libc.CLONE_NEWUTS
)
HOSTNAME = "sandbox"


def unshare_mount_namespace(job: Job) -> None:
    """As real root, a private mount namespace in which the new root is built before the user
    namespace exists: its mounts are then locked (read-only included) for everyone inside."""
    libc.unshare(libc.CLONE_NEWNS)
    make_mounts_private(job)


def make_mounts_private(job: Job) -> None:
    """No mount made from here on propagates back to the host."""
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)


def unshare_all(job: Job) -> None:
    libc.unshare(ALL_NAMESPACES)


def write_id_maps(pid: int, host_uid: int, host_gid: int) -> None:
    """Map ns-root of ``pid``'s new user namespace to ``host_uid``/``host_gid`` (run outside)."""
    base = f"/proc/{pid}"
    with open(f"{base}/setgroups", "w") as handle:
        handle.write("deny")
    with open(f"{base}/uid_map", "w") as handle:
        handle.write(f"0 {host_uid} 1\n")
    with open(f"{base}/gid_map", "w") as handle:
        handle.write(f"0 {host_gid} 1\n")


def become_ns_root(job: Job) -> None:
    """Take ns uid/gid 0, i.e. the sandbox's host uid (the kernel keeps the old ids until then)."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def set_hostname(job: Job) -> None:
    socket.sethostname(HOSTNAME)


@functools.lru_cache(maxsize=1)
def isolation_available() -> tuple[bool, str]:
    """Whether this machine can build namespace sandboxes, and why not (a fresh process tries).

    The probe runs in a new interpreter (the caller may be multi-threaded, where unshare of a
    user namespace fails) that unshares every namespace and mounts a tmpfs. Off Linux (macOS,
    Windows) the answer is no, without a probe.
    """
    if not sys.platform.startswith("linux"):
        return False, f"namespaces are Linux-only, and this is {sys.platform}"
    as_root = os.geteuid() == 0
    probe = (  # self-contained: importing this package would need numpy, and -S has no site
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def check(ret, what):\n"
        "    if ret != 0:\n"
        "        raise SystemExit(f'{what} failed: {os.strerror(ctypes.get_errno())}')\n"
        f"if {as_root}:\n"
        f"    check(libc.unshare({libc.CLONE_NEWNS}), 'unshare(CLONE_NEWNS)')\n"
        f"    check(libc.mount(None, b'/', None, {libc.MS_REC | libc.MS_PRIVATE}, None), 'mount(/, MS_PRIVATE)')\n"
        f"check(libc.unshare({ALL_NAMESPACES}), 'unshare(user, mount, pid, net, ipc, uts)')\n"
        "check(libc.mount(b'tmpfs', b'/mnt', b'tmpfs', 0, b'size=1m'), 'mount(tmpfs) in the new namespaces')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", probe],
            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"the namespace probe could not run: {error}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return False, f"cannot create namespaces here: {last}"
    if as_root:
        return True, "user, mount, PID, network, IPC and UTS namespaces (running as root)"
    return True, (
        "user, mount, PID, network, IPC and UTS namespaces (not root: sandboxes map the grader's "
        "own uid, so max_processes is shared with the grader, and no cgroup limits)"
    )
