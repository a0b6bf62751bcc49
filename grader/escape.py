"""Student data is data: make any student-controlled string valid text, then escape it for
the format it lands in.

- ``clean_text(value, cap)``: any value -> a ``str`` every encoder accepts (lone surrogates
  become U+FFFD), at most ``cap`` characters. Call it once where data enters (the sandbox
  boundary) and again in every renderer: it is idempotent and cheap on clean text.
- ``visible_controls(text)``: control characters (other than those kept) written out as
  ``\\xNN`` / ``\\uNNNN`` so a newline or an escape sequence in an id cannot break a line.
- Markdown: ``md_inline`` (one line of prose: Markdown metacharacters backslash-escaped, ``<``,
  ``>``, ``&`` as entities, so no raw HTML survives), ``md_code_block`` (a fence longer than any
  backtick run in the content, so no line of it can close the block).
- HTML: ``html_text`` (``html.escape`` with quotes, after ``clean_text``).

Pure functions, deterministic; no renderer should interpolate student text without one of them.
"""
from __future__ import annotations

import html
import re

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators (Python's splitlines
# and some renderers break lines on them)
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# ASCII punctuation Markdown (CommonMark, GFM, GitHub's math) may give a meaning to anywhere in
# a line, escaped with a backslash (CommonMark allows one before any ASCII punctuation); what
# only means something at the start of a line (list, heading underline, ordered list) is
# escaped there only
_MD_PUNCT = re.compile(r"([\\`*_\[\]#!|~$])")
_MD_LINE_START = re.compile(r"^(\s*(?:\d+)?)([-+=.)])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_BACKTICK_RUNS = re.compile("`+")


def _to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # an object whose __str__ is broken cannot break the report
        return f"<unprintable {type(value).__name__}>"


def clean_text(value: object, cap: int | None = None) -> str:
    """``value`` as valid text: lone surrogates (and anything else UTF-8 cannot encode) become
    U+FFFD; with ``cap``, at most ``cap`` characters, the cut marked with how much was dropped."""
    text = _to_str(value)
    if type(text) is not str:         # a str subclass: its own methods are not to be trusted
        text = str.__str__(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES.sub(REPLACEMENT, text)
        text = text.encode("utf-8", "replace").decode("utf-8")
    if cap is not None and len(text) > cap:
        cap = max(int(cap), 0)
        keep = cap
        for _ in range(3):        # the marker's length depends on the count it shows
            marker = f" [... {len(text) - keep} more characters]"
            keep = cap - len(marker)
        text = text[:keep] + marker if keep > 0 else text[:cap]
    return text


def _control_repr(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible_controls(text: str, keep: str = "") -> str:
    """Control characters other than those in ``keep`` written as ``\\xNN`` (``\\n`` -> ``\\x0a``)."""
    if not keep:
        return _CONTROLS.sub(_control_repr, text)
    return _CONTROLS.sub(lambda m: m.group() if m.group() in keep else _control_repr(m), text)


def one_line(value: object, cap: int | None = None) -> str:
    """Valid text on one line: controls (newlines included) made visible."""
    return visible_controls(clean_text(value, cap))


def md_inline(value: object, cap: int | None = None) -> str:
    """One line of Markdown prose showing ``value`` literally: newlines and other controls made
    visible, Markdown punctuation backslash-escaped, ``& < > "`` as HTML entities (no raw HTML,
    no emphasis, links, headings, table cells or code spans can come from it)."""
    text = one_line(value, cap)
    text = _MD_PUNCT.sub(r"\\\1", text)
    text = _MD_LINE_START.sub(r"\1\\\2", text)
    return "".join(_MD_ENTITIES.get(ch, ch) for ch in text)


def md_code_block(value: object, info: str = "text", indent: str = "",
                  cap: int | None = None) -> list[str]:
    """The lines of a fenced code block showing ``value`` verbatim, each prefixed by ``indent``.
    The fence is one backtick longer than the longest backtick run in the content (at least
    three), so nothing inside can close it; controls other than tab/newline are made visible."""
    text = visible_controls(clean_text(value, cap).replace("\r\n", "\n"), keep="\t\n")
    longest = max((len(m.group()) for m in _BACKTICK_RUNS.finditer(text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = [indent + line for line in text.split("\n")]
    return [indent + fence + info, *body, indent + fence]


def html_text(value: object, cap: int | None = None) -> str:
    """``value`` as HTML text (also safe inside a quoted attribute): ``& < > " '`` escaped,
    controls other than tab/newline/CR made visible."""
    return html.escape(visible_controls(clean_text(value, cap), keep="\t\n\r"), quote=True)
