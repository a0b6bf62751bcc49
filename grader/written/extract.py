"""Finding each student's written answers in a prepared workdir, as text (nothing is imported,
compiled or parsed as Python: the module docstring and comments come from ``tokenize``).

Where answers are looked for, in this order (the handout, section 9):

* a notebook (``notebook_markdown.md``, written by the intake): markdown cells headed ``## Q1``;
* a ``.py`` submission: ``ANSWERS.md`` (or ``answers.md``) beside it;
* write-ups: files handed in beside the code (``alice.pdf``, ``alice.md``, ``alice.txt``,
  ``alice.tex``: the intake's ``writeup_dir``), PDFs of a folder or zip, its ``.tex`` files, and
  the ``.md``, ``.txt`` and ``.ipynb`` files beside its code (``report.md``, ``answers.txt``, the
  markdown cells of ``written.ipynb``; not ``README.*``, ``requirements*.txt``, ``LICENSE*``);
  a PDF's text comes from ``grader.written.pdf`` (pypdf in a child process under limits), page by
  page; a PDF without a text layer is flagged ``no_text_layer`` ("mark from the PDF"), never
  read as empty; LaTeX is read line for line (``\\section*{1. ...}`` as a heading, see ``tex_lines``);
* the module docstring of a ``.py``, with the same headings;
* then, as a fallback that is always flagged: comments in the code (``# ## Q1`` in a notebook
  code cell or in the .py), and any other Markdown or text file of the submission.

A heading is *well-formed* when the line is ``## Q<n>`` (optionally followed by a title). Other
spellings (``Q 1``, ``Question 1``, ``**Q1**``, ``# q1``, ``### Q1``) are accepted as headings but
flagged ``misheaded``, so that the TA sees the answer and decides. In the notebook's markdown,
ANSWERS.md and write-ups that use no Q-label, answers are also found the way a TA finds them
(``_markers``): by the course's numbering (``questions.toml``: each question's ``number`` and
``section``) in headings and lines (``### 1.``, ``1.``, ``1)``, ``**1. What is ...?**``,
``Problem 1(a)``; an ordered list inside an answer is not a new answer, and an empty ``3.`` is an
empty answer), and by headings that restate a question's text (``grader.written.wording``). Each
answer records how it was matched (``Answer.how``) and its source (file, page, line).

An answer runs from its heading to the next question heading, to a section heading (``Part II``),
or to the next Markdown heading of the same or a higher level (``## GAN losses`` ends a ``## Q1``
answer; ``### Part (a)`` does not).
"""
from __future__ import annotations

import io
import os
import re
import stat
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake import NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN, markdown_of_notebook
from grader.intake.cells import CELL_MARKER_RE as CODE_CELL_RE
from grader.intake.cells import MARKDOWN_CELL_MARKER_RE as CELL_COMMENT_RE
from grader.written.pdf import extract_pdf_text
from grader.written.questions import Question, Questions
from grader.written.wording import question_of, restates

ANSWER_FILES = ("ANSWERS.md", "answers.md")   # beside the code, in this order of preference
MAX_FILE_BYTES = 2 * 1024 * 1024              # read at most this much of any one file
MAX_ANSWER_CHARS = 20_000                     # longer answers are cut (and flagged)
MAX_OTHER_FILES = 50                          # other .md/.txt files searched as a fallback (and write-ups read)
MAX_PDF_BYTES = 64 * 1024 * 1024              # a PDF write-up larger than this is not read
MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024         # nor a notebook beside the code (its saved outputs can be large)
MAX_SHOWN = 5                                 # other answers to one question, unknown headings shown
SHORT_HEADING_WORDS = 10                      # a plain numbered line this short may restate its question
HEAD_CHARS = 120                              # a heading's label must start within this many characters

FLAG_KINDS = {
    "missing": "no answer",
    "empty": "empty answer",
    "misheaded": "wrong heading",
    "code_heading": "answer in a code comment",
    "misplaced": "answer in an unexpected file",
    "extra_answer": "more than one answer",
    "unknown_question": "heading of an unknown question",
    "truncated": "answer cut",
    "unreadable": "file not readable",
    "no_text_layer": "no text layer: mark from the PDF",
    "copied": "near-duplicate of another student's answer",
}

PROPER_RE = re.compile(r"^ {0,3}## +Q([1-9][0-9]?)(?![0-9A-Za-z_])(?P<rest>.*)$")
LOOSE_RE = re.compile(
    r"^\s{0,3}(?P<hashes>#{1,6})?\s*(?P<open>[*_]{1,3})?\s*(?:question|q)\s*[.#]?\s*(?P<num>[0-9]{1,2})"
    r"(?![0-9A-Za-z])\s*(?P<close>[*_]{1,3})?(?P<rest>.*)$", re.IGNORECASE)
HASH_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:\s|$)")
FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SEPARATORS = ".:)]-\u2013\u2014"
PLACEHOLDER_RE = re.compile(r"<!--.{0,5000}?-->|\b(?:todo|tbd|your answer here|answer here|write your answer here)\b"
                            r"|\.\.\.|\u2026", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Answer:
    question: str              # "Q1"
    text: str                  # the answer as written (Markdown, LaTeX), "" when empty
    location: str              # "notebook markdown cell 16", "ANSWERS.md line 3", ...
    heading: str               # the heading line as written
    well_formed: bool          # headed ``## Q<n>`` where answers belong
    others: tuple[tuple[str, str, str], ...] = ()   # other answers found: (location, heading, text)
    how: str = ""              # how it was matched to the question ("matched by number 1 under section I")
    file: str = ""             # its source: the file ("report.pdf", "ANSWERS.md", "notebook_markdown.md") ...
    page: int | None = None    # ... the page, for a PDF ...
    line: int | None = None    # ... and the heading's line (in the page, for a PDF; None for a notebook cell)


@dataclass(frozen=True)
class Flag:
    kind: str                  # a key of FLAG_KINDS
    question: str | None       # None when it concerns no one question
    message: str

    def __post_init__(self) -> None:
        if self.kind not in FLAG_KINDS:
            raise ValueError(f"unknown flag kind {self.kind!r}; known: {', '.join(FLAG_KINDS)}")


@dataclass
class _Candidate:
    number: int
    text: str
    location: str
    heading: str
    proper: bool               # ``## Q<n>``
    code: bool                 # found in a code comment
    expected: bool             # in a place where answers belong
    source_rank: int           # order of the source (0 is where answers belong)
    position: int              # line in the source
    cut: bool = False
    how: str = ""
    where: tuple[str, int | None, int | None] = ("", None, None)   # (file, page, line)


@dataclass
class _Source:
    label: str                 # "ANSWERS.md", "notebook markdown", "module docstring of solution.py", ...
    lines: list[str]
    locate: object             # callable(index) -> location text
    rank: int
    code: bool = False         # comments: any heading is flagged
    expected: bool = True      # a place where answers belong
    raw: list[str] | None = None   # the lines as written, when ``lines`` are derived (comments)
    unknown_flags: list[Flag] = field(default_factory=list)
    where: object = None       # callable(index) -> (file, page, line); None: (label, None, index + 1)
    plain: bool = False        # text without Markdown (a PDF's or a .txt's): a line ending in "?" may be a heading
    numbering: bool = False    # the course's numbering and the questions' text are read (not in code, not fallbacks)


# --------------------------------------------------------------------------------------------
# Reading files (the workdir is the intake's private copy; still never follow a link)
# --------------------------------------------------------------------------------------------

def _read_start(path: Path, limit: int) -> tuple[bytes | None, str | None]:
    """``(data, problem)``: up to ``limit + 1`` bytes of a regular file, never through a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"{path.name} could not be opened: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"{path.name} is not a regular file"
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1), None
    finally:
        os.close(fd)


def _read_bytes(path: Path, limit: int) -> tuple[bytes | None, str | None]:
    """``(data, problem)``: at most ``limit`` bytes of a regular file, never through a link."""
    data, problem = _read_start(path, limit)
    if data is not None and len(data) > limit:
        return None, f"{path.name} is larger than {limit // (1024 * 1024)} MiB: not read"
    return data, problem


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """``(text, problem)``: the file's text (UTF-8; undecodable bytes replaced), at most
    MAX_FILE_BYTES of it; text None when it cannot be read."""
    data, problem = _read_start(path, MAX_FILE_BYTES)
    if data is None:
        return None, problem
    problem = None
    if len(data) > MAX_FILE_BYTES:
        data = data[:MAX_FILE_BYTES]
        problem = f"{path.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: only its start was read"
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if "\ufffd" in text and problem is None:
        problem = f"{path.name} is not valid UTF-8: undecodable bytes are shown as \ufffd"
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd"), problem


# --------------------------------------------------------------------------------------------
# Headings and sections
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Heading:
    number: int | None         # the question number (Q-label), None for another Markdown heading
    level: int                 # number of '#' (0: bold or plain text)
    proper: bool
    rest: str                  # what follows the label on the heading line
    kind: str = "qlabel"       # "qlabel" (Q1, Question 1) | "numbered" (1., Problem 1(a)) | "section" | "other"
    label: str = ""            # "numbered": the course number as written ("1", "1a")
    strong: bool = False       # "numbered": styled (#, bold, italic) or with a word (Problem 1), not a bare "1."
    emphasised: bool = False   # the whole line is bold or italic (``**1. What is ...?**``)
    part: str = ""             # "numbered": a sub-part letter (``1(a)`` -> "a")
    bare: bool = False         # "numbered": a plain text's "1 Generative modelling" (a typeset section
    #                            number, a space, a title): a heading only if the title restates the question


NUMBERED_RE = re.compile(
    r"^(?P<indent>\s{0,3})(?P<hashes>#{1,6}\s+)?(?P<open>[*_]{1,3})?\s*(?P<word>(?:problem|exercise|task|ex\.)\s*)?"
    r"\(?(?P<num>[0-9]{1,2})(?:\s*\(?(?P<part>[a-h])\)|(?P<dot>\.)(?P<sub>[0-9a-h])(?![0-9]))?"
    r"(?P<sep>\s*[.:)\]](?![0-9])|\s*(?=[*_]{1,3}(?:\s|$))|(?=\s*$)|\s+(?=\S))(?P<close>[*_]{1,3})?(?P<rest>.*)$", re.IGNORECASE)
SECTION_RE = re.compile(
    r"^\s{0,3}(?:#{1,6}\s+)?[*_]{0,3}\s*(?:(?:part|section|chapter|unit)\s+(?P<label>[0-9]{1,2}|[ivxlc]{1,6}|[a-h])"
    r"|(?P<roman>[ivx]{1,5}))(?P<sep>[.:)]|\s*[-\u2013\u2014]|\s*$|\s+(?=[A-Z]))[*_]{0,3}\s*(?P<rest>.*)$", re.IGNORECASE)
EMPHASIS_RE = re.compile(r"^\s{0,3}(?:#{1,6}\s+)?(\*\*|__|\*|_)(?=\S).*\S\1\s*$")


def _heading(line: str, plain: bool = False) -> _Heading | None:
    head = line[:HEAD_CHARS]   # every label sits near the start: bounded matching time
    match = PROPER_RE.match(line)
    if match:
        return _Heading(int(match.group(1)), 2, True, match.group("rest").strip())
    match = LOOSE_RE.match(head)
    if match:
        rest = line[match.start("rest"):]
        styled = match.group("hashes") or match.group("open")
        after = rest.lstrip(" \t*_")
        if styled or not after or after[0] in SEPARATORS:
            level = len(match.group("hashes") or "")
            return _Heading(int(match.group("num")), level, False, after.lstrip(SEPARATORS + " \t*_").rstrip(" *_"))
    match = SECTION_RE.match(head)
    if match and (match.group("label") or (match.group("roman") and match.group("sep").strip() in (".", ":", ")"))):
        hashes = HASH_HEADING_RE.match(line)
        return _Heading(None, len(hashes.group(1)) if hashes else 0, False, line[match.start("rest"):].strip(" *_"),
                        kind="section", label=(match.group("label") or match.group("roman")))
    match = NUMBERED_RE.match(head)
    if match and not (match.group("dot") and not match.group("hashes") and not match.group("word")):
        rest = line[match.start("rest"):]
        hashes, word = match.group("hashes"), match.group("word")
        styled = bool(hashes or match.group("open") or word)
        sep = match.group("sep").strip()
        if styled or sep in (".", ")"):
            emphasised = len(line) <= HEAD_CHARS * 4 and bool(EMPHASIS_RE.match(line))
            if not match.group("indent") or styled:
                part = (match.group("part") or match.group("sub") or "").lower()
                label = match.group("num") + (match.group("part") or "").lower()   # 2b may be a question; 2.1 a part of 2
                return _Heading(None, len(hashes.strip()) if hashes else 0, False, rest.strip().strip("*_").strip(),
                                kind="numbered", label=label, strong=styled, emphasised=emphasised,
                                part=part)
        elif plain and not sep and not match.group("indent") and 0 < len(rest.split()) <= SHORT_HEADING_WORDS:
            return _Heading(None, 0, False, rest.strip(), kind="numbered",
                            label=match.group("num") + (match.group("part") or "").lower(), bare=True)
    match = HASH_HEADING_RE.match(line)
    if match:
        return _Heading(None, len(match.group(1)), False, line[match.end():].strip().strip("#").strip(), kind="other")
    if len(line) <= HEAD_CHARS * 2 and EMPHASIS_RE.match(line):
        return _Heading(None, 0, False, line.strip().strip("*_").strip(), kind="other", emphasised=True)
    if plain and line.rstrip().endswith("?") and len(line) <= HEAD_CHARS * 2:
        return _Heading(None, 0, False, line.strip(), kind="other")
    return None


def _is_empty(text: str) -> bool:
    return not re.search(r"\w", PLACEHOLDER_RE.sub(" ", text))


def _clean_body(lines: list[str]) -> str:
    lines = [("" if CELL_COMMENT_RE.match(line) else line) for line in lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and re.fullmatch(r"\s*(=+|-+)\s*", lines[0]):   # a setext underline
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() for line in lines)


def _scan_headings(source: _Source) -> list[tuple[int, _Heading]]:
    headings: list[tuple[int, _Heading]] = []
    fence = ""
    for index, line in enumerate(source.lines):
        if line is None:       # a line of code between comments
            fence = ""
            continue
        match = FENCE_RE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
            continue
        if match:
            fence = match.group(1)
            continue
        heading = _heading(line, plain=source.plain)
        if heading is not None:
            headings.append((index, heading))
    return headings


@dataclass
class _Marker:
    index: int
    heading: _Heading
    question: Question | None      # None: a boundary (a section, an unknown question)
    how: str = ""


def _next_question(questions: Questions, current: Question | None) -> Question | None:
    order = list(questions.questions)
    if current is None:
        return None
    position = order.index(current)
    return order[position + 1] if position + 1 < len(order) else None


def _markers(source: _Source, questions: Questions, headings: list[tuple[int, _Heading]]) -> list[_Marker]:
    """Where answers start (and sections end them), read the way a TA reads a report.

    ``## Q1`` and the other Q-labels always count. Where the course's numbering is read (the
    notebook's markdown, ANSWERS.md, write-ups: not code, not other files) and the source uses no
    Q-label: a numbered heading in the course's numbering (``### 1.``, ``**1. ...**``,
    ``Problem 1(a)``; a sub-part ``1(b)`` continues the answer to 1), a typeset section of a PDF or
    text file (``1 Generative modelling``) that restates the question, a plain numbered line
    (``1.``, ``1)``) when it restates the question, is empty (``3.``), opens the first answer or
    the next question's, else it is an item of an ordered list inside the answer; and a heading
    that restates a question's text (``grader.written.wording``).
    """
    numbering = source.numbering and not any(h.kind == "qlabel" for _, h in headings)
    markers: list[_Marker] = []
    section: str | None = None
    current: Question | None = None
    list_next: int | None = None
    for index, h in headings:
        if h.kind == "qlabel":
            q = questions.by_number(h.number)
            how = (f"matched by its heading ## Q{h.number}" if h.proper and not source.code
                   else f"matched by the label Q{h.number}")
            markers.append(_Marker(index, h, q, how))
            current, list_next = q, None
            continue
        if not numbering:
            continue
        if h.kind == "section":
            section, current, list_next = h.label, None, None
            markers.append(_Marker(index, h, None))
            continue
        if h.kind == "numbered":
            q = questions.by_label(h.label, section)
            if q is None or (h.part and current is q):
                continue       # a list item, a number of no question, or a sub-part of the open answer
            restated = restates(q, h.rest)
            if h.bare and not restated:
                continue           # "2 times larger.": a line of the answer
            if not h.strong and restated and not (h.rest.endswith("?") or len(h.rest.split()) <= SHORT_HEADING_WORDS):
                restated = False   # a list item that talks about the question is not its heading
            number = int(re.match(r"\d+", h.label).group(0))
            if not h.strong and q is current:
                list_next = number + 1
                continue           # "1." inside the answer to 1: an ordered list
            if not h.strong and not restated and h.rest:
                if list_next is not None and number == list_next:
                    list_next += 1
                    continue
                if current is not None and q is not _next_question(questions, current):
                    list_next = number + 1
                    continue
            where = f" under section {section}" if section is not None else ""
            how = f"matched by number {h.label}{where}" + (" and the question's text" if restated else "")
            markers.append(_Marker(index, h, q, how))
            current, list_next = q, None
            continue
        q = question_of(questions, h.rest) if h.rest else None
        if q is not None:
            markers.append(_Marker(index, h, q, "matched by the question's text"))
            current, list_next = q, None
    return markers


def _sections(source: _Source, questions: Questions) -> list[_Candidate]:
    """Every question heading of ``source`` with the text under it."""
    headings = _scan_headings(source)
    markers = _markers(source, questions, headings)
    starts = {m.index for m in markers}
    position = {index: k for k, (index, _) in enumerate(headings)}
    out = []
    for k, marker in enumerate(markers):
        index, heading = marker.index, marker.heading
        if marker.question is None:
            if heading.kind == "qlabel" and (heading.proper or heading.level or not source.code):
                source.unknown_flags.append(Flag(
                    "unknown_question", None,
                    f"`{(source.raw or source.lines)[index].strip()}` ({source.locate(index)}) names no question of this "
                    f"assignment ({', '.join(questions.ids())}): not graded"))
            continue
        own = heading.level if heading.level else 2
        end = len(source.lines)
        for next_index, other in headings[position[index] + 1:]:
            if next_index in starts or (other.level and other.level <= own and other.kind in ("other", "numbered")):
                end = next_index
                break
        body = source.lines[index + 1:end]
        if source.code:   # a comment answer runs to the end of its block of comment lines
            body = body[:next((i for i, line in enumerate(body) if line is None), len(body))]
        text = _clean_body([line for line in body if line is not None])
        rest = heading.rest
        if heading.kind != "qlabel" and (heading.emphasised or heading.kind == "other" or rest.endswith("?")
                                         or restates(marker.question, rest)):
            rest = ""            # the question restated on the heading line, not the answer
        if not text and heading.level == 0 and rest:
            text = rest      # "**Q1.** The answer on the heading's line"
        elif heading.level == 0 and rest:
            text = rest + "\n\n" + text
        cut = len(text) > MAX_ANSWER_CHARS
        where = source.where(index) if source.where else (source.label, None, index + 1)
        out.append(_Candidate(
            number=marker.question.number, text=text[:MAX_ANSWER_CHARS], location=source.locate(index),
            heading=(source.raw or source.lines)[index].strip(), proper=heading.proper and not source.code, code=source.code,
            expected=source.expected, source_rank=source.rank, position=index, cut=cut, how=marker.how, where=where))
    return out


# --------------------------------------------------------------------------------------------
# Sources: markdown files, the notebook's markdown, a module docstring, comments
# --------------------------------------------------------------------------------------------

def _markdown_source(label: str, text: str, rank: int, expected: bool = True, numbering: bool = False,
                     plain: bool = False) -> _Source:
    return _Source(label, text.split("\n"), lambda i: f"{label} line {i + 1}", rank, expected=expected,
                   numbering=numbering, plain=plain)


TEX_HEADING_RE = re.compile(r"^(\s*)\\(section|subsection|subsubsection|paragraph|subparagraph)\*?\s*\{(.*)\}\s*$")
TEX_BOLD_RE = re.compile(r"^(\s*)\\(?:textbf|textit|emph)\s*\{(.*)\}\s*$")
TEX_COMMENT_RE = re.compile(r"(?<!\\)%.*$")
TEX_LEVELS = {"section": "#", "subsection": "##", "subsubsection": "###", "paragraph": "####", "subparagraph": "#####"}


def tex_lines(text: str) -> list[str]:
    """A LaTeX write-up, line for line (line numbers are kept), as the Markdown the headings are
    read from: ``\\section*{1. ...}`` is ``# 1. ...``, a line that is all ``\\textbf{...}`` is
    ``**...**``, comments are dropped, and the preamble (before ``\\begin{document}``) and
    everything after ``\\end{document}`` are blank. Math and every other command stay as written."""
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if line.strip().startswith("\\begin{document}")), None)
    out = []
    inside = begin is None
    for index, line in enumerate(lines):
        if begin is not None and index == begin:
            inside = True
            out.append("")
            continue
        if line.strip().startswith("\\end{document}"):
            inside = False
        if not inside:
            out.append("")
            continue
        line = TEX_COMMENT_RE.sub("", line).rstrip()
        match = TEX_HEADING_RE.match(line)
        if match:
            line = f"{TEX_LEVELS[match.group(2)]} {match.group(3).strip()}"
        else:
            match = TEX_BOLD_RE.match(line)
            if match and match.group(2).strip():
                line = f"**{match.group(2).strip()}**"
        out.append(line)
    return out


def _tex_source(label: str, text: str, rank: int) -> _Source:
    return _Source(label, tex_lines(text), lambda i: f"{label} line {i + 1}", rank, numbering=True,
                   raw=text.split("\n"))


def _pdf_source(label: str, pages: list[str], rank: int) -> _Source:
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    for number, page in enumerate(pages, start=1):
        page_lines = page.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd").split("\n")
        for line_number, line in enumerate(page_lines, start=1):
            lines.append(line)
            where.append((number, line_number))
        lines.append("")           # a page break ends no answer, but keeps the pages' lines apart
        where.append((number, len(page_lines) + 1))
    return _Source(label, lines, lambda i: f"{label} page {where[i][0]}, line {where[i][1]}", rank, numbering=True,
                   plain=True, where=lambda i: (label, where[i][0], where[i][1]))


def _notebook_source(text: str, rank: int, numbering: bool = False, name: str | None = None) -> _Source:
    """The notebook's markdown cells (``name``: a notebook handed in beside the code, else the
    submission's own, ``notebook_markdown.md``)."""
    label = f"{name} markdown" if name else "notebook markdown"
    lines = text.split("\n")
    cells, current = [], None
    for line in lines:
        match = CELL_COMMENT_RE.match(line)
        if match:
            current = int(match.group(1))
        cells.append(current)
    return _Source(f"{label} cells", lines,
                   lambda i: f"{label} cell {cells[i]}" if cells[i] else f"{label} line {i + 1}",
                   rank, numbering=numbering, where=lambda i: (name or "notebook markdown", None, None))


def _tokens(text: str) -> tuple[list[tokenize.TokenInfo], int]:
    """The tokens of ``text`` up to the first tokenizer error, and the last line they reached."""
    tokens: list[tokenize.TokenInfo] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            tokens.append(token)
    except (tokenize.TokenError, SyntaxError):
        pass
    return tokens, (tokens[-1].end[0] if tokens else 0)


def _string_value(literal: str) -> str | None:
    """A str literal's text as the student wrote it (``\\\\`` and escaped quotes undone, other
    escapes such as ``\\frac`` kept as written); None for bytes and f-strings."""
    prefix = re.match(r"^[A-Za-z]*", literal).group(0).lower()
    if "b" in prefix or "f" in prefix:
        return None
    body = literal[len(prefix):]
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    body = body[len(quote):len(body) - len(quote)]
    if "r" in prefix:
        return body
    keep = {"\n": "", "\\": "\\", '"': '"', "'": "'"}
    return re.sub(r"\\(.)", lambda m: keep.get(m.group(1), m.group(0)), body, flags=re.DOTALL)


SKIP_TOKENS = (tokenize.ENCODING, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT)


def _docstring(tokens: list[tokenize.TokenInfo]) -> tuple[str, int] | None:
    """The module docstring and the line it starts on, from the token stream."""
    significant = [t for t in tokens if t.type not in SKIP_TOKENS]
    if not significant or significant[0].type != tokenize.STRING:
        return None
    parts, first_line = [], significant[0].start[0]
    for token in significant:
        if token.type != tokenize.STRING:
            if token.type != tokenize.ENDMARKER and token.start[0] == parts[-1][1]:
                return None      # "...".join(x): an expression, not a docstring
            break
        value = _string_value(token.string)
        if value is None:
            return None
        parts.append((value, token.end[0]))
    return "".join(p for p, _ in parts), first_line


def _comment_lines(text: str, tokens: list[tokenize.TokenInfo], reached: int) -> list[str | None]:
    """One entry per line of ``text``: the text of a whole-line comment (without ``#`` and one
    space), else None. Lines the tokenizer did not reach are read as plain lines."""
    lines = text.split("\n")
    out: list[str | None] = [None] * len(lines)
    for token in tokens:
        if token.type == tokenize.COMMENT and not token.line[:token.start[1]].strip():
            out[token.start[0] - 1] = token.string[1:].removeprefix(" ")
    for index in range(reached, len(lines)):
        stripped = lines[index].lstrip()
        if stripped.startswith("#"):
            out[index] = stripped[1:].removeprefix(" ")
    return out


def _code_source(name: str, text: str, tokens: list[tokenize.TokenInfo], reached: int, rank: int,
                 notebook: bool) -> _Source:
    comments = _comment_lines(text, tokens, reached)
    raw_lines = text.split("\n")
    cells, current, start = [], None, 0
    for index, line in enumerate(raw_lines):
        match = CODE_CELL_RE.match(line.rstrip())
        if match:
            current, start = int(match.group(1)), index
        cells.append((current, index - start))
    if notebook:
        comments = [None if c is not None and CODE_CELL_RE.match("# " + c) else c for c in comments]
        locate = (lambda i: f"a comment in notebook code cell {cells[i][0]}, line {cells[i][1]}"
                  if cells[i][0] else f"a comment in {name} line {i + 1}")
    else:
        locate = lambda i: f"a comment in {name} line {i + 1}"  # noqa: E731
    # _sections sees every line; non-comment lines are None and end a comment answer
    return _Source(f"comments of {name}", comments, locate, rank, code=True, expected=False, raw=raw_lines)


# --------------------------------------------------------------------------------------------
# Choosing the answers
# --------------------------------------------------------------------------------------------

def _sort_key(c: _Candidate) -> tuple:
    """The answer shown first: a non-empty one, where answers belong, well headed, earliest."""
    return (_is_empty(c.text), c.code, not c.expected, not c.proper, c.source_rank, c.position)


def _other_files(workdir: Path, skip: set[str]) -> list[str]:
    found = []
    for root, dirs, files in os.walk(workdir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), workdir).replace(os.sep, "/")
            if rel not in skip and name.lower().endswith((".md", ".markdown", ".txt")):
                found.append(rel)
    return found[:MAX_OTHER_FILES]


WRITEUP_ANYWHERE = (".tex", ".pdf")
WRITEUP_BESIDE = (".md", ".markdown", ".txt", ".ipynb")
NOT_WRITEUPS_RE = re.compile(r"(readme|requirements|license|licence|changelog|copying)\b", re.IGNORECASE)


def _writeup_files(workdir: Path, skip: set[str]) -> list[str]:
    """The write-ups in a workdir: LaTeX and PDF files anywhere (the intake keeps PDFs out of it,
    in the submission's ``writeup_dir``; one found here is read all the same), and the Markdown,
    text and notebook files beside the code (at the top: the intake unwraps a folder), except
    those in ``skip`` and the project files (``NOT_WRITEUPS_RE``). Other Markdown and text files
    deeper down stay fallbacks (``_other_files``)."""
    found = []
    for root, dirs, files in os.walk(workdir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        top = os.path.samefile(root, workdir)
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), workdir).replace(os.sep, "/")
            lower = name.lower()
            if rel in skip or name.startswith("."):
                continue
            if lower.endswith(WRITEUP_ANYWHERE) or (top and lower.endswith(WRITEUP_BESIDE)
                                                    and not NOT_WRITEUPS_RE.match(name)):
                found.append(rel)
    return found[:MAX_OTHER_FILES]


def _find_others(workdir: Path, skip: set[str]) -> tuple[list[str], list[str]]:
    """Other text files (fallback sources), and files that look like answers but cannot be read
    (``answers.pdf``, ``Q1.docx``)."""
    texts = _other_files(workdir, skip)
    unreadable = []
    for root, dirs, files in os.walk(workdir, followlinks=False):
        dirs[:] = sorted(dirs)
        for name in sorted(files):
            stem, _, suffix = name.lower().rpartition(".")
            if suffix in ("doc", "docx", "odt", "rtf", "html", "htm", "png", "jpg", "jpeg") and (
                    "answer" in stem or "written" in stem or re.fullmatch(r"q[0-9]+.*", stem)):
                unreadable.append(os.path.relpath(os.path.join(root, name), workdir).replace(os.sep, "/"))
    return texts, unreadable


def extract_answers(workdir: Path | None, kind: str, entry: str | None,
                    questions: Questions | None = None, *, writeup_dir: Path | None = None,
                    writeups: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Answer], list[Flag]]:
    """``({question id: Answer}, flags)`` for one prepared submission (see the module docstring).

    ``kind`` is the submission's kind ("py", "ipynb", "zip", "folder") and ``entry`` the file
    the grader loads (``notebook_solution.py`` for a notebook). ``writeups`` are the write-ups
    the intake kept in ``writeup_dir`` (``Submission.writeups``: files handed in beside the code,
    PDFs of a folder or zip); ``workdir`` is None when only those were handed in. Never raises for
    anything in them; a question without an answer is absent from the dict and has a ``missing``
    flag (``no_text_layer`` when a PDF without text may hold it).
    """
    if questions is None:
        from grader.written.questions import load_questions
        questions = load_questions()
    flags: list[Flag] = []
    sources: list[_Source] = []
    textless: list[str] = []
    if workdir is None:
        workdir = Path(os.devnull)   # no code handed in: only the write-ups are read
        entry = None
    workdir = Path(workdir)
    has_workdir = workdir.is_dir()
    notebook = has_workdir and (kind == "ipynb" or entry == NOTEBOOK_ENTRY) and (workdir / NOTEBOOK_MARKDOWN).is_file()
    used = set()
    rank = 0

    def read(rel: str, folder: Path = workdir) -> str | None:
        text, problem = _read_text(folder / rel)
        if problem:
            flags.append(Flag("unreadable", None, problem))
        return text

    def writeup(folder: Path, rel: str) -> None:
        nonlocal rank
        lower = rel.lower()
        if lower.endswith(".ipynb"):
            data, problem = _read_bytes(folder / rel, MAX_NOTEBOOK_BYTES)
            if data is None:
                flags.append(Flag("unreadable", None, problem))
                return
            try:
                text = markdown_of_notebook(data, rel)
            except Exception as exc:  # noqa: BLE001 - intake's refusal (not a notebook): the TA opens it
                flags.append(Flag("unreadable", None, f"{rel} could not be read as a notebook: {exc}"))
                return
            sources.append(_notebook_source(text, rank, numbering=True, name=rel))
        elif lower.endswith(".pdf"):
            data, problem = _read_bytes(folder / rel, MAX_PDF_BYTES)
            if data is None:
                flags.append(Flag("unreadable", None, problem))
                return
            result = extract_pdf_text(data)
            if result.problem:
                flags.append(Flag("unreadable", None, f"{rel} could not be read: {result.problem}: mark from the PDF"))
                textless.append(rel)
                return
            if result.no_text:
                flags.append(Flag("no_text_layer", None, f"{rel} has {len(result.pages)} pages and no text layer "
                                                        "(a scan?): mark its answers from the PDF"))
                textless.append(rel)
                return
            if result.cut:
                flags.append(Flag("truncated", None, f"{rel}: only its first pages were read"))
            sources.append(_pdf_source(rel, result.pages, rank))
        else:
            text = read(rel, folder)
            if text is None:
                return
            if lower.endswith(".tex"):
                sources.append(_tex_source(rel, text, rank))
            else:
                sources.append(_markdown_source(rel, text, rank, numbering=True, plain=lower.endswith(".txt")))
        rank += 1

    if notebook:
        used.add(NOTEBOOK_MARKDOWN)
        text = read(NOTEBOOK_MARKDOWN)
        if text is not None:
            sources.append(_notebook_source(text, rank, numbering=True))
        rank += 1
    present = [name for name in ANSWER_FILES if has_workdir and (workdir / name).is_file()]
    # on a case-insensitive file system both names are one file
    if len(present) == 2 and os.path.samefile(workdir / present[0], workdir / present[1]):
        present = present[:1]
    present += sorted(n for n in (os.listdir(workdir) if has_workdir else ()) if n.lower() == "answers.md"
                      and n not in present and (workdir / n).is_file())
    for name in present:
        used.add(name)
        text = read(name)
        if text is not None:
            sources.append(_markdown_source(name, text, rank, numbering=True))
            rank += 1
    if writeup_dir is not None:
        for rel in sorted(writeups)[:MAX_OTHER_FILES]:
            writeup(Path(writeup_dir), rel)
    beside = _writeup_files(workdir, used | {entry or ""}) if has_workdir else []
    for rel in beside:
        used.add(rel)
        writeup(workdir, rel)
    if len(present) > 1:
        flags.append(Flag("extra_answer", None, f"several answer files: {', '.join(present)}; "
                                                f"{present[0]} is preferred"))
    if entry and has_workdir and (workdir / entry).is_file():
        used.add(entry)
        code = read(entry)
        if code is not None:
            tokens, reached = _tokens(code)
            doc = None if notebook else _docstring(tokens)
            if doc is not None:
                doc_text, first_line = doc
                label = f"module docstring of {entry}"
                sources.append(_Source(label, doc_text.split("\n"),
                                       (lambda first: lambda i: f"{label} line {first + i}")(first_line), rank))
                rank += 1
            sources.append(_code_source(entry, code, tokens, reached, rank, notebook))
            rank += 1
    others, unreadable = _find_others(workdir, used) if has_workdir else ([], [])
    for rel in others:
        text = read(rel)
        if text is not None:
            sources.append(_markdown_source(rel, text, rank, expected=False))
            rank += 1
    for rel in unreadable:
        flags.append(Flag("unreadable", None, f"{rel} may hold written answers but is not read: "
                                              "answers must be Markdown (see the handout, section 9)"))

    candidates = [c for source in sources for c in _sections(source, questions)]
    unknown = [f for source in sources for f in source.unknown_flags]
    flags.extend(unknown[:MAX_SHOWN])
    if len(unknown) > MAX_SHOWN:
        flags.append(Flag("unknown_question", None, f"{len(unknown) - MAX_SHOWN} more headings of unknown "
                                                    "questions are not listed"))
    places = ["the notebook's markdown cells"] if notebook else []
    places.append(", ".join(present) if present else "ANSWERS.md (there is none)")
    if not notebook and entry:
        places.append(f"the module docstring of {entry}" + ("" if any(s.label.startswith("module docstring")
                                                                       for s in sources) else " (there is none)"))
    if writeups or beside:
        places.append("the write-ups " + ", ".join([*sorted(writeups), *beside][:MAX_SHOWN]))
    looked = "; ".join(places)
    answers: dict[str, Answer] = {}
    for question in questions.questions:
        mine = sorted((c for c in candidates if c.number == question.number), key=_sort_key)
        if not mine and textless:
            flags.append(Flag("no_text_layer", question.id, f"no answer to {question.id} in the text; "
                                                        f"{', '.join(textless)} has no text to read: mark it from the PDF"))
            continue
        if not mine:
            flags.append(Flag("missing", question.id, f"no answer headed `## {question.id}` was found "
                                                  f"(looked in: {looked}, then code comments and other files)"))
            continue
        best = mine[0]
        others_all = [(c.location, c.heading, c.text) for c in mine[1:] if not _is_empty(c.text)]
        others_found = tuple(others_all[:MAX_SHOWN])
        answers[question.id] = Answer(question.id, best.text, best.location, best.heading,
                                      best.proper and best.expected, others_found, how=best.how,
                                      file=best.where[0], page=best.where[1], line=best.where[2])
        q = question.id
        if best.code:
            flags.append(Flag("code_heading", q, f"`{best.heading}` is {best.location}, not a markdown "
                                                 f"answer: it is shown as {q}'s answer"))
        elif not best.expected:
            flags.append(Flag("misplaced", q, f"{q}'s answer is in {best.location.rsplit(' line ', 1)[0]}, "
                                              f"not where answers belong: it is shown as {q}'s answer"))
        if not best.proper and not best.code and best.how.startswith("matched by the label"):
            flags.append(Flag("misheaded", q, f"`{best.heading}` ({best.location}) is not the heading "
                                              f"`## {q}`: it is shown as {q}'s answer"))
        if _is_empty(best.text):
            flags.append(Flag("empty", q, f"the answer under `{best.heading}` ({best.location}) is empty"))
        if best.cut:
            flags.append(Flag("truncated", q, f"{q}'s answer is longer than {MAX_ANSWER_CHARS} characters: "
                                              "only its start is shown"))
        for location, heading, _ in others_found:
            flags.append(Flag("extra_answer", q, f"another answer to {q} under `{heading}` ({location}) "
                                                 "is shown below the first"))
        if len(others_all) > MAX_SHOWN:
            flags.append(Flag("extra_answer", q, f"{len(others_all) - MAX_SHOWN} more answers to {q} are not "
                                                 "shown: see the submission"))
    return answers, flags
