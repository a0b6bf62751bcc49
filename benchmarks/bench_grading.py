"""Grading speed: submissions per second on a class of >= 200 correct and wrong submissions.

    python benchmarks/bench_grading.py [--copies 10] [--out benchmarks/RESULTS.md]

Builds a class from the example class's non-hostile entries (each copied ``--copies`` times under
new names, so every copy is really graded), grades it through the CLI with 1 and then 2 workers
(fresh output folders, no resume), and times, apart, each hostile entry alone and
``python -c "import torch"``. Writes a Markdown table. Timings are measured, never asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASS = ROOT / "submissions"
HOSTILE = ("uma_hang.py", "victor_memory_hog.py", "wendy_output_flood.py", "xavier_reads_reference.py")


def build_class(dest: Path, copies: int) -> int:
    entries = [p for p in sorted(CLASS.iterdir()) if p.name not in HOSTILE and p.name != "README.md"]
    n = 0
    for i in range(copies):
        for entry in entries:
            stem, suffix = (entry.name, "") if entry.is_dir() else (entry.stem, entry.suffix)
            target = dest / f"{stem}_{i:03d}{suffix}"
            (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, target)
            n += 1
    return n


def numeric_rubric(dest: Path) -> Path:
    """The rubric without the workhouse: the numeric checks alone (same seed, points, tolerances)."""
    sys.path.insert(0, str(ROOT))
    from dataclasses import replace

    from grader.rubric import load_rubric, rubric_toml

    rubric = load_rubric()
    dest.write_text(rubric_toml(replace(rubric, points={k: v for k, v in rubric.points.items() if k != "train_gan"})))
    return dest


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return elapsed, (proc.stdout.strip().splitlines() or [""])[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workhouse-copies", type=int, default=2, help="class size / 20 for the full rubric run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        klass = work / "class"
        klass.mkdir()
        n = build_class(klass, args.copies)
        torch_s = min(timed([sys.executable, "-c", "import torch"])[0] for _ in range(3))
        rubric = numeric_rubric(work / "numeric.toml")
        rows = []
        for workers in (1, 2):
            elapsed, line = timed([sys.executable, "-m", "grader", str(klass), "--out", str(work / f"out{workers}"),
                                   "--workers", str(workers), "--no-resume", "--quiet", "--rubric", str(rubric)])
            rows.append((workers, elapsed, line))
        small = work / "small"
        small.mkdir()
        n_small = build_class(small, args.workhouse_copies)
        full_s, full_line = timed([sys.executable, "-m", "grader", str(small), "--out", str(work / "outfull"),
                                   "--workers", "2", "--no-resume", "--quiet"])
        hostile = []
        for name in HOSTILE:
            one = work / f"h-{name}"
            one.mkdir()
            shutil.copyfile(CLASS / name, one / name)
            elapsed, _ = timed([sys.executable, "-m", "grader", str(one), "--out", str(work / f"ho-{name}"),
                                "--workers", "1", "--no-resume", "--quiet"])
            hostile.append((name, elapsed))
        empty = work / "empty"
        empty.mkdir()
        startup, _ = timed([sys.executable, "-m", "grader", str(empty), "--out", str(work / "oe"), "--quiet"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "# Grading speed", "",
        f"Measured by `python benchmarks/bench_grading.py --copies {args.copies}` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Wall times of the whole CLI run (start-up of the grader and its zygotes included).", "",
        f"- `python -c \"import torch\"`: **{torch_s:.2f} s** (best of 3)",
        f"- grader on an empty class (start-up: imports, rubric, zygotes): **{startup:.2f} s**", "",
        f"## Class of {n} submissions (the example class's non-hostile entries x {args.copies})", "",
        "Numeric checks only (the rubric without `train_gan`, whose training has its own budget):", "",
        "| workers | wall time (s) | submissions / s | per submission (s) | s per submission minus start-up | grader's line |",
        "|---|---|---|---|---|---|",
    ]
    for workers, elapsed, line in rows:
        lines.append(f"| {workers} | {elapsed:.1f} | {n / elapsed:.2f} | {elapsed / n:.3f} | "
                     f"{(elapsed - startup) / n:.3f} | {line} |")
    lines += ["", f"## Full rubric, workhouse included ({n_small} submissions, 2 workers)", "",
              f"- wall time {full_s:.1f} s, {n_small / full_s:.2f} submissions / s, "
              f"{full_s / n_small:.2f} s per submission ({full_line.split(';')[0]})"]
    lines += ["", "## Hostile entries, each graded alone (1 worker; start-up included)", "",
              "| entry | wall time (s) |", "|---|---|"]
    lines += [f"| `{name}` | {elapsed:.1f} |" for name, elapsed in hostile]
    lines.append("")
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
