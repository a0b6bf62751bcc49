"""The student kit: no answers inside (its self-check in a fresh virtual environment:
test_kit_venv.py, apart so that its pip install runs beside these tests under xdist)."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.checks import build_suites
from grader.kit import build_kit
from grader.reference_oracle import ReferenceOracle
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]
KIT_TEXT_SUFFIXES = (".py", ".md", ".toml", ".json", ".txt")


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    return build_kit(tmp_path_factory.mktemp("kit") / "kit")


def _texts(kit: Path) -> dict[Path, str]:
    return {p: p.read_text("utf-8") for p in kit.rglob("*") if p.is_file() and p.suffix in KIT_TEXT_SUFFIXES}


def test_kit_holds_no_reference_formula_and_no_mistake_code(kit):
    texts = _texts(kit)
    assert not any(p.name in ("mistakes.py", "reference_oracle.py", "solution.py") for p in texts)
    for path, text in texts.items():
        assert not re.search(r"^\s*(from|import)\s+reference\b", text, re.M), path
    formula_lines = [line.strip() for line in (ROOT / "reference" / "formulas.py").read_text().splitlines()
                     if line.strip().startswith("return ") and len(line.strip()) > 20]
    assert formula_lines
    for path, text in texts.items():
        for line in formula_lines:
            assert line not in text, (path, line)


def _hidden_suites(rubric):
    """Every suite the grading may use: the rubric's own seed (build_suites; also the structure
    of any grading), and per-submission draws (SuiteBuilder.for_seed) for two submissions, with
    and without a course secret."""
    from grader.checks import SuiteBuilder
    from grader.seeds import input_secret, submission_seed

    oracle = ReferenceOracle()
    suites = list(build_suites(rubric, oracle))
    builder = SuiteBuilder(rubric, oracle)
    for environ in ({}, {"GRADER_INPUT_SECRET": "a course secret"}):
        key, _ = input_secret(rubric.seed, environ)
        for submission in ("alice_logsigmoid.py", "mia_logvar_as_std.py"):
            sha = hashlib.sha256((ROOT / "submissions" / submission).read_bytes()).hexdigest()
            suites += builder.for_seed(submission_seed(key, sha))
    return suites


def _hidden_secrets(rubric):
    """(hidden input arrays, grading seeds as integers) of the grading suites."""
    suites = _hidden_suites(rubric)
    arrays = [a for s in suites for c in s.checks for case in c.cases for a in case.args
              if isinstance(a, np.ndarray) and a.size > 3]
    seeds = {rubric.seed}
    for s in suites:
        for c in s.checks:
            for case in c.cases:
                seeds |= {v for k, v in case.extra.items() if k.endswith("seed") and isinstance(v, int)}
                seeds |= {n for v in case.extra.get("samples", []) for n in v[1:] if isinstance(n, int)}
    return arrays, seeds


def _kit_blobs(kit: Path) -> dict[str, bytes]:
    """Every file of the kit as raw bytes, and every array inside an .npz as its raw bytes (in its
    own dtype, and in float64 and float32), so a compressed table is searched too."""
    blobs = {}
    for path in kit.rglob("*"):
        if not path.is_file():
            continue
        blobs[str(path.relative_to(kit))] = path.read_bytes()
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as table:
                for key in table.files:
                    value = table[key]
                    for dtype in (value.dtype, np.float64, np.float32):
                        if np.issubdtype(value.dtype, np.number):
                            blobs[f"{path.relative_to(kit)}::{key}::{np.dtype(dtype).name}"] = \
                                np.ascontiguousarray(value, dtype=dtype).tobytes()
    return blobs


def find_leaks(kit: Path, rubric) -> list[str]:
    """What of the grading's secrets appears in the kit: a grading seed written as text (or as a
    little-endian int64), a hidden input array or any one of its rows (raw float64 or float32
    bytes, in a file or inside an .npz), or a hidden input value printed as text (repr)."""
    arrays, seeds = _hidden_secrets(rubric)
    assert arrays and len(seeds) > 1
    blobs = _kit_blobs(kit)
    texts = {name: blob.decode("utf-8", "replace") for name, blob in blobs.items() if "::" not in name}
    leaks = []
    for seed in sorted(seeds):
        for name, text in texts.items():
            if re.search(rf"(?<!\d){seed}(?!\d)", text):
                leaks.append(f"seed {seed} as text in {name}")
        for name, blob in blobs.items():
            if int(seed).to_bytes(8, "little") in blob:
                leaks.append(f"seed {seed} as int64 in {name}")
    needles = {}
    for i, a in enumerate(arrays):
        rows = a.reshape(-1, a.shape[-1]) if a.ndim > 1 and a.shape[-1] >= 4 else a.reshape(1, -1)
        for r, row in enumerate(rows):
            for dtype in (np.float64, np.float32):
                needles[row.astype(dtype).tobytes()] = f"hidden input {i} row {r} ({np.dtype(dtype).name})"
        # as text: the first value with 12+ characters (a drawn float, not a constant like 100.0)
        printed = next((repr(float(v)) for v in a.reshape(-1) if len(repr(float(v))) >= 12), None)
        if printed:
            needles[printed.encode()] = f"hidden input {i} printed as text ({printed})"
    for needle, what in needles.items():
        for name, blob in blobs.items():
            if needle in blob:
                leaks.append(f"{what} in {name}")
                break
    return leaks


def test_kit_holds_no_hidden_seed_or_hidden_inputs(kit):
    rubric = load_rubric()
    kit_rubric = load_rubric(kit / "grader" / "kit_data" / "rubric.toml")
    assert kit_rubric.seed == rubric.public_seed != rubric.seed
    assert find_leaks(kit, rubric) == []
    # Nor any expected value of a hidden call (the table holds values on the public inputs only).
    with np.load(kit / "grader" / "kit_data" / "expected.npz", allow_pickle=False) as table:
        public_values = [table[k] for k in table.files]
    oracle = ReferenceOracle()
    hidden_values = [oracle.value(case) for s in build_suites(rubric, oracle) for c in s.checks for case in c.cases
                     if case.kind == "function" and "unknown_kind" not in case.id]
    assert hidden_values
    for value in hidden_values:
        assert not any(v.shape == value.shape and np.array_equal(v, value) for v in public_values)


def _doctored(kit: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    return copy


def _leak_into_table(copy: Path, extra: dict) -> None:
    path = copy / "grader" / "kit_data" / "expected.npz"
    with np.load(path, allow_pickle=False) as table:
        arrays = {k: table[k] for k in table.files}
    np.savez_compressed(path, **arrays, **extra)


@pytest.mark.parametrize("leak", ["input-in-table", "float32-row-in-table", "input-as-json",
                                  "seed-in-rubric", "per-submission-input", "fvbn-seed"])
def test_leak_finder_catches_a_leaking_kit(kit, tmp_path, leak):
    """find_leaks is not vacuous: each way of leaking a secret into a copy of the kit is found."""
    rubric = load_rubric()
    arrays, seeds = _hidden_secrets(rubric)
    copy = _doctored(kit, tmp_path)
    first = next(a for s in build_suites(rubric, ReferenceOracle()) if s.function == "elbo"
                 for c in s.checks for case in c.cases for a in case.args[1:2])      # elbo's logits
    if leak == "input-in-table":
        _leak_into_table(copy, {"elbo/value/0::args::0": first})
    elif leak == "float32-row-in-table":
        _leak_into_table(copy, {"cache": first[2:3].astype(np.float32)})
    elif leak == "input-as-json":
        (copy / "grader" / "kit_data" / "inputs.json").write_text(json.dumps(first.tolist()))
    elif leak == "seed-in-rubric":
        rubric_file = copy / "grader" / "kit_data" / "rubric.toml"
        rubric_file.write_text(rubric_file.read_text() + f"\n# hidden_seed = {rubric.seed}\n")
    elif leak == "per-submission-input":   # the last suites drawn are a per-submission draw
        _leak_into_table(copy, {"x": arrays[-1]})
    else:
        fvbn_seed = min(seeds - {rubric.seed})
        (copy / "grader" / "kit_data" / "fvbn.txt").write_text(f"param_seed={fvbn_seed}\n")
    assert find_leaks(copy, rubric), leak
