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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

import grader
from grader import intake, reports
from grader.atomic import write_atomic
from grader.escape import clean_text
from grader.checks import SuiteBuilder
from grader.checks.base import Suite
from grader.results import StudentResult
from grader.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.sandbox import Limits, SandboxPool, SandboxResult
from grader.scoring import judge_suite, not_graded, score_suite
from grader.seeds import input_secret, submission_seed
from grader.tally import ResultRow

WORKHOUSE_PNG = "_workhouse.png"   # feedback/<student>_workhouse.png
AGGREGATE_EVERY_S = 3.0            # scores.csv is rewritten at most this often while grading (and at the end)
PROGRESS_EVERY = 100               # without a terminal: one progress line per this many submissions
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
    late_policy: Path | None = None    # the late policy (None: OUT/late_policy.toml when it exists)
    submitted_at: Path | None = None   # CSV student,submitted_at (None: OUT/late_submitted_at.csv when it exists)
    extensions: Path | None = None     # CSV student,extra_days|deadline (None: OUT/late_extensions.csv ...)
    submission_times: dict[str, str] = field(default_factory=dict)  # id -> ISO time (Gradescope's metadata)
    dask: "DaskSettings | None" = None  # grade on a Dask cluster (grader.engines); None: in this process


@dataclass
class RunReport:
    graded: list[str]
    skipped: list[str]
    rows: list[ResultRow]              # every student's compact row (grader.tally), sorted by id
    notes: list[str]
    duration_s: float
    out_dir: Path | None = None
    written: str = ""                  # one line about the written answers' pages and flags
    manual_problems: list[str] = field(default_factory=list)

    def result(self, student: str) -> StudentResult | None:
        """One student's full result, read back from ``results/`` (None when there is none)."""
        path = reports.result_path(self.out_dir, student, "results", ".json")
        try:
            return StudentResult.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None


def versions() -> dict[str, str]:
    return {"grader": grader.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def rubric_info(rubric: Rubric, input_seed: int | None = None) -> dict:
    """The rubric a result was graded under; ``input_seed``: its hidden inputs' seed (``grader.seeds``)."""
    info = {"version": rubric.version, "sha256": rubric.sha256, "seed": rubric.seed}
    if input_seed is not None:
        info["input_seed"] = str(input_seed)  # a string: 63 bits survive every JSON reader
    return info


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
    if result.load_fallback is not None:  # graded, but the top level did not finish: not "ok"
        status, why = result.load_fallback
        return status, (f"Your submission's top level did not finish ({why}); it was graded on its "
                        f"definitions alone, and its functions keep the points they earned. {message}").strip()
    if not bad:
        return "ok", message
    timeouts = sorted({c.id.split("/")[0] for c in bad if c.status == "timeout"})
    crashes = sorted({c.id.split("/")[0] for c in bad if c.status == "crashed"})
    if timeouts:
        return "timeout", f"Ran out of time in: {', '.join(timeouts)} (other functions were graded). {message}".strip()
    return "crashed", f"The process died in: {', '.join(crashes)} (other functions were graded). {message}".strip()


def grade_submission(sub: intake.Submission, suites: list[Suite], pool: SandboxPool, rubric: Rubric,
                     groups: list[list[dict]], input_seed: int | None = None) -> tuple[StudentResult, SandboxResult | None]:
    """One student's result; never raises for anything the submission does. ``input_seed``: the
    seed the formula suites' hidden inputs were drawn from, recorded in the result."""
    started = time.perf_counter()
    submission = {"source": sub.source.name, "kind": sub.kind, "sha256": sub.sha256, "entry": sub.entry,
                  "mode": sub.mode, "notes": list(sub.notes)}
    common = dict(student=sub.student, submission=submission, rubric=rubric_info(rubric, input_seed),
                  versions=versions())
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
    if result.suspected_tampering:  # for the TA only: the student's process can forge it
        sandbox["suspected_tampering"] = list(result.suspected_tampering)
    if "train_gan" in rubric.points:
        sandbox["workhouse"] = workhouse_device(rubric)
    durations = {"total_s": round(time.perf_counter() - started, 3), "sandbox_s": round(result.duration_s, 3),
                 "calls_s": {cid: round(c.duration_s, 4) for cid, c in sorted(result.calls.items())}}
    return StudentResult(status=status, message=message, checks=checks, sandbox=sandbox, durations=durations,
                         **common), result


def workhouse_device(rubric: Rubric) -> dict[str, str]:
    """Where ``train_gan`` trained and what it was judged against: the sandbox has no GPU device
    (nor has it on a Dask worker with a ``GPU`` resource), so the student's loop trains on the
    grading machine's CPU and is compared with the CPU statistics ``[workhouse] stats`` names."""
    return {"device": "cpu", "statistics": str((rubric.workhouse or {}).get("stats", ""))}


def _previous(out_dir: Path, sub: intake.Submission, rubric: Rubric,
              input_seed: int | None = None) -> tuple[StudentResult, str] | None:
    """The stored result and its record's text, when it was graded from the same file, rubric,
    grader version and inputs."""
    path = reports.result_path(out_dir, sub.student, "results", ".json")
    try:
        text = path.read_text("utf-8")
        old = StudentResult.from_dict(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = (old.submission.get("sha256") == sub.sha256 and old.rubric.get("sha256") == rubric.sha256
            and old.versions.get("grader") == grader.__version__ and old.status != "sandbox_error"
            and old.rubric.get("input_seed") == (str(input_seed) if input_seed is not None else None))
    return (old, text) if same else None


def _recordless_first(out_dir: Path, submissions: list[intake.Submission], resume: bool) -> list[intake.Submission]:
    """A resume's order: the submissions without a stored record first (they are graded now
    whatever the records say: dispatched before a single record is read, one ``stat`` each), then
    the others, whose records are read as the loop reaches them. Results do not depend on the
    order; without resume, the order of intake."""
    if not resume:
        return submissions
    stored = [reports.result_path(out_dir, sub.student, "results", ".json").exists() for sub in submissions]
    return [sub for sub, has in zip(submissions, stored) if not has] + [sub for sub, has in zip(submissions, stored) if has]


class _Writer:
    """Writes each result as soon as it is known (its record, feedback and log, after merging the
    TA's marks), and keeps of it only the compact row (``grader.tally``) that the class-wide files
    need. ``scores.csv`` is rewritten at most every ``AGGREGATE_EVERY_S`` seconds while grading and
    once at the end (``flush``); a rerun rebuilds it from ``results/``. Thread-safe."""

    def __init__(self, out_dir: Path, functions: list[str], book: "MarkBook | None" = None,
                 late: "LateBook | None" = None):
        self.out_dir, self.functions, self.book, self.late = Path(out_dir), functions, book, late
        self.rows: dict[str, ResultRow] = {}
        self.lock = threading.Lock()
        self._aggregated_at = time.monotonic()

    def _write_record(self, r: StudentResult, text: str) -> None:
        write_atomic(reports.result_path(self.out_dir, r.student, "results", ".json"), text)
        picture = reports.result_path(self.out_dir, r.student, "feedback", WORKHOUSE_PNG)
        pictures = [picture.name] if picture.exists() else []
        write_atomic(reports.result_path(self.out_dir, r.student, "feedback", ".md"),
                     reports.feedback_markdown(r, pictures))

    def add(self, r: StudentResult, sandbox: "SandboxResult | Outputs | None", fresh: bool,
            rubric: Rubric | None = None, stored: str | None = None) -> None:
        """Merge the marks into ``r`` and write it: a fresh result always, a resumed one
        (``stored``: its record's text as found) only when the merge changed it. ``sandbox``: the
        run's ``SandboxResult``, or the ``Outputs`` rendered from it where it was graded (a Dask
        worker); beside the record go its log and the workhouse's picture."""
        from grader.engines.outputs import Outputs, picture_note, put_picture, sandbox_log, workhouse_picture
        if self.book is not None:
            r = self.book.merge(r)
        if self.late is not None:  # after the marks: the penalty applies to the whole earned score
            r = self.late.apply(r)
        elif r.late:  # graded earlier under a policy that is gone now
            r = replace(r, late={})
        text = r.to_json()
        with self.lock:
            if fresh:
                remote = isinstance(sandbox, Outputs)
                if sandbox is not None:
                    try:
                        picture = sandbox.picture if remote else workhouse_picture(sandbox, rubric)
                        put_picture(self.out_dir, r.student, picture)
                    except Exception as exc:  # a picture must never cost a result
                        r.submission.setdefault("notes", []).append(picture_note(exc))
                        text = r.to_json()
                self._write_record(r, text)
                if sandbox is not None:
                    log = sandbox.log if remote else sandbox_log(sandbox)
                    write_atomic(reports.result_path(self.out_dir, r.student, "logs", ".txt"), log)
            elif text != stored:
                self._write_record(r, text)
            self.rows[r.student] = ResultRow.of(r)
            if time.monotonic() - self._aggregated_at >= AGGREGATE_EVERY_S:
                self._write_scores()

    def forget(self, student: str) -> None:
        with self.lock:
            self.rows.pop(student, None)

    def _write_scores(self) -> None:
        write_atomic(self.out_dir / "scores.csv", reports.scores_csv(list(self.rows.values()), self.functions))
        self._aggregated_at = time.monotonic()

    def flush(self) -> list[ResultRow]:
        """Write scores.csv now; every row, sorted by student."""
        with self.lock:
            self._write_scores()
            return sorted(self.rows.values(), key=lambda row: row.student)


def grade_class(class_dir: Path, options: GradingOptions) -> RunReport:
    """Grade every submission in ``class_dir``; write results, feedback, scores.csv and a summary."""
    started = time.perf_counter()
    rubric = load_rubric(options.rubric_path)
    oracle = options.oracle
    if oracle is None:
        from grader.reference_oracle import ReferenceOracle  # the reference enters only the grader's process

        oracle = ReferenceOracle()
    builder = SuiteBuilder(rubric, oracle)
    out_dir = Path(options.out_dir)
    from grader.outlock import output_lock  # TA side only (the kit's self-check never writes a class folder)

    with output_lock(out_dir):
        return _grade_class_locked(Path(class_dir), options, out_dir, rubric, builder, started)


def _grade_class_locked(class_dir: Path, options: GradingOptions, out_dir: Path, rubric: Rubric,
                        builder: SuiteBuilder, started: float) -> RunReport:
    from grader import written  # TA tooling: not part of the student kit, which shares this module
    from grader.engines import open_engine
    from grader.outlock import work_folder
    from grader.written.markbook import MarkBook, check_template

    work_root = work_folder(out_dir, "intake-")  # OUT/.work/: under the lock; a killed run's is removed next time
    suites = builder.for_seed(rubric.seed)  # the structure (functions, checks) every submission shares
    inputs_key = input_secret(rubric.seed)[0]          # the hidden inputs' seeds (grader.seeds)
    codes_key = written.anonymity_secret(rubric.seed)  # the anonymous codes (grader.written.anonymity)
    graded, skipped = [], []
    dispatch = _FirstDispatch(started)
    try:
        submissions, notes = intake.prepare(Path(class_dir), work_root)
        questions = written.load_questions(options.questions_path or written.DEFAULT_QUESTIONS)
        template = check_template([c for s in suites for c in not_graded(s, rubric, "")])
        book = MarkBook.load(options.manual_csv or out_dir / "manual.csv", [sub.student for sub in submissions],
                             template, questions, secret=codes_key, anonymous=options.anonymous)
        late = _late_book(options, out_dir, [sub.student for sub in submissions])
        writer = _Writer(out_dir, [s.function for s in suites] + ["written"], book, late)
        with open_engine(options, rubric=rubric, dispatch=dispatch, seed=lambda sub: _seed_of(sub, inputs_key),
                         grade=lambda sub, pool: _grade_drawn(sub, builder, pool, rubric, inputs_key, dispatch),
                         pool=lambda: SandboxPool(options.limits, workers=max(1, options.workers),
                                                  isolation=options.isolation, workhouse="train_gan" in rubric.points,
                                                  lazy=True)) as engine:
            for sub in _recordless_first(out_dir, submissions, options.resume):  # dispatched as found
                found = _previous(out_dir, sub, rubric, _seed_of(sub, inputs_key)) if options.resume else None
                if found is not None:
                    writer.add(found[0], None, fresh=False, stored=found[1])
                    skipped.append(sub.student)
                else:
                    engine.submit(sub)
            bar = _progress(engine.pending, options.progress)
            for sub, future in engine.completed():  # a finished future is dropped at once: it holds its results
                try:
                    result, sandbox = future.result()
                except Exception as exc:  # a grader bug costs this submission, never the class
                    result, sandbox = _grader_failure(sub, suites, rubric, exc), None
                _write_result(writer, sub, suites, rubric, result, sandbox)
                graded.append(sub.student)
                bar.update(1)
            bar.close()
            engine_record = engine.describe()
        rows = writer.flush()
        # after the grading loop (never delaying its first dispatch): code similarity and the
        # written pages read every prepared copy, which stays until the end
        from grader.similarity import write_for_run  # TA tooling: the code is parsed, never run

        write_for_run(submissions, out_dir, options.anonymous, codes_key)
        pages = written.write_written_pages(submissions, out_dir, questions, options.anonymous, secret=codes_key)
        write_atomic(out_dir / "written" / "problems.txt", "".join(f"{p}\n" for p in book.problems))
        if late is not None:
            write_atomic(out_dir / LATE_PROBLEMS, "".join(f"{p}\n" for p in late.problems))
        meta = {"rubric": rubric_info(rubric), "versions": versions(), "intake_notes": notes,
                "isolation": options.isolation, "limits": options.limits.to_dict(), "anonymous": options.anonymous,
                "late_policy": ({**late.policy.to_dict(), "sha256": late.policy_sha256} if late is not None else None)}
        summary = reports.class_summary(rows, meta)
        write_atomic(out_dir / "summary.json", reports.summary_json(summary))
        write_atomic(out_dir / "summary.md", reports.summary_markdown(summary))
        duration = time.perf_counter() - started
        write_atomic(out_dir / "run.json", run_record(duration, options, graded, skipped, dispatch.seconds,
                                                        engine_record))
        return RunReport(sorted(graded), sorted(skipped), rows, notes, duration, out_dir=out_dir,
                         written=pages.summary_line(), manual_problems=[str(p) for p in book.problems])
    finally:
        shutil.rmtree(work_root, ignore_errors=True)


LATE_COPIES = {"late_policy": "late_policy.toml", "submitted_at": "late_submitted_at.csv",
               "extensions": "late_extensions.csv"}   # OUT's copies (grader.policy.POLICY_NAME is the first)
LATE_PROBLEMS = "late.txt"


def _late_book(options: GradingOptions, out_dir: Path, students: list[str]) -> "LateBook | None":
    """The run's late policy: the files given, copied into OUT (so that regrade, report and
    export-lms apply the same ones), else the copies an earlier run left there; None without a
    policy. A bad policy is an error before anything is graded (``PolicyError``)."""
    from grader.policy import LateBook, PolicyError  # TA side only: the student kit has no late policy

    data: dict[str, bytes | None] = {}
    for option, name in LATE_COPIES.items():
        given = getattr(options, option)
        source = Path(given) if given is not None else out_dir / name
        data[option] = source.read_bytes() if given is not None or source.is_file() else None
    if data["late_policy"] is None:
        return None
    try:
        text = data["late_policy"].decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("the late policy is not UTF-8 text") from None
    book = LateBook.load(text, students, submitted_at=data["submitted_at"], extensions=data["extensions"],
                         times=options.submission_times)
    for option, name in LATE_COPIES.items():  # only once the policy was read without error
        if getattr(options, option) is not None and data[option] is not None:
            write_atomic(out_dir / name, data[option])
    return book


class _FirstDispatch:
    """When the first submission of a run was handed to the sandbox (seconds after ``started``)."""

    def __init__(self, started: float):
        self.started, self.seconds = started, None
        self._lock = threading.Lock()

    def mark(self) -> None:
        with self._lock:
            if self.seconds is None:
                self.seconds = round(time.perf_counter() - self.started, 3)


def _write_result(writer: _Writer, sub: intake.Submission, suites: list[Suite], rubric: Rubric,
                  result: StudentResult, sandbox: SandboxResult | None) -> None:
    """Write one result; a failure to render or write it (a grader bug) costs that result only:
    it becomes the submission's ``sandbox_error`` (retried on rerun), and the run goes on."""
    try:
        writer.add(result, sandbox, fresh=True, rubric=rubric)
    except Exception as exc:  # noqa: BLE001
        try:
            writer.add(_grader_failure(sub, suites, rubric, exc), None, fresh=True, rubric=rubric)
        except Exception as again:  # noqa: BLE001 - not even that: say so, keep grading the class
            writer.forget(sub.student)
            print(f"error: could not write the result of {sub.student!r}: {type(again).__name__}: "
                  f"{clean_text(again, 300)}", file=sys.stderr)


def _seed_of(sub: intake.Submission, secret: bytes) -> int | None:
    """The hidden inputs' seed of a submission that can be run (None for one that cannot)."""
    return submission_seed(secret, sub.sha256) if not sub.error and sub.sha256 else None


def _grade_drawn(sub: intake.Submission, builder: SuiteBuilder, pool: SandboxPool, rubric: Rubric,
                 secret: bytes, dispatch: "_FirstDispatch | None" = None) -> tuple[StudentResult, SandboxResult | None]:
    """``grade_submission`` on inputs drawn for this submission's bytes (``grader.seeds``)."""
    if dispatch is not None:
        dispatch.mark()
    seed = _seed_of(sub, secret)
    suites = builder.for_seed(seed if seed is not None else rubric.seed)
    return grade_submission(sub, suites, pool, rubric, [suite.calls() for suite in suites], input_seed=seed)


def run_record(duration_s: float, options: GradingOptions, graded: list[str], skipped: list[str],
               first_dispatch_s: float | None = None, engine: dict | None = None) -> str:
    """``run.json``: the last run's wall time and what it did (``first_dispatch_s``: when its first
    submission went to the sandbox, null when none did; ``grader_cpu_s`` and ``grader_peak_rss_mib``:
    the CPU time and peak memory of the grader's own process, every thread, no sandbox; ``engine``:
    where it graded, ``grader.engines``' ``describe()``). The only output file with timings
    besides each result's ``durations``: everything else is byte-reproducible."""
    return json.dumps({"wall_s": round(duration_s, 3), "first_dispatch_s": first_dispatch_s,
                       "grader_cpu_s": round(time.process_time(), 3), "grader_peak_rss_mib": _peak_rss_mib(),
                       "workers": options.workers, "graded": len(graded), "resumed": len(skipped),
                       "isolation": options.isolation, **(engine or {})}, indent=2) + "\n"


def _peak_rss_mib() -> float | None:
    """The grader process's own peak resident memory (sandboxes excluded), where it can be read."""
    try:
        import resource
    except ImportError:  # Windows (the portable backend)
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _grader_failure(sub: intake.Submission, suites: list[Suite], rubric: Rubric, exc: Exception) -> StudentResult:
    message = clean_text(f"internal grader error (not your fault; it will be retried): {type(exc).__name__}: {exc}", 2000)
    checks = [c for s in suites for c in not_graded(s, rubric, message)]
    return StudentResult(student=sub.student, status="sandbox_error", message=message, checks=checks,
                         submission={"source": sub.source.name, "kind": sub.kind, "sha256": sub.sha256,
                                     "entry": sub.entry, "mode": sub.mode, "notes": list(sub.notes)},
                         rubric=rubric_info(rubric), versions=versions())


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


class _LogLines:
    """Progress without a terminal (CI, a log file): one line per ``PROGRESS_EVERY`` submissions
    with the rate and the estimated time left, on stderr."""

    def __init__(self, total: int):
        self.total, self.done, self.started = total, 0, time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if self.done % PROGRESS_EVERY == 0 or self.done == self.total:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            rate = self.done / elapsed
            left = (self.total - self.done) / rate if rate else 0.0
            print(f"graded {self.done}/{self.total}: {rate:.2f} submissions/s, about {left:.0f} s left",
                  file=sys.stderr, flush=True)

    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    if not sys.stderr.isatty():
        return _LogLines(total)
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", file=sys.stderr)
