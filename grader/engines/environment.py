"""What a Dask worker must share with the TA's process before it may grade: the same grader, torch,
numpy and Python, the same reference statistics and grader code (sha256), and the isolation the
TA decided on. A worker compares the TA's ``fingerprint()`` (sent with every task) with its own
and refuses, naming each difference, rather than grade differently from the TA's machine."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]            # the folder that holds grader/ and reference/
STATS = ROOT / "reference" / "stats"                  # the committed reference statistics
CODE = (("grader", ("*.py", "*.toml")), ("reference", ("*.py",)))  # the code that grades, by folder and pattern


def _tree_sha256(files: list[Path]) -> str:
    """SHA-256 over each file's path below ``ROOT`` and its bytes (length-prefixed, sorted)."""
    digest = hashlib.sha256(b"genmodel-grader environment v1\n")
    for path in sorted(files, key=lambda p: p.relative_to(ROOT).as_posix()):
        name, data = path.relative_to(ROOT).as_posix().encode("utf-8"), path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def fingerprint() -> dict[str, str]:
    """This process's versions (``grader.run.versions``), the sha256 of ``reference/stats/`` and
    of the grading code (``CODE``). Computed once per process."""
    from grader.run import versions

    code = [path for folder, patterns in CODE for pattern in patterns
            for path in (ROOT / folder).rglob(pattern) if "__pycache__" not in path.parts]
    return {**versions(), "reference_stats_sha256": _tree_sha256([p for p in STATS.iterdir() if p.is_file()]),
            "code_sha256": _tree_sha256(code)}


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[bool, str]:
    """Whether this machine gives the sandbox its namespaces (``isolation_available``), probed once."""
    from grader.sandbox import isolation_available

    return isolation_available()


def refusals(theirs: dict[str, str], decision: str) -> list[str]:
    """Why this process must not grade for a TA with fingerprint ``theirs`` who decided on
    ``decision`` (``"namespaces"``, or ``"none"`` under ``--unsafe``); empty when it may."""
    ours = fingerprint()
    problems = [f"{key} is {ours.get(key)!r} here but {theirs.get(key)!r} on the TA's machine"
                for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
    if decision == "namespaces":
        available, why = isolation()
        if not available:
            problems.append(f"the TA's grading runs every submission in namespaces, which are unavailable "
                            f"here ({why}); refusing to run student code unsandboxed")
    elif decision != "none":
        problems.append(f"unknown isolation decision {decision!r}")
    return problems
