"""Pairwise code similarity over a class: weighing fingerprints, scoring and flagging pairs.

Pure functions from each student's ``Code`` (grader.similarity.fingerprints) to ``PairScore``s.

Conventions:

* The starter template's k-grams (every one, not only its winnowed ones) are removed from every
  student's fingerprints: code handed out is no evidence.
* A fingerprint held by ``df`` students weighs ``1 / (df - 1)`` (1 when only one holds it): the
  evidence it gives is shared among the holder's ``df - 1`` partners, so a formula written the
  same obvious way by many weighs little. One held by at least ``COMMON_SHARE`` of the class (and
  by more than two students) weighs 0: most of the class writes it, so it says nothing of copying.
* ``similarity(a, b) = shared weight / min(mass a, mass b) * min(1, n / MIN_PRINTS)``, where a
  student's mass is the weight of all their fingerprints and ``n`` the smaller number of weighed
  fingerprints of the two: a copy of the other's whole code scores 1 even when one of them added
  more of their own, and a tiny submission cannot reach a high score on a few shared fingerprints
  (counted, not weighed, so that a large cluster of copies, whose fingerprints each weigh little,
  is not discounted for its size). Rounded to ``DECIMALS`` places; flagged when ``>= THRESHOLD`` (calibrated in
  benchmarks/SIMILARITY.md).
* ``functions``: the units of ``a`` that share at least half of the smaller unit's weight with one
  unit of ``b``, as ``name`` (the same name in both) or ``name_a/name_b``, sorted.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

from grader.similarity.fingerprints import Code, Unit

THRESHOLD = 0.6  # flagged at or above (benchmarks/SIMILARITY.md)
COMMON_SHARE = 0.5  # a fingerprint held by this share of the class (and by 3 or more) weighs nothing
MIN_PRINTS = 8  # fewer weighed fingerprints than this scale a pair's score down
DECIMALS = 3  # of the similarity written out
UNIT_SHARE = 0.5  # of the smaller unit's weight, for a unit to be named in ``functions``


@dataclass(frozen=True)
class PairScore:
    """One pair of students, ``a < b`` (as shown: ids, or codes when anonymous)."""

    a: str
    b: str
    similarity: float
    flagged: bool
    functions: tuple[str, ...] = ()
    #: for a flagged pair, the k-grams (every one, not only the winnowed) both hold, less the
    #: template's and those most of the class holds: what the page highlights; else empty
    shared: frozenset[int] = field(default_factory=frozenset)


def _template_kgrams(template: Code | None) -> set[int]:
    return {h for u in template.units for h in u.kgrams} if template else set()


def student_fingerprints(codes: Mapping[str, Code], template: Code | None) -> dict[str, set[int]]:
    """Each student's winnowed fingerprints less every k-gram of the template."""
    excluded = _template_kgrams(template)
    return {s: c.fingerprints() - excluded for s, c in codes.items()}


def weights(prints: Mapping[str, set[int]]) -> dict[int, float]:
    """Each fingerprint's weight (see the module docstring)."""
    df: dict[int, int] = defaultdict(int)
    for hashes in prints.values():
        for h in hashes:
            df[h] += 1
    common = max(3, COMMON_SHARE * len(prints))
    return {h: 0.0 if n >= common else 1.0 / max(1, n - 1) for h, n in df.items()}


def _unit_matches(a: list[tuple[Unit, set[int], float]], b: list[tuple[Unit, set[int], float]],
                  b_index: Mapping[int, list[int]], shared: set[int], weight: Mapping[int, float]) -> tuple[str, ...]:
    """``functions`` (see the module docstring); ``b_index``: fingerprint -> indices of b's units."""
    names = set()
    for ua, pa, mass_a in a:
        common: dict[int, set[int]] = defaultdict(set)
        for h in pa & shared:
            for j in b_index.get(h, ()):
                common[j].add(h)
        best, best_w = None, 0.0
        for j in sorted(common):
            ub, _, mass_b = b[j]
            w = _total(weight[h] for h in common[j])
            if w > best_w and w >= UNIT_SHARE * min(mass_a, mass_b):
                best, best_w = ub, w
        if best is not None:
            names.add(ua.name if ua.name == best.name else f"{ua.name}/{best.name}")
    return tuple(sorted(names))


def _index(units: list[tuple[Unit, set[int], float]]) -> dict[int, list[int]]:
    index: dict[int, list[int]] = defaultdict(list)
    for j, (_, prints, _) in enumerate(units):
        for h in prints:
            index[h].append(j)
    return index


def _candidates(order: list[str], prints: Mapping[str, set[int]], weight: Mapping[int, float]) -> list[tuple[str, str]]:
    """The pairs (in ``order``'s order) that share at least one weighed fingerprint, found through
    an inverted index: the work grows with what students share, not with the square of the class."""
    rank = {s: i for i, s in enumerate(order)}
    holders: dict[int, list[str]] = defaultdict(list)
    for s in order:
        for h in prints[s]:
            if weight[h] > 0:
                holders[h].append(s)
    pairs = {(a, b) for hs in holders.values() if len(hs) > 1 for a, b in combinations(hs, 2)}
    return sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]]))


def _total(values) -> float:
    return sum(sorted(values))  # in one order whatever the sets' order: the same float in every run


def score_pairs(codes: Mapping[str, Code], template: Code | None = None,
                shown: Mapping[str, str] | None = None) -> list[PairScore]:
    """Every pair of ``codes``' students that shares a weighed fingerprint, once, most similar first
    (then by the names shown); every other pair scores 0 and is left out.

    ``shown`` maps a student id to the name written out (an anonymous code); ``a < b`` by it."""
    shown = dict(shown or {s: s for s in codes})
    excluded = _template_kgrams(template)
    unit_prints = {s: [(u, u.fingerprints() - excluded) for u in c.units] for s, c in codes.items()}
    prints = {s: set().union(*(p for _, p in us)) for s, us in unit_prints.items()}
    weight = weights(prints)
    units = {s: [(u, p, _total(weight[h] for h in p)) for u, p in us] for s, us in unit_prints.items()}
    mass = {s: _total(weight[h] for h in p) for s, p in prints.items()}
    index = {s: _index(us) for s, us in units.items()}
    count = {s: sum(weight[h] > 0 for h in p) for s, p in prints.items()}
    unweighed = {h for h, w in weight.items() if w == 0}
    kgrams: dict[str, set[int]] = {}  # every k-gram of a student in a flagged pair, for the page
    out = []
    for s, t in _candidates(sorted(codes, key=lambda x: shown[x]), prints, weight):
        shared = {h for h in prints[s] & prints[t] if weight[h] > 0}
        value = _total(weight[h] for h in shared) / min(mass[s], mass[t])
        value *= min(1.0, min(count[s], count[t]) / MIN_PRINTS)
        value = round(min(value, 1.0), DECIMALS)
        functions = _unit_matches(units[s], units[t], index[t], shared, weight)
        flagged = value >= THRESHOLD
        seen = frozenset()
        if flagged:
            for x in (s, t):
                if x not in kgrams:
                    kgrams[x] = {h for u in codes[x].units for h in u.kgrams}
            seen = frozenset(kgrams[s] & kgrams[t] - excluded - unweighed)
        out.append(PairScore(shown[s], shown[t], value, flagged, functions, seen))
    out.sort(key=lambda p: (-p.similarity, p.a, p.b))
    return out
