"""The example class, graded end to end through the CLI and the sandbox: every outcome as recorded
in submissions/expected.toml (code and written answers; and the README's tables as generated from
it or agreeing with it), byte-identical reruns with any number of workers, resume after a kill."""
from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.examples import (BEGIN, END, EXPECTED_TOML, NO_ANSWER, README, WRITTEN_BEGIN, WRITTEN_END, FunctionOutcome,
                             WrittenOutcome, graded_outcome, graded_written, load_expected, outcome_table,
                             written_table)
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]
CLASS = ROOT / "submissions"

# every entry's intended outcome (status, total, points and named mistakes per function), as data
EXPECTED = load_expected()
RUBRIC = load_rubric()


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (by parent pid)."""
    children: dict[int, list[int]] = {}
    for path in Path("/proc").glob("[0-9]*"):
        ppid = _status(int(path.name)).get("PPid")
        if ppid:
            children.setdefault(int(ppid), []).append(int(path.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def live_processes_of(uids: set[int]) -> list[int]:
    """Pids of processes (zombies excepted) running as one of ``uids``."""
    pids = []
    for path in Path("/proc").glob("[0-9]*"):
        status = _status(int(path.name))
        if status and int(status.get("Uid", "-1 ").split()[0]) in uids and not status.get("State", "").strip().startswith("Z"):
            pids.append(int(path.name))
    return pids


def grade(class_dir: Path, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "grader", str(class_dir), "--out", str(out), "--quiet", *extra],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def load_results(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted((out / "results").glob("*.json"))}


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
    """Every other student (in id order: half the class, to keep CI short) graded again with one
    worker, the others resumed from the two-worker grading: every output byte-identical."""
    again = tmp_path / "again"
    shutil.copytree(graded, again)
    for name in sorted(EXPECTED)[::2]:
        (again / "results" / f"{name}.json").unlink()
        (again / "feedback" / f"{name}.md").unlink()
    proc = grade(CLASS, again, "--workers", "1")
    regraded = len(sorted(EXPECTED)[::2])
    assert f"graded {regraded}, reused {len(EXPECTED) - regraded}" in proc.stdout + proc.stderr, proc.stdout
    assert (again / "scores.csv").read_bytes() == (graded / "scores.csv").read_bytes()
    assert _without_timings(load_results(again)) == _without_timings(load_results(graded))
    for name in EXPECTED:
        assert (again / "feedback" / f"{name}.md").read_bytes() == (graded / "feedback" / f"{name}.md").read_bytes()


def test_rerun_resumes_and_a_killed_run_loses_only_what_was_in_flight(tmp_path):
    small = tmp_path / "class"
    small.mkdir()
    for name in ("alice_logsigmoid.py", "henry_missing_half.py", "leo_unstable.py", "uma_hang.py", "bob_bce.py"):
        shutil.copy(CLASS / name, small / name)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "grader", str(small), "--out", str(out), "--quiet",
                             "--workers", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    def written() -> int:
        return len(list((out / "results").glob("*.json"))) if (out / "results").exists() else 0

    deadline = time.monotonic() + 120
    sandbox_uids: set[int] = set()
    while written() < 2 and proc.poll() is None and time.monotonic() < deadline:
        # each sandbox runs as host uid 200000 + its zygote's pid (grader.sandbox.job)
        sandbox_uids |= {int(u.split()[0]) for p in descendants(proc.pid) if (u := _status(p).get("Uid"))
                         and int(u.split()[0]) >= 200000}
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    survivors = live_processes_of(sandbox_uids)
    for _ in range(100):
        if not survivors:
            break
        time.sleep(0.1)
        survivors = live_processes_of(sandbox_uids)
    assert sandbox_uids and survivors == [], "processes of a killed grader's sandboxes survived it"
    done_before = {p.name for p in (out / "results").glob("*.json")}
    assert done_before, "the grader wrote nothing before it was killed"
    for path in (out / "results").glob("*.json"):
        json.loads(path.read_text("utf-8"))        # every file complete: written atomically
    finished = grade(small, out, "--workers", "2")
    assert f"reused {len(done_before)} earlier result(s)" in finished.stdout
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == sorted(p.stem for p in small.iterdir())


def test_ta_marks_merge_into_every_output_reproducibly(tmp_path):
    small = tmp_path / "class"
    small.mkdir()
    for name in ("alice_logsigmoid.py", "henry_missing_half.py"):
        shutil.copy(CLASS / name, small / name)
    out = tmp_path / "out"
    grade(small, out, "--workers", "1")
    before = load_results(out)
    (out / "manual.csv").write_text(
        "student,question,points,comment\n"
        "alice_logsigmoid,Q1,4,Clear comparison of explicit and implicit densities.\n"
        "henry_missing_half,check:discriminator_loss/value,4,Regrade request accepted: typo fixed in class.\n"
        "nobody,Q1,1,who?\n", "utf-8")
    merged = grade(small, out, "--workers", "2")
    assert "reused 2 earlier result(s)" in merged.stdout          # automatic results not recomputed
    assert "unknown student 'nobody'" in (out / "written" / "problems.txt").read_text("utf-8")
    assert f"problem(s) (all in {out}/written/problems.txt)" in merged.stdout
    after = load_results(out)
    alice_q1 = next(c for c in after["alice_logsigmoid"]["checks"] if c["function"] == "written" and c["name"] == "Q1")
    assert alice_q1["score"] == "4"
    assert "Clear comparison" in (out / "feedback" / "alice_logsigmoid.md").read_text("utf-8")
    henry = next(c for c in after["henry_missing_half"]["checks"]
                 if c["function"] == "discriminator_loss" and c["name"] == "value")
    assert henry["score"] == "4" and "Regrade request accepted" in henry["message"]
    withheld = [c for c in before["henry_missing_half"]["checks"] if c["function"] == "discriminator_loss"
                and (c.get("hidden") or {}).get("not_credited_because") == ["value"]]
    assert withheld  # checks that passed but were withheld by the failed value check: credited with it
    recredited = {c["name"]: c for c in after["henry_missing_half"]["checks"] if c["function"] == "discriminator_loss"}
    assert all(recredited[c["name"]]["passed"] for c in withheld)
    assert float(after["henry_missing_half"]["score"]) == float(before["henry_missing_half"]["score"]) + 4 + sum(
        float(c["max_score"]) for c in withheld)
    rows = {r.split(",")[0]: r for r in (out / "scores.csv").read_text("utf-8").splitlines()}
    assert rows["alice_logsigmoid"].split(",")[1] == str(int(before["alice_logsigmoid"]["score"]) + 4)
    snapshot = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    grade(small, out, "--workers", "1")
    assert {p.name: p.read_bytes() for p in (out / "results").iterdir()} == snapshot
