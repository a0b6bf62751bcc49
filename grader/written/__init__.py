"""Written questions: extracting answers, pages for marking by hand, and the TA's marks.

Two entry points for ``grader.run``:

* ``write_written_pages(submissions, out_dir, questions, anonymous, secret=...)``, right after
  intake (it reads the prepared workdirs as text), writes ``written/Q<n>.html``, ``Q<n>.md`` and
  ``manual_template.csv``, and returns a ``WrittenReport``;
* ``apply_manual_marks(results, manual_csv_path, questions, secret=..., anonymous=...)``, a pure
  step on the stored results, returns ``(merged results, problems)``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from grader.atomic import write_atomic
from grader.results import StudentResult
from grader.written.anonymity import anonymity_secret, anonymous_code, code_table
from grader.written.extract import FLAG_KINDS, Answer, Flag, extract_answers
from grader.written.manual import Mark, Problem, automatic_only, is_manual, merge, read_and_validate
from grader.written.pages import StudentAnswers, manual_template, question_html, question_markdown
from grader.written.questions import DEFAULT_QUESTIONS, Question, Questions, QuestionsError, load_questions
from grader.written.similarity import Pair, near_duplicates

__all__ = [
    "Answer", "Flag", "Mark", "Pair", "Problem", "Question", "Questions", "QuestionsError", "WrittenReport",
    "DEFAULT_QUESTIONS", "anonymity_secret", "anonymous_code", "apply_manual_marks", "automatic_only",
    "collect_answers", "extract_answers", "is_manual", "load_questions", "merge", "write_written_pages",
]

WRITTEN_DIR = "written"
TEMPLATE_NAME = "manual_template.csv"


@dataclass
class WrittenReport:
    pages: list[Path]                                   # every file written, in order
    flags: dict[str, list[Flag]]                        # student id -> flags (copying included)
    pairs: dict[str, list[Pair]]                        # question id -> near-duplicate pairs (ids)
    counts: dict[str, int] = field(default_factory=dict)   # flag kind -> number of flags

    def summary_line(self) -> str:
        parts = [f"{n} {FLAG_KINDS[k]}" for k, n in sorted(self.counts.items()) if n]
        return f"written answers: {len(self.pages) - 1} files in {WRITTEN_DIR}/" + (
            f"; flags: {', '.join(parts)}" if parts else "; no flags")


def collect_answers(submissions, questions: Questions) -> tuple[dict[str, tuple[dict[str, Answer], list[Flag]]],
                                                                dict[str, list[Pair]]]:
    """``({student id: (answers, flags)}, {question id: pairs})`` for intake Submissions (anything
    with ``student``, ``kind``, ``entry``, ``workdir`` and ``error``). Never raises for a
    submission's content: a failure is an ``unreadable`` flag."""
    found: dict[str, tuple[dict[str, Answer], list[Flag]]] = {}
    for sub in sorted(submissions, key=lambda s: s.student):
        writeup_dir = getattr(sub, "writeup_dir", None)
        if sub.workdir is None and writeup_dir is None:
            flags = [Flag("unreadable", None, f"the submission could not be read: {sub.error}")]
            flags += [Flag("missing", q.id, "no answer: the submission could not be read") for q in questions.questions]
            found[sub.student] = ({}, flags)
            continue
        try:
            found[sub.student] = extract_answers(Path(sub.workdir) if sub.workdir else None, sub.kind, sub.entry,
                                                 questions, writeup_dir=writeup_dir,
                                                 writeups=tuple(getattr(sub, "writeups", ())))
        except Exception as exc:  # noqa: BLE001 - a grader bug costs this student's page entry, never the run
            flags = [Flag("unreadable", None, f"the answers could not be extracted: {type(exc).__name__}: {exc}")]
            flags += [Flag("missing", q.id, "no answer: extraction failed") for q in questions.questions]
            found[sub.student] = ({}, flags)
    pairs = {}
    for q in questions.questions:
        texts = {s: a[q.id].text for s, (a, _) in found.items() if q.id in a and a[q.id].text.strip()}
        pairs[q.id] = near_duplicates(q.id, texts, questions.similarity, q.prompt)
    return found, pairs


def write_written_pages(submissions, out_dir: Path, questions: Questions | None = None, anonymous: bool = False,
                        *, secret: bytes | None = None) -> WrittenReport:
    """Write ``out_dir/written/Q<n>.html``, ``Q<n>.md`` and ``manual_template.csv`` (atomically).

    ``secret`` (see ``anonymity_secret``) is required when ``anonymous``: students then appear only
    as their codes, sorted by code, in the pages, the flags and the template.
    """
    questions = questions or load_questions()
    if anonymous and secret is None:
        raise ValueError("anonymous pages need the secret of the codes (grader.written.anonymity_secret)")
    found, pairs = collect_answers(submissions, questions)
    names = code_table(found, secret) if anonymous else {s: s for s in found}
    flags: dict[str, list[Flag]] = {s: list(f) for s, (_, f) in found.items()}
    for qid, qpairs in pairs.items():
        for p in qpairs:
            for me, other in ((p.a, p.b), (p.b, p.a)):
                flags[me].append(Flag("copied", qid, f"{p.describe()} with {names[other]}'s answer"))
    students = sorted((StudentAnswers(names[s], a, flags[s]) for s, (a, _) in found.items()), key=lambda x: x.name)
    shown_pairs = {qid: [Pair(p.question, names[p.a], names[p.b], p.identical, p.ratio, p.jaccard) for p in qp]
                   for qid, qp in pairs.items()}
    folder = Path(out_dir) / WRITTEN_DIR
    written = []
    for q in questions.questions:
        for suffix, render in ((".html", question_html), (".md", question_markdown)):
            path = folder / f"{q.id}{suffix}"
            write_atomic(path, render(q, questions, students, shown_pairs[q.id], anonymous))
            written.append(path)
    template = folder / TEMPLATE_NAME
    write_atomic(template, manual_template([s.name for s in students], questions))
    written.append(template)
    counts = Counter(f.kind for fl in flags.values() for f in fl)
    return WrittenReport(written, flags, pairs, dict(sorted(counts.items())))


def apply_manual_marks(results: list[StudentResult], manual_csv_path: Path | None, questions: Questions | None = None,
                       *, secret: bytes | None = None, anonymous: bool = False
                       ) -> tuple[list[StudentResult], list[Problem]]:
    """``(merged results, problems)``: the TA's marks of ``manual_csv_path`` (None or a missing
    file: no marks) merged into ``results``. Pure apart from reading the file; ``secret`` lets
    rows name students by their anonymous code; ``anonymous`` makes the problems name codes."""
    questions = questions or load_questions()
    if anonymous and secret is None:
        raise ValueError("anonymous problems need the secret of the codes (grader.written.anonymity_secret)")
    marks, problems = read_and_validate(manual_csv_path, results, questions, secret=secret, anonymous=anonymous)
    return merge(results, marks, questions), problems
