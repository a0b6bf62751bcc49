"""Numeric grading of correct submissions, and the student's self-check, against one torch import.

    python benchmarks/bench_throughput.py [--copies 10] [--runs 3] [--checkout DIR] [--out FILE]

The class: the example class's correct code entries (alice, bob, carol, dan, erin, frank, grace:
six styles plus a zip), each copied ``--copies`` times under new names with a changed comment
(so every copy is really graded, on its own hidden inputs), graded with 2 workers under the rubric
without ``train_gan`` (whose training has its own budget), from a fresh output folder. The
self-check runs ``python -m grader.check`` on alice's file with each backend (``namespaces``,
and ``portable``, where each child imports torch). Each figure is the median of ``--runs`` runs,
wall and CPU time (the command and all its descendants), and is also given as a ratio to one
``python -c "import torch"`` measured in the same run. ``--checkout`` measures another checkout
of the project (e.g. an older commit in a git worktree) with this script. Measured, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORRECT = ("alice_logsigmoid.py", "bob_bce.py", "carol_distributions.py", "dan_softplus.py", "erin_loops_float64",
           "frank_notebook.ipynb", "grace_zip.zip")
WRAPPER = """import json, resource, subprocess, sys
code = subprocess.run(sys.argv[3:], cwd=sys.argv[2], env=json.loads(sys.argv[1]) or None,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "cpu": u.ru_utime + u.ru_stime}))
"""


def measure(cmd: list[str], cwd: Path, env: dict | None = None, ok=(0,)) -> tuple[float, float]:
    """(wall s, CPU s of the command and its descendants)."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(env or {}), str(cwd), *cmd],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    usage = json.loads(out.stdout)
    if usage["code"] not in ok:
        raise SystemExit(f"{cmd} exited {usage['code']}")
    return wall, usage["cpu"]


def build_class(dest: Path, copies: int) -> int:
    source = ROOT / "submissions"
    n = 0
    for i in range(copies):
        for name in CORRECT:
            entry = source / name
            stem, suffix = (entry.name, "") if entry.is_dir() else (entry.stem, entry.suffix)
            target = dest / f"{stem}_{i:03d}{suffix}"
            if entry.is_dir():
                shutil.copytree(entry, target)
                (target / "solution.py").write_text(f"# copy {i}\n" + (target / "solution.py").read_text())
            elif suffix == ".py":
                target.write_text(f"# copy {i}\n" + entry.read_text())
            else:  # a notebook or a zip: the same bytes would share hidden inputs; fine for timing
                shutil.copyfile(entry, target)
            n += 1
    return n


def median_of(runs: int, cmd: list[str], cwd: Path, env: dict | None = None, ok=(0,), before=None):
    walls, cpus = [], []
    for _ in range(runs):
        if before:
            before()
        wall, cpu = measure(cmd, cwd, env, ok)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout to measure")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: print only)")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    py = sys.executable
    try:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_grading import numeric_rubric

        rubric = numeric_rubric(work / "numeric.toml")
        klass = work / "class"
        klass.mkdir()
        n = build_class(klass, args.copies)
        torch_wall, torch_cpu = median_of(5, [py, "-c", "import torch"], checkout)
        out = work / "out"
        grade_wall, grade_cpu = median_of(
            args.runs, [py, "-m", "grader", str(klass), "--out", str(out), "--workers", "2", "--quiet", "--no-resume",
                        "--rubric", str(rubric)], checkout, before=lambda: shutil.rmtree(out, ignore_errors=True))
        one = work / "one"
        one.mkdir()
        shutil.copyfile(ROOT / "submissions" / "alice_logsigmoid.py", one / "alice_logsigmoid.py")
        base_wall, base_cpu = median_of(
            args.runs, [py, "-m", "grader", str(one), "--out", str(work / "o1"), "--workers", "2", "--quiet",
                        "--no-resume", "--rubric", str(rubric)], checkout)
        checks = {}
        for backend in ("namespaces", "portable"):
            env = {**os.environ, "GRADER_SANDBOX": backend}
            checks[backend] = median_of(args.runs, [py, "-m", "grader.check", str(one / "alice_logsigmoid.py")],
                                        checkout, env)
        records = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
        ok = sum(r["status"] == "ok" for r in records)
        sandbox = statistics.median(r["durations"]["sandbox_s"] for r in records)
        calls = statistics.median(sum(r["durations"]["calls_s"].values()) for r in records)
        total = statistics.median(r["durations"]["total_s"] for r in records)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True,
                            text=True).stdout.strip()
    per_wall = (grade_wall - base_wall) / (n - 1)
    per_cpu = (grade_cpu - base_cpu) / (n - 1)
    lines = [
        f"### Checkout {commit} ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores)", "",
        f"`python benchmarks/bench_throughput.py --copies {args.copies} --runs {args.runs}`; medians.", "",
        f"- `python -c \"import torch\"`: {torch_wall:.2f} s wall, {torch_cpu:.2f} s CPU",
        f"- class of {n} correct submissions ({ok} graded ok), 2 workers, numeric rubric: {grade_wall:.1f} s wall, "
        f"{grade_cpu:.1f} s CPU; a class of one: {base_wall:.1f} s wall",
        f"- per submission beyond start-up: **{per_wall:.3f} s wall = {per_wall / torch_wall:.3f} torch imports** "
        f"({n / grade_wall:.2f} submissions/s over the whole run); {per_cpu:.3f} s CPU = "
        f"{per_cpu / torch_cpu:.3f} torch imports of CPU",
        f"- inside one submission (medians of the records, 2 at once): total {total:.3f} s, sandbox {sandbox:.3f} s, "
        f"the calls themselves {calls:.3f} s",
        *[f"- self-check, `{b}` backend: **{w:.2f} s wall = {w / torch_wall:.2f} torch imports**, {c:.2f} s CPU"
          for b, (w, c) in checks.items()], "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
