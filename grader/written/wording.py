"""Matching a heading to a question by the question's own words, the way a TA reads "How do GANs
differ from autoencoders and VAEs?" as the comparison question.

Words are compared after NFKC, case folding and a crude stem (the first ``STEM`` letters, so that
"model", "models" and "modelling" agree); function words and words that only say "this is
homework" are dropped. A heading matches a question when it shares at least ``MIN_SHARED`` words
with the question's title or one of its declared ``wordings`` and their Dice coefficient is at
least ``DICE``, or when at least ``PROMPT_SHARE`` of its words (and ``MIN_SHARED_PROMPT`` of them)
are in the prompt. The best question wins; a tie matches nothing.
"""
from __future__ import annotations

import re
import unicodedata

from grader.written.questions import Question, Questions

STEM = 5
MIN_SHARED = 2
DICE = 0.7
MIN_SHARED_PROMPT = 3
PROMPT_SHARE = 0.75
STOPWORDS = frozenset("""a an and are as at be between both by can compare compared comparing do does each
explain for from how in into is it its of on or the their them then these this those to use used using versus
vs what when where which why with your you""".split())
#: a heading with one of these words is a document's or a section's title, not a question's
TITLE_WORDS = frozenset({"homework", "assignment", "hw", "report", "exam", "lab", "part", "section", "chapter",
                         "appendix", "references", "bibliography", "contents"})
WORD_RE = re.compile(r"[^\W\d_]+")


def _words(text: str) -> list[str]:
    return WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def stems(text: str) -> list[str]:
    return [w[:STEM] for w in _words(text) if w not in STOPWORDS and len(w) > 1]


def _dice(a: set[str], b: set[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def score(question: Question, text: str) -> float:
    """How well ``text`` restates ``question`` (0: not at all; at least 1 when it matches)."""
    words = set(stems(text))
    if not words or TITLE_WORDS.intersection(_words(text)):
        return 0.0
    best = 0.0
    for wording in (question.title, *question.wordings):
        other = set(stems(wording))
        if len(words & other) >= MIN_SHARED:
            best = max(best, _dice(words, other) / DICE)
    prompt = set(stems(question.prompt))
    shared = len(words & prompt)
    if shared >= MIN_SHARED_PROMPT:
        best = max(best, shared / len(words) / PROMPT_SHARE)
    return best


def restates(question: Question, text: str) -> bool:
    return score(question, text) >= 1.0


def question_of(questions: Questions, text: str) -> Question | None:
    """The question ``text`` restates, or None (no match, or two questions equally well)."""
    scored = sorted(((score(q, text), q.number, q) for q in questions.questions), key=lambda t: (-t[0], t[1]))
    if not scored or scored[0][0] < 1.0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return scored[0][2]
