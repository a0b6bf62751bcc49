"""The Dask engine's overhead: ``--dask local:2`` (two worker processes, one zygote each) against the
local engine's ``--workers 2`` (two zygotes) on the same class, and the bytes of both (and of
``--workers 1``) compared.

    python benchmarks/bench_dask.py [--class submissions] [--rubric RUBRIC] [--runs 3] [--out FILE]

Each run grades the class from a fresh output folder with the CLI; runs alternate between the
engines. Wall time, and CPU time of the command and every process under it (a subreaper collects
the orphans, such as the zygotes of a worker killed at shutdown, so their CPU counts too); the
figure is the median of ``--runs`` runs, the overhead the ratio Dask / local. The load average
before and after is printed: on a shared machine, read the ratios more than the seconds. Then
``scores.csv``, every result (without its ``durations``) and feedback file of the first run of
each engine and of one ``--workers 1`` run must be byte-identical (``grader.reproducible``). Measured, never asserted
except that last comparison.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grader.reproducible import reproducible_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = """import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans are reaped here
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
deadline, left = time.monotonic() + 60, 0
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        if time.monotonic() > deadline:
            left = 1
            break
        time.sleep(0.05)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "cpu": usage.ru_utime + usage.ru_stime, "orphans_left": left}))
"""
ENGINES = {"local": ["--workers", "2"], "dask": ["--dask", "local:2", "--workers", "1"], "one": ["--workers", "1"]}


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of ``cmd`` and every process under it); exits on a failed run."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    usage = json.loads(out.stdout)
    if usage["code"] not in (0, 1) or usage["orphans_left"]:
        raise SystemExit(f"{cmd}: exit status {usage['code']}, orphans left: {usage['orphans_left']}")
    return wall, usage["cpu"]


def grade(engine: str, class_dir: Path, out: Path, rubric: Path | None) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "grader", str(class_dir), "--out", str(out), "--quiet", "--no-resume",
           *ENGINES[engine], *(["--rubric", str(rubric)] if rubric else [])]
    return measure(cmd)


def difference(tmp: Path, name: str, lines: int = 12) -> str:
    """The first lines of a unified diff of ``name`` between the engines' first runs."""
    texts = {engine: (tmp / f"{engine}-0" / name).read_text("utf-8").splitlines() if (tmp / f"{engine}-0" / name).exists()
             else ["(missing)"] for engine in ("local", "dask", "one")}
    shown = []
    for other in ("dask", "one"):
        diff = list(difflib.unified_diff(texts["local"], texts[other], f"local/{name}", f"{other}/{name}", n=0,
                                         lineterm=""))
        shown += [line[:300] for line in diff[:lines]]
    return "\n```diff\n" + "\n".join(shown) + "\n```" if shown else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class", dest="class_dir", type=Path, default=ROOT / "submissions")
    parser.add_argument("--rubric", type=Path, default=None, help="default: the packaged rubric")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    torch_wall, torch_cpu = measure([sys.executable, "-c", "import torch"])
    figures: dict[str, list[tuple[float, float]]] = {"local": [], "dask": []}
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        for i in range(args.runs):
            for engine in ("local", "dask") if i % 2 == 0 else ("dask", "local"):
                out = Path(tmp) / f"{engine}-{i}"
                figures[engine].append(grade(engine, args.class_dir, out, args.rubric))
                runs.setdefault(engine, json.loads((out / "run.json").read_text("utf-8")))
        grade("one", args.class_dir, Path(tmp) / "one-0", args.rubric)
        outputs = {engine: reproducible_files(Path(tmp) / f"{engine}-0") for engine in ("local", "dask", "one")}
        same = outputs["local"] == outputs["dask"] == outputs["one"]
        differ = sorted(name for name in set().union(*outputs.values())
                        if len({o.get(name) for o in outputs.values()}) > 1)
        details = [difference(Path(tmp), name) for name in differ[:5]]
    load_after = os.getloadavg()
    wall = {e: statistics.median(w for w, _ in f) for e, f in figures.items()}
    cpu = {e: statistics.median(c for _, c in f) for e, f in figures.items()}
    students = runs["local"]["graded"]
    command = (f"python benchmarks/bench_dask.py --runs {args.runs}"
               f"{f' --class {args.class_dir}' if args.class_dir != ROOT / 'submissions' else ''}"
               f"{f' --rubric {args.rubric}' if args.rubric else ''}")
    lines = [
        f"`{command}` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"`python -c 'import torch'`: {torch_wall:.2f} s wall, {torch_cpu:.2f} s CPU.",
        "",
        f"Class: {args.class_dir.name}/ ({students} submissions graded), medians of {args.runs} runs.",
        "",
        "| engine | wall (s) | CPU, every process (s) | first dispatch (s) |",
        "|---|---|---|---|",
        f"| `--workers 2` (local) | {wall['local']:.1f} | {cpu['local']:.1f} | {runs['local']['first_dispatch_s']} |",
        f"| `--dask local:2 --workers 1` | {wall['dask']:.1f} | {cpu['dask']:.1f} | {runs['dask']['first_dispatch_s']} |",
        f"| **overhead (Dask / local)** | **{wall['dask'] / wall['local']:.2f}x** | "
        f"**{cpu['dask'] / cpu['local']:.2f}x** | |",
        "",
        "Every run: " + "; ".join(f"{e} " + ", ".join(f"{w:.1f}/{c:.1f}" for w, c in f) for e, f in figures.items())
        + " (wall/CPU s).",
        "",
        f"Bytes (scores.csv, {sum(1 for n in outputs['local'] if n.startswith('results/'))} results without "
        f"durations, feedback) of `--workers 1`, `--workers 2` and `--dask local:2`: "
        + ("**identical**." if same else f"**DIFFER**: {', '.join(differ[:10])}"),
        *details,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, "utf-8")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
