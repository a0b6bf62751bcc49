"""An LMS gradebook CSV (Canvas-style) from a grading output folder, joined with a roster.

Inputs:

- the grading results (``results/*.json``): one id per class-folder entry;
- a roster CSV with at least ``student_id,name,email``; optional columns ``lms_id`` (alias
  ``canvas_id``, ``canvas_user_id``: Canvas's numeric user id, the gradebook's ``ID``),
  ``sis_user_id``, ``sis_login_id``, ``section``;
- optionally the LMS's own gradebook export (``Student, ID, SIS User ID, SIS Login ID, Section,
  ...``), which links Canvas user ids to SIS ids when the roster does not have them.

Each grader id is matched to one roster entry, in this order (keys compared after Unicode
normalisation and case folding, so NFC/NFD spellings and case never matter):

1. a Canvas download name, ``name_12345_67890_file`` or ``name_LATE_12345_67890_file``: the number
   after the name is the Canvas user id, looked up in the roster's ``lms_id`` or the gradebook;
2. the id itself equal to a roster ``student_id``, ``email``, the email's local part, or a SIS id;
3. a name: letters and digits only, accents dropped, either word order ("José García" matches
   ``garciajose``); such matches are listed in the report for a human to confirm.

Nothing is dropped silently: submissions not on the roster, roster entries without a
submission, ids matching several roster entries, roster entries with several submissions,
gradebook rows not on the roster and results with a status other than ``ok`` are all listed in
the report. A roster entry with several submissions, or whose only result is a ``sandbox_error``
(the grader's fault), gets an empty cell (Canvas leaves the grade unchanged). The exported score is the
result's total: automatic checks plus the written marks entered so far (unmarked answers are
listed). Every cell is spreadsheet-safe (``grader.reports.safe_cell``).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.atomic import write_atomic
from grader.exports import load_results, md_code
from grader.intake.names import CANVAS_NAME_RE, parse_canvas_name  # one parser: intake joins a student's files by it
from grader.reports import safe_cell
from grader.results import StudentResult
from grader.scoring import points_str
from grader.written.manual import NOT_MARKED, WRITTEN_FUNCTION

__all__ = ["CANVAS_NAME_RE", "LmsError", "LmsExport", "Match", "RosterEntry", "build_lms_export", "export_lms",
           "parse_canvas_name", "read_roster", "write_lms_export"]

GRADEBOOK_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
ROSTER_REQUIRED = ("student_id", "name", "email")
ROSTER_ALIASES = {  # our field: accepted header spellings (normalised: lower case, "_" for spaces)
    "student_id": ("student_id",),
    "name": ("name",),
    "email": ("email", "e_mail"),
    "lms_id": ("lms_id", "canvas_id", "canvas_user_id"),
    "sis_user_id": ("sis_user_id",),
    "sis_login_id": ("sis_login_id",),
    "section": ("section",),
}
NOT_EXPORTED_STATUSES = ("sandbox_error",)  # the grader's fault: a zero would be wrong


class LmsError(Exception):
    """A roster or gradebook that cannot be used (a required column missing, ...)."""


@dataclass(frozen=True)
class RosterEntry:
    student_id: str
    name: str
    email: str
    lms_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    line: int = 0  # line of the roster file, for the report


@dataclass
class Match:
    """How one grader id was matched: ``roster`` is an index in the roster, or None."""

    student: str
    roster: int | None
    how: str  # "canvas user id 12345", "student_id", "email", "name (confirm)", "" when unmatched
    candidates: list[int] = field(default_factory=list)  # several roster entries fit: ambiguous
    late: bool = False  # a Canvas name with _LATE


@dataclass
class LmsExport:
    csv_text: str
    report_markdown: str
    assignment_column: str
    matches: list[Match]
    roster: list[RosterEntry]
    exported: dict[str, str]  # roster student_id: the score written in the CSV
    not_on_roster: list[str]
    without_submission: list[str]  # roster student_ids
    several_submissions: dict[str, list[str]]  # roster student_id: grader ids
    ambiguous: dict[str, list[str]]  # grader id: roster student_ids
    gradebook_not_on_roster: list[str]  # gradebook "Student (ID)"
    flagged: dict[str, str]  # grader id: why the exported value needs a look
    duplicate_roster_ids: list[str]


# ------------------------------------------------------------------------------------ keys

def key(text: str) -> str:
    """Canonical caseless form: NFD(casefold(NFD(text))), trimmed (NFC and NFD spellings agree)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", str(text).strip()).casefold())


def loose_name(text: str) -> str:
    """Letters and digits only, accents and case dropped: ``"José  O'Brien"`` -> ``joseobrien``."""
    decomposed = unicodedata.normalize("NFKD", str(text)).casefold()
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def name_keys(name: str) -> set[str]:
    """A full name in both word orders (Canvas writes ``lastnamefirstname``)."""
    words = [w for w in re.split(r"[\s,_\-.]+", str(name)) if w]
    forms = {loose_name("".join(words)), loose_name("".join(reversed(words)))}
    if len(words) > 2:  # "Ana María López": also last word first, the rest after
        forms.add(loose_name(words[-1] + "".join(words[:-1])))
    return {f for f in forms if f}


# --------------------------------------------------------------------------------- reading CSVs

def _header_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lstrip("\ufeff").lower())


def read_roster(text: str) -> tuple[list[RosterEntry], list[str]]:
    """Roster entries in file order, and the student_ids listed more than once (kept: first)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise LmsError("the roster is empty: expected a header with student_id,name,email") from None
    columns = {_header_key(h): i for i, h in enumerate(header)}
    where: dict[str, int] = {}
    for ours, spellings in ROSTER_ALIASES.items():
        found = next((columns[s] for s in spellings if s in columns), None)
        if found is not None:
            where[ours] = found
    missing = [c for c in ROSTER_REQUIRED if c not in where]
    if missing:
        raise LmsError(f"the roster has no column {', '.join(missing)} (its header: {', '.join(header)}); "
                       f"required: {', '.join(ROSTER_REQUIRED)}")
    entries, seen, duplicates = [], set(), []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {ours: (row[i].strip() if i < len(row) else "") for ours, i in where.items()}
        if not values["student_id"]:
            raise LmsError(f"roster line {line}: empty student_id ({row!r})")
        k = key(values["student_id"])
        if k in seen:
            duplicates.append(values["student_id"])
            continue
        seen.add(k)
        entries.append(RosterEntry(line=line, **values))
    return entries, duplicates


def read_gradebook(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """Student rows of an LMS gradebook export (its "Points Possible" and other non-student rows
    dropped) and its header."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in ("Student", "ID") if c not in header]
    if missing:
        raise LmsError(f"the gradebook has no column {', '.join(missing)} (its header: {', '.join(header)})")
    rows = []
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not clean.get("ID") or clean.get("Student", "").strip() == "Points Possible":
            continue
        rows.append(clean)
    return rows, header


# ------------------------------------------------------------------------------------ joining

class _Index:
    """Lookups from every kind of key to roster indices."""

    def __init__(self, roster: list[RosterEntry], gradebook: list[dict[str, str]]):
        self.roster = roster
        self.by_uid: dict[str, set[int]] = {}
        self.by_key: dict[str, set[int]] = {}
        self.by_name: dict[str, set[int]] = {}
        self.gradebook_of: dict[int, dict[str, str]] = {}
        self.gradebook_orphans: list[dict[str, str]] = []
        for i, r in enumerate(roster):
            if r.lms_id:
                self.by_uid.setdefault(r.lms_id.strip(), set()).add(i)
            for value, _ in self._id_keys(r):
                self.by_key.setdefault(key(value), set()).add(i)
            for form in name_keys(r.name):
                self.by_name.setdefault(form, set()).add(i)
        for row in gradebook:
            found = self._gradebook_match(row)
            if len(found) == 1:
                i = found.pop()
                self.gradebook_of.setdefault(i, row)
                self.by_uid.setdefault(row["ID"], set()).add(i)
            else:
                self.gradebook_orphans.append(row)

    @staticmethod
    def _id_keys(r: RosterEntry) -> list[tuple[str, str]]:
        keys = [(r.student_id, "student_id"), (r.email, "email"), (r.sis_user_id, "sis_user_id"),
                (r.sis_login_id, "sis_login_id")]
        if "@" in r.email:
            keys.append((r.email.split("@", 1)[0], "email"))
        return [(v, how) for v, how in keys if v]

    def _gradebook_match(self, row: dict[str, str]) -> set[int]:
        uid = row.get("ID", "")
        found = {i for i, r in enumerate(self.roster) if r.lms_id and r.lms_id == uid}
        if found:
            return found
        for column in ("SIS User ID", "SIS Login ID"):
            value = row.get(column, "")
            if value and key(value) in self.by_key:
                return set(self.by_key[key(value)])
        return set()

    def how_key(self, i: int, value: str) -> str:
        return next((how for v, how in self._id_keys(self.roster[i]) if key(v) == key(value)), "id")

    def match(self, student: str) -> Match:
        canvas = parse_canvas_name(student)
        late = bool(canvas and canvas[2])
        if canvas and canvas[1] in self.by_uid:
            found = self.by_uid[canvas[1]]
            if len(found) == 1:
                return Match(student, next(iter(found)), f"canvas user id {canvas[1]}", late=late)
            return Match(student, None, "", sorted(found), late)
        found = self.by_key.get(key(student), set())
        if len(found) == 1:
            i = next(iter(found))
            return Match(student, i, self.how_key(i, student), late=late)
        if len(found) > 1:
            return Match(student, None, "", sorted(found), late)
        forms = {loose_name(student)} | ({loose_name(canvas[0])} if canvas else set())
        found = set().union(*(self.by_name.get(f, set()) for f in forms if f))
        if len(found) == 1:
            return Match(student, next(iter(found)), "name (confirm)", late=late)
        if len(found) > 1:
            return Match(student, None, "", sorted(found), late)
        return Match(student, None, "", [], late)


def _assignment_column(assignment: str, header: list[str]) -> str:
    """The gradebook's own column for the assignment (Canvas writes ``Name (assignment id)``)."""
    for column in header:
        if column == assignment or re.fullmatch(re.escape(assignment) + r"\s*\(\d+\)", column):
            return column
    return assignment


def build_lms_export(results: dict[str, StudentResult], roster_text: str, gradebook_text: str | None = None,
                     assignment: str = "Autograder") -> LmsExport:
    """Join results and roster (and gradebook); pure: texts in, texts out (see the module's docstring)."""
    roster, duplicates = read_roster(roster_text)
    gradebook, header = read_gradebook(gradebook_text) if gradebook_text is not None else ([], [])
    index = _Index(roster, gradebook)
    column = _assignment_column(assignment, header)

    matches = [index.match(student) for student in sorted(results)]
    by_roster: dict[int, list[str]] = {}
    for m in matches:
        if m.roster is not None:
            by_roster.setdefault(m.roster, []).append(m.student)

    flagged: dict[str, str] = {}
    for m in (m for m in matches if m.roster is not None):  # the others have their own sections
        r, why = results[m.student], []
        if r.status in NOT_EXPORTED_STATUSES:
            why.append(f"status {r.status}: not exported (grade it again): {r.message}")
        elif r.status != "ok":
            why.append(f"status {r.status}, exported as {points_str(r.total)}: {r.message}")
        if m.how == "name (confirm)":
            why.append(f"matched to {roster[m.roster].student_id} by name only: confirm")
        if m.late:
            why.append("submitted LATE (Canvas)")
        unmarked = [c.name for c in r.checks if c.function == WRITTEN_FUNCTION and c.message == NOT_MARKED]
        if unmarked:
            why.append(f"written answers not marked yet: {', '.join(unmarked)}")
        if why:
            flagged[m.student] = "; ".join(why)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*GRADEBOOK_COLUMNS, safe_cell(column)])
    exported: dict[str, str] = {}
    for i, r in enumerate(roster):
        lms = index.gradebook_of.get(i, {})
        students = by_roster.get(i, [])
        score = ""
        if len(students) == 1 and results[students[0]].status not in NOT_EXPORTED_STATUSES:
            score = exported[r.student_id] = points_str(results[students[0]].total)
        writer.writerow([safe_cell(v) for v in (
            r.name or lms.get("Student", ""),
            r.lms_id or lms.get("ID", ""),
            r.sis_user_id or lms.get("SIS User ID", "") or r.student_id,
            r.sis_login_id or lms.get("SIS Login ID", ""),
            r.section or lms.get("Section", ""),
            score,
        )])

    export = LmsExport(
        csv_text=buf.getvalue(), report_markdown="", assignment_column=column, matches=matches, roster=roster,
        exported=exported,
        not_on_roster=[m.student for m in matches if m.roster is None and not m.candidates],
        without_submission=[r.student_id for i, r in enumerate(roster) if i not in by_roster],
        several_submissions={roster[i].student_id: s for i, s in sorted(by_roster.items()) if len(s) > 1},
        ambiguous={m.student: [roster[i].student_id for i in m.candidates] for m in matches if m.candidates},
        gradebook_not_on_roster=[f"{row.get('Student', '')} (ID {row.get('ID', '')})" for row in index.gradebook_orphans],
        flagged=dict(sorted(flagged.items())),
        duplicate_roster_ids=duplicates,
    )
    export.report_markdown = _report(export, results)
    return export


def _report(e: LmsExport, results: dict[str, StudentResult]) -> str:
    matched = [m for m in e.matches if m.roster is not None]
    lines = ["# LMS export report", "",
             f"- assignment column: {md_code(e.assignment_column, in_table=False)}",
             f"- graded submissions: {len(e.matches)}; matched to the roster: {len(matched)}",
             f"- roster entries: {len(e.roster)}; with a score in the CSV: {len(e.exported)}", ""]

    def section(title: str, explanation: str, header: str, rows: list[str]) -> None:
        nonlocal lines
        lines += [f"## {title} ({len(rows)})", "", explanation, ""]
        if rows:
            lines += [header, "|" + "---|" * header.count("|", 1), *rows]
        else:
            lines.append("None.")
        lines.append("")

    section("Submissions not on the roster", "Graded, but no roster entry fits: not in the CSV.",
            "| submission | score | status |",
            [f"| {md_code(s)} | {points_str(results[s].total)} | {results[s].status} |" for s in e.not_on_roster])
    section("Roster entries without a matched submission", "Their cell is left empty (Canvas keeps the current grade).",
            "| student_id | name |",
            [f"| {md_code(r.student_id)} | {md_code(r.name)} |" for r in e.roster if r.student_id in set(e.without_submission)])
    section("Submissions matching several roster entries", "Not in the CSV: add an lms_id to the roster to decide.",
            "| submission | roster entries |",
            [f"| {md_code(s)} | {', '.join(md_code(c) for c in cands)} |" for s, cands in e.ambiguous.items()])
    section("Roster entries with several submissions", "Their cell is left empty: choose one and grade it.",
            "| student_id | submissions |",
            [f"| {md_code(sid)} | {', '.join(md_code(s) for s in subs)} |" for sid, subs in e.several_submissions.items()])
    section("Results to look at", "Exported unless said otherwise.", "| submission | why |",
            [f"| {md_code(s)} | {md_code(why)} |" for s, why in e.flagged.items()])
    section("Gradebook rows not on the roster", "In the LMS's gradebook, on no roster line: not in the CSV.",
            "| student (ID) |", [f"| {md_code(g)} |" for g in e.gradebook_not_on_roster])
    section("Student ids listed more than once in the roster", "Only the first line of each is used.",
            "| student_id |", [f"| {md_code(d)} |" for d in e.duplicate_roster_ids])
    lines += ["## Matches", "", "| submission | roster student_id | matched on |", "|---|---|---|"]
    lines += [f"| {md_code(m.student)} | {md_code(e.roster[m.roster].student_id)} | {m.how} |" for m in matched]
    return "\n".join(lines) + "\n"


def export_lms(out_dir: Path, roster_csv: Path, gradebook_csv: Path | None = None,
               assignment: str = "Autograder") -> LmsExport:
    """``build_lms_export`` on a grading output folder and CSV files (read as UTF-8, BOM or not).
    Raises ``LmsError`` for a file that cannot be read or used, ``OutputFolderError`` for the folder."""
    roster = _read_csv(roster_csv, "roster")
    gradebook = _read_csv(gradebook_csv, "gradebook") if gradebook_csv else None
    return build_lms_export(load_results(out_dir), roster, gradebook, assignment)


def _read_csv(path: Path, what: str) -> str:
    try:
        return Path(path).read_text("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LmsError(f"the {what} {path} is not UTF-8 text (byte {error.start}: {error.reason}); "
                       "save it as CSV UTF-8") from None
    except OSError as error:
        raise LmsError(f"the {what} {path} cannot be read: {error.strerror or error}") from None


def write_lms_export(export: LmsExport, dest_dir: Path) -> tuple[Path, Path]:
    """``dest_dir/gradebook.csv`` and ``dest_dir/lms_report.md``, each written atomically."""
    csv_path, report_path = Path(dest_dir) / "gradebook.csv", Path(dest_dir) / "lms_report.md"
    write_atomic(csv_path, export.csv_text)
    write_atomic(report_path, export.report_markdown)
    return csv_path, report_path
