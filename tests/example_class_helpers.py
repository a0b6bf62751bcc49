"""What the example-class tests share: grading a class through the CLI, reading its results, and
finding a grader's processes and its sandboxes' processes from the host's /proc."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASS = ROOT / "submissions"


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
