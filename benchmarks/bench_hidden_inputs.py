"""The grader's own work per submission for hidden inputs drawn per submission (``grader.seeds``):
building the formula suites from the submission's seed, and the reference's expected values and
gradients on them, all in the grader's process (no sandbox). Writes ``benchmarks/HIDDEN_INPUTS.md``.

    python benchmarks/bench_hidden_inputs.py [--submissions 300]
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from grader.atomic import write_atomic
from grader.checks import SuiteBuilder
from grader.reference_oracle import ReferenceOracle
from grader.rubric import load_rubric
from grader.seeds import submission_seed

OUT = Path(__file__).with_name("HIDDEN_INPUTS.md")


def expected_values(builder: SuiteBuilder, oracle: ReferenceOracle, seed: int) -> int:
    """Build the suites for ``seed`` and compute every value and gradient a correct submission's
    judging asks for; the number of cases."""
    cases = 0
    for suite in builder.for_seed(seed):
        suite.calls()
        for check in suite.checks:
            for case in check.cases:
                if case.kind != "function" or "/unknown_kind_raises/" in case.id:
                    continue
                oracle.value(case)
                if case.grad:
                    oracle.grads(case)
                cases += 1
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=300)
    args = parser.parse_args()
    torch_s = min(_timed([sys.executable, "-c", "import torch"]) for _ in range(3))
    builder, oracle = SuiteBuilder(load_rubric(), ReferenceOracle()), ReferenceOracle()
    expected_values(builder, oracle, 0)  # warm-up
    started = time.perf_counter()
    for i in range(args.submissions):
        cases = expected_values(builder, oracle, submission_seed(b"bench", hashlib.sha256(str(i).encode()).hexdigest()))
    per = (time.perf_counter() - started) / args.submissions
    write_atomic(OUT, "\n".join([
        "# Hidden inputs per submission: the grader's own cost",
        "",
        f"Measured by `python benchmarks/bench_hidden_inputs.py --submissions {args.submissions}` on "
        f"{date.today().isoformat()}, {platform.machine()}, Python {platform.python_version()}.",
        "",
        f"- `python -c \"import torch\"`: **{torch_s:.2f} s** (best of 3)",
        f"- suites drawn from the submission's seed, then the reference's values and gradients on "
        f"{cases} case lookups: **{per * 1000:.1f} ms per submission** = **{per / torch_s:.4f} torch imports**",
        "",
        "This is in the grader's process, once per graded submission (a resumed one costs nothing); "
        "FVBN and the workhouse keep fixed seeds, built once per run.",
        "",
    ]))
    print(OUT.read_text("utf-8"))


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
