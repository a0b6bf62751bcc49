"""The fault-injection switch of the Dask tests (a sandboxed submission cannot kill its worker).

``GRADER_DASK_FAULT``, read by each worker process, is a JSON object::

    {"exit": ["doomed"],                 # these students' tasks kill their worker (os._exit) as it
                                         # takes them, every time
     "exit_once": ["unlucky"],           # these kill it once the sandbox has run (mid-submission), the
                                         # first time only, across every worker ...
     "once_dir": "/tmp/markers",         # ... a marker file per student here says it happened
     "sleep_s": {"slow": 30}}            # these sleep this long once the sandbox has run

``inject(student, "start")`` applies ``exit``; ``inject(student, "graded")`` the others. Unset
(every real grading), nothing happens. A malformed value is ignored, never an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

ENV = "GRADER_DASK_FAULT"
EXIT_STATUS = 70   # what a killed worker's process exits with (its nanny restarts it)


def inject(student: str, when: str) -> None:
    """Apply ``GRADER_DASK_FAULT`` to ``student``'s task on this worker at ``when`` (``"start"`` or
    ``"graded"``; see the module docstring)."""
    try:
        spec = json.loads(os.environ.get(ENV, "") or "{}")
    except ValueError:
        return
    if not isinstance(spec, dict):
        return
    if when == "start":
        if student in (spec.get("exit") or []):
            os._exit(EXIT_STATUS)
        return
    sleep_s = spec.get("sleep_s") or {}
    if isinstance(sleep_s, dict) and isinstance(sleep_s.get(student), (int, float)):
        time.sleep(float(sleep_s[student]))
    if student in (spec.get("exit_once") or []) and spec.get("once_dir"):
        marker = Path(spec["once_dir"]) / hashlib.sha256(student.encode("utf-8")).hexdigest()
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return
        os._exit(EXIT_STATUS)
