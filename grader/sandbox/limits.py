"""Every limit of the sandbox, declared once, with its unit in its name and a restrictive default.

Where each one is enforced (see the mechanism modules):

- wall times: outside the student's processes (the supervisor kills the sandbox's PID 1, which
  kills every process of the submission), and per call inside (PID 1 kills the call's process);
- CPU times: ``RLIMIT_CPU`` (whole seconds, rounded up);
- ``memory_mib``: ``RLIMIT_DATA`` of every process: heap, anonymous ``mmap`` and thread stacks,
  so an allocation past it fails with ``MemoryError`` (or torch's "can't allocate memory")
  instead of a kill. It counts on top of the data the harness already holds when it forks the
  sandbox (torch and the preloaded packages, ~450 MiB), so preloading more never shrinks it.
  ``RLIMIT_AS`` is not used: a process that has imported torch already
  maps ~620 MiB of address space (shared libraries) for ~215 MiB of data, and glibc reserves
  address space per thread arena, so an address-space bound would mostly measure libraries;
- ``total_memory_mib``: a cgroup (v1 ``memory``) over all the submission's processes, its
  ``/tmp`` and work folder included, when the grader runs as root with cgroups mounted
  (otherwise only the per-process bound holds, times ``max_processes``);
- ``max_processes``: ``RLIMIT_NPROC`` of the submission's own host uid (one per sandbox slot),
  plus a ``pids`` cgroup when available. Threads count as processes for both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    memory_mib: int = 2048  # heap of each process (RLIMIT_DATA), on top of what the harness preloads; past it allocations fail with MemoryError
    total_memory_mib: int = 3072  # all processes of one submission, tmpfs included (cgroup memory, root only)
    import_wall_s: float = 10.0  # the module's top level; past it: definitions alone (the whole load is killed at 2x + 1 s)
    import_cpu_s: float = 10.0  # CPU time of the module's load, at most 2x + 1 s with the retry (RLIMIT_CPU of PID 1)
    statement_wall_s: float = 2.0  # each top-level statement when loading on definitions alone (passed to the loader)
    call_wall_s: float = 5.0  # one call, unless the call carries its own "wall_s"
    call_cpu_s: float = 5.0  # CPU time of one call (RLIMIT_CPU, whole seconds), unless the call carries "cpu_s"
    max_processes: int = 32  # processes and threads of one submission (RLIMIT_NPROC per sandbox uid; pids cgroup)
    cpu_shares: int = 1024  # CPU weight of a sandbox against the grader and other sandboxes (cgroup cpu, root only)
    file_size_mib: int = 64  # largest file a submission may write (RLIMIT_FSIZE)
    tmp_mib: int = 256  # size of each private tmpfs: /tmp, /dev/shm, and the writable copy of the work folder
    workdir_mib: int = 64  # largest work folder copied into the sandbox (its regular files, added up)
    output_kib: int = 256  # stdout and stderr each kept up to this; the rest is counted and dropped
    result_mib: int = 16  # one encoded message from the sandbox (one call's result, JSON + base64)
    open_files: int = 64  # file descriptors per process (RLIMIT_NOFILE)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Limits.{field.name} must be a positive number, got {value!r}")
        if self.total_memory_mib < self.memory_mib:
            raise ValueError(
                f"Limits.total_memory_mib ({self.total_memory_mib}) must be at least "
                f"Limits.memory_mib ({self.memory_mib})"
            )

    def to_dict(self) -> dict[str, Any]:
        """The limits as a plain dict (for reports, and to send them to a zygote)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(unknown)}")
        return cls(**data)

    @staticmethod
    def describe() -> dict[str, str]:
        """Each limit's one-line description, read from this file's comments (for CLI help)."""
        import inspect
        import re

        source = inspect.getsource(Limits)
        return dict(re.findall(r"^\s+(\w+): \w+ = [^#\n]+#\s*(.+)$", source, flags=re.M))
