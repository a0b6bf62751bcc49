"""Anonymous codes for blind marking: ``anon-`` plus 8 base-32 characters of
HMAC-SHA256(secret, student id). Stable across runs for the same secret, and useless for guessing
the id without the secret.

The secret is the environment variable ``GRADER_ANON_SECRET`` when it is set (a per-course secret:
recommended, since the fallback can be recomputed by anyone who has the repository and the class
list), else derived from the rubric seed.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

ENV_SECRET = "GRADER_ANON_SECRET"
CODE_PREFIX = "anon-"
CODE_CHARS = 8  # 40 bits: a collision in a class of 1,000 has probability about 5e-7 (and is refused)


def anonymity_secret(rubric_seed: int, environ: Mapping[str, str] = os.environ) -> bytes:
    """The HMAC key: ``$GRADER_ANON_SECRET`` if set and non-empty, else one derived from the seed."""
    secret = environ.get(ENV_SECRET, "")
    if secret:
        return secret.encode("utf-8")
    return f"grader-written-anonymity/rubric-seed:{rubric_seed}".encode()


def anonymous_code(student: str, secret: bytes) -> str:
    """``anon-xxxxxxxx`` for ``student`` (lower-case base 32: letters and digits 2-7)."""
    digest = hmac.new(secret, student.encode("utf-8"), hashlib.sha256).digest()
    return CODE_PREFIX + base64.b32encode(digest).decode("ascii")[:CODE_CHARS].lower()


def code_table(students: Iterable[str], secret: bytes) -> dict[str, str]:
    """``{student: code}``; raises ValueError if two students would share a code (choose another
    secret) or a code equals a student id (the two would be confused in manual.csv)."""
    students = sorted(set(students))
    table = {s: anonymous_code(s, secret) for s in students}
    if len(set(table.values())) < len(table):
        raise ValueError("two students have the same anonymous code: set another GRADER_ANON_SECRET")
    clash = sorted(set(table.values()) & set(students))
    if clash:
        raise ValueError(f"a student id equals an anonymous code ({clash[0]!r}): set another GRADER_ANON_SECRET")
    return table
