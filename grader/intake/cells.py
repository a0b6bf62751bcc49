"""The cell markers of a converted notebook, in one place: ``# %% cell N``, the line the intake
writes before each code cell, which the sandbox's loader (``describe_line``: "cell 3, line 2") and
the written answers' extraction ("a comment in notebook code cell 3") read back; and
``<!-- cell N -->``, the line before each markdown cell of ``notebook_markdown.md``, which the
extraction reads back ("notebook markdown cell 3").

Its one home is ``grader.sandbox.loader.CELL_MARKER_RE`` (the loader runs inside the sandbox and
imports nothing from the grader outside ``grader/sandbox``); the text written here is derived
from that pattern, and checked against it when this module is imported.
"""
from __future__ import annotations

import re

from grader.sandbox.loader import CELL_MARKER_RE

__all__ = ["CELL_MARKER", "CELL_MARKER_RE", "MARKDOWN_CELL_MARKER_RE", "cell_marker", "cell_number",
           "markdown_cell_marker", "markdown_cell_number"]

_NUMBER = r"(\d+)$"
CELL_MARKER_PREFIX = CELL_MARKER_RE.pattern.removeprefix("^").removesuffix(_NUMBER)
#: ``CELL_MARKER.format(number=3)`` is ``"# %% cell 3"``
CELL_MARKER = CELL_MARKER_PREFIX + "{number}"
if (not re.fullmatch(r"[\w %#:-]+", CELL_MARKER_PREFIX)   # plain text: no regex syntax left in it
        or not CELL_MARKER_RE.fullmatch(CELL_MARKER.format(number=12))):
    raise ImportError(f"grader.sandbox.loader.CELL_MARKER_RE ({CELL_MARKER_RE.pattern!r}) is no longer "
                      "'^<plain text>(\\d+)$': update grader.intake.cells")


def cell_marker(number: int) -> str:
    """The marker line (without a newline) that starts code cell ``number`` (counted from 1)."""
    return CELL_MARKER.format(number=int(number))


def cell_number(line: str) -> int | None:
    """The cell number of a marker line (trailing whitespace ignored), else None."""
    match = CELL_MARKER_RE.match(line.rstrip())
    return int(match.group(1)) if match else None


#: the line before markdown cell N in ``notebook_markdown.md``
MARKDOWN_CELL_MARKER_RE = re.compile(r"^<!-- cell (\d+) -->$")


def markdown_cell_marker(number: int) -> str:
    """The marker line (without a newline) that starts markdown cell ``number`` (counted from 1)."""
    return f"<!-- cell {int(number)} -->"


def markdown_cell_number(line: str) -> int | None:
    """The cell number of a markdown marker line, else None."""
    match = MARKDOWN_CELL_MARKER_RE.match(line)
    return int(match.group(1)) if match else None
