"""Resource limits (``setrlimit``) of the sandbox's processes.

``apply`` runs in P1 before any student code, with soft and hard limits equal (except CPU), so
nothing inside can raise them: memory per process (``RLIMIT_DATA``: ``memory_mib`` on top of the
harness's own data, see ``data_bytes``), processes and threads of the
sandbox's uid (``RLIMIT_NPROC``), file size, open files, no core dumps, no message queues. CPU:
P1's soft limit is the load's CPU budget (P1 is PID 1, which the kernel shields from SIGXCPU's
default action, so it installs a handler that exits), its hard limit the whole submission's
budget; each call process then lowers its soft limit per call (``set_call_cpu``).
"""
from __future__ import annotations

import builtins as _builtins_module

__builtins__ = dict(_builtins_module.__dict__)  # noqa: A001 - runs after student code: a private copy

import math  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402

from grader.sandbox.job import Job  # noqa: E402

_setrlimit, _getrlimit, _getrusage = resource.setrlimit, resource.getrlimit, resource.getrusage
_RLIMIT_CPU, _RUSAGE_SELF, _RLIM_INFINITY = resource.RLIMIT_CPU, resource.RUSAGE_SELF, resource.RLIM_INFINITY
_ceil = math.ceil

MIB = 1 << 20


def _set(which: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(which, (soft, soft if hard is None else hard))


def total_cpu_s(job: Job) -> int:
    """The hard CPU limit: the load and every call, each rounded up, plus a second."""
    calls = sum(math.ceil(job.call_cpu_s(call)) for call in job.calls())
    return math.ceil(job.load_cpu_s()) + calls + 1


def data_bytes() -> int:
    """This process's data segment (``VmData``: heap, anonymous mappings), 0 where unknown.

    A sandbox inherits the zygote's (torch, numpy, the preloaded packages: ~450 MiB), so
    ``RLIMIT_DATA`` is set to that plus ``memory_mib``: what the harness preloads never eats into
    the student's own memory."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def apply(job: Job) -> None:
    limits = job.limits
    _set(resource.RLIMIT_DATA, limits.memory_mib * MIB + job.harness_data_bytes)
    _set(resource.RLIMIT_FSIZE, limits.file_size_mib * MIB)
    _set(resource.RLIMIT_NOFILE, limits.open_files)
    _set(resource.RLIMIT_CORE, 0)
    _set(resource.RLIMIT_MSGQUEUE, 0)
    _set(resource.RLIMIT_MEMLOCK, 0)
    if job.isolation == "namespaces" and job.as_root:
        # the sandbox's own uid: P1 and its processes, plus the supervisor S outside the PID
        # namespace, which also runs as that uid
        _set(resource.RLIMIT_NPROC, limits.max_processes + 1)
    _set(resource.RLIMIT_CPU, math.ceil(job.load_cpu_s()), total_cpu_s(job))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the size fail with EFBIG instead


def lift_load_cpu(job: Job) -> None:
    """After the load: P1's soft CPU limit up to its hard one (P1 only waits from then on)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def set_call_cpu(cpu_s: float) -> None:
    """In a call process: allow ``cpu_s`` more seconds of CPU from now (whole seconds)."""
    usage = _getrusage(_RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = _getrlimit(_RLIMIT_CPU)
    # whole seconds, rounded up: never less than asked (rounding to nearest gave up to half a
    # second less, so a busy loop's CPU limit could fire before its equal wall limit)
    soft = max(1, _ceil(used + cpu_s))
    if hard != _RLIM_INFINITY:
        soft = min(soft, hard)
    _setrlimit(_RLIMIT_CPU, (soft, hard))
