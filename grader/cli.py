"""Command line: ``python -m grader CLASS [--out DIR] [--workers N] [--unsafe] [limit flags]``."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grader.sandbox import Limits, isolation_available

if TYPE_CHECKING:
    from grader.engines.settings import DaskSettings

DEFAULT_OUT = Path("grading")
EXIT_USAGE = 2  # bad input (a missing folder or file, a roster without its columns, a busy output folder)
EXIT_ENGINE = 3  # the Dask cluster failed (its scheduler went away, a worker refused): rerun to resume


def error_text(error: BaseException | str) -> str:
    """One line for stderr: an OSError as ``what: file``, anything else as its message."""
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename is not None else ""
        text = f"{error.strerror}{where}"
    elif isinstance(error, UnicodeDecodeError):
        text = f"not UTF-8 text ({error.reason} at byte {error.start})"
    elif isinstance(error, BaseException):
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        text = text or type(error).__name__
    else:
        text = error
    return " ".join(text.split())


def fail(error: BaseException | str, context: str = "") -> int:
    """Print ``error: [context: ]message`` as one line on stderr; return the usage exit status."""
    print(f"error: {context + ': ' if context else ''}{error_text(error)}", file=sys.stderr)
    return EXIT_USAGE


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per sandbox limit, named and defaulted from ``Limits`` (never retyped here)."""
    group = parser.add_argument_group("sandbox limits (defaults from grader.sandbox.Limits)")
    descriptions = Limits.describe()
    for f in dataclasses.fields(Limits):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            group.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default,
                               dest=f"limit_{f.name}", metavar=type(default).__name__.upper(),
                               help=f"{descriptions.get(f.name, '')} (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader", description="Grade a class of submissions safely.",
        epilog="Other commands (each with --help): kit --out DIR (the student kit), report OUT (class report), "
               "regrade STUDENT CLASS --out OUT, diff OLD NEW, export-lms OUT --roster R, mark OUT (the browser marking app), gradescope "
               "(inside Gradescope's container). Students run `python -m grader.check FILE`.")
    parser.add_argument("class_dir", type=Path, help="folder with one entry per student (NAME.py, NAME.ipynb, NAME.zip, NAME/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT}/)")
    parser.add_argument("--workers", type=int, default=None,
                        help="submissions graded at once (default: 2); with --dask, zygotes per Dask worker (default: 1)")
    parser.add_argument("--dask", metavar="TARGET", default=None,
                        help="grade on a Dask cluster: local:N (N worker processes here), tls://HOST:PORT or "
                             "file:SCHEDULER.json (a running one; README: 'Grading on a Dask cluster')")
    parser.add_argument("--dask-dashboard", action="store_true", help="with --dask local:N: its dashboard, on 127.0.0.1")
    parser.add_argument("--dask-workhouse-resource", metavar="LABEL", default=None,
                        help="with --dask: train_gan's submissions go to workers started with --resources LABEL=1")
    parser.add_argument("--rubric", type=Path, default=None, help="rubric TOML (default: the packaged grader/rubric.toml)")
    parser.add_argument("--no-resume", action="store_true", help="regrade submissions already graded in --out")
    parser.add_argument("--unsafe", action="store_true",
                        help="allow grading without kernel isolation when it is unavailable (student code then runs with your rights)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--late-policy", type=Path, default=None,
                        help="late policy TOML ([late] deadline, grace_minutes, penalty_percent_per_day, "
                             "max_late_days); copied into OUT (default: OUT/late_policy.toml if present)")
    parser.add_argument("--submitted-at", type=Path, default=None,
                        help="CSV student,submitted_at (ISO 8601 with an offset), for the late policy")
    parser.add_argument("--extensions", type=Path, default=None,
                        help="CSV student,extra_days or student,deadline, for the late policy")
    parser.add_argument("--manual", type=Path, default=None,
                        help="the TA's marks for written answers and overrides (default: OUT/manual.csv if present)")
    parser.add_argument("--anonymous", action="store_true", help="written-answer pages show codes, not student ids")
    parser.add_argument("--questions", type=Path, default=None, help="written questions TOML (default: grader/questions.toml)")
    _limit_flags(parser)
    return parser


def kit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader kit", description="Build the student kit.")
    parser.add_argument("--out", type=Path, required=True, help="folder to create")
    args = parser.parse_args(argv)
    from grader.kit import build_kit

    print(f"student kit written to {build_kit(args.out)}/")
    return 0


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader report", description="Class report: one HTML file with plots.")
    parser.add_argument("out_dir", type=Path, help="a grading output folder")
    parser.add_argument("--dest", type=Path, default=None, help="HTML file to write (default: OUT_DIR/report.html)")
    args = parser.parse_args(argv)
    from grader.exports import OutputFolderError
    from grader.exports.class_report import write_report

    try:
        print(f"class report written to {write_report(args.out_dir, args.dest)}")
    except (OutputFolderError, OSError) as exc:
        return fail(exc)
    return 0


def diff_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader diff", description="Who changed score between two gradings, and why.")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    from grader.exports import OutputFolderError
    from grader.exports.diff import diff_folders

    try:
        print(diff_folders(args.old, args.new))
    except (OutputFolderError, OSError) as exc:
        return fail(exc)
    return 0


def regrade_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader regrade", description="Grade one student again (a regrade request).")
    parser.add_argument("student", help="the student id (the entry's name without extension)")
    parser.add_argument("class_dir", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--unsafe", action="store_true")
    _limit_flags(parser)
    args = parser.parse_args(argv)
    from grader.exports.diff import regrade_one
    from grader.intake import IntakeError
    from grader.outlock import OutputBusy
    from grader.run import GradingOptions

    isolation = _isolation(args.unsafe)
    if isolation is None:
        return 2
    try:
        report = regrade_one(args.class_dir, args.out, args.student,
                             GradingOptions(out_dir=args.out, limits=_limits(args), isolation=isolation))
    except (KeyError, OutputBusy, IntakeError) as exc:
        return fail(exc)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(report.diff)
    return 0


def export_lms_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader export-lms", description="LMS gradebook CSV joined with a roster.")
    parser.add_argument("out_dir", type=Path, help="a grading output folder")
    parser.add_argument("--roster", type=Path, required=True, help="CSV with student_id,name,email")
    parser.add_argument("--gradebook", type=Path, default=None, help="the LMS's exported gradebook CSV (optional)")
    parser.add_argument("--assignment", default="Autograder", help="the gradebook column to fill")
    parser.add_argument("--dest", type=Path, default=None, help="folder for gradebook.csv and lms_report.md (default: OUT_DIR)")
    args = parser.parse_args(argv)
    from grader.exports import OutputFolderError
    from grader.exports.lms import LmsError, export_lms, write_lms_export

    try:
        export = export_lms(args.out_dir, args.roster, args.gradebook, args.assignment)
    except (LmsError, OutputFolderError) as exc:
        return fail(exc)
    try:
        csv_path, report_path = write_lms_export(export, args.dest or args.out_dir)
    except OSError as exc:
        return fail(exc)
    print(f"wrote {csv_path} and {report_path} (read the report: mismatches are listed there)")
    return 0


def gradescope_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader gradescope",
                                     description="Run inside Gradescope's container: /autograder/submission in, results.json out.")
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--public-checks", nargs="*", default=[], help="'function/check' patterns students may see")
    parser.add_argument("--include-written", action="store_true")
    parser.add_argument("--require-isolation", action="store_true", help="fail instead of degrading without namespaces")
    args = parser.parse_args(argv)
    from grader.exports.gradescope import GradescopeConfig, run_in_gradescope_layout

    config = GradescopeConfig(public_checks=tuple(args.public_checks), include_written=args.include_written)
    try:
        run_in_gradescope_layout(args.root, config, allow_unsandboxed=not args.require_isolation)
    except OSError as exc:  # the results folder itself cannot be written (anything else is in results.json)
        return fail(exc)
    print(f"wrote {args.root / 'results' / 'results.json'}")
    return 0


def mark_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader mark",
                                     description="Mark the written answers of a graded class in the browser.")
    parser.add_argument("out", type=Path, help="the grading output folder (its written/answers.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="only print the link")
    parser.add_argument("--anonymous", action="store_true",
                        help="show anonymous codes instead of student ids (always so when graded with --anonymous)")
    args = parser.parse_args(argv)
    from grader.written.app.server import serve

    try:
        serve(args.out, host=args.host, port=args.port, open_browser=not args.no_browser, anonymous=args.anonymous)
    except (OSError, ValueError) as error:   # no answers.json, an unreadable one, a port in use
        return fail(error)
    return 0


COMMANDS = {"kit": kit_main, "report": report_main, "diff": diff_main, "regrade": regrade_main,
            "export-lms": export_lms_main, "gradescope": gradescope_main, "mark": mark_main}


def _isolation(unsafe: bool) -> str | None:
    """``namespaces`` when available; ``none`` with a loud warning under --unsafe; else None (refuse)."""
    available, why = isolation_available()
    if available:
        return "namespaces"
    if not unsafe:
        print(f"error: kernel isolation is unavailable here ({why}); refusing to run student code unsandboxed. "
              "Pass --unsafe to grade anyway.", file=sys.stderr)
        return None
    print(f"WARNING: grading WITHOUT a sandbox ({why}): student code runs with your rights.", file=sys.stderr)
    return "none"


def _dask_settings(args: argparse.Namespace) -> "DaskSettings | None":
    """``--dask`` and its flags (None without it); raises ``ValueError`` for a bad combination."""
    if args.dask is None:
        if args.dask_dashboard or args.dask_workhouse_resource:
            raise ValueError("--dask-dashboard and --dask-workhouse-resource need --dask")
        return None
    from grader.engines.settings import DaskSettings

    settings = DaskSettings(args.dask, dashboard=args.dask_dashboard, workhouse_resource=args.dask_workhouse_resource)
    if settings.dashboard and settings.kind != "local":
        raise ValueError("--dask-dashboard is for --dask local:N (a running cluster's dashboard is its operator's)")
    return settings


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f"limit_{f.name}") for f in dataclasses.fields(Limits)
                     if hasattr(args, f"limit_{f.name}")})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS and not Path(argv[0]).exists():
        return COMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    from grader.run import GradingOptions, grade_class
    from grader.rubric import DEFAULT_RUBRIC

    if not args.class_dir.is_dir():
        what = "does not exist" if not args.class_dir.exists() else "is not a folder"
        return fail(f"{args.class_dir} {what}: expected a folder of submissions (one entry per student)")
    from grader import intake

    try:
        entries, class_notes = intake.discover(args.class_dir)
    except intake.IntakeError as exc:
        return fail(exc)
    if not entries:
        ignored = f" ({len(class_notes)} entries ignored: {'; '.join(class_notes)[:300]})" if class_notes else ""
        return fail(f"{args.class_dir} holds no submission (NAME.py, NAME.ipynb, NAME.zip or NAME/){ignored}; "
                    "is it the right folder?")
    try:
        dask = _dask_settings(args)
    except ValueError as exc:
        return fail(exc)
    isolation = _isolation(args.unsafe)
    if isolation is None:
        return 2
    workers = args.workers if args.workers is not None else (1 if dask is not None else 2)
    options = GradingOptions(out_dir=args.out, workers=workers, limits=_limits(args), isolation=isolation, dask=dask,
                             rubric_path=args.rubric or DEFAULT_RUBRIC, resume=not args.no_resume,
                             progress=not args.quiet, questions_path=args.questions, manual_csv=args.manual,
                             late_policy=args.late_policy, submitted_at=args.submitted_at, extensions=args.extensions,
                             anonymous=args.anonymous)
    from grader.outlock import OutputBusy
    from grader.policy import PolicyError
    from grader.written.anonymity import ENV_SECRET

    if args.anonymous and not os.environ.get(ENV_SECRET):
        print(f"warning: --anonymous without {ENV_SECRET}: the codes are derived from the rubric's seed, so "
              "anyone with the repository and the class list can undo them; set a course secret in "
              f"{ENV_SECRET} (and keep it) for blind marking", file=sys.stderr)
    from grader.seeds import ENV_SECRET as INPUT_SECRET, NO_SECRET_WARNING

    if not os.environ.get(INPUT_SECRET):
        print(NO_SECRET_WARNING, file=sys.stderr)
    from grader.engines import EngineError

    try:
        report = grade_class(args.class_dir, options)
    except EngineError as exc:
        fail(exc)
        return EXIT_ENGINE
    except (OutputBusy, intake.IntakeError, PolicyError, OSError) as exc:
        return fail(exc)
    by_status: dict[str, int] = {}
    for r in report.rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    print(f"graded {len(report.graded)}, reused {len(report.skipped)} earlier result(s); "
          f"status {dict(sorted(by_status.items()))}; {report.duration_s:.1f} s; results in {args.out}/")
    print(report.written)
    if report.manual_problems:
        print(f"manual marks: {len(report.manual_problems)} problem(s) (all in {args.out}/written/problems.txt):")
        for line in report.manual_problems[:5]:
            print(f"  {line}")
    return 0 if all(r.status != "sandbox_error" for r in report.rows) else 1
