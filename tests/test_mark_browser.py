"""The marking app in a real browser: Debian's chromium and chromedriver, driven by Selenium.

Open the app by its one-time link, mark two answers with the keyboard only, reload, see them kept,
check manual.csv, then write a comment with the keyboard; screenshots go to ``$GRADER_ARTIFACTS`` (default ``artifacts/screenshots``)
to be looked at. Skipped where no browser is installed, except under CI (``CI`` set), where a
missing browser is a failure: ``.ci/run`` installs one.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from test_mark_app import write_out

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("GRADER_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"))


@pytest.fixture()
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium/chromedriver are missing: .ci/run must install them", pytrace=False)
        pytest.skip("no chromium and chromedriver here (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture()
def app(tmp_path):
    from werkzeug.serving import make_server

    from grader.written.app.server import AppState, create_app

    out = write_out(tmp_path / "out")
    state = AppState(out, token="link-token")
    server = make_server("127.0.0.1", 0, create_app(state), threaded=True)
    state.allowed_hosts = {f"127.0.0.1:{server.server_port}"}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_mark_two_answers_with_the_keyboard_and_find_them_after_a_reload(browser, app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out, base = app
    browser.get(f"{base}/login?token=link-token")
    assert "Written answers" in browser.find_element(By.TAG_NAME, "h1").text
    shot(browser, "1-start")
    browser.find_element(By.LINK_TEXT, browser.find_element(By.CSS_SELECTOR, "td a").text).click()
    body = browser.find_element(By.TAG_NAME, "body")
    assert browser.find_elements(By.CSS_SELECTOR, "article.focused")            # the first answer has the focus
    assert not browser.find_elements(By.TAG_NAME, "img")                         # the hostile <img> is text
    shot(browser, "2-question")
    body.send_keys("1")                                                           # tick item 1 of alice's answer
    body.send_keys("2")
    body.send_keys("s")                                                           # save: the page comes back
    WebDriverWait(browser, 10).until(lambda d: (out / "manual.csv").exists())
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article[data-marked=yes]"))
    browser.find_element(By.TAG_NAME, "body").send_keys("n")                      # the next unmarked: bob's
    focused = browser.find_element(By.CSS_SELECTOR, "article.focused")
    assert "bob" in focused.find_element(By.TAG_NAME, "h3").text
    browser.find_element(By.TAG_NAME, "body").send_keys("3")
    browser.find_element(By.TAG_NAME, "body").send_keys("s")
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article[data-marked=yes]")) == 2)
    browser.refresh()
    marked = [a.find_element(By.TAG_NAME, "h3").text for a in browser.find_elements(By.CSS_SELECTOR, "article")]
    assert marked == ["alice marked 3 / 5", "bob marked 1 / 5"], marked
    assert "onerror" in browser.find_elements(By.CSS_SELECTOR, "div.answer")[1].text   # shown literally
    shot(browser, "3-marked")
    assert (out / "manual.csv").read_text("utf-8").splitlines() == [
        "student,question,points,comment,items", "alice,Q1,3,,1;2", "bob,Q1,1,,3"]
    browser.get(base)
    assert browser.find_element(By.ID, "count-Q1").text == "2 / 2"
    shot(browser, "4-start-after")
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{base}/q/Q1")                                                   # a comment by the keyboard too
    browser.find_element(By.TAG_NAME, "body").send_keys("c")
    browser.switch_to.active_element.send_keys("brief, but right" + Keys.CONTROL + Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: "brief, but right" in (out / "manual.csv").read_text("utf-8"))
    assert '"brief, but right"' in (out / "manual.csv").read_text("utf-8").splitlines()[1]
