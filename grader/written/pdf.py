"""Text of a PDF write-up, extracted with pypdf in a child process under limits.

PDF parsers have had denial-of-service bugs (deep nesting, decompression bombs, endless loops), so
the extraction never runs in the grader: ``pdf_child.py`` runs under ``python -I`` with the PDF on
its stdin, an address-space limit (``RLIMIT_AS``), a CPU-time limit (``RLIMIT_CPU``), no files
written (``RLIMIT_FSIZE`` 0) and a wall-clock timeout, in a session of its own that is killed on
timeout. Its output is capped. The result keeps the pages apart, so an answer's source can name
its page.

A PDF whose pages give no text (a scan, or text drawn as curves) has ``no_text`` set: the TA must
mark it from the PDF; it is never read as an empty answer.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHILD = Path(__file__).resolve().parent / "pdf_child.py"
TIMEOUT_S = 30.0          # wall clock, for one PDF
CPU_S = 20                # CPU seconds (RLIMIT_CPU)
MEMORY_MIB = 1024         # address space (RLIMIT_AS)
OUTPUT_BYTES = 16 * 1024 * 1024   # more JSON than this on stdout is refused


@dataclass
class PdfText:
    pages: list[str] = field(default_factory=list)   # page 1 first
    problem: str | None = None                       # why it could not be read (then pages is empty)
    cut: bool = False                                 # only the first pages or characters were read

    @property
    def no_text(self) -> bool:
        """Read, but no page has a letter or digit: a scan without a text layer."""
        return self.problem is None and not any(any(ch.isalnum() for ch in page) for page in self.pages)


def _limits() -> None:   # runs in the child between fork and exec
    import resource

    mib = MEMORY_MIB * 1024 * 1024
    for name, value in (("RLIMIT_AS", mib), ("RLIMIT_CPU", CPU_S), ("RLIMIT_FSIZE", 0), ("RLIMIT_CORE", 0)):
        limit = getattr(resource, name, None)
        if limit is not None:
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass


def extract_pdf_text(data: bytes, *, timeout_s: float = TIMEOUT_S) -> PdfText:
    """The text of each page of the PDF ``data``; never raises for the PDF's content."""
    if not data.lstrip()[:5] == b"%PDF-":
        return PdfText(problem="it is not a PDF file (no %PDF- header)")
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd="/" if os.name == "posix" else None, start_new_session=True,
            preexec_fn=_limits if os.name == "posix" else None)  # noqa: PLW1509 - single-threaded use
    except OSError as exc:
        return PdfText(problem=f"the PDF reader could not be started: {exc}")
    try:
        out, err = proc.communicate(data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return PdfText(problem=f"reading it took more than {timeout_s:g} s: stopped")
    if proc.returncode != 0:
        why = (f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}")
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            why += f" (over {CPU_S} s of CPU)" if proc.returncode == -signal.SIGXCPU else ""
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        if tail and "MemoryError" in tail[0]:
            why += f" (over {MEMORY_MIB} MiB of memory)"
        return PdfText(problem=f"the PDF reader failed: {why}")
    if len(out) > OUTPUT_BYTES:
        return PdfText(problem="the PDF reader's output is too large")
    try:
        result = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return PdfText(problem="the PDF reader's output could not be read")
    if "error" in result:
        return PdfText(problem=f"it could not be read as a PDF: {result['error']}")
    pages = [p if isinstance(p, str) else "" for p in result.get("pages", [])]
    return PdfText(pages=pages, cut=bool(result.get("cut")))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()
