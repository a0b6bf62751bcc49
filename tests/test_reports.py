"""Reports: spreadsheet-safe CSV, deterministic rendering, the results schema round trip."""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from decimal import Decimal

from grader.atomic import write_atomic
from grader.reports import (class_summary, feedback_markdown, mistake_students, safe_cell, scores_csv,
                            summary_markdown)
from grader.results import StudentResult
from grader.scoring import CheckResult


def _result(student: str, passed: bool = True, status: str = "ok") -> StudentResult:
    checks = [
        CheckResult("gaussian_kl", "value", Decimal("4") if passed else Decimal(0), Decimal("4"), passed,
                    "1.0", "2.0", None if passed else "missing_half", "" if passed else "Likely mistake ...\nvalue: differ"),
        CheckResult("elbo", "value", Decimal("0.5"), Decimal("0.5"), True, "", "", None, ""),
    ]
    return StudentResult(student=student, status=status, message="", checks=checks,
                         submission={"source": f"{student}.py", "kind": "py", "sha256": "0" * 64, "entry": "x.py",
                                     "mode": "full", "notes": []},
                         rubric={"version": "r1", "sha256": "1" * 64, "seed": 1}, versions={"grader": "0.1.0"},
                         durations={"total_s": 0.1})


def test_formula_like_cells_are_neutralised():
    for bad in ("=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad) == "'" + bad
    assert safe_cell("alice") == "alice"


def test_scores_csv_rows_sorted_and_safe():
    text = scores_csv([_result("zoe"), _result("=cmd|' /C calc'!A0", passed=False), _result("--out")],
                      ["gaussian_kl", "elbo"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["student", "total", "max_score", "gaussian_kl", "elbo", "late_days", "late_penalty", "status"]
    assert [r[0] for r in rows[1:]] == ["'--out", "'=cmd|' /C calc'!A0", "zoe"]
    assert rows[2][1:4] == ["0.5", "4.5", "0"]


def test_results_json_round_trips_exactly():
    r = _result("émile café", passed=False)
    again = StudentResult.from_dict(__import__("json").loads(r.to_json()))
    assert again.to_json() == r.to_json()
    assert r.to_dict()["score"] == "0.5" and r.to_dict()["max_score"] == "4.5"


def test_feedback_shows_failed_check_details_and_totals():
    md = feedback_markdown(_result("bob", passed=False))
    assert "**Score: 0.5 / 4.5**" in md
    assert "- **FAIL** `value` (0 / 4)" in md and "Likely mistake ..." in md
    assert "| `gaussian_kl` | 0 / 4 | 0 / 1 |" in md


def test_summary_counts_mistakes_deterministically():
    s = class_summary([_result("a", passed=False), _result("b", passed=False), _result("c")], {"rubric": {}})
    assert s["mistakes"] == [{"mistake": "gaussian_kl: missing_half", "students": 2}]
    assert s["pass_rate"]["gaussian_kl/value"] == "1/3"
    assert "| gaussian_kl: missing_half | 2 |" in summary_markdown(s)


def _many_failures(student: str) -> StudentResult:
    """Five failed checks of one function with one diagnosis, and one more elsewhere."""
    r = _result(student, passed=False)
    extra = [CheckResult("gaussian_kl", name, Decimal(0), Decimal("1"), False, "", "", "missing_half", "")
             for name in ("extreme_inputs", "float32", "column_shape", "gradient")]
    extra.append(CheckResult("elbo", "float32", Decimal(0), Decimal("1"), False, "", "", "plus_kl", ""))
    extra.append(CheckResult("elbo", "gradient", Decimal("1"), Decimal("1"), True, "", "", "plus_kl", ""))  # passed
    return replace(r, checks=r.checks + extra)


def test_mistakes_are_counted_in_students_not_failed_checks():
    """11 failed checks of 2 students are 2 students, in summary.md, summary.json and the HTML
    report alike (one definition: grader.reports.mistake_students)."""
    from grader.exports.class_report import _mistakes_section

    results = [_many_failures("b"), _many_failures("a"), _result("c"), _result("d", passed=False)]
    assert mistake_students(results) == [("gaussian_kl", "missing_half", ["a", "b", "d"]),
                                         ("elbo", "plus_kl", ["a", "b"])]
    s = class_summary(results, {"rubric": {}})
    assert s["mistakes"] == [{"mistake": "gaussian_kl: missing_half", "students": 3},
                             {"mistake": "elbo: plus_kl", "students": 2}]
    md = summary_markdown(s)
    assert "| gaussian_kl: missing_half | 3 |" in md and "| elbo: plus_kl | 2 |" in md
    html = _mistakes_section(results)
    assert '<td class="num">3</td>' in html and '<td class="num">2</td>' in html
    assert mistake_students([_result("c")]) == []   # a passed check names no mistake


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_suspected_tampering_is_listed_for_the_ta_only():
    """summary.json, summary.md and the HTML class report list each student whose result records
    suspected tampering, with what was detected (escaped), as information and not a verdict; the
    compact rows carry it as the full results do; the student's feedback never mentions it."""
    from grader.exports.class_report import _tampering_section
    from grader.reports import TAMPERING_NOTE, suspected_tampering
    from grader.tally import ResultRow

    detected = ["grader.sandbox.calls._call_function replaced", "<img src=x onerror=alert(1)> | \udcff"]
    liar = replace(_result("z_liar"), sandbox={"isolation": "namespaces", "suspected_tampering": detected})
    odd = replace(_result("<b>x</b>"), sandbox={"suspected_tampering": ["builtins.len replaced"]})
    results = [_result("a"), liar, odd, replace(_result("b"), sandbox={"isolation": "namespaces"})]
    rows = [ResultRow.of(r) for r in results]
    assert suspected_tampering(rows) == suspected_tampering(results) == [
        ("<b>x</b>", ["builtins.len replaced"]), ("z_liar", [detected[0], "<img src=x onerror=alert(1)> | \ufffd"])]
    s = class_summary(rows, {"rubric": {}})
    assert s == class_summary(results, {"rubric": {}})
    assert [(e["student"], len(e["detected"])) for e in s["suspected_tampering"]] == [("<b>x</b>", 1), ("z_liar", 2)]
    md = summary_markdown(s)
    section = md[md.index("## Suspected tampering (for the TA only)"):]
    assert "not a verdict" in section and "never shown to students" in section
    assert "z\\_liar" in section and "\\_call\\_function replaced" in section
    assert "<img" not in md and "<b>" not in md and "&lt;img" in section
    assert "Suspected tampering" not in summary_markdown(class_summary([_result("a")], {"rubric": {}}))
    html = _tampering_section(results)
    assert "<bdi>z_liar</bdi>" in html and "<bdi>&lt;b&gt;x&lt;/b&gt;</bdi>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert TAMPERING_NOTE.split(":")[0] in html and "not a verdict" in html
    assert "tamper" not in feedback_markdown(liar).lower() and "_call_function" not in feedback_markdown(liar)
    assert "No submission reported" in _tampering_section([_result("a")])
