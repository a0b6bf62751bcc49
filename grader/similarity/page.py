"""Rendering code similarity: ``similarity/code.csv`` and ``similarity/code.html``.

Pure functions from ``PairScore``s (grader.similarity.pairs) and each student's ``Code`` to text.

* CSV: columns ``student_a,student_b,similarity,flagged,functions``, one row per pair (``a < b``)
  that shares a weighed fingerprint (every other pair scores 0 and is left out: a class of n has
  n(n-1)/2 pairs), most similar first; similarity with ``DECIMALS`` decimals, flagged ``true``/``false``, the
  functions joined by ``"; "``; every cell through ``grader.reports.safe_cell`` as in scores.csv.
* HTML: each flagged pair's code side by side, every file of each, the tokens of the k-grams the
  two share (and the class does not mostly share) inside ``<mark>``. Everything from a
  submission (ids, file names, function names, code) is cleaned and escaped
  (``grader.written.pages.h``: control characters and bidirectional overrides made visible);
  the page has no script, no link to anything outside it, and a Content-Security-Policy that allows
  only its own inline style (by hash). At most ``MAX_PAIRS_SHOWN`` pairs are drawn; the CSV has all.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Mapping

from grader.reports import safe_cell
from grader.similarity import fingerprints, pairs
from grader.similarity.fingerprints import Code
from grader.similarity.pairs import PairScore
from grader.written.pages import h

CSV_COLUMNS = ("student_a", "student_b", "similarity", "flagged", "functions")
ANONYMOUS_NOTE = "anonymous (codes; the code is shown as handed in, so its comments may still name a student)"
MAX_PAIRS_SHOWN = 200
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1a1a1a; }
table.pair { border-collapse: collapse; width: 100%; table-layout: fixed; }
table.pair td { vertical-align: top; border: 1px solid #ccc; padding: 0.25rem 0.5rem; width: 50%; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font: 12px/1.35 ui-monospace, monospace; margin: 0; }
mark { background: #ffe08a; }
article { border-top: 2px solid #333; margin-top: 2rem; padding-top: 0.5rem; }
.meta { color: #555; font-size: 0.9rem; }
h3 { font-size: 0.95rem; margin: 0.5rem 0 0.2rem; }
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'none'; script-src 'none'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")


def code_csv(scores: list[PairScore]) -> str:
    """The CSV text (see the module docstring)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in scores:
        writer.writerow([safe_cell(p.a), safe_cell(p.b), safe_cell(f"{p.similarity:.{pairs.DECIMALS}f}"),
                         "true" if p.flagged else "false", safe_cell("; ".join(p.functions))])
    return buf.getvalue()


def marked_ranges(code: Code, shared: frozenset[int] | set[int]) -> dict[int, list[tuple[int, int]]]:
    """``{file index: [(start, end)]}``: the character ranges of the k-grams whose hash is in
    ``shared``, merged and sorted."""
    k = fingerprints.K
    raw: dict[int, list[tuple[int, int]]] = {}
    for unit in code.units:
        for i, value in enumerate(unit.kgrams):
            if value in shared:
                raw.setdefault(unit.file, []).append((unit.spans[i][0], unit.spans[i + k - 1][1]))
    merged: dict[int, list[tuple[int, int]]] = {}
    for file, ranges in raw.items():
        out: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[file] = out
    return merged


def highlighted(text: str, ranges: list[tuple[int, int]]) -> str:
    """``text`` escaped, with ``ranges`` (character offsets) inside ``<mark>``."""
    out, last = [], 0
    for start, end in ranges:
        start, end = max(start, last), min(end, len(text))
        if start >= end:
            continue
        out += [h(text[last:start]), "<mark>", h(text[start:end]), "</mark>"]
        last = end
    out.append(h(text[last:]))
    return "".join(out)


def _side(name: str, code: Code, shared: frozenset[int]) -> str:
    marks = marked_ranges(code, shared)
    parts = [f"<h3>{h(name)}</h3>"]
    for i, (file, text) in enumerate(code.files):
        parts += [f'<p class="meta">{h(file)}</p>', f"<pre>{highlighted(text, marks.get(i, []))}</pre>"]
    return "".join(parts)


def code_html(scores: list[PairScore], codes: Mapping[str, Code], anonymous: bool) -> str:
    """The page (see the module docstring); ``codes`` keyed by the names the scores show."""
    flagged = [p for p in scores if p.flagged]
    compared = len(codes) * (len(codes) - 1) // 2
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        "<title>Code similarity</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>Code similarity</h1>",
        f'<p class="meta">{len(codes)} submissions with code, {compared} pairs compared, {len(scores)} sharing '
        f"code (in code.csv; the others score 0), {len(flagged)} flagged "
        f"(similarity \u2265 {pairs.THRESHOLD:g}; k-grams of {fingerprints.K} normalised tokens, winnowing window "
        f"{fingerprints.W}; the starter template excluded; fingerprints held by at least "
        f"{pairs.COMMON_SHARE:.0%} of the class not weighed) \u00b7 "
        f"{ANONYMOUS_NOTE if anonymous else 'named'}. A flag is a reason "
        "to look, not a finding.</p>",
    ]
    if not flagged:
        out.append("<p>No pair flagged.</p>")
    for n, p in enumerate(flagged[:MAX_PAIRS_SHOWN], 1):
        out += [f'<article id="pair{n}">',
                f"<h2>{h(p.a)} \u00b7 {h(p.b)}: {p.similarity:.{pairs.DECIMALS}f}</h2>",
                f'<p class="meta">matching functions: {h("; ".join(p.functions)) or "none in particular"}</p>',
                '<table class="pair"><tr>',
                f"<td>{_side(p.a, codes[p.a], p.shared)}</td><td>{_side(p.b, codes[p.b], p.shared)}</td>",
                "</tr></table>", "</article>"]
    if len(flagged) > MAX_PAIRS_SHOWN:
        out.append(f"<p>{len(flagged) - MAX_PAIRS_SHOWN} more flagged pairs are in code.csv.</p>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
