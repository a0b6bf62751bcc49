"""What a sandbox run gives back to the grader: plain data, validated, never student objects."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

#: Why the calls of a run were not run, by the run's status (the supervisor and the portable
#: pool word them alike).
NOT_RUN_REASONS = {
    "load_error": "the module failed to load", "timeout": "loading the module timed out",
    "crashed": "loading the module crashed the sandbox",
}
CALL_STATUSES = ("ok", "error", "timeout", "crashed", "not_run")
_SURROGATES = re.compile("[\ud800-\udfff]")
RUN_STATUSES = ("ok", "load_error", "timeout", "crashed", "sandbox_error")

#: The first note of every run without namespaces (``SandboxPool(isolation="none")``); here, not
#: in ``pool``, so that the portable backend and the exports can import it on any platform.
UNSANDBOXED_WARNING = (
    "UNSANDBOXED: student code runs as the grader's own user with rlimits only: it can read "
    "the reference solution, write anywhere the grader can, use the network and kill the grader"
)
#: The first note of every run of ``PortablePool`` (no fork: macOS, Windows, forced by
#: ``GRADER_SANDBOX=portable``).
PORTABLE_WARNING = (
    "UNSANDBOXED (portable mode): student code runs as the grader's own user in a plain "
    "subprocess, with wall times only (rlimits where the platform has them): it can read "
    "the reference solution, write anywhere the grader can, use the network and kill the grader"
)


@dataclass
class CallResult:
    id: str
    status: str  # one of CALL_STATUSES
    value: dict | None  # what execute_call returned (JSON values and numpy arrays), only when ok
    error: str  # why it is not ok: "ZeroDivisionError: division by zero", "killed by SIGSEGV", ...
    duration_s: float  # measured outside the sandbox, from the call's start to its outcome


@dataclass
class SandboxResult:
    status: str  # one of RUN_STATUSES; "ok": loaded, and the calls ran (whatever their results)
    message: str  # for load_error / timeout / crashed / sandbox_error: what happened
    calls: dict[str, CallResult] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    output_dropped_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    isolation: str = "namespaces"  # "namespaces" | "none" | "portable"
    duration_s: float = 0.0
    #: ``(status, message)`` when the full load fell back to the definitions because the top
    #: level ran out of time ("timeout") or memory ("crashed"); the calls ran on the definitions
    load_fallback: tuple[str, str] | None = None
    #: what the student's process says its top level replaced of the harness: for the TA only,
    #: since that process can forge it (``grader.sandbox.tamper``)
    suspected_tampering: list[str] = field(default_factory=list)


def suspected_tampering(value: object) -> list[str]:
    """A ``tampering`` field as the sandbox sent it: at most 20 strings of 200 characters."""
    if not isinstance(value, list):
        return []
    return [item[:200] for item in value[:20] if isinstance(item, str)]


def load_fallback(value: object) -> tuple[str, str] | None:
    """A ``fallback`` field as the sandbox sent it, validated: ``(status, message)`` or None."""
    if (isinstance(value, list) and len(value) == 2 and value[0] in ("timeout", "crashed")
            and isinstance(value[1], str)):
        return value[0], _SURROGATES.sub("\ufffd", value[1][:1000])
    return None


class Capture:
    """The first ``cap`` bytes of a stream (a student's stdout or stderr); the rest counted.
    Thread-safe: the portable pool fills it from reader threads."""

    def __init__(self, cap: int) -> None:
        self.cap, self.kept, self.dropped = cap, bytearray(), 0
        self.lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self.lock:
            room = max(self.cap - len(self.kept), 0)
            self.kept += data[:room]
            self.dropped += max(len(data) - room, 0)

    def count(self, dropped: int) -> None:
        """``dropped`` more bytes that never reached this process."""
        with self.lock:
            self.dropped += dropped

    def text(self) -> str:
        with self.lock:
            return self.kept.decode("utf-8", errors="replace")
