"""Written questions: extracting answers, pages for marking by hand, and the TA's marks.

Two entry points for ``grader.run``:

* ``write_written_pages(submissions, out_dir, questions, anonymous, secret=...)``, right after
  intake (it reads the prepared workdirs and write-ups as text), writes ``written/Q<n>.html``,
  ``Q<n>.md``, ``manual_template.csv`` and ``answers.json`` (the answers as data, for the marking
  app), and returns a ``WrittenReport``;
* ``apply_manual_marks(results, manual_csv_path, questions, secret=..., anonymous=...)``, a pure
  step on the stored results, returns ``(merged results, problems)``.
"""
from __future__ import annotations

import json
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
    "answers_json", "collect_answers", "extract_answers", "is_manual", "load_questions", "merge", "write_written_pages",
]

WRITTEN_DIR = "written"
TEMPLATE_NAME = "manual_template.csv"
ANSWERS_NAME = "answers.json"
ANSWERS_FORMAT = 1


@dataclass
class WrittenReport:
    pages: list[Path]                                   # every file written, in order
    flags: dict[str, list[Flag]]                        # student id -> flags (copying included)
    pairs: dict[str, list[Pair]]                        # question id -> near-duplicate pairs (ids)
    counts: dict[str, int] = field(default_factory=dict)   # flag kind -> number of flags

    def summary_line(self) -> str:
        parts = [f"{n} {FLAG_KINDS[k]}" for k, n in sorted(self.counts.items()) if n]
        shown = sum(path.suffix in (".html", ".md") for path in self.pages)
        return f"written answers: {shown} files in {WRITTEN_DIR}/" + (
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
    """Write ``out_dir/written/Q<n>.html``, ``Q<n>.md``, ``manual_template.csv`` and ``answers.json``
    (atomically).

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
    answers_path = folder / ANSWERS_NAME
    write_atomic(answers_path, answers_json(students, questions, shown_pairs, anonymous))
    written.append(answers_path)
    counts = Counter(f.kind for fl in flags.values() for f in fl)
    return WrittenReport(written, flags, pairs, dict(sorted(counts.items())))


def answers_json(students: list[StudentAnswers], questions: Questions, pairs: dict[str, list[Pair]],
                 anonymous: bool) -> str:
    """``written/answers.json``: the answers as data, for marking tools (the browser marking app
    reads it and never needs the class folder). Per question: its text, points and rubric, then
    every student (or anonymous code) with an answer: the text as written, its source (file, page
    for a PDF, line, and the location as shown on the pages), the heading, how it was matched,
    its flags and other answers found; then those without an answer, with why; and the
    near-duplicate pairs. Deterministic (sorted keys, students in page order)."""
    from grader.escape import clean_text
    from grader.scoring import points_str

    def flag_list(student: StudentAnswers, qid: str) -> list[dict]:
        return [{"kind": f.kind, "label": FLAG_KINDS[f.kind], "message": clean_text(f.message)}
                for f in student.flags if f.question in (qid, None)]

    data = {"format": ANSWERS_FORMAT, "questions_version": questions.version, "questions_sha256": questions.sha256,
            "anonymous": anonymous, "questions": []}
    for q in questions.questions:
        entry = {"id": q.id, "title": q.title, "prompt": q.prompt, "points": points_str(q.points),
                 "rubric": [{"item": n, "points": points_str(item.points), "text": item.text}
                            for n, item in enumerate(q.rubric, start=1)],
                 "answers": [], "without_answer": [],
                 "near_duplicates": [{"a": p.a, "b": p.b, "similarity": p.describe()} for p in pairs.get(q.id, [])]}
        for s in students:
            answer = s.answers.get(q.id)
            if answer is None:
                entry["without_answer"].append({"student": clean_text(s.name), "flags": flag_list(s, q.id)})
                continue
            entry["answers"].append({
                "student": clean_text(s.name), "text": clean_text(answer.text), "empty": not answer.text.strip(),
                "source": {"file": clean_text(answer.file), "page": answer.page, "line": answer.line,
                           "location": clean_text(answer.location)},
                "heading": clean_text(answer.heading), "how": answer.how, "well_formed": answer.well_formed,
                "flags": flag_list(s, q.id),
                "others": [{"location": clean_text(loc), "heading": clean_text(head), "text": clean_text(text)}
                           for loc, head, text in answer.others]})
        data["questions"].append(entry)
    return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


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
