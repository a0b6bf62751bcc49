"""Fingerprints of one submission's code: normalised token streams per function, winnowed.

Pure functions on source strings; student code is parsed (``ast.parse``, ``tokenize``), never
compiled to bytecode, imported or run. The parsing happens in the grader's process, so a file is cut
at ``MAX_SOURCE_CHARS`` and ``MAX_TOKENS``, lines are made to end at ``\n`` (the parser and
``tokenize`` must count the same lines), and every parser error (SyntaxError, ValueError,
RecursionError, MemoryError) is caught.

Conventions:

* A *unit* is a function or method at module or class level (nested functions stay inside their
  parent), named ``name`` or ``Class.name``, plus ``<module>``: the module-level statements that
  are neither imports, docstrings, functions nor classes. A file that does not parse is one unit,
  ``<unparsed>``, of the tokens ``tokenize`` reads before it fails.
* A unit's stream starts after its signature (the contract's ``def name(args):`` is the same in
  every submission) and after its docstring. Normalisation, so that renaming, comments, docstrings
  and reformatting change nothing: identifiers become ``V`` (an attribute after ``.`` is kept,
  ``torch.sigmoid`` stays ``V.sigmoid``, except after ``self.``), numbers ``N``, strings ``S``;
  comments, blank lines and indentation tokens are dropped; a statement's end is ``;`` whether it
  was a newline or a semicolon; a comma before a closing bracket (a formatter's trailing comma)
  is dropped. Reordering functions changes nothing since k-grams never cross units.
* Fingerprints: every k-gram (``K`` tokens) of a unit is hashed with BLAKE2b (8 bytes, so the same
  in every process: Python's ``hash`` of a string is salted per process); winnowing keeps the
  minimum of each window of ``W`` consecutive hashes (the rightmost on a tie, as in Schleimer,
  Wilkerson and Aiken's robust winnowing), so a shared run of ``K + W - 1`` tokens always shares
  a fingerprint. A unit shorter than ``K`` tokens has none: it carries no evidence.

Why not copydetect (0.5.0): its tokens are Pygments' over whole files and the k-grams are of
characters of the filtered text, with no notion of a function or of the contract's signatures; its
hashes are Python's salted ``hash``, so fingerprints and reports differ between processes unless
PYTHONHASHSEED is pinned; and it pulls in matplotlib/jinja2 for its report. Winnowing itself is
twenty lines, kept here.
"""
from __future__ import annotations

import ast
import bisect
import hashlib
import io
import keyword
import tokenize
from dataclasses import dataclass

K = 8  # tokens per k-gram (calibrated in benchmarks/code_similarity.py)
W = 4  # winnowing window, in k-grams
MAX_SOURCE_CHARS = 200_000  # one file; the rest of a longer file is not compared
MAX_TOKENS = 30_000  # per file (the example class's longest file has about 1,500)
MAX_UNITS = 500  # per file
MAX_CLASS_DEPTH = 4  # classes inside classes looked into for methods

_DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
            tokenize.ENDMARKER}
_CLOSERS = {")", "]", "}"}
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
_TOKEN_ERRORS = (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError)


@dataclass(frozen=True)
class Unit:
    """One unit's normalised tokens, each with its ``(start, end)`` character offsets in the file's
    text, and the BLAKE2b hash of the k-gram starting at each token (``len(tokens) - K + 1``)."""

    file: int  # index of the file in its ``Code``
    name: str
    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    kgrams: tuple[int, ...]

    def fingerprints(self) -> set[int]:
        """The winnowed hashes."""
        return {self.kgrams[i] for i in winnow(self.kgrams, W)}


@dataclass(frozen=True)
class Code:
    """One submission's code: its files (``(name, text)``, in order) and their units."""

    files: tuple[tuple[str, str], ...]
    units: tuple[Unit, ...]

    def fingerprints(self) -> set[int]:
        return set().union(*(u.fingerprints() for u in self.units)) if self.units else set()


def kgram_hash(tokens: tuple[str, ...] | list[str]) -> int:
    """A stable 64-bit hash of a token sequence."""
    data = "\x1f".join(tokens).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def winnow(hashes: tuple[int, ...] | list[int], window: int) -> list[int]:
    """Indices of the winnowed hashes (sorted): each window's minimum, the rightmost on a tie (with
    fewer hashes than ``window``, the minimum of them all)."""
    if not hashes:
        return []
    if len(hashes) <= window:
        lowest = min(hashes)
        return [max(i for i, h in enumerate(hashes) if h == lowest)]
    chosen: set[int] = set()
    for start in range(len(hashes) - window + 1):
        segment = hashes[start:start + window]
        lowest = min(segment)
        chosen.add(start + max(i for i, h in enumerate(segment) if h == lowest))
    return sorted(chosen)


def _line_starts(text: str) -> list[int]:
    """Offsets of each line's start, lines ending at ``\n`` only (as ``io.StringIO.readline``
    splits them for ``tokenize``)."""
    starts = [0]
    pos = text.find("\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return starts


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    """The file's tokens, as far as ``tokenize`` can read them."""
    out: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            out.append(tok)
            if len(out) >= MAX_TOKENS:
                break
    except _TOKEN_ERRORS:
        pass
    return out


def _normalise(toks: list[tokenize.TokenInfo], lines: list[int]) -> tuple[list[str], list[tuple[int, int]]]:
    """The normalised stream of ``toks`` (see the module docstring) and each token's offsets."""
    names: list[str] = []
    spans: list[tuple[int, int]] = []
    prev_raw: list[str] = []  # the two previous kept raw tokens, for ``.attr`` and ``self.attr``

    def offset(pos: tuple[int, int]) -> int:
        row, col = pos
        return lines[min(row - 1, len(lines) - 1)] + col

    for tok in toks:
        if tok.type in _DROPPED:
            continue
        if tok.type == tokenize.NAME:
            after_dot = bool(prev_raw) and prev_raw[-1] == "."
            on_self = after_dot and len(prev_raw) >= 2 and prev_raw[-2] == "self"
            if keyword.iskeyword(tok.string) or (after_dot and not on_self):
                norm = tok.string
            else:
                norm = "V"
        elif tok.type == tokenize.NUMBER:
            norm = "N"
        elif tok.type == tokenize.STRING:
            norm = "S"
        elif tok.type == tokenize.NEWLINE or tok.string == ";":
            norm = ";"
        elif tok.type == tokenize.OP:
            norm = tok.string
        else:  # ERRORTOKEN and the like: kept as written
            norm = tok.string
        if norm in _CLOSERS and names and names[-1] == ",":
            names.pop()
            spans.pop()
        if norm == ";" and (not names or names[-1] == ";"):
            continue
        names.append(norm)
        spans.append((offset(tok.start), offset(tok.end)))
        prev_raw = (prev_raw + [tok.string])[-2:]
    return names, spans


def _make_unit(file: int, name: str, toks: list[tokenize.TokenInfo], lines: list[int]) -> Unit:
    names, spans = _normalise(toks, lines)
    kgrams = tuple(kgram_hash(names[i:i + K]) for i in range(len(names) - K + 1))
    return Unit(file, name, tuple(names), tuple(spans), kgrams)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _functions(body: list[ast.stmt], prefix: str = "", depth: int = 0):
    """``(name, node)`` of every function at this level and in classes below (bounded depth)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef) and depth < MAX_CLASS_DEPTH:
            yield from _functions(node.body, f"{prefix}{node.name}.", depth + 1)


def _within(toks: list[tokenize.TokenInfo], starts: list[tuple[int, int]], start: tuple[int, int],
            end: tuple[int, int]) -> list[tokenize.TokenInfo]:
    """The tokens that start in ``[start, end]`` (the statement's closing NEWLINE included)."""
    return toks[bisect.bisect_left(starts, start):bisect.bisect_right(starts, end)]


def normalised_text(text: str) -> str:
    """At most ``MAX_SOURCE_CHARS`` characters, lines ending in ``\n`` (the parser also ends them at
    ``\r``, ``tokenize`` does not: both must count the same lines)."""
    return text[:MAX_SOURCE_CHARS].replace("\r\n", "\n").replace("\r", "\n")


def file_units(text: str, file: int = 0) -> list[Unit]:
    """The units of one file (see the module docstring); never raises on hostile text. Offsets are
    in ``normalised_text(text)``."""
    text = normalised_text(text)
    lines = _line_starts(text)
    toks = _tokens(text)
    starts = [t.start for t in toks]
    try:
        tree = ast.parse(text)
    except _PARSE_ERRORS:
        return [_make_unit(file, "<unparsed>", toks, lines)] if toks else []
    def pos(row: int | None, byte_col: int | None) -> tuple[int, int]:
        """``ast``'s (line, UTF-8 byte column) as ``tokenize``'s (line, character column)."""
        row, byte_col = row or 1, byte_col or 0
        start = lines[min(row - 1, len(lines) - 1)]
        head = text[start:start + byte_col].encode("utf-8", "surrogatepass")[:byte_col]
        return row, len(head.decode("utf-8", "ignore"))

    units: list[Unit] = []
    for name, node in _functions(tree.body):
        if len(units) >= MAX_UNITS:
            break
        body = node.body[1:] if _is_docstring(node.body[0]) else node.body
        if not body:
            continue
        span = _within(toks, starts, pos(body[0].lineno, body[0].col_offset), pos(node.end_lineno, node.end_col_offset))
        units.append(_make_unit(file, name, span, lines))
    loose = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                                        ast.AsyncFunctionDef, ast.ClassDef)) and not _is_docstring(s)]
    if loose:
        selected = [t for s in loose for t in _within(toks, starts, pos(s.lineno, s.col_offset),
                                                      pos(s.end_lineno, s.end_col_offset))]
        units.append(_make_unit(file, "<module>", selected, lines))
    return units


def code_of(files: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> Code:
    """The ``Code`` of a submission's files (``(name, text)``, in the order given)."""
    files = tuple((name, normalised_text(text)) for name, text in files)
    units = tuple(u for i, (_, text) in enumerate(files) for u in file_units(text, i))
    return Code(files, units)
