"""Grading on a Dask cluster (``grader.engines``, issue 16), end to end on a small class.

One TLS LocalCluster (``tests/dask_cluster.py``, in a process of its own: one plain worker, one
labelled ``GPU``) serves every test here, in file order; the last one kills its scheduler. The
faults come from the workers' ``GRADER_DASK_FAULT`` (``grader.engines.faults``): ``unlucky``'s
task kills its worker once, ``zz_doomed``'s every time, ``zz_last``'s sleeps. A small rubric keeps
the grading short; the workhouse's routing uses a rubric of ``train_gan`` alone on the template.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import dask_cluster  # noqa: E402 - tests/, on the path (conftest)

from grader import cli  # noqa: E402
from grader.engines import EngineError, environment, faults, wire, worker  # noqa: E402
from grader.engines.settings import DaskSettings, TargetError, parse_target  # noqa: E402
from grader.reproducible import reproducible_files  # noqa: E402
from grader.run import GradingOptions, grade_class  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolation_required")]

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "submissions"
CLASS = {"alice_logsigmoid.py": "alice_logsigmoid.py", "frank_notebook.ipynb": "frank_notebook.ipynb",
         "henry_missing_half.py": "henry_missing_half.py", "sam_syntax_error.py": "sam_syntax_error.py"}
FAULTS = {"unlucky.py": "henry_missing_half.py", "zz_doomed.py": "alice_logsigmoid.py"}
LAST = {"a_first.py": "alice_logsigmoid.py", "zz_last.py": "henry_missing_half.py"}
SMALL = ("points.discriminator_loss", "points.gaussian_kl")           # the graded functions
WORKHOUSE = ("points.train_gan", "workhouse", "workhouse.region")
READY_S = 180


def _rubric(path: Path, sections: tuple[str, ...]) -> Path:
    """The packaged rubric with only ``sections`` among its points (and its header, tolerances)."""
    kept, section = [], None
    for line in (ROOT / "grader" / "rubric.toml").read_text("utf-8").splitlines():
        if re.match(r"^\[[^\]]+\]$", line):
            section = line[1:-1]
        if section is None or section.startswith("tolerance") or section == "statistics" or section in sections:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n", "utf-8")
    return path


def _class(folder: Path, entries: dict[str, str]) -> Path:
    folder.mkdir()
    for name, source in entries.items():
        shutil.copy(SUBMISSIONS / source, folder / name)
    return folder


def _checks(out: Path, student: str) -> list[dict]:
    return json.loads((out / "results" / f"{student}.json").read_text("utf-8"))["checks"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dask")


@pytest.fixture(scope="module")
def cluster(root: Path):
    """The helper's folder (``scheduler.json``, ``tls.json``) and process, started at once, ready
    when ``settings`` first needs it; its process group is killed at the end."""
    folder = root / "cluster"
    (folder / "markers").mkdir(parents=True)
    fault = {"exit_once": ["unlucky"], "once_dir": str(folder / "markers"), "exit": ["zz_doomed"],
             "sleep_s": {"zz_last": 120}}
    env = {**os.environ, faults.ENV: json.dumps(fault), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "dask_cluster.py"), str(folder)], cwd=ROOT,
                               env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    yield folder, process
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _ready(cluster) -> tuple[Path, object]:
    folder, process = cluster
    deadline = time.monotonic() + READY_S
    while not (folder / "ready").exists():
        assert process.poll() is None, "the test cluster's process ended"
        assert time.monotonic() < deadline, "the test cluster did not start"
        time.sleep(0.1)
    tls = json.loads((folder / "tls.json").read_text("utf-8"))
    return folder, distributed.Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"],
                                        tls_client_key=tls["key"], require_encryption=True)


def _settings(cluster, **kw) -> DaskSettings:
    folder, security = _ready(cluster)
    return DaskSettings(f"file:{folder / 'scheduler.json'}", security=security, **kw)


def _grade(class_dir: Path, out: Path, rubric: Path, dask: DaskSettings | None = None, workers: int = 1,
           resume: bool = False):
    return grade_class(class_dir, GradingOptions(out_dir=out, workers=workers, isolation="namespaces",
                                                 rubric_path=rubric, resume=resume, dask=dask))


@pytest.fixture(scope="module")
def small(root: Path) -> Path:
    return _rubric(root / "small.toml", SMALL)


@pytest.fixture(scope="module")
def reference(root: Path, small: Path, cluster) -> Path:
    """The class graded by the local engine (two zygotes), while the cluster starts."""
    out = root / "local"
    _grade(_class(root / "class", CLASS), out, small, workers=2)
    return out


@pytest.fixture(scope="module")
def client(cluster):
    folder, security = _ready(cluster)
    with distributed.Client(scheduler_file=str(folder / "scheduler.json"), security=security,
                            set_as_default=False) as connected:
        yield connected


def test_a_class_graded_on_dask_has_the_bytes_of_the_local_engine(root, small, reference, cluster):
    out = root / "dask"
    report = _grade(root / "class", out, small, dask=_settings(cluster))
    assert sorted(report.graded) == sorted(Path(name).stem for name in CLASS)
    assert reproducible_files(out) == reproducible_files(reference)
    for log in ("alice_logsigmoid.txt", "henry_missing_half.txt"):   # frank's notebook logs its own timings
        assert (out / "logs" / log).read_bytes() == (reference / "logs" / log).read_bytes()
    run = json.loads((out / "run.json").read_text("utf-8"))
    assert run["engine"] == "dask" and run["scheduler"].startswith("tls://") and run["dask_workers_at_start"] == 2
    assert run["zygotes_per_worker"] == 1 and run["workers"] == 1 and run["local_cluster"] is False
    assert json.loads((reference / "run.json").read_text("utf-8"))["engine"] == "local"


def test_a_worker_of_another_version_is_refused(root, small, reference, cluster, monkeypatch):
    theirs = {**environment.fingerprint(), "torch": "0.0"}      # the TA's machine, as the workers see it
    monkeypatch.setattr(environment, "fingerprint", lambda: theirs)
    with pytest.raises(EngineError, match=r"refuses to grade: torch is '.+' here but '0.0' on the TA's machine"):
        _grade(root / "class", root / "refused-version", small, dask=_settings(cluster))
    assert not (root / "refused-version" / "results").exists()


def test_a_worker_without_namespaces_is_refused(root, small, reference, cluster, client):
    client.run(dask_cluster.patch_isolation)
    try:
        with pytest.raises(EngineError, match="namespaces, which are unavailable here .*refusing to run student "
                                              "code unsandboxed"):
            _grade(root / "class", root / "refused-isolation", small, dask=_settings(cluster))
    finally:
        client.run(dask_cluster.restore_isolation)
    assert not (root / "refused-isolation" / "results").exists()


def test_a_task_for_a_refusing_worker_comes_back_refused_before_anything_runs():
    task = {"environment": {**environment.fingerprint(), "code_sha256": "0" * 64}, "isolation": "namespaces",
            "student": "s", "files": {"../escape.py": b""}}
    reply = json.loads(worker.grade_task(task))   # in this process: nothing is written, nothing runs
    assert reply["reply"] == "refused" and reply["worker"] == "this process"
    assert reply["problems"] == [f"code_sha256 is {environment.fingerprint()['code_sha256']!r} here but "
                                 f"{'0' * 64!r} on the TA's machine"]


def test_the_workhouse_goes_to_the_labelled_worker(root, cluster, client):
    rubric = _rubric(root / "workhouse.toml", WORKHOUSE)
    klass = _class(root / "template", {"rita.py": "rita_template.py", "rita2.py": "rita_template.py"})
    out = root / "routed"
    _grade(klass, out, rubric, dask=_settings(cluster, workhouse_resource=dask_cluster.GPU))
    labelled = {address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()
                if info.get("resources", {}).get(dask_cluster.GPU)}
    ran = {event["student"]: event["worker"] for _, event in client.get_events(worker.EVENT_TOPIC)
           if event["student"].startswith("rita")}
    assert set(ran) == {"rita", "rita2"} and set(ran.values()) <= labelled and len(labelled) == 1
    record = json.loads((out / "results" / "rita.json").read_text("utf-8"))
    assert record["sandbox"]["workhouse"] == {"device": "cpu", "statistics": "workhouse_ring_cpu.json"}
    assert json.loads((out / "run.json").read_text("utf-8"))["workhouse_resource"] == dask_cluster.GPU


@pytest.fixture(scope="module")
def faulty(root, small, reference, cluster) -> Path:
    """The class with two more students whose tasks kill their workers (once; every time)."""
    klass = _class(root / "faulty", {**CLASS, **FAULTS})
    out = root / "faulty-out"
    _grade(klass, out, small, dask=_settings(cluster))
    return out


def test_a_worker_killed_mid_submission_costs_a_retry_only(faulty, reference):
    assert (Path(faulty) / "results" / "unlucky.json").exists()
    assert _checks(faulty, "unlucky") == _checks(reference, "henry_missing_half")  # same bytes, same inputs
    graded, expected = reproducible_files(faulty), reproducible_files(reference)
    for student in (Path(name).stem for name in CLASS):
        assert graded[f"results/{student}.json"] == expected[f"results/{student}.json"]


def test_a_submission_whose_workers_keep_dying_is_its_own_sandbox_error(faulty):
    record = json.loads((faulty / "results" / "zz_doomed.json").read_text("utf-8"))
    assert record["status"] == "sandbox_error"
    assert "not your fault" in record["message"] and "WorkerDied: every Dask worker that ran it died" in record["message"]
    assert record["score"] == "0" and all(not check["passed"] for check in record["checks"])


def test_a_scheduler_that_goes_away_ends_the_run_and_a_rerun_resumes(root, small, reference, cluster, client):
    client.wait_for_workers(2, timeout=READY_S)     # the killed workers are back
    klass = _class(root / "last", LAST)
    out = root / "last-out"
    folder, process = cluster

    def kill_when_the_first_is_written() -> None:
        deadline = time.monotonic() + READY_S
        while not (out / "results" / "a_first.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)      # scheduler, nannies, workers: kill -9

    killer = threading.Thread(target=kill_when_the_first_is_written, daemon=True)
    killer.start()
    with pytest.raises(EngineError, match=r"the Dask scheduler at tls://\S+ went away .*results finished so far "
                                          r"are in .*; run the same command again"):
        _grade(klass, out, small, dask=_settings(cluster))
    killer.join()
    assert sorted(p.name for p in (out / "results").glob("*.json")) == ["a_first.json"]
    assert not (out / ".work").exists()
    again = _grade(klass, out, small, resume=True)             # the same class, resumed (here: locally)
    assert again.skipped == ["a_first"] and again.graded == ["zz_last"]
    assert _checks(out, "a_first") == _checks(reference, "alice_logsigmoid")
    assert _checks(out, "zz_last") == _checks(reference, "henry_missing_half")
    done = _grade(klass, out, small, dask=DaskSettings(f"file:{folder / 'scheduler.json'}"), resume=True)
    assert done.graded == [] and done.skipped == ["a_first", "zz_last"]     # nothing left: the cluster is not asked


@pytest.mark.parametrize("target, kind, where", [
    ("local:3", "local", 3), ("tls://10.0.0.5:8786", "address", "tls://10.0.0.5:8786"),
    ("file:/shared/scheduler.json", "file", Path("/shared/scheduler.json"))])
def test_targets(target, kind, where):
    assert parse_target(target) == (kind, where)


@pytest.mark.parametrize("target, message", [
    ("local:0", "N must be a whole number of workers, at least 1"),
    ("tcp://10.0.0.5:8786", "only TLS schedulers are used"),
    ("tls://nohost", "expected tls://HOST:PORT"), ("gpu-cluster", "expected local:N, tls://HOST:PORT or file:")])
def test_bad_targets_say_what_is_accepted(target, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target(target)


def test_a_cluster_that_cannot_be_reached_is_one_error_line_and_exit_3(tmp_path, capsys):
    klass = _class(tmp_path / "class", {"sam.py": "sam_syntax_error.py"})
    missing = tmp_path / "none.json"
    status = cli.main([str(klass), "--out", str(tmp_path / "out"), "--quiet", "--dask", f"file:{missing}"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == cli.EXIT_ENGINE == 3
    assert err == [f"error: --dask file:{missing}: there is no scheduler file at {missing}"]


def test_a_reply_about_another_submission_or_with_a_bad_picture_is_refused():
    from grader.engines.outputs import Outputs
    from grader.intake import Submission
    from grader.results import StudentResult

    result = StudentResult(student="ann", status="ok", message="", checks=[], submission={"sha256": "ab"},
                           rubric={}, versions={})
    sub = Submission(student="bob", source=Path("bob.py"), kind="py", sha256="ab", workdir=None, entry=None,
                     mode="full")
    with pytest.raises(wire.WireError, match="the record of 'ann' for 'bob'"):
        wire.read_reply(wire.graded_reply(result, Outputs(log=""), "w"), sub)
    sub.student = "ann"
    assert wire.read_reply(wire.graded_reply(result, Outputs(log="x", picture=b"\x89PNG\r\n\x1a\n..."), "w"),
                           sub).outputs == Outputs(log="x", picture=b"\x89PNG\r\n\x1a\n...")
    with pytest.raises(wire.WireError, match="not a PNG"):
        wire.read_reply(wire.graded_reply(result, Outputs(log="", picture=b"GIF89a"), "w"), sub)
    with pytest.raises(wire.WireError, match="must stay inside its work folder"):
        wire.checked_path("../escape.py")
