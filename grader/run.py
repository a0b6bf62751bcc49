"""Grading a class: intake -> sandbox -> checks -> scores -> reports, one submission at a time per worker.

The grader's process holds the reference and computes every expected value; the sandbox pool's
zygotes (fresh interpreters that never import ``reference``) fork one sandbox per submission.
Each finished submission is written at once (atomically): a crash or kill of the grader costs
only the submissions in flight, and a rerun skips every submission already graded with the same
file hash, rubric and grader version.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import grader
from grader import intake, reports
from grader.atomic import write_atomic
from grader.checks import build_suites
from grader.checks.base import Suite
from grader.results import StudentResult
from grader.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.sandbox import Limits, SandboxPool, SandboxResult
from grader.scoring import judge_suite, not_graded, score_suite

WORKHOUSE_PNG = "_workhouse.png"   # feedback/<student>_workhouse.png
LOAD_MESSAGES = {
    "load_error": "Your submission could not be loaded: {message}",
    "timeout": "Your submission's top level did not finish in time: {message}",
    "crashed": "Your submission crashed while loading: {message}",
    "sandbox_error": "The grader could not run your submission (not your fault; it will be retried): {message}",
}


@dataclass
class GradingOptions:
    out_dir: Path
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    isolation: str = "auto"            # "auto" | "namespaces" | "none"
    rubric_path: Path = DEFAULT_RUBRIC
    resume: bool = True
    progress: bool = False
    oracle: object | None = None       # where expected values come from; None: the reference
    questions_path: Path | None = None  # written questions (None: the packaged grader/questions.toml)
    manual_csv: Path | None = None     # the TA's marks (None: OUT/manual.csv when it exists)
    anonymous: bool = False            # written pages show stable codes instead of student ids


@dataclass
class RunReport:
    graded: list[str]
    skipped: list[str]
    results: list[StudentResult]
    notes: list[str]
    duration_s: float
    written: str = ""                  # one line about the written answers' pages and flags
    manual_problems: list[str] = field(default_factory=list)


def versions() -> dict[str, str]:
    return {"grader": grader.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def rubric_info(rubric: Rubric) -> dict:
    return {"version": rubric.version, "sha256": rubric.sha256, "seed": rubric.seed}


def _raised_not_implemented(value: dict | None) -> bool:
    if not value:
        return False
    if value.get("raised") == "NotImplementedError":
        return True
    return (value.get("construct") or {}).get("raised") == "NotImplementedError"


def not_implemented(result: SandboxResult) -> list[str]:
    """Functions every call of which raised NotImplementedError (still the template's body)."""
    by_function: dict[str, list[bool]] = {}
    for call in result.calls.values():
        by_function.setdefault(call.id.split("/")[0], []).append(
            call.status == "ok" and _raised_not_implemented(call.value))
    return sorted(fn for fn, flags in by_function.items() if flags and all(flags))


def _status_from(result: SandboxResult, n_functions: int) -> tuple[str, str]:
    """Named status of a submission and a one-line message: ok only when every call ran."""
    if result.status != "ok":
        return result.status, LOAD_MESSAGES.get(result.status, "{message}").format(message=result.message)
    todo = not_implemented(result)
    if len(todo) == n_functions:
        return "load_error", ("This is the untouched template: every function raises NotImplementedError. "
                              "Nothing to grade.")
    bad = [c for c in result.calls.values() if c.status in ("timeout", "crashed")]
    message = f"Not implemented (raise NotImplementedError): {', '.join(todo)}." if todo else ""
    if not bad:
        return "ok", message
    timeouts = sorted({c.id.split("/")[0] for c in bad if c.status == "timeout"})
    crashes = sorted({c.id.split("/")[0] for c in bad if c.status == "crashed"})
    if timeouts:
        return "timeout", f"Ran out of time in: {', '.join(timeouts)} (other functions were graded). {message}".strip()
    return "crashed", f"The process died in: {', '.join(crashes)} (other functions were graded). {message}".strip()


def grade_submission(sub: intake.Submission, suites: list[Suite], pool: SandboxPool, rubric: Rubric,
                     groups: list[list[dict]]) -> tuple[StudentResult, SandboxResult | None]:
    """One student's result; never raises for anything the submission does."""
    started = time.perf_counter()
    submission = {"source": sub.source.name, "kind": sub.kind, "sha256": sub.sha256, "entry": sub.entry,
                  "mode": sub.mode, "notes": list(sub.notes)}
    common = dict(student=sub.student, submission=submission, rubric=rubric_info(rubric), versions=versions())
    if sub.error:
        status = "conflict" if sub.conflict else "load_error"
        checks = [c for s in suites for c in not_graded(s, rubric, f"not graded: {sub.error}")]
        return StudentResult(status=status, message=sub.error, checks=checks,
                             durations={"total_s": round(time.perf_counter() - started, 3)}, **common), None
    result = pool.run(sub.workdir, sub.entry, sub.mode, groups)
    submission["notes"] += list(result.notes)
    status, message = _status_from(result, len(suites))
    if result.status != "ok":
        checks = [c for s in suites for c in not_graded(s, rubric, f"not graded: {message}")]
    else:
        checks = [c for s in suites for c in score_suite(s, judge_suite(s, result.calls), rubric)]
    sandbox = {"isolation": result.isolation, "limits": pool.limits.to_dict(),
               "output_dropped_bytes": result.output_dropped_bytes}
    durations = {"total_s": round(time.perf_counter() - started, 3), "sandbox_s": round(result.duration_s, 3),
                 "calls_s": {cid: round(c.duration_s, 4) for cid, c in sorted(result.calls.items())}}
    return StudentResult(status=status, message=message, checks=checks, sandbox=sandbox, durations=durations,
                         **common), result


def _previous(out_dir: Path, sub: intake.Submission, rubric: Rubric) -> StudentResult | None:
    """The stored result when it was graded from the same file, rubric and grader version."""
    path = reports.result_path(out_dir, sub.student, "results", ".json")
    try:
        old = StudentResult.from_dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = (old.submission.get("sha256") == sub.sha256 and old.rubric.get("sha256") == rubric.sha256
            and old.versions.get("grader") == grader.__version__ and old.status != "sandbox_error")
    return old if same else None


class _Writer:
    """Writes each result as soon as it is known, and keeps scores.csv current (thread-safe)."""

    def __init__(self, out_dir: Path, functions: list[str]):
        self.out_dir, self.functions = Path(out_dir), functions
        self.results: dict[str, StudentResult] = {}
        self.lock = threading.Lock()

    def _write_record(self, r: StudentResult) -> None:
        write_atomic(reports.result_path(self.out_dir, r.student, "results", ".json"), r.to_json())
        picture = reports.result_path(self.out_dir, r.student, "feedback", WORKHOUSE_PNG)
        pictures = [picture.name] if picture.exists() else []
        write_atomic(reports.result_path(self.out_dir, r.student, "feedback", ".md"),
                     reports.feedback_markdown(r, pictures))

    def picture(self, r: StudentResult, sandbox: SandboxResult, rubric: Rubric) -> None:
        """The workhouse's picture (the student's samples over the ring, loss curves), when it ran."""
        if "train_gan" not in rubric.points:
            return
        from grader.checks import workhouse
        from grader.workhouse_plots import write_workhouse_png

        path = reports.result_path(self.out_dir, r.student, "feedback", WORKHOUSE_PNG)
        data = workhouse.plot_data(sandbox.calls.get(workhouse.MAIN_ID), rubric)
        if data is not None:
            write_workhouse_png(path, **data)
        else:  # never show the picture of an earlier submission
            path.unlink(missing_ok=True)

    def add(self, r: StudentResult, sandbox: SandboxResult | None, fresh: bool, rubric: Rubric | None = None) -> None:
        with self.lock:
            self.results[r.student] = r
            if fresh:
                if sandbox is not None and rubric is not None:
                    try:
                        self.picture(r, sandbox, rubric)
                    except Exception as exc:  # a picture must never cost a result
                        r.submission.setdefault("notes", []).append(f"no workhouse picture: {type(exc).__name__}")
                self._write_record(r)
                if sandbox is not None:
                    log = (f"--- stdout ---\n{sandbox.stdout}\n--- stderr ---\n{sandbox.stderr}\n"
                           f"--- dropped bytes: {sandbox.output_dropped_bytes}\n")
                    write_atomic(reports.result_path(self.out_dir, r.student, "logs", ".txt"), log)
            write_atomic(self.out_dir / "scores.csv", reports.scores_csv(list(self.results.values()), self.functions))

    def rewrite(self, results: list[StudentResult], functions: list[str]) -> None:
        """Write every record again (after the TA's marks were merged): unchanged bytes stay unchanged."""
        with self.lock:
            for r in results:
                self.results[r.student] = r
                self._write_record(r)
            self.functions = functions
            write_atomic(self.out_dir / "scores.csv", reports.scores_csv(results, functions))


def grade_class(class_dir: Path, options: GradingOptions) -> RunReport:
    """Grade every submission in ``class_dir``; write results, feedback, scores.csv and a summary."""
    started = time.perf_counter()
    rubric = load_rubric(options.rubric_path)
    oracle = options.oracle
    if oracle is None:
        from grader.reference_oracle import ReferenceOracle  # the reference enters only the grader's process

        oracle = ReferenceOracle()
    suites = build_suites(rubric, oracle)
    groups = [suite.calls() for suite in suites]
    out_dir = Path(options.out_dir)
    from grader.outlock import output_lock  # TA side only (the kit's self-check never writes a class folder)

    with output_lock(out_dir):
        return _grade_class_locked(Path(class_dir), options, out_dir, rubric, suites, groups, started)


def _grade_class_locked(class_dir: Path, options: GradingOptions, out_dir: Path, rubric: Rubric,
                        suites: list[Suite], groups: list, started: float) -> RunReport:
    from grader import written  # TA tooling: not part of the student kit, which shares this module
    from grader.outlock import work_folder

    work_root = work_folder(out_dir, "intake-")  # OUT/.work/: under the lock; a killed run's is removed next time
    writer = _Writer(out_dir, [s.function for s in suites])
    graded, skipped = [], []
    try:
        submissions, notes = intake.prepare(Path(class_dir), work_root)
        questions = written.load_questions(options.questions_path or written.DEFAULT_QUESTIONS)
        secret = written.anonymity_secret(rubric.seed)
        # before the grading loop, which deletes each prepared copy once graded
        pages = written.write_written_pages(submissions, out_dir, questions, options.anonymous, secret=secret)
        todo = []
        for sub in submissions:
            old = _previous(out_dir, sub, rubric) if options.resume else None
            if old is not None:
                writer.add(old, None, fresh=False)
                skipped.append(sub.student)
            else:
                todo.append(sub)
        with SandboxPool(options.limits, workers=max(1, options.workers), isolation=options.isolation) as pool, \
                ThreadPoolExecutor(max_workers=max(1, options.workers)) as executor:
            futures = {executor.submit(grade_submission, sub, suites, pool, rubric, groups): sub for sub in todo}
            bar = _progress(len(todo), options.progress)
            for future in as_completed(futures):
                sub = futures[future]
                try:
                    result, sandbox = future.result()
                except Exception as exc:  # a grader bug costs this submission, never the class
                    result, sandbox = _grader_failure(sub, suites, rubric, exc), None
                writer.add(result, sandbox, fresh=True, rubric=rubric)
                graded.append(sub.student)
                if sub.workdir:
                    shutil.rmtree(sub.workdir, ignore_errors=True)
                bar.update(1)
            bar.close()
        automatic = sorted(writer.results.values(), key=lambda r: r.student)
        results, problems = written.apply_manual_marks(
            automatic, options.manual_csv or out_dir / "manual.csv", questions, secret=secret,
            anonymous=options.anonymous)
        writer.rewrite(results, [s.function for s in suites] + ["written"])
        write_atomic(out_dir / "written" / "problems.txt", "".join(f"{p}\n" for p in problems))
        meta = {"rubric": rubric_info(rubric), "versions": versions(), "intake_notes": notes,
                "isolation": options.isolation, "limits": options.limits.to_dict(), "anonymous": options.anonymous}
        summary = reports.class_summary(results, meta)
        write_atomic(out_dir / "summary.json", reports.summary_json(summary))
        write_atomic(out_dir / "summary.md", reports.summary_markdown(summary))
        duration = time.perf_counter() - started
        write_atomic(out_dir / "run.json", run_record(duration, options, graded, skipped))
        return RunReport(sorted(graded), sorted(skipped), results, notes, duration,
                         written=pages.summary_line(), manual_problems=[str(p) for p in problems])
    finally:
        shutil.rmtree(work_root, ignore_errors=True)


def run_record(duration_s: float, options: GradingOptions, graded: list[str], skipped: list[str]) -> str:
    """``run.json``: the last run's wall time and what it did. The only output file with timings
    besides each result's ``durations``: everything else is byte-reproducible."""
    return json.dumps({"wall_s": round(duration_s, 3), "workers": options.workers, "graded": len(graded),
                       "resumed": len(skipped), "isolation": options.isolation}, indent=2) + "\n"


def _grader_failure(sub: intake.Submission, suites: list[Suite], rubric: Rubric, exc: Exception) -> StudentResult:
    message = f"internal grader error: {type(exc).__name__}: {exc}"
    checks = [c for s in suites for c in not_graded(s, rubric, message)]
    return StudentResult(student=sub.student, status="sandbox_error", message=message, checks=checks,
                         submission={"source": sub.source.name, "kind": sub.kind, "sha256": sub.sha256,
                                     "entry": sub.entry, "mode": sub.mode, "notes": list(sub.notes)},
                         rubric=rubric_info(rubric), versions=versions())


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", file=sys.stderr)
