"""The late policy: its arithmetic as a table, its file's errors, times and extensions, Canvas's late flag."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from grader.policy import LateBook, PolicyError, late_days, parse_policy, penalty
from grader.results import StudentResult
from grader.scoring import CheckResult

POLICY = """[late]
deadline = "2026-12-01T23:59:00+00:00"
grace_minutes = 15
penalty_percent_per_day = "10"
max_late_days = 3
"""
DEADLINE = datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)


def at(**delta) -> datetime:
    return DEADLINE + timedelta(**delta)


@pytest.mark.parametrize("submitted, days, taken", [
    (at(hours=-5), 0, "0.00"),                        # on time
    (at(minutes=15), 0, "0.00"),                      # inside the grace, at its very end
    (at(minutes=16), 1, "8.05"),                      # one minute past the grace: a started day
    (at(days=1, minutes=16), 2, "16.10"),             # a day and a minute late
    (at(days=3, minutes=15), 3, "24.15"),             # exactly at the limit
    (at(days=3, minutes=16), 4, "80.50"),             # past it: the score is 0
])
def test_the_penalty_table(submitted, days, taken):
    policy = parse_policy(POLICY)
    assert late_days(submitted, policy.deadline, policy.grace_minutes) == days
    assert penalty(Decimal("80.5"), days, policy) == Decimal(taken)


def test_an_offset_in_another_zone_is_the_same_moment():
    policy = parse_policy(POLICY)
    paris = datetime(2026, 12, 2, 1, 14, tzinfo=timezone(timedelta(hours=1)))  # 00:14 UTC: in the grace
    assert late_days(paris, policy.deadline, policy.grace_minutes) == 0


@pytest.mark.parametrize("text, words", [
    (POLICY.replace("grace_minutes", "grace_minuts"), "grace_minuts"),
    (POLICY.replace('"10"', '"ten"'), "penalty_percent_per_day"),
    (POLICY.replace('"10"', '"150"'), "between 0 and 100"),
    (POLICY.replace("+00:00", ""), "no UTC offset"),
    (POLICY.replace("max_late_days = 3", "max_late_days = -1"), "max_late_days"),
    (POLICY.replace("[late]", "[lat]"), "lat"),
    ("[late]\ndeadline = \"2026-12-01T23:59:00Z\"\n", "penalty_percent_per_day is missing"),
    ("not toml ==", "not valid TOML"),
])
def test_a_typo_or_a_bad_value_is_an_error_that_names_it(text, words):
    with pytest.raises(PolicyError, match=words):
        parse_policy(text)


def _result(student: str, points: str = "50") -> StudentResult:
    check = CheckResult("f", "value", Decimal(points), Decimal(90), False, "", "", None, "", "")
    return StudentResult(student, "ok", "", [check], {}, {}, {})


def test_times_extensions_bad_rows_and_the_canvas_late_flag():
    students = ["alice", "bob", "carol", "smithjohn_LATE_12345_67890", "dan"]
    times = ("student,submitted_at\nalice,2026-12-02T10:00:00+00:00\nbob,2026-12-03T00:30:00+00:00\n"
             "carol,2026-12-05T00:00:00\nnobody,2026-12-02T00:00:00+00:00\n12345,2026-12-02T00:20:00+00:00\n")
    extensions = "student,extra_days\nbob,2\ndan,lots\n"
    book = LateBook.load(POLICY, students, submitted_at=times.encode(), extensions=extensions.encode())
    alice = book.apply(_result("alice"))
    assert (alice.late["late_days"], alice.late["penalty"], alice.total) == (1, "5.00", Decimal("45.00"))
    assert book.apply(_result("bob")).late["late_days"] == 0          # two extra days
    canvas = book.apply(_result("smithjohn_LATE_12345_67890"))       # matched by its Canvas user id
    assert canvas.late["late_days"] == 1 and canvas.late["submitted_at"] == "2026-12-02T00:20:00+00:00"
    carol = book.apply(_result("carol"))                               # her row had no offset
    assert (carol.late["penalty"], carol.late["note"], carol.total) == ("0.00", "no submission time", Decimal(50))
    text = "\n".join(book.problems)
    assert "line 4: submitted_at '2026-12-05T00:00:00' has no UTC offset" in text
    assert "line 5: unknown student 'nobody'" in text
    assert "--extensions line 3: extra_days 'lots' is not a number" in text
    assert "carol: no submission time" in text and "dan: no submission time" in text


def test_a_canvas_late_file_without_a_time_is_listed_for_the_ta():
    book = LateBook.load(POLICY, ["smithjohn_LATE_12345_67890"])
    result = book.apply(_result("smithjohn_LATE_12345_67890"))
    assert result.late["note"] == "late, time unknown" and result.total == Decimal(50)
    assert book.problems == ["smithjohn_LATE_12345_67890: late, time unknown (the Canvas download marks it late): "
                             "graded without penalty; give its time in --submitted-at to apply the policy"]


def test_an_extension_as_a_deadline_and_the_record_round_trips():
    book = LateBook.load(POLICY, ["alice"], submitted_at=b"student,submitted_at\nalice,2026-12-04T00:00:00Z\n",
                         extensions=b"student,deadline\nalice,2026-12-03T12:00:00+00:00\n")
    result = book.apply(_result("alice", "80.5"))
    assert (result.late["late_days"], result.late["penalty"]) == (1, "8.05")
    again = StudentResult.from_dict(result.to_dict())
    assert again.late == result.late and again.total == Decimal("72.45") and result.to_dict()["total"] == "72.45"


# ----------------------------------------------------------------------------- end to end
BROKEN = "def discriminator_loss(real, fake:\n    return 0\n"


def test_graded_with_a_policy_the_penalty_is_in_every_file_and_follows_the_marks(tmp_path, isolation_required):
    import csv
    import json

    from grader.cli import main

    klass = tmp_path / "class"
    klass.mkdir()
    for name in ("alice", "bob", "carol"):
        (klass / f"{name}.py").write_text(f"# {name}\n{BROKEN}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manual.csv").write_text("student,question,points,comment\nalice,Q1,4,ok\nbob,Q1,5,good\n", "utf-8")
    policy = tmp_path / "late.toml"
    policy.write_text(POLICY, "utf-8")
    times = tmp_path / "times.csv"
    times.write_text("student,submitted_at\nalice,2026-12-02T01:00:00+00:00\nbob,2026-12-01T20:00:00+00:00\n")
    args = [str(klass), "--out", str(out), "--workers", "1", "--quiet"]
    assert main([*args, "--late-policy", str(policy), "--submitted-at", str(times)]) == 0
    rows = {r["student"]: r for r in csv.DictReader((out / "scores.csv").open(encoding="utf-8"))}
    assert list(rows["alice"])[-3:] == ["late_days", "late_penalty", "status"]
    assert (rows["alice"]["total"], rows["alice"]["late_days"], rows["alice"]["late_penalty"]) == ("3.6", "1", "0.4")
    assert (rows["bob"]["total"], rows["bob"]["late_days"]) == ("5", "0")
    assert rows["alice"]["written"] == "4"                              # the columns add up before the penalty
    record = json.loads((out / "results" / "alice.json").read_text("utf-8"))
    assert record["total"] == "3.6" and record["score"] == "4" and record["late"]["note"].startswith("1 day late")
    assert "0.4 points off the 4 earned" in (out / "feedback" / "alice.md").read_text("utf-8")
    assert "carol: no submission time" in (out / "late.txt").read_text("utf-8")
    assert (out / "late_policy.toml").read_text("utf-8") == POLICY
    # a new mark, and the same policy from OUT's copy: recomputed without re-running anyone's code
    (out / "manual.csv").write_text("student,question,points,comment\nalice,Q1,5,ok\nbob,Q1,5,good\n", "utf-8")
    assert main(args) == 0
    again = json.loads((out / "results" / "alice.json").read_text("utf-8"))
    assert again["total"] == "4.5" and json.loads((out / "run.json").read_text("utf-8"))["graded"] == 0
    # regrade and export-lms apply the same policy, from OUT's copies
    assert main(["regrade", "alice", str(klass), "--out", str(out)]) == 0
    regraded = json.loads((out / "results" / "alice.json").read_text("utf-8"))
    assert (regraded["total"], regraded["late"]["late_days"]) == ("4.5", 1)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email\nalice,Alice A,a@example.edu\nbob,Bob B,b@example.edu\n", "utf-8")
    assert main(["export-lms", str(out), "--roster", str(roster)]) == 0
    exported = [p for p in out.iterdir() if p.suffix == ".csv" and p.name not in ("scores.csv", "manual.csv")]
    text = "".join(p.read_text("utf-8") for p in exported)
    assert any(line.startswith("Alice A") or "alice" in line for line in text.splitlines() if ",4.5" in line), text
    # a typo in the policy: an error before anything is graded or copied
    policy.write_text(POLICY.replace("grace_minutes", "grace_mins"), "utf-8")
    assert main([*args, "--late-policy", str(policy)]) == 2
    assert (out / "late_policy.toml").read_text("utf-8") == POLICY


def test_the_runs_names_for_the_copies_are_the_policys():
    from grader.policy import POLICY_NAME, PROBLEMS_NAME
    from grader.run import LATE_COPIES, LATE_PROBLEMS

    assert (LATE_COPIES["late_policy"], LATE_PROBLEMS) == (POLICY_NAME, PROBLEMS_NAME)
