"""The student's view of the filesystem: a fresh tmpfs root holding only what Python needs.

``build_root`` (run by the supervisor; as real root before the user namespace exists, so the
read-only flags are locked for everyone inside) makes, in a private mount namespace::

    /usr /lib* /bin /sbin              read-only binds, or the same symlinks as on the host
    /etc/<a few files>                 read-only (ld.so.cache, passwd, localtime, fonts, ...)
    <sys.base_prefix> <sys.prefix>     read-only, at the same paths (the venv alone, never the project)
    <this package's folder>            read-only (the harness imports lazily from it)
    /dev/{null,zero,full,random,urandom}, /dev/fd -> /proc/self/fd
    /proc                              a fresh proc of the new PID namespace (mounted by P1)
    /tmp, /dev/shm                     tmpfs of tmp_mib each, writable
    /submission                        tmpfs of tmp_mib holding a copy of the work folder, writable

every mount ``nosuid`` and ``nodev`` (devices excepted), the root itself read-only. Nothing
else of the host is there: not the project (its ``reference/``), the grader's output, other
submissions, ``/root`` or ``/home``. ``enter_root`` (run by P1) mounts ``/proc``,
``pivot_root``s into the new root and detaches the old one.
"""
from __future__ import annotations

import os
import stat
import sys

from grader.sandbox import libc
from grader.sandbox.job import HARNESS_DIR, PROJECT_ROOT, Job

STAGING = "/tmp"  # mount point of the new root while it is built (in the private namespace)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
    "nsswitch.conf", "hosts", "host.conf", "alternatives", "fonts", "mime.types",
)
DEVICES = ("null", "zero", "full", "random", "urandom")
RO_FLAGS = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV
_ATIME_FLAGS = {
    os.ST_NOATIME: libc.MS_NOATIME,
    os.ST_NODIRATIME: libc.MS_NODIRATIME,
    os.ST_RELATIME: libc.MS_RELATIME,
}


class SetupError(RuntimeError):
    """The sandbox cannot be built as asked (a message for the course staff)."""


def python_dirs() -> list[str]:
    """The folders of the running Python: its installation and its venv, without nesting."""
    dirs = []
    for path in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        path = os.path.realpath(path)
        if path not in dirs:
            dirs.append(path)
    return _outermost(dirs)


def _outermost(paths: list[str]) -> list[str]:
    return [p for p in paths if not any(_inside(p, q) and p != q for q in paths)]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_sources(job: Job, sources: list[str]) -> None:
    """Refuse to mount a folder that would show the project or the other submissions."""
    workdir = os.path.realpath(job.workdir)
    for source in sources:
        if _inside(PROJECT_ROOT, source):
            raise SetupError(
                f"refusing to mount {source} into the sandbox: it contains the project "
                f"({PROJECT_ROOT}) and its reference/ (is Python installed inside the project?)"
            )
        if _inside(workdir, source):
            raise SetupError(
                f"refusing to mount {source} into the sandbox: it contains the work folder "
                f"{workdir}, and so the other submissions"
            )


def build_root(job: Job) -> None:
    """Build the new root at ``STAGING`` (see the module docstring). Runs in the supervisor,
    in a mount namespace of its own made private."""
    binds: list[tuple[str, str]] = []  # (source, path inside)
    links: list[tuple[str, str]] = []  # (target, path inside)
    for path in SYSTEM_DIRS:
        _plan(path, path, binds, links)
    for name in ETC_ENTRIES:
        _plan(f"/etc/{name}", f"/etc/{name}", binds, links)
    for path in python_dirs():
        _plan(path, path, binds, links)
    _plan(HARNESS_DIR, HARNESS_DIR, binds, links)
    check_sources(job, [source for source, _ in binds if source != HARNESS_DIR])

    # Open everything first: the staging mount may cover a source (a venv under /tmp).
    fds = {}
    for source, _ in binds:
        fds[source] = os.open(source, os.O_PATH | os.O_CLOEXEC)
    work_fd = os.open(job.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        root = job.staging = STAGING
        libc.mount("tmpfs", root, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, "size=4m,mode=0755")
        # the private /tmp first: a bind whose path is under /tmp (a checkout in /tmp) goes on top
        _mount_tmpfs(job, root + "/tmp", mode=0o1777)
        for source, inside in binds:
            target = root + inside
            is_dir = stat.S_ISDIR(os.stat(fds[source]).st_mode)
            _make_mount_point(target, is_dir)
            libc.mount(f"/proc/self/fd/{fds[source]}", target, None, libc.MS_BIND)
            _remount_read_only(target)
        for target, inside in links:
            os.makedirs(os.path.dirname(root + inside), exist_ok=True)
            os.symlink(target, root + inside)
        _hide_installed_answers(root)
        _make_dev(root)
        os.makedirs(root + "/proc", mode=0o555)
        _mount_tmpfs(job, root + "/dev/shm", mode=0o1777)  # multiprocessing's semaphores
        _mount_tmpfs(job, root + job.inside_workdir, mode=0o755)
        _copy_workdir(job, work_fd, root + job.inside_workdir)
        libc.mount(None, root, None, libc.MS_REMOUNT | RO_FLAGS)
    finally:
        for fd in [*fds.values(), work_fd]:
            os.close(fd)


#: Inside an installed (non-editable) copy of the project, what the student must not read: the
#: reference (the answers) and the rubric (the seed of the hidden inputs).
HIDDEN_INSTALLED = ("reference", "grader/rubric.toml")


def _hide_installed_answers(root: str) -> None:
    """Cover ``site-packages/reference`` and the rubric with empty read-only mounts, for the case
    where the project was installed into the bound Python (``pip install .`` rather than ``-e``)."""
    dirs = python_dirs()
    for entry in sorted({os.path.realpath(p) for p in sys.path if p}):
        if not any(_inside(entry, d) for d in dirs):
            continue
        for rel in HIDDEN_INSTALLED:
            path = os.path.join(entry, rel)
            target = root + path
            if os.path.isdir(path) and os.path.isdir(target):
                libc.mount("tmpfs", target, "tmpfs", RO_FLAGS, "size=4k,mode=0555")
            elif os.path.isfile(path) and os.path.isfile(target):
                libc.mount("/dev/null", target, None, libc.MS_BIND)
                _remount_read_only(target)


def _plan(source: str, inside: str, binds: list, links: list) -> None:
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        links.append((os.readlink(source), inside))
    elif stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
        binds.append((source, inside))


def _make_mount_point(target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def _remount_read_only(target: str) -> None:
    """Bind remount read-only, nosuid, nodev, keeping the flags the kernel may have locked."""
    flags = os.statvfs(target).f_flag
    keep = 0
    for st_flag, ms_flag in _ATIME_FLAGS.items():
        if flags & st_flag:
            keep |= ms_flag
    if flags & os.ST_NOEXEC:
        keep |= libc.MS_NOEXEC
    libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | RO_FLAGS | keep)


def _make_dev(root: str) -> None:
    dev = root + "/dev"
    os.makedirs(dev, mode=0o755)
    for name in DEVICES:
        target = f"{dev}/{name}"
        with open(target, "w"):
            pass
        libc.mount(f"/dev/{name}", target, None, libc.MS_BIND)
        flags = os.statvfs(target).f_flag  # devices must keep working: no nodev, not read-only
        keep = libc.MS_RELATIME if flags & os.ST_RELATIME else 0
        libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_NOSUID | libc.MS_NOEXEC | keep)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")


def _mount_tmpfs(job: Job, target: str, mode: int) -> None:
    os.makedirs(target, exist_ok=True)
    options = f"size={job.limits.tmp_mib}m,mode={mode:o}"
    if job.as_root:
        options += f",uid={job.host_uid},gid={job.host_uid}"
    libc.mount("tmpfs", target, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, options)


def _copy_workdir(job: Job, work_fd: int, destination: str) -> None:
    """Copy the regular files and folders of the work folder (never following a symlink),
    owned by the sandbox's uid; symlinks and special files are left out with a note."""
    budget = job.limits.workdir_mib << 20
    skipped: list[str] = []
    source_root = f"/proc/self/fd/{work_fd}"
    for folder, dirnames, filenames in os.walk(source_root, followlinks=False):
        relative = os.path.relpath(folder, source_root)
        target_folder = destination if relative == "." else os.path.join(destination, relative)
        for name in list(dirnames):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                dirnames.remove(name)
                skipped.append(os.path.normpath(os.path.join(relative, name)))
                continue
            os.mkdir(os.path.join(target_folder, name), 0o755)
            _chown(job, os.path.join(target_folder, name))
        for name in filenames:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                skipped.append(os.path.normpath(os.path.join(relative, name)))
                continue
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    skipped.append(os.path.normpath(os.path.join(relative, name)))
                    continue
                budget -= info.st_size
                if budget < 0:
                    raise SetupError(
                        f"the work folder holds more than {job.limits.workdir_mib} MiB "
                        f"(Limits.workdir_mib)"
                    )
                data = handle.read(info.st_size + 1)
            target = os.path.join(target_folder, name)
            with open(target, "wb") as out:
                out.write(data[: info.st_size])
            os.chmod(target, 0o644 | (info.st_mode & 0o111))
            _chown(job, target)
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        job.notes.append(f"not copied into the sandbox (symlinks or special files): {shown}")


def _chown(job: Job, path: str) -> None:
    if job.as_root:
        os.lchown(path, job.host_uid, job.host_uid)


def enter_root(job: Job) -> None:
    """In P1 (PID 1 of the new PID namespace): mount its /proc, make the new root "/" and
    detach the old one."""
    root = job.staging
    # A bind of the new root onto itself: made in this user namespace, it is not locked, and
    # pivot_root refuses a locked new root (its submounts stay locked, read-only included).
    libc.mount(root, root, None, libc.MS_BIND | libc.MS_REC)
    libc.mount("proc", root + "/proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount2(".", libc.MNT_DETACH)
    os.chdir(job.inside_workdir)


def private_copy(job: Job, destination: str) -> None:
    """Without namespaces: copy the work folder to ``destination`` (an existing folder)."""
    work_fd = os.open(job.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _copy_workdir(job, work_fd, destination)
    finally:
        os.close(work_fd)
