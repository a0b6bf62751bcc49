"""The student's self-check: ``python -m grader.check my_solution.py`` (a .py, .ipynb, .zip or folder).

Runs the same sandbox and the same kinds of checks as the TA's grading, on *public* inputs (the
rubric's ``public_seed``; the TA grades on hidden ones), and prints a pytest-like report per
function: passed or failed, expected vs received, the diagnosed mistake, and a few lines that
reproduce a failing call. Exit status 0 when everything passed, 1 when something failed, 2 when
the file could not be checked.

In the student kit, expected values come from a precomputed table (``grader/kit_data``: no
reference source inside); in the course repository, from the reference.

Where the code runs (``choose_backend``): in the namespace sandbox where the kernel allows it
(Linux); else, on Linux, in the fork-based sandbox without namespaces ("none": rlimits only);
else (macOS, Windows: no ``fork`` or no ``pidfd_open``) in a plain subprocess
(``grader.sandbox.portable``). The last two are UNSANDBOXED (it is the student's own code, on
their own machine), and a WARNING on stderr says so. The environment variable
``GRADER_SANDBOX`` forces a backend: ``portable`` (e.g. to test that path on Linux), ``none``
or ``namespaces``; ``auto`` (or unset) chooses as above.
"""
from __future__ import annotations

import argparse
import keyword
import os
import shutil
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from typing import TYPE_CHECKING

from grader import intake
from grader.rubric import DEFAULT_RUBRIC, Rubric, load_rubric, public_rubric
from grader.sandbox import Limits, isolation_available
from grader.scoring import CheckResult, JudgeError, points_str

if TYPE_CHECKING:
    from grader.checks.base import Case

KIT_DATA = Path(__file__).with_name("kit_data")
#: Checks the self-check cannot run without the reference (they are graded by the TA only).
TA_ONLY = ("FVBN/log_prob_consistent", "train_gan")
BACKENDS = ("auto", "namespaces", "none", "portable")
#: What the header of the report says about each backend.
SANDBOX_LABELS = {"namespaces": "namespaces", "none": "NONE", "portable": "NONE (portable)"}


def fork_sandbox_missing() -> str | None:
    """Why the fork-based sandbox (``SandboxPool``) cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux, and this is {sys.platform}"
    import select

    missing = [name for module, name in ((os, "fork"), (os, "pidfd_open"), (select, "poll"))
               if not hasattr(module, name)]
    try:
        import resource  # noqa: F401
    except ImportError:
        missing.append("resource")
    return f"this Python has no {', '.join(missing)}" if missing else None


def choose_backend() -> tuple[str, str]:
    """("namespaces" | "none" | "portable", why); ``GRADER_SANDBOX`` overrides (see the docstring)."""
    asked = os.environ.get("GRADER_SANDBOX", "").strip().lower() or "auto"
    if asked not in BACKENDS:
        raise ValueError(f"GRADER_SANDBOX must be one of {', '.join(BACKENDS)}, got {asked!r}")
    if asked == "portable":
        return "portable", "GRADER_SANDBOX=portable"
    missing = fork_sandbox_missing()
    if missing is not None:
        if asked != "auto":
            raise ValueError(f"GRADER_SANDBOX={asked} cannot run here: {missing}")
        return "portable", missing
    if asked == "none":
        return "none", "GRADER_SANDBOX=none"
    available, why = isolation_available()
    if asked == "namespaces" and not available:
        raise ValueError(f"GRADER_SANDBOX=namespaces cannot run here: {why}")
    return ("namespaces" if available else "none"), why


def open_pool(backend: str):
    """The pool of ``backend`` (``choose_backend``), one worker, the default limits. A zygote
    starts at once, in the background: it imports torch while the caller prepares the checks.
    The self-check never runs ``train_gan`` (``TA_ONLY``), so the zygote does not preload it, nor
    the optional packages: one submission imports what it uses, once."""
    if backend == "portable":
        from grader.sandbox.portable import PortablePool

        return PortablePool(Limits(), workers=1)
    from grader.sandbox.pool import SandboxPool

    return SandboxPool(Limits(), workers=1, isolation=backend, workhouse=False, preload=False)


def load_public_setup() -> tuple[Rubric, object]:
    """The public rubric and its oracle: the kit's table when present, else the reference."""
    if (KIT_DATA / "rubric.toml").exists():
        from grader.table_oracle import TableOracle

        return load_rubric(KIT_DATA / "rubric.toml"), TableOracle(KIT_DATA)
    from grader.reference_oracle import ReferenceOracle

    return public_rubric(load_rubric(DEFAULT_RUBRIC), drop=TA_ONLY), ReferenceOracle()


def _literal(value: np.ndarray) -> str:
    return np.array2string(value, separator=", ", threshold=10**6, max_line_width=100,
                           floatmode="unique").replace("\n", "\n    ")


@dataclass(frozen=True)
class Origin:
    """Where the checked code lives, as the student sees it: what the snippet imports from."""

    where: str                 # where to run the snippet (a comment line)
    file: str | None = None    # the .py to import from; None for a notebook (run in a new cell)

    def import_lines(self, function: str) -> list[str]:
        if self.file is None:
            return []
        module = self.file[: -len(".py")]
        if module.isidentifier() and not keyword.iskeyword(module):
            return [f"from {module} import {function}"]
        # a name `import` cannot spell (my-solution.py, 2nd try.py): load the file by its path
        return ["from runpy import run_path", f"{function} = run_path({self.file!r})[{function!r}]"]


def origin_of(path: Path, entry: str | None) -> Origin:
    """The real module of the checked ``path`` (not the copy the sandbox loads, which intake names
    ``solution.py`` or ``notebook_solution.py``): a .py file's own name; a notebook has none (the
    snippet goes in a new cell, after the cells that define the functions); a folder's or zip's
    entry module (``entry``, as intake chose it: ``solution.py`` or its single .py)."""
    notebook = "in a new cell of {}, after running the cells that define your functions"
    name = path.name
    if not path.is_dir() and path.suffix.lower() == ".ipynb":
        return Origin(notebook.format(name))
    if not path.is_dir() and path.suffix.lower() == ".py":
        return Origin(f"run it in the folder that holds {name}", name)
    if entry is None or entry == intake.NOTEBOOK_ENTRY or not entry.lower().endswith(".py"):
        return Origin(notebook.format(f"the notebook in {name}"))
    holder = f"{name}/" if path.is_dir() else f"the folder you zipped into {name}"
    return Origin(f"run it in {holder} (next to {entry})", entry)


def reproduce(case: Case, arg_names: tuple[str, ...], origin: Origin) -> str:
    """A few lines of Python that make the same call (public inputs only), importing from the
    file the student checked (``origin_of``)."""
    lines = [f"# {origin.where}", "import torch", *origin.import_lines(case.function), ""]
    names = []
    for name, value in zip(arg_names, case.args):
        if isinstance(value, np.ndarray):
            lines.append(f"{name} = torch.tensor({_literal(value)}, dtype=torch.{value.dtype})")
            names.append(name)
    kwargs = "".join(f", {k}={v!r}" for k, v in case.kwargs.items())
    lines.append(f"print({case.function}({', '.join(names)}{kwargs}))")
    return "\n".join(lines)


def render(results: list[CheckResult], cases: dict[str, Case], origin: Origin, header: str) -> str:
    from grader.checks.formulas import SPECS

    out = [header, ""]
    by_function: dict[str, list[CheckResult]] = {}
    for r in results:
        by_function.setdefault(r.function, []).append(r)
    failures = []
    for function, checks in by_function.items():
        marks = "".join("." if c.passed else "F" for c in checks)
        got = sum(c.score for c in checks)
        top = sum(c.max_score for c in checks)
        out.append(f"{function:<28} {marks:<12} {points_str(got):>5} / {points_str(top)}")
        failures += [c for c in checks if not c.passed]
    shown: set[tuple[str, str | None]] = set()
    for c in failures:
        key = (c.function, c.diagnosis)
        if c.message.startswith("not credited") or (c.diagnosis and key in shown):
            reason = c.message if c.message.startswith("not credited") else "same mistake as above"
            out.append(f"FAILED {c.function} :: {c.name}: {reason}")
            continue
        shown.add(key)
        out += ["", f"_____ {c.function} :: {c.name} _____", f"({c.description})",
                textwrap.indent(c.message.strip() or "failed", "  ")]
        case = cases.get((c.hidden or {}).get("case", ""))
        if case is not None and case.kind == "function" and c.function in SPECS and \
                not c.message.startswith("not credited"):
            out += ["  reproduce it:", textwrap.indent(reproduce(case, SPECS[c.function].arg_names, origin), "    ")]
    passed = sum(r.passed for r in results)
    total = sum(r.score for r in results)
    top = sum(r.max_score for r in results)
    out += ["", f"===== {len(results) - passed} failed, {passed} passed; {points_str(total)} / {points_str(top)} "
                f"points on the public inputs ====="]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.check", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="your solution: a .py, .ipynb, .zip or folder")
    args = parser.parse_args(argv)
    path = args.path
    if not path.exists():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    try:
        backend, why = choose_backend()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if backend != "namespaces":
        how = "in a plain subprocess" if backend == "portable" else "with resource limits only"
        print(f"WARNING: no sandbox here ({why}). Your own code will run unsandboxed, {how}, with "
              "your rights; the TA's grading runs it sandboxed.", file=sys.stderr)
    pool = open_pool(backend)  # first: its zygote starts up while the rest is imported and prepared
    work = Path(tempfile.mkdtemp(prefix="selfcheck-"))
    try:
        from grader.checks import build_suites
        from grader.run import grade_submission  # the same path as the TA's grading

        rubric, oracle = load_public_setup()
        suites = build_suites(rubric, oracle)
        cases = {c.id: c for s in suites for ch in s.checks for c in ch.cases}
        klass = work / "class"
        klass.mkdir()
        target = klass / path.name
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, target)
        submissions, _ = intake.prepare(klass, work / "prepared")
        sub = submissions[0]
        with pool:
            result, _ = grade_submission(sub, suites, pool, rubric, [s.calls() for s in suites])
    except JudgeError as exc:  # the grader's own bug, never the student's
        print(f"error: the self-check itself failed, not your code (please report this): {exc}", file=sys.stderr)
        return 3
    finally:
        pool.close()
        shutil.rmtree(work, ignore_errors=True)
    header = f"self-check of {path} (public inputs; sandbox: {SANDBOX_LABELS[backend]})"
    if result.status != "ok":
        header += f"\nstatus: {result.status}: {result.message}"
    for note in result.submission.get("notes", []):
        header += f"\nnote: {note}"
    print(render(result.checks, cases, origin_of(path, sub.entry), header))
    if result.status in ("load_error", "conflict"):
        return 2
    return 0 if all(c.passed for c in result.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
