"""Error rates of the ``train_gan`` check, measured on trusted loops: correct styles and classic mistakes.

    python benchmarks/workhouse_calibration.py [--correct-runs 150] [--mistake-runs 40] [--workers 2] \
        [--out benchmarks/WORKHOUSE.md]

Every run grades one loop of ``tests/workhouse_loops.py`` exactly as the grader does
(``grader.checks.workhouse.build_suite``, the calls executed in-process by
``grader.sandbox.calls.execute_call``, then ``judge_suite`` and ``score_suite``), except that the
rubric's seed is replaced by a fresh one per run. The grading seed is fixed, but across a class
every correct loop, with its own order of random draws, meets what amounts to a fresh seed; a
fresh rubric seed gives fresh initial weights, ``rng`` seed, evaluation seed and probe networks.
The loops are our own code (never a student's file), so they run in this process.

Written: a Markdown report (``--out``) with, per style, the runs and the rate of full marks (correct
styles, which must reach >= 98 %) or of missed full marks (mistakes, >= 98 %) and how often the
named diagnosis was the right one; the acceptance region; the CPU time of the check per
submission. Every run's record goes to ``--jsonl`` (default: next to ``--out``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))   # the trusted loops: tests/workhouse_loops.py

SEED_BASE = 900_000_000   # calibration rubric seeds: SEED_BASE + run index (never the grading seed)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")


@dataclasses.dataclass
class _Outcome:
    id: str
    status: str
    value: dict | None
    error: str = ""
    duration_s: float = 0.0


def grade_loop(kind: str, style: str, run: int) -> dict:
    """Grade one trusted loop with the rubric's seed replaced by ``SEED_BASE + run``."""
    from workhouse_loops import CORRECT, MISTAKES
    from grader.checks import workhouse
    from grader.rubric import load_rubric
    from grader.sandbox.calls import execute_call
    from grader.scoring import judge_suite, score_suite

    loop = CORRECT[style] if kind == "correct" else MISTAKES[style][0]
    rubric = dataclasses.replace(load_rubric(), seed=SEED_BASE + run)
    suite = workhouse.build_suite(rubric)
    outcomes, cpu = {}, {}
    for call in suite.calls():
        c0 = time.process_time()
        try:
            value = execute_call({"train_gan": loop}, call)
            outcomes[call["id"]] = _Outcome(call["id"], "ok", value)
        except Exception as exc:  # a crash of the loop is an outcome, as in the sandbox
            outcomes[call["id"]] = _Outcome(call["id"], "error", None, f"{type(exc).__name__}: {exc}")
        cpu[call["id"]] = time.process_time() - c0
    j0 = time.process_time()
    results = score_suite(suite, judge_suite(suite, outcomes), rubric)
    judge_s = time.process_time() - j0
    main = outcomes.get(workhouse.MAIN_ID)
    stats = {}
    if main is not None and main.value and "raised" not in main.value:
        case = next(c for check in suite.checks for c in check.cases if c.id == workhouse.MAIN_ID)
        evaluation, _ = workhouse.evaluate_outcome(main.value, case, workhouse.grading_seeds(rubric)["eval"])
        if evaluation is not None:
            stats = evaluation.stats
    return {"kind": kind, "style": style, "run": run, "rubric_version": rubric.version, "score": str(sum(r.score for r in results)),
            "max_score": str(sum(r.max_score for r in results)),
            "full": all(r.passed for r in results),
            "failed": [r.name for r in results if not r.passed],
            "diagnoses": sorted({r.diagnosis for r in results if r.diagnosis and not r.passed}),
            "stats": stats, "cpu_s": cpu, "judge_cpu_s": judge_s}


def _task(args: tuple[str, str, int]) -> dict:
    return grade_loop(*args)


def wilson_upper(failures: int, n: int, z: float = 1.96) -> float:
    """Upper end of the 95 % Wilson interval of a rate ``failures / n``."""
    if n == 0:
        return 1.0
    p = failures / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z * z / n))


def report(records: list[dict], args: argparse.Namespace, wall_s: float) -> str:
    from workhouse_loops import CORRECT, MISTAKES
    from grader.checks import workhouse
    from grader.rubric import load_rubric
    from reference.train import device_name, versions

    import torch

    rubric = load_rubric()
    settings = workhouse.load_settings(rubric)
    stats = workhouse.reference_stats(settings)
    region = workhouse.acceptance_region(stats, settings)
    graded = set(rubric.points[workhouse.FUNCTION])
    older = Counter(r.get("rubric_version", "?") for r in records if r.get("rubric_version") != rubric.version)
    for r in records:  # records of an older rubric: only the checks this one still has
        r["failed"] = [c for c in r["failed"] if c in graded]
    by_style: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        by_style.setdefault((r["kind"], r["style"]), []).append(r)

    command = getattr(args, "command", None) or " ".join(sys.argv[1:])
    lines = ["# Calibration of the `train_gan` check (the GAN workhouse)", "",
             f"Written by `python benchmarks/workhouse_calibration.py {command}`"
             f" on {device_name(torch.device('cpu'))}, {platform.python_version()}, torch "
             f"{versions()['torch']}; {len(records)} graded runs in {wall_s / 60:.1f} min "
             f"({args.workers} processes, one thread each).", "",
             "Each run grades one trusted loop (`tests/workhouse_loops.py`) exactly as the grader does, "
             "with the rubric's seed replaced by a fresh one (fresh initial weights, `rng`, evaluation and probe "
             "seeds): across a class, every correct loop meets what amounts to a fresh seed.", "",
             *([f"Runs graded under an earlier rubric ({', '.join(f'{v}: {n} runs' for v, n in older.items())}) "
                "are mixed in: their verdicts are those of that rubric.", ""] if older else []),
             "## Budget and acceptance region", "",
             f"- budget (`[workhouse]` in `grader/rubric.toml`): {settings.steps} steps, batch {settings.batch_size}, "
             f"lr {settings.lr:g}; probe {settings.probe_steps} steps, tolerance {settings.probe_tolerance:g}",
             f"- reference statistics: `reference/stats/{settings.stats}`, {len(stats['seeds'])} seeds of "
             f"`reference.workhouse.train_gan`", "",
             "| statistic | rule | acceptance | reference seeds: min / median / max |", "|---|---|---|---|"]
    for name, rule, margin in settings.region:
        vals = stats["metrics"][name]["values"]
        lines.append(f"| `{name}` | {rule} {margin:g} | {region[name].text()} | {min(vals):.4g} / "
                     f"{statistics.median(vals):.4g} / {max(vals):.4g} |")

    lines += ["", "## Correct loops: full marks (required: >= 98 %)", "",
              "| style | runs | full marks | rate | 95 % upper bound of the miss rate | checks not credited (count) |",
              "|---|---|---|---|---|---|"]
    all_correct = [r for r in records if r["kind"] == "correct"]
    lines.insert(lines.index("## Correct loops: full marks (required: >= 98 %)") + 1, "")
    lines.insert(lines.index("## Correct loops: full marks (required: >= 98 %)") + 2,
                 "A check is *not credited* when it failed or when a check it builds on failed (every check "
                 "builds on `trains` and on `ring_distance`, and those two on each other; `loss_levels` also on "
                 "`loss_history`).")
    for style in CORRECT:
        rs = by_style.get(("correct", style), [])
        full = sum(r["full"] for r in rs)
        fails = Counter(c for r in rs for c in r["failed"])
        lines.append(f"| `{style}` | {len(rs)} | {full} | {100 * full / max(1, len(rs)):.1f} % | "
                     f"{100 * wilson_upper(len(rs) - full, len(rs)):.1f} % | "
                     f"{', '.join(f'{k} ({v})' for k, v in fails.most_common()) or '-'} |")
    full = sum(r["full"] for r in all_correct)
    lines.append(f"| **all** | {len(all_correct)} | {full} | {100 * full / max(1, len(all_correct)):.2f} % | "
                 f"{100 * wilson_upper(len(all_correct) - full, len(all_correct)):.2f} % | |")

    lines += ["", "## Classic mistakes: full marks missed (required: >= 98 %), and the diagnosis named", "",
              "| mistake | runs | missed full marks | rate | right diagnosis named | mean score / 10 "
              "| checks not credited (count) |",
              "|---|---|---|---|---|---|---|"]
    all_wrong = [r for r in records if r["kind"] == "mistake"]
    for style, (_, expected) in MISTAKES.items():
        rs = by_style.get(("mistake", style), [])
        missed = sum(not r["full"] for r in rs)
        named = sum(bool(set(r["diagnoses"]) & set(expected)) for r in rs)
        fails = Counter(c for r in rs for c in r["failed"])
        mean = statistics.fmean(float(r["score"]) for r in rs) if rs else float("nan")
        lines.append(f"| `{style}` | {len(rs)} | {missed} | {100 * missed / max(1, len(rs)):.1f} % | "
                     f"{named}/{len(rs)} (`{'`, `'.join(expected)}`) | {mean:.2f} | "
                     f"{', '.join(f'{k} ({v})' for k, v in fails.most_common())} |")
    missed = sum(not r["full"] for r in all_wrong)
    lines.append(f"| **all** | {len(all_wrong)} | {missed} | {100 * missed / max(1, len(all_wrong)):.2f} % | "
                 f"{sum(bool(set(r['diagnoses']) & set(MISTAKES[r['style']][1])) for r in all_wrong)}/{len(all_wrong)}"
                 " | | |")

    main_cpu = [r["cpu_s"].get(workhouse.MAIN_ID, 0.0) for r in all_correct]
    probe_cpu = [r["cpu_s"].get(workhouse.PROBE_ID, 0.0) for r in all_correct]
    judge_cpu = [r["judge_cpu_s"] for r in all_correct]

    def q(values: list[float], p: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")

    lines += ["", "## Time of the check per submission (correct loops, CPU seconds, one thread)", "",
              "| part | median | 95th percentile |", "|---|---|---|",
              f"| training call (`{workhouse.MAIN_ID}`) | {q(main_cpu, .5):.2f} | {q(main_cpu, .95):.2f} |",
              f"| probe call (`{workhouse.PROBE_ID}`) | {q(probe_cpu, .5):.3f} | {q(probe_cpu, .95):.3f} |",
              f"| judging, in the grader (here with the probe's expectations for a new seed each run; "
              f"in a grading they are computed once) | "
              f"{q(judge_cpu, .5):.2f} | {q(judge_cpu, .95):.2f} |", "",
              "In the sandbox the calls run in the submission's own process group; their wall limits are "
              f"{settings.wall_s:g} s (training) and 10 s (probe).", ""]
    stats_rows = [r["stats"] for r in all_correct if r["stats"]]
    if stats_rows:
        lines += ["## Statistics of the correct runs", "", "| statistic | min | 2 % | median | 98 % | max |",
                  "|---|---|---|---|---|---|"]
        for name in ("modes_covered", "high_quality_fraction", "ring_distance"):
            vals = [s[name] for s in stats_rows]
            lines.append(f"| `{name}` | {min(vals):.4g} | {q(vals, .02):.4g} | {statistics.median(vals):.4g} | "
                         f"{q(vals, .98):.4g} | {max(vals):.4g} |")
        lines.append("")
    return "\n".join(lines)


def sandbox_section(out_dir: Path) -> str:
    """Wall times of the two train_gan calls in the sandbox, from a graded class's results."""
    from grader.checks import workhouse

    rows = []
    for path in sorted((Path(out_dir) / "results").glob("*.json")):
        result = json.loads(path.read_text("utf-8"))
        calls = (result.get("durations") or {}).get("calls_s") or {}
        if workhouse.MAIN_ID in calls and calls[workhouse.MAIN_ID] > 0.1:
            rows.append((calls.get(workhouse.PROBE_ID, 0.0), calls[workhouse.MAIN_ID]))
    if not rows:
        return ""
    probe = sorted(r[0] for r in rows)
    ring = sorted(r[1] for r in rows)
    return "\n".join([
        f"## In the sandbox (`{out_dir}`: {len(rows)} submissions that trained)", "",
        "| call | median wall s | max wall s |", "|---|---|---|",
        f"| `{workhouse.PROBE_ID}` (runs first in the submission's call process) | {statistics.median(probe):.2f} | "
        f"{max(probe):.2f} |",
        f"| `{workhouse.MAIN_ID}` | {statistics.median(ring):.2f} | {max(ring):.2f} |", "",
        "The first `torch.optim.Adam(...)` of a process imports `torch._dynamo` (about 0.8 s); the zygotes "
        "import `grader.sandbox.workhouse_calls`, which builds one at import, so no submission pays it.", ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--correct-runs", type=int, default=150, help="runs per correct style")
    p.add_argument("--mistake-runs", type=int, default=40, help="runs per mistake")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "WORKHOUSE.md")
    p.add_argument("--jsonl", type=Path, default=None, help="every run's record (default: /tmp)")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from --jsonl")
    p.add_argument("--resume", action="store_true", help="keep the runs already in --jsonl, do the others")
    p.add_argument("--sandbox-results", type=Path, default=None,
                   help="an output folder of `python -m grader CLASS --out DIR`: adds the sandboxed call times")
    args = p.parse_args(argv)
    from workhouse_loops import CORRECT, MISTAKES

    jsonl = args.jsonl or Path("/tmp") / "workhouse_calibration.jsonl"
    started = time.perf_counter()
    if args.report_only:
        records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        meta = [r for r in records if r.get("kind") == "meta"]
        records = [r for r in records if r.get("kind") != "meta"]
        wall = sum(m["wall_s"] for m in meta) if meta else float("nan")
        args.command = meta[-1].get("command") if meta else None
    else:
        tasks = [("correct", s, i) for s in CORRECT for i in range(args.correct_runs)]
        # mistakes take run indices after the correct ones': every run of the calibration has its own seed
        tasks += [("mistake", s, 100_000 + i) for s in MISTAKES for i in range(args.mistake_runs)]
        # round-robin over the styles: a run cut short (then --resume) has every style's first runs
        tasks.sort(key=lambda t: (t[2] % 100_000, t[0], t[1]))
        records, previous_wall = [], 0.0
        if args.resume and jsonl.exists():   # a run that was killed: keep its records, do the rest
            old = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
            records = [r for r in old if r.get("kind") != "meta"]
            previous_wall = sum(r["wall_s"] for r in old if r.get("kind") == "meta")
            done = {(r["kind"], r["style"], r["run"]) for r in records}
            tasks = [t for t in tasks if t not in done]
        with open(jsonl, "a" if args.resume else "w") as sink, multiprocessing.get_context("fork").Pool(
                args.workers, initializer=_worker_init) as pool:
            for n, record in enumerate(pool.imap_unordered(_task, tasks, chunksize=1), 1):
                records.append(record)
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                if n % 50 == 0:
                    print(f"{n}/{len(tasks)} runs ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
            sink.write(json.dumps({"kind": "meta", "wall_s": time.perf_counter() - started,
                                   "command": " ".join(a for a in sys.argv[1:] if a != "--resume")}) + "\n")
            wall = previous_wall + time.perf_counter() - started
        args.command = " ".join(a for a in sys.argv[1:] if a != "--resume")
    text = report(records, args, wall)
    if args.sandbox_results is not None:
        text += "\n" + sandbox_section(args.sandbox_results)
    args.out.write_text(text + "\n", "utf-8")
    print(text)


if __name__ == "__main__":
    main()
