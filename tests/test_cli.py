"""The command line's subcommands, end to end on a one-student class."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from grader.outlock import output_lock

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_report_diff_regrade_and_export(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(ROOT / "submissions" / "henry_missing_half.py", klass / "henry.py")
    out = tmp_path / "out"
    assert run(str(klass), "--out", str(out), "--quiet").returncode == 0
    assert not (out / ".work").exists()  # the run's prepared copies lived in OUT/.work, removed when done
    record = json.loads((out / "run.json").read_text("utf-8"))
    assert record["graded"] == 1 and record["wall_s"] > 0
    with output_lock(out):  # another grading holds the folder: refused, nothing written
        busy = run(str(klass), "--out", str(out), "--quiet", "--no-resume")
        assert busy.returncode == 2 and "another grading or regrade" in busy.stderr
        assert run("regrade", "henry", str(klass), "--out", str(out)).returncode == 2
    report = run("report", str(out))
    assert report.returncode == 0 and (out / "report.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    same = run("diff", str(out), str(out))
    assert same.returncode == 0 and "No student's score, status or checks changed." in same.stdout
    again = run("regrade", "henry", str(klass), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert not (out / ".work").exists()
    unknown = run("regrade", "nobody", str(klass), "--out", str(out))
    assert unknown.returncode == 2 and "nobody" in unknown.stderr
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email\nhenry,Henry H,h@example.edu\nivy,Ivy I,i@example.edu\n", "utf-8")
    lms = run("export-lms", str(out), "--roster", str(roster))
    assert lms.returncode == 0, lms.stderr
    assert "ivy" in (out / "lms_report.md").read_text("utf-8")       # on the roster, no submission: listed
    assert run("diff", str(out), str(tmp_path / "missing")).returncode == 2


def test_a_class_folder_named_like_a_command_is_still_a_class(tmp_path, monkeypatch):
    klass = tmp_path / "report"
    klass.mkdir()
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "grader", "report", "--out", str(tmp_path / "o"), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "report holds no submission" in proc.stderr, proc.stderr  # read as a class


def test_anonymous_marking_without_a_course_secret_is_warned_about(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "amy.zip").write_bytes(b"not a zip")  # refused by intake: no sandbox needed
    env = {k: v for k, v in os.environ.items() if k != "GRADER_ANON_SECRET"}
    plain = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(tmp_path / "a"), "--quiet",
                            "--anonymous"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert plain.returncode == 0 and "warning: --anonymous without GRADER_ANON_SECRET" in plain.stderr
    keyed = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(tmp_path / "b"), "--quiet",
                            "--anonymous"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                           env={**env, "GRADER_ANON_SECRET": "course secret"})
    assert keyed.returncode == 0 and "GRADER_ANON_SECRET" not in keyed.stderr
