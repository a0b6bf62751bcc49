"""The harness's own cost per submission, from 10 to 10,000 submissions, and the resume of a finished run.

    python benchmarks/bench_bookkeeping.py [--sizes 200 2000 5000 10000] [--repeats 1] [--out benchmarks/BOOKKEEPING.md]

Each class holds N submissions that fail to compile (``def f(:``, each file distinct), so no student
code runs and what is measured is intake, the sandbox's load attempt, scoring, writing each record and
the aggregate files. For each N it grades the class through the CLI (2 workers, numeric rubric, fresh
output folder) and records wall time, CPU time (the grader and all its children) and peak memory
(the largest resident set among the grader and its children); then it adds one new submission and
grades again into the same folder (a resume), recording ``first_dispatch_s`` from ``run.json``: the
time from start to the moment the first new submission was handed to the sandbox. The cost per
submission is ``(time(N) - time(class of one)) / (N - 1)``, also as a ratio to one ``python -c "import
torch"`` measured in the same run. Timings are measured, never asserted.
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
sys.path.insert(0, str(ROOT / "benchmarks"))


WRAPPER = """import json, resource, subprocess, sys
code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"code": code, "cpu": u.ru_utime + u.ru_stime, "rss_mib": u.ru_maxrss / 1024}, open(sys.argv[1], "w"))
"""


def run_timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s of the command and its descendants, peak RSS MiB of the largest of them),
    measured through a small wrapper process, so that each figure is this command's alone."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", WRAPPER, report.name, *cmd], cwd=ROOT, check=True)
        wall = time.perf_counter() - start
        usage = json.loads(Path(report.name).read_text())
    if usage["code"] != 0:
        raise SystemExit(f"{cmd} failed ({usage['code']})")
    return wall, usage["cpu"], usage["rss_mib"]


def failing_class(dest: Path, n: int) -> None:
    dest.mkdir(parents=True)
    for i in range(n):
        (dest / f"s{i:05d}.py").write_text(f"# student {i}\ndef discriminator_loss(real, fake:\n    return 0\n")


def numeric_rubric(dest: Path) -> Path:
    from bench_grading import numeric_rubric as build

    return build(dest)


def grade(klass: Path, out: Path, rubric: Path, resume: bool = False) -> tuple[float, float, float, dict]:
    cmd = [sys.executable, "-m", "grader", str(klass), "--out", str(out), "--workers", "2", "--quiet",
           "--rubric", str(rubric)]
    if not resume:
        cmd.append("--no-resume")
    wall, cpu, rss = run_timed(cmd)
    return wall, cpu, rss, json.loads((out / "run.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 200, 2000, 5000, 10000])
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (the median is reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "BOOKKEEPING.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-books-"))
    rows = []
    try:
        rubric = numeric_rubric(work / "numeric.toml")
        torch_wall = statistics.median(run_timed([sys.executable, "-c", "import torch"])[0] for _ in range(5))
        empty = work / "one"  # an empty class is refused: the base is a class of one
        failing_class(empty, 1)
        base = [grade(empty, work / f"out-empty-{k}", rubric) for k in range(3)]
        base_wall = statistics.median(b[0] for b in base)
        base_cpu = statistics.median(b[1] for b in base)
        base_own = statistics.median(b[3]["grader_cpu_s"] for b in base)
        torch_cpu = statistics.median(run_timed([sys.executable, "-c", "import torch"])[1] for _ in range(5))
        for n in args.sizes:
            klass = work / f"class-{n}"
            failing_class(klass, n)
            runs = [grade(klass, work / f"out-{n}-{k}", rubric) for k in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            (klass / "newcomer.py").write_text("# a late one\ndef f(:\n")
            rwall, _, _, record = grade(klass, work / f"out-{n}-0", rubric, resume=True)
            own_cpu = statistics.median(r[3]["grader_cpu_s"] for r in runs)
            own_rss = max(r[3]["grader_peak_rss_mib"] for r in runs)
            rows.append((n, wall, cpu, rss, rwall, record.get("first_dispatch_s"), own_cpu, own_rss))
            print(rows[-1], flush=True)
            for k in range(args.repeats):
                shutil.rmtree(work / f"out-{n}-{k}", ignore_errors=True)
            shutil.rmtree(klass, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "# Bookkeeping: the harness's own cost per submission", "",
        f"Measured by `python benchmarks/bench_bookkeeping.py --sizes {' '.join(map(str, args.sizes))} "
        f"--repeats {args.repeats}` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Classes of submissions that fail to compile (no student code runs), "
        "2 workers, numeric rubric, fresh output folder; then one new submission added and the class graded "
        "again into the same folder (resume).", "",
        f"- `python -c \"import torch\"`: **{torch_wall:.2f} s** wall, {torch_cpu:.2f} s CPU (medians of 5), "
        "in the same run",
        f"- the grader on a class of one: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU (median of 3)",
        "- *grader process*: the TA's process alone (intake, judging, scoring, every file written; no sandbox), "
        "from `run.json`'s `grader_cpu_s` and `grader_peak_rss_mib`", "",
        "| N | wall (s) | CPU (s) | wall per submission (ms) | CPU per submission (ms) | per submission, torch imports | "
        "grader process CPU per submission (ms) | the same, torch imports of CPU | grader process peak RSS (MiB) | "
        "peak RSS, largest process (MiB) | resume: wall (s) | resume: first new submission dispatched after (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, wall, cpu, rss, rwall, first, own_cpu, own_rss in rows:
        per_wall = (wall - base_wall) / (n - 1)
        per_cpu = (cpu - base_cpu) / (n - 1)
        per_own = (own_cpu - base_own) / (n - 1)
        lines.append(f"| {n} | {wall:.1f} | {cpu:.1f} | {per_wall * 1000:.1f} | {per_cpu * 1000:.1f} | "
                     f"{per_wall / torch_wall:.4f} | {per_own * 1000:.1f} | {per_own / torch_cpu:.4f} | "
                     f"{own_rss:.0f} | {rss:.0f} | {rwall:.1f} | {first if first is not None else 'n/a'} |")
    by_n = {n: (wall - base_wall) / (n - 1) for n, wall, *_ in rows}
    if 200 in by_n and 5000 in by_n:
        lines += ["", f"Wall per submission at 5000 / at 200: **{by_n[5000] / by_n[200]:.2f}x**."]
    lines.append("")
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
