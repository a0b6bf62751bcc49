"""The marking app: ``python -m grader mark OUT [--port N] [--host 127.0.0.1] [--no-browser] [--anonymous]``.

A small Flask app over a grading output folder. It reads ``OUT/written/answers.json`` (written at
grading; the class folder is never needed) and writes each mark at once to ``OUT/manual.csv``
(atomically, re-read before each write: ``grader.written.app.marks``); grading again merges the marks.
It does not take the folder's grading lock.

Security, one mechanism per layer:

* loopback only unless ``--host`` says otherwise (a warning then);
* access: a one-time token in the URL printed on stdout (never on a command line: the browser is
  started on a private file that sends it on), exchanged at ``/login`` for an HttpOnly,
  SameSite=Strict session cookie; the token then stops working;
* the Host header must name the address served (no DNS rebinding);
* every POST carries the session's CSRF token;
* a Content-Security-Policy that allows only this origin's own script and style, no frames, no
  images, no other origin; nothing is loaded from outside;
* student text is escaped everywhere (Jinja's autoescape, plus ``grader.written.pages.clean`` for
  control characters and bidirectional overrides).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from flask import Flask, abort, redirect, render_template, request

from grader.atomic import write_atomic
from grader.scoring import points_str
from grader.written import rubric_items
from grader.written.app import marks
from grader.written.anonymity import anonymity_secret, code_table
from grader.written.pages import clean

COOKIE = "grader_mark_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'none'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class AppState:
    out_dir: Path
    token: str                       # one-time: exchanged for the session cookie at /login
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    allowed_hosts: set[str] = field(default_factory=set)
    anonymous: bool = False          # show codes even where answers.json names students (--anonymous)
    secret: bytes | None = None      # the codes' secret for ``anonymous`` (default: the grading run's)

    @property
    def manual(self) -> Path:
        return self.out_dir / "manual.csv"

    @property
    def overrides_path(self) -> Path:
        return self.out_dir / marks.ITEMS_NAME


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return ""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def load_answers(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "written" / "answers.json").read_text("utf-8"))


def default_secret() -> bytes:
    """The secret ``python -m grader --anonymous`` uses with the course's rubric (and
    ``$GRADER_ANON_SECRET``), so the app's codes are the pages' codes."""
    from grader.rubric import load_rubric

    return anonymity_secret(load_rubric().seed)


def aliases(data: dict, secret: bytes | None) -> dict[str, str]:
    """How each student of answers.json is shown: as stored, or (``secret`` given, answers.json
    naming students) by their anonymous code. manual.csv always gets the name as stored, so the
    grading run resolves it whatever the secret."""
    students = {a["student"] for q in data["questions"] for a in q["answers"] + q["without_answer"]}
    if secret is None or data.get("anonymous"):
        return {s: s for s in students}
    return code_table(students, secret)


def shorten(text: str, width: int = 70) -> str:
    """An item's text on one line, cut at a word (the full text is in the rubric at the top)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width].rsplit(" ", 1)[0] + " …"


def hide(text: str, names: dict[str, str]) -> str:
    """``text`` (a flag's message may name another student) with every student id replaced by its
    code, longest first (``ann`` inside ``anna`` is not replaced early)."""
    for student in sorted(names, key=len, reverse=True):
        if student != names[student]:
            text = text.replace(student, names[student])
    return text


def create_app(state: AppState) -> Flask:
    """The app over ``state.out_dir``; ``state.allowed_hosts``: the Host headers accepted."""
    app = Flask(__name__)      # templates/ (Jinja, autoescaped: .html) and static/ beside this file
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20

    if state.anonymous and state.secret is None:
        state.secret = default_secret()

    def questions() -> list[dict]:
        return load_answers(state.out_dir)["questions"]

    def names() -> dict[str, str]:
        return aliases(load_answers(state.out_dir), state.secret if state.anonymous else None)

    def overrides(qid: str) -> dict[str, str]:
        try:
            return rubric_items.load_overrides(_read(state.overrides_path)).get(qid, {})
        except rubric_items.ItemsError as error:
            abort(500, str(error))

    def question(qid: str) -> dict:
        found = next((q for q in questions() if q["id"] == qid), None)
        if found is None:
            abort(404)
        return found


    @app.before_request
    def guard():
        if request.host not in state.allowed_hosts:
            abort(400, "unexpected Host header")
        if request.path == "/login":
            return None
        if not secrets.compare_digest(request.cookies.get(COOKIE, ""), state.session):
            abort(403, "open the link the marking app printed when it started")
        if request.method == "POST" and not secrets.compare_digest(request.form.get("csrf", ""), state.csrf):
            abort(403, "missing or wrong CSRF token")
        return None

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/login")
    def login():
        if not state.token or not secrets.compare_digest(request.args.get("token", ""), state.token):
            abort(403, "this link was used already or is wrong: restart the marking app for a new one")
        state.token = ""  # one time only
        response = redirect("/", code=303)
        response.set_cookie(COOKIE, state.session, httponly=True, samesite="Strict", path="/")
        return response

    def current_rows() -> tuple[list[marks.Row], str]:
        """manual.csv's rows, or none and why it cannot be used."""
        try:
            return marks.parse(_read_bytes(state.manual)), ""
        except marks.Unreadable as error:
            return [], f"Nothing can be saved: {error}."

    @app.get("/")
    def index():
        rows, notice = current_rows()
        shown = []
        for q in questions():
            students = [a["student"] for a in q["answers"] if not a.get("empty")]
            marked = sum(marks.find(rows, s, q["id"]) is not None and marks.find(rows, s, q["id"]).points != ""
                         for s in students)
            shown.append({"id": q["id"], "title": clean(q["title"]), "points": q["points"], "marked": marked,
                          "answers": len(students)})
        return render_template("index.html", title="Written answers", questions=shown, csv=str(state.manual),
                               notice=notice)

    def question_page(qid: str, notice: str = "") -> str:
        q = question(qid)
        points = marks.item_points(q["rubric"], overrides(qid))
        shown = names()
        items = [{"item": int(i["item"]), "points": points_str(points[int(i["item"])]), "text": clean(i["text"]),
                  "short": clean(shorten(i["text"]))} for i in q["rubric"]]
        rows, unreadable = current_rows()
        notice = notice or unreadable
        answers = []
        for a in q["answers"]:
            if a.get("empty"):
                continue
            row = marks.find(rows, a["student"], qid)
            where = a["source"].get("location") or a["source"].get("file") or ""
            answers.append({"student": a["student"], "shown": clean(shown.get(a["student"], a["student"])),
                            "text": clean(a["text"]), "where": clean(where), "how": clean(a.get("how") or ""),
                            "flags": [clean(hide(f"{f['label']}: {f['message']}", shown)) for f in a["flags"]],
                            "row": row, "ticked": row.ticked() if row else [],
                            "version": row.version if row else marks.NO_ROW_VERSION})
        answers.sort(key=lambda a: a["shown"])       # by code when anonymous: the order says nothing
        without = [{"student": clean(shown.get(w["student"], w["student"])),
                    "why": clean(hide("; ".join(f["message"] for f in w["flags"]), shown)),
                    "row": marks.find(rows, w["student"], qid)} for w in q["without_answer"]]
        without += [{"student": clean(shown.get(a["student"], a["student"])), "why": "empty answer",
                     "row": marks.find(rows, a["student"], qid)} for a in q["answers"] if a.get("empty")]
        without.sort(key=lambda w: w["student"])
        return render_template("question.html", title=f"{qid}: marking", notice=notice, csrf=state.csrf,
                               q={k: clean(v) if isinstance(v, str) else v for k, v in q.items()},
                               items=items, answers=answers, without=without)

    @app.get("/q/<qid>")
    def show(qid: str):
        return question_page(qid)

    @app.post("/q/<qid>/mark")
    def mark(qid: str):
        q = question(qid)
        by_shown = {shown: stored for stored, shown in names().items()}
        student = by_shown.get(request.form.get("student", ""), "")
        if student not in {a["student"] for a in q["answers"]}:
            abort(400, "unknown student for this question")
        points = marks.item_points(q["rubric"], overrides(qid))
        try:
            ticked = [int(i) for i in request.form.getlist("item") if i.isdecimal()]
            text, row = marks.set_mark(_read_bytes(state.manual), student, qid, ticked, request.form.get("comment", ""),
                                       points, request.form.get("version", ""), Decimal(q["points"]))
        except marks.Conflict as conflict:
            now = f"{conflict.current.points} ({conflict.current.comment})" if conflict.current else "no mark"
            who = names().get(student, student)
            return question_page(qid, f"Not saved: the mark of {who} for {qid} was changed meanwhile (now: "
                                      f"{now}). Check it and save again."), 409
        except marks.Unreadable as error:
            return question_page(qid, f"Not saved: {error}."), 409
        except ValueError as error:
            abort(400, str(error))
        write_atomic(state.manual, text)
        anchor = request.form.get("anchor", "")
        return redirect(f"/q/{qid}" + (f"#{anchor}" if anchor.startswith("a-") and anchor[2:].isdigit() else ""),
                        code=303)

    @app.post("/q/<qid>/missing")
    def missing(qid: str):
        q = question(qid)
        students = [w["student"] for w in q["without_answer"]] + [a["student"] for a in q["answers"] if a.get("empty")]
        try:
            text, added = marks.mark_missing(_read_bytes(state.manual), students, qid, "No answer found.")
        except marks.Unreadable as error:
            return question_page(qid, f"Not saved: {error}."), 409
        write_atomic(state.manual, text)
        return question_page(qid, f"0 points given to {added} student{'s' if added != 1 else ''} without an answer.")

    @app.post("/q/<qid>/item")
    def repoint(qid: str):
        q = question(qid)
        item = request.form.get("item", "")
        if item not in {str(i["item"]) for i in q["rubric"]}:
            abort(400, "unknown rubric item")
        try:
            value = rubric_items.parse_points(request.form.get("points", ""), Decimal(q["points"]))
            all_overrides = rubric_items.load_overrides(_read(state.overrides_path))
        except rubric_items.ItemsError as error:
            abort(400, str(error))
        all_overrides.setdefault(qid, {})[item] = points_str(value)
        points = marks.item_points(q["rubric"], all_overrides[qid])
        try:
            text, changed = marks.repoint(_read_bytes(state.manual), qid, points, Decimal(q["points"]))
        except marks.Unreadable as error:
            return question_page(qid, f"Not changed: {error}."), 409
        # the item points first: a crash between the two writes leaves rows the grading run reports
        # as disagreeing with their items, never rows silently scored with the old points
        write_atomic(state.overrides_path, rubric_items.dump_overrides(all_overrides))
        write_atomic(state.manual, text)
        return question_page(qid, f"Item {item} of {qid} is now worth {points_str(value)} points: "
                                  f"{changed} answer{'s' if changed != 1 else ''} re-scored.")

    return app


def launch_file(url: str) -> Path:
    """A page, readable by this user only, that sends the browser on to ``url``: the browser is
    started with this file's path, so the token never shows in its command line (``ps``)."""
    import tempfile
    from html import escape

    folder = Path(tempfile.mkdtemp(prefix="grader-mark-"))      # mode 0700
    page = folder / "open.html"
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f'<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={escape(url)}">'
                  f'<title>marking app</title><a href="{escape(url)}">open the marking app</a>\n')
    return page


WILDCARDS = ("0.0.0.0", "::", "")


def link_host(host: str) -> str:
    """The host part of the printed link: the machine's name for a wildcard address."""
    if host in WILDCARDS:
        import socket

        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def host_names(host: str, port: int) -> set[str]:
    """The Host headers accepted (anything else is refused: no DNS rebinding): the address served,
    this machine's loopback names, and for a wildcard address the machine's name and addresses."""
    names = {link_host(host), "localhost", "127.0.0.1", "[::1]"}
    if host in WILDCARDS:
        import socket

        try:
            names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
        except OSError:
            pass
    return {f"{name}:{port}" for name in names}


def serve(out_dir: Path, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True,
          anonymous: bool = False) -> None:
    """Serve until interrupted; prints the one-time link on stdout. ``anonymous``: show codes
    even where the answers were extracted with student ids."""
    from werkzeug.serving import make_server

    if not (Path(out_dir) / "written" / "answers.json").is_file():
        raise FileNotFoundError(f"{out_dir}/written/answers.json: grade the class first")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"WARNING: the marking app listens on {host}, not only on this machine: anyone who can reach it "
              "and steals the link can mark", file=sys.stderr)
    state = AppState(Path(out_dir), secrets.token_urlsafe(32), anonymous=anonymous)
    server = make_server(host, port, create_app(state), threaded=False)
    bound = server.server_port
    names = host_names(host, bound)
    state.allowed_hosts = names
    url = f"http://{link_host(host)}:{bound}/login?token={state.token}"
    print(f"marking app: open {url}\n(the link works once; Ctrl-C stops the app)", flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # stopped by kill too: clean up below
    launcher = launch_file(url) if open_browser else None
    if launcher is not None:
        import webbrowser

        webbrowser.open(launcher.as_uri())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if launcher is not None:
            launcher.unlink(missing_ok=True)
            launcher.parent.rmdir()
