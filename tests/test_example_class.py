"""The example class, graded end to end through the CLI and the sandbox: every outcome as recorded
in submissions/expected.toml (code and written answers; and the README's tables as generated from
it or agreeing with it), byte-identical reruns with any number of workers, resume after a kill."""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest

from grader.examples import (BEGIN, END, EXPECTED_TOML, NO_ANSWER, README, WRITTEN_BEGIN, WRITTEN_END, FunctionOutcome,
                             WrittenOutcome, graded_outcome, graded_written, load_expected, outcome_table,
                             written_table)
from grader.rubric import load_rubric
from example_class_helpers import CLASS, grade, load_results

# every entry's intended outcome (status, total, points and named mistakes per function), as data
EXPECTED = load_expected()
RUBRIC = load_rubric()


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grading") / "out"
    grade(CLASS, out, "--workers", "2")
    return out


def test_every_student_has_the_intended_outcome(graded):
    """Every entry of expected.toml: status, total, and per function its points and the distinct
    diagnoses of its failed checks (a function the file does not list: full points, none named)."""
    results = load_results(graded)
    assert sorted(results) == sorted(EXPECTED)
    wrong = []
    for student, want in EXPECTED.items():
        got = graded_outcome(results[student], RUBRIC)
        if (got.status, got.total) != (want.status, want.total):
            wrong.append(f"{student}: status, total {got.status}, {got.total}; expected {want.status}, "
                         f"{want.total} ({results[student]['message'][:200]})")
        for fn, expected in want.functions.items():
            actual = got.functions[fn]
            if (actual.points, actual.mistakes) != (expected.points, expected.mistakes):
                wrong.append(f"{student} {fn}: points {actual.points}, mistakes {list(actual.mistakes)}; "
                             f"expected {expected.points}, {list(expected.mistakes)}")
    assert not wrong, "graded outcomes differ from submissions/expected.toml:\n" + "\n".join(wrong)


def test_every_students_written_answers_are_found_as_intended(graded):
    """Per student and question, from written/answers.json: how the answer was matched and where
    (or that there is none), its flags and its near-duplicates, as expected.toml records them; and
    the marking page of Q1 shows each answer with how it was matched, the students without one
    listed once at the top."""
    got = graded_written(json.loads((graded / "written" / "answers.json").read_text("utf-8")))
    assert sorted(got) == sorted(EXPECTED)
    wrong = [f"{student} {q}: {got[student][q]}; expected {want}" for student in sorted(EXPECTED)
             for q, want in EXPECTED[student].written.items() if got[student][q] != want]
    assert not wrong, "written answers differ from submissions/expected.toml:\n" + "\n".join(wrong)
    q1 = (graded / "written" / "Q1.html").read_text("utf-8")
    top, answers = q1.split("<h2>Answers (")
    for student, outcome in EXPECTED.items():
        want = outcome.written["Q1"]
        if want.how and "empty" not in want.flags:
            assert f"<h3>{student}</h3>" in answers, student
            assert f'<span class="how">{html.escape(want.how, quote=True)}</span>' in answers, student
        else:
            assert f"<b>{student}</b>" in top and f"<h3>{student}</h3>" not in answers, student


def test_expected_toml_is_read_strictly(tmp_path):
    """A total that is not the sum of its functions, or an unknown function or key, is an error
    (so a typo cannot turn an entry into "full marks")."""
    entry = '[henry]\nstatus = "ok"\ntotal = "{}"\nfunctions.{} = {{ {} = "0", mistakes = ["missing_half"] }}\n'
    path = tmp_path / "expected.toml"
    path.write_text(entry.format("78", "discriminator_loss", "points"), "utf-8")
    henry = load_expected(path, RUBRIC)["henry"]
    assert henry.functions["discriminator_loss"] == FunctionOutcome("0", ("missing_half",))
    assert henry.functions["elbo"] == FunctionOutcome("8", ())
    for total, function, key, why in (("90", "discriminator_loss", "points", "add up to 78"),
                                      ("78", "discriminator_los", "points", "unknown"),
                                      ("78", "discriminator_loss", "pionts", "unknown")):
        path.write_text(entry.format(total, function, key), "utf-8")
        with pytest.raises(ValueError, match=why):
            load_expected(path, RUBRIC)


def test_readme_outcome_table_is_the_one_generated_from_expected_toml():
    readme = README.read_text("utf-8")
    block = readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)]
    assert block.strip() == outcome_table(EXPECTED, RUBRIC).strip(), \
        "submissions/README.md is out of date: run python -m grader.examples --write"
    block = readme[readme.index(WRITTEN_BEGIN) + len(WRITTEN_BEGIN):readme.index(WRITTEN_END)]
    assert block.strip() == written_table(EXPECTED).strip(), \
        "submissions/README.md is out of date: run python -m grader.examples --write"


def test_expected_written_answers_are_read_strictly(tmp_path):
    entry = '[amy]\nstatus = "ok"\ntotal = "90"\n[amy.written]\n{}\n'
    path = tmp_path / "expected.toml"
    path.write_text(entry.format('Q2 = { how = "matched by number 2", at = "r.md line 3", flags = ["empty"] }'))
    amy = load_expected(path, RUBRIC)["amy"]
    assert amy.written == {"Q1": NO_ANSWER, "Q2": WrittenOutcome("matched by number 2", "r.md line 3", ("empty",)),
                           "Q3": NO_ANSWER}
    for line, why in (('Q9 = { flags = ["missing"] }', "unknown questions"),
                      ('Q1 = { how = "matched by number 1" }', "both `how` and `at`"),
                      ('Q1 = { flags = ["missing", "empty"] }', "sorted and distinct"),
                      ('Q1 = { hwo = "x" }', "expected a table")):
        path.write_text(entry.format(line))
        with pytest.raises(ValueError, match=why):
            load_expected(path, RUBRIC)


def _readme_status_rows() -> dict[str, list[str]]:
    """Every hand-written table row of submissions/README.md with a status column: student ->
    the statuses given for it (an entry's name without its extension or trailing slash)."""
    readme = README.read_text("utf-8")
    hand_written = readme[:readme.index(BEGIN)] + readme[readme.index(END):]
    found: dict[str, list[str]] = {}
    column = None
    for line in hand_written.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            column = None
        elif column is None:
            column = cells.index("status") if "status" in cells else -1
        elif column >= 0 and cells[0].startswith("`"):
            name = cells[0].strip("`").rstrip("/").removesuffix(".py").removesuffix(".ipynb").removesuffix(".zip")
            found.setdefault(name, []).append(cells[column].strip("*"))
    return found


def test_readme_status_columns_agree_with_expected_toml():
    rows = _readme_status_rows()
    assert sorted(rows) == sorted(EXPECTED), "every entry, and only those, in one of the README's tables"
    for student, statuses in rows.items():
        assert set(statuses) == {EXPECTED[student].status}, (student, statuses, str(EXPECTED_TOML))


def test_load_errors_say_why(graded):
    results = load_results(graded)
    assert "SyntaxError at line 16" in results["sam_syntax_error"]["message"]
    assert "unavailable import" in results["tom_unavailable_import"]["message"]
    assert "'jax'" in results["tom_unavailable_import"]["message"]
    assert "untouched template" in results["rita_template"]["message"]
    assert results["uma_hang"]["message"].startswith("Ran out of time in: gaussian_kl (other functions were graded)")
    uma = (graded / "feedback" / "uma_hang.md").read_text("utf-8")   # the calls after the one that hung
    assert "not run: call gaussian_kl/value/0 of its group timed out" in uma and "not run: not run" not in uma


def test_hostile_examples_are_contained(graded):
    results = load_results(graded)
    wendy = results["wendy_output_flood"]
    assert wendy["sandbox"]["output_dropped_bytes"] > 10_000_000
    assert (graded / "logs" / "wendy_output_flood.txt").stat().st_size < 1_000_000
    victor = {c["name"]: c for c in results["victor_memory_hog"]["checks"] if c["function"] == "chain_rule_log_likelihood"}
    assert not victor["value"]["passed"]
    assert "memory" in victor["value"]["message"].lower(), victor["value"]["message"]
    # xavier's fallback formulas are wrong: if the reference leaked into the sandbox it would pass
    assert results["xavier_reads_reference"]["functions"]["discriminator_loss"]["score"] == "0"


def test_outputs_are_complete_and_spreadsheet_safe(graded):
    rows = (graded / "scores.csv").read_text("utf-8").splitlines()
    assert rows[0].startswith("student,total,max_score,discriminator_loss")
    assert len(rows) == 1 + len(EXPECTED)
    assert sorted(p.stem for p in (graded / "feedback").glob("*.md")) == sorted(EXPECTED)
    summary = json.loads((graded / "summary.json").read_text("utf-8"))
    assert summary["students"] == len(EXPECTED)
    assert summary["rubric"]["seed"] and summary["versions"]["torch"]
    assert not list(graded.rglob("*.tmp"))


def _without_timings(results: dict[str, dict]) -> dict[str, dict]:
    return {k: {f: v for f, v in r.items() if f != "durations"} for k, r in results.items()}


def test_regrading_is_byte_identical_with_any_number_of_workers(graded, tmp_path):
    """Every third student (in id order: a third of the class, to keep CI short) graded again with
    one worker, the others resumed from the two-worker grading: every output byte-identical."""
    again = tmp_path / "again"
    shutil.copytree(graded, again)
    for name in sorted(EXPECTED)[::3]:
        (again / "results" / f"{name}.json").unlink()
        (again / "feedback" / f"{name}.md").unlink()
    proc = grade(CLASS, again, "--workers", "1")
    regraded = len(sorted(EXPECTED)[::3])
    assert f"graded {regraded}, reused {len(EXPECTED) - regraded}" in proc.stdout + proc.stderr, proc.stdout
    assert (again / "scores.csv").read_bytes() == (graded / "scores.csv").read_bytes()
    assert _without_timings(load_results(again)) == _without_timings(load_results(graded))
    for name in EXPECTED:
        assert (again / "feedback" / f"{name}.md").read_bytes() == (graded / "feedback" / f"{name}.md").read_bytes()
