"""Finding each student's written answers in a prepared workdir, as text (nothing is imported,
compiled or parsed as Python: the module docstring and comments come from ``tokenize``).

Where answers are looked for, in this order (the handout, section 9):

* a notebook (``notebook_markdown.md``, written by the intake): markdown cells headed ``## Q1``;
* a ``.py`` submission: ``ANSWERS.md`` (or ``answers.md``) beside it, else its module docstring,
  with the same headings;
* then, as a fallback that is always flagged: comments in the code (``# ## Q1`` in a notebook
  code cell or in the .py), and any other Markdown or text file of the submission.

A heading is *well-formed* when the line is ``## Q<n>`` (optionally followed by a title). Other
spellings (``Q 1``, ``Question 1``, ``**Q1**``, ``# q1``, ``### Q1``) are accepted as headings but
flagged ``misheaded``, so that the TA sees the answer and decides. An answer runs from its
heading to the next question heading, or to the next Markdown heading of the same or a higher
level (``## GAN losses`` ends a ``## Q1`` answer; ``### Part (a)`` does not).
"""
from __future__ import annotations

import io
import os
import re
import stat
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake import NOTEBOOK_ENTRY, NOTEBOOK_MARKDOWN
from grader.intake.cells import CELL_MARKER_RE as CODE_CELL_RE
from grader.written.questions import Questions

ANSWER_FILES = ("ANSWERS.md", "answers.md")   # beside the code, in this order of preference
MAX_FILE_BYTES = 2 * 1024 * 1024              # read at most this much of any one file
MAX_ANSWER_CHARS = 20_000                     # longer answers are cut (and flagged)
MAX_OTHER_FILES = 50                          # other .md/.txt files searched as a fallback
MAX_SHOWN = 5                                 # other answers to one question, unknown headings shown
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
    "copied": "near-duplicate of another student's answer",
}

PROPER_RE = re.compile(r"^ {0,3}## +Q([1-9][0-9]?)(?![0-9A-Za-z_])(?P<rest>.*)$")
LOOSE_RE = re.compile(
    r"^\s{0,3}(?P<hashes>#{1,6})?\s*(?P<open>[*_]{1,3})?\s*(?:question|q)\s*[.#]?\s*(?P<num>[0-9]{1,2})"
    r"(?![0-9A-Za-z])\s*(?P<close>[*_]{1,3})?(?P<rest>.*)$", re.IGNORECASE)
HASH_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:\s|$)")
FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CELL_COMMENT_RE = re.compile(r"^<!-- cell (\d+) -->$")
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


# --------------------------------------------------------------------------------------------
# Reading files (the workdir is the intake's private copy; still never follow a link)
# --------------------------------------------------------------------------------------------

def _read_text(path: Path) -> tuple[str | None, str | None]:
    """``(text, problem)``: the file's text (UTF-8; undecodable bytes replaced), at most
    MAX_FILE_BYTES of it; text None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"{path.name} could not be opened: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"{path.name} is not a regular file"
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
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
    number: int | None         # the question number, None for another Markdown heading
    level: int                 # number of '#' (0: bold or plain text)
    proper: bool
    rest: str                  # what follows the label on the heading line


def _heading(line: str) -> _Heading | None:
    match = PROPER_RE.match(line)
    if match:
        return _Heading(int(match.group(1)), 2, True, match.group("rest").strip())
    match = LOOSE_RE.match(line[:HEAD_CHARS])   # the label is near the start: bounded matching time
    if match:
        rest = line[match.start("rest"):]
        styled = match.group("hashes") or match.group("open")
        after = rest.lstrip(" \t*_")
        if styled or not after or after[0] in SEPARATORS:
            level = len(match.group("hashes") or "")
            return _Heading(int(match.group("num")), level, False, after.lstrip(SEPARATORS + " \t*_").rstrip(" *_"))
    match = HASH_HEADING_RE.match(line)
    if match:
        return _Heading(None, len(match.group(1)), False, "")
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


def _sections(source: _Source, questions: Questions) -> list[_Candidate]:
    """Every question heading of ``source`` with the text under it."""
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
        heading = _heading(line)
        if heading is not None:
            headings.append((index, heading))
    known = {q.number for q in questions.questions}
    out = []
    for k, (index, heading) in enumerate(headings):
        if heading.number is None:
            continue
        if heading.number not in known:
            if heading.proper or heading.level or not source.code:
                source.unknown_flags.append(Flag(
                    "unknown_question", None,
                    f"`{(source.raw or source.lines)[index].strip()}` ({source.locate(index)}) names no question of this "
                    f"assignment ({', '.join(questions.ids())}): not graded"))
            continue
        own = heading.level if heading.level else 2
        end = len(source.lines)
        for next_index, other in headings[k + 1:]:
            if other.number is not None or other.level <= own:
                end = next_index
                break
        body = source.lines[index + 1:end]
        if source.code:   # a comment answer runs to the end of its block of comment lines
            body = body[:next((i for i, line in enumerate(body) if line is None), len(body))]
        text = _clean_body([line for line in body if line is not None])
        if not text and heading.level == 0 and heading.rest:
            text = heading.rest      # "**Q1.** The answer on the heading's line"
        elif heading.level == 0 and heading.rest:
            text = heading.rest + "\n\n" + text
        cut = len(text) > MAX_ANSWER_CHARS
        out.append(_Candidate(
            number=heading.number, text=text[:MAX_ANSWER_CHARS], location=source.locate(index),
            heading=(source.raw or source.lines)[index].strip(), proper=heading.proper and not source.code, code=source.code,
            expected=source.expected, source_rank=source.rank, position=index, cut=cut))
    return out


# --------------------------------------------------------------------------------------------
# Sources: markdown files, the notebook's markdown, a module docstring, comments
# --------------------------------------------------------------------------------------------

def _markdown_source(label: str, text: str, rank: int, expected: bool = True) -> _Source:
    return _Source(label, text.split("\n"), lambda i: f"{label} line {i + 1}", rank, expected=expected)


def _notebook_source(text: str, rank: int) -> _Source:
    lines = text.split("\n")
    cells, current = [], None
    for line in lines:
        match = CELL_COMMENT_RE.match(line)
        if match:
            current = int(match.group(1))
        cells.append(current)
    return _Source("notebook markdown cells", lines,
                   lambda i: f"notebook markdown cell {cells[i]}" if cells[i] else f"notebook markdown line {i + 1}",
                   rank)


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


def _find_others(workdir: Path, skip: set[str]) -> tuple[list[str], list[str]]:
    """Other text files (fallback sources), and files that look like answers but cannot be read
    (``answers.pdf``, ``Q1.docx``)."""
    texts = _other_files(workdir, skip)
    unreadable = []
    for root, dirs, files in os.walk(workdir, followlinks=False):
        dirs[:] = sorted(dirs)
        for name in sorted(files):
            stem, _, suffix = name.lower().rpartition(".")
            if suffix in ("pdf", "doc", "docx", "odt", "rtf", "tex", "html", "htm", "png", "jpg", "jpeg") and (
                    "answer" in stem or "written" in stem or re.fullmatch(r"q[0-9]+.*", stem)):
                unreadable.append(os.path.relpath(os.path.join(root, name), workdir).replace(os.sep, "/"))
    return texts, unreadable


def extract_answers(workdir: Path, kind: str, entry: str | None,
                    questions: Questions | None = None) -> tuple[dict[str, Answer], list[Flag]]:
    """``({question id: Answer}, flags)`` for one prepared submission (see the module docstring).

    ``kind`` is the submission's kind ("py", "ipynb", "zip", "folder") and ``entry`` the file
    the grader loads (``notebook_solution.py`` for a notebook). Never raises for anything in the
    workdir; a question without an answer is absent from the dict and has a ``missing`` flag.
    """
    if questions is None:
        from grader.written.questions import load_questions
        questions = load_questions()
    workdir = Path(workdir)
    flags: list[Flag] = []
    sources: list[_Source] = []
    notebook = (kind == "ipynb" or entry == NOTEBOOK_ENTRY) and (workdir / NOTEBOOK_MARKDOWN).is_file()
    used = set()
    rank = 0

    def read(rel: str) -> str | None:
        text, problem = _read_text(workdir / rel)
        if problem:
            flags.append(Flag("unreadable", None, problem))
        return text

    if notebook:
        used.add(NOTEBOOK_MARKDOWN)
        text = read(NOTEBOOK_MARKDOWN)
        if text is not None:
            sources.append(_notebook_source(text, rank))
        rank += 1
    present = [name for name in ANSWER_FILES if (workdir / name).is_file()]
    # on a case-insensitive file system both names are one file
    if len(present) == 2 and os.path.samefile(workdir / present[0], workdir / present[1]):
        present = present[:1]
    present += sorted(n for n in os.listdir(workdir) if n.lower() == "answers.md" and n not in present
                      and (workdir / n).is_file())
    for name in present:
        used.add(name)
        text = read(name)
        if text is not None:
            sources.append(_markdown_source(name, text, rank))
            rank += 1
    if len(present) > 1:
        flags.append(Flag("extra_answer", None, f"several answer files: {', '.join(present)}; "
                                                f"{present[0]} is preferred"))
    if entry and (workdir / entry).is_file():
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
    others, unreadable = _find_others(workdir, used)
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
    looked = "; ".join(places)
    answers: dict[str, Answer] = {}
    for question in questions.questions:
        mine = sorted((c for c in candidates if c.number == question.number), key=_sort_key)
        if not mine:
            flags.append(Flag("missing", question.id, f"no answer headed `## {question.id}` was found "
                                                  f"(looked in: {looked}, then code comments and other files)"))
            continue
        best = mine[0]
        others_all = [(c.location, c.heading, c.text) for c in mine[1:] if not _is_empty(c.text)]
        others_found = tuple(others_all[:MAX_SHOWN])
        answers[question.id] = Answer(question.id, best.text, best.location, best.heading,
                                      best.proper and best.expected, others_found)
        q = question.id
        if best.code:
            flags.append(Flag("code_heading", q, f"`{best.heading}` is {best.location}, not a markdown "
                                                 f"answer: it is shown as {q}'s answer"))
        elif not best.expected:
            flags.append(Flag("misplaced", q, f"{q}'s answer is in {best.location.rsplit(' line ', 1)[0]}, "
                                              f"not where answers belong: it is shown as {q}'s answer"))
        if not best.proper and not best.code:
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
