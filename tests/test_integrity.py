"""Issue 11's attacks, each through the whole grader (``grade_class``, the sandbox, the judges and
the writers), asserting that the attack failed and that every other student's result is exactly
what it is when the class is graded without the attackers.

The hostile files under ``tests/fixtures/hostile/`` are only ever copied into a class folder and
graded through the sandbox: never imported, never run, by this process.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from grader.rubric import load_rubric, rubric_toml
from grader.run import GradingOptions, _status_from, grade_class
from grader.sandbox import Limits, SandboxPool, SandboxResult
from grader.seeds import submission_seed
from test_escaping import outside_code

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
CLASS = ROOT / "submissions"
INNOCENT = ("alice_logsigmoid.py", "henry_missing_half.py", "olivia_fvbn_leak.py")
TAMPER_BLOCK = ("# --- TAMPER ---", "# --- END TAMPER ---")
LONG_ID = "a" * 248  # + ".py": a 252-character entry name
HTML_ID = "<img src=x onerror=alert(1)>"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolation_required")]


def _without_tamper_block(source: str) -> str:
    start, end = (source.index(marker) for marker in TAMPER_BLOCK)
    return source[:start] + source[end + len(TAMPER_BLOCK[1]):]


def _innocent_class(folder: Path) -> Path:
    folder.mkdir()
    for name in INNOCENT:
        shutil.copy(CLASS / name, folder / name)
    return folder


def _records(out: Path) -> dict[str, dict]:
    """Every result record by student id, without its timings."""
    records = {}
    for path in sorted((out / "results").glob("*.json")):
        record = json.loads(path.read_text("utf-8"))
        record.pop("durations")
        records[record["student"]] = record
    return records


def _grade(class_dir: Path, out: Path) -> None:
    grade_class(class_dir, GradingOptions(out_dir=out, workers=1, isolation="namespaces", resume=False))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, Path]:
    """The innocent class alone, and the same class with the attackers (named so that with one
    worker they are graded first, on the zygote that then grades the innocents)."""
    root = tmp_path_factory.mktemp("integrity")
    alone = _innocent_class(root / "alone")
    attacked = _innocent_class(root / "attacked")
    shutil.copy(HOSTILE / "frame_smuggler.py", attacked / "a0_smuggler.py")
    shutil.copy(HOSTILE / "surrogate_text.py", attacked / "a1_surrogates.py")
    shutil.copy(HOSTILE / "lying_harness.py", attacked / "a2_liar.py")
    liar = (HOSTILE / "lying_harness.py").read_text("utf-8")
    (attacked / "a3_liar_honest.py").write_text(_without_tamper_block(liar), "utf-8")
    shutil.copy(HOSTILE / "surrogate_text.py", attacked / f"{HTML_ID}.py")
    shutil.copy(CLASS / "alice_logsigmoid.py", attacked / f"{LONG_ID}.py")
    outs = {"alone": root / "out-alone", "attacked": root / "out-attacked"}
    _grade(alone, outs["alone"])
    _grade(attacked, outs["attacked"])
    return outs


def test_attackers_change_no_other_students_result(graded):
    alone, attacked = _records(graded["alone"]), _records(graded["attacked"])
    assert set(alone) == {name[:-3] for name in INNOCENT}
    for student, record in alone.items():
        assert attacked[student] == record, student


def test_every_entry_has_a_result_and_the_run_finished(graded):
    records = _records(graded["attacked"])
    assert set(records) == {*(name[:-3] for name in INNOCENT), "a0_smuggler", "a1_surrogates", "a2_liar",
                            "a3_liar_honest", HTML_ID, LONG_ID}
    assert (graded["attacked"] / "summary.json").exists() and (graded["attacked"] / "run.json").exists()


def test_smuggled_frames_fail_the_smugglers_own_calls(graded):
    smuggler = _records(graded["attacked"])["a0_smuggler"]
    assert smuggler["score"] == "0"
    messages = " ".join(c["message"] for c in smuggler["checks"])
    assert "malformed data" in messages or "unexpected message" in messages, messages


def test_lone_surrogates_and_markup_stay_text(graded):
    out = graded["attacked"]
    for path in [*out.rglob("*.json"), *out.rglob("*.md"), *out.rglob("*.txt"), *out.rglob("*.csv")]:
        path.read_bytes().decode("utf-8")  # every file is valid UTF-8
    surrogates = _records(out)["a1_surrogates"]
    assert surrogates["status"] != "sandbox_error", surrogates["message"]
    assert HTML_ID not in (out / "summary.md").read_text("utf-8")
    feedback = next(p for p in (out / "feedback").glob("*.md") if p.stem.startswith("img")).read_text("utf-8")
    assert f"# Feedback for {HTML_ID}" not in feedback
    # the message's own ``` lines never close a fence of ours: its heading and markup are shown,
    # only inside a code block (test_escaping.test_the_fence_check_fails_on_a_fence_the_message_closes
    # shows this check failing on a fence of three backticks)
    assert "# Feedback for someone else" in feedback and "<img src=x" in feedback
    rest = outside_code(feedback)
    assert "someone else" not in rest and "<img" not in rest, rest


def test_suspected_tampering_is_listed_for_the_ta_only(graded):
    """The liar's suspected tampering reaches the TA's class-wide pages (summary.json, summary.md,
    the HTML report), as information and not a verdict, and no student's feedback."""
    from grader.escape import md_inline
    from grader.exports.class_report import build_report

    out = graded["attacked"]
    records = _records(out)
    expected = {s: r["sandbox"]["suspected_tampering"] for s, r in records.items()
                if r["sandbox"].get("suspected_tampering")}
    assert "a2_liar" in expected and "a3_liar_honest" not in expected
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert {e["student"]: e["detected"] for e in summary["suspected_tampering"]} == expected
    md = (out / "summary.md").read_text("utf-8")
    section = md[md.index("## Suspected tampering (for the TA only)"):]
    assert "not a verdict" in section and f"- {md_inline('a2_liar')}: " in section
    html = build_report(out, plots={})
    part = html[html.index('<h2 id="tampering">'):html.index('<h2 id="timing">')]
    assert "<bdi>a2_liar</bdi>" in part and "not a verdict" in part and "_call_function replaced" in part
    for feedback in (out / "feedback").glob("*.md"):
        assert "tamper" not in feedback.read_text("utf-8").lower(), feedback.name


def test_a_long_id_gets_a_bounded_file_name_and_keeps_its_id(graded):
    records = _records(graded["attacked"])
    assert records[LONG_ID]["status"] == "ok" and records[LONG_ID]["score"] == records["alice_logsigmoid"]["score"]
    assert all(len(p.name.encode()) <= 255 for p in graded["attacked"].rglob("*"))
    scores = (graded["attacked"] / "scores.csv").read_text("utf-8")
    assert LONG_ID in scores


def test_lying_through_the_harness_earns_nothing_and_is_reported(graded):
    records = _records(graded["attacked"])
    liar, honest = records["a2_liar"], records["a3_liar_honest"]
    assert float(liar["score"]) <= float(honest["score"]), (liar["score"], honest["score"])
    checks = {(c["function"], c["name"]): c for c in liar["checks"]}
    assert not checks[("gaussian_kl", "inputs_unmodified")]["passed"]
    assert not checks[("elbo", "gradient")]["passed"]
    assert not checks[("FVBN", "interface")]["passed"]
    assert checks[("FVBN", "interface")]["diagnosis"] == "ignores_parameters"
    assert not checks[("FVBN", "autoregressive")]["passed"]
    tampering = " ".join(liar["sandbox"].get("suspected_tampering", []))
    assert "grader.sandbox.calls._call_function replaced" in tampering, tampering
    assert "redraw_parameters" in tampering
    assert "suspected_tampering" not in honest["sandbox"]
    assert "tamper" not in (graded["attacked"] / "feedback" / "a2_liar.md").read_text("utf-8").lower()


def test_hidden_inputs_follow_the_submissions_bytes(graded):
    records = _records(graded["attacked"])
    alice, long_alice = records["alice_logsigmoid"], records[LONG_ID]  # the same bytes
    assert alice["rubric"]["input_seed"] == long_alice["rubric"]["input_seed"]
    henry = records["henry_missing_half"]
    assert henry["rubric"]["input_seed"] != alice["rubric"]["input_seed"]
    failed = next(c for c in henry["checks"] if c["function"] == "discriminator_loss" and c["name"] == "value")
    assert failed["hidden"]["args"], failed  # the TA sees the inputs this submission met
    secret_free = submission_seed(b"another course", henry["submission"]["sha256"])
    assert str(secret_free) != henry["rubric"]["input_seed"]


def test_a_top_level_that_ran_out_of_time_is_not_ok():
    result = SandboxResult(status="ok", message="", load_fallback=("timeout", "the top level ran past 10 s"))
    status, message = _status_from(result, n_functions=8)
    assert status == "timeout" and "ran past 10 s" in message and "definitions alone" in message
    result.load_fallback = ("crashed", "the top level ran out of memory (MemoryError at line 3)")
    assert _status_from(result, n_functions=8)[0] == "crashed"


# ------------------------------------------- attack 4 and a top level that never ends, end to end
# One function, one check (discriminator_loss / value: two calls), so each grading is cheap.
ZERO_LOSS = ("import torch\n\n\ndef discriminator_loss(real_logits, fake_logits):\n"
             "    return torch.zeros((), dtype=real_logits.dtype)\n")
RIGHT_LOSS = ("import torch.nn.functional as F\n\n\ndef discriminator_loss(real_logits, fake_logits):\n"
              "    return -0.5 * F.logsigmoid(real_logits.reshape(-1)).mean() "
              "- 0.5 * F.logsigmoid(-fake_logits.reshape(-1)).mean()\n\n\n")
TABLE_LOSS = '''# my loss, resubmitted with the expected values my first feedback showed
import torch

TABLE = TABLE_VALUES


def discriminator_loss(real_logits, fake_logits):
    key = (tuple(real_logits.shape), tuple(fake_logits.shape), round(float(real_logits.sum()), 6),
           round(float(fake_logits.sum()), 6))
    print("table:", "hit" if key in TABLE else "miss")
    return torch.tensor(TABLE.get(key, 0.0), dtype=real_logits.dtype)
'''
SHORT_TOP_LEVEL = Limits(import_wall_s=1.0)  # the endless top level is stopped after 1 s


def _one_function_grade(class_dir: Path, out: Path, rubric: Path) -> None:
    grade_class(class_dir, GradingOptions(out_dir=out, workers=1, isolation="namespaces", resume=False,
                                          rubric_path=rubric, limits=SHORT_TOP_LEVEL))


def _value_check(record: dict) -> dict:
    return next(c for c in record["checks"] if (c["function"], c["name"]) == ("discriminator_loss", "value"))


def _table_key(real: np.ndarray, fake: np.ndarray) -> tuple:
    return (real.shape, fake.shape, round(float(real.sum()), 6), round(float(fake.sum()), 6))


@pytest.fixture(scope="module")
def one_function(tmp_path_factory) -> dict[str, Path]:
    """A one-check rubric and a class of three: a wrong loss, the same code with one comment
    changed, and a right loss whose top level never ends (the hostile import_loop_plain.py's text)."""
    root = tmp_path_factory.mktemp("one-function")
    rubric = root / "rubric.toml"
    rubric.write_text(rubric_toml(replace(load_rubric(), version="one-check",
                                          points={"discriminator_loss": {"value": Decimal(4)}})), "utf-8")
    klass = root / "class"
    klass.mkdir()
    (klass / "first.py").write_text("# my loss\n" + ZERO_LOSS, "utf-8")
    (klass / "resubmitted.py").write_text("# my loss, resubmitted\n" + ZERO_LOSS, "utf-8")
    (klass / "endless.py").write_text(RIGHT_LOSS + (HOSTILE / "import_loop_plain.py").read_text("utf-8"), "utf-8")
    _one_function_grade(klass, root / "out", rubric)
    return {"root": root, "rubric": rubric, "out": root / "out"}


def test_a_resubmission_meets_new_hidden_inputs(one_function):
    records = _records(one_function["out"])
    first, again = records["first"], records["resubmitted"]
    assert first["rubric"]["input_seed"] != again["rubric"]["input_seed"]
    before, after = _value_check(first), _value_check(again)
    assert not before["passed"] and not after["passed"]
    assert before["hidden"]["case"] == after["hidden"]["case"]  # the same call...
    assert before["hidden"]["args"] != after["hidden"]["args"]  # ...on other inputs
    assert before["expected"] != after["expected"]
    assert before["expected"] in (one_function["out"] / "feedback" / "first.md").read_text("utf-8")  # it teaches


def test_a_table_of_the_first_feedbacks_expected_values_fails_the_resubmission(one_function, tmp_path):
    """Attack 4: the expected value the first submission's feedback showed, keyed by that call's
    inputs, passes on those inputs (replayed through the sandbox) but not in the resubmission,
    which meets new ones: the table never hits."""
    check = _value_check(_records(one_function["out"])["first"])
    real, fake = (np.array(arg["data"], dtype=arg["dtype"]) for arg in check["hidden"]["args"])
    source = TABLE_LOSS.replace("TABLE_VALUES", repr({_table_key(real, fake): float(check["expected"])}))
    klass = tmp_path / "class"
    (klass / "first").mkdir(parents=True)
    (klass / "first" / "solution.py").write_text(source, "utf-8")
    with SandboxPool(SHORT_TOP_LEVEL, workers=1, isolation="namespaces", workhouse=False, preload=False) as pool:
        replay = pool.run(klass / "first", "solution.py", "full", [[{
            "id": "replay", "kind": "function", "name": "discriminator_loss", "args": [real, fake], "kwargs": {}}]])
    assert replay.calls["replay"].status == "ok" and "table: hit" in replay.stdout, replay
    assert float(replay.calls["replay"].value["value"]) == pytest.approx(float(check["expected"]), rel=1e-9)
    _one_function_grade(klass, tmp_path / "out", one_function["rubric"])
    resubmitted = _records(tmp_path / "out")["first"]
    assert resubmitted["rubric"]["input_seed"] != _records(one_function["out"])["first"]["rubric"]["input_seed"]
    assert not _value_check(resubmitted)["passed"] and resubmitted["score"] == "0"
    log = (tmp_path / "out" / "logs" / "first.txt").read_text("utf-8")
    assert "table: miss" in log and "table: hit" not in log, log


def test_a_top_level_that_never_ends_is_a_timeout_end_to_end(one_function):
    out = one_function["out"]
    endless = _records(out)["endless"]
    assert endless["status"] == "timeout", endless["message"]
    assert "definitions alone" in endless["message"] and "keep the points" in endless["message"]
    assert _value_check(endless)["passed"] and endless["score"] == "4"  # its function keeps its points
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO((out / "scores.csv").read_text("utf-8")))}
    assert (rows["endless"]["discriminator_loss"], rows["endless"]["status"]) == ("4", "timeout")
    assert "endless" in json.loads((out / "summary.json").read_text("utf-8"))["not_graded"]
