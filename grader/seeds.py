"""The seed of a submission's hidden inputs: HMAC-SHA256(course secret, the submission's sha256).

Every resubmission (any changed byte) meets new hidden inputs, so the expected values a student
reads in one feedback (they stay there: they teach) say nothing about the next one's; grading the
same bytes again gives the same inputs, so grading stays byte-reproducible. The statistical
checks (the FVBN sampling test, the workhouse's training seeds) keep the rubric's seed: a changed
comment must not be a new roll of the dice.

The secret is the environment variable ``GRADER_INPUT_SECRET`` (set one per course, and keep
it); without it the key is derived from the rubric's seed, which anyone with the repository can
recompute, and the TA's command line warns.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

ENV_SECRET = "GRADER_INPUT_SECRET"
SEED_BITS = 63
NO_SECRET_WARNING = (f"warning: {ENV_SECRET} is not set: each submission's hidden inputs are derived from the "
                     "rubric's seed and its sha256, which anyone with the repository can recompute; set "
                     f"{ENV_SECRET} to a course secret (and keep it, to regrade reproducibly)")


def input_secret(rubric_seed: int, environ: Mapping[str, str] = os.environ) -> tuple[bytes, bool]:
    """``(key, from_environment)``: ``$GRADER_INPUT_SECRET`` when set and non-empty, else a key
    derived from the rubric's seed."""
    secret = environ.get(ENV_SECRET, "")
    if secret:
        return secret.encode("utf-8"), True
    return f"grader-hidden-inputs/rubric-seed:{rubric_seed}".encode(), False


def submission_seed(secret: bytes, sha256: str) -> int:
    """The seed of the hidden inputs of the submission whose bytes hash to ``sha256`` (hex):
    the first 63 bits of HMAC-SHA256(secret, sha256)."""
    digest = hmac.new(secret, sha256.encode("ascii"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
