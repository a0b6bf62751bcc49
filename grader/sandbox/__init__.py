"""The sandbox: runs a student's (hostile) code and brings back plain data.

::

    grader (trusted: reference, expected values; never forks a sandbox)
      --pipes--> zygote x N (python -m grader.sandbox.zygote: torch, numpy, the in-sandbox harness)
        --fork--> supervisor S (namespaces; outside the sandbox's PID namespace; our code only)
          --fork--> P1, PID 1 of the sandbox: new root, no capabilities, rlimits; loads the module
            --fork--> a call process for the groups of calls (a fresh one after a group fails)

Usage::

    with SandboxPool(Limits(), workers=2) as pool:
        result = pool.run(workdir, "solution.py", "full", [[{"id": "c1", "kind": "function", ...}]])
        result.calls["c1"].status, result.calls["c1"].value

One module per mechanism: ``namespaces``, ``filesystem``, ``rlimits``, ``privileges``,
``seccomp``, ``cgroups``; ``protocol`` is the only serialisation across process boundaries;
``supervisor``, ``inside`` (P1 and the call processes), ``zygote`` and ``pool`` are the
processes. ``tests/test_sandbox.py`` attacks each of them.

Where there is no ``fork`` (Windows), or no ``pidfd_open``/``poll`` (macOS), ``PortablePool``
(``portable``, ``portable_child``) runs the same requests in a plain subprocess, unsandboxed:
the students' self-check on their own machines (``tests/test_portable.py``).

Importing this package works on every platform: it imports nothing Linux-only, and the pools
are imported on first use (``from grader.sandbox import SandboxPool``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from grader.sandbox.limits import Limits
from grader.sandbox.namespaces import isolation_available
from grader.sandbox.results import CallResult, SandboxResult

if TYPE_CHECKING:
    from grader.sandbox.pool import SandboxPool
    from grader.sandbox.portable import PortablePool

__all__ = ["CallResult", "Limits", "PortablePool", "SandboxPool", "SandboxResult", "isolation_available"]

_LAZY = {"SandboxPool": "grader.sandbox.pool", "PortablePool": "grader.sandbox.portable"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
