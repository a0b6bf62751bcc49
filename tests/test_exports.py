"""Exports: Gradescope results.json and the /autograder layout, the LMS gradebook join, the class
report (HTML + PNG), and the diff between two gradings (with regrading one student).

Pure tests use made-up results; three tests grade ``submissions/alice_logsigmoid.py`` (a correct
example entry) through the sandbox, about 5 s each."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import struct
import subprocess
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest

import grader.sandbox
from grader import reports
from grader.atomic import write_atomic
from grader.exports import copy_as_data, load_results, md_code
from grader.exports.class_report import SECTIONS, build_report, render_plots, write_report
from grader.outlock import OutputBusy, output_lock
from grader.exports.diff import diff_folders, diff_markdown, regrade_one, update_scores_row
from grader.exports.gradescope import GradescopeConfig, results_json, results_json_text, run_in_gradescope_layout
from grader.exports.lms import build_lms_export, parse_canvas_name, write_lms_export
from grader.results import StudentResult
from grader.rubric import load_rubric
from grader.scoring import points_str
from grader.run import GradingOptions
from grader.scoring import CheckResult, points_str

ROOT = Path(__file__).resolve().parents[1]
ALICE = ROOT / "submissions" / "alice_logsigmoid.py"
SECRET = "SECRET-HIDDEN-INPUT-314159"  # in every ``hidden`` field: must never reach a student
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check(function: str, name: str, points: str, passed: bool, message: str = "", diagnosis: str | None = None,
          description: str = "what it tests") -> CheckResult:
    top = Decimal(points)
    return CheckResult(function, name, top if passed else Decimal(0), top, passed, "1.0" if not passed else "",
                       "2.0" if not passed else "", diagnosis, message or ("1 call(s) matched the reference" if passed else
                                                                           "value: 1 of 1 value(s) differ"),
                       description, None if passed else {"case": f"{function}/{name}/0", "args": [SECRET], "kwargs": {}})


def result(student: str, passed: dict[str, bool] | None = None, status: str = "ok", message: str = "",
           notes: list[str] | None = None, sha: str = "a" * 64, total_s: float = 0.5,
           isolation: str = "namespaces") -> StudentResult:
    """Two functions, three checks: gaussian_kl/value (4), gaussian_kl/float32 (1), elbo/value (0.5)."""
    passed = {"gaussian_kl/value": True, "gaussian_kl/float32": True, "elbo/value": True, **(passed or {})}
    checks = [
        check("gaussian_kl", "value", "4", passed["gaussian_kl/value"],
              "" if passed["gaussian_kl/value"] else "Likely mistake (sign_flip): the KL's sign is flipped\nvalue: differ",
              None if passed["gaussian_kl/value"] else "sign_flip", "matches the reference"),
        check("gaussian_kl", "float32", "1", passed["gaussian_kl/float32"], description="float32 inputs"),
        check("elbo", "value", "0.5", passed["elbo/value"], description="matches the reference"),
    ]
    return StudentResult(student=student, status=status, message=message, checks=checks,
                         submission={"source": f"{student}.py", "kind": "py", "sha256": sha, "entry": "solution.py",
                                     "mode": "full", "notes": notes or []},
                         rubric={"version": "r1", "sha256": "1" * 64, "seed": 7},
                         versions={"grader": "0.1.0", "python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6"},
                         sandbox={"isolation": isolation, "limits": {}, "output_dropped_bytes": 0},
                         durations={"total_s": total_s, "sandbox_s": total_s / 2})


def write_folder(out: Path, results: list[StudentResult], summary: dict | None = None) -> Path:
    """A grading output folder as ``grader.run`` writes it."""
    for r in results:
        write_atomic(reports.result_path(out, r.student, "results", ".json"), r.to_json())
        write_atomic(reports.result_path(out, r.student, "feedback", ".md"), reports.feedback_markdown(r))
    write_atomic(out / "scores.csv", reports.scores_csv(results, ["gaussian_kl", "elbo"]))
    meta = summary or {"rubric": {"version": "r1", "sha256": "1" * 64, "seed": 7}, "versions": {"grader": "0.1.0"},
                       "intake_notes": ["ignored README.md: not a submission"], "isolation": "namespaces",
                       "limits": {"call_wall_s": 5.0}}
    s = reports.class_summary(sorted(results, key=lambda r: r.student), meta)
    write_atomic(out / "summary.json", reports.summary_json(s))
    return out


# ------------------------------------------------------------------------------------ Gradescope

def test_gradescope_failing_result_has_every_key_and_no_hidden_inputs():
    r = result("bob", {"gaussian_kl/value": False}, notes=["ignored <script>alert(1)</script>.DS_Store"])
    out = results_json(r)
    assert list(out) == ["execution_time", "output", "output_format", "visibility", "stdout_visibility",
                         "extra_data", "tests"]  # no top-level score: the tests carry them
    assert out["execution_time"] == 0.5 and out["output_format"] == "md"
    assert out["visibility"] == "visible" and out["stdout_visibility"] == "hidden"
    assert [t["name"] for t in out["tests"]] == ["gaussian_kl / value", "gaussian_kl / float32", "elbo / value"]
    assert [t["number"] for t in out["tests"]] == ["1.1", "1.2", "2.1"]
    first = out["tests"][0]
    assert set(first) == {"score", "max_score", "status", "name", "number", "output", "output_format", "tags",
                          "visibility"}
    assert (first["score"], first["max_score"], first["status"]) == (0, 4, "failed")
    assert first["tags"] == ["gaussian_kl"] and first["output_format"] == "md"
    assert first["visibility"] == "after_published"  # every input is drawn from the rubric's secret seed
    assert "**FAIL** (0 / 4): matches the reference" in first["output"]
    assert "```text\nLikely mistake (sign_flip): the KL's sign is flipped\nvalue: differ\n```" in first["output"]
    assert [(t["score"], t["status"]) for t in out["tests"][1:]] == [(1, "passed"), (0.5, "passed")]
    text = results_json_text(out)
    assert "seed" not in text  # the rubric's seed makes the inputs hidden: never in a student's results
    assert SECRET not in text and "hidden" not in json.dumps([t["output"] for t in out["tests"]])
    assert "<script>" not in text  # the student's file name, escaped in the Markdown output
    assert "Score:" not in out["output"]  # while tests are not visible, neither is the total
    assert "shown when the grades are published" in out["output"]
    assert out["extra_data"] == {"status": "ok", "sha256": "a" * 64, "rubric_version": "r1",
                                 "grader": "0.1.0", "isolation": "namespaces"}


def test_gradescope_passing_result_and_public_checks():
    config = GradescopeConfig(public_checks=("gaussian_kl/*",))
    out = results_json(result("alice"), config)
    assert [t["visibility"] for t in out["tests"]] == ["visible", "visible", "after_published"]
    assert all(t["status"] == "passed" for t in out["tests"])
    assert sum(t["score"] for t in out["tests"]) == 5.5
    assert "Public checks: 5 / 5 points. The other 1 checks run on hidden inputs" in out["output"]
    everything = results_json(result("alice"), GradescopeConfig(hidden_inputs_visibility="visible"))
    assert "**Score: 5.5 / 5.5**" in everything["output"]
    assert "Grading isolation: kernel namespaces" in everything["output"]
    with pytest.raises(ValueError, match="hidden_inputs_visibility"):
        GradescopeConfig(hidden_inputs_visibility="later")


def test_gradescope_leaves_written_questions_to_gradescope_unless_asked():
    r = result("alice")
    r.checks.append(CheckResult("written", "Q1", Decimal(0), Decimal(5), False, "", "", None, "Not marked yet.",
                                "Q1 (written, marked by hand)"))
    out = results_json(r, GradescopeConfig(hidden_inputs_visibility="visible"))
    assert [t["name"] for t in out["tests"]] == ["gaussian_kl / value", "gaussian_kl / float32", "elbo / value"]
    assert "**Score: 5.5 / 5.5**" in out["output"]  # the tests' total, not the result's 5.5 / 10.5
    assert "The written answers (Q1; 5 points) are marked by hand, outside the autograder." in out["output"]
    both = results_json(r, GradescopeConfig(include_written=True))
    assert both["tests"][-1]["name"] == "written / Q1" and both["tests"][-1]["number"] == "3.1"
    assert "Not marked yet." in both["tests"][-1]["output"] and "marked by hand, outside" not in both["output"]


def test_gradescope_load_error_message_is_fenced_and_visible():
    r = result("sam", {"gaussian_kl/value": False, "gaussian_kl/float32": False, "elbo/value": False},
               status="load_error", message="SyntaxError at line 16: expected ':'\n    elif kind == ```x```")
    out = results_json(r)
    assert out["output"].startswith("**Submission could not be loaded.**")
    assert "````text\nSyntaxError at line 16" in out["output"]  # fence longer than the backticks inside


def _gradescope_root(tmp_path: Path) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    shutil.copy(ALICE, root / "submission" / ALICE.name)
    return root


def _check_alice(root: Path) -> dict:
    returned = run_in_gradescope_layout(root)
    path = root / "results" / "results.json"
    out = json.loads(path.read_text("utf-8"))
    assert out == returned
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # atomic: no temporary left
    assert "score" not in out and out["tests"]
    assert all(t["status"] == "passed" for t in out["tests"]), [t for t in out["tests"] if t["status"] != "passed"]
    full = float(load_rubric().max_score())    # the automatic part: written questions are Gradescope's own
    assert sum(t["score"] for t in out["tests"]) == sum(t["max_score"] for t in out["tests"]) == full
    assert out["extra_data"]["status"] == "ok" and out["execution_time"] > 0
    return out


def test_autograder_layout_end_to_end(tmp_path):
    root = _gradescope_root(tmp_path)
    available, _ = grader.sandbox.isolation_available()
    out = _check_alice(root)
    if available:
        assert out["extra_data"]["isolation"] == "namespaces"
        assert "Grading isolation: kernel namespaces" in out["output"]


@pytest.fixture
def no_namespaces(monkeypatch):
    """As in Docker's default seccomp profile: the namespace probe fails (and, where this Python is
    closed to other users, the course allows the capability-less uid 0 that is left)."""
    monkeypatch.setattr(grader.sandbox, "isolation_available", lambda: (False, "unshare: Operation not permitted"))
    monkeypatch.setenv("GRADER_ALLOW_UID0_SUBMISSIONS", "1")


def test_autograder_layout_without_namespaces_says_so(tmp_path, no_namespaces):
    root = _gradescope_root(tmp_path)
    out = _check_alice(root)
    assert out["extra_data"]["isolation"] == "none"
    assert "Grading isolation: none at the kernel level" in out["output"]
    assert "unshare: Operation not permitted" in out["output"]
    assert "UNSANDBOXED" not in out["output"]  # the pool's warning to the TA is not shown to the student


def test_autograder_layout_refuses_when_told_to(tmp_path, no_namespaces):
    root = _gradescope_root(tmp_path)
    out = run_in_gradescope_layout(root, allow_unsandboxed=False)
    assert out["score"] == 0 and out["tests"] == []
    assert "kernel isolation is unavailable here" in out["output"]
    assert json.loads((root / "results" / "results.json").read_text("utf-8")) == out


# ------------------------------------------------------------------------------------------ LMS

ROSTER = "\n".join([
    "Student_ID,Name,Email,Canvas_ID,Section",
    "s001,John Smith,jsmith@uni.edu,12345,A",
    "s002,José García,jgarcia@uni.edu,,B",                                     # Canvas id only in the gradebook
    unicodedata.normalize("NFD", "émile") + ",Émile Zola,ez@uni.edu,,A",      # NFD id, matched by an NFC file
    "s004,Ana López,ana.lopez@uni.edu,,A",                                      # matched on the email's local part
    unicodedata.normalize("NFD", "s005,Zoë Müller,zm@uni.edu,,B"),             # matched by name only (NFD)
    "s006,Li Wei,lw1@uni.edu,,A",
    "s007,Li Wei,lw2@uni.edu,,B",                                               # two Li Wei: ambiguous
    "s008,Many Files,mf@uni.edu,,A",                                            # two submissions
    "s009,Never Submitted,ns@uni.edu,,A",                                       # no submission
    's010,"=HYPERLINK(""http://evil"",""x"")",@evil.edu,,+A',                   # formula cells
    "s011,Broke Grader,bg@uni.edu,,A",                                          # sandbox_error: not exported
    "s012,Bad Load,bl@uni.edu,,A",                                              # load_error: exported, flagged
    "s001,John Again,dup@uni.edu,,A",                                           # duplicate roster id
]) + "\n"

GRADEBOOK = "\ufeff" + "\n".join([
    "Student,ID,SIS User ID,SIS Login ID,Section,HW3 (4242),Quiz 1 (77)",
    "    Points Possible,,,,,80,10",
    "\"García, José\",23456,s002,jgarcia,B,,",
    "\"Ghost, Gabe\",99999,s999,ghost,C,,",
]) + "\n"

SUBMISSIONS = {
    "smithjohn_12345_67890_solution": "ok",         # Canvas name -> roster canvas_id
    "garciajose_LATE_23456_11111_hw3": "ok",        # Canvas name, LATE -> gradebook ID -> SIS User ID
    unicodedata.normalize("NFC", "ÉMILE"): "ok",    # case and NFC/NFD
    "ana.lopez": "ok",
    "zoe_muller": "ok",
    "li_wei": "ok",
    "mf@uni.edu": "ok",
    "s008": "ok",
    "stranger": "ok",                                # on no roster
    "bg@uni.edu": "sandbox_error",
    "s012": "load_error",
}


def lms_export():
    none = {"gaussian_kl/value": False, "gaussian_kl/float32": False, "elbo/value": False}
    results = {s: result(s, None if status == "ok" else none, status=status,
                         message="" if status == "ok" else f"{status} happened")
               for s, status in SUBMISSIONS.items()}
    return build_lms_export(results, ROSTER, GRADEBOOK, assignment="HW3")


@pytest.mark.parametrize("name, expected", [
    ("smithjohn_12345_67890_solution", ("smithjohn", "12345", False)),
    ("garciajose_LATE_23456_11111_hw3", ("garciajose", "23456", True)),
    ("smithjohn_12345_67890_my_file-1", ("smithjohn", "12345", False)),
    ("smithjohn_12345_67890", ("smithjohn", "12345", False)),
    ("alice_logsigmoid", None),
    ("_12345_67890_x", None),
])
def test_canvas_download_names(name, expected):
    assert parse_canvas_name(name) == expected


def test_lms_join_with_every_kind_of_mismatch(tmp_path):
    e = lms_export()
    rows = list(csv.reader(io.StringIO(e.csv_text)))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW3 (4242)"]
    by_sis = {row[2]: row for row in rows[1:]}
    assert by_sis["s001"] == ["John Smith", "12345", "s001", "", "A", "5.5"]
    assert by_sis["s002"] == ["José García", "23456", "s002", "jgarcia", "B", "5.5"]
    assert by_sis[unicodedata.normalize("NFD", "émile")][5] == "5.5"
    assert by_sis["s004"][5] == "5.5" and by_sis["s005"][5] == "5.5"
    for empty in ("s006", "s007", "s008", "s009", "s011"):
        assert by_sis[empty][5] == "", empty
    assert by_sis["s012"][5] == "0"
    assert len(rows) == 1 + 12  # every roster entry once (the duplicate line dropped, and reported)

    how = {m.student: m.how for m in e.matches}
    assert how["smithjohn_12345_67890_solution"] == "canvas user id 12345"
    assert how["garciajose_LATE_23456_11111_hw3"] == "canvas user id 23456"
    assert how["ÉMILE"] == "student_id" and how["ana.lopez"] == "email" and how["zoe_muller"] == "name (confirm)"
    assert e.not_on_roster == ["stranger"]
    assert e.without_submission == ["s006", "s007", "s009", "s010"]  # ambiguous ones got nothing either
    assert e.ambiguous == {"li_wei": ["s006", "s007"]}
    assert e.several_submissions == {"s008": ["mf@uni.edu", "s008"]}
    assert e.gradebook_not_on_roster == ["Ghost, Gabe (ID 99999)"]
    assert e.duplicate_roster_ids == ["s001"]
    assert "LATE" in e.flagged["garciajose_LATE_23456_11111_hw3"]
    assert e.flagged["bg@uni.edu"].startswith("status sandbox_error: not exported")
    assert e.flagged["s012"].startswith("status load_error, exported as 0")
    assert "by name only" in e.flagged["zoe_muller"]
    report = e.report_markdown
    for title in ("Submissions not on the roster (1)", "Roster entries without a matched submission (4)",
                  "Submissions matching several roster entries (1)", "Roster entries with several submissions (1)",
                  "Gradebook rows not on the roster (1)", "Student ids listed more than once in the roster (1)"):
        assert f"## {title}" in report
    assert "| `stranger` | 5.5 | ok |" in report
    csv_path, report_path = write_lms_export(e, tmp_path)
    assert csv_path.read_text("utf-8") == e.csv_text and report_path.read_text("utf-8") == report


def test_lms_csv_is_spreadsheet_safe():
    rows = list(csv.reader(io.StringIO(lms_export().csv_text)))
    evil = next(row for row in rows if row[2] == "s010")
    assert evil[0] == "'=HYPERLINK(\"http://evil\",\"x\")" and evil[4] == "'+A"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_lms_roster_without_required_column():
    from grader.exports.lms import LmsError

    with pytest.raises(LmsError, match="no column email"):
        build_lms_export({}, "student_id,name\ns1,A\n")


# ----------------------------------------------------------------------------------- class report

HOSTILE = "<img src=x onerror=alert(1)>\u202eevil"


def class_folder(tmp_path: Path) -> Path:
    results = [
        result("alice", total_s=1.25),
        result("bob", {"gaussian_kl/value": False}, total_s=0.75),
        result("carol", {"gaussian_kl/value": False, "elbo/value": False}, total_s=2.0),
        result(HOSTILE, {"gaussian_kl/value": False, "gaussian_kl/float32": False, "elbo/value": False},
               status="load_error", message="SyntaxError </pre><script>alert(2)</script>", total_s=0.1),
        result("uma", {"gaussian_kl/float32": False}, status="timeout",
               message="Ran out of time in: gaussian_kl (other functions were graded).", total_s=5.5),
    ]
    return write_folder(tmp_path / "out", results)


def _pngs(html_text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def test_class_report_sections_pngs_and_escaping(tmp_path):
    out = class_folder(tmp_path)
    path = write_report(out, png_dir=tmp_path / "png")
    text = path.read_text("utf-8")
    assert path == out / "report.html"
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in text, section
    pngs = _pngs(text)
    assert len(pngs) == 3
    for png in pngs:
        assert png[:8] == PNG_SIGNATURE
        width, height = struct.unpack(">II", png[16:24])  # IHDR
        assert width >= 400 and height >= 200, (width, height)
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "report_checks.png", "report_functions.png", "report_scores.png"]
    lowered = text.lower()
    assert "<script" not in lowered and "<img src=x" not in lowered and "</pre><script" not in lowered
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "<bdi>&lt;img src=x onerror=alert(1)&gt;\u202eevil</bdi>" in text
    # the numbers
    assert "<td><code>gaussian_kl</code></td><td><code>sign_flip</code></td><td class=\"num\">3</td>" in text
    assert "<td><code>gaussian_kl</code></td><td><code>value</code></td><td class=\"num\">2 / 5</td>" in text
    assert "9.60 s" in text and "5.50 s (<bdi>uma</bdi>)" in text  # total and max per submission
    assert "r1" in text and "20261124" not in text and ">7<" in text  # rubric version and seed
    assert "ignored README.md: not a submission" in text
    assert build_report(out, render_plots(list(load_results(out).values()))) == text  # deterministic
    assert "last run, start to end" not in text  # no run.json: no row
    write_atomic(out / "run.json", json.dumps({"wall_s": 12.345, "graded": 4, "resumed": 1, "workers": 2}))
    assert "12.35 s (4 graded, 1 reused, 2 workers)" in build_report(out)


def test_class_report_renders_in_a_browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no headless chromium here")
    path = write_report(class_folder(tmp_path))
    shot = tmp_path / "shot.png"
    try:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1200,2000", path.as_uri()], capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish in 60 s")
    if not shot.exists():
        pytest.skip("chromium could not take a screenshot here")
    data = shot.read_bytes()
    assert data[:8] == PNG_SIGNATURE and struct.unpack(">II", data[16:24]) == (1200, 2000)


# ------------------------------------------------------------------------------------------ diff

def test_diff_shows_changed_scores_and_why(tmp_path):
    old = write_folder(tmp_path / "old", [
        result("alice"), result("bob", {"gaussian_kl/value": False}), result("gone"),
        result("sam", {"gaussian_kl/value": False, "gaussian_kl/float32": False, "elbo/value": False},
               status="load_error", message="SyntaxError at line 3"),
        result("same|pipe`tick"),
    ])
    new = write_folder(tmp_path / "new", [
        result("alice", {"elbo/value": False}),
        result("bob", sha="b" * 64),
        result("sam", {"gaussian_kl/value": False}),
        result("newcomer"),
        result("same|pipe`tick"),
    ])
    text = diff_folders(old, new)
    assert text == diff_folders(old, new)  # deterministic
    assert "- changed: 5 (added 1, removed 1); unchanged: 1" in text
    assert "| `alice` | 5.5 | 5 | -0.5 | ok | 1 |" in text
    assert "| `bob` | 1.5 | 5.5 | +4 | ok | 1 |" in text
    assert "| `sam` | 0 | 1.5 | +1.5 | load_error → ok | 2 |" in text
    assert "| `gone` | 5.5 | - | removed | ok → - | 0 |" in text
    assert "| `newcomer` | - | 5.5 | added | - → ok | 0 |" in text
    assert "same|pipe" not in text.split("## ")[0]  # unchanged: not in the table
    bob = text.split("## `bob`")[1].split("## ")[0]
    assert "- total: 1.5 / 5.5 → 5.5 / 5.5 (+4)" in bob and "- submission sha256 changed: aaaaaaaaaaaa → bbbbbbbbbbbb" in bob
    assert "- FAIL → PASS: `gaussian_kl / value` (FAIL 0/4 → PASS 4/4)" in bob
    assert "failed before with:" in bob and "Likely mistake (sign_flip): the KL's sign is flipped" in bob
    alice = text.split("## `alice`")[1].split("## ")[0]
    assert "- PASS → FAIL: `elbo / value` (PASS 0.5/0.5 → FAIL 0/0.5)" in alice and "now fails with:" in alice
    sam = text.split("## `sam`")[1]
    assert "- message: `SyntaxError at line 3` → `(none)`" in sam
    assert "`gaussian_kl / float32` (FAIL 0/1 → PASS 1/1), `elbo / value` (FAIL 0/0.5 → PASS 0.5/0.5)" in sam
    assert SECRET not in text
    assert diff_markdown({}, {}).endswith("No student's score, status or checks changed.\n")
    assert md_code("same|pipe`tick") == "``same\\|pipe`tick``"


def test_scores_row_is_replaced_and_others_kept():
    before = reports.scores_csv([result("=evil"), result("alice"), result("zed")], ["gaussian_kl", "elbo"])
    text, note = update_scores_row(before, result("bob", {"gaussian_kl/value": False}))
    assert note == ""
    assert text.splitlines() == [before.splitlines()[0], "'=evil,5.5,5.5,5,0.5,0,0,ok", "alice,5.5,5.5,5,0.5,0,0,ok",
                                 "bob,1.5,5.5,1,0.5,0,0,ok", "zed,5.5,5.5,5,0.5,0,0,ok"]
    again, _ = update_scores_row(text, result("=evil", {"elbo/value": False}))
    assert again.splitlines()[1] == "'=evil,5,5.5,5,0,0,0,ok"
    _, note = update_scores_row("student,total,max_score,other,status\n", result("bob"))
    assert "another rubric" in note


def test_regrade_one_student(tmp_path):
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    shutil.copy(ALICE, class_dir / ALICE.name)
    (class_dir / "zed.py").write_text("raise SystemExit  # never graded here\n")
    out = tmp_path / "out"
    stale = result("alice_logsigmoid", {"gaussian_kl/value": False}, sha="0" * 64)
    write_folder(out, [stale, result("zed")])
    functions = [*load_rubric().points, "written"]  # scores.csv columns as grade_class writes them
    write_atomic(out / "scores.csv", reports.scores_csv([stale, result("zed")], functions))
    write_atomic(out / "logs" / "alice_logsigmoid.txt", "stale log")
    write_atomic(out / "manual.csv", "student,question,points,comment\nalice_logsigmoid,Q1,4,clear and correct\n")
    zed_row = (out / "scores.csv").read_text("utf-8").splitlines()[2]

    with pytest.raises(KeyError, match="did you mean 'alice_logsigmoid'"):
        regrade_one(class_dir, out, "alice_logsigmoyd", GradingOptions(out_dir=out))
    report = regrade_one(class_dir, out, "alice_logsigmoid", GradingOptions(out_dir=out))

    code = [c for c in report.new.checks if c.function != "written"]
    assert report.new.status == "ok" and all(c.passed for c in code) and sum(c.score for c in code) == load_rubric().max_score()
    q1 = next(c for c in report.new.checks if (c.function, c.name) == ("written", "Q1"))
    assert q1.score == 4 and "clear and correct" in q1.message  # the TA's mark survived the regrade
    full = load_rubric().max_score() + 4
    full = Decimal(points_str(full))
    assert report.new.score == full and report.old.score == Decimal("1.5")
    assert f"| `alice_logsigmoid` | 1.5 | {full} | +{full - Decimal('1.5')} | ok |" in report.diff
    assert "submission sha256 changed: 000000000000 →" in report.diff
    saved = json.loads((out / "results" / "alice_logsigmoid.json").read_text("utf-8"))
    assert saved["score"] == str(full) and saved["submission"]["sha256"] == report.new.submission["sha256"]
    assert f"**Score: {full} / {points_str(report.new.max_score)}**" in (out / "feedback" / "alice_logsigmoid.md").read_text("utf-8")
    assert (out / "logs" / "alice_logsigmoid.txt").read_text("utf-8") != "stale log"
    rows = (out / "scores.csv").read_text("utf-8").splitlines()
    assert rows[1].startswith(f"alice_logsigmoid,{full},") and rows[2] == zed_row  # zed untouched, not regraded
    assert len(report.notes) == 1 and report.notes[0].startswith("written pages rewritten: ")
    page = (out / "written" / "Q1.md").read_text("utf-8")  # pages from the class folder
    assert any(line.startswith("- ") and "**alice\\_logsigmoid**" in line and "no answer" in line
               for line in page.splitlines()), page
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["students"] == 2 and "ignored README.md: not a submission" in summary["intake_notes"]

    with output_lock(out):  # a grading of this folder is running: the regrade waits its turn
        with pytest.raises(OutputBusy, match="another grading or regrade"):
            regrade_one(class_dir, out, "alice_logsigmoid", GradingOptions(out_dir=out))
    summary["anonymous"] = True  # graded with --anonymous: a regrade must not reveal names
    write_atomic(out / "summary.json", json.dumps(summary))
    report = regrade_one(class_dir, out, "alice_logsigmoid", GradingOptions(out_dir=out))
    assert any("stay anonymous" in n for n in report.notes)
    assert "alice" not in (out / "written" / "Q1.md").read_text("utf-8")
    assert json.loads((out / "summary.json").read_text("utf-8"))["anonymous"] is True


def test_copy_as_data_never_follows_links(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("x = 1\n")
    (src / "link").symlink_to("/etc/passwd")
    (src / "dirlink").symlink_to(tmp_path)
    notes = copy_as_data(src, tmp_path / "dst")
    assert notes == []
    assert (tmp_path / "dst" / "pkg" / "a.py").read_text() == "x = 1\n"
    assert (tmp_path / "dst" / "link").is_symlink() and (tmp_path / "dst" / "dirlink").is_symlink()


def test_gradescope_shows_a_written_mark_below_full_as_marked_not_failed():
    from decimal import Decimal

    from grader.exports.gradescope import GradescopeConfig, _test
    from grader.scoring import CheckResult

    marked = CheckResult("written", "Q1", Decimal(3), Decimal(5), False, "", "", None, "clear but brief", "Q1 (written)")
    test = _test(GradescopeConfig(), marked, "9.1")
    assert test["status"] == "passed" and test["output"].startswith("**MARKED** (3 / 5)") and "FAIL" not in test["output"]
