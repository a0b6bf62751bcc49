"""The TA's marking pages: ``written/Q<n>.html`` and its Markdown twin ``written/Q<n>.md`` (every
student's answer to one question, with the question, its rubric and its points, and the flags),
and ``written/manual_template.csv`` (one row per student and question, to fill in).

Pure functions from extracted answers to text. Students' text is never trusted:

* HTML: everything a student wrote (answers, headings, file names, ids) is escaped with
  ``html.escape``; the page carries no script, a Content-Security-Policy that allows nothing but
  its own inline style (by hash), no images and no network; LaTeX stays as written
  (``$...$`` spans are only set in a monospace style);
* Markdown: answers sit in fenced code blocks longer than any fence inside them, and every other
  student-supplied string goes through ``grader.escape.md_inline`` (Markdown punctuation
  backslash-escaped, ``< > &`` as entities), so a Markdown viewer renders no HTML of theirs;
* both: lone surrogates replaced, control characters shown as ``\\x1b`` and bidirectional
  overrides as ``[U+202E]``.

In anonymous mode, students appear only as their codes, in the order of the codes.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import re
from dataclasses import dataclass, field

from grader.escape import clean_text, md_inline
from grader.scoring import points_str
from grader.written.extract import FLAG_KINDS, Answer, Flag
from grader.written.questions import Question, Questions
from grader.written.similarity import Pair

CSV_COLUMNS = ("student", "question", "points", "comment")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")   # as grader.reports.safe_cell
BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MATH = re.compile(r"\$\$.{1,2000}?\$\$|\\\[.{1,2000}?\\\]|\\\(.{1,500}?\\\)"
                  r"|(?<![\\$])\$(?!\s)[^$\n]{1,500}?(?<![\s\\])\$", re.DOTALL)   # bounded: linear time
FLAG_ORDER = ("copied", "missing", "no_text_layer", "empty", "misheaded", "code_heading", "misplaced", "extra_answer",
              "unknown_question", "truncated", "unreadable")

UNANSWERED_KINDS = ("missing", "no_text_layer", "empty")   # listed at the top, not among the answers
STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; color: #1a1a1a; }
nav a { margin-right: 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
.meta, .where { color: #555; font-size: 0.9rem; }
.prompt { background: #f4f6fa; padding: 0.75rem 1rem; border-left: 4px solid #4a6fa5; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.25rem 0.6rem; vertical-align: top; text-align: left; }
article { border-top: 2px solid #333; margin-top: 2rem; padding-top: 0.5rem; }
.answer { white-space: pre-wrap; overflow-wrap: anywhere; background: #fbfbf8; border: 1px solid #e2e2da; padding: 0.75rem 1rem; }
.math { font-family: ui-monospace, monospace; color: #0b5394; background: #eef3fb; }
.flag { color: #8a1c1c; }
.mark { font-weight: bold; }
.how { font-style: italic; }
code { font-family: ui-monospace, monospace; background: #f0f0f0; padding: 0 0.2rem; }
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'none'; script-src 'none'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")


@dataclass
class StudentAnswers:
    """One student's extracted answers and flags (``name``: the id, or the code when anonymous)."""

    name: str
    answers: dict[str, Answer]
    flags: list[Flag] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------------------------

def clean(text: object) -> str:
    """Valid text (``grader.escape.clean_text``: no lone surrogates); control characters but
    newline and tab made visible (``\\x1b``), and bidirectional controls (``[U+202E]``)."""
    text = CONTROLS.sub(lambda m: f"\\x{ord(m.group(0)):02x}", clean_text(text).replace("\r\n", "\n"))
    return BIDI.sub(lambda m: f"[U+{ord(m.group(0)):04X}]", text)


def h(text: object) -> str:
    """Escaped for HTML text and attribute values."""
    return html.escape(clean(text), quote=True)


def answer_html(text: str) -> str:
    """An answer's text, escaped; LaTeX spans wrapped in ``<span class="math">`` (still escaped)."""
    text = clean(text)
    out, last = [], 0
    for match in MATH.finditer(text):
        out.append(html.escape(text[last:match.start()], quote=True))
        out.append(f'<span class="math">{html.escape(match.group(0), quote=True)}</span>')
        last = match.end()
    out.append(html.escape(text[last:], quote=True))
    return "".join(out)


def md(text: object) -> str:
    """Escaped for Markdown inline text (``grader.escape.md_inline``): one line, no HTML (``<``,
    ``>``, ``&`` as entities), no links, code spans, emphasis or table cells."""
    return md_inline(clean(text))


def md_block(text: str) -> list[str]:
    """A fenced code block holding ``text`` verbatim (the fence is longer than any inside it)."""
    text = clean(text)
    longest = max((len(run) for run in re.findall(r"`+|~+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *text.split("\n"), fence]


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


# --------------------------------------------------------------------------------------------
# One question's page
# --------------------------------------------------------------------------------------------

def _flags_for(student: StudentAnswers, question: Question) -> list[Flag]:
    mine = [f for f in student.flags if f.question in (question.id, None)]
    return sorted(mine, key=lambda f: (FLAG_ORDER.index(f.kind), f.message))


def _is_empty_answer(student: StudentAnswers, question: Question) -> bool:
    return question.id in student.answers and any(f.kind == "empty" and f.question == question.id
                                                  for f in student.flags)


def _answered(students: list[StudentAnswers], question: Question) -> list[StudentAnswers]:
    """Students whose answer to ``question`` has words: the blocks below the flags."""
    return [s for s in students if question.id in s.answers and not _is_empty_answer(s, question)]


def _unanswered(students: list[StudentAnswers], question: Question) -> list[tuple[StudentAnswers, str, Answer | None]]:
    """Students with no answer to ``question``, and why (their flags' messages for it, in one line),
    or with an empty one (``3.`` with nothing under it: the answer, for its heading, source and how
    it was matched): listed once at the top of the page, not as blocks among the answers."""
    out = []
    for s in students:
        if _is_empty_answer(s, question):
            out.append((s, "", s.answers[question.id]))
        elif question.id not in s.answers:
            mine = [f for f in _flags_for(s, question) if f.kind in ("missing", "no_text_layer", "unreadable")]
            why = [f.message for f in mine if f.question == question.id] or [f.message for f in mine]
            out.append((s, "; ".join(why) or "no answer", None))
    return out


def _grouped(rows: list[tuple[StudentAnswers, str, Answer | None]]
             ) -> list[tuple[list[StudentAnswers], str, Answer | None]]:
    """The rows of ``_unanswered`` with the same reason in one (in the order of their first
    student): twenty students without any write-up are one line, not twenty. An empty answer
    keeps a line of its own (its heading and place are its own)."""
    groups: list[tuple[list[StudentAnswers], str, Answer | None]] = []
    by_reason: dict[str, list[StudentAnswers]] = {}
    for s, why, empty in rows:
        if empty is None and why in by_reason:
            by_reason[why].append(s)
            continue
        groups.append(([s], why, empty))
        if empty is None:
            by_reason[why] = groups[-1][0]
    return groups


def _unanswered_html(names: list[StudentAnswers], why: str, empty: Answer | None) -> str:
    who = ", ".join(f"<b>{h(s.name)}</b>" for s in names)
    if empty is None:
        return f"<li>{who}: {h(why)}</li>"
    return (f"<li>{who}: {h(FLAG_KINDS['empty'])} under <code>{h(empty.heading)}</code> "
            f"({h(empty.location)})" + (f" \u00b7 {h(empty.how)}" if empty.how else "") + "</li>")


def _unanswered_md(names: list[StudentAnswers], why: str, empty: Answer | None) -> str:
    who = ", ".join(f"**{md(s.name)}**" for s in names)
    if empty is None:
        return f"- {who}: {md(why)}"
    return (f"- {who}: {md(FLAG_KINDS['empty'])} under {md(empty.heading)} ({md(empty.location)})"
            + (f" \u00b7 {md(empty.how)}" if empty.how else ""))


def source_text(answer: Answer) -> str:
    """Where the answer was found and how it was matched, for the line beside it."""
    parts = [answer.location, f"heading: {answer.heading}"]
    if answer.how:
        parts.append(answer.how)
    return " \u00b7 ".join(parts)


def _pair_rows(pairs: list[Pair]) -> list[tuple[str, str, str]]:
    """``(a, b, similarity)`` with names ordered within and between pairs (no id order leaks)."""
    rows = [(*sorted((p.a, p.b)), p.describe(), p) for p in pairs]
    rows.sort(key=lambda r: (not r[3].identical, -r[3].ratio, -r[3].jaccard, r[0], r[1]))
    return [r[:3] for r in rows]


def _threshold_text(questions: Questions) -> str:
    s = questions.similarity
    return (f"flagged when identical, or difflib ratio \u2265 {s.ratio_flag:g}, or Jaccard index of word "
            f"{s.shingle_words}-grams \u2265 {s.jaccard_flag:g}; answers under {s.min_words} words are not compared")


def question_html(question: Question, questions: Questions, students: list[StudentAnswers], pairs: list[Pair],
                  anonymous: bool) -> str:
    """The self-contained HTML page for ``question`` (students in the order given)."""
    answered = {s.name for s in _answered(students, question)}
    anchors = {s.name: f"s{i + 1}" for i, s in enumerate(students) if s.name in answered}
    link = lambda name: f'<a href="#{anchors[name]}">{h(name)}</a>' if name in anchors else h(name)  # noqa: E731
    pts = points_str(question.points)
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(question.id)}: written answers</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<nav>" + "".join(f'<a href="{h(q.id)}.html">{h(q.id)}</a>' for q in questions.questions) + "</nav>",
        f"<h1>{h(question.id)} ({pts} points): {h(question.title)}</h1>",
        f'<p class="meta">{len(students)} students \u00b7 '
        f'{"anonymous (codes, in code order)" if anonymous else "named"} \u00b7 '
        f"questions {h(questions.version)} (sha256 {h(questions.sha256[:12])})</p>",
        "<h2>Question</h2>", f'<p class="prompt">{h(question.prompt)}</p>',
        "<h2>Rubric (TA only)</h2>", "<table>", "<tr><th>points</th><th>award for</th></tr>",
        *[f"<tr><td>{points_str(item.points)}</td><td>{h(item.text)}</td></tr>" for item in question.rubric],
        f"<tr><th>{pts}</th><th>total</th></tr>", "</table>",
        "<h2>Flags</h2>",
        f"<h3>Possible copying ({h(_threshold_text(questions))})</h3>",
    ]
    rows = _pair_rows(pairs)
    if rows:
        out += ["<table>", "<tr><th>student</th><th>student</th><th>similarity</th></tr>",
                *[f"<tr><td>{link(a)}</td><td>{link(b)}</td><td>{h(sim)}</td></tr>" for a, b, sim in rows],
                "</table>"]
    else:
        out.append("<p>none</p>")
    for kind in FLAG_ORDER[1:]:
        if kind in UNANSWERED_KINDS:
            continue       # listed with their reasons under "Without an answer"
        names = [s.name for s in students if any(f.kind == kind and f.question == question.id for f in s.flags)]
        if names:
            out.append(f"<p><b>{h(FLAG_KINDS[kind])}</b> ({len(names)}): " + ", ".join(link(n) for n in names) + "</p>")
    missing = _unanswered(students, question)
    shown = _answered(students, question)
    out.append(f"<h3>Without an answer ({len(missing)})</h3>")
    if missing:
        out += ["<ul>", *[_unanswered_html(*group) for group in _grouped(missing)], "</ul>"]
    else:
        out.append("<p>none</p>")
    out.append(f"<h2>Answers ({len(shown)})</h2>")
    for s in shown:
        answer = s.answers[question.id]
        out += [f'<article id="{anchors[s.name]}">', f"<h3>{h(s.name)}</h3>"]
        out.append(f'<p class="where">{h(answer.location)} \u00b7 heading <code>{h(answer.heading)}</code>'
                   + (f' \u00b7 <span class="how">{h(answer.how)}</span>' if answer.how else "") + "</p>")
        flags = _flags_for(s, question)
        if flags:
            out += ["<ul>", *[f'<li class="flag">{h(FLAG_KINDS[f.kind])}: {h(f.message)}</li>' for f in flags], "</ul>"]
        out.append(f'<div class="answer">{answer_html(answer.text)}</div>')
        for location, heading, text in answer.others:
            out += [f'<p class="where">also found: {h(location)} \u00b7 heading <code>{h(heading)}</code></p>',
                    f'<div class="answer">{answer_html(text)}</div>']
        out += [f'<p class="mark">points: ____ / {pts}</p>', "</article>"]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def question_markdown(question: Question, questions: Questions, students: list[StudentAnswers],
                      pairs: list[Pair], anonymous: bool) -> str:
    """The Markdown twin of ``question_html`` (answers verbatim in fenced blocks)."""
    pts = points_str(question.points)
    out = [f"# {question.id} ({pts} points): {md(question.title)}", "",
           f"{len(students)} students \u00b7 {'anonymous (codes, in code order)' if anonymous else 'named'} \u00b7 "
           f"questions {md(questions.version)} (sha256 {questions.sha256[:12]})", "",
           "## Question", "", f"> {md(question.prompt)}", "",
           "## Rubric (TA only)", "", "| points | award for |", "|---|---|",
           *[f"| {points_str(item.points)} | {md(item.text)} |" for item in question.rubric],
           f"| **{pts}** | total |", "", "## Flags", "",
           f"Possible copying ({md(_threshold_text(questions))}):", ""]
    rows = _pair_rows(pairs)
    if rows:
        out += ["| student | student | similarity |", "|---|---|---|",
                *[f"| {md(a)} | {md(b)} | {md(sim)} |" for a, b, sim in rows]]
    else:
        out.append("none")
    out.append("")
    for kind in FLAG_ORDER[1:]:
        if kind in UNANSWERED_KINDS:
            continue       # listed with their reasons under "Without an answer"
        names = [s.name for s in students if any(f.kind == kind and f.question == question.id for f in s.flags)]
        if names:
            out += [f"- **{md(FLAG_KINDS[kind])}** ({len(names)}): {', '.join(md(n) for n in names)}"]
    missing = _unanswered(students, question)
    shown = _answered(students, question)
    out += ["", f"### Without an answer ({len(missing)})", ""]
    out += [_unanswered_md(*group) for group in _grouped(missing)] or ["none"]
    out += ["", f"## Answers ({len(shown)})", ""]
    for s in shown:
        answer = s.answers[question.id]
        out += [f"### {md(s.name)}", ""]
        out += [f"{md(answer.location)} \u00b7 heading: {md(answer.heading)}"
                + (f" \u00b7 {md(answer.how)}" if answer.how else ""), ""]
        flags = _flags_for(s, question)
        out += [f"- {md(FLAG_KINDS[f.kind])}: {md(f.message)}" for f in flags] + ([""] if flags else [])
        out += [*md_block(answer.text), ""]
        for location, heading, text in answer.others:
            out += [f"also found: {md(location)} \u00b7 heading: {md(heading)}", "", *md_block(text), ""]
        out += [f"**points: \\_\\_\\_\\_ / {pts}**", ""]
    return "\n".join(out)


def manual_template(names: list[str], questions: Questions) -> str:
    """``manual_template.csv``: a row per (student or code, question), points and comment empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name in names:
        for question in questions.questions:
            writer.writerow([safe_cell(name), question.id, "", ""])
    return buf.getvalue()
