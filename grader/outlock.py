"""One writer per output folder: ``grade`` and ``regrade`` on the same folder never interleave.

A second run on a folder that is being written would mix two gradings' files (a resumed class
run and a regrade both rewrite ``scores.csv`` and ``summary.json``). ``output_lock`` takes an
exclusive, non-blocking ``flock`` on ``OUT/.grader.lock``; the kernel drops it when the holder
exits, however it exits, so a killed run never leaves the folder locked. Where ``fcntl`` does not
exist (Windows: the student kit, which writes no output folder) the lock is a no-op.

A new output folder is made ``0o700`` (grades are private); the files inside follow the umask
(``grader.atomic``). A run's scratch folders (the prepared copies of the submissions) live in
``OUT/.work/`` (``work_folder``), under the lock: whoever takes the lock first removes what a
killed earlier run left there (no other run can be using it while the lock is held), and the
lock's holder removes ``.work`` again when it is done with it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".grader.lock"
WORK_NAME = ".work"
OUT_MODE = 0o700


class OutputBusy(RuntimeError):
    """Another grading or regrade is writing this output folder."""


def make_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` (and its parents) if it is missing; a folder created here is ``0o700``
    whatever the umask; an existing folder keeps its mode (the TA may have shared it)."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        return
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        out_dir.mkdir(mode=OUT_MODE)
    except FileExistsError:
        if not out_dir.is_dir():
            raise
        return
    os.chmod(out_dir, OUT_MODE)  # mkdir's mode is masked by the umask (which may be stricter: fine, but not looser)


def _remove_leftovers(out_dir: Path) -> None:
    """``OUT/.work`` as an earlier (killed) run left it: removed. Only called under the lock."""
    work = out_dir / WORK_NAME
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        work.unlink()
    elif work.is_dir():
        shutil.rmtree(work, ignore_errors=True)


def work_folder(out_dir: Path, prefix: str) -> Path:
    """A fresh, private scratch folder ``OUT/.work/<prefix>XXXX``. Call it while holding
    ``output_lock(out_dir)``; remove it when done (the lock's exit removes ``.work`` if empty,
    the next holder whatever is left)."""
    work = Path(out_dir) / WORK_NAME
    work.mkdir(mode=OUT_MODE, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=work))


@contextlib.contextmanager
def scratch_folder(out_dir: Path, prefix: str) -> Iterator[Path]:
    """``work_folder`` for the ``with`` block, removed after it (however the block ends)."""
    folder = work_folder(out_dir, prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the folder's lock for the ``with`` block; raise ``OutputBusy`` when another run has it.

    Creates the folder (``0o700``) if it is missing; once the lock is held, removes the scratch
    folders (``OUT/.work``) of earlier runs that were killed."""
    out_dir = Path(out_dir)
    make_output_folder(out_dir)
    if fcntl is None:
        _remove_leftovers(out_dir)
        try:
            yield
        finally:
            _drop_empty_work(out_dir)
        return
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(f"another grading or regrade is writing {out_dir} (it holds {LOCK_NAME}); "
                             "wait for it to finish") from None
        _remove_leftovers(out_dir)
        try:
            yield
        finally:
            _drop_empty_work(out_dir)
    finally:
        os.close(fd)  # closing drops the lock


def _drop_empty_work(out_dir: Path) -> None:
    try:
        (out_dir / WORK_NAME).rmdir()
    except OSError:
        pass  # missing, or still holding something (the next holder removes it)
