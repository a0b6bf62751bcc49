"""Wording shown to students: not-run reasons said once, the self-check's "reproduce it" snippet
importing from the file the student actually checked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from grader.check import origin_of, reproduce
from grader.checks.base import Case, outcome_failure
from grader.intake import NOTEBOOK_ENTRY


def _outcome(status: str, error: str = "", value=None):
    return SimpleNamespace(id="gaussian_kl/float32/0", status=status, value=value, error=error, duration_s=0.0)


def test_not_run_reason_is_prefixed_once():
    # the sandbox's reasons (grader.sandbox.inside / supervisor / portable) already carry the prefix
    sandbox_said = "not run: call gaussian_kl/value/0 of its group timed out"
    assert outcome_failure(_outcome("not_run", sandbox_said), "gaussian_kl") == sandbox_said
    assert outcome_failure(_outcome("not_run", "the sandbox stopped early"), "gaussian_kl") == \
        "not run: the sandbox stopped early"
    assert outcome_failure(_outcome("not_run"), "gaussian_kl") == \
        "not run: an earlier call of this function crashed or timed out"


# ------------------------------------------------------------------ the self-check's snippet

CASE = Case("gaussian_kl/value/0", "gaussian_kl", (np.array([[0.5, -1.0]]), np.array([[0.25, 2.0]], np.float32)))
NAMES = ("mu", "logvar")
TOY = "import torch\ndef gaussian_kl(mu, logvar):\n    return (mu * 2 + logvar).sum(-1)\n"


def _run(snippet: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_snippet_imports_from_the_checked_file_by_its_own_name(tmp_path):
    # the sandbox loads a copy named solution.py (intake): the student's file is my_vae.py
    (tmp_path / "my_vae.py").write_text(TOY)
    snippet = reproduce(CASE, NAMES, origin_of(tmp_path / "my_vae.py", "solution.py"))
    assert "from my_vae import gaussian_kl" in snippet and "solution" not in snippet
    assert snippet.startswith("# run it in the folder that holds my_vae.py\n")
    assert "mu = torch.tensor([[ 0.5, -1. ]], dtype=torch.float64)" in snippet
    assert "logvar = torch.tensor([[0.25, 2.  ]], dtype=torch.float32)" in snippet
    assert _run(snippet, tmp_path).strip() == "tensor([1.2500], dtype=torch.float64)"


def test_snippet_loads_a_file_whose_name_import_cannot_spell(tmp_path):
    for name in ("my-vae.py", "class.py"):
        (tmp_path / name).write_text(TOY)
        snippet = reproduce(CASE, NAMES, origin_of(tmp_path / name, "solution.py"))
        assert f"gaussian_kl = run_path({name!r})['gaussian_kl']" in snippet and "import gaussian_kl" not in snippet
        assert _run(snippet, tmp_path).strip() == "tensor([1.2500], dtype=torch.float64)"


def test_snippet_for_a_folder_or_zip_imports_its_entry_module(tmp_path):
    folder = tmp_path / "grace"
    folder.mkdir()
    (folder / "vae_code.py").write_text(TOY)
    snippet = reproduce(CASE, NAMES, origin_of(folder, "vae_code.py"))
    assert snippet.startswith("# run it in grace/ (next to vae_code.py)\n") and "from vae_code import gaussian_kl" in snippet
    assert _run(snippet, folder).strip() == "tensor([1.2500], dtype=torch.float64)"
    zipped = reproduce(CASE, NAMES, origin_of(tmp_path / "grace.zip", "solution.py"))
    assert "# run it in the folder you zipped into grace.zip (next to solution.py)" in zipped
    assert "from solution import gaussian_kl" in zipped


def test_snippet_for_a_notebook_runs_in_a_new_cell_without_an_import(tmp_path):
    for origin in (origin_of(tmp_path / "frank.ipynb", NOTEBOOK_ENTRY), origin_of(tmp_path / "frank", NOTEBOOK_ENTRY)):
        snippet = reproduce(CASE, NAMES, origin)
        assert snippet.startswith("# in a new cell of ")
        assert "after running the cells that define your functions" in snippet
        assert "import gaussian_kl" not in snippet and "run_path" not in snippet and "notebook_solution" not in snippet
        assert snippet.splitlines()[1] == "import torch" and snippet.endswith("print(gaussian_kl(mu, logvar))")
    assert "frank.ipynb" in reproduce(CASE, NAMES, origin_of(tmp_path / "frank.ipynb", NOTEBOOK_ENTRY))
