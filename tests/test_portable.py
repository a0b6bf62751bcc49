"""The portable backend (``PortablePool``): the self-check where there is no fork (Windows) or
no pidfd (macOS), emulated here on Linux. Every submission below is trusted code written by the
test itself; nothing from ``tests/fixtures/hostile`` runs outside the sandbox."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import Limits
from grader.sandbox.portable import PortablePool, private_copy
from grader.sandbox.results import PORTABLE_WARNING

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(memory_mib=1024, total_memory_mib=1024, import_wall_s=1.0, import_cpu_s=2,
                call_wall_s=2.0, call_cpu_s=2, output_kib=16)
A, B = np.array([1.0, 2.0]), np.array([10.0, 20.0])

SOLUTION = textwrap.dedent('''
    import os

    print("top level ran")

    def add(a, b):
        return a + b

    def refuse(a):
        raise ValueError("negative input")

    def interrupted(a):
        raise KeyboardInterrupt("stopped in the middle")

    def hang(a):
        while True:
            pass

    def die(a):
        print("last words")
        os._exit(3)

    def flood(a):
        for i in range(100_000):
            print("spam " * 10, i)
        return a * 2
''')

#: The startup of a process without fork, pidfd_open, poll or resource (Windows and macOS
#: lack some of them), installed as ``sitecustomize`` before grader is imported.
NO_FORK_SITE = textwrap.dedent('''
    import os, select, sys
    for name in ("fork", "forkpty", "pidfd_open"):
        if hasattr(os, name):
            delattr(os, name)
    if hasattr(select, "poll"):
        del select.poll
    sys.modules["resource"] = None  # "import resource" raises ImportError
''')


def call(call_id: str, name: str, *args: object, **extra: object) -> dict:
    return {"id": call_id, "kind": "function", "name": name, "args": list(args), "kwargs": {}, **extra}


@pytest.fixture(scope="module")
def pool():
    with PortablePool(LIMITS) as portable:
        yield portable


def write(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "solution.py").write_text(textwrap.dedent(source))
    return folder


# --------------------------------------------------------------------------- the pool itself
def test_a_correct_call_returns_its_value_and_the_run_says_it_was_unsandboxed(pool, tmp_path):
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", [[call("add", "add", A, B)]])
    assert result.status == "ok" and result.isolation == "portable" == pool.isolation
    assert result.notes[0] == PORTABLE_WARNING and result.notes[0].startswith("UNSANDBOXED")
    add = result.calls["add"]
    assert add.status == "ok", add.error
    np.testing.assert_array_equal(add.value["value"], [11.0, 22.0])
    assert add.value["type"] == "torch.Tensor" and add.value["dtype"] == "float64"
    assert result.stdout == "top level ran\n"


def test_exceptions_are_data_or_errors_as_in_the_sandbox(pool, tmp_path):
    groups = [[call("refuse", "refuse", A), call("interrupted", "interrupted", A), call("missing", "nope", A),
               call("add", "add", A, B)]]
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", groups)
    refuse = result.calls["refuse"]  # an Exception raised by the function is data: raising may be asked
    assert refuse.status == "ok" and refuse.value["raised"] == "ValueError"
    assert "negative input" in refuse.value["message"]
    interrupted = result.calls["interrupted"]
    assert interrupted.status == "error"
    assert interrupted.error.startswith("KeyboardInterrupt: stopped in the middle")
    assert 'File "solution.py"' in interrupted.error and "in interrupted" in interrupted.error
    missing = result.calls["missing"]
    assert missing.status == "error" and "`nope` is not defined" in missing.error
    assert result.calls["add"].status == "ok"  # the same process goes on after an error


def test_a_hanging_call_times_out_and_a_fresh_process_runs_the_next_group(pool, tmp_path):
    groups = [[call("hang", "hang", A), call("same_group", "add", A, B)], [call("next_group", "add", A, B)]]
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", groups)
    assert result.status == "ok"
    hang = result.calls["hang"]
    assert hang.status == "timeout" and hang.error == "exceeded 2 s wall time"
    same = result.calls["same_group"]
    assert same.status == "not_run" and same.error == "not run: call hang of its group timed out"
    nxt = result.calls["next_group"]
    assert nxt.status == "ok", nxt.error
    np.testing.assert_array_equal(nxt.value["value"], [11.0, 22.0])
    assert result.stdout.count("top level ran") == 2  # the fresh process loaded the module again


def test_os_exit_in_a_call_is_a_crash_and_its_output_is_kept(pool, tmp_path):
    groups = [[call("die", "die", A), call("same_group", "add", A, B)], [call("next_group", "add", A, B)]]
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", groups)
    die = result.calls["die"]
    assert die.status == "crashed"
    assert die.error == "the process exited with status 3 (os._exit?) before returning"
    assert result.calls["same_group"].status == "not_run"
    assert result.calls["next_group"].status == "ok"
    assert "last words\n" in result.stdout  # sent before the process died


@pytest.mark.skipif(importlib.util.find_spec("resource") is None, reason="CPU limits need the resource module")
def test_a_call_past_its_cpu_time_is_a_timeout(pool, tmp_path):
    groups = [[call("hang", "hang", A, wall_s=30.0, cpu_s=1)], [call("add", "add", A, B)]]
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", groups)
    assert result.calls["hang"].status == "timeout"
    assert result.calls["hang"].error == "exceeded 1 s CPU time"
    assert result.calls["add"].status == "ok"


def test_a_print_flood_is_capped_and_does_not_corrupt_the_results(pool, tmp_path):
    groups = [[call("flood", "flood", A), call("add", "add", A, B)]]
    result = pool.run(write(tmp_path, SOLUTION), "solution.py", "full", groups)
    flood = result.calls["flood"]
    assert flood.status == "ok", flood.error
    np.testing.assert_array_equal(flood.value["value"], [2.0, 4.0])
    assert result.calls["add"].status == "ok"
    cap = LIMITS.output_kib << 10
    assert len(result.stdout.encode()) <= cap
    assert result.stdout.startswith("top level ran\n" + "spam " * 10 + " 0\n")
    assert result.output_dropped_bytes > 100_000 * 50 - cap


def test_a_top_level_loop_that_prints_is_cut_and_graded_on_its_definitions(pool, tmp_path):
    # the loader's statement budget interrupts print() itself: the frames must stay whole
    folder = write(tmp_path, '''
        def add(a, b):
            return a + b

        step = 0
        while True:
            print("training step", step)
            step += 1
    ''')
    result = pool.run(folder, "solution.py", "full", [[call("add", "add", A, B)]])
    assert result.status == "ok", result.message
    assert result.calls["add"].status == "ok"
    assert any("loaded again in definitions mode" in note for note in result.notes)
    assert result.stdout.startswith("training step 0\ntraining step 1\n")
    assert result.output_dropped_bytes > 0


def test_a_top_level_that_never_ends_falls_back_to_definitions_like_the_sandbox(pool, tmp_path):
    # a loop that swallows the loader's own timeout: only the parent's wall time stops it
    folder = write(tmp_path, '''
        import time

        def add(a, b):
            return a + b

        while True:
            try:
                time.sleep(0.01)
            except BaseException:
                pass
    ''')
    result = pool.run(folder, "solution.py", "full", [[call("add", "add", A, B)]])
    assert result.status == "ok", result.message
    assert result.calls["add"].status == "ok"
    assert result.notes[0] == PORTABLE_WARNING
    assert re.match(r"loading the module ran past [\d.]+ s; graded on its definitions alone", result.notes[1])


def test_a_syntax_error_is_a_load_error(pool, tmp_path):
    folder = write(tmp_path, "def add(a, b)\n    return a + b\n")
    result = pool.run(folder, "solution.py", "full", [[call("add", "add", A, B)]])
    assert result.status == "load_error"
    assert result.message.startswith("SyntaxError at line 1")
    assert result.calls["add"].status == "not_run"


def test_the_submission_runs_on_a_private_copy(pool, tmp_path):
    folder = write(tmp_path, '''
        with open("data.txt", "w") as handle:
            handle.write("changed")

        def add(a, b):
            return a + b
    ''')
    (folder / "data.txt").write_text("original")
    (folder / "link.txt").symlink_to(folder / "data.txt")
    result = pool.run(folder, "solution.py", "full", [[call("add", "add", A, B)]])
    assert result.calls["add"].status == "ok"
    assert (folder / "data.txt").read_text() == "original"
    assert any("link.txt" in note for note in result.notes)


def test_private_copy_refuses_a_work_folder_over_its_size(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * (2 << 20))
    (tmp_path / "copy").mkdir()
    with pytest.raises(RuntimeError, match="more than 1 MiB"):
        private_copy(str(tmp_path), str(tmp_path / "copy"), Limits(workdir_mib=1))


def test_the_child_preloads_what_the_zygote_preloads():
    from grader.sandbox import portable_child  # importing it moves no file descriptor (only running it)

    from grader.sandbox import job

    assert portable_child.PRELOADED is job.PRELOADED
    tree = ast.parse((ROOT / "grader" / "sandbox" / "zygote.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", "") == "PRELOADED"]  # no list of its own
    assert any(isinstance(node, ast.ImportFrom) and node.module == "grader.sandbox.job"
               and "PRELOADED" in [a.name for a in node.names] for node in ast.walk(tree))


# ------------------------------------------------------------------------ platform choices
def test_isolation_is_refused_off_linux_without_a_probe(monkeypatch):
    from grader.sandbox import namespaces

    monkeypatch.setattr(sys, "platform", "darwin")
    available, why = namespaces.isolation_available.__wrapped__()
    assert not available and "Linux-only" in why


def test_the_backend_follows_the_platform_and_grader_sandbox(monkeypatch):
    from grader import check

    monkeypatch.setenv("GRADER_SANDBOX", "portable")
    assert check.choose_backend()[0] == "portable"
    monkeypatch.setenv("GRADER_SANDBOX", "chroot")
    with pytest.raises(ValueError, match="GRADER_SANDBOX"):
        check.choose_backend()
    monkeypatch.delenv("GRADER_SANDBOX")
    monkeypatch.setattr(check, "fork_sandbox_missing", lambda: "this Python has no fork")
    assert check.choose_backend() == ("portable", "this Python has no fork")
    monkeypatch.setenv("GRADER_SANDBOX", "none")
    with pytest.raises(ValueError, match="cannot run here: this Python has no fork"):
        check.choose_backend()


# ---------------------------------------------------------------------- the self-check, end to end
@pytest.fixture(scope="module")
def solutions(tmp_path_factory) -> dict[str, Path]:
    from reference.bundle import write_solution_submission

    folder = tmp_path_factory.mktemp("solutions")
    return {"correct": write_solution_submission(folder / "reference_solution"),
            "wrong": ROOT / "submissions" / "mia_logvar_as_std.py"}


@pytest.fixture(scope="module")
def no_fork_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("no_fork_site")
    (folder / "sitecustomize.py").write_text(NO_FORK_SITE)
    return folder


def self_check(solution: Path, *, site: Path | None = None, backend: str | None = None,
               cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GRADER_SANDBOX")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (site, cwd) if p is not None)
    if backend is not None:
        env["GRADER_SANDBOX"] = backend
    return subprocess.run([sys.executable, "-m", "grader.check", str(solution)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def report_body(stdout: str) -> str:
    """The report without its header (which names the sandbox and its notes)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("discriminator_loss"))
    return "\n".join(lines[start:])


@pytest.fixture(scope="module")
def sandboxed_correct(solutions) -> subprocess.CompletedProcess:
    proc = self_check(solutions["correct"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_emulated_no_fork_platform_self_checks_a_correct_solution(solutions, no_fork_site, sandboxed_correct):
    proc = self_check(solutions["correct"], site=no_fork_site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING: no sandbox here" in proc.stderr and "unsandboxed" in proc.stderr
    assert "this Python has no fork, pidfd_open, poll, resource" in proc.stderr
    assert "sandbox: NONE (portable)" in proc.stdout
    assert "note: no rlimits on this platform" in proc.stdout  # the child had no resource either
    total = re.search(r"^===== .* points on the public inputs =====$", proc.stdout, re.M).group(0)
    assert "0 failed" in total
    assert total in sandboxed_correct.stdout
    assert report_body(proc.stdout) == report_body(sandboxed_correct.stdout)


def test_the_emulated_no_fork_platform_explains_a_wrong_solution(solutions, no_fork_site):
    proc = self_check(solutions["wrong"], site=no_fork_site)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "WARNING: no sandbox here" in proc.stderr
    assert "reparameterize               FFFFF" in proc.stdout
    assert "Likely mistake (logvar_as_std)" in proc.stdout
    assert "_____ reparameterize :: value _____" in proc.stdout


def test_grader_sandbox_portable_gives_the_sandboxed_report(solutions, sandboxed_correct):
    proc = self_check(solutions["correct"], backend="portable")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING: no sandbox here (GRADER_SANDBOX=portable)" in proc.stderr
    assert "sandbox: NONE (portable)" in proc.stdout
    assert report_body(proc.stdout) == report_body(sandboxed_correct.stdout)


def test_the_kit_self_checks_on_a_platform_without_fork(tmp_path_factory, no_fork_site):
    from grader.kit import build_kit

    kit = build_kit(tmp_path_factory.mktemp("kit") / "kit")
    assert {"portable.py", "portable_child.py"} <= {p.name for p in (kit / "grader" / "sandbox").iterdir()}
    readme = (kit / "README.md").read_text()
    assert "Windows" in readme and "WSL" not in readme and "WARNING" in readme
    proc = self_check(ROOT / "submissions" / "alice_logsigmoid.py", site=no_fork_site, cwd=kit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sandbox: NONE (portable)" in proc.stdout and "0 failed" in proc.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_the_child_ends_itself_when_the_grader_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    folder = write(tmp_path, f'''
        import os

        with open({str(pid_file)!r}, "w") as handle:
            handle.write(str(os.getpid()))

        def hang(a):
            while True:
                pass
    ''')
    script = textwrap.dedent(f'''
        import numpy as np
        from grader.sandbox import Limits, PortablePool

        call = {{"id": "hang", "kind": "function", "name": "hang", "args": [np.zeros(1)], "kwargs": {{}},
                "wall_s": 600.0, "cpu_s": 600}}
        PortablePool(Limits(call_wall_s=600.0, call_cpu_s=600)).run({str(folder)!r}, "solution.py", "full", [[call]])
    ''')
    grader = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(1200):  # the child has loaded the module (at most 120 s)
            if pid_file.exists() and pid_file.read_text():
                break
            assert grader.poll() is None, "the grader ended before its child loaded the module"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert _alive(child)
    finally:
        grader.kill()  # SIGKILL: no cleanup of its own
        grader.wait()
    for _ in range(600):  # the watchdog sees the end of stdin and exits (at most 60 s)
        if not _alive(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the child outlived its grader")
    run_folders = [p for p in Path(tempfile.gettempdir()).glob("grader-portable-*")
                   if (p / "submission" / "solution.py").exists()
                   and str(pid_file) in (p / "submission" / "solution.py").read_text()]
    assert not run_folders  # the child removed the private copy its grader could not remove


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")
