"""Who changed score between two grading output folders, and why; regrading one student.

``diff_markdown(old, new)`` compares two sets of results (``diff_folders`` reads them from two
output folders) and writes, deterministically (students sorted by id, checks in rubric order,
no durations, no timestamps):

- one table row per student whose total, status or any check changed (added and removed
  students included), with old and new totals and the difference;
- per such student: what changed around the code (the submission's sha256, the rubric's
  version, sha256 or seed, the grader's version, the isolation), the status and message, and
  every check that flipped, grouped by (before, after, message): a check that now fails shows
  its new message, one that now passes shows the message it failed with.

``regrade_one`` grades one student again (forced: never the resume cache) through
``grader.run.grade_class`` on a temporary class holding only that student's entries, then
rewrites the student's ``results/``, ``feedback/`` and ``logs/`` files, the ``scores.csv`` row and
the summary in the output folder, and returns the diff for that student.
"""
from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from grader.atomic import write_atomic
from grader.exports import OutputFolderError, copy_as_data, load_results, load_summary, md_code
from grader.outlock import output_lock, scratch_folder
from grader.results import StudentResult
from grader.scoring import CheckResult, points_str

__all__ = ["CheckFlip", "RegradeReport", "StudentChange", "compare", "diff_folders", "diff_markdown", "regrade_one",
           "update_scores_row"]


@dataclass
class CheckFlip:
    function: str
    name: str
    old: CheckResult | None  # None: the check is new (rubric change)
    new: CheckResult | None  # None: the check is gone

    @staticmethod
    def state(check: CheckResult | None) -> str:
        if check is None:
            return "absent"
        return f"{'PASS' if check.passed else 'FAIL'} {points_str(check.score)}/{points_str(check.max_score)}"

    @property
    def why(self) -> str:
        """The message that explains the flip: the new one if it fails now, else the old failure."""
        if self.new is not None and not self.new.passed:
            return self.new.message
        if self.old is not None and not self.old.passed:
            return self.old.message
        return ""


@dataclass
class StudentChange:
    student: str
    old: StudentResult | None
    new: StudentResult | None
    flips: list[CheckFlip] = field(default_factory=list)
    context: list[str] = field(default_factory=list)  # what changed around the code

    @property
    def changed(self) -> bool:
        if self.old is None or self.new is None:
            return True
        return (self.old.score != self.new.score or self.old.status != self.new.status or bool(self.flips))

    @property
    def delta(self) -> Decimal:
        return (self.new.score if self.new else Decimal(0)) - (self.old.score if self.old else Decimal(0))


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + points_str(value) if value else "0"


def _context(old: StudentResult, new: StudentResult) -> list[str]:
    notes = []
    pairs = [
        ("submission sha256", (old.submission or {}).get("sha256"), (new.submission or {}).get("sha256")),
        ("rubric version", (old.rubric or {}).get("version"), (new.rubric or {}).get("version")),
        ("rubric sha256", (old.rubric or {}).get("sha256"), (new.rubric or {}).get("sha256")),
        ("seed", (old.rubric or {}).get("seed"), (new.rubric or {}).get("seed")),
        ("grader version", (old.versions or {}).get("grader"), (new.versions or {}).get("grader")),
        ("isolation", (old.sandbox or {}).get("isolation"), (new.sandbox or {}).get("isolation")),
    ]
    for what, a, b in pairs:
        if a != b:
            a_text, b_text = (str(v)[:12] if what.endswith("sha256") and v else str(v) for v in (a, b))
            notes.append(f"{what} changed: {a_text} → {b_text}")
    return notes


def _flips(old: StudentResult, new: StudentResult) -> list[CheckFlip]:
    before = {(c.function, c.name): c for c in old.checks}
    after = {(c.function, c.name): c for c in new.checks}
    order = [k for k in after] + [k for k in before if k not in after]
    flips = []
    for k in order:
        a, b = before.get(k), after.get(k)
        if a is None or b is None or a.passed != b.passed or a.score != b.score or a.max_score != b.max_score:
            flips.append(CheckFlip(k[0], k[1], a, b))
    return flips


def compare(old: dict[str, StudentResult], new: dict[str, StudentResult]) -> list[StudentChange]:
    """One StudentChange per student in either set, sorted by id (see ``StudentChange.changed``)."""
    changes = []
    for student in sorted(set(old) | set(new)):
        a, b = old.get(student), new.get(student)
        change = StudentChange(student, a, b)
        if a is not None and b is not None:
            change.flips = _flips(a, b)
            change.context = _context(a, b)
        changes.append(change)
    return changes


def _fenced(text: str) -> list[str]:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [f"  {fence}text", *[f"  {line}" for line in text.splitlines()], f"  {fence}"]


def _describe(results: dict[str, StudentResult]) -> str:
    rubric = sorted({f"{r.rubric.get('version')} (seed {r.rubric.get('seed')})" for r in results.values()})
    graders = sorted({str(r.versions.get("grader")) for r in results.values()})
    return f"{len(results)} students; rubric {', '.join(rubric) or '-'}; grader {', '.join(graders) or '-'}"


def _status(change: StudentChange) -> str:
    a = change.old.status if change.old else "-"
    b = change.new.status if change.new else "-"
    return a if a == b else f"{a} → {b}"


def diff_markdown(old: dict[str, StudentResult], new: dict[str, StudentResult],
                  old_label: str = "old", new_label: str = "new") -> str:
    """The Markdown diff of two sets of results (see the module's docstring)."""
    changes = compare(old, new)
    changed = [c for c in changes if c.changed]
    lines = ["# Grading diff", "",
             f"- old: {md_code(old_label, in_table=False)}: {_describe(old)}",
             f"- new: {md_code(new_label, in_table=False)}: {_describe(new)}",
             f"- changed: {len(changed)} (added {sum(c.old is None for c in changes)}, removed "
             f"{sum(c.new is None for c in changes)}); unchanged: {len(changes) - len(changed)}", ""]
    if not changed:
        lines.append("No student's score, status or checks changed.")
        return "\n".join(lines) + "\n"
    lines += ["| student | old | new | change | status | checks flipped |", "|---|---|---|---|---|---|"]
    for c in changed:
        old_total = points_str(c.old.score) if c.old else "-"
        new_total = points_str(c.new.score) if c.new else "-"
        what = "added" if c.old is None else "removed" if c.new is None else _signed(c.delta)
        lines.append(f"| {md_code(c.student)} | {old_total} | {new_total} | {what} | {_status(c)} | {len(c.flips)} |")
    for c in changed:
        lines += ["", f"## {md_code(c.student, in_table=False)}", ""]
        if c.old is None:
            lines.append(f"- new student: {points_str(c.new.score)} / {points_str(c.new.max_score)}, status {c.new.status}")
            continue
        if c.new is None:
            lines.append(f"- no longer graded (was {points_str(c.old.score)} / {points_str(c.old.max_score)}, "
                         f"status {c.old.status})")
            continue
        lines.append(f"- total: {points_str(c.old.score)} / {points_str(c.old.max_score)} → "
                     f"{points_str(c.new.score)} / {points_str(c.new.max_score)} ({_signed(c.delta)})")
        lines.append(f"- status: {_status(c)}")
        if c.old.message != c.new.message:
            lines.append(f"- message: {md_code(c.old.message or '(none)', in_table=False)} → "
                         f"{md_code(c.new.message or '(none)', in_table=False)}")
        lines += [f"- {note}" for note in c.context]
        groups: dict[tuple[str, str, str], list[CheckFlip]] = {}
        for flip in c.flips:
            groups.setdefault((CheckFlip.state(flip.old).split()[0], CheckFlip.state(flip.new).split()[0],
                               flip.why), []).append(flip)
        for (before, after, why), flips in groups.items():
            names = ", ".join(md_code(f"{f.function} / {f.name}", in_table=False) + f" ({CheckFlip.state(f.old)} → "
                              f"{CheckFlip.state(f.new)})" for f in flips)
            lines.append(f"- {before} → {after}: {names}")
            if why:
                said = "now fails with" if after == "FAIL" else "failed before with"
                lines += ["", f"  {said}:", "", *_fenced(why), ""]
    tidy = [line for i, line in enumerate(lines) if line or (i and lines[i - 1])]  # no double blank lines
    return "\n".join(tidy).rstrip("\n") + "\n"


def diff_folders(old_dir: Path, new_dir: Path) -> str:
    """``diff_markdown`` of two grading output folders."""
    return diff_markdown(load_results(old_dir), load_results(new_dir), str(old_dir), str(new_dir))


# ------------------------------------------------------------------------------------ regrading

@dataclass
class RegradeReport:
    student: str
    old: StudentResult | None
    new: StudentResult
    diff: str  # Markdown, as diff_markdown for this student alone
    notes: list[str]


def _raw_id(cell: str) -> str:
    """Undo ``safe_cell`` on an id cell (its quote only ever precedes a formula character)."""
    from grader.reports import FORMULA_PREFIXES

    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_PREFIXES) else cell


def update_scores_row(scores_text: str | None, result: StudentResult) -> tuple[str, str]:
    """``scores.csv`` with ``result``'s row replaced (or inserted in id order); every other row is
    kept as it was (rows are parsed and written back with the same CSV dialect, so ids with line
    breaks survive). Returns ``(text, note)``; with no file, or a header of other functions (the
    rubric changed), the file holds this one row and the note says so."""
    from grader.reports import safe_cell, scores_csv

    fresh = list(csv.reader(io.StringIO(scores_csv([result], list(result.functions())))))
    header, row = fresh[0], fresh[1]
    rows = list(csv.reader(io.StringIO(scores_text))) if scores_text else []
    note = ""
    if not rows:
        note = "scores.csv was missing: it now holds this student only"
        rows = [header]
    elif rows[0] != header:
        note = "scores.csv had other columns (another rubric): it now holds this student only; regrade the class"
        rows = [header]
    me = safe_cell(result.student)
    kept = [r for r in rows[1:] if r and r[0] != me]
    at = next((i for i, r in enumerate(kept) if _raw_id(r[0]) > result.student), len(kept))
    kept.insert(at, row)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *kept])
    return buf.getvalue(), note


def rewrite_written_pages(class_dir: Path, out_dir: Path, options, work: Path) -> list[str]:
    """The written-answer pages of ``out_dir`` from every entry of ``class_dir``, as a grading
    writes them (intake only: no student code runs); notes for the TA."""
    from grader import intake, written
    from grader.rubric import load_rubric

    submissions, _ = intake.prepare(class_dir, work)
    questions = written.load_questions(options.questions_path or written.DEFAULT_QUESTIONS)
    secret = written.anonymity_secret(load_rubric(options.rubric_path).seed)
    report = written.write_written_pages(submissions, out_dir, questions, options.anonymous, secret=secret)
    from grader.similarity import write_for_run  # the student's code may have changed: every pair again

    similarity = write_for_run(submissions, out_dir, options.anonymous, secret)
    return [f"written pages rewritten: {report.summary_line()}" + (f"; {similarity.summary_line()}" if similarity else "")]


def regrade_one(class_dir: Path, out_dir: Path, student: str, options=None) -> RegradeReport:
    """Grade ``student``'s entry (or entries) of ``class_dir`` again and update ``out_dir``.

    ``options`` is a ``grader.run.GradingOptions`` (limits, isolation, rubric, questions); its
    ``out_dir``, ``resume``, ``workers`` and ``progress`` are ignored, and the TA's marks are read
    from ``options.manual_csv`` or else ``out_dir/manual.csv``. The written-answer pages are
    written again from the whole class folder (the student's answers may have changed, and with
    them the copied-answer flags of others). Holds the output folder's lock (``grader.outlock``):
    raises ``OutputBusy`` while a grading of that folder runs. Raises ``KeyError`` when the class
    folder has no entry for that id (with the closest ids in the message)."""
    from grader import intake
    from grader.run import GradingOptions

    class_dir, out_dir = Path(class_dir), Path(out_dir)
    student = unicodedata.normalize("NFC", student)
    groups, _ = intake.discover(class_dir)
    if student not in groups:
        close = difflib.get_close_matches(student, list(groups), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no entry for {student!r} in {class_dir}{hint}")
    base = options or GradingOptions(out_dir=out_dir)
    with output_lock(out_dir):
        return _regrade_locked(class_dir, out_dir, student, groups, base)


def _regrade_locked(class_dir: Path, out_dir: Path, student: str, groups: dict, base) -> RegradeReport:
    from grader import reports
    from grader.run import grade_class

    try:
        old = StudentResult.from_dict(json.loads(
            reports.result_path(out_dir, student, "results", ".json").read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        old = None  # never graded (or unreadable): the diff shows the student as added
    notes: list[str] = []
    if load_summary(out_dir).get("anonymous") and not base.anonymous:
        base = dataclasses.replace(base, anonymous=True)  # the folder's pages were anonymous: keep them so
        notes.append("the folder was graded with --anonymous: its written pages stay anonymous")
    with scratch_folder(out_dir, "regrade-") as tmp:  # OUT/.work/, under the lock held here
        tmp_class, tmp_out = Path(tmp) / "class", Path(tmp) / "out"
        tmp_class.mkdir()
        for entry in groups[student]:
            notes += copy_as_data(class_dir / entry.name, tmp_class / entry.name)
        manual = base.manual_csv or (out_dir / "manual.csv" if (out_dir / "manual.csv").exists() else None)
        from grader.run import LATE_COPIES

        late = {option: getattr(base, option) or (out_dir / name if (out_dir / name).is_file() else None)
                for option, name in LATE_COPIES.items()}  # the policy the class was graded under
        run_options = dataclasses.replace(base, out_dir=tmp_out, resume=False, workers=1, progress=False,
                                          manual_csv=manual, **late)  # the TA's marks live in the real folder
        report = grade_class(tmp_class, run_options)
        new = report.result(student)
        if new is None:
            raise RuntimeError(f"regrading {student!r} produced no result (notes: {'; '.join(notes) or 'none'})")
        for folder, suffix in (("results", ".json"), ("feedback", ".md"), ("logs", ".txt")):
            source = reports.result_path(tmp_out, student, folder, suffix)
            target = reports.result_path(out_dir, student, folder, suffix)
            if source.exists():
                write_atomic(target, source.read_bytes())
            else:
                target.unlink(missing_ok=True)  # a stale log of an earlier grading would mislead
        notes += rewrite_written_pages(class_dir, out_dir, base, Path(tmp) / "prepared")

    try:
        scores_text = (out_dir / "scores.csv").read_text("utf-8")
    except OSError:
        scores_text = None
    text, note = update_scores_row(scores_text, new)
    if note:
        notes.append(note)
    write_atomic(out_dir / "scores.csv", text)
    listed = {_raw_id(row[0]) for row in list(csv.reader(io.StringIO(text)))[1:] if row}
    try:
        kept = [r for s, r in load_results(out_dir).items() if s in listed]
    except OutputFolderError as error:
        notes.append(f"summary not updated: {error}")
        kept = None
    diff = diff_markdown({student: old} if old else {}, {student: new}, f"{out_dir} (before)", f"{out_dir} (regraded)")
    if kept is None:
        return RegradeReport(student, old, new, diff, notes)
    summary = load_summary(out_dir)
    meta = {"rubric": new.rubric, "versions": new.versions,
            "intake_notes": summary.get("intake_notes", []),
            "isolation": summary.get("isolation", base.isolation),
            "limits": summary.get("limits", base.limits.to_dict()), "anonymous": base.anonymous}
    class_summary = reports.class_summary(sorted(kept, key=lambda r: r.student), meta)
    write_atomic(out_dir / "summary.json", reports.summary_json(class_summary))
    write_atomic(out_dir / "summary.md", reports.summary_markdown(class_summary))
    return RegradeReport(student, old, new, diff, notes)
