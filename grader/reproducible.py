"""What two gradings of one class must agree on byte for byte: ``scores.csv`` and every student's
record (without its timings, ``grader.results.TIMING_KEYS``) and feedback, whatever the engine and
the number of workers (README: "Grading a class"). Not the logs: a student's output may hold its
own timings (a progress bar). For tests and benchmarks."""
from __future__ import annotations

import json
from pathlib import Path

from grader.results import TIMING_KEYS

FOLDERS = ("results", "feedback")


def reproducible_files(out_dir: Path) -> dict[str, bytes]:
    """``{relative path: bytes}`` of an output folder's reproducible files; a record is its JSON
    without ``TIMING_KEYS``, keys sorted."""
    out_dir = Path(out_dir)
    found = {"scores.csv": (out_dir / "scores.csv").read_bytes()}
    for folder in FOLDERS:
        for path in sorted((out_dir / folder).glob("*")):
            data = path.read_bytes()
            if folder == "results":
                record = json.loads(data)
                for key in TIMING_KEYS:
                    record.pop(key, None)
                data = json.dumps(record, sort_keys=True).encode("utf-8")
            found[f"{folder}/{path.name}"] = data
    return found
