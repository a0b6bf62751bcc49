"""The example class's students graded, killed, resumed and marked through the CLI: a killed run
loses only what was in flight, and the TA's marks merge into every output reproducibly. (Apart
from test_example_class.py so that the two files' gradings run side by side under xdist.)"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from example_class_helpers import CLASS, ROOT, _status, descendants, grade, live_processes_of, load_results


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
