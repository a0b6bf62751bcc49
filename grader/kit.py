"""The student kit: ``python -m grader kit --out DIR``.

The kit holds the handout, the template, the self-check (``python -m grader.check``) with the same
sandbox and judges as the TA's grading, and the expected values on the *public* inputs,
precomputed from the reference. It holds no reference source, no catalogue of mistakes as code
(their values on the public inputs are data), no hidden input and no grading seed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from grader.atomic import write_atomic
from grader.checks import build_suites
from grader.check import TA_ONLY
from grader.rubric import DEFAULT_RUBRIC, load_rubric, public_rubric, rubric_toml

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
#: The grader modules a student needs to check their work; nothing else is copied.
KIT_MODULES = (
    "__init__.py", "atomic.py", "check.py", "compare.py", "diagnoses.py", "escape.py", "filenames.py",
    "oracle.py", "seeds.py",
    "reports.py", "results.py", "rubric.py", "run.py", "scoring.py", "table_oracle.py", "tally.py",
    "checks/__init__.py", "checks/base.py", "checks/formulas.py", "checks/fvbn.py",
    # the intake package whole (it holds nothing secret), whatever modules it is split into
    *sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "intake").glob("*.py")),
)
KIT_README = """# Self-check kit

Check your solution before you submit it:

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/python -m grader.check path/to/your_solution.py    # or .ipynb, .zip, or a folder
```

It runs your code in the same sandbox and with the same kinds of checks as the grading, on
public inputs (the grading uses other, hidden inputs), and prints for every function what passed,
what failed, what was expected and what came back, the likely mistake, and a few lines of Python
that reproduce a failing call. Exit status 0 means everything passed.

On Linux your code runs in a sandbox. On macOS and Windows, or on a Linux machine without user
namespaces, it runs unsandboxed (it is your own code), and a WARNING on stderr says so: the same
checks, the same time limits, but no isolation, and memory and CPU limits only where the system
offers them. Checks that need the reference solution ({ta_only}) are run only by the grading.
"""


def build_kit(out: Path) -> Path:
    """Write the kit into ``out`` (created; must not exist or be empty); return ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    from grader.reference_oracle import ReferenceOracle  # the reference runs here, never ships

    rubric = public_rubric(load_rubric(DEFAULT_RUBRIC), drop=TA_ONLY)
    pkg = out / "grader"
    for rel in KIT_MODULES:
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, pkg / rel)
    shutil.copytree(PACKAGE / "sandbox", pkg / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
    data = pkg / "kit_data"
    data.mkdir()
    write_atomic(data / "rubric.toml", rubric_toml(rubric))
    from grader.table_oracle import write_table

    write_table(build_suites(rubric, ReferenceOracle()), ReferenceOracle(), data)
    shutil.copyfile(ROOT / "ASSIGNMENT.md", out / "ASSIGNMENT.md")
    shutil.copyfile(ROOT / "assignment" / "template.py", out / "template.py")
    write_atomic(out / "requirements.txt", "torch==2.13.0\nnumpy\nscipy\n")
    write_atomic(out / "README.md", KIT_README.format(ta_only=", ".join(TA_ONLY)))
    return out
