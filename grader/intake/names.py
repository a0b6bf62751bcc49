"""Student ids in LMS download names: Canvas's "Download submissions" writes one file per upload,
``lastnamefirstname[_LATE]_userid_submissionid[_file]``, so one student's code and report arrive
as two names that share the Canvas user id (``grader.exports.lms`` matches the id to the roster)."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["CANVAS_NAME_RE", "canvas_user_id", "parse_canvas_name"]

#: Canvas's "Download submissions" names: ``lastnamefirstname[_LATE]_userid_submissionid[_file]``.
CANVAS_NAME_RE = re.compile(r"^(?P<name>.*?)(?P<late>_LATE)?_(?P<user_id>\d+)_(?P<submission_id>\d+)(?:_(?P<file>.*))?$",
                            re.IGNORECASE)


def parse_canvas_name(student: str) -> tuple[str, str, bool] | None:
    """``(name, canvas user id, late)`` of a Canvas download name, else None."""
    m = CANVAS_NAME_RE.match(unicodedata.normalize("NFC", student))
    if not m or not m.group("name"):
        return None
    return m.group("name"), m.group("user_id"), bool(m.group("late"))


def canvas_user_id(student: str) -> str | None:
    """The Canvas user id in a download name, else None."""
    parsed = parse_canvas_name(student)
    return parsed[1] if parsed else None
