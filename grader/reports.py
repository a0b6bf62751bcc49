"""Rendering results: per-student JSON and Markdown feedback, the class CSV and summary.

Pure functions from ``StudentResult`` records to text; writing is atomic (``grader.atomic``).
Everything here is deterministic: students sorted by id, checks in rubric order, no timestamps
outside the ``durations`` fields.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from grader.escape import clean_text, md_code_block, md_inline, visible_controls
from grader.filenames import file_stem
from grader.results import StudentResult
from grader.scoring import WRITTEN_FUNCTION, is_manual
from grader.scoring import points_str as pts

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MESSAGE_CHARS = 20_000   # one message shown in feedback (the record keeps what it was given)
STATUS_TEXT = {
    "ok": "graded",
    "load_error": "could not be loaded",
    "conflict": "has conflicting entries",
    "timeout": "ran out of time",
    "crashed": "crashed",
    "sandbox_error": "could not be run by the grader (it will be retried)",
}


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula: a leading =, +, -, @ gets a quote."""
    text = clean_text(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def scores_csv(results: list[StudentResult], functions: list[str]) -> str:
    """One row per student (sorted by id): id, total (after the late penalty), max, points per
    function (adding up to the score before the penalty), late days, late penalty, status."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "total", "max_score", *functions, "late_days", "late_penalty", "status"])
    for r in sorted(results, key=lambda r: r.student):
        per_fn = r.functions()
        total = r.total if r.total is not None else r.score
        writer.writerow([safe_cell(r.student), pts(total), pts(r.max_score),
                         *[per_fn.get(fn, {}).get("score", "0") for fn in functions], r.late_days,
                         pts(r.late_penalty), r.status])
    return buf.getvalue()


def _md_escape(text: str) -> str:
    """Grader-authored text in a Markdown table cell or line (its own Markdown kept): pipes and
    line breaks neutralised, no raw HTML. Student text goes through ``grader.escape.md_inline``."""
    text = visible_controls(clean_text(text)).replace("|", "\\|")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _picture_link(name: str) -> str:
    return quote(clean_text(name), safe="")   # a link destination nothing can break out of


def mark_word(c) -> str:
    """PASS/FAIL for a check; a written question is MARKED (with its points and the TA's comment),
    or NOT MARKED YET: a mark below full is not a failure."""
    if c.function != WRITTEN_FUNCTION:
        return "PASS" if c.passed else "FAIL"
    from grader.written.manual import NOT_MARKED  # TA side only: the student kit has no written checks

    return "NOT MARKED YET" if c.message == NOT_MARKED else "MARKED"


def feedback_markdown(r: StudentResult, pictures: list[str] = ()) -> str:
    """What the student reads: a summary line, a table per function, then each failed check;
    ``pictures`` (file names beside the feedback) are shown under the workhouse's section.

    Everything from the student (id, messages, notes, got values, exception text) is escaped:
    ``md_inline`` for a line of prose, ``md_code_block`` (a fence longer than any backtick run
    inside) for check messages and multi-line messages."""
    lines = [f"# Feedback for {md_inline(r.student)}", "",
             f"**Score: {pts(r.total)} / {pts(r.max_score)}** — submission {STATUS_TEXT.get(r.status, r.status)}.", ""]
    if r.late and r.late_penalty:
        lines[-1:-1] = [f"Late: {_md_escape(str(r.late.get('note', '')))}; {pts(r.late_penalty)} points off the "
                        f"{pts(r.score)} earned (deadline {_md_escape(str(r.late.get('deadline')))}, submitted "
                        f"{_md_escape(str(r.late.get('submitted_at')))}).", ""]
    if r.message:
        message = clean_text(r.message, MESSAGE_CHARS)
        lines += [*md_code_block(message), ""] if "\n" in message.strip() else [md_inline(message), ""]
    notes = r.submission.get("notes") or []
    if notes:
        lines += ["Notes on your submission:", *[f"- {md_inline(n, MESSAGE_CHARS)}" for n in notes], ""]
    lines += ["| function | points | checks passed |", "|---|---|---|"]
    by_fn: dict[str, list] = {}
    for c in r.checks:
        by_fn.setdefault(c.function, []).append(c)
    for fn, checks in by_fn.items():
        got = sum((c.score for c in checks), Decimal(0))
        top = sum((c.max_score for c in checks), Decimal(0))
        lines.append(f"| `{_md_escape(fn)}` | {pts(got)} / {pts(top)} | {sum(c.passed for c in checks)} / {len(checks)} |")
    lines.append("")
    for fn, checks in by_fn.items():
        lines += [f"## `{_md_escape(fn)}`", ""]
        if fn == "train_gan":
            lines += [f"![your samples over the ring, beside the reference's, and your loss curves]({_picture_link(p)})"
                      for p in pictures] + ([""] if pictures else [])
        for c in checks:
            mark = mark_word(c)
            lines.append(f"- **{mark}** `{_md_escape(c.name)}` ({pts(c.score)} / {pts(c.max_score)}): "
                         f"{_md_escape(c.description)}")
            if c.message and (not c.passed or is_manual(c)):
                lines += ["", *md_code_block(clean_text(c.message, MESSAGE_CHARS), indent="  "), ""]
        lines.append("")
    lines += ["---", f"rubric {_md_escape(str(r.rubric.get('version')))} · grader {_md_escape(str(r.versions.get('grader')))}", ""]
    return "\n".join(lines)


def mistake_students(results: list[StudentResult]) -> list[tuple[str, str, list[str]]]:
    """Each diagnosed mistake as ``(function, diagnosis, students)``: the distinct students (sorted)
    with at least one failed check of ``function`` diagnosed as it, however many checks that is.
    Most students first, then by function and diagnosis. The one definition of "how many students
    made this mistake", for ``summary.md``/``summary.json`` and the HTML class report."""
    who: dict[tuple[str, str], set[str]] = {}
    for r in results:
        for c in r.checks:
            if c.diagnosis and not c.passed:
                who.setdefault((c.function, c.diagnosis), set()).add(r.student)
    return sorted(((fn, d, sorted(s)) for (fn, d), s in who.items()), key=lambda row: (-len(row[2]), row[0], row[1]))


#: What a TA must know before reading the list of suspected tampering (summary.md, the class report).
TAMPERING_NOTE = ("Information for the TA, not a verdict: the submission's own process reported that its code "
                  "replaced functions or modules of the grader's harness, and that process can forge or hide "
                  "such a report. No grade rests on it (every judged value is recomputed by the grader from raw "
                  "data); it is never shown to students.")


def suspected_tampering(results: list[StudentResult]) -> list[tuple[str, list[str]]]:
    """``(student, what was detected)`` for each result whose ``sandbox.suspected_tampering`` is
    not empty, sorted by student (results or ``grader.tally`` rows alike). TA only: never in feedback."""
    found = []
    for r in results:
        items = getattr(r, "tampering", None)
        if items is None:
            items = (getattr(r, "sandbox", None) or {}).get("suspected_tampering") or ()
        if items:
            found.append((r.student, [clean_text(item) for item in items]))
    return sorted(found)


def class_summary(results: list[StudentResult], meta: dict) -> dict:
    """Counts by status, score statistics, pass rate per check, frequent mistakes by number of
    students (``mistake_students``), the students with suspected tampering (``suspected_tampering``:
    for the TA, information only), deterministic."""
    scores = [float(r.total if r.total is not None else r.score) for r in results]
    status = Counter(r.status for r in results)
    per_check: dict[str, list[int]] = {}
    for r in results:
        for c in r.checks:
            key = f"{c.function}/{c.name}"
            per_check.setdefault(key, [0, 0])
            per_check[key][0] += int(c.passed)
            per_check[key][1] += 1
    mistakes = [{"mistake": f"{fn}: {d}", "students": len(who)} for fn, d, who in mistake_students(results)]
    return {
        **meta,
        "students": len(results),
        "status": dict(sorted(status.items())),
        "score": {
            "mean": round(statistics.fmean(scores), 4) if scores else None,
            "median": statistics.median(scores) if scores else None,
            "max_score": pts(results[0].max_score) if results else None,
        },
        "pass_rate": {k: f"{v[0]}/{v[1]}" for k, v in per_check.items()},
        "mistakes": mistakes,
        "not_graded": sorted(r.student for r in results if r.status != "ok"),
        "suspected_tampering": [{"student": student, "detected": items}
                                for student, items in suspected_tampering(results)],
    }


def summary_markdown(summary: dict) -> str:
    lines = ["# Class summary", "",
             f"- students: {summary['students']}", f"- status: {summary['status']}",
             f"- mean score: {summary['score']['mean']} / {summary['score']['max_score']}, "
             f"median {summary['score']['median']}",
             f"- rubric {summary.get('rubric', {}).get('version')} (seed {summary.get('rubric', {}).get('seed')}), "
             f"grader {summary.get('versions', {}).get('grader')}", "",
             "## Most frequent mistakes", "", "| mistake | students |", "|---|---|"]
    lines += [f"| {_md_escape(m['mistake'])} | {m['students']} |" for m in summary["mistakes"]]
    lines += ["", "## Pass rate per check", "", "| check | passed |", "|---|---|"]
    lines += [f"| {_md_escape(k)} | {v} |" for k, v in summary["pass_rate"].items()]
    if summary["not_graded"]:
        lines += ["", "## Not fully graded (status other than ok)", "",
                  *[f"- {md_inline(s)}" for s in summary["not_graded"]]]
    if summary.get("suspected_tampering"):
        lines += ["", "## Suspected tampering (for the TA only)", "", _md_escape(TAMPERING_NOTE), "",
                  *[f"- {md_inline(entry['student'])}: {md_inline('; '.join(entry['detected']))}"
                    for entry in summary["suspected_tampering"]]]
    return "\n".join(lines) + "\n"


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False) + "\n"


def result_path(out_dir: Path, student: str, folder: str, suffix: str) -> Path:
    """``out/<folder>/<stem><suffix>``, the stem from ``grader.filenames.file_stem`` (the id
    itself when plain and short; else a readable prefix and a hash of the exact id)."""
    return Path(out_dir) / folder / f"{file_stem(student)}{suffix}"
