"""Near-duplicate answers between students, one question at a time.

Each answer is normalised (NFKC, case-folded, split into words: Markdown and LaTeX punctuation
disappears, ``\\frac`` becomes the word ``frac``), and sentences copied from the question's own
text are removed (two students who both restate the question are not copying each other). Two
answers of at least ``min_words`` words each are then compared by

* the Jaccard index of their sets of word ``shingle_words``-grams (robust to reordered sentences),
* and, for pairs whose Jaccard index is at least ``candidate_jaccard``, the
  ``difflib.SequenceMatcher`` ratio of their word sequences (robust to a few words changed).

A pair is flagged when the texts are identical, when the ratio is at least ``ratio_flag``, or
when the Jaccard index is at least ``jaccard_flag`` (thresholds in ``questions.toml``). Only
pairs that share a shingle are ever compared, so a class of hundreds takes well under a second.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from itertools import combinations

from grader.written.questions import SimilaritySettings

WORD_RE = re.compile(r"\w+")
SENTENCE_RE = re.compile(r"(?<=[.?!])\s+|\n\s*\n")
PROMPT_SENTENCE_MIN_WORDS = 4


@dataclass(frozen=True)
class Pair:
    question: str
    a: str                     # the two students (ids or codes), a < b
    b: str
    identical: bool            # the same words in the same order
    ratio: float               # difflib ratio of the word sequences (0 when not computed)
    jaccard: float             # Jaccard index of the word shingles

    def describe(self) -> str:
        if self.identical:
            return "identical text (after normalisation)"
        return f"difflib ratio {self.ratio:.3f}, shingle Jaccard {self.jaccard:.3f}"


HYPHENATED_RE = re.compile(r"(\w)-[ \t]*\n[ \t]*(\w)")   # "gener-\native" in a PDF's text: one word


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (a word hyphenated across a line break is one word, as a PDF
    of a Markdown text often has it: the two are the same text)."""
    text = HYPHENATED_RE.sub(r"\1\2", unicodedata.normalize("NFKC", text))
    return WORD_RE.findall(text.casefold().replace("_", " "))


def _without_prompt(text: str, prompt: str) -> list[str]:
    """The words of ``text`` minus its sentences that also occur in the question's text."""
    prompt_text = " " + " ".join(words(prompt)) + " "
    kept = []
    for sentence in SENTENCE_RE.split(text):
        tokens = words(sentence)
        if len(tokens) >= PROMPT_SENTENCE_MIN_WORDS and f" {' '.join(tokens)} " in prompt_text:
            continue
        kept.extend(tokens)
    return kept


def _shingles(tokens: list[str], n: int) -> frozenset[tuple[str, ...]]:
    if len(tokens) < n:
        return frozenset({tuple(tokens)})
    return frozenset(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def near_duplicates(question: str, answers: dict[str, str], settings: SimilaritySettings,
                    prompt: str = "") -> list[Pair]:
    """Flagged pairs among ``{student: answer text}``, most similar first (deterministic)."""
    tokens = {s: _without_prompt(text, prompt) for s, text in sorted(answers.items())}
    tokens = {s: t for s, t in tokens.items() if len(t) >= settings.min_words}
    shingles = {s: _shingles(t, settings.shingle_words) for s, t in tokens.items()}
    index: dict[tuple[str, ...], list[str]] = {}
    for student, grams in shingles.items():
        for gram in grams:
            index.setdefault(gram, []).append(student)
    candidates = set()
    for students in index.values():
        candidates.update(combinations(sorted(students), 2))
    pairs = []
    for a, b in sorted(candidates):
        shared = len(shingles[a] & shingles[b])
        jaccard = shared / len(shingles[a] | shingles[b])
        identical = tokens[a] == tokens[b]
        ratio = 1.0 if identical else 0.0
        if not identical and jaccard >= settings.candidate_jaccard:
            ratio = difflib.SequenceMatcher(None, tokens[a], tokens[b], autojunk=False).ratio()
        if identical or ratio >= settings.ratio_flag or jaccard >= settings.jaccard_flag:
            pairs.append(Pair(question, a, b, identical, round(ratio, 4), round(jaccard, 4)))
    return sorted(pairs, key=lambda p: (not p.identical, -p.ratio, -p.jaccard, p.a, p.b))
