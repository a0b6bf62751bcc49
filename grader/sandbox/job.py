"""What one sandbox run needs to know: the ``Job`` every isolation mechanism receives.

Each mechanism module (``filesystem``, ``rlimits``, ``privileges``, ...) exposes steps with the
signature ``step(job: Job) -> None``; the supervisor and the sandbox's PID 1 apply them as flat,
ordered lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox.limits import Limits

#: Where the copy of the submission's work folder is, inside the sandbox.
INSIDE_WORKDIR = "/submission"
#: Host uids and gids of sandboxes: ``SANDBOX_ID_BASE + pid of the zygote``, so two sandboxes
#: that run at the same time never share an id (nor a ``RLIMIT_NPROC`` budget).
SANDBOX_ID_BASE = 200_000
#: The folder of this package (mounted read-only inside: the harness imports lazily from it).
HARNESS_DIR = str(Path(__file__).resolve().parent)
#: The project's root: nothing that contains it may be mounted into a sandbox.
PROJECT_ROOT = str(Path(HARNESS_DIR).parent.parent)

# Exit codes of the sandbox's PID 1 and of call processes (besides deaths by signal).
#: The packages a course notebook commonly imports, preloaded once per zygote (and, where a
#: submission names them, by the portable child) rather than in every sandbox: matplotlib alone
#: costs ~0.4 s per submission otherwise. None of them holds anything secret.
PRELOADED = ("scipy.special", "scipy.stats", "matplotlib", "matplotlib.pyplot", "tqdm", "pandas", "sklearn")
EXIT_CPU = 124  # the SIGXCPU handler of PID 1 during the load
EXIT_SETUP = 125  # PID 1 could not finish building the sandbox


@dataclass
class Job:
    limits: Limits
    workdir: str  # on the host, never modified
    entry: str  # relative to workdir
    mode: str  # "full" | "definitions"
    groups: list[list[dict]]
    isolation: str  # "namespaces" | "none"
    nonce: str  # carried by every frame the harness sends from inside; others are dropped
    session: str = ""  # the grader's identity of this run: every frame to the grader carries it
    host_uid: int = -1  # the host uid (and gid) of the sandbox's processes
    as_root: bool = False  # the zygote runs as root: id maps to another uid, cgroups, chown
    staging: str = ""  # where the new root is built before pivot_root (set by filesystem)
    inside_workdir: str = INSIDE_WORKDIR
    notes: list[str] = field(default_factory=list)  # for the report (skipped files, ...)
    harness_data_bytes: int = 0  # the harness's own data (torch...) when it forks: memory_mib comes on top

    def call_wall_s(self, call: dict) -> float:
        return float(call.get("wall_s", self.limits.call_wall_s))

    def call_cpu_s(self, call: dict) -> float:
        return float(call.get("cpu_s", self.limits.call_cpu_s))

    def load_wall_s(self) -> float:
        """The whole load, the loader's own retry on definitions included."""
        return 2 * self.limits.import_wall_s + 1.0

    def load_cpu_s(self) -> float:
        return 2 * self.limits.import_cpu_s + 1.0

    def calls(self) -> list[dict]:
        return [call for group in self.groups for call in group]
