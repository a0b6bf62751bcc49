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
    label: str = ""               # the course's own number for it ("1", "2b"; default: the id's number)
    section: str = ""             # the section it is printed in ("I", "2", "A"); "" when numbering is global
    wordings: tuple[str, ...] = ()   # other wordings of its text that students restate as a heading

    @property
    def course_label(self) -> str:
        return normal_label(self.label or str(self.number))

    @property
    def course_section(self) -> str:
        return normal_section(self.section) if self.section else ""


ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}


def roman_value(text: str) -> int | None:
    """1 for ``I``, 4 for ``IV``, ...; None when ``text`` is not a roman numeral (up to 399)."""
    text = text.lower()
    if not text or any(ch not in ROMAN for ch in text) or len(text) > 8:
        return None
    total = 0
    for index, ch in enumerate(text):
        value = ROMAN[ch]
        total += -value if index + 1 < len(text) and ROMAN[text[index + 1]] > value else value
    return total if 0 < total < 400 else None


def normal_section(text: str) -> str:
    """A section label compared across spellings: ``I``, ``i``, ``1`` and ``01`` are all ``1``;
    a letter is lower case (``A`` -> ``a``; a single ``I``/``V``/``X`` counts as roman)."""
    text = text.strip().strip(".:)").strip()
    if text.isdigit():
        return str(int(text))
    value = roman_value(text)
    return str(value) if value is not None else text.lower()


def normal_label(text: str) -> str:
    """A question number compared across spellings: ``1``, ``1.``, ``(1)``, ``1a``, ``1(a)``, ``1.a``."""
    return re.sub(r"[\s().:]+", "", text).lower()


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

    def by_label(self, label: str, section: str | None) -> Question | None:
        """The question the course numbers ``label`` (``1``, ``2b``), in ``section`` when the course
        declares sections (``section`` None: the text is not under any section heading). A label
        with a part (``1a``) that names no question falls back to its number (``1``)."""
        label = normal_label(label)
        for wanted in (label, re.sub(r"[a-z]+$", "", label)):
            found = [q for q in self.questions if q.course_label == wanted
                     and (not q.course_section or q.course_section == (normal_section(section) if section else None))]
            if len(found) == 1:
                return found[0]
        return None

    @property
    def sectioned(self) -> bool:
        return any(q.section for q in self.questions)

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
    label = raw.get("number", "")
    section = raw.get("section", "")
    wordings = raw.get("wordings", [])
    for key, value in (("number", label), ("section", section)):
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not re.fullmatch(r"[0-9A-Za-z().]{0,12}", str(value)):
            example = '"1" or "2b"' if key == "number" else '"I", "2" or "A"'
            raise QuestionsError(f"questions.toml: {qid}.{key} is {value!r}; expected a short label such as {example}")
    if not isinstance(wordings, list) or not all(isinstance(w, str) and w.strip() for w in wordings):
        raise QuestionsError(f"questions.toml: {qid}.wordings must be a list of non-empty strings")
    return Question(id=qid, number=int(match.group(1)), points=points, title=_text(raw, "title", qid),
                    prompt=_text(raw, "prompt", qid), rubric=tuple(rubric), label=str(label), section=str(section),
                    wordings=tuple(w.strip() for w in wordings))


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
