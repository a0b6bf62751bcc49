"""The browser marking app, through Flask's test client: access, Host, CSRF, escaping, saving,
conflicts, rubric items re-pointed, and the items column read back by the grading run's merge."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from grader.written.app import marks
from grader.written.app.server import COOKIE, AppState, create_app
from grader.results import StudentResult
from grader.scoring import points_str
from grader.written import load_questions
from grader.written.anonymity import code_table
from grader.written.manual import merge, read_and_validate

HOSTILE = '<img src=x onerror=alert(1)></textarea><script>alert(2)</script>'
HOST = "127.0.0.1:5555"


def write_out(out: Path, anonymous: bool = False) -> Path:
    """A grading output folder's written/answers.json: alice and a hostile bob answer Q1, carol does not."""
    questions = load_questions()
    data = {"format": 1, "anonymous": anonymous, "questions": []}
    names = ("anon-aaaa", "anon-bbbb", "anon-cccc") if anonymous else ("alice", "bob", "carol")
    for q in questions.questions:
        answers = [] if q.id != "Q1" else [
            {"student": names[0], "text": "A generative model learns $p(x)$.", "empty": False,
             "source": {"file": "ANSWERS.md", "page": None, "line": 3, "location": "ANSWERS.md line 3"},
             "heading": "## Q1", "how": "matched by its heading", "well_formed": True, "flags": [], "others": []},
            {"student": names[1], "text": HOSTILE, "empty": False,
             "source": {"file": "report.md", "page": None, "line": 1, "location": "report.md line 1"},
             "heading": "1.", "how": "matched by number", "well_formed": True, "flags": [], "others": []}]
        data["questions"].append({
            "id": q.id, "title": q.title, "prompt": q.prompt, "points": points_str(q.points),
            "rubric": [{"item": n, "points": points_str(i.points), "text": i.text} for n, i in enumerate(q.rubric, 1)],
            "answers": answers, "near_duplicates": [],
            "without_answer": [{"student": names[2], "flags": [{"kind": "missing", "label": "no answer",
                                                                "message": "no answer headed ## Q1"}]}]})
    (out / "written").mkdir(parents=True)
    (out / "written" / "answers.json").write_text(json.dumps(data), "utf-8")
    return out


@pytest.fixture()
def app_env(tmp_path):
    out = write_out(tmp_path / "out")
    state = AppState(out, token="one-time", allowed_hosts={HOST})
    client = create_app(state).test_client()
    return out, state, client


def login(client, state):
    response = client.get("/login?token=one-time", headers={"Host": HOST})
    assert response.status_code == 303
    return response


def get(client, path):
    return client.get(path, headers={"Host": HOST})


def post(client, path, data):
    return client.post(path, data=data, headers={"Host": HOST})


def form_of(html: str, student: str) -> dict:
    block = html[html.index(f'name="student" value="{student}"'):]
    version = re.search(r'name="version" value="([^"]+)"', block).group(1)
    return {"student": student, "version": version}


def test_access_needs_the_one_time_link_and_the_right_host(app_env):
    out, state, client = app_env
    assert get(client, "/").status_code == 403                                    # no cookie
    assert client.get("/login?token=one-time", headers={"Host": "evil.example:5555"}).status_code == 400
    assert client.get("/login?token=wrong", headers={"Host": HOST}).status_code == 403
    response = login(client, state)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "one-time" not in cookie
    assert get(client, "/").status_code == 200
    assert client.get("/login?token=one-time", headers={"Host": HOST}).status_code == 403  # used once
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400          # rebinding
    page = get(client, "/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert not re.search(r'(src|href)="(https?:)?//', page.get_data(as_text=True))  # nothing from outside


def test_a_post_without_the_csrf_token_changes_nothing(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    response = post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1"], "comment": "x"})
    assert response.status_code == 403 and not (out / "manual.csv").exists()


def test_student_text_is_escaped(app_env):
    out, state, client = app_env
    login(client, state)
    html = get(client, "/q/Q1").get_data(as_text=True)
    assert "<img src=x" not in html and "<script>alert" not in html and "</textarea><script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;/textarea&gt;&lt;script&gt;" in html
    assert "carol" in html.split("Without an answer")[1].split("<article")[0]   # the flags first, compactly


def test_marks_are_saved_with_their_items_and_merged_by_the_grading_run(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    csrf = state.csrf
    response = post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1", "2"], "comment": "good, brief",
                                          "csrf": csrf, "anchor": "a-1"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/q/Q1#a-1")
    text = (out / "manual.csv").read_text("utf-8")
    assert text.splitlines() == ["student,question,points,comment,items", '"alice",Q1,3,"good, brief",1;2'.replace('"alice"', "alice")]
    index = get(client, "/").get_data(as_text=True)
    assert re.search(r'id="count-Q1">1 / 2<', index)
    questions = load_questions()
    results = [StudentResult(s, "ok", "", [], {}, {}, {}) for s in ("alice", "bob", "carol")]
    found, problems = read_and_validate(out / "manual.csv", results, questions)
    assert [(m.student, m.question, m.points) for m in found] == [("alice", "Q1", Decimal(3))]
    assert not [p for p in problems if p.kind == "extra_column"]               # items is a known column
    merged = merge(results, found, questions)[0]
    assert next(c for c in merged.checks if c.name == "Q1").score == Decimal(3)


def test_a_mark_changed_meanwhile_is_a_conflict_not_an_overwrite(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    shown = form_of(page, "bob")
    (out / "manual.csv").write_text("student,question,points,comment\nbob,Q1,2,from the spreadsheet\n", "utf-8")
    response = post(client, "/q/Q1/mark", {**shown, "item": ["1"], "comment": "from the app", "csrf": state.csrf})
    assert response.status_code == 409
    assert "changed meanwhile" in response.get_data(as_text=True) and "from the spreadsheet" in response.get_data(as_text=True)
    assert "from the spreadsheet" in (out / "manual.csv").read_text("utf-8")
    again = form_of(response.get_data(as_text=True), "bob")                    # the page now shows the new row
    assert post(client, "/q/Q1/mark", {**again, "item": ["1"], "comment": "ok", "csrf": state.csrf}).status_code == 303
    assert "bob,Q1,1,ok,1" in (out / "manual.csv").read_text("utf-8")


def test_changing_an_items_points_rescores_the_answers_that_used_it(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1", "2"], "comment": "", "csrf": state.csrf})
    page = get(client, "/q/Q1").get_data(as_text=True)
    post(client, "/q/Q1/mark", {**form_of(page, "bob"), "item": ["3"], "comment": "", "csrf": state.csrf})
    response = post(client, "/q/Q1/item", {"item": "2", "points": "1.5", "csrf": state.csrf})
    assert "1 answer re-scored" in response.get_data(as_text=True)
    rows = {r.student: r for r in marks.parse((out / "manual.csv").read_bytes())}
    assert (rows["alice"].points, rows["bob"].points) == ("2.5", "1")
    assert json.loads((out / marks.ITEMS_NAME).read_text("utf-8")) == {"Q1": {"2": "1.5"}}
    assert post(client, "/q/Q1/item", {"item": "2", "points": "99", "csrf": state.csrf}).status_code == 400


def test_anonymous_pages_show_only_codes(tmp_path):
    out = write_out(tmp_path / "out", anonymous=True)
    state = AppState(out, token="one-time", allowed_hosts={HOST})
    client = create_app(state).test_client()
    login(client, state)
    html = get(client, "/q/Q1").get_data(as_text=True)
    assert "anon-aaaa" in html and "alice" not in html


def test_a_second_tab_saving_the_same_answer_is_told_of_the_first(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    first = second = form_of(page, "alice")                                   # two tabs, the same page
    assert post(client, "/q/Q1/mark", {**first, "item": ["1"], "csrf": state.csrf}).status_code == 303
    response = post(client, "/q/Q1/mark", {**second, "item": ["2"], "csrf": state.csrf})
    assert response.status_code == 409 and "changed meanwhile" in response.get_data(as_text=True)
    assert "alice,Q1,1,,1" in (out / "manual.csv").read_text("utf-8")


def test_a_file_the_app_cannot_write_back_whole_is_left_alone(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    (out / "manual.csv").write_text("student;question;points;comment\nbob;Q1;2;semicolons\n", "utf-8")
    page = get(client, "/q/Q1").get_data(as_text=True)                        # a spreadsheet's ; is read
    assert post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1"], "csrf": state.csrf}).status_code == 303
    assert "bob,Q1,2,semicolons," in (out / "manual.csv").read_text("utf-8")
    kept = "student,question,points,comment,notes\nbob,Q1,2,ok,my own column\n"
    (out / "manual.csv").write_text(kept, "utf-8")
    page = get(client, "/q/Q1").get_data(as_text=True)
    assert "Nothing can be saved" in page and "notes" in page
    response = post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1"], "csrf": state.csrf})
    assert response.status_code == 409 and (out / "manual.csv").read_text("utf-8") == kept


def results_of(*students):
    return [StudentResult(s, "ok", "", [], {}, {}, {}) for s in students]


def test_items_column_is_validated_against_the_current_item_points(tmp_path):
    questions = load_questions()
    q1 = questions.get("Q1")
    full = points_str(q1.points)
    csv_text = ("student,question,points,comment,items\n"
                "alice,Q1,3,,1;2\n"                   # agrees with items 1 (1) and 2 (2)
                "bob,Q1,,from items,1;3\n"            # empty points: the items' sum
                "carol,Q1,4,,1\n"                     # disagrees
                "dan,Q1,1,,9\n"                       # no such item
                "erin,Q1,2,hand,\n"                   # a points-only row
                f"fay,Q1,{full},,1;2;3;4\n")
    (tmp_path / "manual.csv").write_text(csv_text, "utf-8")
    results = results_of("alice", "bob", "carol", "dan", "erin", "fay")
    found, problems = read_and_validate(tmp_path / "manual.csv", results, questions)
    assert {m.student: m.points for m in found} == {"alice": 3, "bob": 2, "erin": 2, "fay": q1.points}
    kinds = {p.line: p.kind for p in problems if p.line}
    assert kinds == {4: "items_disagree", 5: "bad_items"}
    assert "unknown rubric item(s) 9" in next(p.message for p in problems if p.line == 5)
    # the app changed item 2's points: rows with items are scored by them at grading
    (tmp_path / marks.ITEMS_NAME).write_text(json.dumps({"Q1": {"2": "0.5"}}), "utf-8")
    found, problems = read_and_validate(tmp_path / "manual.csv", results, questions)
    assert {m.student: m.points for m in found}["bob"] == 2                  # 1;3 does not use item 2
    assert next(p for p in problems if p.line == 2).kind == "items_disagree"  # alice's 3 is now 1.5
    from grader.written import apply_manual_marks

    merged, _ = apply_manual_marks(results, tmp_path / "manual.csv", questions)
    assert next(c for c in merged[1].checks if c.name == "Q1").score == 2


def test_items_round_trip_from_the_app_through_the_grading_merge(app_env):
    out, state, client = app_env
    login(client, state)
    page = get(client, "/q/Q1").get_data(as_text=True)
    post(client, "/q/Q1/mark", {**form_of(page, "alice"), "item": ["1", "2"], "comment": "ok", "csrf": state.csrf})
    post(client, "/q/Q1/item", {"item": "1", "points": "0.5", "csrf": state.csrf})
    from grader.written import apply_manual_marks

    merged, problems = apply_manual_marks(results_of("alice", "bob", "carol"), out / "manual.csv", load_questions())
    assert next(c for c in merged[0].checks if c.name == "Q1").score == Decimal("2.5")
    assert not [p for p in problems if p.kind in ("items_disagree", "bad_items", "extra_column")]


def test_anonymous_flag_shows_codes_and_stores_ids(tmp_path):
    out = write_out(tmp_path / "out")
    data = json.loads((out / "written" / "answers.json").read_text("utf-8"))
    data["questions"][0]["answers"][0]["flags"] = [{"kind": "copied", "label": "possibly copied",
                                                    "message": "identical text with bob's answer"}]
    (out / "written" / "answers.json").write_text(json.dumps(data), "utf-8")
    state = AppState(out, token="one-time", allowed_hosts={HOST}, anonymous=True, secret=b"course secret")
    client = create_app(state).test_client()
    login(client, state)
    html = get(client, "/q/Q1").get_data(as_text=True)
    assert "alice" not in html and "bob" not in html and "carol" not in html
    codes = code_table(["alice", "bob", "carol"], b"course secret")   # the grading run's codes
    assert all(code in html for code in codes.values())
    alice = codes["alice"]
    assert f"identical text with {codes['bob']}'s answer" in html.replace("&#39;", "'")
    assert post(client, "/q/Q1/mark", {**form_of(html, alice), "item": ["1"], "csrf": state.csrf}).status_code == 303
    assert "alice,Q1,1,,1" in (out / "manual.csv").read_text("utf-8")     # the grading run resolves ids


def test_only_the_served_address_and_loopback_are_accepted_hosts():
    from grader.written.app.server import host_names

    assert host_names("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert "192.0.2.7:8000" in host_names("192.0.2.7", 8000)
    assert "evil.example:8000" not in host_names("0.0.0.0", 8000)


def test_those_without_an_answer_get_0_at_once_and_a_mark_already_there_is_kept(app_env):
    out, state, client = app_env
    login(client, state)
    (out / "manual.csv").write_text("student,question,points,comment\nbob,Q1,2,kept\n", "utf-8")
    assert post(client, "/q/Q1/missing", {}).status_code == 403                # CSRF here too
    response = post(client, "/q/Q1/missing", {"csrf": state.csrf})
    assert "0 points given to 1 student without an answer" in response.get_data(as_text=True)
    assert (out / "manual.csv").read_text("utf-8").splitlines()[1:] == ["bob,Q1,2,kept,", "carol,Q1,0,No answer found.,"]
    assert "give 0 to those not marked yet" not in get(client, "/q/Q1").get_data(as_text=True)


def test_the_browser_is_started_on_a_private_file_not_on_the_link():
    import stat

    from grader.written.app.server import launch_file

    page = launch_file("http://127.0.0.1:1/login?token=secret&x=1")
    try:
        assert stat.S_IMODE(page.stat().st_mode) == 0o600 and stat.S_IMODE(page.parent.stat().st_mode) == 0o700
        assert "token=secret&amp;x=1" in page.read_text("utf-8") and "secret" not in page.as_uri()
    finally:
        page.unlink()
        page.parent.rmdir()
