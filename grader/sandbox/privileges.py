"""Privileges: what P1 gives up before it runs student code.

P1 is ns-root of its user namespace (so it could mount its /proc and pivot_root). Before the
student's module loads it:

1. lowers its OOM score to "kill me first" (``oom_score_adj`` 1000);
2. forbids new user namespaces below its own (``/proc/sys/user/max_user_namespaces`` = 0), the
   way back to capabilities and a large kernel attack surface;
3. locks the securebits so that uid 0 inside never regains capabilities on ``execve``;
4. empties the capability bounding set and the ambient set, then its own sets (``capset``);
5. sets ``no_new_privs``: no set-uid binary or file capability can give anything back (every
   mount is also ``nosuid``), and a seccomp filter may be installed (``seccomp``).
"""
from __future__ import annotations

from grader.sandbox import libc
from grader.sandbox.job import Job

SECUREBITS = (
    libc.SECBIT_NOROOT | libc.SECBIT_NOROOT_LOCKED
    | libc.SECBIT_NO_SETUID_FIXUP | libc.SECBIT_NO_SETUID_FIXUP_LOCKED
    | libc.SECBIT_KEEP_CAPS_LOCKED
    | libc.SECBIT_NO_CAP_AMBIENT_RAISE | libc.SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)


def first_to_die(job: Job) -> None:
    # P1 changed uid (ns-root is another host uid), which made it non-dumpable: its /proc files
    # would belong to an unmapped root. Dumpable again (nothing else runs in the sandbox yet).
    libc.prctl(libc.PR_SET_DUMPABLE, 1)
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")


def no_nested_user_namespaces(job: Job) -> None:
    with open("/proc/sys/user/max_user_namespaces", "w") as handle:
        handle.write("0")


def drop_capabilities(job: Job) -> None:
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last_cap = int(handle.read())
    libc.prctl(libc.PR_SET_SECUREBITS, SECUREBITS)
    for cap in range(last_cap + 1):
        libc.prctl(libc.PR_CAPBSET_DROP, cap)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    libc.capset_none()


def python_open_to_others() -> bool:
    """Whether an unprivileged uid can use this Python: every folder above its installation and
    its venv searchable by others (a Python under a 0700 /root is not)."""
    import os
    import sys

    for prefix in {sys.base_prefix, sys.prefix}:
        path = os.path.realpath(prefix)
        while True:
            if not os.stat(path).st_mode & 0o001:
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


def drop_root(job: Job) -> None:
    """Without namespaces, as root: become the sandbox's own uid where this Python allows it,
    else stay uid 0 without any capability (and say so)."""
    if python_open_to_others():
        become_sandbox_user(job)
    else:
        job.notes.append("unsandboxed, and this Python lives in a folder closed to other users: the student's "
                         "code ran as uid 0 without capabilities (install Python in a world-readable place to "
                         "run it as an unprivileged uid)")
        drop_capabilities(job)


def become_sandbox_user(job: Job) -> None:
    """Without namespaces, as root: run as the sandbox's own unprivileged host uid, so the student
    can neither write root's files (a results file, the grader's sources) nor read root-only ones,
    and RLIMIT_NPROC holds. Changing uid clears every capability; ``no_new_privs`` keeps them away."""
    import os

    copy = os.getcwd()  # the private copy (in a private temporary folder) the supervisor made
    os.chown(os.path.dirname(copy), job.host_uid, job.host_uid)
    for folder, dirs, files in os.walk(copy):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, job.host_uid, job.host_uid)
    os.setgroups([])
    os.setresgid(job.host_uid, job.host_uid, job.host_uid)
    os.setresuid(job.host_uid, job.host_uid, job.host_uid)
    libc.prctl(libc.PR_SET_DUMPABLE, 1)


def no_new_privileges(job: Job) -> None:
    libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)


STEPS = (first_to_die, no_nested_user_namespaces, drop_capabilities, no_new_privileges)
