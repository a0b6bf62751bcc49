"""The student kit's self-check in a fresh virtual environment, with only the kit's requirements."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grader.kit import build_kit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    return build_kit(tmp_path_factory.mktemp("kit") / "kit")


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
