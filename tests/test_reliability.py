"""Reliability of the TA's commands: scratch folders under OUT (a killed run's removed by the next),
file modes (a private OUT, files following the umask), a ``write_atomic`` that never raises on
text, bad inputs as one line and exit status 2, and the Gradescope mode's isolation record.

Most tests are pure or use the command line on entries that never reach the sandbox (an
unreadable zip); two grade one small submission through the sandbox's ``none`` backend."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from grader import cli
from grader.atomic import current_umask, write_atomic
from grader.outlock import WORK_NAME, OutputBusy, output_lock, scratch_folder, work_folder

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def umask():
    """Set the process's umask for one test (and restore it)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------------- scratch folders in OUT

def test_the_lock_holder_removes_a_killed_runs_scratch_and_a_busy_run_touches_nothing(tmp_path):
    out = tmp_path / "out"
    dead = out / WORK_NAME / "intake-killed"
    (dead / "alice-1234").mkdir(parents=True)
    (dead / "alice-1234" / "solution.py").write_text("x = 1\n", "utf-8")
    with output_lock(out):
        assert not (out / WORK_NAME).exists()             # the killed run's copies: gone
        mine = work_folder(out, "intake-")
        assert mine.parent == out / WORK_NAME and mode(mine) == 0o700
        (mine / "bob").mkdir()
        with pytest.raises(OutputBusy):                    # a second run cannot take the lock...
            with output_lock(out):
                pass
        assert (mine / "bob").is_dir()                     # ... so it removed nothing of ours
        with scratch_folder(out, "regrade-") as tmp:
            assert tmp.is_dir()
        assert not tmp.exists()
    assert (out / WORK_NAME).exists()  # ours was not removed by its owner (as after a kill)...
    with output_lock(out):
        assert not (out / WORK_NAME).exists()              # ... the next holder removes it


def test_a_resumed_grading_removes_the_killed_runs_work_folder(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "amy.zip").write_bytes(b"not a zip")  # a load error found by intake: no sandbox needed
    out = tmp_path / "out"
    leftover = out / WORK_NAME / "intake-x1y2z3" / "amy-0123"
    leftover.mkdir(parents=True)
    (leftover / "solution.py").write_text("print('left by a killed run')\n", "utf-8")
    proc = run_cli(str(klass), "--out", str(out), "--quiet", "--unsafe")
    assert proc.returncode == 0, proc.stderr
    assert not (out / WORK_NAME).exists()
    assert json.loads((out / "results" / "amy.json").read_text("utf-8"))["status"] == "load_error"


# ------------------------------------------------------------------------------------ file modes

def test_a_new_output_folder_is_private_and_its_files_follow_the_umask(tmp_path, umask):
    umask(0o002)  # the loosest usual umask: the folder is 0700 all the same
    out = tmp_path / "deep" / "out"
    with output_lock(out):
        pass
    assert mode(out) == 0o700
    assert current_umask() == 0o002
    write_atomic(out / "scores.csv", "a,b\n")
    assert mode(out / "scores.csv") == 0o664
    umask(0o027)
    write_atomic(out / "results" / "x.json", b"{}")
    assert mode(out / "results" / "x.json") == 0o640
    write_atomic(out / "scores.csv", "c,d\n")  # replaced: the new file's mode, not the old one's
    assert mode(out / "scores.csv") == 0o640


def test_an_existing_output_folder_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "shared"
    out.mkdir()
    os.chmod(out, 0o750)  # the TA shared it with a group on purpose
    with output_lock(out):
        pass
    assert mode(out) == 0o750


def test_write_atomic_never_raises_on_lone_surrogates(tmp_path):
    path = tmp_path / "feedback.md"
    write_atomic(path, "id \udce9t\u00e9 \ud800!")
    assert path.read_bytes() == "id ?t\u00e9 ?!".encode("utf-8")
    write_atomic(path, "plain \u00e9")  # ordinary text: unchanged
    assert path.read_text("utf-8") == "plain \u00e9"
    assert [p.name for p in tmp_path.iterdir()] == ["feedback.md"]


# ------------------------------------------------------------------------ bad input: one line, 2

def test_report_on_a_missing_or_empty_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "no results/ folder" in one_line_error(capsys.readouterr().err)
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2
    one_line_error(proc.stderr)


@pytest.mark.parametrize("roster, expected", [
    (None, "cannot be read"),                                  # missing file
    (b"name,section\nAna,A\n", "has no column student_id"),   # without the needed columns
    (b"", "the roster is empty"),
    (b"\xff\xfe\x00s\x00t", "is not UTF-8 text"),             # a UTF-16 export
])
def test_export_lms_with_a_bad_roster_is_one_line_and_exit_2(tmp_path, capsys, roster, expected):
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    path = tmp_path / "roster.csv"
    if roster is not None:
        path.write_bytes(roster)
    assert cli.main(["export-lms", str(out), "--roster", str(path)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert expected in line
    assert not (out / "gradebook.csv").exists()


def test_export_lms_with_a_missing_gradebook_or_output_folder_is_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email\nana,Ana,a@x.edu\n", "utf-8")
    assert cli.main(["export-lms", str(out), "--roster", str(roster), "--gradebook", str(tmp_path / "gb.csv")]) == 2
    assert "the gradebook" in one_line_error(capsys.readouterr().err)
    assert cli.main(["export-lms", str(tmp_path / "nowhere"), "--roster", str(roster)]) == 2
    assert "not a grading output folder" in one_line_error(capsys.readouterr().err)


def test_a_missing_or_empty_class_folder_is_an_error(tmp_path, capsys):
    assert cli.main([str(tmp_path / "does_not_exist"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in one_line_error(capsys.readouterr().err)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "holds no submission" in one_line_error(capsys.readouterr().err)
    (empty / ".DS_Store").write_bytes(b"\0")                   # only strays: still nothing to grade
    assert cli.main([str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "ignored" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()                       # nothing was written
    proc = run_cli(str(tmp_path / "does_not_exist"))
    assert proc.returncode == 2
    one_line_error(proc.stderr)


def test_regrade_on_a_missing_class_folder_is_exit_2(tmp_path, capsys):
    assert cli.main(["regrade", "ana", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--unsafe"]) == 2
    assert "does not exist" in one_line_error(capsys.readouterr().err)


# ----------------------------------------------------------------------- Gradescope, no namespaces

LOAD_ERROR = "def discriminator_loss(:\n"  # a syntax error: loaded (and refused) in the sandbox


def _gradescope(tmp_path: Path, source: str) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "solution.py").write_text(source, "utf-8")
    return root


def test_gradescope_without_namespaces_records_its_isolation(tmp_path, monkeypatch):
    from grader.exports.gradescope import UNSANDBOXED_USERS, run_in_gradescope_layout, unsandboxed_user

    monkeypatch.setenv("GRADER_SANDBOX", "none")  # forces the fallback, as in Docker's default profile
    monkeypatch.setenv("GRADER_ALLOW_UID0_SUBMISSIONS", "1")  # where this Python is closed to others
    root = _gradescope(tmp_path, LOAD_ERROR)
    (root / "results").mkdir()
    os.chmod(root / "results", 0o777)  # a results folder others could write: closed before grading
    out = run_in_gradescope_layout(root)
    assert json.loads((root / "results" / "results.json").read_text("utf-8")) == out
    assert mode(root / "results") & 0o022 == 0
    assert os.stat(root / "results" / "results.json").st_uid == os.geteuid()
    assert out["extra_data"]["status"] == "load_error", out["output"]
    assert out["extra_data"]["isolation"] == "none"
    user = out["extra_data"]["unsandboxed_user"]
    assert user == unsandboxed_user()
    assert user == ("grader_user" if os.geteuid() else user)
    assert "Grading isolation: none at the kernel level" in out["output"]
    assert "GRADER\\_SANDBOX=none" in out["output"] or "GRADER_SANDBOX=none" in out["output"]
    assert UNSANDBOXED_USERS[user].format(uid=os.geteuid())[:40] in out["output"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the sandbox's own uid)")
def test_gradescope_without_namespaces_a_submission_cannot_forge_results(tmp_path, monkeypatch):
    from grader.exports.gradescope import run_in_gradescope_layout, unsandboxed_user

    if unsandboxed_user() != "separate_user":
        pytest.skip("this Python is in a folder closed to other users: the student runs as capless root")
    monkeypatch.setenv("GRADER_SANDBOX", "none")
    root = tmp_path / "autograder"
    forged = root / "results" / "forged.json"
    source = (f"try:\n    open({str(forged)!r}, 'w').write('{{\"score\": 100}}')\nexcept OSError:\n    pass\n"
              f"try:\n    open({str(root / 'results' / 'results.json')!r}, 'w').write('forged')\nexcept OSError:\n"
              "    pass\n")
    os.chmod(tmp_path, 0o755)
    _gradescope(tmp_path, source)
    out = run_in_gradescope_layout(root)
    assert not forged.exists()
    assert json.loads((root / "results" / "results.json").read_text("utf-8")) == out


CAPLESS_ATTACK = '''
import glob, json, os
did = {}
def attempt(name, act):
    try:
        act()
        did[name] = True
    except OSError:
        did[name] = False
attempt("write", lambda: open(RESULTS + "/forged.json", "w").write('{"score": 100}'))
attempt("results_json", lambda: open(RESULTS + "/results.json", "w").write("forged"))
attempt("chmod", lambda: os.chmod(RESULTS, 0o777))
attempt("chown", lambda: os.chown(RESULTS, os.getuid(), os.getgid()))
grading = glob.glob(TMP + "/grader-gradescope-*")
did["found_grading_folder"] = bool(grading)
attempt("grading_folder", lambda: os.listdir(grading[0]))
def swap():  # uid 0 owns /autograder: rename the closed folder away and put its own in its place
    os.rename(RESULTS, RESULTS + "-aside")
    os.mkdir(RESULTS)
    os.mkdir(RESULTS + "/results.json")  # the grader's os.replace onto it would fail
attempt("swap", swap)
open(LEAK + "/did.json", "w").write(json.dumps(did))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: without it the submission runs as the grader's own user")
def test_gradescope_without_namespaces_root_without_capabilities_cannot_forge_results(tmp_path, monkeypatch):
    """A root grader whose Python is closed to other users (this machine's: /root/.pyenv) runs the
    submission as uid 0 without capabilities: root's own folders are open to it, so the results
    folder and the grading's temporary folder belong to uid 65534 with mode 0700, and a results
    folder renamed away is replaced before the write. (With a Python others can run, the same
    holds for the separate uid.)"""
    import tempfile

    from grader.exports.gradescope import CLOSED_OWNER, run_in_gradescope_layout, unsandboxed_user

    monkeypatch.setenv("GRADER_SANDBOX", "none")
    monkeypatch.setenv("GRADER_ALLOW_UID0_SUBMISSIONS", "1")  # where this Python is closed to others
    os.chmod(tmp_path, 0o755)
    scratch, leak = tmp_path / "tmp", tmp_path / "leak"
    scratch.mkdir(mode=0o755)
    leak.mkdir()
    os.chmod(leak, 0o777)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the grading's folder, where the attack looks
    root = tmp_path / "autograder"
    values = {"RESULTS": str(root / "results"), "TMP": str(scratch), "LEAK": str(leak)}
    source = "".join(f"{name} = {value!r}\n" for name, value in values.items()) + CAPLESS_ATTACK
    _gradescope(tmp_path, source)
    out = run_in_gradescope_layout(root)
    assert (leak / "did.json").exists(), out["output"]
    did = json.loads((leak / "did.json").read_text("utf-8"))  # the top level ran to its end
    assert did["found_grading_folder"]
    assert not any(did[k] for k in ("write", "results_json", "chmod", "chown", "grading_folder")), did
    assert out["extra_data"]["isolation"] == "none", out["output"]
    assert out["extra_data"]["unsandboxed_user"] == unsandboxed_user()
    results = root / "results"
    assert not (results / "forged.json").exists() and not (tmp_path / "autograder" / "results-aside" / "forged.json").exists()
    assert json.loads((results / "results.json").read_text("utf-8")) == out
    st = os.lstat(results)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (CLOSED_OWNER, 0o700)
    if unsandboxed_user() == "root_without_capabilities":
        assert did["swap"]  # possible: and replaced before the write (the swapped-in folder moved aside)
        assert [p.name.split("-")[0] for p in root.glob("results.replaced-*")] == ["results.replaced"]
        assert "results.json is written to (it belongs to another user)" in out["output"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: without it the submission runs as the grader's own user")
def test_gradescope_refuses_uid0_submissions_unless_the_course_allows_them(tmp_path, monkeypatch):
    """Uid 0 without capabilities still owns the grader's own files (its Python, its sources), so
    a submission could rewrite a module the grader imports after it: that mode is refused unless
    GRADER_ALLOW_UID0_SUBMISSIONS=1, with a results.json that says why and what to do."""
    from grader.exports import gradescope

    monkeypatch.setenv("GRADER_SANDBOX", "none")
    monkeypatch.delenv(gradescope.UID0_ENV, raising=False)
    monkeypatch.setattr(gradescope, "unsandboxed_user", lambda: "root_without_capabilities")
    ran = tmp_path / "ran"
    root = _gradescope(tmp_path, f"open({str(ran)!r}, 'w').write('x')\n")
    out = gradescope.run_in_gradescope_layout(root)
    assert not ran.exists()  # the submission never ran
    assert out["score"] == 0 and "Refusing to grade" in out["output"] and gradescope.UID0_ENV in out["output"]
    assert json.loads((root / "results" / "results.json").read_text("utf-8")) == out
    assert gradescope.uid0_allowed({gradescope.UID0_ENV: "1"}) and not gradescope.uid0_allowed({})
