"""The late policy: its file, and the penalty of a submission (pure functions).

A policy file (``--late-policy FILE``, TOML) holds one table::

    [late]
    deadline = "2026-12-01T23:59:00+00:00"   # ISO 8601 with an offset
    grace_minutes = 15                        # default 0
    penalty_percent_per_day = "10"            # percent of the earned score per started day
    max_late_days = 3                         # more days late than this: the score is 0 (default: no limit)

Unknown keys and bad values are errors that name them: a typo must never mean "no penalty".

``late_days = ceil((submitted_at - (deadline + extension) - grace) / 1 day)``, 0 when that is not
positive; ``penalty = earned x percent x late_days / 100``, an exact decimal rounded half up to
two places, never more than the earned score; the whole earned score when ``late_days >
max_late_days``. The penalty applies to the whole score (written marks included).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

KEYS = ("deadline", "grace_minutes", "penalty_percent_per_day", "max_late_days")
CENT = Decimal("0.01")
DAY = timedelta(days=1)


class PolicyError(ValueError):
    """A policy file that cannot be applied as written."""


@dataclass(frozen=True)
class LatePolicy:
    deadline: datetime                   # aware
    penalty_percent_per_day: Decimal
    grace_minutes: int = 0
    max_late_days: int | None = None

    def to_dict(self) -> dict:
        return {"deadline": self.deadline.isoformat(), "grace_minutes": self.grace_minutes,
                "penalty_percent_per_day": str(self.penalty_percent_per_day), "max_late_days": self.max_late_days}


def parse_time(text: object, what: str) -> datetime:
    """An ISO 8601 time with an offset (``2026-12-01T23:59:00+00:00``, ``...Z``); else PolicyError."""
    if not isinstance(text, str):
        raise PolicyError(f"{what} must be an ISO 8601 string with an offset, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PolicyError(f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-12-01T23:59:00+00:00)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PolicyError(f"{what} {text!r} has no UTC offset (write e.g. 2026-12-01T23:59:00+01:00)")
    return moment


def _whole(value: object, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"late.{key} must be a whole number >= {minimum}, got {value!r}")
    return value


def parse_policy(text: str, label: str = "the late policy") -> LatePolicy:
    """The policy of a TOML text; PolicyError naming the key for anything unknown or bad."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{label} is not valid TOML: {error}") from None
    extra = sorted(set(data) - {"late"})
    if extra:
        raise PolicyError(f"{label}: unknown table or key(s) {', '.join(extra)} (expected only [late])")
    late = data.get("late")
    if not isinstance(late, dict):
        raise PolicyError(f"{label} has no [late] table")
    unknown = sorted(set(late) - set(KEYS))
    if unknown:
        raise PolicyError(f"{label}: unknown key(s) late.{', late.'.join(unknown)} (expected {', '.join(KEYS)})")
    for key in ("deadline", "penalty_percent_per_day"):
        if key not in late:
            raise PolicyError(f"{label}: late.{key} is missing")
    raw = late["penalty_percent_per_day"]
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise PolicyError(f"late.penalty_percent_per_day must be a decimal string such as \"10\", got {raw!r}")
    try:
        percent = Decimal(str(raw).strip())
    except InvalidOperation:
        raise PolicyError(f"late.penalty_percent_per_day {raw!r} is not a number") from None
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise PolicyError(f"late.penalty_percent_per_day must be between 0 and 100, got {raw!r}")
    max_days = late.get("max_late_days")
    return LatePolicy(deadline=parse_time(late["deadline"], "late.deadline"), penalty_percent_per_day=percent,
                      grace_minutes=_whole(late.get("grace_minutes", 0), "grace_minutes"),
                      max_late_days=None if max_days is None else _whole(max_days, "max_late_days"))


def late_days(submitted_at: datetime, deadline: datetime, grace_minutes: int = 0) -> int:
    """Started days after ``deadline`` plus the grace, 0 when on time (both times aware)."""
    late = submitted_at - deadline - timedelta(minutes=grace_minutes)
    if late <= timedelta(0):
        return 0
    return math.ceil(late / DAY)


def penalty(earned: Decimal, days: int, policy: LatePolicy) -> Decimal:
    """The points taken off ``earned`` for ``days`` late (see the module docstring)."""
    if days <= 0 or earned <= 0:
        return Decimal("0.00")
    if policy.max_late_days is not None and days > policy.max_late_days:
        return earned.quantize(CENT, ROUND_HALF_UP)
    taken = (earned * policy.penalty_percent_per_day * days / 100).quantize(CENT, ROUND_HALF_UP)
    return min(taken, earned.quantize(CENT, ROUND_HALF_UP))


def deadline_for(policy: LatePolicy, extension: timedelta | datetime | None) -> datetime:
    """The student's own deadline: the policy's, moved by extra days or replaced by a date."""
    if extension is None:
        return policy.deadline
    if isinstance(extension, datetime):
        return extension
    return policy.deadline + extension
