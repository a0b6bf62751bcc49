"""The sandbox, attacked: one test per threat, each asserting that the attack failed and that the
honest ``add`` of the same hostile file was still graded.

The hostile files under ``tests/fixtures/hostile/`` are only ever copied into a work folder and
run through ``SandboxPool``: never imported, never run, by this process.
"""
from __future__ import annotations

import os
import shutil
import socket
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
        [call("once", "hog_once")], [call("slowly", "hog_slowly")], [call("torch", "hog_torch")],
        [dict(call("many", "hog_many"), wall_s=15.0, cpu_s=15.0)], ADD,
    ])
    assert raised(result.calls["once"]) == "MemoryError", result.calls["once"]
    assert raised(result.calls["slowly"]) == "MemoryError", result.calls["slowly"]
    assert raised(result.calls["torch"]) == "RuntimeError", result.calls["torch"]
    assert "memory" in result.calls["torch"].value["message"]
    many = result.calls["many"]
    assert many.status == "ok", many
    if AS_ROOT:  # the memory cgroup of the sandbox killed some of the forked hogs
        assert many.value["value"] >= 1
        assert any("memory limit" in note for note in result.notes), result.notes
    assert_add_graded(result)


def test_fork_bomb_is_contained(pool, tmp_path):
    results: dict[str, SandboxResult] = {}
    bomb = threading.Thread(target=lambda: results.setdefault(
        "bomb", submit(pool, tmp_path, "fork_bomb", [[call("bomb", "bomb")], ADD])))
    bomb.start()
    time.sleep(0.5)
    # meanwhile, the grader can still start processes, and a second sandbox runs fine
    assert subprocess.run(["true"], timeout=10).returncode == 0
    honest = tmp_path / "honest"
    honest.mkdir()
    (honest / "solution.py").write_text("def add(a, b):\n    return a + b\n")
    second = pool.run(honest, "solution.py", "full", [ADD])
    bomb.join(60)
    assert second.status == "ok"
    assert_add_graded(second)
    result = results["bomb"]
    assert result.calls["bomb"].status in ("timeout", "crashed"), result.calls["bomb"]
    assert_add_graded(result)
    assert sandbox_processes(pool) == []


def test_daemons_die_with_the_sandbox(pool, tmp_path):
    result = submit(pool, tmp_path, "daemon", [[call("spawn", "spawn")], ADD])
    assert result.calls["spawn"].status == "ok"
    assert "daemon still alive" in result.stdout  # they did run
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
    result = submit(pool, tmp_path, "write_outside", [[call("scribble", "scribble")], ADD], targets=targets)
    assert result.calls["scribble"].status == "ok", result.calls["scribble"]
    assert result.calls["scribble"].value["value"] == 0.0, result.stdout
    assert host_file.read_text() == "original"
    assert (project / "pyproject.toml").read_bytes() == pyproject
    assert not (project / "pwned.txt").exists()
    assert not (project / "grader" / "sandbox" / "pwned.py").exists()
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
    assert result.calls["connect"].value["value"] == 0.0, result.stdout
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
    result = submit(pool, tmp_path, "syscalls", [[call("forbidden", "forbidden")], ADD])
    assert result.calls["forbidden"].status == "ok", result.calls["forbidden"]
    assert result.calls["forbidden"].value["value"] == 0.0, result.stdout
    assert "seccomp: 2" in result.stdout
    assert_add_graded(result)


def test_monkeypatching_cannot_forge_values(pool, tmp_path):
    result = submit(pool, tmp_path, "monkeypatch", [[call("wrong", "wrong", A, B)], ADD])
    wrong = result.calls["wrong"]
    assert wrong.status != "ok" or np.array_equal(wrong.value["value"], A + B + 1), wrong
    assert_add_graded(result)


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
