"""Where one sandboxed run's time goes: a timeline of its phases, from an instrumented copy.

    python benchmarks/profile_sandbox.py [--runs 25] [--groups 8]

Copies ``grader/`` to a temporary folder, inserts a timestamp (``label pid monotonic-time``,
written to an inherited fd) at each phase boundary of the zygote (Z), the supervisor (S), PID 1
(P1) and the grader (G), then runs ``--runs`` submissions through a ``SandboxPool`` of one
zygote: once a file that fails to compile (no call runs), once a file whose ``add`` is called in
``--groups`` groups of one call (one call process per group, as one per graded function). Prints
the median duration between consecutive timestamps (the first 5 runs are a warm-up). The
project's own code is never changed; the copy is removed afterwards.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_FD = 250
PROBE = f"""import os, time
def T(label):
    try:
        os.write({LOG_FD}, f"{{label}} {{os.getpid()}} {{time.monotonic():.6f}}\\n".encode())
    except OSError:
        pass
"""
# (file, text to find, text to put instead): each phase boundary gets a T("...") call
EDITS = [
    ("pool.py", '            "GLIBC_TUNABLES": ', '            "PROBE_LOG": os.environ.get("PROBE_LOG", "/dev/null"),\n            "GLIBC_TUNABLES": '),
    ("zygote.py", "from grader.sandbox.limits import Limits\n",
     "from grader.sandbox.limits import Limits\nfrom grader.sandbox._probe import T\n"),
    ("zygote.py", "    args = parser.parse_args(argv)\n",
     f"    args = parser.parse_args(argv)\n    os.dup2(os.open(os.environ.get('PROBE_LOG', '/dev/null'), "
     f"os.O_WRONLY | os.O_APPEND | os.O_CREAT), {LOG_FD})\n"),
    ("zygote.py", "    def run(self, request: dict) -> None:\n", "    def run(self, request: dict) -> None:\n        T('z.run')\n"),
    ("zygote.py", "        pid = os.fork()\n        if pid == 0:", "        T('z.fork'); pid = os.fork()\n        if pid == 0:"),
    ("zygote.py", '            if message.get("type") == "maps":\n',
     "            T('z.answer.' + str(message.get('type')))\n            if message.get(\"type\") == \"maps\":\n"),
    ("zygote.py", "        self.active = None\n        os.close(alive_w)\n", "        self.active = None\n        T('z.s_exited'); os.close(alive_w)\n"),
    ("supervisor.py", "    copy_dir = None\n    p1 = None\n", "    copy_dir = None\n    p1 = None\n    from grader.sandbox._probe import T; T('s.start')\n"),
    ("supervisor.py", "                filesystem.build_root(job)\n            namespaces.unshare_all(job)\n",
     "                T('s.unshare_mnt'); filesystem.build_root(job); T('s.build_root')\n            namespaces.unshare_all(job); T('s.unshare_all')\n"),
    ("supervisor.py", "        p1 = os.fork()\n", "        T('s.fork_p1'); p1 = os.fork()\n"),
    ("supervisor.py", '        sync.ask({"type": "p1", "pid": p1})\n', "        sync.ask({\"type\": \"p1\", \"pid\": p1}); T('s.p1_in_cgroup')\n"),
    ("supervisor.py", "    finally:\n        if p1:\n", "    finally:\n        T('s.finally')\n        if p1:\n"),
    ("inside.py", "from grader.sandbox import ", "from grader.sandbox._probe import T\nfrom grader.sandbox import "),
    ("inside.py", "        _closerange(4, 1 << 16)\n", f"        _closerange(4, {LOG_FD}); _closerange({LOG_FD + 1}, 1 << 16); T('p1.set_up_fds')\n"),
    ("inside.py", "            step(job)\n", "            step(job); T('p1.' + step.__qualname__)\n"),
    ("inside.py", "    except _SubmissionLoadError as error:\n", "    except _SubmissionLoadError as error:\n        T('p1.load_error')\n"),
    ("inside.py", "            next_group = _run_groups(job, channel, namespace, job.groups, next_group)\n",
     "            T('p1.groups_start'); next_group = _run_groups(job, channel, namespace, job.groups, next_group); "
     "T('p1.groups_done')\n"),
]
DRIVER = f"""import os, sys, tempfile
from pathlib import Path
os.dup2(os.open(os.environ['PROBE_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT), {LOG_FD})
from grader.sandbox import SandboxPool, Limits
from grader.sandbox._probe import T
kind, runs, n_groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
source = {{"compile_error": "def f(:\\n", "calls": "def add(a, b):\\n    return a + b\\n"}}[kind]
groups = ([[{{"id": f"add/{{g}}", "kind": "function", "function": "add", "args": [1, 2], "kwargs": {{}}}}]
           for g in range(n_groups)] if kind == "calls" else [])
root = Path(tempfile.mkdtemp())
with SandboxPool(Limits(), workers=1, isolation="namespaces", workhouse=False) as pool:
    for i in range(runs):
        d = root / f"s{{i}}"; d.mkdir(); (d / "solution.py").write_text(f"# {{i}}\\n" + source)
        T("g.run"); pool.run(d, "solution.py", "full", groups); T("g.end")
"""


def timeline(log: Path) -> list[tuple[str, float, int]]:
    runs, current = [], None
    for line in log.read_text().splitlines():
        label, _, moment = line.split()
        if label == "g.run":
            current = []
            runs.append(current)
        if current is not None:
            current.append((label, float(moment)))
    gaps = collections.defaultdict(list)
    for run in runs[5:]:
        run.sort(key=lambda item: item[1])
        for (a, ta), (b, tb) in zip(run, run[1:]):
            gaps[f"{a} -> {b}"].append((tb - ta) * 1000)
        gaps["TOTAL"].append((run[-1][1] - run[0][1]) * 1000)
    return [(k, statistics.median(v), len(v)) for k, v in gaps.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--groups", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="profile-sandbox-"))
    try:
        shutil.copytree(ROOT / "grader", work / "grader", ignore=shutil.ignore_patterns("__pycache__"))
        sandbox = work / "grader" / "sandbox"
        (sandbox / "_probe.py").write_text(PROBE)
        for name, old, new in EDITS:
            text = (sandbox / name).read_text()
            if old not in text:
                raise SystemExit(f"cannot instrument {name}: {old!r} not found (the code changed: update EDITS)")
            (sandbox / name).write_text(text.replace(old, new, 1))
        for kind in ("compile_error", "calls"):
            log = work / f"{kind}.log"
            env = {**os.environ, "PYTHONPATH": str(work), "PROBE_LOG": str(log)}
            subprocess.run([sys.executable, "-c", DRIVER, kind, str(args.runs), str(args.groups)], cwd=work, env=env,
                           check=True, stderr=subprocess.DEVNULL)
            print(f"\n{kind} ({args.runs} runs{', ' + str(args.groups) + ' groups of one call' if kind == 'calls' else ''}):")
            print("| from -> to | median (ms) | n |\n|---|---|---|")
            for label, ms, n in timeline(log):
                print(f"| {label} | {ms:.2f} | {n} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
