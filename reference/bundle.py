"""The reference solution packaged as an ordinary folder submission, to be graded like any other.

``reference/solution.py`` imports ``reference.formulas`` and friends; in the sandbox the project's
``reference`` package is invisible, so the bundle carries a copy of exactly the modules it needs.
"""
from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
MODULES = ("__init__.py", "formulas.py", "workhouse.py", "models/__init__.py", "models/fvbn.py",
           "models/gan.py", "models/vae.py")


def write_solution_submission(dest: Path) -> Path:
    """Write ``dest/solution.py`` plus ``dest/reference/...``; return ``dest``."""
    dest = Path(dest)
    for rel in MODULES:
        target = dest / "reference" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, target)
    shutil.copyfile(PACKAGE / "solution.py", dest / "solution.py")
    return dest
