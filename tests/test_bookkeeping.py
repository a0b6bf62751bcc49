"""The grader's own bookkeeping around a class: which secret seeds the hidden inputs, what a
resume rewrites, the class-wide files streamed from compact rows, progress without a terminal.

Classes here are submissions that fail to compile (no student code runs), so each test takes
seconds; the costs themselves are measured in benchmarks/bench_bookkeeping.py, never here."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from grader import reports
from grader.results import StudentResult
from grader.run import GradingOptions, grade_class
from grader.seeds import ENV_SECRET as INPUT_SECRET
from grader.seeds import submission_seed
from grader.tally import ResultRow
from grader.written.anonymity import ENV_SECRET as CODES_SECRET

BROKEN = "def discriminator_loss(real, fake:\n    return 0\n"


def _class(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"s{i:02d}.py").write_text(f"# {i}\n{BROKEN}")
    return folder


def _grade(class_dir: Path, out: Path, **kw):
    return grade_class(class_dir, GradingOptions(out_dir=out, workers=2, isolation="namespaces", **kw))


def _record(out: Path, student: str) -> dict:
    return json.loads(reports.result_path(out, student, "results", ".json").read_text("utf-8"))


def test_the_course_secret_seeds_the_hidden_inputs_and_the_codes_secret_does_not(tmp_path, monkeypatch,
                                                                                 isolation_required):
    klass = _class(tmp_path / "class", 1)
    sha = hashlib.sha256((klass / "s00.py").read_bytes()).hexdigest()
    seeds = {}
    for run, (inputs, codes) in enumerate([("course-a", "x"), ("course-a", "y"), ("course-b", "x")]):
        monkeypatch.setenv(INPUT_SECRET, inputs)
        monkeypatch.setenv(CODES_SECRET, codes)
        _grade(klass, tmp_path / f"out{run}", resume=False)
        record = _record(tmp_path / f"out{run}", "s00")
        assert record["submission"]["sha256"] == sha
        seeds[run] = record["rubric"]["input_seed"]
    assert seeds[0] == str(submission_seed(b"course-a", sha)) == seeds[1]   # GRADER_ANON_SECRET: no effect
    assert seeds[2] == str(submission_seed(b"course-b", sha)) != seeds[0]


def test_a_resume_rewrites_nothing_unchanged_and_rebuilds_the_class_files(tmp_path, isolation_required):
    klass = _class(tmp_path / "class", 6)
    out = tmp_path / "out"
    first = _grade(klass, out)
    assert sorted(first.graded) == [f"s{i:02d}" for i in range(6)] and first.skipped == []
    # the class-wide files from compact rows are those from the full records
    results = [first.result(row.student) for row in first.rows]
    functions = [*results[0].functions()]
    assert reports.scores_csv(first.rows, functions) == reports.scores_csv(results, functions)
    assert reports.class_summary(first.rows, {}) == reports.class_summary(results, {})
    assert [ResultRow.of(r) for r in results] == first.rows
    assert first.rows[0].keys is first.rows[1].keys                      # the check names: one tuple
    records = sorted((out / "results").glob("*.json")) + sorted((out / "feedback").glob("*.md"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    scores = (out / "scores.csv").read_bytes()
    (out / "scores.csv").unlink()
    (out / "summary.json").unlink()
    (klass / "s99.py").write_text(f"# new\n{BROKEN}")
    again = _grade(klass, out)
    assert again.graded == ["s99"] and len(again.skipped) == 6
    assert {p: p.stat().st_mtime_ns for p in records} == stamps          # not one record rewritten
    lines = (out / "scores.csv").read_text("utf-8").splitlines()
    assert scores.decode("utf-8").splitlines() == [line for line in lines if not line.startswith("s99,")]
    assert json.loads((out / "summary.json").read_text("utf-8"))["students"] == 7
    run = json.loads((out / "run.json").read_text("utf-8"))
    assert run["graded"] == 1 and run["resumed"] == 6 and run["first_dispatch_s"] > 0
    assert [r.student for r in again.rows] == sorted(r.student for r in again.rows)
    assert again.result("s99").status == "load_error" and again.result("nobody") is None


def test_marks_added_between_runs_rewrite_only_the_students_they_concern(tmp_path, isolation_required):
    klass = _class(tmp_path / "class", 3)
    out = tmp_path / "out"
    _grade(klass, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    (out / "manual.csv").write_text("student,question,points,comment\ns01,Q1,4,clear\n", "utf-8")
    report = _grade(klass, out)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    assert [name for name in sorted(before) if before[name] != after[name]] == ["s01.json"]
    q1 = next(c for c in _record(out, "s01")["checks"] if (c["function"], c["name"]) == ("written", "Q1"))
    assert (q1["score"], q1["message"]) == ("4", "clear")
    assert any("s00: no mark yet" in p for p in report.manual_problems)
    assert "s01,4," in (out / "scores.csv").read_text("utf-8")


def test_without_a_terminal_progress_is_one_line_per_hundred(capsys):
    from grader.run import PROGRESS_EVERY, _progress

    bar = _progress(250, enabled=True)            # pytest's stderr is not a terminal
    for _ in range(250):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"graded {n}/250" for n in (PROGRESS_EVERY, 200, 250)]
    assert all("submissions/s" in line and "s left" in line for line in lines)
    assert isinstance(_progress(0, enabled=True), type(_progress(5, enabled=False)))


@pytest.mark.parametrize("field", ["score", "status"])
def test_a_row_is_what_its_result_says(field):
    from decimal import Decimal

    from grader.scoring import CheckResult

    checks = [CheckResult("f", "value", Decimal(0), Decimal(2), False, "1", "2", "sign_flip", "m", "d"),
              CheckResult("f", "shape", Decimal(1), Decimal(1), True, "", "", None, "", "d")]
    result = StudentResult("alice", "ok", "", checks, {}, {}, {})
    row = ResultRow.of(result)
    assert getattr(row, field) == getattr(result, field)
    assert [(c.function, c.name, c.passed, c.diagnosis) for c in row.checks] == \
        [("f", "value", False, "sign_flip"), ("f", "shape", True, None)]
    assert row.functions() == result.functions()


def _comparable(record: dict) -> dict:
    """A record without what differs between two copies of the same broken file graded alike."""
    record = json.loads(json.dumps(record))
    record.pop("durations", None)
    record.pop("student")
    record["submission"].pop("source")
    record["submission"].pop("sha256")
    record["rubric"].pop("input_seed", None)
    return record


def test_a_grader_failure_on_one_submission_is_its_sandbox_error_only(tmp_path, monkeypatch, isolation_required):
    """A grader bug while turning one submission into a result (s01: its feedback cannot be
    rendered, ``_write_result``; s02: its grading raises, the ``except`` around ``future.result()``)
    becomes that submission's ``sandbox_error`` with the reason, the others are graded as usual and
    the run finishes; a rerun retries those two only, and grades them as the others."""
    from grader import run

    klass = _class(tmp_path / "class", 4)
    out = tmp_path / "out"
    render, grade = reports.feedback_markdown, run.grade_submission

    def fragile_render(r, pictures=()):
        if r.student == "s01" and r.status != "sandbox_error":
            raise RuntimeError("cannot render s01")
        return render(r, pictures)

    def fragile_grade(sub, *args, **kwargs):
        if sub.student == "s02":
            raise ValueError("cannot grade s02")
        return grade(sub, *args, **kwargs)

    monkeypatch.setattr(reports, "feedback_markdown", fragile_render)
    monkeypatch.setattr(run, "grade_submission", fragile_grade)
    one_worker = dict(out_dir=out, workers=1, isolation="namespaces")  # one zygote: a second costs more than it saves
    first = grade_class(klass, GradingOptions(**one_worker, resume=False))
    assert sorted(first.graded) == ["s00", "s01", "s02", "s03"]
    records = {s: _record(out, s) for s in first.graded}
    for student, why in (("s01", "RuntimeError: cannot render s01"), ("s02", "ValueError: cannot grade s02")):
        assert records[student]["status"] == "sandbox_error"
        assert records[student]["message"].startswith("internal grader error (not your fault; it will be retried)")
        assert why in records[student]["message"]
        assert why in reports.result_path(out, student, "feedback", ".md").read_text("utf-8")
    assert records["s00"]["status"] == records["s03"]["status"] == "load_error"
    assert _comparable(records["s00"]) == _comparable(records["s03"])
    assert json.loads((out / "summary.json").read_text("utf-8"))["not_graded"] == ["s00", "s01", "s02", "s03"]
    assert ",sandbox_error" in next(line for line in (out / "scores.csv").read_text("utf-8").splitlines()
                                    if line.startswith("s01,"))
    monkeypatch.undo()
    again = grade_class(klass, GradingOptions(**one_worker))
    assert again.graded == ["s01", "s02"] and again.skipped == ["s00", "s03"]
    for student in ("s01", "s02"):
        assert _comparable(_record(out, student)) == _comparable(records["s00"])
    assert _record(out, "s00") == records["s00"]


def test_a_resume_dispatches_the_submissions_without_a_record_before_reading_any(tmp_path):
    """A finished class of thousands plus one newcomer: the newcomer goes first, whatever its
    name's place, so its grading never waits for the records of the others to be read."""
    from types import SimpleNamespace

    from grader.run import _recordless_first

    subs = [SimpleNamespace(student=name) for name in ("a", "b", "c", "d")]
    for name in ("a", "c"):
        path = reports.result_path(tmp_path, name, "results", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}", "utf-8")
    assert [s.student for s in _recordless_first(tmp_path, subs, resume=True)] == ["b", "d", "a", "c"]
    assert [s.student for s in _recordless_first(tmp_path, subs, resume=False)] == ["a", "b", "c", "d"]
