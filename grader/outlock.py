"""One writer per output folder: ``grade`` and ``regrade`` on the same folder never interleave.

A second run on a folder that is being written would mix two gradings' files (a resumed class
run and a regrade both rewrite ``scores.csv`` and ``summary.json``). ``output_lock`` takes an
exclusive, non-blocking ``flock`` on ``OUT/.grader.lock``; the kernel drops it when the holder
exits, however it exits, so a killed run never leaves the folder locked. Where ``fcntl`` does not
exist (Windows: the student kit, which writes no output folder) the lock is a no-op.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".grader.lock"


class OutputBusy(RuntimeError):
    """Another grading or regrade is writing this output folder."""


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the folder's lock for the ``with`` block; raise ``OutputBusy`` when another run has it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(f"another grading or regrade is writing {out_dir} (it holds {LOCK_NAME}); "
                             "wait for it to finish") from None
        yield
    finally:
        os.close(fd)  # closing drops the lock
