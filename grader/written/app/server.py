"""The marking app: ``python -m grader mark OUT [--port N] [--host 127.0.0.1] [--no-browser] [--anonymous]``.

A small Flask app over a grading output folder. It reads ``OUT/written/answers.json`` (written at
grading; the class folder is never needed) and writes each mark at once to ``OUT/manual.csv``
(atomically, re-read before each write: ``grader.written.app.marks``); grading again merges the marks.
It does not take the folder's grading lock.

Security, one mechanism per layer:

* loopback only unless ``--host`` says otherwise (a warning then);
* access: a one-time token in the URL printed on stdout (never on a command line), exchanged at
  ``/login`` for an HttpOnly, SameSite=Strict session cookie; the token then stops working;
* the Host header must name the address served (no DNS rebinding);
* every POST carries the session's CSRF token;
* a Content-Security-Policy that allows only this origin's own script and style, no frames, no
  images, no other origin; nothing is loaded from outside;
* student text is escaped everywhere (Jinja's autoescape, plus ``grader.written.pages.clean`` for
  control characters and bidirectional overrides).
"""
from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from flask import Flask, abort, redirect, render_template_string, request
from markupsafe import Markup

from grader.atomic import write_atomic
from grader.written.app import marks
from grader.scoring import points_str
from grader.written import rubric_items
from grader.written.anonymity import anonymity_secret, code_table
from grader.written.pages import clean

COOKIE = "grader_mark_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'none'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
STYLE = """body { font: 15px/1.5 system-ui, sans-serif; max-width: 62rem; margin: 1rem auto; padding: 0 1rem; }
.answer { white-space: pre-wrap; overflow-wrap: anywhere; background: #fbfbf8; border: 1px solid #ddd; padding: .6rem; }
article { border-top: 2px solid #333; margin-top: 1.5rem; padding-top: .5rem; }
article.focused { outline: 3px solid #4a6fa5; outline-offset: .4rem; }
.marked { color: #1b5e20; } .unmarked { color: #8a1c1c; } .meta { color: #555; font-size: .9rem; }
.flags { columns: 2; font-size: .9rem; } .notice { background: #fff3cd; padding: .5rem; }
ul.items { list-style: none; padding: 0; margin: .3rem 0; } ul.items li { margin: .1rem 0; }
details.rubric { margin: .5rem 0; } form.repoint { display: inline; margin-left: .5rem; }
kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 .3rem; }
"""
SCRIPT = """// keyboard: j/k next/previous answer, n next unmarked, 1-9 toggle rubric item, s save
(function () {
  const answers = Array.from(document.querySelectorAll('article.answer-block'));
  let at = Math.max(0, answers.findIndex(a => a.id === location.hash.slice(1)));
  function focus(i) {
    if (!answers.length) return;
    at = Math.min(Math.max(i, 0), answers.length - 1);
    answers.forEach(a => a.classList.remove('focused'));
    answers[at].classList.add('focused');
    answers[at].scrollIntoView({block: 'center'});
  }
  focus(at);
  document.addEventListener('keydown', function (e) {
    if (e.target.tagName === 'TEXTAREA' || e.target.tagName === 'INPUT' && e.target.type === 'text') return;
    if (e.key === 'j') focus(at + 1);
    else if (e.key === 'k') focus(at - 1);
    else if (e.key === 'n') {
      const next = answers.findIndex((a, i) => i > at && a.dataset.marked === 'no');
      const first = answers.findIndex(a => a.dataset.marked === 'no');
      focus(next >= 0 ? next : first >= 0 ? first : at);
    } else if (/^[1-9]$/.test(e.key) && answers.length) {
      const box = answers[at].querySelector('input[name=item][value="' + e.key + '"]');
      if (box) box.checked = !box.checked;
    } else if (e.key === 's' && answers.length) {
      answers[at].querySelector('form.mark').submit();
    } else return;
    e.preventDefault();
  });
})();
"""
PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<link rel="stylesheet" href="/static/app.css"></head><body>
<nav><a href="/">questions</a></nav>
{% if notice %}<p class="notice" id="notice">{{ notice }}</p>{% endif %}
{{ body }}
<script src="/static/app.js"></script></body></html>"""
INDEX = """<h1>Written answers</h1>
<p class="meta">Marks are saved to {{ csv }} as you go. Keys on a question's page: <kbd>j</kbd>/<kbd>k</kbd> next/previous,
<kbd>n</kbd> next unmarked, <kbd>1</kbd>-<kbd>9</kbd> toggle an item, <kbd>s</kbd> save.</p>
<table><tr><th>question</th><th>points</th><th>marked</th></tr>
{% for q in questions %}<tr><td><a href="/q/{{ q.id }}">{{ q.id }}: {{ q.title }}</a></td><td>{{ q.points }}</td>
<td id="count-{{ q.id }}">{{ q.marked }} / {{ q.answers }}</td></tr>{% endfor %}</table>"""
QUESTION = """<h1>{{ q.id }}: {{ q.title }} ({{ q.points }} points)</h1>
<p class="meta">{{ q.prompt }}</p>
<details class="rubric"><summary>Rubric ({{ items|length }} items; change an item's points here)</summary><ol>{% for item in items %}<li>{{ item.points }} pt: {{ item.text }}
<form method="post" action="/q/{{ q.id }}/item" class="repoint"><input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="item" value="{{ item.item }}"><input type="text" name="points" size="4" value="{{ item.points }}">
<button>change points</button></form></li>{% endfor %}</ol></details>
{% if without %}<h2>Without an answer ({{ without|length }})</h2><ul class="flags">
{% for w in without %}<li>{{ w.student }}{% if w.why %}: {{ w.why }}{% endif %}</li>{% endfor %}</ul>{% endif %}
{% for a in answers %}<article class="answer-block" id="a-{{ loop.index }}" data-marked="{{ 'yes' if a.row else 'no' }}">
<h3>{{ a.shown }} <span class="{{ 'marked' if a.row else 'unmarked' }}">{% if a.row %}marked {{ a.row.points }} / {{ q.points }}
{% else %}not marked{% endif %}</span></h3>
<p class="meta">{{ a.where }}{% if a.how %} · {{ a.how }}{% endif %}{% for f in a.flags %} · {{ f }}{% endfor %}</p>
<div class="answer">{{ a.text }}</div>
<form method="post" action="/q/{{ q.id }}/mark" class="mark"><input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="student" value="{{ a.shown }}"><input type="hidden" name="version" value="{{ a.version }}">
<input type="hidden" name="anchor" value="a-{{ loop.index }}">
<ul class="items">{% for item in items %}<li><label><input type="checkbox" name="item" value="{{ item.item }}"
{% if item.item in a.ticked %}checked{% endif %}> <kbd>{{ item.item }}</kbd> <b>{{ item.points }} pt</b> {{ item.short }}</label></li>{% endfor %}</ul>
<br><textarea name="comment" rows="2" cols="70">{{ a.row.comment if a.row else '' }}</textarea>
<button>save</button></form></article>{% endfor %}"""


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
    app = Flask(__name__)
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

    def page(title: str, body: str, notice: str = "") -> str:
        # ``body`` is a template rendered (and escaped) already
        return render_template_string(PAGE, title=title, body=Markup(body), notice=notice)

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

    @app.get("/static/app.js")
    def script():
        return SCRIPT, 200, {"Content-Type": "text/javascript; charset=utf-8"}

    @app.get("/static/app.css")
    def style():
        return STYLE, 200, {"Content-Type": "text/css; charset=utf-8"}

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
        body = render_template_string(INDEX, questions=shown, csv=str(state.manual))
        return page("Written answers", body, notice)

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
                            "flags": [clean(hide(f["label"], shown)) for f in a["flags"]],
                            "row": row, "ticked": row.ticked() if row else [],
                            "version": row.version if row else marks.NO_ROW_VERSION})
        answers.sort(key=lambda a: a["shown"])       # by code when anonymous: the order says nothing
        without = [{"student": clean(shown.get(w["student"], w["student"])),
                    "why": clean(hide("; ".join(f["message"] for f in w["flags"]), shown))}
                   for w in q["without_answer"]]
        without += [{"student": clean(shown.get(a["student"], a["student"])), "why": "empty answer"}
                    for a in q["answers"] if a.get("empty")]
        without.sort(key=lambda w: w["student"])
        body = render_template_string(QUESTION, q={k: clean(v) if isinstance(v, str) else v for k, v in q.items()},
                                      items=items, answers=answers, without=without, csrf=state.csrf)
        return page(f"{qid}: marking", body, notice)

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
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
