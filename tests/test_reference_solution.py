"""The reference solution is itself a submission: graded through the sandbox, it earns full marks,
and the sandbox never sees the project's reference package (the bundle carries its own copy)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from grader.rubric import load_rubric
from grader.scoring import points_str
from reference.bundle import write_solution_submission

ROOT = Path(__file__).resolve().parents[1]


def test_reference_solution_earns_full_marks(tmp_path):
    klass = tmp_path / "class"
    write_solution_submission(klass / "reference_solution")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(out), "--quiet", "--workers", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "results" / "reference_solution.json").read_text("utf-8"))
    automatic = [c for c in result["checks"] if c["function"] != "written"]   # written answers: marked by hand
    failed = {f"{c['function']}/{c['name']}": c["message"] for c in automatic if not c["passed"]}
    assert failed == {}
    assert result["status"] == "ok"
    assert result["score"] == points_str(load_rubric().max_score())


def test_template_raises_not_implemented_everywhere():
    """The starter file defines every contract name and implements none (checked as text:
    the template is student-facing and is graded only through the sandbox)."""
    text = (ROOT / "assignment" / "template.py").read_text("utf-8")
    for name in ("discriminator_loss", "generator_loss", "reparameterize", "gaussian_kl",
                 "bernoulli_log_likelihood", "elbo", "chain_rule_log_likelihood", "train_gan"):
        assert f"def {name}(" in text
    assert "class FVBN(" in text
    assert "import reference" not in text and "from reference" not in text
