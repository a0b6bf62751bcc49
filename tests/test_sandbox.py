"""The sandbox, attacked: one test per threat, each asserting that the attack failed and that the
honest ``add`` of the same hostile file was still graded.

The hostile files under ``tests/fixtures/hostile/`` are only ever copied into a work folder and
run through ``SandboxPool``: never imported, never run, by this process.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import sys
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import CallResult, Limits, SandboxPool, SandboxResult, isolation_available
from grader.sandbox import protocol
from grader.sandbox.job import SANDBOX_ID_BASE

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
AS_ROOT = os.geteuid() == 0
TEST_LIMITS = Limits(
    memory_mib=512, total_memory_mib=768, import_wall_s=1.0, import_cpu_s=2, call_wall_s=2.0,
    call_cpu_s=2, max_processes=32, output_kib=64, result_mib=4,
)
A, B = np.array([1.0, 2.0]), np.array([10.0, 20.0])

pytestmark = pytest.mark.usefixtures("isolation_required")  # missing isolation fails (conftest.py)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(TEST_LIMITS, workers=2, isolation="namespaces") as sandboxes:
        yield sandboxes


# ------------------------------------------------------------------------------------- helpers
def call(call_id: str, name: str, *args: object) -> dict:
    return {"id": call_id, "kind": "function", "name": name, "args": list(args), "kwargs": {}}


ADD = [call("add", "add", A, B)]


def submit(pool: SandboxPool, tmp_path: Path, fixture: str, groups: list[list[dict]],
           targets: str | None = None, mode: str = "full") -> SandboxResult:
    """Copy a hostile fixture (and a ``targets`` module naming host paths) into a fresh work
    folder next to a classmate's, and run it."""
    workdir = tmp_path / "alice"
    workdir.mkdir()
    shutil.copy(HOSTILE / f"{fixture}.py", workdir / "solution.py")
    if targets is not None:
        (workdir / "targets.py").write_text(targets)
    classmate = tmp_path / "bob"
    classmate.mkdir(exist_ok=True)
    (classmate / "solution.py").write_text("BOB_SECRET = 42\n")
    return pool.run(workdir, "solution.py", mode, groups)


def assert_add_graded(result: SandboxResult) -> None:
    add = result.calls["add"]
    assert add.status == "ok", (add, result.message, result.stderr[-2000:])
    np.testing.assert_array_equal(add.value["value"], A + B)
    assert type(add.value["value"]) is np.ndarray and add.value["value"].dtype == np.float64


def raised(result: CallResult) -> str | None:
    """The exception a call raised, whether execute_call returned it as data or failed."""
    if result.status == "ok" and result.value and "raised" in result.value:
        return result.value["raised"]
    if result.status == "error":
        return result.error.split(":")[0]
    return None


def sandbox_processes(pool: SandboxPool) -> list[int]:
    """Host pids of any process running as one of this pool's sandbox uids."""
    uids = {SANDBOX_ID_BASE + zygote.process.pid for zygote in pool._zygotes if zygote.process}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            if uid in uids:
                found.append(int(entry))
    return found


def sandbox_process_counts(pool: SandboxPool) -> dict[str, int]:
    """How many processes run as each of this pool's sandbox uids now (host /proc; owner of the
    /proc/PID folder is the process's effective uid, one stat per process)."""
    uids = {SANDBOX_ID_BASE + zygote.process.pid for zygote in pool._zygotes if zygote.process}
    counts: dict[str, int] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    uid = entry.stat().st_uid
                except OSError:
                    continue
                if uid in uids:
                    counts[str(uid)] = counts.get(str(uid), 0) + 1
    return counts


NAMESPACES = ("net", "mnt", "user", "pid", "ipc", "uts")


def _host_view(pid: int, probe: tuple[str, ...] = ()) -> dict | None:
    """What the HOST sees of one process, from /proc: nothing here is reported by the process."""
    try:
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":\t" in line)
        view = {
            "uid": status["Uid"].split()[0], "cap_eff": status["CapEff"], "cap_bnd": status["CapBnd"],
            "no_new_privs": status["NoNewPrivs"], "seccomp": status["Seccomp"],
            "ns": {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NAMESPACES},
            "interfaces": [line.split(":")[0].strip()
                           for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]],
            # which of the probed paths exist in the process's own file-system view
            "visible": [path for path in probe if os.path.lexists(f"/proc/{pid}/root{path}")],
        }
        # An exiting process loses its file-system view before it leaves /proc: then every probe
        # reads as absent. A view still there after the probes was there during them.
        os.readlink(f"/proc/{pid}/root")
        return view
    except (OSError, KeyError, ValueError):
        return None  # gone meanwhile


class HostWatch:
    """Samples, from the host's /proc, every process running as one of the pool's sandbox uids
    while a submission runs: the most seen at once, and the last view of each."""

    def __init__(self, pool: SandboxPool, every_s: float = 0.005, probe: tuple[str, ...] = (),
                 count_only: bool = False) -> None:
        self.pool, self.every_s, self.probe, self.count_only = pool, every_s, tuple(probe), count_only
        self.most_at_once, self.views = 0, {}
        self.most_per_uid: dict[str, int] = {}  # one sandbox per zygote uid at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.count_only:  # one quick scan: more scans while a fork bomb runs
                for uid, n in sandbox_process_counts(self.pool).items():
                    self.most_per_uid[uid] = max(self.most_per_uid.get(uid, 0), n)
                self._stop.wait(self.every_s)
                continue
            pids = sandbox_processes(self.pool)
            self.most_at_once = max(self.most_at_once, len(pids))
            per_uid: dict[str, int] = {}
            for pid in pids:
                view = _host_view(pid, self.probe)
                if view is not None:
                    self.views[pid] = view
                    per_uid[view["uid"]] = per_uid.get(view["uid"], 0) + 1
            for uid, n in per_uid.items():
                self.most_per_uid[uid] = max(self.most_per_uid.get(uid, 0), n)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "HostWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def inside(self) -> dict[int, dict]:
        """The views of the processes inside the sandbox's PID namespace (P1 and the call
        processes, which run student code; not the supervisor, which is outside it)."""
        host_pid_ns = os.readlink("/proc/self/ns/pid")
        return {pid: v for pid, v in self.views.items() if v["ns"]["pid"] != host_pid_ns}


# ----------------------------------------------------------------------------- basic behaviour
def test_isolation_is_available_here():
    available, reason = isolation_available()
    assert available, reason


def test_default_limits_are_restrictive_and_listed():
    assert Limits().to_dict() == {
        "memory_mib": 2048, "total_memory_mib": 3072, "import_wall_s": 10.0, "import_cpu_s": 10.0,
        "statement_wall_s": 2.0, "call_wall_s": 5.0, "call_cpu_s": 5.0, "max_processes": 32,
        "cpu_shares": 1024, "file_size_mib": 64, "tmp_mib": 256, "workdir_mib": 64,
        "output_kib": 256, "result_mib": 16, "open_files": 64,
    }
    assert set(Limits.describe()) == set(Limits().to_dict())
    with pytest.raises(ValueError, match="call_wall_s must be a positive number"):
        Limits(call_wall_s=0)
    with pytest.raises(dataclasses_frozen_error()):
        Limits().memory_mib = 1  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_helper_modules_load_and_cwd_is_a_writable_copy(pool, tmp_path):
    workdir = tmp_path / "alice"
    workdir.mkdir()
    (workdir / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (workdir / "solution.py").write_text(
        "import os\nfrom helper import double\n"
        "def add(a, b):\n    return a + b\n"
        "def use_helper(a):\n    return double(a)\n"
        "def write_here(a):\n"
        "    with open('notes.txt', 'w') as f:\n        f.write('x')\n"
        "    with open('/tmp/scratch', 'w') as f:\n        f.write('y')\n"
        "    return float(os.path.exists('notes.txt')) + a\n"
    )
    before = sorted(p.name for p in workdir.iterdir())
    result = pool.run(workdir, "solution.py", "full",
                      [ADD, [call("helper", "use_helper", A)], [call("write", "write_here", 1.0)]])
    assert result.status == "ok" and result.isolation == "namespaces"
    np.testing.assert_array_equal(result.calls["helper"].value["value"], 2 * A)
    np.testing.assert_array_equal(result.calls["write"].value["value"], 2.0)
    assert_add_graded(result)
    assert sorted(p.name for p in workdir.iterdir()) == before  # the host's folder is untouched


def test_syntax_error_is_a_load_error(pool, tmp_path):
    workdir = tmp_path / "alice"
    workdir.mkdir()
    (workdir / "solution.py").write_text("def add(a, b):\n    return a +\n")
    result = pool.run(workdir, "solution.py", "full", [ADD])
    assert result.status == "load_error"
    assert result.message.startswith("SyntaxError at line 2")
    assert result.calls["add"].status == "not_run"


# --------------------------------------------------------------------------------- the threats
@pytest.mark.parametrize("fixture", ["import_loop", "import_loop_plain"])
def test_infinite_loop_at_import_is_graded_on_definitions(pool, tmp_path, fixture):
    result = submit(pool, tmp_path, fixture, [ADD])
    assert result.status == "ok", result.message
    assert any("definitions" in note for note in result.notes), result.notes
    assert result.load_fallback is not None and result.load_fallback[0] == "timeout", result.load_fallback
    assert_add_graded(result)


def test_infinite_loop_in_a_function_times_out_that_call(pool, tmp_path):
    result = submit(pool, tmp_path, "call_loop", [[call("spin", "spin")], [call("sleep", "sleeper")], ADD])
    for call_id in ("spin", "sleep"):
        assert result.calls[call_id].status == "timeout", result.calls[call_id]
        assert "exceeded 2 s" in result.calls[call_id].error
    assert result.calls["sleep"].error == "exceeded 2 s wall time"
    assert_add_graded(result)


def test_memory_hogs_get_memory_errors_or_are_killed(pool, tmp_path):
    result = submit(pool, tmp_path, "memory_hog", [
        # hog_slowly zero-fills 512 MiB 16 MiB at a time: over 2 s when the host reclaims memory
        [call("once", "hog_once")], [dict(call("slowly", "hog_slowly"), wall_s=10.0, cpu_s=10.0)],
        [call("torch", "hog_torch")],
        [dict(call("many", "hog_many"), wall_s=15.0, cpu_s=15.0)], ADD,
    ])
    assert raised(result.calls["once"]) == "MemoryError", result.calls["once"]
    assert raised(result.calls["slowly"]) == "MemoryError", result.calls["slowly"]
    assert raised(result.calls["torch"]) == "RuntimeError", result.calls["torch"]
    assert "memory" in result.calls["torch"].value["message"]
    many = result.calls["many"]
    assert many.status == "ok", many
    if AS_ROOT:  # the memory cgroup of the sandbox killed some of the forked hogs
        # Counted outside the sandbox: the zygote reads the cgroup's oom_kill counter (the value
        # hog_many returns is the fixture's own claim, and is not used).
        kills = [int(m.group(1)) for note in result.notes
                 if (m := re.search(r"memory limit .*the kernel killed (\d+) process", note))]
        assert kills and kills[0] >= 1, result.notes
    assert_add_graded(result)


def test_fork_bomb_is_contained(pool, tmp_path):
    results: dict[str, SandboxResult] = {}
    bomb = threading.Thread(target=lambda: results.setdefault(
        "bomb", submit(pool, tmp_path, "fork_bomb", [[call("bomb", "bomb")], ADD])))
    watch = HostWatch(pool, every_s=0.001, count_only=True).__enter__()  # counts from the host's /proc
    bomb.start()
    time.sleep(0.5)
    # meanwhile, the grader can still start processes, and a second sandbox runs fine
    assert subprocess.run(["true"], timeout=10).returncode == 0
    honest = tmp_path / "honest"
    honest.mkdir()
    (honest / "solution.py").write_text("def add(a, b):\n    return a + b\n")
    second = pool.run(honest, "solution.py", "full", [ADD])
    bomb.join(60)
    watch.__exit__()
    # Counted from outside (the host's /proc, per sandbox uid): the bomb did multiply, and stayed
    # within RLIMIT_NPROC = max_processes + 1 (measured: 33), plus 2 for a scan that is not atomic.
    bomb_uid = max(watch.most_per_uid, key=watch.most_per_uid.get)
    assert 8 <= watch.most_per_uid[bomb_uid] <= TEST_LIMITS.max_processes + 3, watch.most_per_uid
    assert second.status == "ok"
    assert_add_graded(second)
    result = results["bomb"]
    assert result.calls["bomb"].status in ("timeout", "crashed"), result.calls["bomb"]
    assert_add_graded(result)
    assert sandbox_processes(pool) == []


def test_fork_bomb_stays_within_a_small_process_limit_counted_from_the_host(tmp_path):
    """At 32 processes a bomb on a loaded 2-core machine is slowed by memory and CPU as much as by
    the limit (with the limit removed it reached only 34-47 in 2 s), so the limit is checked
    where it binds: max_processes = 8. Counted from the host, never from the bomb: measured 9
    (RLIMIT_NPROC = max_processes + 1); 36-42 with the limits removed."""
    limits = dataclasses.replace(TEST_LIMITS, max_processes=8)
    with SandboxPool(limits, workers=1, isolation="namespaces") as small:
        with HostWatch(small, every_s=0.001, count_only=True) as watch:
            result = submit(small, tmp_path, "fork_bomb", [[call("bomb", "bomb")], ADD])
        assert result.calls["bomb"].status in ("timeout", "crashed"), result.calls["bomb"]
        assert_add_graded(result)
        (most,) = watch.most_per_uid.values()
        assert 4 <= most <= limits.max_processes + 2, watch.most_per_uid
        assert sandbox_processes(small) == []


def test_daemons_die_with_the_sandbox(pool, tmp_path):
    with HostWatch(pool) as watch:
        result = submit(pool, tmp_path, "daemon", [[call("spawn", "spawn")], ADD])
    assert result.calls["spawn"].status == "ok"
    # They did run, seen from the host: besides the supervisor, P1 and a call process, the
    # daemons (one from the top level, one from spawn) were in the sandbox's process table. (Their
    # /tmp/still-alive is in the sandbox's private tmpfs, which the host cannot see afterwards.)
    assert len(watch.inside()) >= 4, watch.views
    assert "daemon still alive" in result.stdout
    assert_add_graded(result)
    time.sleep(0.3)
    assert sandbox_processes(pool) == []


def test_exits_crashes_and_recursion_cost_one_call_each(pool, tmp_path):
    result = submit(pool, tmp_path, "exits", [
        [call("hard", "hard_exit")], [call("soft", "soft_exit"), call("add_after_exit", "add", A, B)],
        [call("segv", "segfault")], [call("deep", "recurse")], ADD,
    ])
    calls = result.calls
    assert (calls["hard"].status, calls["hard"].error) == (
        "crashed", "the process exited with status 0 (os._exit?) before returning")
    assert (calls["soft"].status, calls["soft"].error) == ("crashed", "called sys.exit(3)")
    assert calls["add_after_exit"].status == "ok"  # sys.exit only costs its own call
    assert (calls["segv"].status, calls["segv"].error) == ("crashed", "killed by SIGSEGV")
    assert raised(calls["deep"]) == "RecursionError" or calls["deep"].error == "killed by SIGSEGV"
    assert_add_graded(result)


def test_output_flood_is_capped_and_counted(pool, tmp_path):
    result = submit(pool, tmp_path, "flood", [[call("flood", "flood")], ADD])
    cap = TEST_LIMITS.output_kib << 10
    assert len(result.stdout.encode()) <= cap and len(result.stderr.encode()) <= cap
    assert result.stdout.startswith("top level")
    assert result.output_dropped_bytes >= 2 * 10_000 * 1024 - 2 * cap
    assert result.calls["flood"].status == "ok"
    assert_add_graded(result)


def test_huge_return_value_is_capped(pool, tmp_path):
    result = submit(pool, tmp_path, "huge_return", [[call("huge", "huge")], ADD])
    huge = result.calls["huge"]
    assert huge.status == "crashed", huge
    assert "over the 4 MiB cap (Limits.result_mib)" in huge.error
    assert_add_graded(result)


def test_reference_root_and_classmates_are_invisible(pool, tmp_path):
    project = Path(__file__).resolve().parent.parent
    secrets = [project / "reference" / "formulas.py", tmp_path / "bob" / "solution.py"]
    targets = (f"SECRET_FILES = {[str(p) for p in secrets]!r}\n"
               f"SECRET_FOLDERS = {[str(project / 'reference'), str(tmp_path / 'bob'), '/root/.cargo']!r}\n"
               f"SECRET_NAMES = {['formulas.py', 'workhouse.py', '.bashrc']!r}\n")
    assert secrets[0].exists()
    # snoop's count is its own report (what it could open or list cannot be seen from outside
    # after the fact); test_the_host_sees_the_isolation_of_a_running_call checks the same paths
    # from the host, in a running sandbox's own file-system view.
    result = submit(pool, tmp_path, "snoop", [[call("snoop", "snoop")], ADD], targets=targets)
    assert result.calls["snoop"].status == "ok", (result.calls["snoop"], result.stderr[-2000:])
    assert result.calls["snoop"].value["value"] == 0.0, result.stdout
    assert_add_graded(result)


def test_writes_outside_tmp_and_workdir_fail(pool, tmp_path):
    project = Path(__file__).resolve().parent.parent
    host_file = tmp_path / "host.txt"
    host_file.write_text("original")
    targets = f"HOST_FILES = {[str(host_file), str(project / 'pyproject.toml')]!r}\n"
    pyproject = (project / "pyproject.toml").read_bytes()
    passwd = Path("/etc/passwd").read_bytes()
    # every place scribble() tries, as the host sees it (the sandbox runs this same Python)
    created = [project / "pwned.txt", project / "grader" / "sandbox" / "pwned.py", Path(sys.prefix) / "pwned.txt",
               Path(os.__file__).parent / "pwned.py", Path("/usr/pwned"), Path("/pwned"), Path("/dev/pwned")]
    assert not any(path.exists() for path in created)
    result = submit(pool, tmp_path, "write_outside", [[call("scribble", "scribble")], ADD], targets=targets)
    assert result.calls["scribble"].status == "ok", result.calls["scribble"]
    assert result.calls["scribble"].value["value"] == 0.0, result.stdout  # its own count; checked below
    assert host_file.read_text() == "original"
    assert (project / "pyproject.toml").read_bytes() == pyproject
    assert Path("/etc/passwd").read_bytes() == passwd
    assert [path for path in created if path.exists()] == []
    assert_add_graded(result)


def test_network_is_unreachable_even_the_hosts_loopback(pool, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        targets = f"PORT = {server.getsockname()[1]}\n"
        result = submit(pool, tmp_path, "network",
                        [[call("connect", "connect")], [call("ifaces", "interfaces")], ADD], targets=targets)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody came
    assert result.calls["connect"].value["value"] == 0.0, result.stdout  # the server's accept() above is the proof
    # its own count of interfaces; from the host: test_the_host_sees_the_isolation_of_a_running_call
    assert result.calls["ifaces"].value["value"] == 0.0
    assert_add_graded(result)


def test_killing_the_parent_or_the_grader_does_nothing(pool, tmp_path):
    targets = f"GRADER_PID = {os.getpid()}\n"
    result = submit(pool, tmp_path, "kill_parent", [[call("kill", "kill_all")], ADD], targets=targets)
    assert result.status == "ok" and result.notes == [], (result.message, result.notes)
    assert result.calls["kill"].status == "ok", result.calls["kill"]
    assert_add_graded(result)
    assert all(zygote.process.poll() is None for zygote in pool._zygotes)  # the zygotes live on


def test_no_capabilities_namespaces_mounts_or_tracing(pool, tmp_path):
    # Whether each call succeeded is visible only inside (the host cannot replay a syscall's
    # return value); what makes them fail (no capabilities, no_new_privs, seccomp filter mode,
    # own namespaces) is read from the host in test_the_host_sees_the_isolation_of_a_running_call.
    result = submit(pool, tmp_path, "syscalls", [[call("forbidden", "forbidden")], ADD])
    assert result.calls["forbidden"].status == "ok", result.calls["forbidden"]
    assert result.calls["forbidden"].value["value"] == 0.0, result.stdout
    assert "seccomp: 2" in result.stdout
    assert_add_graded(result)


def test_the_host_sees_the_isolation_of_a_running_call(pool, tmp_path):
    """What the hostile fixtures above count for themselves (snoop's files, network's interfaces,
    syscalls' capabilities and seccomp), checked from OUTSIDE: while ``linger`` runs, the host
    reads /proc of every process in the sandbox's PID namespace."""
    project = Path(__file__).resolve().parent.parent
    (tmp_path / "bob").mkdir()
    hidden = (str(project / "reference" / "formulas.py"), str(project / "reference"),
              str(tmp_path / "bob"), str(project / "grader" / "rubric.toml"), "/root/.bashrc", "/etc/shadow",
              "/home")
    python = os.path.realpath(sys.executable)
    assert all(os.path.lexists(path) for path in hidden[:4]) and os.path.exists(python)
    with HostWatch(pool, probe=(*hidden, python)) as watch:
        result = submit(pool, tmp_path, "linger", [[call("linger", "linger")], ADD])
    assert result.calls["linger"].status == "ok", result.calls["linger"]
    assert_add_graded(result)
    inside = watch.inside()
    assert len(inside) >= 2, watch.views  # P1 and the call process, at least
    host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}
    sandbox_uids = {str(SANDBOX_ID_BASE + z.process.pid) for z in pool._zygotes if z.process}
    for pid, view in inside.items():
        assert view["uid"] in sandbox_uids and view["uid"] != str(os.geteuid()), (pid, view)
        assert (view["cap_eff"], view["cap_bnd"]) == ("0000000000000000", "0000000000000000"), (pid, view)
        assert (view["no_new_privs"], view["seccomp"]) == ("1", "2"), (pid, view)  # 2: seccomp filter
        assert all(view["ns"][n] != host_ns[n] for n in NAMESPACES), (pid, view["ns"], host_ns)
        assert view["interfaces"] == ["lo"], (pid, view)  # its own network: loopback only
        assert view["visible"] == [python], (pid, view)  # Python, and none of the host's secrets


def test_monkeypatching_cannot_forge_values(pool, tmp_path):
    """A wrong gaussian_kl (no 1/2) whose top level patches json, base64, numpy, torch, math and
    builtins to make results look right: every value that comes back is what the code really
    computed (never the forged 3.0), and the judges grade it exactly as they grade the same
    function run in-process, naming the mistake."""
    from engine_helpers import run_trusted
    from grader.checks import build_suites
    from grader.reference_oracle import ReferenceOracle
    from grader.rubric import load_rubric
    from grader.scoring import judge_suite, score_suite, total
    import torch

    rubric = load_rubric()
    oracle = ReferenceOracle()
    suite = next(s for s in build_suites(rubric, oracle) if s.function == "gaussian_kl")
    result = submit(pool, tmp_path, "monkeypatch_formula",
                    [suite.calls(), [call("wrong", "wrong", A, B)], ADD])
    assert result.status == "ok", result.message
    wrong = result.calls["wrong"]
    assert wrong.status == "ok", wrong
    np.testing.assert_array_equal(wrong.value["value"], A + B + 1)
    assert_add_graded(result)

    def no_half(mu, logvar):  # the fixture's gaussian_kl, trusted here
        return torch.sum(torch.exp(logvar) + mu ** 2 - 1 - logvar, dim=-1)

    cases = {case.id: case for check in suite.checks for case in check.cases}
    for call_id, case in cases.items():
        got = result.calls[call_id]
        assert got.status == "ok", got
        value = got.value["value"]
        assert type(value) is np.ndarray and 3.0 not in value.ravel(), (call_id, value)
        expected = no_half(*(torch.from_numpy(a) for a in case.args)).numpy()
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=call_id)
    judged = score_suite(suite, judge_suite(suite, result.calls), rubric)
    trusted = run_trusted(suite, {"gaussian_kl": no_half}, rubric)
    verdicts = {r.name: (r.passed, r.diagnosis, r.score) for r in judged}
    assert verdicts == {r.name: (r.passed, r.diagnosis, r.score) for r in trusted}
    assert verdicts["value"][:2] == (False, "missing_half")
    assert total(judged)[0] < total(judged)[1]


def test_forged_frames_on_stdout_and_inherited_fds_are_dropped(pool, tmp_path):
    result = submit(pool, tmp_path, "forge_frames", [[call("forge", "forge")], ADD])
    assert result.status == "ok", result.message
    forge = result.calls["forge"]
    assert forge.status == "ok" and forge.value["value"] == 0.0, forge
    assert any("did not come from the harness" in note for note in result.notes), result.notes
    assert_add_graded(result)


def test_return_values_never_run_code_in_the_grader(pool, tmp_path):
    marker = tmp_path / "unpickled"
    targets = f"MARKER = {str(marker)!r}\n"
    result = submit(pool, tmp_path, "evil_return",
                    [[call("evil", "evil_float", A, B)], [call("opaque", "opaque", A, B)], ADD], targets=targets)
    for call_id in ("evil", "opaque"):
        outcome = result.calls[call_id]
        if outcome.status == "ok":  # plain data, converted inside the sandbox
            assert type(outcome.value["value"]) is np.ndarray and outcome.value["value"].dtype == np.float64
        else:
            assert outcome.status == "error", outcome
    assert not marker.exists()
    assert_add_graded(result)


# ------------------------------------------------------------------------------- the protocol
@pytest.mark.parametrize("array", [
    np.array([1.0, np.nan, np.inf, -np.inf]), np.arange(6, dtype=np.int64).reshape(2, 3),
    np.array([True, False]), np.zeros((0, 3), dtype=np.float32), np.array(2.5),
])
def test_protocol_round_trips_arrays(array):
    back = protocol.loads(protocol.dumps({"x": array, "n": [1, 2.5, None, "s", float("nan")]}))
    np.testing.assert_array_equal(back["x"], array)
    assert back["x"].dtype == array.dtype and back["x"].shape == array.shape
    assert back["n"][:4] == [1, 2.5, None, "s"] and np.isnan(back["n"][4])


@pytest.mark.parametrize("payload, message", [
    (b'{"x": {"__ndarray__": {"dtype": "object", "shape": [1], "data": ""}}}', "array dtype 'object' is not one of"),
    (b'{"x": {"__ndarray__": {"dtype": "float64", "shape": [2], "data": "AAAAAAAAAAA="}}}', "needs 16 bytes, got 8"),
    (b'{"x": {"__ndarray__": {"dtype": "float64", "shape": [-1], "data": ""}}}', "non-negative integers"),
    (b'{"x": {"__ndarray__": {"dtype": "int64", "shape": [1], "data": "@@"}}}', "not valid base64"),
    (b'{"x": {"__ndarray__": {}, "y": 1}}', "no other keys"),
    (b'[1, 2]', "must be a JSON object"),
    (b'{"x": ' * 100 + b'1' + b'}' * 100, "nested"),
    (b'\xff', "not valid JSON"),
])
def test_protocol_rejects_bad_messages(payload, message):
    with pytest.raises(protocol.ProtocolError, match=message):
        protocol.loads(payload)


def test_protocol_refuses_objects_and_oversized_values():
    class Sneaky(float):
        pass

    with pytest.raises(protocol.ProtocolError, match="cannot be sent out of the sandbox"):
        protocol.dumps({"x": Sneaky(1.0)})
    with pytest.raises(protocol.ProtocolError, match="dtype int32 cannot be sent"):
        protocol.dumps({"x": np.zeros(2, dtype=np.int32)})
    with pytest.raises(protocol.TooLarge, match="over the 1 KiB cap"):
        protocol.dumps({"x": np.zeros(1000)}, max_bytes=1024)
    reader = protocol.FrameReader(max_bytes=10)
    assert reader.feed(protocol.frame(b"{}") + protocol.frame(b'{"a": 1}')[:6]) == [b"{}"]
    with pytest.raises(protocol.TooLarge):
        protocol.FrameReader(max_bytes=10).feed(protocol.frame(b"x" * 11))


def test_groups_share_one_call_process_until_one_fails(pool, tmp_path):
    """One fork per submission, not one per function: the groups run in one call process, which
    keeps the module's state; what a function started is killed before the next group; after a
    crash the groups left run in a fresh call process, forked from the loaded module again."""
    groups = [[call("count1", "count")], [call("pid1", "my_pid"), call("sleeper", "start_sleeper")],
              [call("count2", "count"), call("alive", "sleeper_alive"), call("pid2", "my_pid")],
              [call("crash", "crash"), call("count_not_run", "count")],
              [call("count3", "count"), call("pid3", "my_pid")], ADD]
    result = submit(pool, tmp_path, "shared_calls", groups)
    value = {cid: c.value["value"][0] for cid, c in result.calls.items() if c.status == "ok"}
    assert value["count1"] == 1 and value["count2"] == 2  # one process: the module's state stayed
    assert value["pid1"] == value["pid2"]
    assert value["alive"] == 0.0, "a process started by one group ran on into the next"
    assert result.calls["crash"].status == "crashed" and "status 3" in result.calls["crash"].error
    assert result.calls["count_not_run"].status == "not_run"
    assert value["count3"] == 1 and value["pid3"] != value["pid1"]  # a fresh process from P1's module
    assert_add_graded(result)
