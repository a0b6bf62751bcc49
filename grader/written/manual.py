"""The TA's marks (``manual.csv``): reading, validating, and merging them into stored results.

``manual.csv`` has the columns ``student, question, points, comment`` and optionally ``items`` (any
order, any case; a ``;`` or tab separator is recognised from the header; UTF-8, with or without a BOM):

* ``student``: a student id, or the anonymous code shown on the marking pages;
* ``question``: ``Q1``, ``Q2``, ... for a written question, or ``check:FUNCTION/CHECK`` (e.g.
  ``check:gaussian_kl/value``) to override an automatic check;
* ``points``: a decimal between 0 and the maximum (``4.5``; empty: not marked yet);
* ``comment``: shown to the student; required for an override (it is the reason);
* ``items`` (optional; written by the marking app, ``grader.written.app``): the rubric items ticked,
  ``1;3``. With items, ``points`` must be the ticked items' current points (``questions.toml``'s,
  changed by ``rubric_items.json`` beside manual.csv; capped at the maximum) or empty (then that
  sum is the mark); points that disagree, or an item the question lacks, are a problem and the row
  is not applied (conventions in ``grader.written.rubric_items``). Empty: a points-only mark.

Every row that is not applied is reported with its line and why; nothing is dropped in silence.
Then ``merge`` is a pure, deterministic function of the stored results and the valid marks:
it first undoes any earlier merge (``automatic_only``), so merging again, or merging results
that were stored after a merge, gives byte-identical records.
"""
from __future__ import annotations

import copy
import csv
import io
import unicodedata
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from grader.results import StudentResult
from grader.scoring import GATED_KEY, OVERRIDE_KEY, WRITTEN_FUNCTION, CheckResult, is_manual, points_str  # noqa: F401
from grader.written import rubric_items
from grader.written.anonymity import code_table
from grader.written.questions import Questions

CHECK_PREFIX = "check:"
COLUMNS = ("student", "question", "points", "comment")
OPTIONAL_COLUMNS = ("items",)   # the rubric items ticked (grader.written.rubric_items)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NOT_MARKED = "Not marked yet."


@dataclass(frozen=True)
class Row:
    """One data row of manual.csv as written (fields stripped)."""

    line: int
    student: str
    question: str
    points: str
    comment: str
    items: str = ""                  # the optional items column ("" without it)


@dataclass(frozen=True)
class Mark:
    """A valid mark: ``student`` is the id (a code is resolved), ``question`` ``Q<n>`` or ``check:F/C``."""

    line: int
    student: str
    question: str
    points: Decimal
    comment: str


@dataclass(frozen=True)
class Problem:
    line: int | None                 # the CSV line, None for the file or a student as a whole
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _separator(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: (counts[sep], sep == ",")) if any(counts.values()) else ","


def read_manual(data: bytes, label: str = "manual.csv") -> tuple[list[Row], list[Problem]]:
    """The data rows of the file and the problems that concern the file as a whole, or a row's
    shape. A missing column or an undecodable file is one problem and no rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return [], [Problem(line, "encoding", f"{label} line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                                              "save it as 'CSV UTF-8': nothing was applied")]
    if not text.strip():
        return [], [Problem(None, "header", f"{label} is empty: nothing was applied")]
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(first), strict=False)
    problems: list[Problem] = []
    try:
        records = [(reader.line_num, fields) for fields in reader]
    except csv.Error as exc:
        return [], [Problem(reader.line_num, "header", f"{label} line {reader.line_num}: unreadable CSV ({exc}): "
                                                       "nothing was applied")]
    header_line, header = records[0]
    names = [unicodedata.normalize("NFKC", name).strip().lower() for name in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        return [], [Problem(header_line, "header",
                            f"{label} line {header_line}: the header {header!r} lacks the column(s) "
                            f"{', '.join(missing)} (expected {', '.join(COLUMNS)}): nothing was applied")]
    twice = [c for c in COLUMNS if names.count(c) > 1]
    if twice:
        return [], [Problem(header_line, "header", f"{label} line {header_line}: the column {twice[0]!r} appears "
                                                   "twice: nothing was applied")]
    extra = [header[i] for i, name in enumerate(names) if name not in COLUMNS + OPTIONAL_COLUMNS]
    if extra:
        problems.append(Problem(header_line, "extra_column", f"{label} line {header_line}: column(s) "
                                f"{', '.join(repr(e) for e in extra)} ignored (not one of {', '.join(COLUMNS)})"))
    where = {c: names.index(c) for c in COLUMNS + OPTIONAL_COLUMNS if c in names}
    rows: list[Row] = []
    for line, fields in records[1:]:
        if not any(f.strip() for f in fields):
            continue
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
            problems.append(Problem(line, "shape", f"{label} line {line}: {len(fields)} fields where the header "
                                    f"has {len(header)} (an unquoted separator in the comment? quote it): "
                                    "not applied"))
            continue
        raw = lambda c: fields[where[c]] if c in where and where[c] < len(fields) else ""  # noqa: E731
        get = lambda c: raw(c).strip()  # noqa: E731
        # the student cell unstripped: an id may start or end with a space or a newline
        student = raw("student") if raw("student").strip() else ""
        rows.append(Row(line, student, get("question"), get("points"), get("comment"), get("items")))
    return rows, problems


# --------------------------------------------------------------------------------------------
# Validating
# --------------------------------------------------------------------------------------------

def _unquote(value: str) -> str:
    """A cell written by a spreadsheet-safe export (``'=x``) back to its value (``=x``)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) else value


def _resolver(results: list[StudentResult], secret: bytes | None) -> tuple[dict[str, str], dict[str, str]]:
    students = sorted(r.student for r in results)
    codes = code_table(students, secret) if secret is not None else {}
    return {s: s for s in students}, {code: s for s, code in codes.items()}


def _check_maxima(result: StudentResult) -> dict[str, Decimal]:
    return {f"{CHECK_PREFIX}{c.function}/{c.name}": c.max_score
            for c in automatic_only(result).checks if c.function != WRITTEN_FUNCTION}


def _from_items(row: Row, found, overrides: rubric_items.Overrides) -> tuple[str, tuple[str, str] | None]:
    """The row's points cell once its items are read (empty: their sum) and why it cannot be applied."""
    try:
        ticked = rubric_items.parse_items(row.items, range(1, len(found.rubric) + 1))
    except rubric_items.ItemsError as error:
        return row.points, ("bad_items", str(error))
    points = rubric_items.item_points([i.points for i in found.rubric], overrides.get(found.id))
    total = rubric_items.score(ticked, points, found.points)
    if not row.points:
        return points_str(total), None
    try:
        agrees = Decimal(row.points) == total
    except InvalidOperation:
        return row.points, None          # reported as bad points below
    if not agrees:
        return row.points, ("items_disagree", f"points {row.points} are not the sum {points_str(total)} of the "
                                              f"ticked items {rubric_items.format_items(ticked)} (correct one, or "
                                              "empty the points to use the items)")
    return row.points, None


def validate(rows: list[Row], results: list[StudentResult], questions: Questions, *,
             secret: bytes | None = None, anonymous: bool = False, label: str = "manual.csv",
             item_points: rubric_items.Overrides | None = None) -> tuple[list[Mark], list[Problem]]:
    """The marks to apply, and a problem for every row that is not applied as written, every
    duplicate, and every student still without a mark for some question. ``item_points``: the
    changed items' points (``rubric_items.json``) that rows with items are scored by."""
    by_id, by_code = _resolver(results, secret)
    show = {s: code for code, s in by_code.items()} if anonymous else {s: s for s in by_id}
    results_by_id = {r.student: r for r in results}
    problems: list[Problem] = []
    valid: list[Mark] = []
    for row in rows:
        here = f"{label} line {row.line}"
        why = []
        raw_student = _unquote(row.student)
        name = unicodedata.normalize("NFC", raw_student)
        student = by_id.get(name)              # exactly as the template wrote it, else trimmed
        if student is None:
            raw_student = _unquote(row.student.strip())
            name = unicodedata.normalize("NFC", raw_student)
            student = by_id.get(name) or by_code.get(name.lower())
        if not raw_student:
            why.append(("unknown_student", "no student"))
        elif student is None:
            why.append(("unknown_student", f"unknown student {raw_student!r} (not a graded student"
                                           f"{' or an anonymous code' if by_code else ''})"))
        question = row.question.strip()
        maximum: Decimal | None = None
        if question.lower().startswith(CHECK_PREFIX):
            question = CHECK_PREFIX + question[len(CHECK_PREFIX):].strip()
            if row.items:
                why.append(("bad_items", "rubric items are for written questions, not checks"))
            if student is not None:
                maximum = _check_maxima(results_by_id[student]).get(question)
                if maximum is None:
                    why.append(("unknown_question", f"unknown check {row.question!r} (expected "
                                                    "check:FUNCTION/CHECK, e.g. check:gaussian_kl/value)"))
        else:
            found = questions.get(question.upper())
            if found is None:
                why.append(("unknown_question", f"unknown question {row.question!r} (expected one of "
                                                f"{', '.join(questions.ids())}, or check:FUNCTION/CHECK)"))
            else:
                question, maximum = found.id, found.points
                if row.items:
                    cell, wrong = _from_items(row, found, item_points or {})
                    row = replace(row, points=cell)
                    if wrong:
                        why.append(wrong)
        points: Decimal | None = None
        if not row.points:
            if row.comment:
                why.append(("no_points", "a comment but no points"))
            elif not why:
                continue                     # a template row not filled in yet: reported as unmarked
        else:
            try:
                points = Decimal(row.points)
            except InvalidOperation:
                why.append(("bad_points", f"points {row.points!r} are not a number (write e.g. 4.5)"))
            else:
                if not points.is_finite():
                    why.append(("bad_points", f"points {row.points!r} are not a finite number"))
                elif points < 0:
                    why.append(("negative", f"points {row.points} are negative"))
                elif maximum is not None and points > maximum:
                    why.append(("above_max", f"points {row.points} are above the maximum {points_str(maximum)} "
                                             f"for {question}"))
        if question.startswith(CHECK_PREFIX) and not row.comment:
            why.append(("no_reason", "an override needs its reason in the comment"))
        if why:
            problems.append(Problem(row.line, why[0][0], f"{here}: {'; '.join(w for _, w in why)}: not applied"))
            continue
        valid.append(Mark(row.line, student, question, points, row.comment))
    groups: dict[tuple[str, str], list[Mark]] = {}
    for mark in valid:
        groups.setdefault((mark.student, mark.question), []).append(mark)
    marks: list[Mark] = []
    for (student, question), same in groups.items():
        lines = ", ".join(str(m.line) for m in same)
        who = show.get(student, student)
        if len(same) == 1:
            marks.append(same[0])
        elif len({(m.points, m.comment) for m in same}) == 1:
            marks.append(same[0])
            problems.append(Problem(same[1].line, "duplicate", f"{label} lines {lines}: the same mark for {who} "
                                                               f"{question} more than once: applied once"))
        else:
            problems.append(Problem(same[1].line, "conflict", f"{label} lines {lines}: different marks for {who} "
                                                              f"{question}: none applied"))
    marked = {(m.student, m.question) for m in marks}
    for student in sorted(by_id, key=lambda s: show.get(s, s)):
        todo = [q.id for q in questions.questions if (student, q.id) not in marked]
        if todo:
            problems.append(Problem(None, "unmarked", f"{show.get(student, student)}: no mark yet for {', '.join(todo)}"))
    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.message))
    return sorted(marks, key=lambda m: (m.student, m.question, m.line)), problems


# --------------------------------------------------------------------------------------------
# Merging (pure)
# --------------------------------------------------------------------------------------------

def _check_from_dict(d: dict) -> CheckResult:
    return CheckResult(function=d["function"], name=d["name"], score=Decimal(d["score"]),
                       max_score=Decimal(d["max_score"]), passed=bool(d["passed"]), expected=d["expected"],
                       got=d["got"], diagnosis=d["diagnosis"], message=d["message"],
                       description=d.get("description", ""), hidden=d.get("hidden"))


def automatic_only(result: StudentResult) -> StudentResult:
    """``result`` as the automatic grading left it: written checks removed, overrides undone."""
    result = copy.deepcopy(result)
    checks = []
    for c in result.checks:
        if c.function == WRITTEN_FUNCTION:
            continue
        if isinstance(c.hidden, dict) and OVERRIDE_KEY in c.hidden:
            c = _check_from_dict(c.hidden[OVERRIDE_KEY]["automatic"])
        checks.append(c)
    rubric = {k: v for k, v in result.rubric.items() if k != "questions"}
    return replace(result, checks=checks, rubric=rubric)


def _overridden(check: CheckResult, mark: Mark) -> CheckResult:
    passed = mark.points == check.max_score
    message = (f"Changed by the TA: {points_str(mark.points)} / {points_str(check.max_score)} instead of "
               f"{points_str(check.score)}. Reason: {mark.comment}")
    if check.message:
        message += f"\nThe automatic check said:\n{check.message}"
    return replace(check, score=mark.points, passed=passed, diagnosis=None if passed else check.diagnosis,
                   message=message, hidden={OVERRIDE_KEY: {"automatic": check.to_dict()}})


def recredit_gated(checks: list[CheckResult]) -> list[CheckResult]:
    """Credit each check that passed but was withheld because checks it builds on failed, once the
    TA has overridden every one of those to full marks (undone by ``automatic_only``)."""
    overridden_ok = {(c.function, c.name) for c in checks
                     if c.passed and isinstance(c.hidden, dict) and OVERRIDE_KEY in c.hidden}
    out = []
    for c in checks:
        gates = c.hidden.get(GATED_KEY) if isinstance(c.hidden, dict) else None
        if gates and not c.passed and all((c.function, g) in overridden_ok for g in gates):
            names = ", ".join(f"`{g}`" for g in gates)
            c = replace(c, score=c.max_score, passed=True,
                        message=f"Credited: it passed, and the TA changed {names}, which it builds on, to full marks.",
                        hidden={OVERRIDE_KEY: {"automatic": c.to_dict()}})
        out.append(c)
    return out


def _written(question, mark: Mark | None) -> CheckResult:
    if mark is None:
        return CheckResult(WRITTEN_FUNCTION, question.id, Decimal(0), question.points, False, "", "", None,
                           NOT_MARKED, f"{question.title} (written, marked by hand)")
    return CheckResult(WRITTEN_FUNCTION, question.id, mark.points, question.points, mark.points == question.points,
                       "", "", None, mark.comment, f"{question.title} (written, marked by hand)")


def merge(results: list[StudentResult], marks: list[Mark], questions: Questions) -> list[StudentResult]:
    """New records: each result's automatic checks (with the TA's overrides applied) followed by
    one ``written`` check per question (0 and "Not marked yet." when unmarked). The input is not
    modified; the output depends only on the input (no time, no order of ``marks``)."""
    by_student: dict[str, dict[str, Mark]] = {}
    for mark in sorted(marks, key=lambda m: (m.student, m.question, m.line)):
        by_student.setdefault(mark.student, {}).setdefault(mark.question, mark)
    out = []
    for result in results:
        base = automatic_only(result)
        mine = by_student.get(base.student, {})
        checks = [_overridden(c, mine[key]) if (key := f"{CHECK_PREFIX}{c.function}/{c.name}") in mine else c
                  for c in base.checks]
        checks = recredit_gated(checks)
        checks += [_written(q, mine.get(q.id)) for q in questions.questions]
        rubric = {**base.rubric, "questions": {"version": questions.version, "sha256": questions.sha256}}
        out.append(replace(base, checks=checks, rubric=rubric))
    return out


def read_and_validate(path: Path | None, results: list[StudentResult], questions: Questions, *,
                      secret: bytes | None = None, anonymous: bool = False) -> tuple[list[Mark], list[Problem]]:
    """``validate(read_manual(path))`` with the item points of ``rubric_items.json`` beside it; a
    missing file is one problem and every student unmarked."""
    rows: list[Row] = []
    overrides: rubric_items.Overrides = {}
    problems: list[Problem] = []
    label = Path(path).name if path is not None else "manual.csv"
    if path is None or not Path(path).is_file():
        problems.append(Problem(None, "no_file", f"no {label} yet ({path}): every written question is unmarked "
                                                 "(fill in written/manual_template.csv and save it as manual.csv)"))
    else:
        rows, problems = read_manual(Path(path).read_bytes(), label)
        items_path = Path(path).with_name(rubric_items.ITEMS_NAME)
        try:
            overrides = rubric_items.load_overrides(items_path.read_text("utf-8") if items_path.is_file() else None)
        except (rubric_items.ItemsError, UnicodeDecodeError) as error:
            problems.append(Problem(None, "bad_items", f"{error}: the rubric's own item points are used"))
    marks, more = validate(rows, results, questions, secret=secret, anonymous=anonymous, label=label,
                           item_points=overrides)
    everything = problems + more
    everything.sort(key=lambda p: (p.line is None, p.line or 0, p.kind == "unmarked", p.message))
    return marks, everything
