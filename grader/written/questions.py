"""The written questions (``grader/questions.toml``): ids, points, prompts, the TA's rubric, and
the settings of the near-duplicate search. Loaded once and validated: a malformed file raises
``QuestionsError`` naming the question and the field."""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

DEFAULT_QUESTIONS = Path(__file__).resolve().parent.parent / "questions.toml"
QUESTION_ID_RE = re.compile(r"^Q([1-9][0-9]?)$")


class QuestionsError(ValueError):
    """questions.toml is malformed (not a student's fault)."""


@dataclass(frozen=True)
class RubricItem:
    points: Decimal
    text: str


@dataclass(frozen=True)
class Question:
    id: str                       # "Q1": the heading students write (``## Q1``)
    number: int                   # 1
    points: Decimal
    title: str
    prompt: str
    rubric: tuple[RubricItem, ...]


@dataclass(frozen=True)
class SimilaritySettings:
    """Near-duplicate thresholds (see the comments in questions.toml)."""

    min_words: int = 10
    shingle_words: int = 3
    jaccard_flag: float = 0.6
    ratio_flag: float = 0.8
    candidate_jaccard: float = 0.15


@dataclass(frozen=True)
class Questions:
    version: str
    sha256: str                   # of the file's bytes
    questions: tuple[Question, ...]
    similarity: SimilaritySettings

    def ids(self) -> list[str]:
        return [q.id for q in self.questions]

    def get(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def by_number(self, number: int) -> Question | None:
        return next((q for q in self.questions if q.number == number), None)

    def max_score(self) -> Decimal:
        return sum((q.points for q in self.questions), Decimal(0))


def _decimal(value: object, where: str) -> Decimal:
    try:
        points = Decimal(str(value))
    except InvalidOperation:
        raise QuestionsError(f"questions.toml: {where} is {value!r}, not a number") from None
    if not points.is_finite() or points < 0:
        raise QuestionsError(f"questions.toml: {where} is {value!r}; points must be finite and >= 0")
    return points


def _text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise QuestionsError(f"questions.toml: {where} has no {key!r} (a non-empty string)")
    return value.strip()


def _question(raw: object, index: int) -> Question:
    if not isinstance(raw, dict):
        raise QuestionsError(f"questions.toml: [[question]] number {index} is not a table")
    qid = raw.get("id")
    match = QUESTION_ID_RE.match(qid) if isinstance(qid, str) else None
    if not match:
        raise QuestionsError(f"questions.toml: [[question]] number {index} has id {qid!r}; expected Q1, Q2, ...")
    points = _decimal(raw.get("points"), f"{qid}.points")
    items = raw.get("rubric")
    if not isinstance(items, list) or not items:
        raise QuestionsError(f"questions.toml: {qid} has no rubric (a list of {{points, text}})")
    rubric = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise QuestionsError(f"questions.toml: {qid} rubric item {n} is not a table")
        rubric.append(RubricItem(_decimal(item.get("points"), f"{qid} rubric item {n} points"),
                                 _text(item, "text", f"{qid} rubric item {n}")))
    total = sum((item.points for item in rubric), Decimal(0))
    if total != points:
        raise QuestionsError(f"questions.toml: {qid}'s rubric items add up to {total}, but the question "
                             f"is worth {points}")
    return Question(id=qid, number=int(match.group(1)), points=points, title=_text(raw, "title", qid),
                    prompt=_text(raw, "prompt", qid), rubric=tuple(rubric))


def _similarity(raw: object) -> SimilaritySettings:
    if raw is None:
        return SimilaritySettings()
    if not isinstance(raw, dict):
        raise QuestionsError("questions.toml: [similarity] is not a table")
    defaults = SimilaritySettings()
    values = {}
    for name, default in vars(defaults).items():
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)):
            raise QuestionsError(f"questions.toml: similarity.{name} is {value!r}, expected a {type(default).__name__}")
        values[name] = type(default)(value)
    unknown = sorted(set(raw) - set(values))
    if unknown:
        raise QuestionsError(f"questions.toml: [similarity] has unknown settings: {', '.join(unknown)}")
    settings = SimilaritySettings(**values)
    if settings.min_words < 1 or settings.shingle_words < 1:
        raise QuestionsError("questions.toml: similarity.min_words and shingle_words must be >= 1")
    for name in ("jaccard_flag", "ratio_flag", "candidate_jaccard"):
        if not 0 < getattr(settings, name) <= 1:
            raise QuestionsError(f"questions.toml: similarity.{name} must be in (0, 1]")
    return settings


def load_questions(path: Path = DEFAULT_QUESTIONS) -> Questions:
    """The questions of ``path`` in file order; raises QuestionsError if the file is malformed."""
    raw_bytes = Path(path).read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise QuestionsError(f"questions.toml: {exc}") from None
    version = raw.get("questions_version")
    if not isinstance(version, str) or not version:
        raise QuestionsError("questions.toml: questions_version (a string) is missing")
    items = raw.get("question")
    if not isinstance(items, list) or not items:
        raise QuestionsError("questions.toml: no [[question]] tables")
    questions = tuple(_question(item, n) for n, item in enumerate(items, start=1))
    seen: set[int] = set()
    for q in questions:
        if q.number in seen:
            raise QuestionsError(f"questions.toml: {q.id} is defined twice")
        seen.add(q.number)
    return Questions(version=version, sha256=hashlib.sha256(raw_bytes).hexdigest(), questions=questions,
                     similarity=_similarity(raw.get("similarity")))
