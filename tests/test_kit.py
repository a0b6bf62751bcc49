"""The student kit: no answers inside, and its self-check works in a fresh virtual environment."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.checks import build_suites
from grader.kit import build_kit
from grader.reference_oracle import ReferenceOracle
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]
KIT_TEXT_SUFFIXES = (".py", ".md", ".toml", ".json", ".txt")


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    return build_kit(tmp_path_factory.mktemp("kit") / "kit")


def _texts(kit: Path) -> dict[Path, str]:
    return {p: p.read_text("utf-8") for p in kit.rglob("*") if p.is_file() and p.suffix in KIT_TEXT_SUFFIXES}


def test_kit_holds_no_reference_formula_and_no_mistake_code(kit):
    texts = _texts(kit)
    assert not any(p.name in ("mistakes.py", "reference_oracle.py", "solution.py") for p in texts)
    for path, text in texts.items():
        assert not re.search(r"^\s*(from|import)\s+reference\b", text, re.M), path
    formula_lines = [line.strip() for line in (ROOT / "reference" / "formulas.py").read_text().splitlines()
                     if line.strip().startswith("return ") and len(line.strip()) > 20]
    assert formula_lines
    for path, text in texts.items():
        for line in formula_lines:
            assert line not in text, (path, line)


def test_kit_holds_no_hidden_seed_or_hidden_inputs(kit):
    rubric = load_rubric()
    texts = _texts(kit)
    assert all(str(rubric.seed) not in text for text in texts.values())
    kit_rubric = load_rubric(kit / "grader" / "kit_data" / "rubric.toml")
    assert kit_rubric.seed == rubric.public_seed != rubric.seed
    hidden = build_suites(rubric, ReferenceOracle())
    hidden_inputs = [a for s in hidden for c in s.checks for case in c.cases for a in case.args
                     if isinstance(a, np.ndarray) and a.size > 3]
    with np.load(kit / "grader" / "kit_data" / "expected.npz", allow_pickle=False) as table:
        public_values = [table[k] for k in table.files]
    oracle = ReferenceOracle()
    hidden_values = [oracle.value(case) for s in hidden for c in s.checks for case in c.cases
                     if case.kind == "function" and "unknown_kind" not in case.id]
    for value in hidden_values:
        assert not any(v.shape == value.shape and np.array_equal(v, value) for v in public_values)
    assert hidden_inputs  # (the inputs themselves never enter the table: only values are stored)


@pytest.fixture(scope="module")
def kit_venv(kit, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(kit / "requirements.txt")],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv


def _self_check(kit: Path, venv: Path, solution: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "grader.check", str(solution)],
                          capture_output=True, text=True, cwd=kit, timeout=300)


def test_self_check_in_a_fresh_venv_passes_a_correct_solution(kit, kit_venv):
    proc = _self_check(kit, kit_venv, ROOT / "submissions" / "alice_logsigmoid.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout and "sandbox: namespaces" in proc.stdout
    probe = subprocess.run([str(kit_venv / "bin" / "python"), "-c", "import reference"], capture_output=True,
                           cwd=kit)
    assert probe.returncode != 0  # the kit's environment has no reference package at all


def test_self_check_in_a_fresh_venv_explains_a_wrong_solution(kit, kit_venv):
    proc = _self_check(kit, kit_venv, ROOT / "submissions" / "mia_logvar_as_std.py")
    assert proc.returncode == 1
    out = proc.stdout
    assert "Likely mistake (logvar_as_std)" in out
    assert "_____ reparameterize :: value _____" in out
    assert "reproduce it:" in out and "from mia_logvar_as_std import reparameterize" in out
    assert "# run it in the folder that holds mia_logvar_as_std.py" in out and "from solution import" not in out
    assert "reparameterize               FFFFF" in out
