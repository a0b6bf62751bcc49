"""Gradescope's autograder format: one ``StudentResult`` as ``results.json``, and the ``/autograder`` layout.

Gradescope runs ``run_autograder`` in a fresh container per submission, with the student's files in
``/autograder/submission/``, and reads ``/autograder/results/results.json``::

    {"execution_time": 5.2, "output": "...", "output_format": "md", "visibility": "visible",
     "stdout_visibility": "hidden", "extra_data": {...},
     "tests": [{"score": 4, "max_score": 4, "status": "passed", "name": "discriminator_loss / value",
                "number": "1.1", "output": "...", "output_format": "md",
                "tags": ["discriminator_loss"], "visibility": "after_published"}, ...]}

One test per check, in rubric order. A test's ``output`` is the check's message (what the
student's feedback shows), never its ``hidden`` field (the TA-only full inputs of a failing call).
The top-level ``score`` is left out: Gradescope adds up the tests' scores. Checks run on the
grader's hidden inputs (all of them, today: every input is drawn from the rubric's secret seed)
get ``GradescopeConfig.hidden_inputs_visibility``; checks listed in ``public_checks`` are
visible. While any test is not visible the top-level output does not print the total either.
Written questions (``written / Q1`` ...) are marked by hand: they are left out (Gradescope's own
manually graded questions hold them) unless ``include_written`` is set.
"""
from __future__ import annotations

import fnmatch
import json
import os
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from grader.atomic import write_atomic
from grader.exports import copy_as_data
from grader.reports import STATUS_TEXT
from grader.results import StudentResult
from grader.sandbox.pool import UNSANDBOXED_WARNING
from grader.scoring import points_str
from grader.written.manual import WRITTEN_FUNCTION

__all__ = ["GradescopeConfig", "STUDENT_ID", "isolation_text", "results_json", "results_json_text",
           "run_in_gradescope_layout"]

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
OUTPUT_FORMATS = ("text", "html", "md", "ansi")
#: The id of the one student of the temporary class (Gradescope knows who it is; we need not).
STUDENT_ID = "student"
WHEN_SHOWN = {
    "visible": "now",
    "after_due_date": "after the due date",
    "after_published": "when the grades are published",
    "hidden": "to course staff only",
}


@dataclass(frozen=True)
class GradescopeConfig:
    """Every setting of the Gradescope export, with its default."""

    hidden_inputs_visibility: str = "after_published"  # tests of checks run on the grader's hidden inputs
    public_visibility: str = "visible"  # tests of checks listed in public_checks
    public_checks: tuple[str, ...] = ()  # "function/check" patterns (fnmatch) whose inputs students have
    visibility: str = "visible"  # the whole result (top-level output included)
    stdout_visibility: str = "hidden"  # run_autograder's own stdout and stderr
    output_format: str = "md"  # of the top-level output and of every test's output
    test_output_chars: int = 20_000  # one test's output is cut past this many characters
    show_isolation: bool = True  # say in the top-level output how the submission was isolated
    include_written: bool = False  # written questions as tests too (default: left to Gradescope's manual questions)

    def __post_init__(self) -> None:
        for name in ("hidden_inputs_visibility", "public_visibility", "visibility", "stdout_visibility"):
            value = getattr(self, name)
            if value not in VISIBILITIES:
                raise ValueError(f"GradescopeConfig.{name} must be one of {', '.join(VISIBILITIES)}, got {value!r}")
        if self.output_format not in ("md", "text"):
            raise ValueError(f"GradescopeConfig.output_format must be 'md' or 'text', got {self.output_format!r}")
        if isinstance(self.public_checks, str):
            raise ValueError("GradescopeConfig.public_checks must be a tuple of patterns, not one string")

    def is_public(self, function: str, check: str) -> bool:
        key = f"{function}/{check}"
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.public_checks)


# ------------------------------------------------------------------------------------ text helpers

def _number(points: Decimal) -> int | float:
    """Points as a JSON number: ``4``, ``0.5`` (exact for the rubric's decimals)."""
    return int(points) if points == points.to_integral_value() else float(points)


def _fenced(text: str, info: str = "text") -> str:
    """``text`` verbatim in a fenced code block whose fence no run of backticks inside can close."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>&~")


def _md_text(text: str) -> str:
    """Plain text safe inside Markdown: every markup character backslash-escaped, no HTML, one line."""
    out = []
    for ch in " ".join(str(text).split()):
        if ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&":
            out.append("&amp;")
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _md_trusted(text: str) -> str:
    """The grader's own text in Markdown: kept as written, only HTML's characters neutralised."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters cut)"


def unsandboxed_user() -> str:
    """Who the submission's processes are without namespaces (``grader.sandbox.privileges.drop_root``):
    ``separate_user`` (root's grader, a Python other users can run: an unprivileged uid of the
    sandbox's own), ``root_without_capabilities`` (root, a Python in a folder closed to others) or
    ``grader_user`` (the grader is not root: its own uid)."""
    if os.geteuid() != 0:
        return "grader_user"
    from grader.sandbox.privileges import python_open_to_others

    return "separate_user" if python_open_to_others() else "root_without_capabilities"


UID0_ENV = "GRADER_ALLOW_UID0_SUBMISSIONS"  # =1: grade as uid 0 without capabilities (refused otherwise)


def uid0_allowed(environ: "dict[str, str] | None" = None) -> bool:
    """Whether the course allows running a submission as uid 0 without capabilities, the only
    unsandboxed mode left where this Python is closed to other users (off by default: uid 0 owns
    the grader's files)."""
    return (os.environ if environ is None else environ).get(UID0_ENV, "").strip() == "1"


UNSANDBOXED_USERS = {
    "separate_user": ("as a separate unprivileged user, which cannot write the grader's files or the folder "
                      "results.json is written to"),
    "root_without_capabilities": ("as root with every capability dropped (this container's Python is in a folder "
                                  "closed to other users, so no separate user could run it), which cannot write the "
                                  "folder results.json is written to (it belongs to another user)"),
    "grader_user": "as the grader's own user (uid {uid})",
}


def isolation_text(result: StudentResult, why_not: str = "") -> str:
    """One line: how this submission was isolated, from its ``sandbox`` record."""
    mode = (result.sandbox or {}).get("isolation")
    if mode == "namespaces":
        return ("Grading isolation: kernel namespaces (user, mount, PID, network, IPC, UTS), resource limits, "
                "no capabilities, no_new_privs and a seccomp filter.")
    if mode == "none":
        who = UNSANDBOXED_USERS[unsandboxed_user()].format(uid=os.geteuid())
        reason = f" ({why_not})" if why_not else ""
        return ("Grading isolation: none at the kernel level: namespaces are not available in this container"
                f"{reason}. Each submission ran in separate processes {who}, with resource limits, no_new_privs "
                "and a seccomp filter, on a private copy of its files; the container itself is the sandbox.")
    return "Grading isolation: the submission's code was not run (it never reached the sandbox)."


# ---------------------------------------------------------------------------------- results.json

def _test(config: GradescopeConfig, check, number: str) -> dict:
    public = config.is_public(check.function, check.name)
    from grader.reports import mark_word

    mark = mark_word(check)  # a written question is MARKED (or NOT MARKED YET), never a failure
    message = _cut(check.message or "", config.test_output_chars)
    if config.output_format == "md":
        parts = [f"**{mark}** ({points_str(check.score)} / {points_str(check.max_score)}): "
                 f"{_md_trusted(check.description)}"]
        if message:
            parts += ["", _fenced(message)]
        output = "\n".join(parts)
    else:
        output = "\n".join(p for p in (f"{mark}: {check.description}", message) if p)
    return {
        "score": _number(check.score),
        "max_score": _number(check.max_score),
        "status": "passed" if check.passed or mark == "MARKED" else "failed",
        "name": f"{check.function} / {check.name}",
        "number": number,
        "output": output,
        "output_format": config.output_format,
        "tags": [check.function],
        "visibility": config.public_visibility if public else config.hidden_inputs_visibility,
    }


def _top_output(result: StudentResult, tests: list[dict], config: GradescopeConfig, isolation: str) -> str:
    md = config.output_format == "md"
    status = f"Submission {STATUS_TEXT.get(result.status, result.status)}."
    lines = [f"**{status}**" if md else status]
    if result.message:
        lines += ["", _fenced(result.message) if md else result.message]
    shown = [t for t in tests if t["visibility"] == "visible"]
    if tests and len(shown) == len(tests):
        got = sum((Decimal(str(t["score"])) for t in tests), Decimal(0))
        top = sum((Decimal(str(t["max_score"])) for t in tests), Decimal(0))
        total = f"Score: {points_str(got)} / {points_str(top)}"
        lines += ["", f"**{total}**" if md else total]
    else:
        later = sorted({t["visibility"] for t in tests if t["visibility"] != "visible"})
        when = " or ".join(WHEN_SHOWN[v] for v in later)
        if shown:
            got = sum((Decimal(str(t["score"])) for t in shown), Decimal(0))
            top = sum((Decimal(str(t["max_score"])) for t in shown), Decimal(0))
            lines += ["", f"Public checks: {points_str(got)} / {points_str(top)} points. The other "
                          f"{len(tests) - len(shown)} checks run on hidden inputs; their results are shown {when}."]
        elif tests:
            lines += ["", f"Every check runs on hidden inputs: the results are shown {when}."]
    written = [c for c in result.checks if c.function == WRITTEN_FUNCTION]
    if written and not config.include_written:
        top = points_str(sum((c.max_score for c in written), Decimal(0)))
        lines += ["", f"The written answers ({', '.join(c.name for c in written)}; {top} points) are marked by hand, "
                      "outside the autograder."]
    # the pool's UNSANDBOXED warning is for the TA (results, extra_data): students get the isolation line
    notes = [n for n in (result.submission or {}).get("notes") or [] if not n.startswith(UNSANDBOXED_WARNING[:40])]
    if notes:
        lines += ["", "Notes on your submission:", *[f"- {_md_text(n) if md else n}" for n in notes]]
    if isolation and config.show_isolation:
        lines += ["", _md_trusted(isolation) if md else isolation]
    return "\n".join(lines)


def _late_inputs(root: Path) -> tuple[Path | None, dict[str, str]]:
    """The course's late policy (``source/late_policy.toml`` in the autograder, when the course
    ships one) and this submission's time (``created_at`` of Gradescope's submission_metadata.json)."""
    from grader.policy import POLICY_NAME

    policy = root / "source" / POLICY_NAME
    times: dict[str, str] = {}
    try:
        created = json.loads((root / "submission_metadata.json").read_text("utf-8")).get("created_at")
        if isinstance(created, str):
            times[STUDENT_ID] = created
    except (OSError, ValueError, AttributeError):
        pass
    return (policy if policy.is_file() else None), times


def results_json(result: StudentResult, config: GradescopeConfig = GradescopeConfig(),
                 execution_time_s: float | None = None, isolation: str | None = None) -> dict:
    """Gradescope's ``results.json`` for one result, as a dict (see the module's docstring).

    ``execution_time_s`` defaults to the result's own ``durations.total_s``; ``isolation`` (one
    line for the top-level output) defaults to ``isolation_text(result)``."""
    tests = []
    functions: list[str] = []
    counters: dict[str, int] = {}
    for check in result.checks:
        if check.function == WRITTEN_FUNCTION and not config.include_written:
            continue
        if check.function not in functions:
            functions.append(check.function)
        counters[check.function] = counters.get(check.function, 0) + 1
        number = f"{functions.index(check.function) + 1}.{counters[check.function]}"
        tests.append(_test(config, check, number))
    if execution_time_s is None:
        execution_time_s = float((result.durations or {}).get("total_s", 0.0))
    out: dict = {}
    if not tests:  # nothing carries a score: say it at the top
        out["score"] = 0
    elif result.late_penalty:  # the tests add up to the earned score; the total is after the penalty
        out["score"] = _number(result.total)
    out.update({
        "execution_time": round(float(execution_time_s), 3),
        "output": _top_output(result, tests, config, isolation_text(result) if isolation is None else isolation),
        "output_format": config.output_format,
        "visibility": config.visibility,
        "stdout_visibility": config.stdout_visibility,
        "extra_data": {
            "status": result.status,
            "sha256": (result.submission or {}).get("sha256"),
            "rubric_version": (result.rubric or {}).get("version"),  # not the seed: it makes the inputs hidden
            "grader": (result.versions or {}).get("grader"),
            "isolation": (result.sandbox or {}).get("isolation"),
            **({"unsandboxed_user": unsandboxed_user()} if (result.sandbox or {}).get("isolation") == "none" else {}),
        },
        "tests": tests,
    })
    return out


def results_json_text(results: dict) -> str:
    return json.dumps(results, indent=2, ensure_ascii=False) + "\n"


# -------------------------------------------------------------------------- the /autograder layout

def _failure_results(message: str, started: float, config: GradescopeConfig) -> dict:
    return {
        "score": 0,
        "execution_time": round(time.perf_counter() - started, 3),
        "output": (f"**The autograder could not grade this submission** (not your fault: please resubmit, "
                   f"or tell the course staff if it happens again).\n\n{_fenced(message)}"),
        "output_format": "md",
        "visibility": config.visibility,
        "stdout_visibility": config.stdout_visibility,
        "extra_data": {"status": "sandbox_error"},
        "tests": [],
    }


#: The owner of the folders a submission must not write, when the grader is root: "nobody", neither
#: root nor any sandbox uid (``grader.sandbox.job.SANDBOX_ID_BASE`` + a pid). Mode 0700 leaves them
#: to that owner and to a process with ``CAP_DAC_OVERRIDE`` (the grader); a submission run as uid 0
#: without capabilities is neither, and cannot chmod or chown them back (no ``CAP_FOWNER``/``CAP_CHOWN``).
CLOSED_OWNER = 65534


def close_to_submissions(folder: Path) -> None:
    """``folder`` closed to every writer but the grader: owned by ``CLOSED_OWNER`` with mode 0700
    when the grader is root (root's own folders are open to a capability-less uid 0); else only
    group and other write taken away (a submission runs as the grader's own user then)."""
    if os.geteuid() == 0:
        try:
            os.chown(folder, CLOSED_OWNER, CLOSED_OWNER, follow_symlinks=False)
        except OSError:
            pass  # a root without CAP_CHOWN: ``closed_to_root`` says so, and that mode is refused
        os.chmod(folder, 0o700)
        return
    mode = folder.stat().st_mode & 0o7777
    if mode & 0o022:
        os.chmod(folder, mode & ~0o022)


def closed_to_root(folder: Path) -> bool:
    """Whether a capability-less uid 0 can neither write ``folder`` nor give itself the right to."""
    st = os.lstat(folder)
    return stat.S_ISDIR(st.st_mode) and st.st_uid != 0 and not st.st_mode & 0o077


def closed_results_folder(folder: Path) -> Path:
    """``folder`` (``/autograder/results``) made, and closed to writers other than the grader
    (``close_to_submissions``): a submission run as another user, or as uid 0 without
    capabilities, can neither write ``results.json`` nor replace it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if folder.is_symlink():
        raise OSError(f"{folder} is a symbolic link: refusing to write results through it")
    close_to_submissions(folder)
    return folder


def _results_destination(folder: Path, closed: os.stat_result) -> Path:
    """``folder/results.json``, ``folder`` still the one closed before grading. A submission run as
    uid 0 owns ``/autograder`` and can rename the closed folder and make its own in its place:
    whatever is there now is moved aside, and a fresh closed folder made."""
    try:
        now = os.lstat(folder)
        same = (now.st_dev, now.st_ino) == (closed.st_dev, closed.st_ino) and stat.S_ISDIR(now.st_mode)
    except FileNotFoundError:
        now, same = None, False
    if not same:
        if now is not None:
            os.rename(folder, folder.with_name(f"{folder.name}.replaced-{secrets.token_hex(6)}"))
        closed_results_folder(folder)
    return folder / "results.json"


def run_in_gradescope_layout(root: Path = Path("/autograder"), config: GradescopeConfig = GradescopeConfig(),
                             limits=None, rubric_path: Path | None = None,
                             allow_unsandboxed: bool = True) -> dict:
    """Grade ``root/submission`` as a class of one and write ``root/results/results.json`` atomically.

    The submission folder is copied (as data) into a temporary class folder as ``student/``, so
    intake reads it like any folder entry (``solution.py``, or the single ``.py``/``.ipynb``, plus
    helpers), and ``grader.run.grade_class`` grades it with a fresh, temporary output folder.
    Isolation: kernel namespaces when ``grader.sandbox.isolation_available()`` says so; otherwise
    (Docker's default seccomp profile forbids them) ``isolation="none"``: separate processes with
    rlimits, no capabilities, no_new_privs and seccomp, inside Gradescope's throwaway container;
    when the grader is root, the submission's processes run as an unprivileged uid of their own
    (``grader.sandbox.privileges.drop_root``); where this Python is closed to other users it stays
    uid 0 without capabilities. Either way ``root/results`` and the grading's temporary folder are
    owned by ``CLOSED_OWNER`` with mode 0700 (``close_to_submissions``), and a results folder the
    submission renamed away is replaced before the write, so the submission cannot forge
    ``results.json``; a root that cannot give the results folder away refuses to run a submission
    as uid 0 without capabilities (a results.json saying so is written).
    ``allow_unsandboxed=False`` refuses that case instead (a results.json saying so is written).
    The top-level output states which isolation was used. Returns what was written.
    """
    from grader.rubric import DEFAULT_RUBRIC
    from grader.run import GradingOptions, grade_class
    from grader.sandbox import Limits, isolation_available

    started = time.perf_counter()
    root = Path(root)
    results_folder = closed_results_folder(root / "results")
    closed = os.lstat(results_folder)
    destination = results_folder / "results.json"
    if os.environ.get("GRADER_SANDBOX", "").strip().lower() == "none":  # as grader.check: force the fallback
        available, why = False, "GRADER_SANDBOX=none"
    else:
        available, why = isolation_available()
    if not available and not allow_unsandboxed:
        results = _failure_results(f"kernel isolation is unavailable here ({why}) and unsandboxed grading "
                                   "was not allowed", started, config)
        write_atomic(destination, results_json_text(results))
        return results
    if not available and unsandboxed_user() == "root_without_capabilities" and not uid0_allowed():
        results = _failure_results(
            f"kernel isolation is unavailable here ({why}), and this container's Python is in a folder closed to "
            "other users, so the submission would run as uid 0 without capabilities: uid 0 still owns the grader's "
            "own files (its Python, its sources), which the submission could rewrite before the grader reads them. "
            "Refusing to grade: install a Python other users can run (the submission then runs as a separate "
            f"unprivileged user), or allow kernel namespaces; {UID0_ENV}=1 grades anyway", started, config)
        write_atomic(destination, results_json_text(results))
        return results
    if not available and unsandboxed_user() == "root_without_capabilities" and not closed_to_root(results_folder):
        results = _failure_results(f"kernel isolation is unavailable here ({why}), the submission would run as uid 0 "
                                   f"without capabilities, and {results_folder} could not be given to uid "
                                   f"{CLOSED_OWNER} with mode 0700, so the submission could write results.json: "
                                   "refusing to grade", started, config)
        write_atomic(destination, results_json_text(results))
        return results
    try:
        with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
            if not available:  # the class copy and the grading's output: out of the submission's reach
                close_to_submissions(Path(tmp))
            class_dir = Path(tmp) / "class"
            class_dir.mkdir()
            if (root / "submission").is_dir():
                copy_notes = copy_as_data(root / "submission", class_dir / STUDENT_ID)
            else:
                (class_dir / STUDENT_ID).mkdir()
                copy_notes = [f"{root / 'submission'} is missing: nothing was submitted"]
            policy, times = _late_inputs(root)
            options = GradingOptions(out_dir=Path(tmp) / "out", workers=1, limits=limits or Limits(),
                                     isolation="namespaces" if available else "none",
                                     rubric_path=rubric_path or DEFAULT_RUBRIC, resume=False, progress=False,
                                     late_policy=policy, submission_times=times)
            report = grade_class(class_dir, options)
            result = report.result(STUDENT_ID)
            if result is None:
                raise RuntimeError("grading produced no result")
            result.submission["notes"] = [*copy_notes, *result.submission.get("notes", [])]
            results = results_json(result, config, execution_time_s=time.perf_counter() - started,
                                   isolation=isolation_text(result, "" if available else why))
    except Exception as error:  # noqa: BLE001 - Gradescope must always get a results.json
        results = _failure_results(f"{type(error).__name__}: {error}", started, config)
    try:
        destination = _results_destination(results_folder, closed)
    except OSError:  # the write below says what is wrong
        pass
    write_atomic(destination, results_json_text(results))
    return results
