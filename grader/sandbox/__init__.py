"""The sandbox: runs a student's (hostile) code and brings back plain data.

::

    grader (trusted: reference, expected values; never forks a sandbox)
      --pipes--> zygote x N (python -m grader.sandbox.zygote: torch, numpy, the in-sandbox harness)
        --fork--> supervisor S (namespaces; outside the sandbox's PID namespace; our code only)
          --fork--> P1, PID 1 of the sandbox: new root, no capabilities, rlimits; loads the module
            --fork--> one call process per group of calls

Usage::

    with SandboxPool(Limits(), workers=2) as pool:
        result = pool.run(workdir, "solution.py", "full", [[{"id": "c1", "kind": "function", ...}]])
        result.calls["c1"].status, result.calls["c1"].value

One module per mechanism: ``namespaces``, ``filesystem``, ``rlimits``, ``privileges``,
``seccomp``, ``cgroups``; ``protocol`` is the only serialisation across process boundaries;
``supervisor``, ``inside`` (P1 and the call processes), ``zygote`` and ``pool`` are the
processes. ``tests/test_sandbox.py`` attacks each of them.
"""
from grader.sandbox.limits import Limits
from grader.sandbox.namespaces import isolation_available
from grader.sandbox.pool import SandboxPool
from grader.sandbox.results import CallResult, SandboxResult

__all__ = ["CallResult", "Limits", "SandboxPool", "SandboxResult", "isolation_available"]
