"""Control groups (v1) of one sandbox slot: memory, pids and CPU weight of a whole submission.

Used when the zygote runs as root and the v1 hierarchies are mounted (``/sys/fs/cgroup/memory``
etc.). Each zygote creates, under its own cgroup of each controller, a child
``grader-sandbox-<zygote pid>``; P1 is moved into them before it runs anything, and every process
of the submission inherits them:

- ``memory``: ``total_memory_mib`` for all processes together, tmpfs pages (``/tmp``, the work
  copy) included, swap included when swap accounting exists. Over it the kernel's OOM killer
  kills a process of the submission (SIGKILL); the count is read back (``oom_kills``) to say so.
- ``pids``: ``max_processes`` tasks (threads included), whatever their uid.
- ``cpu``: ``cpu_shares``, so a fork bomb competes with the grader and the other sandboxes as
  one process would.
"""
from __future__ import annotations

import os

from grader.sandbox.job import Job

ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "pids", "cpu")
PREFIX = "grader-sandbox-"  # + the zygote's pid


def _own_path(controller: str) -> str | None:
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    return None


def _remove_stale(parent: str) -> None:
    """Remove the (empty) cgroups of zygotes that were killed before they could."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix(PREFIX)
        if name.startswith(PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass


class SlotCgroups:
    """The cgroups of one zygote's sandboxes; ``available`` is False when they cannot be used."""

    def __init__(self, name: str) -> None:
        """``name``: ``PREFIX`` and the zygote's pid."""
        self.paths: dict[str, str] = {}
        self.problem = ""
        if os.geteuid() != 0:
            self.problem = "not root"
            return
        try:
            for controller in CONTROLLERS:
                own = _own_path(controller)
                base = f"{ROOT}/{controller}"
                if own is None or not os.path.isdir(base):
                    raise OSError(f"the cgroup v1 {controller} controller is not mounted at {base}")
                _remove_stale(base + own)
                path = os.path.join(base + own, name)
                os.makedirs(path, exist_ok=True)
                self.paths[controller] = path
        except OSError as error:
            self.problem = str(error)
            self.remove()

    @property
    def available(self) -> bool:
        return not self.problem and len(self.paths) == len(CONTROLLERS)

    def _write(self, controller: str, name: str, value: object) -> None:
        with open(os.path.join(self.paths[controller], name), "w") as handle:
            handle.write(str(value))

    def _read(self, controller: str, name: str) -> str:
        with open(os.path.join(self.paths[controller], name)) as handle:
            return handle.read()

    def configure(self, job: Job) -> None:
        limit = job.limits.total_memory_mib << 20
        memory = self.paths["memory"]
        if os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")):
            # memsw must stay >= the memory limit: lower it last when shrinking, raise it first
            try:
                self._write("memory", "memory.memsw.limit_in_bytes", limit)
                self._write("memory", "memory.limit_in_bytes", limit)
            except OSError:
                self._write("memory", "memory.limit_in_bytes", limit)
                self._write("memory", "memory.memsw.limit_in_bytes", limit)
        else:
            self._write("memory", "memory.limit_in_bytes", limit)
        self._write("memory", "memory.swappiness", 0)
        self._write("pids", "pids.max", job.limits.max_processes)
        self._write("cpu", "cpu.shares", job.limits.cpu_shares)

    def add(self, pid: int) -> None:
        for controller in CONTROLLERS:
            self._write(controller, "cgroup.procs", pid)

    def oom_kills(self) -> int:
        """How many processes the memory limit has killed so far (a running count)."""
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return int(self._read("memory", "memory.failcnt") != "0\n")

    def tasks(self) -> list[int]:
        return [int(pid) for pid in self._read("pids", "cgroup.procs").split()]

    def remove(self) -> None:
        for path in self.paths.values():
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.paths.clear()
